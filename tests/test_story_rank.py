"""The story's document is its best copy: the ranking (crawler.dedup.rank_key), the roles sources
declare, and the store replacing a document by a better copy that arrives later (promotion), on
SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
import threading
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import func, insert, select, text

from cli.export import export_rows
from crawler.dedup import (
    DEFAULT_PARAMS,
    ISSUER,
    REPOST,
    CopyRank,
    Fingerprint,
    best_copy,
    dedup_key,
    outranks,
    pack_signature,
    rank_key,
)
from crawler.document import Document
from crawler.samplesite import ADDED, CUT, ORIGINAL, SITE_NAMES, ArticlePage, build_site
from crawler.samplesite import REPOST as REPOST_VARIANT
from crawler.samplesite.content import (
    ARTICLES,
    get_article,
    to_traditional,
    with_added_paragraph,
    with_cut_paragraph,
)
from crawler.sources import Source, load_source, load_sources
from seeds import SEEDS_DIR
from storage import SCHEMA_VERSION, Store, StoryOutcome, UrlState, UrlStatus, open_store
from storage.sql import document_signatures, near_dup_bands, schema_version

S004 = "s004-sichuan-guangan-consultation"
S001 = "s001-torch-qinghai-clusters"

# -- the ranking -----------------------------------------------------------------------------------


def test_each_criterion_decides_only_when_the_earlier_ones_tie() -> None:
    base = CopyRank(role=None, lang="zh-Hans", published_at="2024-03-15", length=800)
    # 1. the role: an issuer's copy wins over everything below it, a repost portal's loses
    issuer_but_worse = replace(base, role=ISSUER, damaged=True, published_at="2024-04-01", length=10)
    assert outranks(issuer_but_worse, base) and outranks(base, replace(base, role=REPOST))
    # 2. cleanliness: Simplified without readings > converted or Traditional > damaged
    converted = replace(base, converted=True, lang="zh-Hant", published_at="2024-01-01", length=2000)
    assert outranks(base, converted) and outranks(base, replace(base, lang="zh-Hant"))
    assert outranks(converted, replace(base, damaged=True, published_at="2024-01-01", length=2000))
    # 3. the earliest day; a time of day does not count, a missing date comes last
    assert outranks(replace(base, published_at="2024-03-14", length=1), base)
    assert not outranks(replace(base, published_at="2024-03-15T08:00:00+08:00", length=10), base)
    assert not outranks(replace(base, published_at="2024-03-15 23:59", length=10), base)
    assert outranks(base, replace(base, published_at=None, length=5000))
    assert outranks(base, replace(base, published_at="not a date", length=5000))
    # 4. completeness: the longer canonical key
    assert outranks(replace(base, length=801), base) and not outranks(base, replace(base, length=801))
    # 5. the page's URL: equal copies on two pages still have one order (arrival never decides)
    assert outranks(replace(base, url="https://a.cn/1"), replace(base, url="https://b.cn/1"))
    # the same page (a re-crawl) ties and keeps the incumbent
    assert not outranks(base, replace(base)) and rank_key(base) == rank_key(replace(base))


def test_the_best_copy_is_the_same_in_every_order() -> None:
    ranks = {
        "issuer": CopyRank(role=ISSUER, lang="zh-Hans", published_at="2024-03-15", length=800),
        "issuer-cut": CopyRank(role=ISSUER, lang="zh-Hans", published_at="2024-03-15", length=700),
        "neutral-added": CopyRank(lang="zh-Hans", published_at="2024-03-15", length=830),
        "neutral-later": CopyRank(lang="zh-Hans", published_at="2024-03-16", length=900),
        "repost-converted": CopyRank(role=REPOST, converted=True, lang="zh-Hant", length=800),
        "damaged": CopyRank(damaged=True, published_at="2024-03-01", length=900),
    }
    for order in itertools.permutations(ranks.items()):
        assert best_copy(order) == "issuer"
    assert best_copy([]) is None


def test_sources_declare_roles_validated() -> None:
    source = Source(
        id="two-portals",
        name="two portals",
        start_urls=["https://a.gov.cn/", "http://127.0.0.1:8806/"],
        role="issuer",
        host_roles={"127.0.0.1:8806": "repost"},
    )
    assert source.role_for("http://127.0.0.1:8806/keji/1.html") == REPOST
    assert source.role_for("https://a.gov.cn/x.html") == ISSUER
    plain = Source(id="plain", name="p", start_urls=["https://a.gov.cn/"])
    assert plain.role_for("https://a.gov.cn/") is None
    with pytest.raises(ValidationError, match="issuer"):
        Source(id="bad", name="b", start_urls=["https://a.gov.cn/"], role="original")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="not in allowed_hosts"):
        Source(id="bad", name="b", start_urls=["https://a.gov.cn/"], host_roles={"b.gov.cn": "repost"})


def test_shipped_seeds_declare_issuers_and_repost_portals() -> None:
    roles = {source_id: source.role for source_id, source in load_sources(SEEDS_DIR).items()}
    assert roles.pop("sample-site") is None  # its portals are of both kinds: declared per host
    assert {k for k, v in roles.items() if v == REPOST} == {"ctex", "dstuf"}
    assert all(v == ISSUER for k, v in roles.items() if k not in ("ctex", "dstuf"))


def test_the_sample_webs_source_declares_its_portals_roles() -> None:
    """seeds/sample-site.toml names the roles crawler/samplesite gives its portals (the repost
    portal and the exchange republish), so a crawl of the sample web ranks as its truth says."""
    web = build_site()
    source = load_source(SEEDS_DIR / "sample-site.toml")
    declared = {name: source.role_for(f"http://127.0.0.1:{8801 + i}/") for i, name in enumerate(SITE_NAMES)}
    assert declared == {name: web.role_of(name) for name in SITE_NAMES}
    assert declared["repost"] == REPOST


def truth_rank(web_role: str | None, page: ArticlePage) -> CopyRank:
    """The rank a perfect crawl gives a sample page (its expected text and metadata)."""
    return CopyRank(
        role=web_role,
        converted=page.traditional,
        lang="zh-Hant" if page.traditional else "zh-Hans",
        published_at=page.date,
        length=len(dedup_key(page.text)),
    )


def test_every_sample_story_ranks_its_original_above_each_repost() -> None:
    """The sample web's ground truth is consistent with the ranking: whatever order a crawl
    meets them in, each story's original is the best copy (no tie it could lose by arrival)."""
    web = build_site()
    stories: dict[str, list[ArticlePage]] = {}
    for article in web.articles.values():
        stories.setdefault(article.article_id, []).append(article)
    reposts = 0
    for pages in stories.values():
        original = next(p for p in pages if p.variant == ORIGINAL)
        best = truth_rank(web.role_of(original.site), original)
        for repost in (p for p in pages if p.variant in (REPOST_VARIANT, ADDED, CUT)):
            reposts += 1
            assert outranks(best, truth_rank(web.role_of(repost.site), repost)), (original, repost)
    assert reposts == 12  # of 8 stories: exact, Traditional with readings, a paragraph added or cut


# -- promotion in the store ------------------------------------------------------------------------


def page(
    url: str,
    text: str,
    *,
    role: str | None = None,
    converted: bool = False,
    lang: str = "zh-Hans",
    published_at: str | None = "2024-03-15",
    version: int = 1,
) -> tuple[Document, Fingerprint]:
    fp = Fingerprint.of(text)
    doc = Document(
        url=url,
        final_url=url,
        text=text,
        source="s",
        title=url.rsplit("/", 1)[-1],
        published_at=published_at,
        content_hash=fp.content_hash,
        lang=lang,
        source_role=role,
        converted=converted,
        version=version,
    )
    return doc, fp


def variants(article_id: str = S004, tag: str = "") -> dict[str, tuple[Document, Fingerprint]]:
    """One story's copies as a crawl stores them (the repost's readings already stripped): the
    original on an issuer's portal, the Traditional repost on the repost portal, a copy with a
    paragraph added and one with a paragraph cut on undeclared portals. ``tag`` ends the URLs."""
    article = get_article(article_id)
    return {
        "original": page(f"https://sckjt/a{tag}", article.text, role=ISSUER),
        "repost": page(
            f"https://repost/b{tag}",
            to_traditional(article.text, key=article_id, readings=False),
            role=REPOST,
            converted=True,
            lang="zh-Hant",
        ),
        "added": page(f"https://haixi/c{tag}", with_added_paragraph(article).text),
        "cut": page(f"https://hitech/d{tag}", with_cut_paragraph(article).text),
    }


def states_of(items: list[tuple[Document, Fingerprint]]) -> list[UrlState]:
    return [UrlState(d.url, "s", UrlStatus.FETCHED, 1, content_hash=d.content_hash) for d, _ in items]


def story_of(store: Store) -> tuple[Document, dict[str, tuple[Document, float]]]:
    """The one document, and the copies by URL."""
    (doc,) = store.iter_documents()
    return doc, {c.url: (c, s) for c, s in store.iter_copies()}


def index_rows(store: Store) -> tuple[set[int], int]:
    """The document ids the LSH index points at, and the number of signatures."""
    with store.engine.connect() as conn:
        ids = set(conn.execute(select(near_dup_bands.c.document_id).distinct()).scalars())
        signatures = int(conn.scalar(select(func.count()).select_from(document_signatures)) or 0)
    return ids, signatures


def test_a_better_copy_arriving_later_becomes_the_document_and_every_copy_follows(store: Store) -> None:
    v = variants()
    first = [v["repost"], v["added"], v["cut"]]
    outcomes = store.add_stories(first, states=states_of(first))
    repost_hash = v["repost"][0].content_hash
    assert [(o.status, o.duplicate_of) for o in outcomes] == [
        ("stored", None),
        ("promoted", None),  # an undeclared portal's Simplified text beats the repost portal's
        ("copy", v["added"][0].content_hash),
    ]
    assert outcomes[1].demoted == "https://repost/b"
    # The original (an issuer's) arrives last: it is the story's document now.
    original = v["original"]
    (late,) = store.add_stories([original], states=states_of([original]))
    assert late == StoryOutcome("promoted", demoted="https://haixi/c")
    doc, copies = story_of(store)
    assert doc.url == original[0].url and doc.content_hash == original[0].content_hash == repost_hash
    assert (doc.version, doc.previous_version, doc.source_role) == (1, None, ISSUER)
    assert set(copies) == {"https://repost/b", "https://haixi/c", "https://hitech/d"}
    assert {c.duplicate_of for c, _ in copies.values()} == {doc.content_hash}
    # The demoted documents keep what ranks them, their metadata, and no text (keep_text off).
    repost, similarity = copies["https://repost/b"]
    assert (repost.source_role, repost.converted, repost.lang, repost.text) == (REPOST, True, "zh-Hant", "")
    assert similarity == 1.0 and repost.content_hash == repost_hash  # the Traditional copy has its key
    added, similarity = copies["https://haixi/c"]
    assert DEFAULT_PARAMS.threshold <= similarity < 1.0 and added.title == "c"
    # The index points at the document only: its text is what later pages are compared with.
    with store.engine.connect() as conn:
        (doc_id,) = conn.execute(text("SELECT id FROM documents")).scalars()
    assert index_rows(store) == ({doc_id}, 1)
    # URL states follow: the document's page is fetched, every other one a duplicate.
    recorded = store.get_urls([d.url for d, _ in v.values()])
    assert {url: s.status for url, s in recorded.items()} == {
        "https://sckjt/a": UrlStatus.FETCHED,
        "https://repost/b": UrlStatus.DUPLICATE,
        "https://haixi/c": UrlStatus.DUPLICATE,
        "https://hitech/d": UrlStatus.DUPLICATE,
    }
    # A re-crawl of the document or of a copy changes nothing.
    again = store.add_stories([original, v["added"], v["repost"]])
    assert [o.status for o in again] == ["unchanged", "copy", "copy"]
    assert story_of(store)[0].url == original[0].url and store.count_copies() == 3


def test_a_demoted_document_keeps_its_text_only_when_asked(store: Store) -> None:
    for keep_text, v in ((True, variants(tag="1")), (False, variants("sc-mianyang-consultation", "2"))):
        store.add_stories([v["cut"]], keep_text=keep_text)
        (outcome,) = store.add_stories([v["original"]], keep_text=keep_text)
        assert outcome.status == "promoted"
        found = store.get_copy(v["cut"][0].url)
        assert found is not None
        cut, similarity = found
        assert cut.text == (v["cut"][0].text if keep_text else "")
        assert DEFAULT_PARAMS.threshold <= similarity < 1.0
        assert cut.duplicate_of == v["original"][0].content_hash
    assert store.count_documents() == 2


def test_a_copy_arriving_after_a_promotion_finds_the_story(store: Store) -> None:
    v = variants()
    store.add_stories([v["cut"]])
    (promoted,) = store.add_stories([v["original"]])
    assert promoted.status == "promoted" and promoted.demoted == "https://hitech/d"
    story = v["original"][0].content_hash
    article = get_article(S004)
    later = [
        v["repost"],  # the original's exact key
        v["added"],  # a near copy, found through the document's bands
        # the demoted copy's exact key from another URL: found through that copy
        page("https://ctex/e", with_cut_paragraph(article).text, role=REPOST),
    ]
    outcomes = store.add_stories(later)
    assert [(o.status, o.duplicate_of) for o in outcomes] == [("copy", story)] * 3
    assert store.count_documents() == 1 and store.count_copies() == 4
    assert {c.duplicate_of for c, _ in store.iter_copies()} == {story}


def test_a_promoted_document_keeps_versions_working(store: Store) -> None:
    v = variants()
    store.add_stories([v["repost"]])
    store.add_stories([v["original"]])
    story = v["original"][0].content_hash
    # The document's page changes: its next version (the earlier one kept, the export shows the latest).
    edited_text = v["original"][0].text + "\n（2024年3月16日更新：申报截止日期延长至4月30日。）"
    edited = page("https://sckjt/a", edited_text, role=ISSUER)
    (outcome,) = store.add_stories([edited])
    assert (outcome.status, outcome.previous_version) == ("version", story)
    latest = list(store.iter_documents(latest_only=True))
    assert [(d.url, d.version, d.previous_version) for d in latest] == [("https://sckjt/a", 2, story)]
    # The demoted page changes into a story of its own: stored, no longer a copy.
    other = get_article("sc-mianyang-consultation").text
    (own,) = store.add_stories([page("https://repost/b", other, role=REPOST)])
    assert own.status == "stored" and store.get_copy("https://repost/b") is None


def test_a_demoted_latest_version_keeps_its_earlier_versions_replaced(store: Store) -> None:
    """A repost page that changed (version 2) and then lost its story to the original: its
    version 1 must not come back as the page's latest text."""
    v = variants()
    first = page("https://repost/b", get_article("sc-nanchong-consultation").text, role=REPOST)
    store.add_stories([first])
    (changed,) = store.add_stories([v["repost"]])
    assert changed.status == "version"
    (promoted,) = store.add_stories([v["original"]])
    assert promoted.status == "promoted"
    found = store.get_copy("https://repost/b")
    assert found is not None and (found[0].version, found[0].previous_version) == (2, first[0].content_hash)
    latest = [d.url for d in store.iter_documents(latest_only=True)]
    assert latest == ["https://sckjt/a"]
    assert len(list(store.iter_documents())) == 2  # version 1 is kept


def test_an_outdated_document_is_not_replaced(store: Store) -> None:
    """A document whose page has a newer record (here: it became a copy of another story) is
    an outdated text of that page: a better copy of it is recorded as a copy, as before."""
    v, w = variants(), variants("sc-mianyang-consultation")
    store.add_stories([v["repost"], w["original"]])
    (moved,) = store.add_stories([page("https://repost/b", w["original"][0].text, role=REPOST)])
    assert moved.status == "copy"
    (outcome,) = store.add_stories([v["original"]])
    assert (outcome.status, outcome.duplicate_of) == ("copy", v["repost"][0].content_hash)
    assert sorted(d.url for d in store.iter_documents()) == ["https://repost/b", "https://sckjt/a"]
    assert store.get_document(v["repost"][0].content_hash).url == "https://repost/b"  # type: ignore[union-attr]


def test_a_page_demoted_within_its_own_batch_ends_duplicate(store: Store) -> None:
    v = variants()
    batch = [v["repost"], v["original"]]
    outcomes = store.add_stories(batch, states=states_of(batch))
    assert [o.status for o in outcomes] == ["stored", "promoted"]
    recorded = store.get_urls(["https://repost/b", "https://sckjt/a"])
    assert recorded["https://repost/b"].status is UrlStatus.DUPLICATE
    assert recorded["https://sckjt/a"].status is UrlStatus.FETCHED


def test_duplicates_and_export_show_the_document_first(sqlite_url: str, tmp_path: Path) -> None:
    v = variants()
    with open_store(sqlite_url) as store:
        for name in ("repost", "cut", "added", "original"):
            store.add_stories([v[name]])
        rows = list(export_rows(store, with_copies=True))
    documents = [r for r in rows if r["duplicate_of"] is None]
    assert [r["url"] for r in documents] == ["https://sckjt/a"]
    assert rows[: len(documents)] == documents  # documents, then copies
    assert {r["duplicate_of"] for r in rows[len(documents) :]} == {documents[0]["content_hash"]}
    run = [sys.executable, "-m", "cli", "duplicates", "--db", sqlite_url]
    listed = json.loads(subprocess.run([*run, "--json"], capture_output=True, text=True, check=True).stdout)
    assert [(s["url"], s["document"]["role"]) for s in listed] == [("https://sckjt/a", ISSUER)]
    assert {c["url"] for c in listed[0]["copies"]} == {
        "https://repost/b",
        "https://hitech/d",
        "https://haixi/c",
    }
    table = subprocess.run(run, capture_output=True, text=True, check=True).stdout
    lines = [line for line in table.splitlines() if "https://" in line]
    assert "document" in lines[0] and "https://sckjt/a" in lines[0]
    assert all("copy" in line for line in lines[1:]) and len(lines) == 4


def test_a_version_6_database_is_upgraded_and_ranks_its_old_rows(store_url: str) -> None:
    """Schema 6 -> 7 adds what ranks a story's copies: old rows are kept (undeclared role, not
    converted, length measured from the text when needed) and can be replaced by a better copy."""
    added = {
        "documents": ("source_role", "converted", "damaged", "key_length"),
        "copies": ("source_role", "converted", "damaged", "key_length", "version", "previous_version"),
    }
    v = variants()
    old, old_fp = v["cut"]
    with open_store(store_url) as store, store.engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_copies_previous_version"))
        for table, columns in added.items():  # the schema as version 6 made it
            for column in columns:
                conn.execute(text(f'ALTER TABLE {table} DROP COLUMN "{column}"'))
        conn.execute(text("DELETE FROM schema_version"))
        conn.execute(insert(schema_version).values(version=6, applied_at=datetime.now(UTC)))
        row = {
            "url": old.url,
            "final_url": old.url,
            "text": old.text,
            "content_hash": old.content_hash,
            "fetched_at": datetime(2024, 5, 1, tzinfo=UTC),
            "lang": "zh-Hans",
            "published_at": old.published_at,
        }
        doc_id = conn.execute(
            text(
                "INSERT INTO documents (url, final_url, text, content_hash, fetched_at, lang, "
                "published_at, version) VALUES (:url, :final_url, :text, :content_hash, :fetched_at, "
                ":lang, :published_at, 1) RETURNING id"
            ),
            row,
        ).scalar_one()
        bands = [{"band_key": k, "document_id": doc_id} for k in set(old_fp.bands)]
        conn.execute(insert(near_dup_bands), bands)
        conn.execute(
            insert(document_signatures).values(document_id=doc_id, signature=pack_signature(old_fp.signature))
        )
    with open_store(store_url) as store:
        (kept,) = store.iter_documents()
        assert (kept.url, kept.source_role, kept.converted, kept.damaged) == (old.url, None, False, False)
        # An exact copy from an undeclared portal ranks below it only by its URL (old length
        # measured from the text): a copy.
        (tie,) = store.add_stories([(replace(old, url="https://other/1"), old_fp)])
        assert tie.status == "copy"
        (outcome,) = store.add_stories([v["original"]])
        assert outcome.status == "promoted" and outcome.demoted == old.url
        assert {c.duplicate_of for c, _ in store.iter_copies()} == {v["original"][0].content_hash}
        with store.engine.connect() as conn:
            versions = conn.execute(select(schema_version.c.version).order_by(schema_version.c.version))
            assert versions.scalars().all() == [6, SCHEMA_VERSION] and SCHEMA_VERSION == 7


# -- concurrent writers on PostgreSQL ---------------------------------------------------------------


def _at_once(calls: list[tuple[Store, tuple[Document, Fingerprint]]]) -> list[StoryOutcome]:
    """Each item stored by its own thread through its store, all at one moment."""
    barrier = threading.Barrier(len(calls))
    results: list[StoryOutcome | BaseException | None] = [None] * len(calls)

    def run(i: int) -> None:
        store, item = calls[i]
        try:
            barrier.wait()
            results[i] = store.add_stories([item])[0]
        except BaseException as exc:  # reported below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    errors = [r for r in results if not isinstance(r, StoryOutcome)]
    assert not errors, errors
    return [r for r in results if isinstance(r, StoryOutcome)]


def _race(url: str, items: list[tuple[Document, Fingerprint]]) -> list[StoryOutcome]:
    """Each item stored by its own thread and store (own connections), all at one moment."""
    stores = [open_store(url) for _ in items]
    try:
        return _at_once(list(zip(stores, items, strict=True)))
    finally:
        for store in stores:
            store.close()


@pytest.mark.services
def test_an_original_and_its_repost_stored_at_once_end_as_one_document(pg_url: str) -> None:
    """Two writers, one with the original, one with its repost, at the same moment, for many
    stories: each ends with one document, the original, and the repost its copy."""
    stories = [a.id for a in ARTICLES[:12]]
    for n, article_id in enumerate(stories):
        v = variants(article_id, f"/{n}")
        pair = [v["repost"], v["original"]]
        if n % 2:
            pair.reverse()
        outcomes = _race(pg_url, pair)
        assert sorted(o.status for o in outcomes) in (["copy", "stored"], ["promoted", "stored"])
    with open_store(pg_url) as store:
        documents = list(store.iter_documents())
        assert len(documents) == len(stories) and all(d.url.startswith("https://sckjt/") for d in documents)
        hashes = {d.content_hash for d in documents}
        copies = list(store.iter_copies())
        assert len(copies) == len(stories) and {c.duplicate_of for c, _ in copies} <= hashes
        assert all(c.url.startswith("https://repost/") for c, _ in copies)


@pytest.mark.services
def test_many_copies_stored_at_once_end_with_the_original_as_the_document(pg_url: str) -> None:
    """Eight writers with every kind of copy of one story, in a different order each round (the
    near copies share only some bands with each other): one document, the original, and every
    other page a copy of it."""
    rng = random.Random(13)
    for round_ in range(4):
        items = [
            (d, fp)
            for twice in (1, 2)
            for d, fp in variants(ARTICLES[round_].id, f"/{round_}/{twice}").values()
        ]
        rng.shuffle(items)
        _race(pg_url, items)
    with open_store(pg_url) as store:
        documents = list(store.iter_documents())
        assert len(documents) == 4 and all(d.url.startswith("https://sckjt/") for d in documents)
        copies = list(store.iter_copies())
        assert len(copies) == 4 * 7
        assert {c.duplicate_of for c, _ in copies} == {d.content_hash for d in documents}


def _paragraph(rng: random.Random, size: int = 60) -> str:
    return "".join(chr(rng.randrange(0x4E00, 0x9FA5)) for _ in range(size))


def _far_copies(rng: random.Random) -> tuple[str, str, str]:
    """A text, one copy with paragraphs added and one with paragraphs cut, such that each copy
    shares LSH bands with the text but the two copies share none with each other."""
    while True:
        base = [_paragraph(rng) for _ in range(10)]
        texts = ("\n".join(base), "\n".join(base + [_paragraph(rng) for _ in range(6)]), "\n".join(base[:6]))
        text_bands, added, cut = (set(Fingerprint.of(t).bands) for t in texts)
        if text_bands & added and text_bands & cut and not added & cut:
            return texts


@pytest.mark.services
def test_a_copy_and_a_promotion_that_share_no_band_wait_for_each_other(pg_url: str) -> None:
    """A repost portal's text is stored; then, at one moment, an issuer's longer copy replaces
    it while another repost (sharing bands with the stored text, none with the issuer's copy)
    is recorded as its copy. The promotion takes the locks of all the demoted document's bands,
    so the two wait for each other: the copy is never left pointing at a document that is gone.
    (Without those locks about a third of these rounds left a dangling copy.)"""
    rng = random.Random(7)
    rounds, own_stories = 30, 0
    with open_store(pg_url) as first, open_store(pg_url) as second:
        for n in range(rounds):
            text_, added, cut = _far_copies(rng)
            first.add_stories([page(f"https://repost/{n}", text_, role=REPOST)])
            issuer = page(f"https://issuer/{n}", added, role=ISSUER)
            other = page(f"https://other/{n}", cut, role=REPOST)
            outcomes = _at_once([(first, issuer), (second, other)])
            assert outcomes[0].status == "promoted"
            # Stored after the promotion, the cut copy is compared with the issuer's text (the
            # story's document), which it is not close enough to: a story of its own, as it
            # would be in that order one page at a time.
            own_stories += outcomes[1].status == "stored"
        documents = {d.content_hash: d.url for d in first.iter_documents()}
        copies = list(first.iter_copies())
    assert not [c.url for c, _ in copies if c.duplicate_of not in documents]
    assert sorted(u for u in documents.values() if u.startswith("https://issuer/")) == sorted(
        f"https://issuer/{n}" for n in range(rounds)
    )
    assert len(documents) == rounds + own_stories and len(copies) == 2 * rounds - own_stories
