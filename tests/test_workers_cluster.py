"""The distributed crawl end to end, with every part real: two ``celery worker`` processes
(prefork, one child each), Redis (database 14, flushed before and after), a fresh PostgreSQL
schema, Flower, beat, and the bundled sample web served on loopback.

The module crawls the sample web once with the embedded crawl (SQLite) and once with the two
workers (PostgreSQL), then compares: same documents, no URL fetched twice, no robots-disallowed
URL fetched, per-host spacing kept across both workers. Later tests reuse the running cluster
(Flower, the CLI, ad-hoc sources, retries, beat); they run in file order.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import itertools
import json
import os
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from crawler.samplesite import RunningSite, build_site, fail_then, html, serve_site, server_error
from crawler.samplesite.server import LoggedRequest, too_many_requests
from crawler.sources import Source
from storage import UrlStatus, open_store
from tests.cluster import (
    Cluster,
    free_port,
    isolated_redis,
    read_stories,
    redis_db_url,
    wait_for,
    write_seeds,
)
from tests.crawling import local_settings
from tests.pg import temporary_schema
from workers.state import CrawlState

pytestmark = [pytest.mark.services, pytest.mark.slow]

REDIS_DB = 14
#: Seconds between requests to one host (the seed's own 0.05 s is too short to measure spacing).
DELAY = 0.25
#: How much earlier than its slot a request may arrive (sleep and scheduling jitter).
SPACING_TOLERANCE = 0.03
FLOWER_USER, FLOWER_PASSWORD = "ops", "s3cret-" + uuid.uuid4().hex[:8]
PROBE_PATH = "/beat-probe.html"
PROBE_PAGE = "<html><head><title>probe</title></head><body><p>beat probe page</p></body></html>"


@dataclass
class CrawlRun:
    """What one crawl did: requests served, documents and URL states stored, time taken."""

    requests: list[LoggedRequest]
    hashes: set[str]
    states: dict[str, UrlStatus]
    elapsed: float
    stories: set[frozenset[str]]  # per stored story: its URL and the URLs of its copies

    @property
    def pages(self) -> int:
        return sum(1 for r in self.requests if r.path != "/robots.txt")

    @property
    def pages_per_second(self) -> float:
        return self.pages / self.elapsed


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site() -> Iterator[RunningSite]:
    web = build_site()
    web.add_route("most", PROBE_PATH, html(PROBE_PAGE))  # beat's target, off the crawled graph
    web.add_site("hostile")
    web.add_route("hostile", "/", html("<html><body><p>hostile home</p></body></html>"))
    web.add_route("hostile", "/flaky", fail_then(html("<html><body><p>ok now</p></body></html>"), failures=1))
    web.add_route(
        "hostile",
        "/busy",
        fail_then(
            html("<html><body><p>free now</p></body></html>"), failure=too_many_requests(retry_after=1)
        ),
    )
    web.add_route("hostile", "/boom", server_error(503))
    with serve_site(web) as running:
        yield running


@pytest.fixture(scope="module")
def source(site: RunningSite) -> Source:
    return site.source(per_host_delay=DELAY, schedule=None)


@pytest.fixture(scope="module")
def probe(site: RunningSite) -> Source:
    return Source(
        id="beat-probe",
        name="beat probe",
        start_urls=[site.url("most", PROBE_PATH)],
        max_depth=0,
        schedule="@every 2s",
    )


@pytest.fixture(scope="module")
def database(pg_server_url: str) -> Iterator[str]:
    """A fresh PostgreSQL schema for the module (conftest's ``pg_url`` is per test)."""
    with temporary_schema(pg_server_url, "test_cluster") as url:
        yield url


@pytest.fixture(scope="module")
def redis_client() -> Iterator[Any]:
    with isolated_redis(REDIS_DB) as client:
        yield client


@pytest.fixture(scope="module")
def cluster(
    source: Source,
    probe: Source,
    database: str,
    redis_client: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("cluster")
    env = dict(os.environ)
    env.update(
        CRAWLER_DATABASE_URL=database,
        CRAWLER_REDIS_URL=redis_db_url(REDIS_DB),
        CRAWLER_ALLOWED_NETWORKS="127.0.0.0/8",
        CRAWLER_SEEDS_DIR=str(write_seeds(root / "seeds", source, probe)),
        CRAWLER_FLOWER_USER=FLOWER_USER,
        CRAWLER_FLOWER_PASSWORD=FLOWER_PASSWORD,
        # Short retry backoff once settings.py has it (ignored until then).
        CRAWLER_RETRY_BASE_DELAY="0.2",
        # Each worker reads the plans the other learned within half a second.
        CRAWLER_PLAN_RELOAD_SECONDS="0.5",
    )
    env.pop("FLOWER_BASIC_AUTH", None)
    running = Cluster(env, root)
    try:
        workers = [running.worker("w1"), running.worker("w2")]
        flower = running.flower(port=free_port(), user=FLOWER_USER, password=FLOWER_PASSWORD)
        for worker in workers:
            worker.wait_for_log("ready.", timeout=60)
        wait_for(lambda: _flower_status(running, "/healthcheck") == 200, timeout=30, what="Flower")
        assert flower.proc.poll() is None
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def embedded(site: RunningSite, source: Source, tmp_path_factory: pytest.TempPathFactory) -> CrawlRun:
    """The embedded crawl of the same source, for comparison (runs before the cluster's)."""
    from crawler.crawl import EmbeddedCrawl

    db = tmp_path_factory.mktemp("embedded") / "store.sqlite3"
    options = local_settings().crawl_options(extract_workers=2)
    site.request_log.clear()
    with open_store(f"sqlite:///{db}") as store:
        began = time.monotonic()
        asyncio.run(EmbeddedCrawl([source], store, options).run())
        elapsed = time.monotonic() - began
        hashes = {doc.content_hash for doc in store.iter_documents()}
        states = {s.url: s.status for s in store.iter_urls()}
        stories = read_stories(store)
    requests = site.request_log.snapshot()
    site.request_log.clear()
    return CrawlRun(requests, hashes, states, elapsed, stories)


@pytest.fixture(scope="module")
def distributed(
    embedded: CrawlRun, cluster: Cluster, site: RunningSite, source: Source, database: str
) -> CrawlRun:
    site.request_log.clear()
    began = time.monotonic()
    queued = cluster.crawler("enqueue", "--source", source.id)
    assert queued.returncode == 0, queued.stderr
    waited = cluster.crawler("wait", "--timeout", "150", "--interval", "0.2", timeout=180)
    elapsed = time.monotonic() - began
    assert waited.returncode == 0, waited.stderr + cluster.logs()
    requests = site.request_log.snapshot()
    with open_store(database) as store:
        hashes = {doc.content_hash for doc in store.iter_documents()}
        states = {s.url: s.status for s in store.iter_urls()}
        stories = read_stories(store)
    return CrawlRun(requests, hashes, states, elapsed, stories)


def _flower_status(cluster: Cluster, path: str, *, auth: bool = False) -> int:
    try:
        return _flower_get(cluster, path, auth=auth)[0]
    except OSError:
        return 0


def _flower_get(cluster: Cluster, path: str, *, auth: bool = True) -> tuple[int, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{cluster.flower_port}{path}")
    if auth:
        token = base64.b64encode(f"{FLOWER_USER}:{FLOWER_PASSWORD}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
            ctype = response.headers.get("Content-Type", "")
            return response.status, json.loads(body) if "json" in ctype else body
    except urllib.error.HTTPError as exc:
        return exc.code, None


# -- the crawl ------------------------------------------------------------------------------------


def test_workers_store_the_same_documents_as_the_embedded_crawl(
    embedded: CrawlRun, distributed: CrawlRun, site: RunningSite
) -> None:
    assert embedded.hashes, "the embedded crawl stored nothing"
    # The same stories with the same copies; the workers shared one index (PostgreSQL), so a
    # repost fetched by one worker is linked to the story another worker stored.
    assert distributed.stories == embedded.stories
    assert len(distributed.hashes) == len(embedded.hashes) == len(embedded.stories)
    assert any(len(group) > 2 for group in distributed.stories), "the sample web's reposts must be linked"

    def copies(run: CrawlRun) -> int:
        return sum(1 for status in run.states.values() if status == UrlStatus.DUPLICATE)

    assert copies(distributed) == copies(embedded) == sum(len(group) - 1 for group in embedded.stories)
    # Every URL ended in a final state, none waits or failed for a transient reason.
    leftovers = {
        u: s for u, s in distributed.states.items() if s in (UrlStatus.QUEUED, UrlStatus.FAILED_TRANSIENT)
    }
    assert not leftovers
    assert set(distributed.states) == set(embedded.states)
    print(
        f"\nembedded: {embedded.pages} pages in {embedded.elapsed:.2f} s "
        f"({embedded.pages_per_second:.1f} pages/s); "
        f"two workers: {distributed.pages} pages in {distributed.elapsed:.2f} s "
        f"({distributed.pages_per_second:.1f} pages/s)"
    )


def test_the_workers_learn_extraction_plans_and_serve_pages_with_them(
    distributed: CrawlRun, database: str
) -> None:
    """The workers' plans are in the shared store, with the pages both served through them
    (their counts add up there) and no mismatch on this web."""
    with open_store(database) as store:
        stored = store.iter_plans()
    assert stored, "no extraction plan was learned"
    counts = [plan["counts"] for _, _, plan in stored]
    assert sum(c["served"] + c["verified"] for c in counts) > 0
    assert sum(c["mismatches"] for c in counts) == 0
    assert all(plan["status"] == "active" for _, _, plan in stored)


def test_no_url_is_fetched_twice(distributed: CrawlRun) -> None:
    counts = collections.Counter((r.netloc, r.method, r.path) for r in distributed.requests)
    twice = {key: n for key, n in counts.items() if n > 1}
    assert not twice  # robots.txt included: the workers share it through Redis


def test_no_disallowed_url_is_fetched(distributed: CrawlRun, site: RunningSite) -> None:
    fetched = {f"http://{r.netloc}{r.path}" for r in distributed.requests}
    assert site.disallowed_urls()
    assert not fetched & site.disallowed_urls()
    disallowed = {u for u, s in distributed.states.items() if s == UrlStatus.DISALLOWED}
    assert disallowed and disallowed <= site.disallowed_urls()


def test_per_host_spacing_holds_across_both_workers(distributed: CrawlRun, site: RunningSite) -> None:
    by_netloc: dict[str, list[float]] = collections.defaultdict(list)
    for r in distributed.requests:
        if r.path != "/robots.txt":  # robots.txt is fetched outside the page throttle
            by_netloc[r.netloc].append(r.time)
    assert len(by_netloc) == len(site.web.standard_sites)  # every portal's pages and files
    for name, netloc in site.netlocs.items():
        if netloc not in by_netloc:
            continue
        delay = max(DELAY, site.web.sites[name].crawl_delay or 0.0)  # haixi: Crawl-delay 1
        times = sorted(by_netloc[netloc])
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert min(gaps) >= delay - SPACING_TOLERANCE, (name, delay, sorted(gaps)[:3])


def test_both_workers_took_part(cluster: Cluster, distributed: CrawlRun) -> None:
    for process in cluster.processes[:2]:
        assert "crawler.fetch_page" in process.log() and "succeeded" in process.log(), process.name


def test_a_task_delivered_again_does_no_work(
    cluster: Cluster, distributed: CrawlRun, site: RunningSite, source: Source, database: str
) -> None:
    """The same fetch_page message, delivered twice more after the crawl: skipped both times
    (the stored state says the page is done), no request, no change in the store."""
    from celery import Celery

    from workers.routing import CRAWL_QUEUE, FETCH_PAGE

    article = next(u for u in sorted(site.reachable_urls()) if distributed.states.get(u) == UrlStatus.FETCHED)
    with open_store(database) as store:
        before = store.get_url(article)
        documents = store.count_documents()
    assert before is not None
    sender = Celery("test-sender", broker=redis_db_url(REDIS_DB))
    sender.conf.update(task_serializer="json", accept_content=["json"])
    try:
        for _ in range(2):
            sender.send_task(FETCH_PAGE, args=(article, source.id, before.depth), queue=CRAWL_QUEUE)
    finally:
        sender.close()
    served = len(site.request_log)
    waited = cluster.crawler("wait", "--timeout", "30", "--interval", "0.2")
    assert waited.returncode == 0, waited.stderr
    assert len(site.request_log) == served
    with open_store(database) as store:
        assert store.get_url(article) == before
        assert store.count_documents() == documents
    skipped = sum(p.log().count("'status': 'skipped'") for p in cluster.processes[:2])
    assert skipped >= 2


# -- monitoring and the CLI -----------------------------------------------------------------------


def test_flower_sees_both_workers_and_the_crawl_tasks(cluster: Cluster, distributed: CrawlRun) -> None:
    status, _ = _flower_get(cluster, "/api/workers", auth=False)
    assert status == 401
    status, _ = _flower_get(cluster, "/api/tasks", auth=False)
    assert status == 401

    def workers() -> Any:
        code, body = _flower_get(cluster, "/api/workers?refresh=1")
        return body if code == 200 and body and len(body) == 2 else None

    names = set(wait_for(workers, timeout=20, what="Flower to list both workers"))
    assert {n.split("@")[0] for n in names} == {"w1", "w2"}
    status, tasks = _flower_get(cluster, "/api/tasks?limit=1000")
    assert status == 200
    seen = collections.Counter(t["name"] for t in tasks.values())
    assert seen["crawler.crawl_source"] >= 1
    assert seen["crawler.fetch_page"] >= distributed.pages
    assert {t.get("worker") for t in tasks.values()} >= names


def test_status_reports_an_idle_cluster_and_the_store(
    cluster: Cluster, distributed: CrawlRun, source: Source
) -> None:
    out = cluster.crawler("status", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["queued"] == {"crawl": 0, "attachments": 0, "schedule": 0} and report["unacked"] == 0
    assert set(report["workers"]) == {name for name in report["workers"]} and len(report["workers"]) == 2
    assert report["store"]["sources"][source.id]["documents"] == len(distributed.hashes)
    assert report["seen_urls"] >= len(distributed.states)
    assert source.id in report["last_runs"]


def test_crawl_state_in_redis_is_small(distributed: CrawlRun, redis_client: Any) -> None:
    from workers.app import config

    usage = CrawlState(redis_client, config.key_prefix).memory_usage()
    total = sum(usage.values())
    print(
        f"\ncrawl state: {len(usage)} keys, {total} bytes; "
        f"seen set {usage.get(config.key_prefix + 'seen')} bytes"
    )
    assert total < 200_000


def test_flower_without_flags_takes_its_credentials_from_settings(cluster: Cluster) -> None:
    port = free_port()
    main_port = cluster.flower_port
    plain = cluster.flower(port=port, name="flower-plain")  # no --basic-auth
    cluster.flower_port = main_port
    try:
        url = f"http://127.0.0.1:{port}/api/workers"

        def answer(auth: bool) -> int:
            request = urllib.request.Request(url)
            if auth:
                token = base64.b64encode(f"{FLOWER_USER}:{FLOWER_PASSWORD}".encode()).decode()
                request.add_header("Authorization", f"Basic {token}")
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return int(response.status)
            except urllib.error.HTTPError as exc:
                return int(exc.code)
            except OSError:
                return 0

        wait_for(lambda: answer(False) == 401, timeout=30, what="Flower (no flags) to refuse anonymous calls")
        assert answer(True) == 200
    finally:
        plain.stop()


# -- ad-hoc sources and retries -------------------------------------------------------------------


def test_adhoc_urls_reach_the_workers_and_transient_failures_retry(
    cluster: Cluster, site: RunningSite, database: str, redis_client: Any
) -> None:
    from crawler.sources import adhoc_source_id
    from settings import get_settings
    from workers.app import config

    hostile = site.base_urls["hostile"]
    urls = [f"{hostile}/flaky", f"{hostile}/busy", f"{hostile}/boom", site.url("most", "/")]
    # Bare URLs of two origins: one ad-hoc source scoped to both, published in Redis.
    out = cluster.crawler("enqueue", *urls)
    assert out.returncode == 0, out.stderr
    source_id = adhoc_source_id(urls)
    assert source_id in out.stdout
    published = CrawlState(redis_client, config.key_prefix).get_source(source_id)
    assert published is not None and set(published.allowed_hosts) == {
        site.netlocs["hostile"],
        site.netlocs["most"],
    }
    waited = cluster.crawler("wait", "--timeout", "90", "--interval", "0.2", timeout=120)
    assert waited.returncode == 0, waited.stderr + cluster.logs()
    with open_store(database) as store:
        flaky, busy, boom, home = (store.get_url(u) for u in urls)
    assert flaky is not None and (flaky.status, flaky.attempts) == (UrlStatus.FETCHED, 2)
    assert busy is not None and (busy.status, busy.attempts) == (UrlStatus.FETCHED, 2)
    assert boom is not None and boom.status == UrlStatus.FAILED_TRANSIENT
    max_retries = get_settings().task_max_retries
    assert (boom.error_reason, boom.attempts) == ("http_503", max_retries + 1)
    # An explicitly enqueued URL is visited again, even though the earlier crawl saw it: with a
    # conditional request, which the unchanged page answers with 304.
    assert home is not None and home.source == source_id and home.status == UrlStatus.NOT_MODIFIED
    most = site.netlocs["most"]
    assert ("/", 304) in {(r.path, r.status) for r in site.request_log.snapshot() if r.netloc == most}
    # Retry-After was honoured: the second request to /busy came at least 1 s after the first.
    busy_times = [r.time for r in site.request_log.snapshot() if r.path == "/busy"]
    assert len(busy_times) == 2 and busy_times[1] - busy_times[0] >= 1.0 - SPACING_TOLERANCE


# -- beat -----------------------------------------------------------------------------------------


def test_beat_fires_a_scheduled_crawl(
    cluster: Cluster, site: RunningSite, probe: Source, redis_client: Any, database: str, tmp_path: Path
) -> None:
    from workers.app import config

    state = CrawlState(redis_client, config.key_prefix)
    probe_url = probe.start_urls[0]
    began = time.monotonic()
    beat = cluster.beat(tmp_path / "celerybeat-schedule")
    try:
        wait_for(lambda: probe.id in state.last_runs(), timeout=30, what="beat to start a run of the probe")
        wait_for(
            lambda: any(r.path == PROBE_PATH and r.time > began for r in site.request_log.snapshot()),
            timeout=30,
            what="the scheduled run to fetch the probe page",
        )

        def recorded() -> bool:
            with open_store(database) as store:
                stored = store.get_url(probe_url)
            return stored is not None and stored.status == UrlStatus.FETCHED and stored.source == probe.id

        wait_for(recorded, timeout=30, what="the probe page's URL state")
    finally:
        beat.stop()
    assert "crawl-source:beat-probe" in beat.log()
