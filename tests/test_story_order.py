"""Whatever order the pages of the sample web arrive in, each story's document is its original.

The sample web publishes stories on an issuing portal and republishes them elsewhere (exact,
Traditional with pinyin readings, a paragraph added or cut; see crawler/samplesite). Its source
declares which portals issue and which republish, so every story's original outranks each of its
reposts (tests/test_story_rank.py checks that on the ground truth). Here the pages arrive in
random orders, in both modes:

* embedded: the frontier's order is shuffled in-process (the priority of crawler.crawl's
  ``FrontierItem`` becomes a random number instead of the link depth), five orders;
* Celery: the article pages are enqueued in a random order (``crawler enqueue --source``, the
  source with ``max_depth`` 0 so that no link adds its own order) for one real worker process
  with two pool processes, five orders into a store emptied between them.

Every time: each story's document is its original, every repost is its copy, the documents' URLs
are ``fetched`` and the copies' ``duplicate``, no stored text or title has a pinyin reading, and
the export with copies points every copy at an exported document.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest

import crawler.crawl as crawl_module
from cli.cluster import cluster_counts
from cli.export import export_rows
from crawler.crawl import EmbeddedCrawl
from crawler.samplesite import ADDED, CUT, ORIGINAL, REPOST, RunningSite, build_site, serve_site
from storage import Store, UrlStatus, open_store
from storage.sql import metadata, schema_version
from tests.cluster import Cluster, isolated_redis, redis_db_url, wait_for, write_seeds
from tests.crawling import crawl_options
from tests.pg import temporary_schema

ORDERS = 5
REDIS_DB = 8
# A reading as a repost portal writes it (tests/test_sample_ground_truth.py's pattern: broader
# than the extractor's own, no tone mark required).
READING = re.compile(r"[\u3400-\u9fff][(（][a-zāáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜü]{1,6}[)）]")


@dataclass
class Figures:
    """One order's outcome, for the report."""

    stories: int = 0  # stories with at least one repost reached
    originals: int = 0  # of those, stories whose document is the original
    reposts: int = 0  # repost pages, each a copy of its story's document
    early: int = 0  # reposts fetched before their original (their story's document was replaced)
    notes: list[str] = field(default_factory=list)

    def row(self, mode: str, order: int) -> str:
        return f"| {mode} | {order} | {self.stories} | {self.originals} | {self.reposts} | {self.early} |"


def judge(store: Store, site: RunningSite) -> Figures:
    """Check one crawl's store against the sample web's ground truth; its figures."""
    truth, reachable = site.truth, site.reachable_urls()
    documents = {d.url: d for d in store.iter_documents()}
    copies = {c.url: c for c, _ in store.iter_copies()}
    states = store.get_urls(sorted(reachable))
    by_story: dict[str, list[str]] = {}
    for url in reachable:
        by_story.setdefault(truth[url].article_id, []).append(url)
    figures = Figures()
    for article_id, urls in sorted(by_story.items()):
        (original,) = [u for u in urls if truth[u].variant == ORIGINAL]
        reposts = [u for u in urls if truth[u].variant in (REPOST, ADDED, CUT)]
        assert original in documents, f"{article_id}: the original {original} is not the document"
        assert states[original].status is UrlStatus.FETCHED, (original, states[original])
        story = documents[original].content_hash
        for url in reposts:
            assert url not in documents, f"{article_id}: the repost {url} is a document"
            assert url in copies and copies[url].duplicate_of == story, (article_id, url, copies.get(url))
            assert states[url].status is UrlStatus.DUPLICATE, (url, states[url])
            figures.early += copies[url].fetched_at < documents[original].fetched_at
        if reposts:
            figures.stories += 1
            figures.originals += 1
            figures.reposts += len(reposts)
    assert figures.stories == 8 and figures.reposts == 12
    # One document per story, nothing else stored twice.
    assert len({truth[u].article_id for u in documents if u in truth}) == len(
        [u for u in documents if u in truth]
    )
    # No pinyin reading in any stored text or title (copies keep their text in these crawls).
    for record in [*documents.values(), *copies.values()]:
        for value in (record.text, record.title or ""):
            assert not READING.search(value), (record.url, READING.search(value))
    assert any(c.text for c in copies.values())
    # The export with copies is coherent: documents first, every copy pointing at one of them.
    rows = list(export_rows(store, with_copies=True))
    stories = {r["content_hash"] for r in rows if r["duplicate_of"] is None}
    first_copy = next(i for i, r in enumerate(rows) if r["duplicate_of"] is not None)
    assert all(r["duplicate_of"] is not None for r in rows[first_copy:])
    assert {r["duplicate_of"] for r in rows[first_copy:]} <= stories
    return figures


@pytest.fixture(scope="module")
def site() -> Iterator[RunningSite]:
    with serve_site(build_site(crawl_delay=None)) as running:
        yield running


def test_embedded_crawls_in_shuffled_orders_store_the_originals(
    site: RunningSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_item = crawl_module.FrontierItem
    options = crawl_options(
        {"per_host_delay": 0.0, "keep_duplicate_text": True}, concurrency=4, extract_workers=1
    )
    rows = []
    for order in range(ORDERS):
        rng = random.Random(1000 + order)

        def shuffled(depth: int, seq: int, visit: Any, rng: random.Random = rng) -> Any:
            # The frontier is a priority queue of (depth, seq): a random priority takes every
            # page in a random order among those found so far, whatever its depth.
            return real_item(rng.random(), seq, visit)  # type: ignore[arg-type]

        monkeypatch.setattr(crawl_module, "FrontierItem", shuffled)
        with open_store(f"sqlite:///{tmp_path / f'order-{order}.sqlite3'}") as store:
            asyncio.run(EmbeddedCrawl([site.source(per_host_delay=0.0)], store, options).run())
            figures = judge(store, site)
        rows.append(figures.row("embedded", order))
    early = sum(int(row.split("|")[-2]) for row in rows)
    assert early > 0, "no repost ever arrived before its original: the orders were not shuffled"
    _report(rows, capsys)


#: The values the cluster runs with (as tests/test_conformance.py's).
SETTINGS = {
    "CRAWLER_ALLOWED_NETWORKS": "127.0.0.0/8",
    "CRAWLER_USER_AGENT": "policy-crawler-test/1",
    "CRAWLER_PER_HOST_DELAY": "0",
    "CRAWLER_PAGE_DEADLINE": "5",
    "CRAWLER_KEEP_DUPLICATE_TEXT": "true",
    "CRAWLER_REDIS_KEY_PREFIX": "story-order:",
}


def _done(store: Store, urls: list[str], redis: Any) -> bool:
    """Every page recorded (stored or a copy) and nothing left queued or running (``crawler
    wait``'s test, without starting a program per poll)."""
    states = store.get_urls(urls)
    if len(states) < len(urls) or any(s.status is UrlStatus.QUEUED for s in states.values()):
        return False
    counts = cluster_counts(redis)
    return sum(counts["queued"].values()) == 0 and counts["unacked"] == 0


def _empty(database: str) -> None:
    """Every row of the store gone (the worker keeps its connections): a fresh store."""
    with open_store(database) as store, store.engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            if table is not schema_version:
                conn.execute(table.delete())


@pytest.mark.services
@pytest.mark.slow
def test_celery_crawls_in_shuffled_orders_store_the_originals(
    site: RunningSite, tmp_path: Path, pg_server_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    articles = sorted(site.reachable_urls())
    source = site.source(per_host_delay=0.0, max_depth=0, schedule=None)
    rows = []
    with temporary_schema(pg_server_url, "storyorder") as database, isolated_redis(REDIS_DB) as redis:
        open_store(database).close()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWLER_")}
        env |= SETTINGS | {
            "CRAWLER_SEEDS_DIR": str(write_seeds(tmp_path / "seeds", source)),
            "CRAWLER_DATABASE_URL": database,
            "CRAWLER_REDIS_URL": redis_db_url(REDIS_DB),
        }
        cluster = Cluster(env, tmp_path)
        try:
            cluster.worker("story-order", concurrency=2).wait_for_log("ready.", timeout=60)
            for order in range(ORDERS):
                _empty(database)
                urls = list(articles)
                random.Random(2000 + order).shuffle(urls)
                queued = cluster.crawler("enqueue", "--source", source.id, *urls)
                assert queued.returncode == 0, queued.stderr
                with open_store(database) as store:
                    try:
                        wait_for(partial(_done, store, urls, redis), timeout=120, what="the pages' records")
                    except AssertionError as exc:
                        raise AssertionError(f"{exc}\n{cluster.logs()}") from None
                    figures = judge(store, site)
                rows.append(figures.row("celery", order))
        finally:
            cluster.stop()
    early = sum(int(row.split("|")[-2]) for row in rows)
    assert early > 0, "no repost ever arrived before its original: the orders were not shuffled"
    _report(rows, capsys)


def _report(rows: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print(
            "\n| mode | order | stories with reposts | originals as document | reposts as copies | "
            "reposts fetched before their original |"
        )
        print("|---|---|---|---|---|---|")
        print("\n".join(rows))
