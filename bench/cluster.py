"""The distributed run: two ``celery worker -c 1`` processes, Redis and PostgreSQL on this machine.

Every run gets a flushed Redis database (:data:`bench.run.REDIS_DB`, not one of the test suite's)
and a fresh PostgreSQL schema, both removed afterwards; workers start (and warm up) before the
clock starts, as a deployed cluster's would be, and the clock runs from ``crawler enqueue`` to the
return of ``crawler wait``. Every worker runs in its own process group, ended whatever happens.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.measure import read_stat

if TYPE_CHECKING:
    from bench.measure import TreeSampler

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
REDIS_SERVER = os.environ.get("CRAWLER_BENCH_REDIS", "redis://127.0.0.1:6379")
PG_SERVER = os.environ.get("CRAWLER_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")


def services_up(redis_db: int) -> str | None:
    """None when Redis and PostgreSQL answer, else what is wrong (start them: bash .ci/services)."""
    import psycopg
    import redis

    try:
        client = redis.Redis.from_url(f"{REDIS_SERVER}/{redis_db}", socket_timeout=3)
        client.ping()
        client.close()
    except (redis.RedisError, OSError) as exc:
        return f"Redis at {REDIS_SERVER} does not answer ({exc}); start it with `bash .ci/services`"
    try:
        with psycopg.connect(PG_SERVER, connect_timeout=3) as conn:
            conn.execute("select 1")
    except psycopg.Error as exc:
        return f"PostgreSQL at {PG_SERVER} does not answer ({exc}); start it with `bash .ci/services`"
    return None


def service_pids() -> list[int]:
    """Redis and the PostgreSQL postmaster (its backends are its children, so the sampler finds them)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = read_stat(int(entry))
        if stat is None:
            continue
        parent, _, name = stat
        if name.startswith("redis-server"):
            found.append(int(entry))
        elif name in ("postgres", "postmaster"):
            parent_stat = read_stat(parent)
            if parent_stat is None or parent_stat[2] not in ("postgres", "postmaster"):
                found.append(int(entry))
    return found


class DistributedRun:
    def __init__(
        self, workdir: Path, seeds: Path, redis_db: int, workers: int = 2, *, concurrency: int = 1
    ) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.seeds = seeds
        self.redis_url = f"{REDIS_SERVER}/{redis_db}"
        self.schema = f"bench_{uuid.uuid4().hex[:12]}"
        self.database = f"{PG_SERVER}?options=-csearch_path%3D{self.schema}"
        self.count = workers
        self.concurrency = concurrency
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), self.env.get("PYTHONPATH", "")]))
        self.env.update(
            CRAWLER_DATABASE_URL=self.database,
            CRAWLER_REDIS_URL=self.redis_url,
            CRAWLER_SEEDS_DIR=str(seeds),
            CRAWLER_ALLOWED_NETWORKS="127.0.0.0/8",
            CRAWLER_PER_HOST_DELAY="0",
        )

    def _flush(self) -> None:
        import redis

        client = redis.Redis.from_url(self.redis_url, socket_timeout=10)
        try:
            client.flushdb()
        finally:
            client.close()

    def start(self, *, timeout: float = 120.0) -> None:
        import psycopg
        from psycopg import sql

        self._flush()
        with psycopg.connect(PG_SERVER, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.schema)))
        for n in range(1, self.count + 1):
            log = self.workdir / f"worker{n}.log"
            argv = [
                str(BIN / "celery"),
                "-A",
                "workers.app",
                "worker",
                "--pool",
                "prefork",
                "-c",
                str(self.concurrency),
            ]
            argv += ["-n", f"bench{n}@%h", "-l", "info", "--without-mingle"]
            with open(log, "wb") as out:
                self.procs.append(
                    subprocess.Popen(
                        argv,
                        cwd=REPO,
                        env=self.env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                )
            self.logs.append(log)
        deadline = time.monotonic() + timeout
        for proc, log in zip(self.procs, self.logs, strict=True):
            while b"ready." not in log.read_bytes():
                if proc.poll() is not None:
                    raise RuntimeError(f"worker exited with {proc.returncode}; see {log}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"worker not ready after {timeout:g} s; see {log}")
                time.sleep(0.2)
        # Let the prefork children finish importing the task code before the clock starts.
        time.sleep(1.0)

    def worker_pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def service_pids(self) -> list[int]:
        return service_pids()

    def crawl(self, sampler: TreeSampler, *, timeout: float) -> None:
        """``crawler enqueue --source`` then ``crawler wait``; raises on failure or overrun."""
        from bench.run import SOURCE_ID, run_measured

        log = self.workdir / "cli.log"
        crawler = str(BIN / "crawler")
        started = time.monotonic()
        run_measured(
            [crawler, "enqueue", "--source", SOURCE_ID], env=self.env, log=log, timeout=60, sampler=sampler
        )
        left = max(10.0, timeout - (time.monotonic() - started))
        argv = [crawler, "wait", "--timeout", f"{left:.0f}", "--interval", "0.1"]
        run_measured(argv, env=self.env, log=log, timeout=left + 30, sampler=sampler)

    def documents(self) -> int | None:
        import psycopg

        try:
            with psycopg.connect(self.database) as conn:
                row = conn.execute("select count(*) from documents").fetchone()
        except psycopg.Error:
            return None
        return int(row[0]) if row else None

    def stop_workers(self, timeout: float = 30.0) -> None:
        """A warm shutdown of the workers (SIGTERM to the main processes only): each pool child
        exits on its own and writes what it keeps in memory (the plans' last counts)."""
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                pass
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        with contextlib.suppress(Exception):
            self._flush()
        self._drop_schema()

    def _drop_schema(self) -> None:
        import psycopg
        from psycopg import sql

        with contextlib.suppress(psycopg.Error), psycopg.connect(PG_SERVER, autocommit=True) as conn:
            conn.execute("SET lock_timeout = '10s'")
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema)))

    def __enter__(self) -> DistributedRun:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
