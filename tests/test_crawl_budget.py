"""Page budgets: a source's own ``max_pages`` and the crawl's ``--max-pages``; what is left over
stays queued in the store so that a later crawl can resume it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from crawler import crawl as crawl_module
from crawler.crawl import CrawlStats, EmbeddedCrawl
from crawler.samplesite import build_site, serve_site
from storage import StorageError, UrlStatus, open_store
from tests.crawling import crawl_options


def crawl(tmp_path: Path, *, source_pages: int | None, crawl_pages: int | None) -> tuple[int, int, int]:
    with serve_site(build_site(crawl_delay=0.0)) as site:
        source = site.source(max_pages=source_pages, per_host_delay=0.0)
        options = crawl_options(max_pages=crawl_pages, concurrency=4, extract_workers=1)
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


# -- the writer's backlog ---------------------------------------------------------------------------


class FailingStore:
    """A store whose document writes fail (a full disk, a dropped database)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def add_stories(self, *args: Any, **kwargs: Any) -> Any:
        raise StorageError("storing documents failed: disk full")


def _crawl_with(store: Any, site: Any) -> CrawlStats:
    options = crawl_options(concurrency=4, extract_workers=1)
    source = site.source(per_host_delay=0.0)
    return asyncio.run(asyncio.wait_for(EmbeddedCrawl([source], store, options).run(), 120))


def test_a_small_writer_backlog_still_stores_every_document(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(crawl_module, "_MAX_WAITING_DOCUMENTS", 2)
    monkeypatch.setattr(crawl_module, "_WRITE_BATCH_DOCUMENTS", 1)
    with (
        serve_site(build_site(crawl_delay=0.0)) as site,
        open_store(f"sqlite:///{tmp_path / 's.db'}") as store,
    ):
        stats = _crawl_with(store, site)
        assert stats.documents_stored == store.count_documents() > 10
        assert stats.documents_stored + stats.duplicates == len(site.reachable_urls())


def test_a_store_that_fails_ends_the_crawl_with_its_error(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(crawl_module, "_MAX_WAITING_DOCUMENTS", 2)
    with (
        serve_site(build_site(crawl_delay=0.0)) as site,
        open_store(f"sqlite:///{tmp_path / 's.db'}") as store,
        pytest.raises(StorageError, match="disk full"),
    ):
        _crawl_with(FailingStore(store), site)
