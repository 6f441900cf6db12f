"""Flower never starts open: a real ``celery -A workers.app flower`` on a free 127.0.0.1 port,
with Redis database 11 as its broker (this module's own; nothing is written to it)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from workers.flower import credentials_problem

ROOT = Path(__file__).resolve().parents[1]
CELERY = ROOT / ".venv" / "bin" / "celery"
BROKER = "redis://127.0.0.1:6379/11"
PASSWORD = "a-real-secret-9"


@pytest.mark.parametrize(
    ("credentials", "oauth", "problem"),
    [
        (None, "", "without authentication"),
        ([], "", "without authentication"),
        ([":"], "", "no user name"),
        (["admin:"], "", "password is empty"),
        (["admin:change-me"], "", "documented default"),
        (["admin:ok-pass", "other:"], "", "password is empty"),
        (["nocolon"], "", "no user name"),
        (["admin:ok-pass"], "", None),
        (None, ".*@example.org", None),  # Flower's OAuth guards it instead
    ],
)
def test_credentials_problem(credentials: list[str] | None, oauth: str, problem: str | None) -> None:
    found = credentials_problem(credentials, oauth=oauth)
    assert (found is None) if problem is None else (problem in (found or "")), found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRAWLER_", "FLOWER_"))}
    return {**env, "CRAWLER_REDIS_URL": BROKER, **extra}


def _flower(port: int, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(CELERY), "-A", "workers.app", "flower", "--address=127.0.0.1", f"--port={port}", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(**env),
        cwd=ROOT,
    )


@pytest.fixture(scope="module", autouse=True)
def _redis_db11() -> None:
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url(BROKER, socket_timeout=3).ping()
    except redis.ConnectionError:
        pytest.fail("Redis is not running on 127.0.0.1:6379 (make services)", pytrace=False)
    assert CELERY.exists(), f"{CELERY} is not installed (make .venv/.installed)"


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        ((), {}, "password is empty"),  # the README's command with the variables unset
        ((), {"CRAWLER_FLOWER_PASSWORD": "change-me"}, "documented default 'change-me'"),
        (("--basic-auth=:",), {"CRAWLER_FLOWER_PASSWORD": PASSWORD}, "no user name"),
        ((), {"FLOWER_BASIC_AUTH": "admin:"}, "password is empty"),
    ],
)
def test_flower_refuses_to_start_without_a_real_password(
    args: tuple[str, ...], env: dict[str, str], says: str
) -> None:
    port = _free_port()
    process = _flower(port, *args, **env)
    try:
        _out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("flower: refusing to start:") and says in lines[0], err
    assert "CRAWLER_FLOWER_PASSWORD" in lines[0]
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthcheck", timeout=1)


@contextmanager
def _running_flower(**env: str) -> Iterator[str]:
    port = _free_port()
    process = _flower(port, **env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"Flower exited {process.returncode}: {process.communicate()[1][-2000:]}")
            try:
                if httpx.get(f"{base}/healthcheck", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("Flower did not start within 60 s")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def test_flower_pages_and_metrics_need_the_password() -> None:
    with _running_flower(CRAWLER_FLOWER_PASSWORD=PASSWORD) as base:
        for path in ("/", "/workers", "/metrics", "/api/workers"):
            assert httpx.get(base + path, timeout=10).status_code == 401, path
            assert httpx.get(base + path, auth=("", ""), timeout=10).status_code == 401, path
            assert httpx.get(base + path, auth=("admin", "change-me"), timeout=10).status_code == 401, path
            assert httpx.get(base + path, auth=("admin", PASSWORD), timeout=10).status_code == 200, path
        metrics = httpx.get(base + "/metrics", auth=("admin", PASSWORD), timeout=10)
        assert "flower_" in metrics.text or "python_info" in metrics.text
        assert httpx.get(base + "/healthcheck", timeout=10).text == "OK"  # the container health check


def test_public_metrics_is_an_explicit_opt_in() -> None:
    with _running_flower(
        CRAWLER_FLOWER_USER="ops", CRAWLER_FLOWER_PASSWORD=PASSWORD, CRAWLER_FLOWER_PUBLIC_METRICS="true"
    ) as base:
        assert httpx.get(base + "/metrics", timeout=10).status_code == 200
        assert httpx.get(base + "/", timeout=10).status_code == 401
        assert httpx.get(base + "/", auth=("ops", PASSWORD), timeout=10).status_code == 200


def test_the_credentials_never_travel_in_argv() -> None:
    """The documented commands (README, workers/app.py, docker-compose.yml) pass no --basic-auth."""
    for path in ("README.md", "workers/app.py", "cli/cluster.py", "docker-compose.yml"):
        assert "--basic-auth=" not in (ROOT / path).read_text(encoding="utf-8"), path


def test_workers_warn_about_the_deprecated_switch(caplog: pytest.LogCaptureFixture) -> None:
    from settings import Settings
    from workers.app import warn_deprecated_settings

    with caplog.at_level("WARNING", logger="workers.app"):
        warn_deprecated_settings(Settings(allow_private_networks=False))
        assert not caplog.records
        warn_deprecated_settings(Settings(allow_private_networks=True))
    (record,) = caplog.records
    assert "deprecated" in record.getMessage() and "CRAWLER_ALLOWED_NETWORKS" in record.getMessage()


def test_a_bad_setting_stops_the_celery_command_with_one_line() -> None:
    process = _flower(_free_port(), CRAWLER_FLOWER_PASSWORD=PASSWORD, CRAWLER_CONCURRENCY="0")
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 2, err
    assert err.splitlines() == [
        "celery -A workers.app: error: CRAWLER_CONCURRENCY='0': must be an integer from 1 to 1,024"
    ]
