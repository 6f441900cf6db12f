"""Re-crawls: next-visit times that adapt to how often a page changes, conditional requests,
new versions of changed articles, and retries of transient failures on demand.

The policy functions are tested alone; the embedded crawl is tested end to end against the
sample web (which answers ``If-None-Match`` with 304), in a SQLite store kept between crawls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from crawler.crawl import CrawlStats, EmbeddedCrawl
from crawler.links import PageKind
from crawler.recrawl import (
    RevisitPolicy,
    conditional_headers,
    is_due,
    links_digest,
    next_interval,
    parse_duration,
    schedule_visit,
)
from crawler.samplesite import RunningSite, build_site, fail_then, html, serve_site, server_error
from crawler.samplesite.server import Response
from crawler.sources import Source
from storage import Store, UrlState, UrlStatus, open_store
from tests.crawling import crawl_options

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
POLICY = RevisitPolicy(list_pages=3600, articles=86400, min_interval=600, max_interval=8 * 86400)


# -- the policy -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("15m", 900), ("6h", 21600), ("7d", 604800), (2.5, 2.5)]
)
def test_durations(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "1w", "-5s", "ten", "5 days", -1])
def test_bad_durations_are_refused(bad: str | float) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_intervals_start_by_kind_halve_on_change_double_when_same_and_stay_in_bounds() -> None:
    assert next_interval(None, is_list=True, changed=None, policy=POLICY) == 3600
    assert next_interval(None, is_list=False, changed=None, policy=POLICY) == 86400
    assert next_interval(3600, is_list=True, changed=True, policy=POLICY) == 1800
    assert next_interval(3600, is_list=True, changed=False, policy=POLICY) == 7200
    assert next_interval(700, is_list=True, changed=True, policy=POLICY) == 600  # min
    assert next_interval(6 * 86400, is_list=False, changed=False, policy=POLICY) == 8 * 86400  # max
    # A page whose change cannot be told (no earlier text) keeps its interval.
    assert next_interval(7200, is_list=True, changed=None, policy=POLICY) == 7200


def test_an_interval_converges_on_how_often_a_page_changes() -> None:
    """A page that changes at every visit is read ever more often, down to the minimum; one
    that never changes drifts to the maximum."""
    busy = quiet = None
    for _ in range(20):
        busy = next_interval(busy, is_list=True, changed=True if busy else None, policy=POLICY)
        quiet = next_interval(quiet, is_list=False, changed=False if quiet else None, policy=POLICY)
    assert (busy, quiet) == (POLICY.min_interval, POLICY.max_interval)


def test_bounds_that_contradict_each_other_are_refused() -> None:
    with pytest.raises(ValueError, match="list_pages"):
        RevisitPolicy(list_pages=60, min_interval=600)
    with pytest.raises(ValueError, match="min_interval"):
        RevisitPolicy(min_interval=10, max_interval=5)
    with pytest.raises(ValueError, match="list_pages"):
        Source(id="s", name="s", start_urls=["http://a/"], revisit={"list_pages": "1m"})
    source = Source(id="s", name="s", start_urls=["http://a/"], revisit={"list_pages": "5m", "min": "1m"})
    assert source.revisit.policy().list_pages == 300


def _state(status: UrlStatus, **fields: object) -> UrlState:
    return UrlState("http://a/x", "s", status, **fields)  # type: ignore[arg-type]


def test_schedule_compares_the_text_with_the_previous_visit() -> None:
    before = _state(UrlStatus.FETCHED, content_hash="h1", revisit_interval=7200.0)
    same = schedule_visit(
        _state(UrlStatus.FETCHED, content_hash="h1"), before, is_list=True, policy=POLICY, now=NOW
    )
    assert same.revisit_interval == 14400 and same.next_visit_at == NOW + timedelta(seconds=14400)
    new = schedule_visit(
        _state(UrlStatus.FETCHED, content_hash="h2"), before, is_list=True, policy=POLICY, now=NOW
    )
    assert new.revisit_interval == 3600
    not_modified = schedule_visit(
        _state(UrlStatus.NOT_MODIFIED), before, is_list=True, policy=POLICY, now=NOW
    )
    assert not_modified.revisit_interval == 14400
    failed = schedule_visit(_state(UrlStatus.FAILED_PERMANENT), before, is_list=True, policy=POLICY, now=NOW)
    assert failed.next_visit_at is None


def test_what_is_due() -> None:
    past, future = NOW - timedelta(seconds=1), NOW + timedelta(seconds=1)
    assert is_due(None, NOW)
    assert is_due(_state(UrlStatus.QUEUED), NOW)
    assert is_due(_state(UrlStatus.FETCHED, next_visit_at=past), NOW)
    assert not is_due(_state(UrlStatus.FETCHED, next_visit_at=future), NOW)
    assert is_due(_state(UrlStatus.DUPLICATE, next_visit_at=past), NOW)
    assert not is_due(_state(UrlStatus.FAILED_TRANSIENT), NOW)
    assert is_due(_state(UrlStatus.FAILED_TRANSIENT), NOW, retry_failed=True)
    for status in (UrlStatus.FAILED_PERMANENT, UrlStatus.DISALLOWED, UrlStatus.OUT_OF_SCOPE):
        assert not is_due(_state(status), NOW, retry_failed=True)


def test_conditional_headers_only_vouch_for_text_we_hold() -> None:
    date = "Sun, 29 Nov 2026 10:00:00 GMT"
    held = _state(UrlStatus.FETCHED, content_hash="h", etag='"e"', last_modified=date)
    assert conditional_headers(held) == {
        "If-None-Match": '"e"',
        "If-Modified-Since": date,
    }
    assert conditional_headers(_state(UrlStatus.FAILED_TRANSIENT, etag='"e"', content_hash="h")) == {}
    assert conditional_headers(_state(UrlStatus.FETCHED, etag='"e"')) == {}  # no text held
    assert conditional_headers(None) == {}
    # A validator a server sent in Latin-1 cannot be sent back (httpx refuses it): left out.
    odd = _state(UrlStatus.FETCHED, content_hash="h", etag='"\xe9t\xe9"', last_modified=date)
    assert conditional_headers(odd) == {"If-Modified-Since": date}


def test_a_list_pages_digest_ignores_link_order_and_sees_a_new_link() -> None:
    assert links_digest(["http://a/1", "http://a/2"]) == links_digest(
        ["http://a/2", "http://a/1", "http://a/1"]
    )
    assert links_digest(["http://a/1"]) != links_digest(["http://a/1", "http://a/3"])


# -- the embedded crawl ---------------------------------------------------------------------------


@pytest.fixture
def site() -> Iterator[RunningSite]:
    web = build_site(crawl_delay=0.0)
    web.add_site("flaky")
    web.add_route(
        "flaky", "/", html('<html><body><a href="/later">later</a><a href="/down">down</a></body></html>')
    )
    web.add_route(
        "flaky", "/later", fail_then(html("<html><body><p>back again</p></body></html>"), failures=1)
    )
    web.add_route("flaky", "/down", server_error(503))
    with serve_site(web) as running:
        yield running


def crawl(store: Store, source: Source, **options: object) -> CrawlStats:
    opts = crawl_options(
        {"per_host_delay": 0.0, "read_timeout": 5, "retry_base_delay": 0.01},
        concurrency=8,
        extract_workers=1,
        **options,
    )
    return asyncio.run(EmbeddedCrawl([source], store, opts).run())


def pages_requested(site: RunningSite) -> list[tuple[str, int]]:
    return [(r.path, r.status) for r in site.request_log.snapshot() if r.path != "/robots.txt"]


def test_a_second_crawl_visits_its_start_urls_and_only_what_is_due(
    site: RunningSite, tmp_path: Path
) -> None:
    """A crawl always visits the start URLs it names (conditionally: 304s here), and of the
    pages an earlier crawl read, only those whose next visit has come."""
    source = site.source(per_host_delay=0.0)
    starts = {urlsplit(u).netloc: urlsplit(u).path for u in source.start_urls}
    with open_store(f"sqlite:///{tmp_path / 'store.sqlite3'}") as store:
        first = crawl(store, source)
        assert first.documents_stored > 0
        site.request_log.clear()
        second = crawl(store, source)
        log = site.request_log.snapshot()
        requested = [(r.netloc, r.path, r.status) for r in log if r.path != "/robots.txt"]
        assert sorted(requested) == sorted((netloc, path, 304) for netloc, path in starts.items())
        assert second.pages_fetched == 0 and second.not_modified == len(source.start_urls)
        assert second.starts_answered == len(source.start_urls)
        # A start page keeps the list pages' interval (1 h by default), not the articles' (7 d).
        start_state = store.get_url(source.start_urls[0])
        assert start_state is not None and start_state.revisit_interval == 2 * 3600.0

        # Make one article due: the crawl visits it and the start URLs, conditionally.
        states = {s.url: s for s in store.iter_urls(source=source.id)}
        article = next(u for u, s in states.items() if s.status == UrlStatus.FETCHED and "/t" in u)
        states[article].next_visit_at = datetime.now(UTC) - timedelta(seconds=1)
        store.record_urls([states[article]])
        site.request_log.clear()
        third = crawl(store, source)
        requested_paths = {r.path for r in site.request_log.snapshot() if r.path != "/robots.txt"}
        assert requested_paths == set(starts.values()) | {urlsplit(article).path}
        assert third.not_modified == len(source.start_urls) + 1 and third.documents_stored == 0
        assert all(status == 304 for _, status in pages_requested(site))
        after = store.get_url(article)
        assert after is not None and after.status == UrlStatus.NOT_MODIFIED
        assert after.revisit_interval == 2 * states[article].revisit_interval  # type: ignore[operator]
        assert after.content_hash == states[article].content_hash


def test_revisit_all_asks_conditionally_and_stores_a_changed_article_as_a_new_version(
    site: RunningSite, tmp_path: Path
) -> None:
    source = site.source(per_host_delay=0.0)
    with open_store(f"sqlite:///{tmp_path / 'store.sqlite3'}") as store:
        crawl(store, source)
        documents = store.count_documents()
        states = {s.url: s for s in store.iter_urls(source=source.id)}
        article, page = next(
            (u, p) for u, p in _utf8_pages(site, states) if states[u].status == UrlStatus.FETCHED
        )
        before = next(d for d in store.iter_documents() if d.url == article)
        addition = "。补充说明：本通知自发布之日起施行，由科技厅负责解释。</p>".encode()
        changed = replace(page, body=page.body.replace(b"</p>", addition, 1))  # type: ignore[union-attr]
        site.web.add_route(*site.key_of(article), changed)
        site.request_log.clear()
        stats = crawl(store, source, revisit_all=True)
        assert stats.versions == 1 and stats.documents_stored == 0
        # Every other page was answered 304 and cost no extraction.
        statuses = [status for path, status in pages_requested(site)]
        assert statuses.count(200) == 1 and stats.not_modified == len(statuses) - 1 - stats.error_count
        versions = [d for d in store.iter_documents() if d.url == article]
        assert [(d.version, d.previous_version) for d in versions] == [(1, None), (2, before.content_hash)]
        assert "本通知自发布之日起施行" in versions[1].text
        latest = {d.content_hash for d in store.iter_documents(latest_only=True)}
        assert len(latest) == documents and before.content_hash not in latest
        state = store.get_url(article)
        assert state is not None and state.revisit_interval == states[article].revisit_interval / 2  # type: ignore[operator]


def _utf8_pages(site: RunningSite, states: dict[str, UrlState]) -> Iterator[tuple[str, Response]]:
    """Article pages of the crawl served as UTF-8 bytes (easy to edit in place)."""
    truth = site.truth
    for url in sorted(states):
        if url not in truth:
            continue
        page = site.web.fetch(*site.key_of(url))
        if not isinstance(page.body, bytes) or b"</p>" not in page.body:
            continue
        try:
            page.body.decode("utf-8")
        except UnicodeDecodeError:
            continue
        yield url, page


def test_transient_failures_are_retried_in_the_run_then_on_demand(
    site: RunningSite, tmp_path: Path
) -> None:
    """A page that answers 503 once is retried within the run and stored; one that keeps
    failing is recorded ``failed_transient`` once its tries are spent, and visited again only
    by a crawl asked to retry failures."""
    source = Source(
        id="flaky",
        name="flaky",
        start_urls=[site.url("flaky", "/")],
        max_depth=1,
        revisit={"list_pages": "1h"},
    )
    with open_store(f"sqlite:///{tmp_path / 'store.sqlite3'}") as store:
        first = crawl(store, source)
        later, down = site.url("flaky", "/later"), site.url("flaky", "/down")
        back = store.get_url(later)
        assert back is not None and (back.status, back.attempts) == (UrlStatus.FETCHED, 2)
        tries = 1 + crawl_options().retry.max_retries
        assert pages_requested(site).count(("/down", 503)) == tries
        assert first.retries == tries  # /later once, /down max_retries times
        failed = store.get_url(down)
        assert failed is not None
        assert (failed.status, failed.attempts) == (UrlStatus.FAILED_TRANSIENT, tries)
        site.request_log.clear()
        crawl(store, source)  # not asked to retry: the failure stays; the start page is asked again
        assert pages_requested(site) == [("/", 304)]
        site.request_log.clear()
        stats = crawl(store, source, retry_failed=True)
        assert sorted(pages_requested(site)) == [("/", 304)] + [("/down", 503)] * tries
        assert stats.resumed == 1
        still = store.get_url(down)
        assert still is not None and (still.status, still.error_reason) == (
            UrlStatus.FAILED_TRANSIENT,
            "http_503",
        )


def test_a_kind_decides_the_first_interval(site: RunningSite, tmp_path: Path) -> None:
    source = site.source(per_host_delay=0.0, revisit={"list_pages": "2h", "articles": "3d"})
    with open_store(f"sqlite:///{tmp_path / 'store.sqlite3'}") as store:
        crawl(store, source)
        from crawler.links import Scope

        scope = Scope(source)
        intervals = {
            (scope.judge(s.url, s.depth).kind, s.revisit_interval)
            for s in store.iter_urls(source=source.id)
            if s.status == UrlStatus.FETCHED
        }
    assert (PageKind.LIST, 7200.0) in intervals and (PageKind.ARTICLE, 3 * 86400.0) in intervals
    assert {interval for _, interval in intervals} == {7200.0, 3 * 86400.0}
