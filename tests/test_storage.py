"""Contract tests of the document store, run on SQLite and on PostgreSQL (``store_url``)."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, inspect, select, text

from crawler.document import EXPORT_KEYS, Document
from crawler.errors import CrawlerError
from storage import SCHEMA_VERSION, StorageError, Store, UrlState, UrlStatus, open_store
from storage.sql import document_attachments, documents, schema_version

CST = timezone(timedelta(hours=8), "CST")


def make_doc(n: int | str, **overrides: Any) -> Document:
    """A small document whose content_hash is derived from ``n``."""
    values: dict[str, Any] = {
        "url": f"https://www.gov.cn/zhengce/{n}.htm",
        "final_url": f"https://www.gov.cn/zhengce/content/{n}.htm",
        "text": f"正文 {n}",
        "source": "gov",
        "content_hash": f"hash-{n}",
        "fetched_at": datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
    }
    values.update(overrides)
    return Document(**values)


# -- documents ------------------------------------------------------------------------------------


def test_documents_table_has_a_column_for_every_document_field() -> None:
    columns = set(documents.c.keys())
    assert {f.name for f in fields(Document)} <= columns
    # every export key is a column, but the attachments list: it comes from the link table
    assert set(EXPORT_KEYS) - {"attachments"} <= columns
    assert {"document_url", "url", "title", "type", "sha256"} <= set(document_attachments.c.keys())


def test_round_trip_of_every_field(store: Store) -> None:
    doc = Document(
        url="https://www.gov.cn/zhengce/2024-05/01/content_1.htm?a=1&b=二",
        final_url="https://www.gov.cn/zhengce/content/202405/content_1.htm",
        canonical_url="https://www.gov.cn/zhengce/content_1.htm",
        source="gov",
        title="國務院關於進一步優化營商環境的意見",  # Traditional
        published_at="2024-05-01T09:30:00+08:00",
        agency="国务院办公厅",
        author="新华社",
        text="第一条　为了……\n第二条　「引号」与 emoji 🚀 以及 tab\t和 \\ 反斜杠。\n" * 50,
        content_hash="0f" * 32,
        fetched_at=datetime(2024, 5, 1, 17, 45, 12, 123456, tzinfo=CST),
        lang="zh-Hant",
        duplicate_of="ab" * 32,
    )
    assert store.add_document(doc) is True
    got = store.get_document(doc.content_hash)
    assert got is not None
    assert got.fetched_at.tzinfo is not None and got.fetched_at.utcoffset() == timedelta(0)
    assert got.fetched_at == datetime(2024, 5, 1, 9, 45, 12, 123456, tzinfo=UTC)
    assert got == doc  # aware datetimes compare by instant
    assert got.to_export() == {**doc.to_export(), "fetched_at": "2024-05-01T09:45:12.123456+00:00"}
    assert list(store.iter_documents()) == [doc]
    assert store.get_document("missing") is None


def test_optional_fields_round_trip_as_none_and_naive_time_is_utc(store: Store) -> None:
    doc = Document(url="u", final_url="u", text="t", content_hash="h", fetched_at=datetime(2024, 1, 2, 3, 4))
    store.add_document(doc)
    got = store.get_document("h")
    assert got is not None
    assert got.fetched_at == datetime(2024, 1, 2, 3, 4, tzinfo=UTC)
    assert (got.canonical_url, got.source, got.title, got.published_at) == (None, None, None, None)
    assert (got.agency, got.author, got.lang, got.duplicate_of) == (None, None, None, None)


def test_insert_if_absent(store: Store) -> None:
    first = make_doc(1, title="first")
    assert store.add_document(first) is True
    assert store.add_document(first) is False
    assert store.add_document(make_doc(1, title="second delivery", url="https://elsewhere/1")) is False
    assert store.count_documents() == 1
    stored = store.get_document("hash-1")
    assert stored is not None and stored.title == "first"  # the first copy is kept


def test_batch_with_internal_duplicates(store: Store) -> None:
    a, b, c, d = (make_doc(x) for x in "abcd")
    assert store.add_documents([a, b, replace(a, title="again"), c, b]) == [True, True, False, True, False]
    assert store.add_documents([c, d, d]) == [False, True, False]
    assert store.add_documents([]) == []
    assert store.count_documents() == 4
    assert [doc.content_hash for doc in store.iter_documents()] == ["hash-a", "hash-b", "hash-c", "hash-d"]
    assert store.get_document("hash-a") == a


def test_empty_content_hash_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="content_hash"):
        store.add_document(make_doc(1, content_hash=""))
    assert store.count_documents() == 0


def test_nul_characters_are_dropped(store: Store) -> None:
    store.add_document(make_doc(1, text="a\x00b", title="\x00t"))
    got = store.get_document("hash-1")
    assert got is not None and (got.text, got.title) == ("ab", "t")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(min_size=1), title=st.none() | st.text(max_size=50))
def test_arbitrary_text_round_trips(store: Store, text: str, title: str | None) -> None:
    doc = make_doc(uuid.uuid4().hex, text=text, title=title)
    assert store.add_document(doc)
    got = store.get_document(doc.content_hash)
    assert got is not None
    assert got.text == text.replace("\x00", "")
    assert got.title == (None if title is None else title.replace("\x00", ""))


def test_count_and_iter_by_source(store: Store) -> None:
    store.add_documents([make_doc(1, source="gov"), make_doc(2, source="ndrc"), make_doc(3, source="gov")])
    store.add_document(make_doc(4, source=None))
    assert store.count_documents() == 4
    assert store.count_documents(source="gov") == 2
    assert store.count_documents(source="nope") == 0
    assert [d.content_hash for d in store.iter_documents(source="gov")] == ["hash-1", "hash-3"]
    assert [d.content_hash for d in store.iter_documents(source="ndrc")] == ["hash-2"]


def test_iter_documents_streams_in_insertion_order(store: Store) -> None:
    # Hashes deliberately not in insertion order, so ordering by hash would show.
    order = [f"{(i * 7919) % 97:02d}-{i}" for i in range(40)]
    store.add_documents([make_doc(n) for n in order[:15]])
    for n in order[15:20]:
        store.add_document(make_doc(n))
    store.add_documents([make_doc(n) for n in order[20:]])
    expected = [f"hash-{n}" for n in order]
    assert expected != sorted(expected)
    assert [d.content_hash for d in store.iter_documents(batch_size=3)] == expected

    # Partially consumed, then abandoned: the connection goes back and the store keeps working.
    iterator = store.iter_documents(batch_size=4)
    assert [next(iterator).content_hash for _ in range(5)] == expected[:5]
    store.add_document(make_doc("late"))  # writing while a read is open
    iterator.close()
    assert store.count_documents() == 41


# -- concurrency ----------------------------------------------------------------------------------


def _run_in_threads(n: int, work: Callable[[int], Any]) -> list[Any]:
    barrier = threading.Barrier(n)

    def run(i: int) -> Any:
        barrier.wait(timeout=10)
        return work(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def test_concurrent_thread_inserts_store_one_row(store: Store) -> None:
    results = _run_in_threads(8, lambda i: store.add_document(make_doc("same", url=f"https://x/{i}")))
    assert results.count(True) == 1
    assert store.count_documents() == 1


def test_concurrent_thread_batches_with_overlapping_hashes(store: Store) -> None:
    # Each thread inserts the same 30 hashes in a different order (a deadlock setup on PostgreSQL).
    def work(i: int) -> list[str]:
        names = list(range(30))
        names = names[i * 7 % 30 :] + names[: i * 7 % 30]
        if i % 2:
            names.reverse()
        docs = [make_doc(n) for n in names]
        return [doc.content_hash for doc, ok in zip(docs, store.add_documents(docs), strict=True) if ok]

    inserted = [h for batch in _run_in_threads(6, work) for h in batch]
    assert sorted(inserted) == sorted(f"hash-{n}" for n in range(30))  # each exactly once
    assert store.count_documents() == 30


def _process_worker(url: str, barrier: Any, queue: Any, i: int) -> None:
    """Runs in a spawned process: open the (possibly new) store, race the others, report."""
    try:
        barrier.wait(timeout=60)
        with open_store(url) as store:  # several processes create the schema at once
            barrier.wait(timeout=60)
            single = store.add_document(make_doc("shared", url=f"https://p/{i}"))
            batch = store.add_documents([make_doc(n) for n in range(10)])
            store.record_url(UrlState("https://p/shared", "gov", UrlStatus.FETCHED, attempts=i))
        queue.put((i, single, batch, None))
    except BaseException:
        barrier.abort()  # release the others at once instead of at their timeout
        queue.put((i, None, None, traceback.format_exc()))


def test_concurrent_process_inserts_store_one_row(store_url: str) -> None:
    n = 4
    # Fork where available (fast, and how Celery's prefork pool starts workers); the children
    # open their own stores, nothing database-related is inherited.
    if "fork" in multiprocessing.get_all_start_methods():
        ctx: Any = multiprocessing.get_context("fork")
    else:
        ctx = multiprocessing.get_context("spawn")
    barrier, queue = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_process_worker, args=(store_url, barrier, queue, i)) for i in range(n)]
    for proc in procs:
        proc.start()
    results = [queue.get(timeout=60) for _ in range(n)]
    for proc in procs:
        proc.join(timeout=30)
    errors = [err for *_, err in results if err]
    assert not errors, "\n".join(errors)
    assert [single for _, single, _, _ in results].count(True) == 1
    assert sum(sum(batch) for _, _, batch, _ in results) == 10
    with open_store(store_url) as store:
        assert store.count_documents() == 11
        state = store.get_url("https://p/shared")
        assert state is not None and state.attempts == n - 1


def _fork_child(store: Store) -> None:
    store.add_document(make_doc("from-child"))
    store.close()


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_store_inherited_through_fork_keeps_working(store: Store) -> None:
    store.add_document(make_doc("parent-before"))  # leaves a pooled connection behind
    proc = multiprocessing.get_context("fork").Process(target=_fork_child, args=(store,))
    proc.start()
    proc.join(timeout=30)
    assert proc.exitcode == 0
    store.add_document(make_doc("parent-after"))  # the parent's connections were left intact
    assert [d.content_hash for d in store.iter_documents()] == [
        "hash-parent-before",
        "hash-from-child",
        "hash-parent-after",
    ]


# -- URLs -----------------------------------------------------------------------------------------


def test_url_upsert_is_idempotent(store: Store) -> None:
    state = UrlState("https://www.gov.cn/a", "gov", UrlStatus.QUEUED, depth=2)
    store.record_url(state)
    store.record_url(state)
    store.record_urls([state, state])
    assert store.get_url(state.url) == state
    assert len(list(store.iter_urls())) == 1
    assert store.get_url("https://nowhere") is None


def test_url_status_transitions(store: Store) -> None:
    url = "https://www.gov.cn/zhengce/1.htm"
    store.record_url(UrlState(url, "gov", UrlStatus.QUEUED, depth=1))
    failed = UrlState(
        url,
        "gov",
        UrlStatus.FAILED_TRANSIENT,
        depth=1,
        http_status=503,
        error_reason="http_503",
        error_message="Service Unavailable（服务不可用）",
        fetched_at=datetime(2024, 5, 1, 8, 0, tzinfo=CST),
        attempts=1,
    )
    store.record_url(failed)
    got = store.get_url(url)
    assert got == failed
    assert got is not None and got.fetched_at is not None and got.fetched_at.tzinfo is not None

    fetched = UrlState(
        url,
        "gov",
        UrlStatus.FETCHED,
        depth=1,
        http_status=200,
        final_url=url + "?x",
        fetched_at=datetime(2024, 5, 2, tzinfo=UTC),
        content_hash="hash-1",
        etag='W/"abc"',
        last_modified="Wed, 01 May 2024 00:00:00 GMT",
        attempts=2,
    )
    store.record_url(fetched)
    assert store.get_url(url) == fetched  # last write wins, errors cleared

    # A stale report with fewer attempts still wins on status but never lowers attempts.
    store.record_url(UrlState(url, "gov", UrlStatus.NOT_MODIFIED, depth=1, attempts=0))
    got = store.get_url(url)
    assert got is not None and (got.status, got.attempts, got.etag) == (UrlStatus.NOT_MODIFIED, 2, None)

    # Several reports for one URL in one batch: the last one wins, attempts is the maximum.
    store.record_urls(
        [
            UrlState(url, "gov", UrlStatus.FAILED_TRANSIENT, attempts=5),
            UrlState(url, "gov", UrlStatus.FAILED_PERMANENT, error_reason="http_404", attempts=3),
        ]
    )
    got = store.get_url(url)
    assert got is not None
    assert (got.status, got.error_reason, got.attempts) == (UrlStatus.FAILED_PERMANENT, "http_404", 5)


def test_url_status_is_validated(store: Store) -> None:
    store.record_url(UrlState("https://a", None, "duplicate"))  # type: ignore[arg-type]
    got = store.get_url("https://a")
    assert got is not None and got.status is UrlStatus.DUPLICATE
    with pytest.raises(ValueError):
        store.record_url(UrlState("https://b", None, "bogus"))  # type: ignore[arg-type]
    assert store.get_url("https://b") is None


def test_iter_urls_filters(store: Store) -> None:
    states = [
        UrlState("https://c/3", "gov", UrlStatus.FETCHED),
        UrlState("https://a/1", "gov", UrlStatus.QUEUED),
        UrlState("https://b/2", "ndrc", UrlStatus.QUEUED),
        UrlState("https://d/4", "ndrc", UrlStatus.DISALLOWED, error_reason="robots"),
        UrlState("https://e/5", None, UrlStatus.OUT_OF_SCOPE),
    ]
    store.record_urls(states)

    def urls(**filters: Any) -> list[str]:
        return [s.url for s in store.iter_urls(**filters)]

    assert urls() == ["https://a/1", "https://b/2", "https://c/3", "https://d/4", "https://e/5"]
    assert urls(status=UrlStatus.QUEUED) == ["https://a/1", "https://b/2"]
    assert urls(source="ndrc") == ["https://b/2", "https://d/4"]
    assert urls(status=UrlStatus.QUEUED, source="ndrc") == ["https://b/2"]
    assert urls(status=UrlStatus.DUPLICATE) == []
    assert urls(batch_size=2) == urls()
    assert next(store.iter_urls(status=UrlStatus.DISALLOWED)) == states[3]


def test_stats(store: Store) -> None:
    empty = store.stats()
    assert empty == {
        "documents": 0,
        "copies": 0,
        "documents_by_source": {},
        "urls": 0,
        "urls_by_status": {},
        "errors_by_reason": {},
    }
    store.add_documents([make_doc(1, source="gov"), make_doc(2, source="gov"), make_doc(3, source="ndrc")])
    store.add_document(make_doc(4, source=None))
    store.record_urls(
        [
            UrlState("https://1", "gov", UrlStatus.FETCHED),
            UrlState("https://2", "gov", UrlStatus.FAILED_PERMANENT, error_reason="http_404"),
            UrlState("https://3", "gov", UrlStatus.FAILED_PERMANENT, error_reason="http_404"),
            UrlState("https://4", "gov", UrlStatus.FAILED_TRANSIENT, error_reason="timeout"),
            UrlState("https://5", "gov", UrlStatus.DISALLOWED, error_reason="robots"),
            UrlState("https://6", "gov", UrlStatus.QUEUED),
        ]
    )
    assert store.stats() == {
        "documents": 4,
        "copies": 0,
        "documents_by_source": {"gov": 2, "ndrc": 1, None: 1},
        "urls": 6,
        "urls_by_status": {
            "fetched": 1,
            "failed_permanent": 2,
            "failed_transient": 1,
            "disallowed": 1,
            "queued": 1,
        },
        "errors_by_reason": {"http_404": 2, "timeout": 1, "robots": 1},
    }


# -- schema and opening ---------------------------------------------------------------------------


def test_schema_creation_is_idempotent(store_url: str) -> None:
    with open_store(store_url) as first:
        first.add_document(make_doc(1))
        first.record_url(UrlState("https://1", "gov", UrlStatus.QUEUED))
    with open_store(store_url) as second, open_store(store_url) as third:
        assert second.count_documents() == 1 and third.get_url("https://1") is not None
        with second.engine.connect() as conn:
            assert conn.execute(select(schema_version.c.version)).scalars().all() == [SCHEMA_VERSION]
            names = set(inspect(conn).get_table_names())
            assert {
                "documents",
                "urls",
                "schema_version",
                "copies",
                "near_dup_bands",
                "document_signatures",
            } <= names
            doc_indexes = {ix["name"] for ix in inspect(conn).get_indexes("documents")}
            url_indexes = {ix["name"] for ix in inspect(conn).get_indexes("urls")}
        assert {"ix_documents_source", "ix_documents_url"} <= doc_indexes
        assert {"ix_urls_status", "ix_urls_source"} <= url_indexes


def test_stores_opening_at_once_on_a_new_database(store_url: str) -> None:
    stores = _run_in_threads(6, lambda i: open_store(store_url))
    try:
        assert all(s.add_document(make_doc(i)) for i, s in enumerate(stores))
        assert stores[0].count_documents() == 6
    finally:
        for s in stores:
            s.close()


def test_newer_schema_version_is_refused(store_url: str) -> None:
    with open_store(store_url) as store, store.engine.begin() as conn:
        conn.execute(insert(schema_version).values(version=SCHEMA_VERSION + 1, applied_at=datetime.now(UTC)))
    with pytest.raises(StorageError, match="newer"):
        open_store(store_url)


def test_closed_store_raises_storage_error(store_url: str) -> None:
    store = open_store(store_url)
    store.close()
    store.close()  # idempotent
    with pytest.raises(StorageError, match="closed"):
        store.count_documents()


@pytest.mark.services
def test_postgresql_url_uses_psycopg3(pg_url: str) -> None:
    assert pg_url.startswith("postgresql://")
    with open_store(pg_url) as store:
        assert store.dialect == "postgresql"
        assert store.engine.dialect.driver == "psycopg"
        assert store.engine.pool._pre_ping


# -- SQLite specifics -----------------------------------------------------------------------------


def test_sqlite_creates_parent_directory_and_sets_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "crawler.sqlite3"
    with open_store(f"sqlite:///{path}") as store:
        assert store.dialect == "sqlite"
        store.add_document(make_doc(1))
        with store.engine.connect() as conn:
            pragma = {
                name: conn.execute(text(f"PRAGMA {name}")).scalar()
                for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
            }
    assert pragma == {"journal_mode": "wal", "synchronous": 1, "busy_timeout": 30000, "foreign_keys": 1}
    assert path.exists()
    with sqlite3.connect(path) as raw:  # a plain reader sees committed data
        assert raw.execute("SELECT count(*) FROM documents").fetchone() == (1,)


def test_default_url_comes_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from settings import get_settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CRAWLER_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    try:
        with open_store() as store:
            store.add_document(make_doc(1))
        assert (tmp_path / "data" / "crawler.sqlite3").exists()  # the default, relative path
    finally:
        get_settings.cache_clear()


def test_sqlite_memory_store(monkeypatch: pytest.MonkeyPatch) -> None:
    for url in ("sqlite:///:memory:", "sqlite://"):
        with open_store(url) as store:
            results = _run_in_threads(6, lambda i: store.add_document(make_doc(i % 2)))
            assert results.count(True) == 2
            store.record_url(UrlState("https://m", None, UrlStatus.QUEUED))
            for doc in store.iter_documents():  # writing while iterating does not deadlock
                store.record_url(UrlState(doc.url, None, UrlStatus.FETCHED, content_hash=doc.content_hash))
            assert store.stats()["urls_by_status"] == {"fetched": 2, "queued": 1}
    with open_store("sqlite:///:memory:") as fresh:  # every in-memory store is its own database
        assert fresh.count_documents() == 0


def test_sqlite_unwritable_location(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageError) as info:
        open_store(f"sqlite:///{blocker / 'sub' / 'db.sqlite3'}")
    assert info.value.reason == "storage"


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("not a database url", "invalid database URL"),
        ("", "invalid database URL"),
        ("postgresql://crawler:s3cretpw@db.example:notaport/x", "invalid database URL"),
        ("mysql://root:s3cretpw@localhost/db", "unsupported database"),
        ("postgresql://postgres:s3cretpw@127.0.0.1:1/x", "opening the store on"),  # nothing listens
        ("postgresql+nodriver://postgres:s3cretpw@127.0.0.1/x", "no driver"),
    ],
)
def test_bad_or_unreachable_database_raises_storage_error(url: str, expected: str) -> None:
    with pytest.raises(StorageError) as info:
        open_store(url)
    error = info.value
    assert isinstance(error, CrawlerError) and error.reason == "storage"
    assert expected in str(error)
    rendered = "".join(traceback.format_exception(error))
    assert "s3cretpw" not in rendered and "s3cretpw" not in repr(error)
    if "127.0.0.1:1" in url:
        assert "127.0.0.1" in str(error) and "postgres:***@" in str(error)


def test_a_version_1_database_gets_the_duplicate_tables(sqlite_url: str) -> None:
    """Schema 1 -> 2 only adds tables: opening an old database creates them and records 2."""
    from sqlalchemy import delete

    with open_store(sqlite_url) as store, store.engine.begin() as conn:
        for name in ("copies", "near_dup_bands", "document_signatures"):
            conn.execute(text(f"DROP TABLE {name}"))
        conn.execute(delete(schema_version))
        conn.execute(insert(schema_version).values(version=1, applied_at=datetime.now(UTC)))
    with open_store(sqlite_url) as store:
        assert store.count_copies() == 0
        with store.engine.connect() as conn:
            versions = conn.execute(select(schema_version.c.version).order_by(schema_version.c.version))
            assert versions.scalars().all() == [1, SCHEMA_VERSION]


def test_a_version_2_database_gets_the_recrawl_columns(store_url: str) -> None:
    """Schema 2 -> 3 only adds columns (versions of documents, next visits of URLs): an old
    database, with its rows, is upgraded in place on both backends."""
    from sqlalchemy import MetaData, Table

    from storage.sql import metadata

    added = {("documents", "version"), ("documents", "previous_version")}
    added |= {("urls", "next_visit_at"), ("urls", "revisit_interval")}
    with open_store(store_url) as store, store.engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(text(f"DROP TABLE {table.name}"))
        old = MetaData()
        for table in metadata.sorted_tables:
            Table(table.name, old, *(c._copy() for c in table.columns if (table.name, c.name) not in added))
        old.create_all(conn)
        conn.execute(insert(schema_version).values(version=2, applied_at=datetime.now(UTC)))
        columns = [c.name for c in old.tables["documents"].columns if c.name != "id"]
        row = {name: getattr(make_doc(1), name, None) for name in columns}  # key_length: NULL
        conn.execute(insert(old.tables["documents"]).values(**row))
    with open_store(store_url) as store:
        (doc,) = store.iter_documents(latest_only=True)
        assert (doc.version, doc.previous_version) == (1, None)
        store.record_url(UrlState("https://a/1", None, UrlStatus.FETCHED, revisit_interval=60.0))
        state = store.get_url("https://a/1")
        assert state is not None and state.revisit_interval == 60.0
        with store.engine.connect() as conn:
            versions = conn.execute(select(schema_version.c.version).order_by(schema_version.c.version))
            assert versions.scalars().all() == [2, SCHEMA_VERSION]
            columns = {(t, c["name"]) for t in ("documents", "urls") for c in inspect(conn).get_columns(t)}
            assert added <= columns


def test_a_version_3_database_gets_the_document_number_columns(store_url: str) -> None:
    """Schema 3 -> 4 only adds the nullable ``document_number`` of documents and copies: an old
    database keeps its rows (their number null) and stores numbers from then on."""
    from sqlalchemy import delete

    from crawler.dedup import Fingerprint

    added = {("documents", "document_number"), ("copies", "document_number")}
    with open_store(store_url) as store, store.engine.begin() as conn:
        for table, column in sorted(added):  # the schema as version 3 made it
            conn.execute(text(f"ALTER TABLE {table} DROP COLUMN {column}"))
        conn.execute(delete(schema_version))
        conn.execute(insert(schema_version).values(version=3, applied_at=datetime.now(UTC)))
        conn.execute(
            text(
                "INSERT INTO documents (url, final_url, text, content_hash, fetched_at, version) "
                "VALUES ('https://a/1', 'https://a/1', '正文', 'hash-1', :at, 1)"
            ),
            {"at": datetime(2024, 5, 1, tzinfo=UTC)},
        )
    with open_store(store_url) as store:
        (kept,) = store.iter_documents()
        assert kept.content_hash == "hash-1" and kept.document_number is None
        text_2 = (
            "国家科技部关于开展二〇二四年度科技型中小企业评价工作的通知正文，各有关单位按要求组织申报。" * 3
        )
        numbered = make_doc(2, text=text_2, document_number="国科发〔2024〕12号")
        fp = Fingerprint.of(numbered.text)
        numbered = replace(numbered, content_hash=fp.content_hash)
        copy = replace(numbered, url="https://www.gov.cn/repost/2.htm", source_role="repost")
        outcomes = store.add_stories([(numbered, fp), (copy, fp)])
        assert [o.status for o in outcomes] == ["stored", "copy"]
        got = store.get_document(numbered.content_hash)
        assert got is not None and got.document_number == "国科发〔2024〕12号"
        found = store.get_copy(copy.url)
        assert found is not None and found[0].document_number == "国科发〔2024〕12号"
        with store.engine.connect() as conn:
            versions = conn.execute(select(schema_version.c.version).order_by(schema_version.c.version))
            assert versions.scalars().all() == [3, SCHEMA_VERSION]
            columns = {(t, c["name"]) for t in ("documents", "copies") for c in inspect(conn).get_columns(t)}
            assert added <= columns


# -- one connection per task (Store.pinned) -------------------------------------------------------


def _round_trips(store: Store) -> dict[str, int]:
    """Counts of what the store sends to its server: checkouts (a ping each), statements, and
    the BEGINs the driver sends before a statement (psycopg: outside autocommit, when idle)."""
    from sqlalchemy import event

    counts = {"checkout": 0, "begin": 0, "statement": 0}

    def checkout(*_: Any) -> None:
        counts["checkout"] += 1

    def statement(conn: Any, *_: Any) -> None:
        counts["statement"] += 1
        driver = conn.connection.driver_connection
        if store.dialect == "postgresql" and not driver.autocommit:
            counts["begin"] += driver.info.transaction_status == 0  # IDLE: BEGIN goes first

    event.listen(store.engine.pool, "checkout", checkout)
    event.listen(store.engine, "before_cursor_execute", statement)
    return counts


@pytest.mark.services
def test_a_pinned_store_pings_once_reads_without_a_transaction_and_commits_each_write(
    pg_url: str,
) -> None:
    from crawler.dedup import Fingerprint

    with open_store(pg_url) as store, open_store(pg_url) as other:
        counts = _round_trips(store)
        doc = make_doc(1, text="正文 " * 50)
        queued = UrlState(doc.url, "gov", UrlStatus.QUEUED, 1)
        store.add_queued([queued])
        with store.pinned():
            state = store.get_url(doc.url)
            assert state is not None and state.status == UrlStatus.QUEUED
            assert counts["begin"] == 1  # add_queued's, before the block: the read began none
            fetched = replace(queued, status=UrlStatus.FETCHED, content_hash=doc.content_hash)
            store.add_stories([(doc, Fingerprint.of(doc.text))], states=[fetched])
            # Committed when the call returned, although the connection stays checked out.
            got = other.get_url(doc.url)
            assert got is not None and got.status == UrlStatus.FETCHED
            assert other.count_documents() == 1
            # A read after a write, then a write again: each a transaction of its own.
            assert store.get_urls([doc.url])[doc.url].status == UrlStatus.FETCHED
            store.record_url(replace(fetched, attempts=3))
            # The same page stored again (a redelivered task) changes nothing.
            store.add_stories([(doc, Fingerprint.of(doc.text))], states=[fetched])
        assert counts["checkout"] == 2  # add_queued's, then one for the whole block
        assert counts["begin"] == 4  # add_queued, add_stories, record_url, add_stories again
        assert other.count_documents() == 1
        got = other.get_url(doc.url)
        assert got is not None and got.attempts == 3 and got.status == UrlStatus.FETCHED
        # Out of the block the store checks out per call again; nothing is left checked out.
        assert store.get_url(doc.url) is not None and counts["checkout"] == 3
        assert store.engine.pool.checkedout() == 0


@pytest.mark.services
def test_a_pinned_store_survives_a_failed_write_and_a_server_side_disconnect(pg_url: str) -> None:
    with open_store(pg_url) as store:
        state = UrlState("https://www.gov.cn/a.htm", "gov", UrlStatus.QUEUED, 1)
        with store.pinned():
            store.add_queued([state])
            with pytest.raises(StorageError):  # a failed statement rolls its transaction back
                store._write("failing", lambda conn: conn.execute(text("SELECT 1/0")))
            assert store.get_url(state.url) is not None
            store.record_url(replace(state, status=UrlStatus.FETCHED))
            # The server ends the pinned connection (a restart, an admin): the call fails as a
            # StorageError (the task is retried), and the store reconnects for the next one.
            pid = store._read("pid", lambda conn: conn.execute(text("SELECT pg_backend_pid()")).scalar())
            end = text("SELECT pg_terminate_backend(:pid)")
            with open_store(pg_url) as admin:
                admin._read("terminate", lambda conn: conn.execute(end, {"pid": pid}))
            with pytest.raises(StorageError):
                store.get_url(state.url)
        with store.pinned():
            got = store.get_url(state.url)
        assert got is not None and got.status == UrlStatus.FETCHED
        assert store.engine.pool.checkedout() == 0


def test_pinned_changes_nothing_on_sqlite(sqlite_url: str) -> None:
    with open_store(sqlite_url) as store:
        counts = _round_trips(store)
        state = UrlState("https://www.gov.cn/a.htm", "gov", UrlStatus.QUEUED, 1)
        with store.pinned():
            store.add_queued([state])
            assert store.get_url(state.url) is not None
        assert counts["checkout"] == 2  # one per call, as without the block


def test_add_queued_records_only_unknown_urls_and_says_which(store: Store) -> None:
    known = UrlState("https://www.gov.cn/known.htm", "gov", UrlStatus.FETCHED, 1, content_hash="h")
    store.record_url(known)
    fresh = UrlState("https://www.gov.cn/new.htm", "gov", UrlStatus.QUEUED, 2)
    queued_known = replace(known, status=UrlStatus.QUEUED, content_hash=None)
    assert store.add_queued([fresh, queued_known, fresh]) == {fresh.url}
    assert store.add_queued([fresh]) == set() and store.add_queued([]) == set()
    got = store.get_url(known.url)
    assert got is not None and got.status == UrlStatus.FETCHED  # a known URL keeps its state
