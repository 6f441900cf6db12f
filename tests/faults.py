"""Helpers for the fault-injection tests (``tests/test_faults.py``): private servers the tests may
kill, a trap in the sample web that holds one article request so a fault hits a task mid-fetch,
worker process lookup, and the audit of the final store.

* :class:`PrivateRedis`: a ``redis-server`` on a free loopback port, without persistence, that a
  test kills (SIGKILL) and starts again on the same port: everything in it is lost.
* :class:`PrivatePostgres`: a throwaway PostgreSQL cluster (``initdb`` into a temporary directory,
  trust auth, loopback only, its own port) that a test stops and starts; the shared server on
  5432 is never touched. ``initdb`` refuses to run as root, so as root it runs as ``postgres``.
* ``celery -A tests.faults:fault_app worker``: the crawler's own Celery app with a short Redis
  visibility timeout and a fast restore sweep (``FAULTS_VISIBILITY_TIMEOUT``), so that messages
  held by a worker killed outright come back within the test. The product settings refuse a
  visibility timeout below ``2 * (task_time_limit + 60)`` s (every countdown must stay below it),
  and kombu sweeps for expired messages only every ~100 s; the test checks that no countdown it
  saw reached the short timeout (see :func:`max_countdown_logged`).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis

from tests.cluster import Cluster, ClusterProcess, wait_for

#: Environment of a ``tests.faults:fault_app`` worker: the broker's visibility timeout (seconds).
VISIBILITY_ENV = "FAULTS_VISIBILITY_TIMEOUT"
FIGURES_ENV = "CRAWLER_FAULT_FIGURES"
DEFAULT_FIGURES_PATH = Path("/work/fault-figures.json")


def __getattr__(name: str) -> Any:
    """``fault_app``: the crawler's Celery app with the fault tests' broker transport options
    (resolved lazily, only in the worker processes that ask for it)."""
    if name != "fault_app":
        raise AttributeError(name)
    from workers.app import app

    timeout = float(os.environ.get(VISIBILITY_ENV, "0") or 0)
    if timeout > 0:
        app.conf.broker_transport_options = {
            **(app.conf.broker_transport_options or {}),
            "visibility_timeout": timeout,
            "unacked_restore_interval": 1,
            "unacked_restore_throttle": 1,
            # The restore sweep holds a mutex in Redis; a worker killed during a sweep (every
            # second here) leaves it held for this long (kombu's default: 300 s).
            "unacked_mutex_expire": 5,
        }
    return app


# -- private Redis --------------------------------------------------------------------------------


class PrivateRedis:
    """A ``redis-server`` without persistence on 127.0.0.1:``port``, owned by one test."""

    def __init__(self, workdir: Path, port: int) -> None:
        self.workdir = workdir
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        workdir.mkdir(parents=True, exist_ok=True)

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self, *, timeout: float = 15.0) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        log = open(self.workdir / f"redis-{self.starts}.log", "wb")  # noqa: SIM115 - the child keeps it
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--daemonize", "no", "--dir", str(self.workdir)]  # fmt: skip
        try:
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        finally:
            log.close()

        def answers() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"redis-server exited with {self.proc.returncode}")
            client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False
            finally:
                client.close()

        wait_for(answers, timeout=timeout, interval=0.05, what=f"redis-server on port {self.port}")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no save (there is nothing to save: persistence is off)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        self.kill()


# -- private PostgreSQL ---------------------------------------------------------------------------


def pg_bindir() -> Path:
    """The newest installed PostgreSQL's binaries (initdb, pg_ctl)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name or 0)
    )
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise RuntimeError("no initdb found (install the PostgreSQL server package)")
    return Path(initdb).parent


class PrivatePostgres:
    """A PostgreSQL cluster of its own in a temporary directory, on 127.0.0.1:``port``.

    The directory is made with :func:`tempfile.mkdtemp` (not pytest's tmp_path, whose parents are
    private to root) and given to ``postgres`` when running as root, since initdb refuses root.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.bindir = pg_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="crawler-faults-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self._as: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        os.chmod(self.root, 0o700)
        self.running = False

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str, timeout: float = 60) -> None:
        done = subprocess.run(
            [*self._as, *argv], capture_output=True, text=True, timeout=timeout, cwd=self.root
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{argv[0]} failed ({done.returncode}): {done.stdout}{done.stderr}{self.tail()}"
            )

    def init(self) -> None:
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "--no-sync", "-E", "UTF8", "--locale", "C")  # fmt: skip

    def start(self) -> None:
        options = f"-k {self.root} -c listen_addresses=127.0.0.1 -p {self.port} -c fsync=off"
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options,
                  "-w", "-t", "30", "start")  # fmt: skip
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")
        self.running = False

    def tail(self, chars: int = 2000) -> str:
        try:
            return "\n--- postgres log ---\n" + self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def destroy(self) -> None:
        """Stop the server (immediately) if it runs, and remove its directory. Idempotent."""
        if self.data.exists():
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                          "-t", "30", "stop")  # fmt: skip
        self.running = False
        shutil.rmtree(self.root, ignore_errors=True)


# -- workers --------------------------------------------------------------------------------------


class FaultCluster(Cluster):
    """A :class:`Cluster` whose workers run ``tests.faults:fault_app`` and send a User-Agent
    naming the worker (so the sample web knows which worker made a request)."""

    app = "tests.faults:fault_app"

    def worker(self, name: str, *, concurrency: int = 1, extra: list[str] | None = None) -> ClusterProcess:
        return super().worker(name, concurrency=concurrency, extra=["--without-gossip", *(extra or [])])

    def worker_env(self, name: str) -> Mapping[str, str]:
        return {**self.env, "CRAWLER_USER_AGENT": user_agent(name)}

    def by_name(self, name: str) -> ClusterProcess:
        return next(p for p in self.processes if p.name == name)


def user_agent(worker: str) -> str:
    return f"policy-crawler-faults/{worker} (test)"


def worker_of(agent: str) -> str | None:
    match = re.match(r"policy-crawler-faults/(\S+) ", agent)
    return match.group(1) if match else None


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may contain spaces and parentheses.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


def max_countdown_logged(*processes: ClusterProcess) -> float:
    """The longest countdown any task result in these workers' logs asked for (deferrals)."""
    pattern = re.compile(r"'countdown': ([0-9.]+)")
    longest = 0.0
    for process in processes:
        for match in pattern.finditer(process.log()):
            longest = max(longest, float(match.group(1)))
    return longest


# -- the trap -------------------------------------------------------------------------------------


@dataclass
class Sprung:
    """One request the trap held: which worker sent it, for what, when."""

    worker: str | None
    site: str
    target: str
    at: float = field(default_factory=time.monotonic)


class Trap:
    """Wraps a sample web's ``respond``: once armed, the next request for an article page is
    held ``hold`` seconds before it is answered, and reported (:meth:`wait`). The worker process
    that sent it is then inside a task, mid-fetch: the moment to kill it."""

    def __init__(self, web: Any, *, hold: float = 3.0) -> None:
        self.web = web
        self.hold = hold
        self._respond = web.respond
        self._lock = threading.Lock()
        self._armed = False
        self._site: str | None = None
        self._sprung = threading.Event()
        self.caught: list[Sprung] = []
        web.respond = self.respond

    def arm(self, site: str | None = None) -> None:
        """Hold the next article request (on ``site`` only, when given)."""
        with self._lock:
            self._sprung.clear()
            self._armed = True
            self._site = site

    def disarm(self) -> None:
        with self._lock:
            self._armed = False

    def respond(self, request: Any) -> Any:
        hit = None
        if (request.site, request.target) in self.web.articles:
            with self._lock:
                if self._armed and self._site in (None, request.site):
                    self._armed = False
                    hit = Sprung(
                        worker_of(request.headers.get("user-agent", "")), request.site, request.target
                    )
                    self.caught.append(hit)
        if hit is not None:
            self._sprung.set()
            time.sleep(self.hold)
        return self._respond(request)

    def wait(self, timeout: float) -> Sprung:
        if not self._sprung.wait(timeout):
            raise AssertionError(f"no article request within {timeout:g} s of arming the trap")
        return self.caught[-1]

    def remove(self) -> None:
        self.disarm()
        self.web.respond = self._respond


# -- progress and the audit -----------------------------------------------------------------------


def stored_articles(store: Any, reachable: set[str]) -> int:
    """Reachable article URLs stored so far, as a document or as a copy of a story."""
    urls = {doc.url for doc in store.iter_documents()} | {copy.url for copy, _ in store.iter_copies()}
    return len(urls & reachable)


@dataclass
class Figures:
    scenario: str
    faults_injected: int
    faults: list[str]
    urls_in_crawl: int
    urls_in_fault_free_crawl: int
    reachable_articles: int
    articles_stored_once: int
    documents: int
    copies: int
    stored_at_first_fault: int
    urls_lost: int
    duplicates: int
    refetched_urls: int
    page_requests: int
    elapsed_s: float
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    not_final: dict[str, str] = field(default_factory=dict)
    #: Differences from the fault-free crawl: URL statuses, URLs it never met, story grouping.
    mismatches: dict[str, Any] = field(default_factory=dict)

    def report(self, directory: Path) -> None:
        """Write the figures to ``directory/figures.json``, print them, and merge them into the
        shared figures file when ``$CRAWLER_FAULT_FIGURES`` is set (a path, or 1 for the default)."""
        data = asdict(self)
        text = json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True)
        (directory / "figures.json").write_text(text + "\n", encoding="utf-8")
        print(f"\nfault figures [{self.scenario}]: {json.dumps(data, ensure_ascii=False, sort_keys=True)}")
        wanted = os.environ.get(FIGURES_ENV, "")
        if not wanted:
            return
        target = DEFAULT_FIGURES_PATH if wanted.lower() in ("1", "true", "yes") else Path(wanted)
        with _figures_lock(target):
            try:
                merged = json.loads(target.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                merged = {}
            merged[self.scenario] = data
            tmp = target.with_suffix(".tmp")
            tmp.write_text(json.dumps(merged, ensure_ascii=False, indent=2, sort_keys=True) + "\n")
            tmp.replace(target)


@contextlib.contextmanager
def _figures_lock(target: Path) -> Iterator[None]:
    import fcntl

    with open(target.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def refetched(requests: list[Any]) -> int:
    """Page URLs (robots.txt aside) requested more than once."""
    counts = Counter((r.netloc, r.path) for r in requests if r.path != "/robots.txt")
    return sum(1 for n in counts.values() if n > 1)
