"""The embedded crawl loses nothing when it is stopped: Ctrl-C (SIGINT to the process group),
``kill`` (SIGTERM to the crawl) and ``kill -9`` (SIGKILL to the group), each at three points of
a crawl of the sample web, then the same command again.

Against an uninterrupted crawl of the same web, the final store must hold the same stories with
the same copies and every URL in the same outcome; no URL may be fetched more than twice over
both runs (the pages in flight when the crawl stopped, and the start URLs, which every crawl
visits, conditionally); nothing may be left queued. SIGINT and SIGTERM must end the crawl within
a few seconds, with the status a shell expects and a word on how to resume.
"""

from __future__ import annotations

import collections
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from crawler.crawl import STOP_GRACE
from crawler.records import UrlStatus
from crawler.samplesite import RunningSite, build_site, serve_site
from storage import open_store
from tests.cluster import CRAWLER, REPO, read_stories, write_seeds

pytestmark = pytest.mark.slow

#: Share of the uninterrupted crawl's stored pages at which the crawl is stopped.
POINTS = (0.15, 0.45, 0.75)
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)
SOURCE = "sample-site"


@dataclass
class Crawl:
    stories: set[frozenset[str]]
    outcomes: dict[str, UrlStatus]
    waiting: list[str]
    #: Each story's document (its URL and key) and each copy (its URL and the story it copies):
    #: the best copy is the document whatever the order of arrival, so these compare exactly.
    documents: set[tuple[str, str]]
    copies: dict[str, str | None]


@dataclass(frozen=True)
class Setup:
    site: RunningSite
    env: dict[str, str]
    work: Path

    def command(self, db: Path) -> list[str]:
        return [CRAWLER, "crawl", SOURCE, "--delay", "0.05", "--db", f"sqlite:///{db}"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    work = tmp_path_factory.mktemp("interrupt")
    with serve_site(build_site(scale=3, crawl_delay=None)) as site:
        seeds = write_seeds(work / "seeds", site.source(schedule=None))
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWLER_")}
        env.update(
            CRAWLER_SEEDS_DIR=str(seeds),
            CRAWLER_ALLOWED_NETWORKS="127.0.0.0/8",
            CRAWLER_USER_AGENT="policy-crawler-test/1",
            CRAWLER_EXTRACT_WORKERS="2",
        )
        yield Setup(site, env, work)


def _outcome(status: UrlStatus) -> UrlStatus:
    """A start page read again by the resuming run answers 304: it holds the page it held."""
    return UrlStatus.FETCHED if status is UrlStatus.NOT_MODIFIED else status


def read_crawl(db: Path) -> Crawl:
    with open_store(f"sqlite:///{db}") as store:
        states = list(store.iter_urls())
        return Crawl(
            stories=read_stories(store),
            outcomes={s.url: _outcome(s.status) for s in states},
            waiting=[s.url for s in states if s.status in (UrlStatus.QUEUED, UrlStatus.FAILED_TRANSIENT)],
            documents={(d.url, d.content_hash) for d in store.iter_documents()},
            copies={c.url: c.duplicate_of for c, _ in store.iter_copies()},
        )


def stored_pages(db: Path) -> int:
    """Documents and copies stored so far (read while the crawl writes: WAL allows it)."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return int(
                conn.execute(
                    "SELECT (SELECT count(*) FROM documents) + (SELECT count(*) FROM copies)"
                ).fetchone()[0]
            )
    except sqlite3.OperationalError:
        return 0  # the schema is not there yet


@pytest.fixture(scope="module")
def baseline(setup: Setup) -> Crawl:
    db = setup.work / "baseline.sqlite3"
    done = subprocess.run(
        setup.command(db), cwd=REPO, env=setup.env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    crawl = read_crawl(db)
    assert not crawl.waiting and len(crawl.copies) > 5 and len(crawl.stories) > 40
    return crawl


FIGURES: list[dict[str, Any]] = []


@pytest.mark.parametrize("point", POINTS, ids=lambda p: f"at{int(p * 100)}pct")
@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_a_stopped_crawl_resumes_and_loses_nothing(
    setup: Setup, baseline: Crawl, signum: signal.Signals, point: float
) -> None:
    stop_and_resume(setup, baseline, signum, point)


@pytest.mark.parametrize("signum", (signal.SIGINT, signal.SIGKILL), ids=lambda s: signal.Signals(s).name)
def test_a_crawl_that_keeps_few_visits_in_memory_resumes_and_loses_nothing(
    setup: Setup, baseline: Crawl, signum: signal.Signals
) -> None:
    """Most of the frontier waits in the crawl's spill file, which a stop drops: the store's
    queued records alone must carry the crawl over (crawler.frontier)."""
    stop_and_resume(setup, baseline, signum, 0.45, frontier_in_memory=8)


def stop_and_resume(
    setup: Setup,
    baseline: Crawl,
    signum: signal.Signals,
    point: float,
    *,
    frontier_in_memory: int | None = None,
) -> None:
    """Stop the crawl with ``signum`` once ``point`` of the baseline's pages are stored, run the
    same command again, and compare the outcome with the baseline's."""
    env = dict(setup.env)
    if frontier_in_memory is not None:
        env["CRAWLER_FRONTIER_IN_MEMORY"] = str(frontier_in_memory)
    db = setup.work / f"{signum.name}-{point}-{frontier_in_memory}.sqlite3"
    total = sum(len(story) for story in baseline.stories)
    setup.site.request_log.clear()
    proc = subprocess.Popen(
        setup.command(db),
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a process group, as a terminal gives a command
    )
    try:
        deadline = time.monotonic() + 120
        while stored_pages(db) < point * total:
            assert proc.poll() is None, f"the crawl ended before the point: {proc.communicate()[1][-2000:]}"
            assert time.monotonic() < deadline, "the crawl did not reach the point"
            time.sleep(0.01)
        at_stop = stored_pages(db)
        stopped = time.monotonic()
        if signum == signal.SIGTERM:
            proc.send_signal(signum)  # `kill PID`, `docker stop`: the crawl's process only
        else:
            os.killpg(proc.pid, signum)  # Ctrl-C, `kill -9` of the command: the whole group
        _, stderr = proc.communicate(timeout=STOP_GRACE + 30)
        took = time.monotonic() - stopped
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if signum != signal.SIGKILL:
        assert proc.returncode == 128 + signum, stderr[-2000:]
        assert "run the same command again" in stderr
        assert took < STOP_GRACE + 5, f"{signum.name}: the crawl took {took:.1f} s to stop"
    left = read_crawl(db)
    assert left.waiting, "stopped too late to mean anything: nothing was left to do"

    resumed = subprocess.run(
        setup.command(db), cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final = read_crawl(db)
    assert not final.waiting, final.waiting[:10]
    assert final.stories == baseline.stories
    assert final.documents == baseline.documents
    assert final.copies == baseline.copies
    assert final.outcomes == baseline.outcomes
    requests = collections.Counter(
        (r.netloc, r.path) for r in setup.site.request_log.snapshot() if r.path != "/robots.txt"
    )
    assert max(requests.values()) <= 2, [k for k, n in requests.items() if n > 2]
    FIGURES.append(
        {
            "signal": signum.name
            if frontier_in_memory is None
            else f"{signum.name}, {frontier_in_memory} in memory",
            "point": point,
            "stored_at_stop": at_stop,
            "of": total,
            "left_queued": len(left.waiting),
            "stop_s": round(took, 2),
            "fetched_twice": sum(1 for n in requests.values() if n == 2),
        }
    )


def test_interrupt_figures(capsys: pytest.CaptureFixture[str]) -> None:
    """The figures for the closing note (runs last in this module)."""
    if not FIGURES:
        pytest.skip("no interrupt ran")
    with capsys.disabled():
        print("\n| signal | point | stored at stop | left queued | time to stop (s) | fetched twice |")
        print("|---|---|---|---|---|---|")
        for f in FIGURES:
            print(
                f"| {f['signal']} | {f['point']:.0%} | {f['stored_at_stop']}/{f['of']} | "
                f"{f['left_queued']} | {f['stop_s']} | {f['fetched_twice']} |"
            )
