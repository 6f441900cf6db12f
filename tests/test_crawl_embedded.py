"""End to end on the embedded default: crawl the bundled sample web plus a hostile site, then
check the store against the web's ground truth and the server's request log."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from crawler.crawl import CrawlOptions, CrawlStats, EmbeddedCrawl
from crawler.dedup import DEFAULT_PARAMS
from crawler.document import EXPORT_KEYS
from crawler.links import Scope
from crawler.samplesite import (
    ADDED,
    CUT,
    ArticlePage,
    RunningSite,
    build_site,
    serve_site,
)
from crawler.samplesite.content import to_simplified
from crawler.sources import Source
from crawler.urls import canonicalize
from storage import UrlStatus, open_store
from tests.crawling import crawl_options
from tests.webs import HOSTILE, add_hostile_site


@dataclass
class CrawlRun:
    site: RunningSite
    stats: CrawlStats
    db_url: str
    options: CrawlOptions
    #: The statuses of the URL states the crawl still held in memory when it ended.
    held: list[UrlStatus]


@pytest.fixture(scope="module")
def crawl_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CrawlRun]:
    web = build_site(crawl_delay=0.2)
    add_hostile_site(web)

    work = tmp_path_factory.mktemp("crawl")
    db_url = f"sqlite:///{work / 'crawl.sqlite3'}"
    archive = work / "warc"
    with serve_site(web) as site:
        hostile = Source.from_urls([site.url("hostile", "/")], id="hostile", max_depth=1)
        options = crawl_options(
            {
                "per_host_delay": 0.02,
                "keep_duplicate_text": True,  # so that every page's extracted text can be checked
                "page_deadline": 3.0,
                "read_timeout": 2.5,
                "max_body_bytes": 1_000_000,
                "retry_base_delay": 0.05,  # transient failures are retried within the run
                "archive_enabled": True,
                "archive_dir": str(archive),
            },
            concurrency=8,
            extract_workers=2,
        )
        with open_store(db_url) as store:
            crawl = EmbeddedCrawl([site.source(), hostile], store, options)
            stats = asyncio.run(crawl.run())
        yield CrawlRun(site, stats, db_url, options, [state.status for state in crawl.known.values()])


def story_key(page: ArticlePage) -> str:
    """Pages with this key carry one story: exact reposts, Traditional reposts with readings and
    reposts with a paragraph added or cut are all copies of their article."""
    return page.article_id


def fetched_paths(site: RunningSite) -> Counter[str]:
    return Counter(
        f"http://{entry.netloc}{entry.path}"
        for entry in site.request_log
        if entry.method == "GET" and entry.path != "/robots.txt"
    )


def char_f1(a: str, b: str) -> float:
    ca = Counter(c for c in unicodedata.normalize("NFKC", a) if not c.isspace())
    cb = Counter(c for c in unicodedata.normalize("NFKC", b) if not c.isspace())
    overlap = sum((ca & cb).values())
    if not overlap:
        return 0.0
    precision, recall = overlap / sum(ca.values()), overlap / sum(cb.values())
    return 2 * precision * recall / (precision + recall)


def test_the_crawl_lets_go_of_the_states_of_urls_it_is_done_with(crawl_run: CrawlRun) -> None:
    """Memory flat in the number of URLs done: only states the run could read again (a URL
    waiting for a retry, or handed back queued) stay in view, not one per URL visited."""
    with open_store(crawl_run.db_url) as store:
        done = sum(
            1 for s in store.iter_urls() if s.status not in (UrlStatus.QUEUED, UrlStatus.FAILED_TRANSIENT)
        )
    assert done > 100
    assert all(status in (UrlStatus.QUEUED, UrlStatus.FAILED_TRANSIENT) for status in crawl_run.held)


def test_every_reachable_article_is_stored_exactly_once(crawl_run: CrawlRun) -> None:
    truth = crawl_run.site.truth
    reachable = crawl_run.site.reachable_urls()
    with open_store(crawl_run.db_url) as store:
        states = {url: store.get_url(url) for url in reachable}
        docs = list(store.iter_documents(source="sample-site"))
        hostile_docs = store.count_documents(source="hostile")
    missing = [url for url, state in states.items() if state is None]
    assert not missing, f"reachable articles never visited: {missing}"
    not_stored = {
        url: s.status
        for url, s in states.items()
        if s and s.status not in (UrlStatus.FETCHED, UrlStatus.DUPLICATE)
    }
    assert not not_stored, f"reachable articles not stored: {not_stored}"
    # One document per story: every repost (exact, Traditional with readings, a paragraph added
    # or cut) is a copy linked to the document of its own article.
    distinct = {story_key(truth[url]) for url in reachable}
    assert len(docs) == len(distinct)
    assert len({d.content_hash for d in docs}) == len(docs)
    assert crawl_run.stats.documents_stored == len(docs) + hostile_docs
    story_of = {story_key(truth[d.url]): d.content_hash for d in docs if d.url in truth}
    assert len(story_of) == len(docs)
    duplicates = {url for url, s in states.items() if s and s.status is UrlStatus.DUPLICATE}
    assert len(duplicates) == len(reachable) - len(distinct)
    # The exact key of each story's whole Simplified page, wherever it was stored.
    plain_keys = {
        story_key(truth[url]): s.content_hash
        for url, s in states.items()
        if s and not truth[url].traditional and truth[url].variant not in (ADDED, CUT)
    }
    with open_store(crawl_run.db_url) as store:
        for url in duplicates:
            found = store.get_copy(url)
            assert found is not None, url
            copy, similarity = found
            assert copy.duplicate_of == story_of[story_key(truth[url])], url
            assert DEFAULT_PARAMS.threshold <= similarity <= 1.0 and copy.source == "sample-site"
    # Traditional with readings has its original's exact key, whichever of them was stored as the
    # document. (Its similarity to the story's document is 1.0 only if that document is the whole
    # original: when a paragraph-added copy arrived first and became the document, a Traditional
    # copy arriving before the original is a near copy of it.)
    traditional = [
        url
        for url in reachable
        if truth[url].traditional
        and truth[url].variant not in (ADDED, CUT)
        and story_key(truth[url]) in plain_keys  # one story's original is not reachable
    ]
    assert len(traditional) >= 4
    for url in traditional:
        state = states[url]
        assert state is not None and state.content_hash == plain_keys[story_key(truth[url])], url


def test_stored_texts_match_the_articles_and_no_page_is_garbled(crawl_run: CrawlRun) -> None:
    truth = crawl_run.site.truth
    with open_store(crawl_run.db_url) as store:
        by_hash = {d.content_hash: d for d in store.iter_documents()}
        states = {url: store.get_url(url) for url in crawl_run.site.reachable_urls()}
        kept = {c.url: c for c, _ in store.iter_copies()}  # the crawl kept copies' text
    for url, state in states.items():
        assert state is not None, url
        doc = kept[url] if state.status is UrlStatus.DUPLICATE else by_hash[state.content_hash or ""]
        assert "\ufffd" not in doc.text, f"garbled: {url}"
        expected = truth[url].text
        got = to_simplified(doc.text) if truth[url].traditional else doc.text
        assert char_f1(got, expected) >= 0.97, f"{url}: text differs from the article\n{doc.text}"
        assert doc.source == "sample-site"
        assert doc.title and doc.published_at


def test_no_page_fetched_twice_and_no_robots_violation(crawl_run: CrawlRun) -> None:
    """Each page is fetched once, except those that failed transiently: tried again within the
    run, up to the retry policy's count."""
    counts = fetched_paths(crawl_run.site)
    twice = {url: n for url, n in counts.items() if n > 1}
    transient = {
        crawl_run.site.url("hostile", path)
        for path, (status, _) in HOSTILE.items()
        if status is UrlStatus.FAILED_TRANSIENT
    }
    tries = 1 + crawl_run.options.retry.max_retries
    assert twice == dict.fromkeys(transient, tries), f"fetched more than once: {twice}"
    disallowed = crawl_run.site.disallowed_urls() | {crawl_run.site.url("hostile", "/secret/plan.html")}
    assert disallowed, "the web must contain disallowed links for this test to mean anything"
    assert not disallowed & set(counts), "robots.txt was not honoured"


def test_every_failure_is_recorded_with_its_reason(crawl_run: CrawlRun) -> None:
    with open_store(crawl_run.db_url) as store:
        for path, (status, reason) in HOSTILE.items():
            state = store.get_url(crawl_run.site.url("hostile", path))
            assert state is not None, path
            assert (state.status, state.error_reason) == (status, reason), path
            assert state.error_message
        # Broken links the source's patterns follow must be tried and recorded; the others are
        # rightly never requested by a focused crawl.
        scope = Scope(crawl_run.site.source())
        broken = {url for url in crawl_run.site.broken_urls() if scope.judge(canonicalize(url), 1).follow}
        assert broken
        for url in broken:
            state = store.get_url(url)
            assert (
                state is not None
                and state.status is UrlStatus.FAILED_PERMANENT
                and state.error_reason == "http_404"
            )
    assert crawl_run.stats.errors["robots"] >= 1


def test_wrong_meta_charset_and_malformed_pages_still_extract(crawl_run: CrawlRun) -> None:
    with open_store(crawl_run.db_url) as store:
        for path in ("/charset.html", "/broken.html"):
            state = store.get_url(crawl_run.site.url("hostile", path))
            assert state is not None and state.status in (UrlStatus.FETCHED, UrlStatus.DUPLICATE), path
            assert state.content_hash, path
            # The hostile pages carry sample articles: stored, or recorded as a copy (text kept).
            found = store.get_copy(state.url)
            doc = found[0] if found is not None else store.get_document(state.content_hash)
            assert (
                doc is not None
                and "\ufffd" not in doc.text
                and any("\u4e00" <= c <= "\u9fff" for c in doc.text)
            )
        moved = store.get_url(crawl_run.site.url("hostile", "/moved.html"))
        assert moved is not None and moved.final_url == crawl_run.site.url("hostile", "/charset.html")


def test_cli_export_writes_the_documented_jsonl(crawl_run: CrawlRun, tmp_path: Path) -> None:
    out = tmp_path / "docs.jsonl"
    subprocess.run(
        [sys.executable, "-m", "cli", "export", "--db", crawl_run.db_url, "-o", str(out)],
        check=True,
        capture_output=True,
    )
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == crawl_run.stats.documents_stored
    for line in lines:
        assert tuple(line) == EXPORT_KEYS
        assert line["duplicate_of"] is None and line["text"] and len(line["content_hash"]) == 64
    stories = {line["content_hash"] for line in lines}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "cli",
            "export",
            "--with-copies",
            "--db",
            crawl_run.db_url,
            "-o",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    everything = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    copies = everything[len(lines) :]
    assert everything[: len(lines)] == lines
    assert len(copies) == crawl_run.stats.duplicates > 0
    for line in copies:
        assert tuple(line) == EXPORT_KEYS and line["duplicate_of"] in stories and line["text"]


# -- attachments and the raw archive ----------------------------------------------------------------


def test_attachments_are_downloaded_once_with_their_text(crawl_run: CrawlRun) -> None:
    """The sample notices' PDF and DOCX are stored with their text, the WPS without; the file
    linked from two pages (two URLs, the same bytes) is stored once, and both links point at it.
    Attachments are not crawled as pages."""
    site = crawl_run.site
    files = {site.url(name, path): file for (name, path), file in site.web.files.items()}
    same: dict[tuple[str, str], set[str]] = {}
    for url, file in files.items():
        same.setdefault((file.name, file.type), set()).add(url)
    assert {f.type for f in files.values()} >= {"pdf", "docx", "wps"}
    assert any(len(urls) > 1 for urls in same.values()), "the web must link one file twice"
    with open_store(crawl_run.db_url) as store:
        for (name, kind), urls in same.items():
            hashes = {store.attachment_sha256(url) for url in urls}
            assert len(hashes) == 1 and None not in hashes, name
            stored = store.get_attachment(hashes.pop() or "")
            assert stored is not None and stored.type == kind and stored.url in urls
            expected = files[stored.url].text
            if expected is None:
                assert stored.text is None
            else:
                assert stored.text is not None and char_f1(stored.text, expected) >= 0.97
        assert store.pending_attachments("sample-site") == []
        crawled = {url for url in files if store.get_url(url) is not None}
        assert not crawled, "an attachment was crawled as a page"
    assert crawl_run.stats.attachments >= len(same)


def test_every_fetched_page_is_in_the_raw_archive(crawl_run: CrawlRun, tmp_path: Path) -> None:
    from crawler.archive import archive_files, read_archive

    directory = Path(crawl_run.db_url.removeprefix("sqlite:///")).parent / "warc"
    records = list(read_archive(archive_files(directory)))
    kinds = Counter(r.kind for r in records)
    assert kinds["attachment"] == crawl_run.stats.attachments
    pages = sum(n for kind, n in kinds.items() if kind != "attachment")
    assert pages == crawl_run.stats.pages_fetched
    urls = {r.url for r in records}
    assert set(crawl_run.site.truth) & set(crawl_run.site.reachable_urls()) <= urls
