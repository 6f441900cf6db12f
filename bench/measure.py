"""CPU time and peak memory of process trees, sampled from ``/proc`` in a background thread.

Why ``/proc`` and not psutil: the harness must also run in the test suite's environment, and
psutil's ``children()`` scans every process for its parent on each call anyway. Here a pid's
parent is read once, the first time the pid is seen, so a sample costs a directory listing plus
one ``stat``/``statm``/``cmdline`` read per process of the tree (well under 1% of a core at
20 Hz). The command line is read again every time: a forked child that execs another program
(the forkserver) is only then what its role says.

CPU of a process is its own user+system time, last value seen (a process that exits between two
samples loses at most one interval of CPU; the bench's processes live for the whole run). Peak
RSS is the largest resident set seen per process, so it can miss a spike shorter than the
interval (50 ms by default).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

_TICK = os.sysconf("SC_CLK_TCK")
SERIES_EVERY = 20  # samples between two points of a process's RSS time series
_PAGE = os.sysconf("SC_PAGE_SIZE")


def read_stat(pid: int) -> tuple[int, float, str] | None:
    """(parent pid, user+system CPU seconds, command name) of ``pid``, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    close = data.rfind(b")")
    name = data[data.find(b"(") + 1 : close].decode(errors="replace")
    fields = data[close + 2 :].split()
    # fields[0] is the state (field 3 of stat(5)); ppid is field 4, utime 14, stime 15.
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK, name


def read_rss(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            return int(handle.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return None


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def system_busy() -> float:
    """CPU seconds all cores have spent busy since boot (``/proc/stat``: all but idle and iowait)."""
    with open("/proc/stat", "rb") as handle:
        fields = [int(x) for x in handle.readline().split()[1:]]
    # user, nice, system, irq, softirq; not idle, iowait, steal (the hypervisor's), guest (in user)
    return (fields[0] + fields[1] + fields[2] + fields[5] + fields[6]) / _TICK


def system_steal() -> float:
    """CPU seconds the hypervisor took from this VM since boot (``/proc/stat`` steal)."""
    with open("/proc/stat", "rb") as handle:
        fields = handle.readline().split()[1:]
    return int(fields[7]) / _TICK if len(fields) > 7 else 0.0


def cpu_seconds(pid: int) -> float:
    stat = read_stat(pid)
    return stat[1] if stat else 0.0


@dataclass(slots=True)
class ProcInfo:
    pid: int
    ppid: int
    name: str
    cmd: str
    first_cpu: float  # CPU already used when first seen (for processes that predate the run)
    cpu: float = 0.0
    peak_rss: int = 0
    rss_series: list[tuple[float, float]] = field(default_factory=list)  # (seconds, MB), ~1 per second

    @property
    def cpu_used(self) -> float:
        return max(0.0, self.cpu - self.first_cpu)


@dataclass(slots=True)
class TreeSample:
    """What one run's processes used: per process CPU and peak RSS, and the samples taken."""

    processes: dict[int, ProcInfo] = field(default_factory=dict)
    samples: int = 0
    sampler_cpu: float = 0.0
    started: float = field(default_factory=time.monotonic)

    @property
    def cpu(self) -> float:
        return sum(p.cpu_used for p in self.processes.values())

    def peak_rss_mb(self) -> float:
        return max((p.peak_rss for p in self.processes.values()), default=0) / 2**20

    def summary(self) -> list[dict[str, Any]]:
        return [
            {
                "pid": p.pid,
                "name": p.name,
                "role": role_of(p, self.processes.get(p.ppid)),
                "cpu_s": round(p.cpu_used, 3),
                "peak_rss_mb": round(p.peak_rss / 2**20, 1),
                "rss_series": p.rss_series,
            }
            for p in sorted(self.processes.values(), key=lambda p: p.pid)
        ]


def role_of(proc: ProcInfo, parent: ProcInfo | None = None) -> str:
    """A short label for a process of a bench run, from its command line and its parent's.

    Forked children share their parent's command line: a forkserver's children are the pool
    workers, a celery worker's children its prefork pool, a limit run's children its pool.
    """
    cmd = proc.cmd
    forked = parent is not None and parent.cmd == cmd
    if "resource_tracker" in cmd:
        return "resource tracker"
    if "forkserver" in cmd:
        return "pool worker" if forked else "forkserver"
    if "celery" in cmd and "worker" in cmd:
        return "celery pool child" if forked else "celery worker main"
    if "scrapy_peer" in cmd:
        return "scrapy"
    if "bench.limit" in cmd:
        return "limit worker" if forked else "limit parent"
    if "crawler" in cmd and " crawl " in f"{cmd} ":
        return "crawl main"
    if "crawler" in cmd and (" enqueue" in cmd or " wait" in cmd):
        return "crawler enqueue/wait"
    if "redis-server" in proc.name:
        return "redis"
    if "postgres" in proc.name:
        return "postgres"
    return proc.name


class TreeSampler:
    """Samples the process trees under ``roots`` (and ``extra`` pids, e.g. Redis) every ``interval``.

    Use as a context manager around the run; ``result`` holds the numbers afterwards.
    """

    def __init__(self, roots: Iterable[int], *, extra: Iterable[int] = (), interval: float = 0.05) -> None:
        self.roots = set(roots)
        self.extra = set(extra)
        self.interval = interval
        self.result = TreeSample()
        self._parents: dict[int, int] = {}  # pid -> ppid, read once per pid
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tree-sampler", daemon=True)

    def add_root(self, pid: int) -> None:
        self.roots.add(pid)

    def __enter__(self) -> TreeSampler:
        self.sample()  # baseline CPU for processes that already run (workers, services)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def _loop(self) -> None:
        started = time.thread_time()
        while not self._stop.wait(self.interval):
            self.sample()
        self.result.sampler_cpu = time.thread_time() - started

    def _members(self) -> set[int]:
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                pids.append(int(entry))
        live = set(pids)
        for pid in pids:
            if pid not in self._parents:
                stat = read_stat(pid)
                self._parents[pid] = stat[0] if stat else -1
        for pid in list(self._parents):
            if pid not in live:
                del self._parents[pid]
        members = {p for p in self.roots | self.extra if p in live}
        grew = True
        while grew:  # descendants of the roots (the tree is shallow: 2-3 levels)
            grew = False
            for pid, parent in self._parents.items():
                if parent in members and pid not in members:
                    members.add(pid)
                    grew = True
        return members

    def sample(self) -> None:
        result = self.result
        for pid in self._members():
            stat = read_stat(pid)
            if stat is None:
                continue
            ppid, cpu, name = stat
            info = result.processes.get(pid)
            if info is None:
                # Processes already running at the first sample (warm workers, services) count
                # only what they use from then on; processes started later count all their CPU.
                baseline = cpu if result.samples == 0 else 0.0
                info = result.processes[pid] = ProcInfo(pid, ppid, name, cmdline(pid), baseline)
            else:
                command = cmdline(pid)
                if command and command != info.cmd:
                    # The process exec'd since it was first seen (a child forked, then started
                    # its own program: the forkserver, say). Its parent's copy it was before is
                    # not this program: its role and peak are those of what runs now.
                    info.cmd, info.peak_rss = command, 0
            info.cpu = cpu
            info.name = name
            rss = read_rss(pid)
            if rss is not None and rss > info.peak_rss:
                info.peak_rss = rss
            if rss is not None and result.samples % SERIES_EVERY == 0:
                info.rss_series.append((round(time.monotonic() - result.started, 1), round(rss / 2**20, 1)))
        result.samples += 1
