"""The embedded crawl's ready queue keeps at most its capacity in memory and hands visits out in
the order of one unbounded priority queue (crawler.frontier)."""

from __future__ import annotations

import asyncio
import collections
import heapq
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from crawler.crawl import CrawlStats, EmbeddedCrawl
from crawler.frontier import FrontierItem, SpillingQueue, UrlSet
from crawler.samplesite import RunningSite, build_site, serve_site
from crawler.visit import AttachmentVisit, Visit
from storage import UrlStatus, open_store
from tests.crawling import crawl_options

#: Visits kept in memory by the test crawls: far fewer than the sample web's URLs.
SMALL = 4


def _item(depth: int, seq: int) -> FrontierItem:
    visit = Visit(
        f"https://example.gov.cn/{depth}/{seq}", "src", depth, attempt=seq % 3, run=1.5, revisit=bool(seq % 2)
    )
    return FrontierItem(depth, seq, visit)


def test_the_queue_hands_out_in_depth_order_and_never_holds_more_than_its_capacity() -> None:
    rng = random.Random(7)
    queue = SpillingQueue(8)
    reference: list[FrontierItem] = []
    out: list[FrontierItem] = []
    seq = 0
    for _ in range(3000):
        if rng.random() < 0.55 or not reference:
            # mostly deeper than what was handed out last, now and then a shallower one (a retry)
            depth = rng.choice([0, 1, 1, 2, 2, 2, 3])
            item = _item(depth, seq)
            seq += 1
            queue.put_nowait(item)
            heapq.heappush(reference, item)
        else:
            out.append(queue.get_nowait())
            assert (out[-1].depth, out[-1].seq) == (reference[0].depth, reference[0].seq)
            heapq.heappop(reference)
        assert queue.in_memory <= 8
        assert queue.qsize() == len(reference)
    while reference:
        expected = heapq.heappop(reference)
        got = queue.get_nowait()
        assert (got.depth, got.seq, got.visit) == (expected.depth, expected.seq, expected.visit)
    assert queue.empty() and queue.peak_in_memory <= 8
    assert queue.spills > 1000, "the test never spilled"
    queue.close()


def test_spilled_visits_come_back_whole() -> None:
    queue = SpillingQueue(2)
    visits = [
        Visit("https://a.gov.cn/1", "a", 1, attempt=2, run=123.25, revisit=True, recovering=True),
        Visit("https://a.gov.cn/2", "a", 1),
        AttachmentVisit("https://a.gov.cn/f.pdf", "a", "pdf"),
        AttachmentVisit("https://a.gov.cn/g", "a", None),
        Visit("https://a.gov.cn/3", "b", 4, run=None),
    ]
    for seq, visit in enumerate(visits):
        queue.put_nowait(FrontierItem(5, seq, visit))
    assert queue.spilled == 3
    assert [queue.get_nowait().visit for _ in visits] == visits
    queue.close()


def test_a_waiting_get_is_woken_by_a_put() -> None:
    async def scenario() -> FrontierItem:
        queue = SpillingQueue(2)
        try:
            waiter = asyncio.create_task(queue.get())
            await asyncio.sleep(0)
            queue.put_nowait(_item(1, 0))
            return await asyncio.wait_for(waiter, 5)
        finally:
            queue.close()

    assert asyncio.run(scenario()).seq == 0


def test_nothing_is_spilled_while_memory_suffices() -> None:
    queue = SpillingQueue(16)
    for seq in range(16):
        queue.put_nowait(_item(seq % 3, seq))
    assert queue.spills == 0 and queue._db is None
    queue.close()


def test_a_url_set_answers_like_a_set_of_strings() -> None:
    urls = UrlSet()
    added = [f"https://www.gov.cn/zhengce/{n}.htm" for n in range(0, 30_000, 3)]
    for url in added:
        urls.add(url)
        urls.add(url)  # twice: counted once
    assert len(urls) == len(added)
    assert urls._recent and len(urls._sorted) > 4096, "the test never merged"
    assert all(url in urls for url in added)
    assert not any(f"https://www.gov.cn/zhengce/{n}.htm" in urls for n in range(1, 30_000, 3))
    assert list(urls._sorted) == sorted(urls._sorted)


def test_a_capacity_below_two_is_refused() -> None:
    with pytest.raises(ValueError):
        SpillingQueue(1)


# -- crawls with a small frontier in memory -------------------------------------------------------


@dataclass
class Crawled:
    stats: CrawlStats
    peak_in_memory: int
    spills: int
    #: (URL, depth) of every request, in the order made (robots.txt left out; an attachment
    #: file, which has no URL state, has no depth).
    requests: list[tuple[str, int | None]]
    outcomes: dict[str, UrlStatus]


@pytest.fixture(scope="module")
def site() -> Iterator[RunningSite]:
    with serve_site(build_site(scale=2, crawl_delay=None)) as running:
        yield running


def crawl(site: RunningSite, db: Path, *, in_memory: int | None, stop_after: int | None = None) -> Crawled:
    """Crawl the sample web one request at a time (so that visits follow the frontier's order
    exactly); ``stop_after``: stop the crawl once that many pages are fetched."""
    flags = {} if in_memory is None else {"frontier_in_memory": in_memory}
    options = crawl_options({"per_host_delay": 0.0, **flags}, concurrency=1, extract_workers=1)
    site.request_log.clear()

    async def run(embedded: EmbeddedCrawl) -> CrawlStats:
        async def stopper() -> None:
            while embedded.stats.pages_fetched < (stop_after or 0):
                await asyncio.sleep(0.005)
            embedded.stop()

        watch = asyncio.create_task(stopper()) if stop_after else None
        try:
            return await embedded.run()
        finally:
            if watch is not None:
                watch.cancel()

    with open_store(f"sqlite:///{db}") as store:
        embedded = EmbeddedCrawl([site.source(per_host_delay=0.0, schedule=None)], store, options)
        stats = asyncio.run(run(embedded))
        states = {state.url: state for state in store.iter_urls()}
    requests = [
        (url, states[url].depth if url in states else None)
        for url in (
            f"http://{r.netloc}{r.path}" for r in site.request_log.snapshot() if r.path != "/robots.txt"
        )
    ]
    return Crawled(
        stats,
        embedded.frontier.peak_in_memory,
        embedded.frontier.spills,
        requests,
        {url: state.status for url, state in states.items()},
    )


@pytest.fixture(scope="module")
def unbounded(site: RunningSite, tmp_path_factory: pytest.TempPathFactory) -> Crawled:
    return crawl(site, tmp_path_factory.mktemp("unbounded") / "db.sqlite3", in_memory=None)


def test_a_crawl_with_a_small_frontier_in_memory_visits_every_page_once_in_depth_order(
    site: RunningSite, unbounded: Crawled, tmp_path: Path
) -> None:
    small = crawl(site, tmp_path / "db.sqlite3", in_memory=SMALL)
    assert small.spills > 100, "the frontier never overflowed: the test shows nothing"
    assert small.peak_in_memory <= SMALL
    counts = collections.Counter(url for url, _ in small.requests)
    assert max(counts.values()) == 1, [url for url, n in counts.items() if n > 1]
    assert counts.keys() == {url for url, _ in unbounded.requests}
    depths = [depth for _, depth in small.requests if depth is not None]
    assert len(depths) > 50 and depths == sorted(depths)
    assert small.outcomes == unbounded.outcomes
    assert small.stats.pages_fetched == unbounded.stats.pages_fetched
    assert small.stats.attachments == unbounded.stats.attachments > 0


def test_a_stopped_crawl_with_a_small_frontier_resumes_from_the_store(
    site: RunningSite, unbounded: Crawled, tmp_path: Path
) -> None:
    db = tmp_path / "db.sqlite3"
    first = crawl(site, db, in_memory=SMALL, stop_after=len(unbounded.requests) // 3)
    assert first.stats.interrupted and first.stats.waiting > SMALL
    assert first.spills > 0
    assert list(first.outcomes.values()).count(UrlStatus.QUEUED) > SMALL
    resumed = crawl(site, db, in_memory=SMALL)
    assert resumed.spills > 0 and resumed.peak_in_memory <= SMALL
    assert resumed.stats.resumed > SMALL
    # A start page read again answers 304: it holds the page it held.
    settled = {
        url: UrlStatus.FETCHED if status is UrlStatus.NOT_MODIFIED else status
        for url, status in resumed.outcomes.items()
    }
    assert settled == unbounded.outcomes
    counts = collections.Counter(url for url, _ in first.requests + resumed.requests)
    assert max(counts.values()) <= 2
    assert counts.keys() == {url for url, _ in unbounded.requests}
