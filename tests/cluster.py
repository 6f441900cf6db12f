"""Helpers for tests that run the real cluster: Celery worker, beat and Flower processes.

Every process starts in its own session (process group) with its output in a log file, and
:meth:`ClusterProcess.stop` ends the whole group (SIGTERM, then SIGKILL), so a prefork worker's
children never outlive a test even when it fails. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import redis

from crawler.sources import Source
from storage import Store

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CELERY = str(BIN / "celery")
CRAWLER = str(BIN / "crawler")
REDIS_SERVER_URL = os.environ.get("CRAWLER_TEST_REDIS_URL", "redis://127.0.0.1:6379")


def redis_db_url(db: int) -> str:
    """A URL of one numbered database of the test Redis server."""
    return f"{REDIS_SERVER_URL.rstrip('/')}/{db}"


@contextlib.contextmanager
def isolated_redis(db: int) -> Iterator[redis.Redis]:
    """A Redis database flushed before and after use (tests own databases 12-15)."""
    client = redis.Redis.from_url(redis_db_url(db), socket_timeout=10)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        raise RuntimeError(
            f"Redis is not reachable at {redis_db_url(db)} ({exc}); start it with `bash .ci/services`"
        ) from exc
    client.flushdb()
    try:
        yield client
    finally:
        with contextlib.suppress(redis.RedisError):
            client.flushdb()
        client.close()


def wait_for(
    predicate: Callable[[], Any], *, timeout: float, interval: float = 0.2, what: str = "condition"
) -> Any:
    """Poll ``predicate`` until it returns something truthy; AssertionError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


class ClusterProcess:
    """One background process of the cluster, with its own process group and log file."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv,
            cwd=REPO,
            env=dict(env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stop() reaches the pool children too
        )

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_for_log(self, text: str, *, timeout: float) -> None:
        def seen() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            return text in self.log()

        try:
            wait_for(seen, timeout=timeout, what=f"{self.name} to log {text!r}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- {self.name} log ---\n{self.log()[-4000:]}") from None

    def stop(self, *, timeout: float = 15.0) -> None:
        """End the process group: SIGTERM (Celery's warm shutdown), then SIGKILL. Idempotent."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left in the group (pool children of a worker killed hard) goes too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self._log.close()


class Cluster:
    """Starts cluster processes for a test and stops every one of them, whatever happens."""

    def __init__(self, env: Mapping[str, str], log_dir: Path) -> None:
        self.env = dict(env)
        self.log_dir = log_dir
        self.processes: list[ClusterProcess] = []
        self.flower_port: int | None = None

    #: The Celery app the workers run.
    app = "workers.app"

    def _start(self, name: str, argv: list[str], env: Mapping[str, str] | None = None) -> ClusterProcess:
        process = ClusterProcess(name, argv, self.env if env is None else env, self.log_dir / f"{name}.log")
        self.processes.append(process)
        return process

    def worker(self, name: str, *, concurrency: int = 1, extra: list[str] | None = None) -> ClusterProcess:
        argv = [CELERY, "-A", self.app, "worker", "--pool", "prefork", "-c", str(concurrency)]
        argv += ["-n", f"{name}@%h", "-l", "info", "--without-mingle", *(extra or [])]
        return self._start(name, argv, self.worker_env(name))

    def worker_env(self, name: str) -> Mapping[str, str]:
        """The environment of worker ``name``."""
        return self.env

    def beat(self, schedule_file: Path) -> ClusterProcess:
        argv = [CELERY, "-A", "workers.app", "beat", "-l", "info", "--schedule", str(schedule_file)]
        argv += ["--max-interval", "1"]
        return self._start("beat", argv)

    def flower(
        self, *, port: int, user: str | None = None, password: str | None = None, name: str = "flower"
    ) -> ClusterProcess:
        """Flower on 127.0.0.1:``port``; without ``user`` it takes its credentials from settings."""
        argv = [CELERY, "-A", "workers.app", "flower", "--address=127.0.0.1", f"--port={port}"]
        if user is not None:
            argv.append(f"--basic-auth={user}:{password}")
        self.flower_port = port
        return self._start(name, argv)

    def crawler(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run the ``crawler`` CLI with the cluster's environment."""
        return subprocess.run(
            [CRAWLER, *args], cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.log()[-3000:]}" for p in self.processes)


def read_stories(store: Store) -> set[frozenset[str]]:
    """The partition of stored and copied URLs into stories. Which copy of a story arrived
    first (and so became the document) depends on timing; the grouping must not."""
    groups: dict[str, set[str]] = {doc.content_hash: {doc.url} for doc in store.iter_documents()}
    for copy, _ in store.iter_copies():
        groups.setdefault(copy.duplicate_of or "", set()).add(copy.url)
    return {frozenset(urls) for urls in groups.values()}


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def source_toml(source: Source) -> str:
    """A source file for ``source`` (TOML's basic strings accept JSON string escapes)."""
    lines = []
    for key, value in source.model_dump(exclude_none=True, by_alias=True).items():
        if isinstance(value, dict):  # a table, e.g. [revisit]: TOML's inline-table syntax
            # keys quoted: a host_roles key ("127.0.0.1:8806") is no bare TOML key
            inner = ", ".join(
                f"{json.dumps(k)} = {json.dumps(v, ensure_ascii=False)}" for k, v in value.items()
            )
            lines.append(f"{key} = {{ {inner} }}")
        else:
            lines.append(f"{key} = {json.dumps(value, ensure_ascii=False)}")
    return "\n".join(lines) + "\n"


def write_seeds(directory: Path, *sources: Source) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for source in sources:
        (directory / f"{source.id}.toml").write_text(source_toml(source), encoding="utf-8")
    return directory
