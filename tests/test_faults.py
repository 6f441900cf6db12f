"""Fault injection with real processes (issue #5): the distributed crawl of the bundled sample web
survives a worker killed mid-task, a Redis restart that loses every message, and a PostgreSQL
outage, and ends with the same store as a crawl without faults.

Every test runs two ``celery worker`` processes (prefork, one child each) on a private
``redis-server`` (started here on a free port, no persistence), drives the crawl with the
``crawler enqueue``/``crawler wait`` CLI, injects its fault once a share of the reachable articles
is stored (polled in the database; a per-host delay stretches the crawl), and audits the final
database against a fault-free embedded crawl of the same web:

* every reachable article stored exactly once, as a document or as a recorded copy of its story,
  and the stories grouped as in the fault-free crawl;
* no content_hash twice, no URL stored twice (two documents, or a document and a copy);
* the crawl met the same URLs, each with the same final status, none left queued or failed
  transiently, every failure with a reason.

The figures (faults, URLs, documents, losses, duplicates) go to ``figures.json`` in the test's
tmp dir, to stdout (``-s``) and, with ``$CRAWLER_FAULT_FIGURES`` set, to ``/work/fault-figures.json``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from crawler.samplesite import RunningSite, build_site, serve_site
from crawler.sources import Source
from storage import UrlStatus, open_store
from tests.cluster import ClusterProcess, free_port, read_stories, wait_for, write_seeds
from tests.crawling import local_settings
from tests.faults import (
    VISIBILITY_ENV,
    FaultCluster,
    Figures,
    PrivatePostgres,
    PrivateRedis,
    Trap,
    children,
    max_countdown_logged,
    refetched,
    stored_articles,
)
from tests.pg import temporary_schema

pytestmark = [pytest.mark.services, pytest.mark.slow]

#: Seconds between requests to one host: stretches the crawl to ~20 s so faults land mid-crawl.
DELAY = 0.5
#: Share of the reachable articles stored when the (first) fault is injected.
FIRST_FAULT_AT = 0.3
#: Scenario 1: the broker's visibility timeout for the workers (seconds; see tests/faults.py).
VISIBILITY_TIMEOUT = 20.0
#: Scenario 3: how long PostgreSQL stays down.
PG_DOWN_SECONDS = 10.0
WAIT_TIMEOUT = 75

Key = tuple[str, str]  # (site name, path?query): a URL of the sample web whatever its port


@dataclass
class Baseline:
    """The fault-free crawl (embedded, SQLite) of the same web: URL states and stories by key."""

    states: dict[Key, UrlStatus]
    stories: set[frozenset[Key]]


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site() -> Iterator[RunningSite]:
    with serve_site(build_site()) as running:
        yield running


@pytest.fixture(scope="module")
def source(site: RunningSite) -> Source:
    return site.source(per_host_delay=DELAY, schedule=None)


@pytest.fixture(scope="module")
def baseline(site: RunningSite, tmp_path_factory: pytest.TempPathFactory) -> Baseline:
    from crawler.crawl import EmbeddedCrawl
    quick = site.source(per_host_delay=0.0, schedule=None)
    options = local_settings().crawl_options(extract_workers=2)
    db = tmp_path_factory.mktemp("baseline") / "store.sqlite3"
    with open_store(f"sqlite:///{db}") as store:
        asyncio.run(EmbeddedCrawl([quick], store, options).run())
        states = {site.key_of(s.url): s.status for s in store.iter_urls()}
        stories = {frozenset(site.key_of(u) for u in group) for group in read_stories(store)}
    site.request_log.clear()
    assert stories and states
    return Baseline(states, stories)


@pytest.fixture
def trap(site: RunningSite) -> Iterator[Trap]:
    installed = Trap(site.web, hold=3.0)
    try:
        yield installed
    finally:
        installed.remove()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "redis", free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


# -- helpers --------------------------------------------------------------------------------------


def make_cluster(root: Path, source: Source, database: str, redis_url: str, **extra: str) -> FaultCluster:
    env = dict(os.environ)
    env.update(
        CRAWLER_DATABASE_URL=database,
        CRAWLER_REDIS_URL=redis_url,
        CRAWLER_ALLOWED_NETWORKS="127.0.0.0/8",
        CRAWLER_SEEDS_DIR=str(write_seeds(root / "seeds", source)),
        CRAWLER_RETRY_BASE_DELAY="0.2",
        **extra,
    )
    return FaultCluster(env, root)


def start_workers(cluster: FaultCluster, *names: str) -> list[ClusterProcess]:
    workers = [cluster.worker(name) for name in names]
    for worker in workers:
        worker.wait_for_log("ready.", timeout=60)
    return workers


def start_crawl(
    cluster: FaultCluster, site: RunningSite, source: Source, database: str
) -> tuple[list[ClusterProcess], float, int]:
    """Two workers, then a run of the source; returns (workers, start time, articles stored)
    once FIRST_FAULT_AT of the reachable articles are stored: the moment to inject a fault."""
    workers = start_workers(cluster, "w1", "w2")
    site.request_log.clear()
    began = time.monotonic()
    enqueue(cluster, source)
    return workers, began, wait_stored(database, site, FIRST_FAULT_AT)


def enqueue(cluster: FaultCluster, source: Source) -> None:
    out = cluster.crawler("enqueue", "--source", source.id, timeout=60)
    assert out.returncode == 0, out.stderr + cluster.logs()


def wait_idle(cluster: FaultCluster) -> None:
    waited = cluster.crawler(
        "wait", "--timeout", str(WAIT_TIMEOUT), "--interval", "0.2", timeout=WAIT_TIMEOUT + 30
    )
    assert waited.returncode == 0, waited.stdout + waited.stderr + cluster.logs()


def wait_stored(database: str, site: RunningSite, share: float, *, timeout: float = 60) -> int:
    """Block until ``share`` of the reachable articles is stored; returns how many are."""
    reachable = site.reachable_urls()
    wanted = max(1, int(share * len(reachable)))

    def enough() -> int:
        with open_store(database) as store:
            count = stored_articles(store, reachable)
        return count if count >= wanted else 0

    return int(wait_for(enough, timeout=timeout, interval=0.1, what=f"{wanted} stored articles"))


def audit(
    scenario: str,
    database: str,
    site: RunningSite,
    baseline: Baseline,
    *,
    faults: list[str],
    stored_at_first_fault: int,
    elapsed: float,
) -> Figures:
    """Compare the final store with the fault-free crawl and count losses and duplicates."""
    reachable = site.reachable_urls()
    with open_store(database) as store:
        documents = list(store.iter_documents())
        copies = [copy for copy, _ in store.iter_copies()]
        states = {s.url: s for s in store.iter_urls()}
        stories = read_stories(store)
    doc_urls = collections.Counter(d.url for d in documents)
    copy_urls = collections.Counter(c.url for c in copies)
    hashes = collections.Counter(d.content_hash for d in documents)
    stored = doc_urls + copy_urls  # a URL stored twice counts 2

    duplicated = sorted(
        {f"url stored {n} times: {u}" for u, n in stored.items() if n > 1}
        | {f"content_hash stored {n} times: {h}" for h, n in hashes.items() if n > 1}
    )
    lost = sorted(f"article not stored: {u}" for u in reachable if u not in stored)
    by_key = {site.key_of(u): s for u, s in states.items()}
    lost += sorted(f"URL never recorded: {site.url(*k)}" for k in baseline.states if k not in by_key)
    not_final = {
        u: f"{s.status.value} ({s.error_reason})"
        for u, s in states.items()
        if s.status in (UrlStatus.QUEUED, UrlStatus.FAILED_TRANSIENT)
        or (s.status in (UrlStatus.FAILED_PERMANENT, UrlStatus.DISALLOWED) and not s.error_reason)
    }
    lost += sorted(f"URL not final: {u} {why}" for u, why in not_final.items())
    figures = Figures(
        scenario=scenario,
        faults_injected=len(faults),
        faults=faults,
        urls_in_crawl=len(states),
        urls_in_fault_free_crawl=len(baseline.states),
        reachable_articles=len(reachable),
        articles_stored_once=sum(1 for u in reachable if stored.get(u) == 1),
        documents=len(documents),
        copies=len(copies),
        stored_at_first_fault=stored_at_first_fault,
        urls_lost=len(lost),
        duplicates=len(duplicated),
        refetched_urls=refetched(site.request_log.snapshot()),
        page_requests=sum(1 for r in site.request_log.snapshot() if r.path != "/robots.txt"),
        elapsed_s=round(elapsed, 2),
        lost=lost,
        duplicated=duplicated,
        not_final=not_final,
    )
    # The comparisons with the fault-free crawl, beyond the counts.
    figures.mismatches = {
        # Every URL's outcome, which copy of a story is its document (fetched) and which are
        # copies (duplicate) included; the story grouping is compared below.
        "status": sorted(
            f"{site.url(*k)}: {s.status.value} (fault-free: {baseline.states[k].value})"
            for k, s in by_key.items()
            if k in baseline.states and _outcome(s.status) != _outcome(baseline.states[k])
        ),
        "extra_urls": sorted(site.url(*k) for k in by_key if k not in baseline.states),
        "stories": stories != {frozenset(site.url(*k) for k in group) for group in baseline.stories},
    }
    return figures


def _outcome(status: UrlStatus) -> UrlStatus:
    """A URL's outcome as compared with the fault-free crawl: a page read again and unchanged
    (``not_modified``: a resumed run visits its start URLs again, conditionally) holds the same
    page as ``fetched``. (Which copy of a story is its document, ``fetched``, and which are
    ``duplicate`` does not depend on arrival order: those compare as they are.)"""
    return UrlStatus.FETCHED if status is UrlStatus.NOT_MODIFIED else status


def check(figures: Figures, tmp_path: Path) -> None:
    figures.report(tmp_path)
    mismatches = figures.mismatches
    assert figures.faults_injected >= 1
    assert figures.stored_at_first_fault < figures.reachable_articles, "the fault came after the crawl"
    assert figures.urls_lost == 0, figures.lost
    assert figures.duplicates == 0, figures.duplicated
    assert figures.articles_stored_once == figures.reachable_articles
    assert not mismatches["status"], mismatches["status"]
    assert not mismatches["extra_urls"], mismatches["extra_urls"]
    assert not mismatches["stories"], "stories are grouped differently from the fault-free crawl"
    assert figures.urls_in_crawl == figures.urls_in_fault_free_crawl


@contextlib.contextmanager
def running(cluster: FaultCluster, *cleanups: Callable[[], None]) -> Iterator[FaultCluster]:
    try:
        yield cluster
    finally:
        cluster.stop()
        for cleanup in cleanups:
            cleanup()


def recover_lost_messages(cluster: FaultCluster, source: Source, database: str) -> int:
    """A worker killed at the wrong moment can lose a message outright (the Redis transport
    takes it off the queue before it registers it as unacknowledged). The URL stays QUEUED in
    the database, and the source's next run sends it again once it is older than the visibility
    timeout. Run that next run (as beat would), if anything is left, and say how many."""
    with open_store(database) as store:
        waiting = [s for s in store.iter_urls(status=UrlStatus.QUEUED) if s.error_reason is None]
    if not waiting:
        return 0
    newest = max(s.fetched_at.timestamp() for s in waiting if s.fetched_at is not None)
    time.sleep(max(0.0, newest + VISIBILITY_TIMEOUT + 1 - time.time()))
    enqueue(cluster, source)
    wait_idle(cluster)
    return len(waiting)


def sigkill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


# -- 1. a worker killed mid-task ------------------------------------------------------------------


def test_a_worker_killed_mid_task_loses_nothing(
    site: RunningSite,
    source: Source,
    baseline: Baseline,
    trap: Trap,
    private_redis: PrivateRedis,
    pg_server_url: str,
    tmp_path: Path,
) -> None:
    """SIGKILL the pool child fetching an article (the worker rejects the task: redelivered at
    once), then the main process of the worker fetching another one, and its child (its
    messages come back after the visibility timeout); a replacement worker joins."""
    faults: list[str] = []
    with temporary_schema(pg_server_url, "test_faults") as database:
        open_store(database).close()  # the schema, before anyone polls it
        cluster = make_cluster(
            tmp_path, source, database, private_redis.url(), **{VISIBILITY_ENV: str(VISIBILITY_TIMEOUT)}
        )
        with running(cluster):
            _, began, at_fault = start_crawl(cluster, site, source, database)

            # Fault 1: the pool child inside a task, mid-fetch.
            trap.arm()
            hit = trap.wait(30)
            assert hit.worker in ("w1", "w2"), hit
            victim = cluster.by_name(hit.worker)
            pool = children(victim.proc.pid)
            assert len(pool) == 1, pool
            sigkill(pool[0])
            faults.append(
                f"SIGKILL pool child {pool[0]} of {hit.worker} while it fetched {hit.site}{hit.target}"
            )
            victim.wait_for_log("SIGKILL", timeout=20)  # the main process saw its child die
            assert victim.proc.poll() is None

            # Fault 2: a whole worker, main process first, mid-fetch again; on the same portal
            # when it still has articles to fetch, so that the host's two request slots are both
            # left taken by killed deliveries (which stopped that host until the slots expired).
            wait_stored(database, site, FIRST_FAULT_AT + 0.25)
            trap.arm(site=hit.site)
            try:
                hit = trap.wait(10)
            except AssertionError:
                trap.arm()
                hit = trap.wait(30)
            assert hit.worker in ("w1", "w2"), hit
            victim = cluster.by_name(hit.worker)
            main, pool = victim.proc.pid, children(victim.proc.pid)
            sigkill(main)
            time.sleep(0.2)
            for pid in pool:
                sigkill(pid)
            victim.proc.wait(timeout=10)
            faults.append(f"SIGKILL main process {main} of {hit.worker}, then its child {pool}, "
                          f"while it fetched {hit.site}{hit.target}")  # fmt: skip
            start_workers(cluster, "w3")
            wait_idle(cluster)
            resent = recover_lost_messages(cluster, source, database)
            elapsed = time.monotonic() - began
            # The short visibility timeout is only sound if every countdown stayed below it.
            longest = max_countdown_logged(*cluster.processes)
            assert longest < VISIBILITY_TIMEOUT - 5, f"a countdown of {longest} s: raise VISIBILITY_TIMEOUT"
        figures = audit(
            "worker_sigkill",
            database,
            site,
            baseline,
            faults=faults,
            stored_at_first_fault=at_fault,
            elapsed=elapsed,
        )
        if resent:  # not a fault: what the source's next run does
            figures.faults.append(f"recovery run: {resent} URL(s) whose message was lost sent again")
    check(figures, tmp_path)


# -- 2. Redis restarted, every message lost -------------------------------------------------------


class WorkersDidNotReconnect(AssertionError):
    """Worker processes died on the broker connection loss instead of reconnecting.

    Celery 5.7.0 does (its consumer's ``on_connection_error_after_connected`` calls
    ``connection.collect()``, which drops the transport's client, then ``connection.close()``,
    which needs it: "Unrecoverable error: AttributeError ... 'hostname'"); pyproject.toml pins
    celery below 5.7 for that reason, and this test is what would show a regression.
    """


def test_a_redis_restart_without_persistence_loses_nothing_after_a_resume(
    site: RunningSite,
    source: Source,
    baseline: Baseline,
    private_redis: PrivateRedis,
    pg_server_url: str,
    tmp_path: Path,
) -> None:
    """Kill Redis (no persistence: queues, claims, politeness, everything gone) and start it
    again on the same port; the workers must reconnect by themselves, and the user resumes the
    crawl with ``crawler enqueue --source`` (a run re-queues from the database's state).

    A worker that died instead of reconnecting is replaced (what ``restart: unless-stopped`` in
    docker-compose.yml does), so that the store is still audited in full; the test then fails
    with :class:`WorkersDidNotReconnect`; any loss or duplicate fails it as well.
    """
    faults: list[str] = []
    with temporary_schema(pg_server_url, "test_faults") as database:
        open_store(database).close()
        cluster = make_cluster(tmp_path, source, database, private_redis.url())
        with running(cluster):
            workers, began, at_fault = start_crawl(cluster, site, source, database)
            marks = {w.name: len(w.log()) for w in workers}
            private_redis.kill()
            time.sleep(1.0)
            private_redis.start()
            faults.append(
                f"SIGKILL redis-server (no persistence) at {at_fault} stored articles, restarted 1 s later"
            )

            def settled() -> bool:  # each worker either reconnected or died
                return all(
                    w.proc.poll() is not None or "Connected to redis" in w.log()[marks[w.name] :]
                    for w in workers
                )

            wait_for(settled, timeout=30, what="the workers to reconnect (or die)")
            died = [w.name for w in workers if w.proc.poll() is not None]
            for name in died:
                faults.append(f"{name} exited on the connection loss; replaced")
                start_workers(cluster, f"{name}-replacement")
            enqueue(cluster, source)  # what a user does: re-run the source
            wait_idle(cluster)
            elapsed = time.monotonic() - began
            idle = [  # survivors that did none of the rest
                w.name for w in workers if w.name not in died and "succeeded" not in w.log()[marks[w.name] :]
            ]
            crashes = {w.name: w.log()[marks[w.name] :][-3000:] for w in workers if w.name in died}
        figures = audit(
            "redis_restart",
            database,
            site,
            baseline,
            faults=faults,
            stored_at_first_fault=at_fault,
            elapsed=elapsed,
        )
    check(figures, tmp_path)
    assert not idle, f"workers {idle} reconnected but ran no task after the restart"
    if died:
        raise WorkersDidNotReconnect(
            f"workers {died} exited instead of reconnecting:\n"
            + "\n".join(f"--- {name} ---\n{text}" for name, text in crashes.items())
        )


# -- 3. PostgreSQL down for a while ---------------------------------------------------------------


def test_a_postgres_outage_is_retried_not_failed(
    site: RunningSite,
    source: Source,
    baseline: Baseline,
    private_redis: PrivateRedis,
    tmp_path: Path,
) -> None:
    """Stop a private PostgreSQL cluster (``pg_ctl stop -m fast``) for 10 s mid-crawl and start
    it again: the tasks that hit the outage retry as infrastructure failures, none fails."""
    faults: list[str] = []
    pg = PrivatePostgres(free_port())
    try:
        pg.init()
        pg.start()
        database = pg.url
        open_store(database).close()
        cluster = make_cluster(tmp_path, source, database, private_redis.url())
        with running(cluster):
            workers, began, at_fault = start_crawl(cluster, site, source, database)
            pg.stop("fast")
            time.sleep(PG_DOWN_SECONDS)
            pg.start()
            faults.append(
                f"pg_ctl stop -m fast at {at_fault} stored articles, started {PG_DOWN_SECONDS:g} s later"
            )
            wait_idle(cluster)
            elapsed = time.monotonic() - began
            logs = {w.name: w.log() for w in workers}
        retried = sum(text.count("infrastructure failure") for text in logs.values())
        assert retried, "no task met the outage"
        for name, text in logs.items():
            assert "raised unexpected" not in text, (name, text[-3000:])
            assert "unexpected error on" not in text, (name, text[-3000:])
        figures = audit(
            "postgres_restart",
            database,
            site,
            baseline,
            faults=faults,
            stored_at_first_fault=at_fault,
            elapsed=elapsed,
        )
        figures.faults.append(f"{retried} task deliveries retried as infrastructure failures")
    finally:
        pg.destroy()
    check(figures, tmp_path)
