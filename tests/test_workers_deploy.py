"""The Docker files, read against the code (no Docker engine is needed, or used).

``docker compose up`` must give a working stack: every command names a real module and real
Celery commands, environment variables are ones settings.py reads, beat runs exactly once,
Flower is on the host's loopback only and behind basic auth, Redis and PostgreSQL are not
published at all.
"""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
CELERY_SUBCOMMANDS = {"worker", "beat", "flower", "inspect"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml", reason="PyYAML (a dev dependency) parses docker-compose.yml")
    data = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _argv(command: Any) -> list[str]:
    """A compose command as argv; ``sh -c "..."`` is unwrapped to the script's words."""
    argv = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
    if argv[:2] == ["sh", "-c"]:
        argv = shlex.split(argv[2])
    return argv[1:] if argv and argv[0] == "exec" else argv


def _check_celery_command(argv: list[str]) -> str:
    """Assert ``celery -A MODULE SUBCOMMAND ...`` names an importable app; returns the subcommand."""
    assert argv[0] == "celery", argv
    app_ref = argv[argv.index("-A") + 1]
    module = importlib.import_module(app_ref)
    assert hasattr(module, "app"), f"{app_ref} has no Celery app"
    sub = argv[argv.index("-A") + 2]
    assert sub in CELERY_SUBCOMMANDS, argv
    return sub


def _ports(service: dict[str, Any]) -> list[str]:
    return [str(p) for p in service.get("ports", [])]


def test_services_and_commands(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"redis", "postgres", "worker", "beat", "flower"} <= set(services)
    assert _check_celery_command(_argv(services["worker"]["command"])) == "worker"
    assert _check_celery_command(_argv(services["beat"]["command"])) == "beat"
    assert _check_celery_command(_argv(services["flower"]["command"])) == "flower"
    # The worker's healthcheck asks the worker itself.
    test = services["worker"]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    assert _check_celery_command(shlex.split(test[1])) == "inspect" and "ping" in test[1]


def test_exactly_one_beat(compose: dict[str, Any]) -> None:
    beat = compose["services"]["beat"]
    assert beat.get("deploy", {}).get("replicas") == 1
    assert "scale" not in beat or beat["scale"] == 1
    # Its schedule file is somewhere the non-root user can write.
    argv = _argv(beat["command"])
    assert argv[argv.index("--schedule") + 1].startswith("/tmp/")


def test_flower_is_loopback_only_and_authenticated(compose: dict[str, Any]) -> None:
    flower = compose["services"]["flower"]
    ports = _ports(flower)
    assert ports and all(p.startswith("127.0.0.1:") for p in ports), ports
    # The credentials are settings.py's flower_user / flower_password, read from the environment
    # by workers.app (which makes Flower refuse an empty or default password); the password is
    # required, never defaulted.
    env = flower["environment"]
    assert "CRAWLER_FLOWER_USER" in env and "CRAWLER_FLOWER_PASSWORD" in env
    assert env["CRAWLER_FLOWER_PASSWORD"].startswith("${CRAWLER_FLOWER_PASSWORD:?")
    assert _argv(flower["command"])[:4] == ["celery", "-A", "workers.app", "flower"]


def _walk_strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for value in node.values() for s in _walk_strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in _walk_strings(value)]
    return [node] if isinstance(node, str) else []


def test_no_credentials_on_any_command_line(compose: dict[str, Any]) -> None:
    """Command lines are visible to every user (`ps`) and in `docker inspect`'s Cmd/Args."""
    for name, service in compose["services"].items():
        words = [*_walk_strings(service.get("command", [])), *_walk_strings(service.get("entrypoint", []))]
        words += _walk_strings(service.get("healthcheck", {}).get("test", []))
        text = " ".join(words)
        assert "--basic-auth" not in text, name
        assert not re.search(r"PASSWORD|SECRET|://[^/\s:@]+:[^@\s]+@", text, re.I), f"{name}: {text}"


def test_no_fixed_default_passwords(compose: dict[str, Any]) -> None:
    """Every password comes from the environment of `docker compose up`, and is required."""
    text = (REPO / "docker-compose.yml").read_text(encoding="utf-8")
    for variable, default in re.findall(r"\$\{(\w*(?:PASSWORD|SECRET)\w*):?-([^}]*)\}", text, re.I):
        pytest.fail(f"${{{variable}}} defaults to {default!r}: a fixed password")
    postgres_password = compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"]
    assert postgres_password.startswith("${POSTGRES_PASSWORD:?"), postgres_password
    url = compose["x-crawler-env"]["CRAWLER_DATABASE_URL"]
    assert ":${POSTGRES_PASSWORD:?" in url, url


def test_redis_and_postgres_are_not_published(compose: dict[str, Any]) -> None:
    for name in ("redis", "postgres"):
        service = compose["services"][name]
        assert not service.get("ports"), f"{name} must stay on the compose network"
        assert service.get("healthcheck"), name
    assert "pg_isready" in " ".join(compose["services"]["postgres"]["healthcheck"]["test"])
    volumes = compose["services"]["postgres"]["volumes"]
    named = [v.split(":", 1)[0] for v in volumes]
    assert any(v in compose.get("volumes", {}) for v in named), "postgres data needs a named volume"


def test_environment_points_at_the_services(compose: dict[str, Any]) -> None:
    from settings import Settings

    fields = {f"CRAWLER_{name.upper()}" for name in Settings.model_fields}
    for name in ("worker", "beat", "flower"):
        service = compose["services"][name]
        env = service["environment"]
        for key in env:
            if key.startswith("CRAWLER_"):
                assert key in fields, f"{name}: {key} is not a setting"
        assert "@postgres:5432/" in env["CRAWLER_DATABASE_URL"]
        assert env["CRAWLER_REDIS_URL"].startswith("redis://redis:6379/")
        depends = service["depends_on"]
        assert depends["redis"]["condition"] == "service_healthy"
    for name in ("worker", "beat"):
        assert compose["services"][name]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_dockerfile() -> None:
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert re.search(r"^RUN pip install \.", text, re.M)
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and user[-1] not in ("root", "0")
    # Everything pip install . needs is copied into the image.
    copied = " ".join(re.findall(r"^COPY (.+)$", text, re.M))
    for needed in ("pyproject.toml", "settings.py", "crawler", "storage", "seeds", "workers"):
        assert needed in copied, needed
    readme = re.search(r'readme\s*=\s*"([^"]+)"', (REPO / "pyproject.toml").read_text(encoding="utf-8"))
    if readme:
        assert readme.group(1) in copied, "pyproject's readme must be in the image for pip install ."
    cmd = re.search(r"^CMD (\[.*\])$", text, re.M)
    assert cmd and '"workers.app"' in cmd.group(1)
    ignored = (REPO / ".dockerignore").read_text(encoding="utf-8").split()
    assert ".git" in ignored and ".venv" in ignored
