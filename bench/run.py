"""``python -m bench``: crawl throughput and cost against the extraction limit and a Scrapy peer.

One invocation builds a web of ~N realistic article pages (:mod:`bench.web`), serves it from a
pre-rendered static server in its own process (:mod:`bench.server`), and runs, interleaved and
repeated (the order rotates every round; medians are reported):

* ``limit``: ``trafilatura.extract`` alone over the article pages, one process per core;
* ``pipeline``: :func:`crawler.pipeline.process_page` alone over the same pages, one per core
  (our per-page CPU cost; the embedded crawl's ceiling);
* ``embedded``: ``crawler crawl`` (CLI, subprocess) into a fresh SQLite file;
* ``distributed``: two ``celery worker -c 1`` processes, Redis and PostgreSQL, seeded with
  ``crawler enqueue`` and finished with ``crawler wait`` (skipped when workers/ is not usable);
* ``scrapy``: a straightforward Scrapy spider (:mod:`bench.scrapy_peer`).

Per run: pages/s (HTML 200 responses served by the bench server), articles/s (distinct article
pages served, or extracted for the limits), CPU seconds per page over the run's process tree,
peak RSS per process (sampled every 50 ms from ``/proc``), and the server's own CPU. Targets
from issue 7 are printed PASS/FAIL; everything goes to a JSON file.

Why a subprocess per run: each run gets a clean interpreter, its own process tree to measure,
and a hard time limit (its process group is killed when it overruns).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from bench.measure import TreeSampler, cpu_seconds, read_rss, system_busy, system_steal

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RUNS = ("limit", "pipeline", "embedded", "noplans", "archive", "distributed", "scrapy")
#: build_site gives ~47 + 22 * (scale - 1) article pages.
BASE_ARTICLES, ARTICLES_PER_SCALE = 47, 22
SOURCE_ID = "bench-site"
REDIS_DB = 6  # the test suite owns 7-15
PER_HOST_CONCURRENCY = 8
#: Other processes' CPU (cores, median over rounds) above which a run is flagged as noisy.
QUIET_CORES = 0.2
SERVICES = ("redis", "postgres")  # process roles counted as the database, not the crawler


def scale_for(pages: int) -> int:
    return max(1, round((pages - BASE_ARTICLES) / ARTICLES_PER_SCALE) + 1)


# -- results --------------------------------------------------------------------------------------


@dataclass
class RunResult:
    name: str
    round: int
    ok: bool = True
    error: str | None = None
    elapsed: float = 0.0  # the rate's denominator (limits: the extraction alone)
    wall: float = 0.0  # the whole measured window
    pages: int = 0  # HTML pages fetched (200) or, for the limits, pages extracted
    articles: int = 0  # distinct article pages fetched, or extracted
    documents: int | None = None  # documents the crawler stored (or items Scrapy yielded)
    cpu: float = 0.0  # crawler process-tree CPU seconds
    services_cpu: float = 0.0  # Redis + PostgreSQL (distributed only)
    server_cpu: float = 0.0  # the bench server's CPU seconds during the run
    foreign_cpu: float = 0.0  # CPU used on the machine by anything else (other users, the bench itself)
    processes: list[dict[str, Any]] = field(default_factory=list)
    server: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pages_per_s(self) -> float:
        return self.pages / self.elapsed if self.elapsed else 0.0

    @property
    def articles_per_s(self) -> float:
        return self.articles / self.elapsed if self.elapsed else 0.0

    @property
    def cpu_per_page(self) -> float:
        return self.cpu / self.pages if self.pages else 0.0

    @property
    def peak_mb(self) -> float:
        crawler = [p for p in self.processes if p["role"] not in SERVICES]
        return max((p["peak_rss_mb"] for p in crawler), default=0.0)

    @property
    def foreign_share(self) -> float:
        """Other processes' CPU over the run, in cores (0 on a quiet machine)."""
        return self.foreign_cpu / self.wall if self.wall else 0.0

    @property
    def server_share(self) -> float:
        """The server's CPU as a share of one core over the run."""
        return self.server_cpu / self.elapsed if self.elapsed else 0.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            pages_per_s=round(self.pages_per_s, 2),
            articles_per_s=round(self.articles_per_s, 2),
            cpu_per_page=round(self.cpu_per_page, 5),
            peak_mb=round(self.peak_mb, 1),
            server_share=round(self.server_share, 3),
            foreign_share=round(self.foreign_share, 3),
        )
        return data


# -- the server -----------------------------------------------------------------------------------


class BenchServer:
    """The static server subprocess: start, read its ready line, count, stop."""

    def __init__(self, scale: int, workdir: Path, *, dump: bool = True, timeout: float = 600) -> None:
        self.dump = workdir / f"articles-{scale}.pickle" if dump else None
        argv = [sys.executable, "-m", "bench.server", "--scale", str(scale), "--crawl-delay", "0"]
        argv += ["--max-requests", str(max(200_000, 60 * scale * BASE_ARTICLES))]
        if self.dump:
            argv += ["--dump", str(self.dump)]
        self.log = open(workdir / f"server-{scale}.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=_env()
        )
        assert self.proc.stdout is not None
        line = _readline(self.proc.stdout, timeout)
        if not line:
            self.stop()
            raise RuntimeError(f"bench server did not start; see {self.log.name}")
        self.info: dict[str, Any] = json.loads(line)
        self.pid = self.proc.pid
        self.control = f"http://127.0.0.1:{self.info['control']}"

    def _get(self, path: str) -> dict[str, Any]:
        with urllib.request.urlopen(self.control + path, timeout=10) as response:
            result: dict[str, Any] = json.loads(response.read())
            return result

    def reset(self) -> None:
        self._get("/reset")

    def stats(self) -> dict[str, Any]:
        return self._get("/stats")

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def rss_mb(self) -> float:
        return (read_rss(self.pid) or 0) / 2**20

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


def _readline(stream: IO[bytes], timeout: float) -> bytes:
    """One line from a pipe, or b"" after ``timeout`` seconds."""
    box: list[bytes] = []
    reader = threading.Thread(target=lambda: box.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return box[0] if box else b""


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


# -- the source -----------------------------------------------------------------------------------


def bench_source(info: dict[str, Any]) -> dict[str, Any]:
    """seeds/sample-site.toml moved to the server's ports, per-host delay 0, full depth."""
    import re

    from crawler.samplesite import DEFAULT_PORT_BASE
    from crawler.sources import load_source
    from seeds import SEEDS_DIR

    base = load_source(SEEDS_DIR / "sample-site.toml")
    moved = {
        f"127.0.0.1:{DEFAULT_PORT_BASE + i}": info["netlocs"][n] for i, n in enumerate(info["standard_sites"])
    }

    def move(text: str) -> str:
        return re.sub(r"127\.0\.0\.1:\d+", lambda m: moved.get(m.group(0), m.group(0)), text)

    data = base.model_dump(exclude_none=True)
    data.update(
        id=SOURCE_ID,
        name="bench web",
        start_urls=[move(u) for u in base.start_urls],
        allowed_hosts=[move(h) for h in base.allowed_hosts],
        host_roles={move(h): role for h, role in base.host_roles.items()},
        max_depth=max(base.max_depth, int(info["required_depth"])),
        per_host_delay=0.0,
        per_host_concurrency=PER_HOST_CONCURRENCY,
    )
    data.pop("schedule", None)
    data.pop("revisit", None)  # the defaults; every round crawls into a fresh store anyway
    return data


def _toml(value: Any) -> str:
    """A TOML value: JSON's strings, numbers, booleans and arrays are TOML's; a table is written
    inline with quoted keys (``{"127.0.0.1:8801" = "issuer"}``)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml(v)}" for k, v in value.items()) + "}"
    return json.dumps(value, ensure_ascii=False)


def write_seeds(directory: Path, source: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    lines = [f"{key} = {_toml(value)}" for key, value in source.items()]
    (directory / f"{source['id']}.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (directory / "source.json").write_text(json.dumps(source, ensure_ascii=False), encoding="utf-8")
    return directory


# -- running one measured command ----------------------------------------------------------------


class Deadline(Exception):
    pass


def run_measured(
    argv: list[str], *, env: dict[str, str], log: Path, timeout: float, sampler: TreeSampler
) -> float:
    """Run ``argv`` in its own process group under ``sampler``; its wall time. Kills it on timeout."""
    with open(log, "ab") as out:
        started = time.monotonic()
        proc = subprocess.Popen(
            argv,
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        sampler.add_root(proc.pid)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise Deadline(f"{Path(argv[0]).name} {' '.join(argv[1:3])} overran {timeout:g} s") from None
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # leftovers of the group (pool workers)
        elapsed = time.monotonic() - started
    if code != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} exited with {code}; see {log}")
    return elapsed


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.results: list[RunResult] = []
        self.notes: list[str] = []
        self.server: BenchServer | None = None
        self.source: dict[str, Any] = {}
        self.seeds: Path | None = None

    # -- setup

    def start(self, scale: int, *, dump: bool = True) -> BenchServer:
        """Serve the web at ``scale``; ``dump`` writes the article pages for the limit runs."""
        server = BenchServer(scale, self.workdir, dump=dump, timeout=self.args.timeout)
        self.server = server
        self.source = bench_source(server.info)
        self.seeds = write_seeds(self.workdir / f"seeds-{scale}", self.source)
        return server

    def measure(self, result: RunResult, body: Any, *, extra_roots: tuple[int, ...] = ()) -> RunResult:
        """Reset the server counters, run ``body(sampler)`` (returns elapsed), collect everything."""
        server = self.server
        assert server is not None
        server.reset()
        cpu0 = server.cpu()
        busy0, bench0, steal0 = system_busy(), _own_cpu(), system_steal()
        sampler = TreeSampler([], extra=extra_roots, interval=0.05)
        began = time.monotonic()
        try:
            with sampler:
                result.elapsed = body(sampler, result)
        except (Deadline, RuntimeError, OSError) as exc:
            result.ok, result.error = False, str(exc)
        result.wall = time.monotonic() - began
        stolen = system_steal() - steal0
        result.extra["steal_cores"] = round(stolen / result.wall, 3) if result.wall else 0.0
        result.server_cpu = server.cpu() - cpu0
        busy, bench_cpu = system_busy() - busy0, _own_cpu() - bench0
        result.server = server.stats()
        result.processes = sampler.result.summary()
        services = [p["cpu_s"] for p in result.processes if p["role"] in SERVICES]
        result.services_cpu = sum(services)
        result.cpu = sum(p["cpu_s"] for p in result.processes) - result.services_cpu
        # What else ran meanwhile: the machine's busy time less the run, the server and this
        # harness. Large values mean the numbers are not from a quiet machine.
        result.foreign_cpu = max(0.0, busy - sampler.result.cpu - result.server_cpu - bench_cpu)
        result.extra["sampler_cpu_s"] = round(sampler.result.sampler_cpu, 3)
        result.extra["samples"] = sampler.result.samples
        if result.name not in ("limit", "pipeline"):
            result.pages = int(result.server.get("html_ok", 0))
            result.articles = int(result.server.get("articles_unique", 0))
        self.results.append(result)
        self._print_run(result)
        return result

    def _print_run(self, r: RunResult) -> None:
        if not r.ok:
            print(f"  {r.name:<12} round {r.round}: FAILED: {r.error}", flush=True)
            return
        print(
            f"  {r.name:<12} round {r.round}: {r.pages} pages, {r.articles} articles in {r.elapsed:.1f} s "
            f"= {r.pages_per_s:.1f} pages/s, {r.articles_per_s:.1f} articles/s, "
            f"{1000 * r.cpu_per_page:.1f} ms CPU/page, peak {r.peak_mb:.0f} MB, "
            f"server {100 * r.server_share:.0f}% of a core, others {r.foreign_share:.2f} cores",
            flush=True,
        )

    # -- the runs

    def run_limit(self, round_: int, mode: str) -> RunResult:
        server = self.server
        assert server is not None and server.dump is not None
        out = self.workdir / f"{mode}-r{round_}.json"

        def body(sampler: TreeSampler, result: RunResult) -> float:
            argv = [sys.executable, "-m", "bench.limit", str(server.dump), "--mode", mode]
            argv += ["--workers", str(self.args.workers), "--out", str(out)]
            run_measured(
                argv, env=_env(), log=self.workdir / f"{mode}.log", timeout=self.args.timeout, sampler=sampler
            )
            data = json.loads(out.read_text())
            result.pages = result.articles = int(data["pages"])
            result.extra["chars"] = data["chars"]
            result.extra["call_cpu_ms"] = data["call_cpu_ms"]
            if "plan_events" in data:
                result.extra["plan_events"] = data["plan_events"]
                result.extra["fast_path_ms"] = data["fast_path_ms"]
            return float(data["elapsed"])

        return self.measure(RunResult("limit" if mode == "trafilatura" else "pipeline", round_), body)

    def run_embedded(
        self,
        round_: int,
        *,
        label: str = "embedded",
        profile: Path | None = None,
        archive: bool = False,
        plans: bool = True,
    ) -> RunResult:
        """``crawler crawl`` into a fresh SQLite store; ``archive``: with the raw archive (WARC)
        on, its bytes counted (the other embedded runs measure the crawl without it); ``plans``
        off: every page through trafilatura (the extraction plans' baseline)."""
        db = self.workdir / f"{label}-r{round_}.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        warc = self.workdir / f"{label}-r{round_}-warc"
        shutil.rmtree(warc, ignore_errors=True)
        argv = [str(BIN / "crawler"), "crawl", SOURCE_ID, "--db", f"sqlite:///{db}"]
        argv += ["--allow-network", "127.0.0.0/8"]
        if profile is not None:
            argv = [
                str(BIN / "py-spy"),
                "record",
                "--subprocesses",
                "--format",
                "raw",
                "--rate",
                "200",
                "-o",
                str(profile),
                "--",
                *argv,
            ]
        env = _env(
            CRAWLER_SEEDS_DIR=str(self.seeds),
            CRAWLER_PER_HOST_DELAY="0",
            # The setting, not --concurrency: the flag also overrides the source's per-host cap.
            CRAWLER_CONCURRENCY=str(self.args.concurrency),
            CRAWLER_EXTRACT_WORKERS=str(self.args.workers),
            CRAWLER_ARCHIVE_ENABLED="true" if archive else "false",
            CRAWLER_ARCHIVE_DIR=str(warc),
            CRAWLER_EXTRACTION_PLANS="true" if plans else "false",
        )

        def body(sampler: TreeSampler, result: RunResult) -> float:
            elapsed = run_measured(
                argv, env=env, log=self.workdir / f"{label}.log", timeout=self.args.timeout, sampler=sampler
            )
            with contextlib.closing(sqlite3.connect(db)) as conn:
                result.documents = int(conn.execute("select count(*) from documents").fetchone()[0])
            if archive:
                result.extra["archive_bytes"] = sum(p.stat().st_size for p in warc.glob("*.warc.gz"))
            result.extra["plans"] = plan_counts(f"sqlite:///{db}")
            assert self.server is not None
            result.extra["quality"] = document_quality(f"sqlite:///{db}", self.server)
            return elapsed

        return self.measure(RunResult(label, round_), body)

    def run_scrapy(self, round_: int) -> RunResult:
        assert self.seeds is not None
        out = self.workdir / f"scrapy-r{round_}.json"
        argv = [sys.executable, "-m", "bench.scrapy_peer", str(self.seeds / "source.json"), "--out", str(out)]

        def body(sampler: TreeSampler, result: RunResult) -> float:
            elapsed = run_measured(
                argv, env=_env(), log=self.workdir / "scrapy.log", timeout=self.args.timeout, sampler=sampler
            )
            data = json.loads(out.read_text())
            result.documents = int(data["items"])
            result.extra["scrapy"] = data
            return elapsed

        return self.measure(RunResult("scrapy", round_), body)

    def run_distributed(self, round_: int) -> RunResult:
        from bench.cluster import DistributedRun

        assert self.seeds is not None
        cluster = DistributedRun(
            self.workdir / f"cluster-r{round_}",
            self.seeds,
            REDIS_DB,
            self.args.workers,
            concurrency=self.args.worker_concurrency,
        )
        result = RunResult("distributed", round_)
        try:
            cluster.start(timeout=min(120.0, self.args.timeout))
        except (RuntimeError, OSError) as exc:
            cluster.stop()
            result.ok, result.error = False, f"cluster did not start: {exc}"
            self.results.append(result)
            self._print_run(result)
            return result
        try:

            def body(sampler: TreeSampler, result: RunResult) -> float:
                for pid in cluster.worker_pids():
                    sampler.add_root(pid)
                started = time.monotonic()
                cluster.crawl(sampler, timeout=self.args.timeout)
                elapsed = time.monotonic() - started
                result.documents = cluster.documents()
                assert self.server is not None
                result.extra["quality"] = document_quality(cluster.database, self.server)
                return elapsed

            result.extra["services_pids"] = cluster.service_pids()
            measured = self.measure(result, body, extra_roots=tuple(cluster.service_pids()))
            if measured.ok:
                # after the clock: the workers write their plans' last counts as they exit
                cluster.stop_workers()
                measured.extra["plans"] = plan_counts(cluster.database)
            return measured
        finally:
            cluster.stop()

    # -- the plan

    def distributed_ready(self) -> str | None:
        """None if the distributed run can go, else why not."""
        probe = subprocess.run(
            [sys.executable, "-c", "import workers.app, workers.tasks, cli.cluster"],
            cwd=REPO,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        if probe.returncode != 0:
            return "workers/ is not importable yet: " + (probe.stderr.strip().splitlines() or ["?"])[-1]
        if not (BIN / "celery").exists():
            return "celery is not installed in the venv"
        from bench.cluster import services_up

        return services_up(REDIS_DB)

    def plan(self) -> list[str]:
        wanted = [r for r in RUNS if r in self.args.only]
        if "scrapy" in wanted and not _has("scrapy"):
            self.notes.append("scrapy: skipped (not installed; pip install -e '.[bench]')")
            wanted.remove("scrapy")
        if "distributed" in wanted:
            why = self.distributed_ready()
            if why:
                self.notes.append(f"distributed: skipped ({why})")
                wanted.remove("distributed")
        return wanted

    def run_rounds(self, names: list[str]) -> None:
        for round_ in range(1, self.args.rounds + 1):
            shift = (round_ - 1) % max(1, len(names))
            order = names[shift:] + names[:shift]  # interleaved: a different order every round
            print(f"round {round_}/{self.args.rounds}: {', '.join(order)}  (load {_load()})", flush=True)
            for name in order:
                self.run_one(name, round_)

    def run_one(self, name: str, round_: int) -> RunResult:
        if name == "limit":
            return self.run_limit(round_, "trafilatura")
        if name == "pipeline":
            return self.run_limit(round_, "pipeline")
        if name == "embedded":
            return self.run_embedded(round_)
        if name == "noplans":
            return self.run_embedded(round_, label="noplans", plans=False)
        if name == "archive":
            return self.run_embedded(round_, label="archive", archive=True)
        if name == "scrapy":
            return self.run_scrapy(round_)
        return self.run_distributed(round_)


def document_quality(database_url: str, server: BenchServer) -> dict[str, float]:
    """The stored documents against the bench web's ground truth, scored as ``make eval``
    scores the corpus: mean character F1, and the share of documents with a leaked
    boilerplate marker."""
    from urllib.parse import urlsplit

    from crawler.evaluate import score_case
    from crawler.samplesite import build_site
    from storage import open_store

    web = build_site(int(server.info["scale"]), crawl_delay=0.0)
    site_of = {netloc: site for site, netloc in server.info["netlocs"].items()}
    f1s: list[float] = []
    leaks = unmatched = 0
    with open_store(database_url) as store:
        for doc in store.iter_documents():
            parts = urlsplit(doc.url)
            key = (site_of.get(parts.netloc, ""), parts.path + (f"?{parts.query}" if parts.query else ""))
            page = web.articles.get(key)
            if page is None:
                unmatched += 1
                continue
            expected = page.expected_text
            score = score_case(doc.url, "bench", doc.text, expected)
            f1s.append(score.f1)
            leaks += bool(score.leaks)
    return {
        "documents": len(f1s),
        "unmatched": unmatched,
        "char_f1": statistics.fmean(f1s) if f1s else 0.0,
        "leak_share": leaks / len(f1s) if f1s else 0.0,
    }


def plan_counts(database_url: str) -> dict[str, int]:
    """The extraction plans' page counts in a crawled store, summed over templates."""
    from storage import open_store

    totals = dict.fromkeys(("served", "verified", "mismatches", "misses"), 0)
    with open_store(database_url) as store:
        for _source, _host, plan in store.iter_plans():
            for name in totals:
                totals[name] += int((plan.get("counts") or {}).get(name, 0))
        totals["plans"] = sum(1 for _ in store.iter_plans())
    return totals


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _own_cpu() -> float:
    """CPU of this harness process (the sampler thread included)."""
    times = os.times()
    return times.user + times.system


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# -- summary --------------------------------------------------------------------------------------


def _peak_by_role(processes: list[dict[str, Any]]) -> dict[str, float]:
    """The largest peak RSS of each role's processes (two pool workers are one role)."""
    peaks: dict[str, float] = {}
    for process in processes:
        role = process["role"]
        peaks[role] = max(peaks.get(role, 0.0), process["peak_rss_mb"])
    return peaks


def medians(results: list[RunResult]) -> dict[str, dict[str, Any]]:
    """Per run name: medians over the successful rounds."""
    out: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(r.name for r in results):
        ok = [r for r in results if r.name == name and r.ok]
        if not ok:
            out[name] = {"ok": False, "errors": [r.error for r in results if r.name == name]}
            continue
        docs = [r.documents for r in ok if r.documents is not None]
        by_role = _peak_by_role([p for r in ok for p in r.processes])
        out[name] = {
            "ok": True,
            "rounds": len(ok),
            "pages": statistics.median(r.pages for r in ok),
            "articles": statistics.median(r.articles for r in ok),
            "documents": statistics.median(docs) if len(docs) == len(ok) else None,
            "elapsed": statistics.median(r.elapsed for r in ok),
            "pages_per_s": statistics.median(r.pages_per_s for r in ok),
            "articles_per_s": statistics.median(r.articles_per_s for r in ok),
            "cpu_per_page": statistics.median(r.cpu_per_page for r in ok),
            "services_cpu_per_page": statistics.median(
                r.services_cpu / r.pages if r.pages else 0 for r in ok
            ),
            "peak_mb": max(r.peak_mb for r in ok),
            "peak_mb_by_role": {k: round(v, 1) for k, v in sorted(by_role.items())},
            "server_share": statistics.median(r.server_share for r in ok),
            "foreign_share": statistics.median(r.foreign_share for r in ok),
            "server_cpu_fraction": statistics.median(
                r.server_cpu / (r.server_cpu + r.cpu + r.services_cpu) if r.cpu else 0 for r in ok
            ),
            "rates": [round(r.articles_per_s, 2) for r in ok],
        }
        planned = [r for r in ok if "plans" in r.extra]
        if planned:
            # The fast-path share: the article pages the plans served unchecked (median round).
            shares = [r.extra["plans"]["served"] / r.articles for r in planned if r.articles]
            out[name]["fast_path_share"] = statistics.median(shares) if shares else None
            out[name]["plan_mismatches"] = max(r.extra["plans"]["mismatches"] for r in planned)
        scored = [r.extra["quality"] for r in ok if "quality" in r.extra]
        if scored:
            out[name]["char_f1"] = statistics.median(q["char_f1"] for q in scored)
            out[name]["leak_share"] = statistics.median(q["leak_share"] for q in scored)
            out[name]["scored_documents"] = statistics.median(q["documents"] for q in scored)
        calls = [r.extra["call_cpu_ms"] for r in ok if "call_cpu_ms" in r.extra]
        if calls:
            out[name]["call_cpu_ms"] = statistics.median(calls)
        staged = [r.extra["fast_path_ms"] for r in ok if r.extra.get("fast_path_ms", {}).get("pages")]
        if staged:
            # process_page on the bench web with the plans a crawl has, and its stages on a
            # fast-path page (median round per stage)
            out[name]["fast_path_ms"] = {
                key: statistics.median(s[key] for s in staged) for key in staged[0] if key != "pages"
            }
            events = [r.extra["plan_events"] for r in ok]
            out[name]["pipeline_served_share"] = statistics.median(
                e.get("served", 0) / max(1, sum(e.values())) for e in events
            )
        archived = [r.extra["archive_bytes"] / r.pages for r in ok if r.pages and "archive_bytes" in r.extra]
        if archived:
            out[name]["archive_bytes_per_page"] = statistics.median(archived)
    return out


def ratio(summary: dict[str, dict[str, Any]], a: str, b: str, key: str = "articles_per_s") -> float | None:
    if summary.get(a, {}).get("ok") and summary.get(b, {}).get("ok") and summary[b][key]:
        return float(summary[a][key] / summary[b][key])
    return None


def targets(summary: dict[str, dict[str, Any]], scale_check: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Issue 7's targets; each PASS, FAIL or n/a (a run it needs did not happen)."""
    checks: list[dict[str, Any]] = []

    def add(name: str, value: float | None, goal: float, *, at_most: bool = False, unit: str = "x") -> None:
        if value is None:
            verdict = "n/a"
        else:
            verdict = "PASS" if (value <= goal if at_most else value >= goal) else "FAIL"
        checks.append({"target": name, "value": value, "goal": goal, "unit": unit, "verdict": verdict})

    add("embedded >= 3x Scrapy", ratio(summary, "embedded", "scrapy"), 3.0)
    add("embedded >= 0.6x two-core extraction limit", ratio(summary, "embedded", "limit"), 0.6)
    add("distributed >= 2x Scrapy", ratio(summary, "distributed", "scrapy"), 2.0)
    pipeline = summary.get("pipeline", {})
    per_page = pipeline.get("call_cpu_ms") if pipeline.get("ok") else None
    add("process_page <= 3 ms CPU per page (pipeline, plans)", per_page, 3.0, at_most=True, unit="ms")
    fast = pipeline.get("fast_path_ms", {}).get("extraction") if pipeline.get("ok") else None
    add("extraction <= 1 ms CPU on a fast-path page", fast, 1.0, at_most=True, unit="ms")
    embedded = summary.get("embedded", {})
    share = embedded.get("fast_path_share") if embedded.get("ok") else None
    add("fast-path share >= 90% of the article pages (embedded)", share, 0.9, unit="share")
    ours = [summary[n]["peak_mb"] for n in ("embedded", "distributed") if summary.get(n, {}).get("ok")]
    add("peak memory <= 300 MB per process", max(ours) if ours else None, 300.0, at_most=True, unit="MB")
    growth = scale_check.get("growth") if scale_check else None
    add(
        "peak memory at 20,000 within 10% of 2,000 (worst process)",
        growth,
        0.10,
        at_most=True,
        unit="fraction",
    )
    return checks


def print_report(
    summary: dict[str, dict[str, Any]], checks: list[dict[str, Any]], meta: dict[str, Any]
) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    table = Table(
        title=f"bench: {meta['articles']} article pages (~{meta['article_bytes']['median'] / 1000:.0f} kB), "
        f"{meta['rounds']} rounds, medians; load {meta['load_before']} -> {meta['load_after']}",
        title_justify="left",
    )
    for column in (
        "run",
        "pages/s",
        "articles/s",
        "CPU ms/page",
        "peak MB/proc",
        "vs Scrapy",
        "vs limit",
        "server % core",
        "others (cores)",
        "docs",
        "articles",
    ):
        table.add_column(column, justify="left" if column == "run" else "right")
    for name in RUNS:
        s = summary.get(name)
        if s is None:
            continue
        if not s["ok"]:
            table.add_row(name, "failed", *[""] * 9)
            continue
        vs_scrapy = ratio(summary, name, "scrapy")
        vs_limit = ratio(summary, name, "limit")
        cpu = f"{1000 * s['cpu_per_page']:.1f}"
        if s["services_cpu_per_page"]:
            cpu += f" (+{1000 * s['services_cpu_per_page']:.1f} db)"
        table.add_row(
            name,
            f"{s['pages_per_s']:.1f}",
            f"{s['articles_per_s']:.1f}",
            cpu,
            f"{s['peak_mb']:.0f}",
            f"{vs_scrapy:.2f}x" if vs_scrapy and name != "scrapy" else "",
            f"{vs_limit:.2f}x" if vs_limit and name != "limit" else "",
            f"{100 * s['server_share']:.0f}%" if name not in ("limit", "pipeline") else "",
            f"{s['foreign_share']:.2f}",
            "" if s["documents"] is None else f"{s['documents']:.0f}",
            f"{s['articles']:.0f}",
        )
    console.print(table)
    roles = Table(title="peak RSS per process (MB, max over rounds)", title_justify="left")
    roles.add_column("run")
    roles.add_column("processes")
    for name, s in summary.items():
        if s.get("ok"):
            roles.add_row(name, ", ".join(f"{k} {v:.0f}" for k, v in s["peak_mb_by_role"].items()))
    console.print(roles)
    for check in checks:
        value = check["value"]
        shown = "-" if value is None else f"{value:.2f} {check['unit']}"
        style = {"PASS": "green", "FAIL": "red"}.get(check["verdict"], "yellow")
        console.print(f"[{style}]{check['verdict']:>4}[/{style}]  {check['target']}: {shown}")
    for name in ("embedded", "distributed"):
        s = summary.get(name, {})
        if s.get("ok") and s.get("fast_path_share") is not None:
            console.print(
                f"{name}: extraction plans served {s['fast_path_share']:.1%} of the article pages "
                f"without trafilatura; {s['plan_mismatches']} mismatch(es) caught by checks"
            )
    pipeline = summary.get("pipeline", {})
    if pipeline.get("ok") and pipeline.get("fast_path_ms"):
        stages = pipeline["fast_path_ms"]
        console.print(
            f"pipeline: process_page {pipeline['call_cpu_ms']:.2f} ms CPU per page (trafilatura.extract "
            f"{summary.get('limit', {}).get('call_cpu_ms', float('nan')):.2f}); plans served "
            f"{pipeline['pipeline_served_share']:.1%} of the pages; on a fast-path "
            f"page (CPU ms, one by one): process_page {stages['process_page']:.2f} = decode "
            f"{stages['decode']:.2f} + lexbor parse {stages.get('parse', 0.0):.2f} (shared by the links "
            f"and the fast path) + links {stages['links']:.2f} + extraction {stages['extraction']:.2f} "
            f"+ fingerprint {stages['fingerprint']:.2f} (+ the rest); read from lexbor's tree: "
            f"{stages.get('lexbor_share') or 0.0:.0%} of them"
        )
    for name in ("embedded", "noplans", "distributed"):
        s = summary.get(name, {})
        if s.get("ok") and s.get("char_f1") is not None:
            console.print(
                f"{name}: stored documents vs the ground truth: char F1 {s['char_f1']:.4f}, "
                f"leaks in {s['leak_share']:.1%} of {s['scored_documents']:.0f} documents"
            )
    archive, embedded = summary.get("archive", {}), summary.get("embedded", {})
    if archive.get("ok") and embedded.get("ok"):
        cost = archive["cpu_per_page"] - embedded["cpu_per_page"]
        console.print(
            f"raw archive (WARC): {archive.get('archive_bytes_per_page', 0) / 1000:.1f} kB per page; "
            f"{1000 * cost:+.2f} ms CPU per page, {archive['articles_per_s']:.1f} vs "
            f"{embedded['articles_per_s']:.1f} articles/s without it"
        )
    for note in meta["notes"]:
        console.print(f"note: {note}")
    noisy = [n for n, s in summary.items() if s.get("ok") and s["foreign_share"] > QUIET_CORES]
    if noisy:
        console.print(
            f"[yellow]warning:[/yellow] other processes used more than {QUIET_CORES:g} cores during "
            f"{', '.join(noisy)} (median): not a quiet machine, rates are understated"
        )


# -- profile --------------------------------------------------------------------------------------


def summarize_profile(raw: Path, top: int = 15) -> dict[str, Any]:
    """Self and inclusive sample shares per process role from py-spy's raw (collapsed) output."""
    per_process: dict[str, dict[str, Any]] = {}
    if not raw.exists():
        return {}
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        role = "main"
        while stack.startswith("process "):
            # 'process PID:"command line";' per level of the process tree (--subprocesses); a
            # command line may hold ';'. The innermost process names the role.
            end = stack.find('";', stack.find('"') + 1)
            if end < 0:
                break
            root, stack = stack[: end + 1], stack[end + 2 :]
            role = "pool workers" if "forkserver" in root else "main"
        frames = stack.split(";") if stack else []
        entry = per_process.setdefault(role, {"samples": 0, "self": {}, "inclusive": {}})
        entry["samples"] += count
        if frames:
            leaf = _frame(frames[-1])
            entry["self"][leaf] = entry["self"].get(leaf, 0) + count
        for name in {_frame(f) for f in frames}:
            entry["inclusive"][name] = entry["inclusive"].get(name, 0) + count
    out: dict[str, Any] = {}
    for role, entry in per_process.items():
        total = entry["samples"] or 1
        out[role] = {
            "samples": entry["samples"],
            "self": [
                (k, round(v / total, 3))
                for k, v in sorted(entry["self"].items(), key=lambda kv: -kv[1])[:top]
            ],
            "inclusive": [
                (k, round(v / total, 3))
                for k, v in sorted(entry["inclusive"].items(), key=lambda kv: -kv[1])[:top]
            ],
        }
    return out


def _frame(frame: str) -> str:
    """``func (path/to/module.py:123)`` -> ``func (module.py)``: lines merged, paths shortened."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = path.split("/")
    short = "/".join(parts[-2:]) if "site-packages" not in path else parts[parts.index("site-packages") + 1]
    return f"{name} ({short})"


# -- main -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=2000, help="article pages in the web (default 2000)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", default="bench-results/bench.json", help="where to write the results")
    parser.add_argument("--only", default=",".join(RUNS), help=f"comma-separated subset of {','.join(RUNS)}")
    parser.add_argument("--concurrency", type=int, default=32, help="embedded crawl: requests in flight")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="extraction processes")
    parser.add_argument(
        "--worker-concurrency",
        type=int,
        default=1,
        help="distributed crawl: prefork processes per celery worker (-c)",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds any one run may take")
    parser.add_argument("--profile", action="store_true", help="one more embedded run under py-spy")
    parser.add_argument(
        "--scale-check",
        action="store_true",
        help="embedded crawl at 2,000 and 20,000 pages: peak memory growth",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, stores)")
    args = parser.parse_args(argv)
    args.only = [x.strip() for x in args.only.split(",") if x.strip()]
    unknown = set(args.only) - set(RUNS)
    if unknown:
        parser.error(f"unknown runs: {', '.join(sorted(unknown))}")
    return args


def scale_check(bench: Bench) -> dict[str, Any]:
    """Embedded crawl at 2,000 and 20,000 article pages; peak RSS of each process compared."""
    out: dict[str, Any] = {}
    for pages in (2000, 20000):
        if bench.server is not None:
            bench.server.stop()
        server = bench.start(scale_for(pages), dump=False)  # no limit runs here
        print(f"scale check: {server.info['articles']} article pages (load {_load()})", flush=True)
        # The 20,000-page crawl takes ~10x as long: its time limit is scaled (not the 2,000 one's).
        saved = bench.args.timeout
        bench.args.timeout = saved * (1.5 if pages > 2000 else 1)
        try:
            result = bench.run_embedded(0, label=f"embedded-{pages}")
        finally:
            bench.args.timeout = saved
        out[str(pages)] = {
            "ok": result.ok,
            "error": result.error,
            "articles": server.info["articles"],
            "pages_per_s": round(result.pages_per_s, 2),
            "peak_mb": round(result.peak_mb, 1),
            "peak_mb_by_role": _peak_by_role(result.processes),
        }
    small, large = out["2000"], out["20000"]
    if small["ok"] and large["ok"] and small["peak_mb"]:
        # Per process: the largest process (an extraction worker) would hide the growth of the
        # crawl's main process, which holds the URL state and the writer's backlog.
        growth = {
            role: round(large["peak_mb_by_role"][role] / peak - 1, 3)
            for role, peak in small["peak_mb_by_role"].items()
            if peak and role in large["peak_mb_by_role"]
        }
        out["growth_by_role"] = growth
        out["growth"] = max(growth.values()) if growth else None
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="policy-bench-"))
    bench = Bench(args, workdir)
    load_before = _load()
    started = time.monotonic()
    report: dict[str, Any] = {}
    try:
        names = bench.plan()
        server = bench.start(scale_for(args.pages), dump=bool({"limit", "pipeline"} & set(names)))
        info = server.info
        print(
            f"bench web: {info['articles']} article pages ({info['reachable_articles']} reachable), "
            f"{info['routes']} routes, article pages median {info['article_bytes']['median'] / 1000:.1f} kB; "
            f"server pid {server.pid}, rendered in {info['render_seconds']} s; work dir {workdir}",
            flush=True,
        )
        for note in bench.notes:
            print(f"note: {note}", flush=True)
        bench.run_rounds(names)
        profile: dict[str, Any] = {}
        if args.profile and "embedded" in names:
            if shutil.which("py-spy", path=str(BIN)) or (BIN / "py-spy").exists():
                raw = workdir / "embedded-profile.txt"
                prof_run = bench.run_embedded(0, label="embedded-profiled", profile=raw)
                profile = {"run": prof_run.to_json(), "roles": summarize_profile(raw)}
                bench.results.remove(prof_run)  # sampling slows it: not one of the measured rounds
            else:
                bench.notes.append("profile: py-spy is not installed (pip install -e '.[bench]')")
        server_rss = server.rss_mb()
        checked = scale_check(bench) if args.scale_check else None
        summary = medians(bench.results)
        checks = targets(summary, checked)
        meta = {
            "pages_requested": args.pages,
            "scale": scale_for(args.pages),
            "articles": info["articles"],
            "reachable_articles": info["reachable_articles"],
            "routes": info["routes"],
            "article_bytes": info["article_bytes"],
            "rounds": args.rounds,
            "concurrency": args.concurrency,
            "workers": args.workers,
            "per_host_concurrency": PER_HOST_CONCURRENCY,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_before": load_before,
            "load_after": _load(),
            "elapsed": round(time.monotonic() - started, 1),
            "server_rss_mb": round(server_rss, 1),
            "notes": bench.notes,
            "definitions": {
                "pages_per_s": "HTML 200 responses served by the bench server per wall second of the run",
                "articles_per_s": "distinct article pages served (crawls) or extracted (limits) per second; "
                "ratios use this",
                "cpu_per_page": "user+system CPU of the run's process tree / pages (db: Redis+PostgreSQL)",
                "server_share": "bench server CPU seconds / run wall seconds (share of one core)",
                "foreign_share": "CPU used by other processes on the machine during the run, in cores",
            },
        }
        report = {
            "meta": meta,
            "summary": summary,
            "targets": checks,
            "scale_check": checked,
            "profile": profile,
            "runs": [r.to_json() for r in bench.results],
        }
        print_report(summary, checks, meta)
        if checked:
            print_scale(checked)
        if profile.get("roles"):
            print_profile(profile["roles"])
    finally:
        if bench.server is not None:
            bench.server.stop()
        if report:
            out = Path(args.json)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
            print(f"results: {out}")
        if args.keep:
            print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if report else 1


def print_scale(checked: dict[str, Any]) -> None:
    """Peak RSS of each process of the embedded crawl at 2,000 and 20,000 article pages."""
    small, large = checked["2000"], checked["20000"]
    print(f"scale check: peak RSS per process, {small['articles']} vs {large['articles']} article pages")
    for role, peak in small["peak_mb_by_role"].items():
        later = large["peak_mb_by_role"].get(role)
        growth = checked.get("growth_by_role", {}).get(role)
        change = f"{growth:+.1%}" if growth is not None else "-"
        print(f"  {role:<18} {peak:7.1f} MB -> {later if later is not None else '-':>7} MB  {change}")


def print_profile(roles: dict[str, Any]) -> None:
    for role, entry in roles.items():
        print(f"profile, {role} ({entry['samples']} samples): top self time")
        for name, share in entry["self"][:10]:
            print(f"  {100 * share:5.1f}%  {name}")
        print(f"profile, {role}: top inclusive time")
        for name, share in entry["inclusive"][:12]:
            print(f"  {100 * share:5.1f}%  {name}")


if __name__ == "__main__":
    sys.exit(main())
