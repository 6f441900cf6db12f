"""One story, one document: the canonical key, MinHash/LSH, the store's copies, the quality gate."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crawler import neardup_eval
from crawler.dedup import (
    DEFAULT_PARAMS,
    Fingerprint,
    MemoryIndex,
    NearDupParams,
    band_keys,
    content_hash,
    dedup_key,
    estimated_similarity,
    jaccard,
    shingle_hashes,
    signature,
    similarity,
)
from crawler.document import Document
from crawler.samplesite.content import (
    ARTICLES,
    generated_article,
    get_article,
    to_traditional,
    with_added_paragraph,
    with_cut_paragraph,
)
from storage import Store, UrlState, UrlStatus, open_store

S004 = "s004-sichuan-guangan-consultation"

# -- the exact key ---------------------------------------------------------------------------------


@pytest.mark.parametrize("article", ARTICLES, ids=lambda a: a.id)
def test_traditional_with_readings_has_the_originals_key(article: object) -> None:
    text = article.text  # type: ignore[attr-defined]
    reposted = to_traditional(text, key=article.id)  # type: ignore[attr-defined]
    assert reposted != text and "(" in reposted
    assert dedup_key(reposted) == dedup_key(text)
    assert content_hash(reposted) == content_hash(text)


def test_key_ignores_punctuation_whitespace_and_width_but_not_words() -> None:
    base = "科技部召开2024年全国科技工作会议，部署重点任务。"
    assert content_hash(base) == content_hash("科技部召开２０２４年全国科技工作会议, 部署重点任务.\n")
    assert content_hash(base) == content_hash("科技部召開(zhào kāi)2024年全國科技工作會議：部署重點任務！")
    assert content_hash(base) != content_hash(base.replace("2024", "2025"))
    assert dedup_key(base) == "科技部召开2024年全国科技工作会议部署重点任务"
    assert len(content_hash(base)) == 64


# -- MinHash and LSH -------------------------------------------------------------------------------


def test_signature_estimates_jaccard_and_bands_find_near_duplicates() -> None:
    article = get_article(S004)
    near = with_cut_paragraph(article).text
    a = shingle_hashes(dedup_key(article.text), DEFAULT_PARAMS.shingle)
    b = shingle_hashes(dedup_key(near), DEFAULT_PARAMS.shingle)
    exact = jaccard(a, b)
    sig_a, sig_b = signature(a, DEFAULT_PARAMS.num_perm), signature(b, DEFAULT_PARAMS.num_perm)
    assert len(sig_a) == DEFAULT_PARAMS.num_perm and all(0 <= v < 2**32 for v in sig_a)
    assert abs(estimated_similarity(sig_a, sig_b) - exact) < 0.15
    keys_a = band_keys(sig_a, DEFAULT_PARAMS.bands, DEFAULT_PARAMS.rows)
    assert set(keys_a) & set(band_keys(sig_b, DEFAULT_PARAMS.bands, DEFAULT_PARAMS.rows))
    unrelated = signature(shingle_hashes(dedup_key(generated_article(7).text), 5), DEFAULT_PARAMS.num_perm)
    assert not set(keys_a) & set(band_keys(unrelated, DEFAULT_PARAMS.bands, DEFAULT_PARAMS.rows))
    assert signature(a, 64) == signature(set(a), 64)  # deterministic, order-free
    assert Fingerprint.of(article.text) == Fingerprint.of(article.text)


def test_a_fingerprint_without_shingles_keeps_its_keys_and_stores_the_same() -> None:
    """``keep_shingles=False`` (the embedded crawl's pages cross a pipe and wait for the
    writer): the same hash, signature and bands, an empty set, and the store recomputes the set
    when a candidate needs it, so the outcomes are those of full fingerprints."""
    article = get_article(S004)
    full, bare = Fingerprint.of(article.text), Fingerprint.of(article.text, keep_shingles=False)
    assert full.shingles and not bare.shingles
    assert (bare.content_hash, bare.signature, bare.bands) == (full.content_hash, full.signature, full.bands)
    # (the portals' roles as the sample web declares them: the original's copy stays the document)
    texts = [
        ("https://sckjt/a", article.text, "issuer"),
        ("https://haixi/c", with_added_paragraph(article).text, None),
        ("https://repost/b", to_traditional(article.text, key=S004), "repost"),
    ]
    outcomes = []
    for keep in (True, False):
        with Store("sqlite://") as memory:
            items = []
            for url, text, role in texts:
                fp = Fingerprint.of(text, keep_shingles=keep)
                doc = Document(
                    url=url, final_url=url, text=text, content_hash=fp.content_hash, source_role=role
                )
                items.append((doc, fp))
            outcomes.append([(r.status, r.duplicate_of, r.similarity) for r in memory.add_stories(items)])
    assert outcomes[0] == outcomes[1]
    assert [status for status, _, _ in outcomes[0]] == ["stored", "copy", "copy"]


def test_memory_index_links_reposts_and_keeps_same_topic_stories_apart() -> None:
    index = MemoryIndex()
    first, of, _ = index.add(get_article(S004).text)
    assert of is None
    for text in (
        to_traditional(get_article(S004).text, key=S004),
        with_added_paragraph(get_article(S004)).text,
        with_cut_paragraph(get_article(S004)).text,
    ):
        _, of, sim = index.add(text)
        assert of == first and sim >= DEFAULT_PARAMS.threshold
    for other in ("sc-mianyang-consultation", "sc-nanchong-consultation"):
        assert similarity(get_article(other).text, get_article(S004).text) < DEFAULT_PARAMS.threshold
        _, of, _ = index.add(get_article(other).text)
        assert of is None


def test_params_are_validated() -> None:
    with pytest.raises(ValueError):
        NearDupParams(bands=3, rows=5)
    with pytest.raises(ValueError):
        NearDupParams(threshold=0.0)


# -- the store -------------------------------------------------------------------------------------


#: The roles the sample web's source declares for these portals (seeds/sample-site.toml): with
#: them the original is its story's document whatever the order (see crawler.dedup.rank_key).
ROLES = {"sckjt": "issuer", "repost": "repost", "ctex": "repost"}


def _doc(url: str, text: str, source: str = "s") -> tuple[Document, Fingerprint]:
    fp = Fingerprint.of(text)
    doc = Document(
        url=url,
        final_url=url,
        text=text,
        source=source,
        content_hash=fp.content_hash,
        source_role=ROLES.get(source),
    )
    return doc, fp


def test_store_keeps_one_document_per_story_and_records_copies(store: Store) -> None:
    article = get_article(S004)
    original = _doc("https://sckjt/a", article.text, "sckjt")
    results = store.add_stories(
        [
            original,
            _doc("https://repost/b", to_traditional(article.text, key=S004), "repost"),
            _doc("https://haixi/c", with_added_paragraph(article).text, "haixi"),
            _doc("https://sckjt/mianyang", get_article("sc-mianyang-consultation").text, "sckjt"),
        ]
    )
    assert [r.status for r in results] == ["stored", "copy", "copy", "stored"]
    story = original[0].content_hash
    assert results[1].duplicate_of == story and results[1].similarity == 1.0
    assert results[2].duplicate_of == story and DEFAULT_PARAMS.threshold <= results[2].similarity < 1.0
    # A later batch: a cut repost (near), an exact copy of a copy, and a re-crawl of the original.
    later = store.add_stories(
        [
            _doc("https://hitech/d", with_cut_paragraph(article).text, "hitech"),
            _doc("https://ctex/e", with_added_paragraph(article).text, "ctex"),
            original,
        ]
    )
    assert [(r.status, r.duplicate_of) for r in later] == [
        ("copy", story),
        ("copy", story),
        ("unchanged", None),
    ]
    assert store.count_documents() == 2 and store.count_copies() == 4
    copies = list(store.iter_copies(duplicate_of=story))
    assert [c.url for c, _ in copies] == [
        "https://repost/b",
        "https://haixi/c",
        "https://hitech/d",
        "https://ctex/e",
    ]
    assert all(c.duplicate_of == story and c.text == "" and c.source for c, _ in copies)
    assert store.stats()["copies"] == 4
    # Kept text when asked; a re-visit of a copy updates its row instead of adding one.
    store.add_stories([_doc("https://repost/b", to_traditional(article.text, key=S004))], keep_text=True)
    again = dict((c.url, c) for c, _ in store.iter_copies())
    assert store.count_copies() == 4 and again["https://repost/b"].text.startswith(
        to_traditional(article.text, key=S004)[:10]
    )


def test_pages_url_states_are_recorded_with_their_stories(store: Store) -> None:
    article = get_article(S004)
    pages = [  # an issuing portal's original and the repost portal's copy (the copy ranks below)
        _doc("https://sckjt/a", article.text, "sckjt"),
        _doc("https://repost/b", to_traditional(article.text, key=S004), "repost"),
    ]
    states = [UrlState(doc.url, "s", UrlStatus.FETCHED, 1, content_hash=doc.content_hash) for doc, _ in pages]
    with pytest.raises(ValueError):
        store.add_stories(pages, states=states[:1])
    assert store.count_documents() == 0 and store.get_url("https://sckjt/a") is None
    results = store.add_stories(pages, states=states)
    assert [r.status for r in results] == ["stored", "copy"]
    recorded = store.get_urls([doc.url for doc, _ in pages])
    assert recorded["https://sckjt/a"].status is UrlStatus.FETCHED
    assert recorded["https://repost/b"].status is UrlStatus.DUPLICATE


def test_an_edited_page_is_a_new_version_not_a_copy_of_itself(store: Store) -> None:
    article = get_article(S004)
    store.add_stories([_doc("https://a/1", article.text)])
    first = store.add_stories([_doc("https://a/1", article.text)])
    result = store.add_stories([_doc("https://a/1", with_added_paragraph(article).text)])[0]
    assert result.status == "version" and store.count_copies() == 0
    old, new = list(store.iter_documents())
    assert (old.version, old.previous_version) == (1, None)
    assert (new.version, new.previous_version) == (2, old.content_hash) == (2, result.previous_version)
    # Both versions are kept; the export of the corpus shows the latest only.
    assert [d.content_hash for d in store.iter_documents(latest_only=True)] == [new.content_hash]
    assert first[0].status == "unchanged"  # the same text from the same URL again


def test_a_copy_whose_page_changed_into_its_own_story_is_no_longer_a_copy(store: Store) -> None:
    article, other = get_article(S004), ARTICLES[0] if ARTICLES[0].id != S004 else ARTICLES[1]
    store.add_stories([_doc("https://a/1", article.text)])
    assert store.add_stories([_doc("https://b/1", article.text)])[0].status == "copy"
    assert store.add_stories([_doc("https://b/1", other.text)])[0].status == "stored"
    assert store.count_copies() == 0 and store.count_documents() == 2


@pytest.mark.services
def test_concurrent_copies_on_postgresql_become_one_story(pg_url: str) -> None:
    """Eight threads, each with its own store (own connections), store copies of one story at
    the same moment: exactly one is stored, every other is a copy of it."""
    article = get_article(S004)
    texts = [
        article.text,
        to_traditional(article.text, key=S004),
        with_added_paragraph(article).text,
        with_cut_paragraph(article).text,
    ] * 2
    barrier = threading.Barrier(len(texts))
    results: list[object] = [None] * len(texts)

    def run(i: int) -> None:
        with open_store(pg_url) as store:
            item = _doc(f"https://site{i}/a", texts[i])
            barrier.wait()
            results[i] = store.add_stories([item])[0]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with open_store(pg_url) as store:
        assert store.count_documents() == 1 and store.count_copies() == len(texts) - 1
        story = next(store.iter_documents()).content_hash
        assert {c.duplicate_of for c, _ in store.iter_copies()} == {story}
    assert sum(r.status == "stored" for r in results) == 1  # type: ignore[attr-defined]


def test_cli_duplicates_and_export_with_copies(sqlite_url: str, tmp_path: object) -> None:
    article = get_article(S004)
    with open_store(sqlite_url) as store:
        store.add_stories(
            [_doc("https://a/1", article.text), _doc("https://b/2", with_cut_paragraph(article).text)]
        )
    run = [sys.executable, "-m", "cli"]
    listed = subprocess.run(
        [*run, "duplicates", "--json", "--db", sqlite_url], capture_output=True, text=True, check=True
    )
    stories = json.loads(listed.stdout)
    assert [s["url"] for s in stories] == ["https://a/1"]
    assert [c["url"] for c in stories[0]["copies"]] == ["https://b/2"]
    one = subprocess.run(
        [*run, "duplicates", "--story", stories[0]["story"], "--db", sqlite_url],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "https://b/2" in one.stdout
    plain = subprocess.run([*run, "export", "--db", sqlite_url], capture_output=True, text=True, check=True)
    assert len(plain.stdout.splitlines()) == 1
    full = subprocess.run(
        [*run, "export", "--with-copies", "--db", sqlite_url], capture_output=True, text=True, check=True
    )
    lines = [json.loads(line) for line in full.stdout.splitlines()]
    assert [line["duplicate_of"] for line in lines] == [None, stories[0]["story"]]
    assert lines[1]["text"] is None and lines[1]["url"] == "https://b/2"


# -- the quality gate ------------------------------------------------------------------------------


def test_near_duplicate_quality_and_cost_meet_the_targets() -> None:
    """A fast version of `python -m crawler.neardup_eval --check` (fewer stories, one order)."""
    items = neardup_eval.labelled_set(generated_stories=40, unrelated=120)
    result = neardup_eval.evaluate(items, seeds=1)
    assert result.precision >= neardup_eval.TARGETS["precision"]
    assert result.recall >= neardup_eval.TARGETS["recall"]
    assert result.traditional_recall == 1.0
    assert result.same_topic_merges == 0
    _page, _dedup, share = neardup_eval.measure_cost(rounds=1)
    assert share <= neardup_eval.TARGETS["cost_share"]


def test_a_threshold_of_one_keeps_only_exact_duplicates() -> None:
    items = neardup_eval.labelled_set(generated_stories=5, unrelated=5)
    strict = replace(DEFAULT_PARAMS, threshold=1.0)
    result = neardup_eval.evaluate(items, strict, seeds=1)
    assert result.precision == 1.0 and result.traditional_recall == 1.0 and result.recall < 0.9


_WIDTH_ALPHABET = st.sampled_from(
    [chr(c) for c in (*range(0xFF00, 0xFFF0), 0x3000, 0x2026, 0xA0, 0x301, 0x308, 0x3099, 0x304B)]
    + [chr(c) for c in (0x41, 0x65, 0x1100, 0x1161, 0xAC00, 0x2460, 0x4E00, 0x2F00, 0x8AAA)]
)


@settings(max_examples=400, deadline=None)
@given(st.text(_WIDTH_ALPHABET, max_size=16) | st.text(max_size=16))
def test_dedup_key_folds_widths_exactly_as_nfkc(text: str) -> None:
    """The full-width table applied before NFKC changes nothing NFKC alone would give, even
    next to combining marks and jamo (the table only spares the normalizing pass)."""
    import unicodedata

    from crawler.dedup import _NOT_LETTER_OR_NUMBER, _script_fold_table
    from crawler.normalize import strip_pinyin_readings

    plain = unicodedata.normalize("NFKC", strip_pinyin_readings(text)).translate(_script_fold_table())
    assert dedup_key(text) == _NOT_LETTER_OR_NUMBER.sub("", plain)
