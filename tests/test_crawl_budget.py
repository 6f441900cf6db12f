"""Page budgets: a source's own ``max_pages`` and the crawl's ``--max-pages``; what is left over
stays queued in the store so that a later crawl can resume it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from crawler.crawl import CrawlOptions, EmbeddedCrawl
from crawler.fetch import FetchLimits
from crawler.samplesite import build_site, serve_site
from storage import UrlStatus, open_store


def crawl(tmp_path: Path, *, source_pages: int | None, crawl_pages: int | None) -> tuple[int, int, int]:
    with serve_site(build_site(crawl_delay=0.0)) as site:
        source = site.source(max_pages=source_pages, per_host_delay=0.0)
        options = CrawlOptions(
            max_pages=crawl_pages,
            concurrency=4,
            allow_private_networks=True,
            extract_workers=1,
            limits=FetchLimits(user_agent="policy-crawler-test/1"),
        )
        db = f"sqlite:///{tmp_path / 'budget.sqlite3'}"
        with open_store(db) as store:
            stats = asyncio.run(EmbeddedCrawl([source], store, options).run())
            queued = sum(1 for _ in store.iter_urls(status=UrlStatus.QUEUED))
        requested = sum(1 for r in site.request_log if r.path != "/robots.txt")
    return stats.pages_fetched, queued, requested


def test_a_sources_own_budget_bounds_the_pages_fetched(tmp_path: Path) -> None:
    fetched, queued, requested = crawl(tmp_path, source_pages=6, crawl_pages=None)
    assert requested == 6  # every visit in the budget is one request; failures count too
    assert fetched <= 6
    assert queued > 0  # what was found but not visited is kept for the next crawl


def test_the_crawl_budget_applies_on_top(tmp_path: Path) -> None:
    _, queued, requested = crawl(tmp_path, source_pages=50, crawl_pages=4)
    assert requested == 4 and queued > 0
