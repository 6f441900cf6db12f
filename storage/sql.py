"""The document store on SQLAlchemy Core: one implementation for SQLite and PostgreSQL.

Why Core and one class: the two backends differ only in connection setup (pragmas, pooling,
driver) and in which dialect's ``insert`` builds ``ON CONFLICT``; the queries are the same. So
the dialect is chosen once in :class:`Store` and everything else is shared, and the same
contract tests run on both.

Concurrency model:

* threads: every call checks a connection out of the engine's pool, so threads never share a
  DBAPI connection (except ``sqlite:///:memory:``, which has one connection and a lock);
* processes: SQLite runs in WAL mode with a busy timeout, and write transactions start with
  ``BEGIN IMMEDIATE`` so a writer waits for the lock instead of failing half-way; PostgreSQL
  handles this natively. A store inherited through ``fork`` drops the parent's pooled
  connections on first use in the child;
* duplicates: documents are inserted with ``ON CONFLICT (content_hash) DO NOTHING``, so a task
  delivered twice, or two workers racing, never store a second copy and never raise;
* near duplicates (:meth:`Store.add_stories`): the LSH index (band key -> document id) lives in
  the same database as the documents and is read and written in the document's own
  transaction. SQLite's ``BEGIN IMMEDIATE`` serializes writers; on PostgreSQL a transaction
  first takes an advisory lock per band key of its documents, in ascending order (no deadlock),
  so two copies of one story, which share a band, are checked and inserted one after the other
  and the later one sees the earlier. Two texts that share no band are not candidates for each
  other in any order, so the locks lose nothing the sequential check would find;
* a story's document is its best copy (:func:`crawler.dedup.outranks`): a better copy arriving
  later replaces it in the same transaction (the old document becomes a copy, every copy is
  re-pointed, the index swaps the old text's bands for the new one's). Replacing a document
  changes band keys, so the transaction also holds the locks of all the old document's bands,
  and a copy found through another copy's key holds one of its story's document's bands:
  whoever records a copy of a document and whoever demotes it wait for each other, so no copy
  is left pointing at a document that is gone and no story gets two. Locks found missing in
  the middle of a transaction are only tried (waiting there, out of order, could deadlock);
  if one is held elsewhere, the transaction is rolled back and run again with them taken
  first, in order.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from sqlalchemy import (
    BigInteger,
    BindParameter,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Select,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    case,
    cast,
    create_engine,
    event,
    func,
    insert,
    inspect,
    literal,
    null,
    select,
    text,
)
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import URL, Connection, Dialect, Engine, Row, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator

from crawler.dedup import (
    DEFAULT_PARAMS,
    CopyRank,
    Fingerprint,
    best_story,
    dedup_key,
    jaccard,
    outranks,
    pack_signature,
    shingle_hashes,
    unpack_signature,
)
from crawler.document import Attachment, AttachmentLink, Document, attachment_export, utcnow

from .models import StorageError, UrlState, UrlStatus, mask_password

__all__ = [
    "SCHEMA_VERSION",
    "Store",
    "StoryOutcome",
    "attachments",
    "copies",
    "document_attachments",
    "documents",
    "metadata",
    "open_store",
    "schema_version",
    "urls",
]

#: Bumped by every schema migration; recorded in the ``schema_version`` table.
#: 2: copies, near_dup_bands, document_signatures (new tables: created by create_all).
#: 3: documents.version/previous_version, urls.next_visit_at/revisit_interval (added columns).
#: 4: documents.document_number, copies.document_number (added nullable columns).
#: 5: attachments, document_attachments (new tables: created by create_all).
#: 6: extraction_plans (a new table).
#: 7: what ranks a story's copies, on documents and copies (source_role, converted, damaged,
#:    key_length), and copies.version/previous_version (a document demoted to a copy keeps them).
SCHEMA_VERSION = 7

#: SQLite waits this long for another process's write lock before giving up.
SQLITE_BUSY_TIMEOUT_S = 30.0
#: PostgreSQL connect timeout unless the URL sets ``connect_timeout`` itself.
PG_CONNECT_TIMEOUT_S = 10
#: Rows fetched per round trip when streaming (server-side cursor on PostgreSQL).
DEFAULT_BATCH_SIZE = 1000

# Key of the PostgreSQL advisory lock that serializes schema creation ("policy" + 1).
_PG_SCHEMA_LOCK_KEY = 0x706F6C6963790001
# Execution option read by the SQLite "begin" hook: which BEGIN to emit.
_SQLITE_BEGIN_OPTION = "policy_crawler_sqlite_begin"
# SQLSTATEs after which PostgreSQL rolled the whole transaction back and a retry is safe.
_PG_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock_detected, serialization_failure
_WRITE_RETRIES = 8
# Times a decision is made again after more locks were taken (PostgreSQL): one page's in its
# transaction, or a whole add_stories transaction run again with the locks it lacked.
_DECISION_ROUNDS = 16

T = TypeVar("T")


# -- schema ---------------------------------------------------------------------------------------


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that always comes back as an aware UTC datetime.

    PostgreSQL stores ``timestamptz`` and returns it in the session time zone; SQLite has no
    time zone support and SQLAlchemy would silently drop the offset. So values are converted to
    UTC on the way in (naive values are taken as UTC, as :meth:`Document.to_export` does) and
    tagged/converted to UTC on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        # SQLite's DATETIME storage format has no offset: store naive UTC (sorts correctly too).
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

# BIGSERIAL on PostgreSQL; on SQLite only "INTEGER PRIMARY KEY" aliases the rowid.
_Id = BigInteger().with_variant(Integer(), "sqlite")


def _rank_columns() -> tuple[Column[Any], ...]:
    """What ranks the copies of a story (:class:`crawler.dedup.CopyRank`, with ``lang`` and
    ``published_at``), on documents and copies alike."""
    return (
        Column("source_role", Text),  # the portal's declared role: issuer, repost, NULL
        Column("converted", Boolean, nullable=False, server_default=text("false")),
        Column("damaged", Boolean, nullable=False, server_default=text("false")),
        Column("key_length", Integer),  # characters of the canonical key; NULL: stored before 6
    )


documents = Table(
    "documents",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),  # insertion order
    Column("url", Text, nullable=False),
    Column("final_url", Text, nullable=False),
    Column("canonical_url", Text),
    Column("source", Text),
    Column("title", Text),
    Column("published_at", Text),  # ISO 8601 date or date-time, as extracted
    Column("agency", Text),
    Column("document_number", Text),  # 发文字号, e.g. 国科发〔2024〕12号
    Column("author", Text),
    Column("text", Text, nullable=False),
    Column("content_hash", Text, nullable=False),
    Column("fetched_at", UTCDateTime(), nullable=False),
    Column("lang", Text),
    Column("duplicate_of", Text),
    # Versions of one URL's article: 1, 2, ...; previous_version is the earlier one's hash.
    Column("version", Integer, nullable=False, server_default=text("1")),
    Column("previous_version", Text),
    *_rank_columns(),
    UniqueConstraint("content_hash", name="uq_documents_content_hash"),
    CheckConstraint("content_hash <> ''", name="ck_documents_content_hash_nonempty"),
    # (source, id) serves both "WHERE source = ?" and "ORDER BY id" for one source.
    Index("ix_documents_source", "source", "id"),
    Index("ix_documents_url", "url"),
    Index("ix_documents_previous_version", "previous_version"),
)

urls = Table(
    "urls",
    metadata,
    Column("url", Text, primary_key=True),
    Column("source", Text),
    Column("status", Text, nullable=False),  # a UrlStatus value; validated in Python
    Column("depth", Integer, nullable=False),
    Column("http_status", Integer),
    Column("final_url", Text),
    Column("error_reason", Text),
    Column("error_message", Text),
    Column("fetched_at", UTCDateTime()),
    Column("content_hash", Text),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("attempts", Integer, nullable=False),
    Column("next_visit_at", UTCDateTime()),
    Column("revisit_interval", Float),
    Index("ix_urls_status", "status"),
    Index("ix_urls_source", "source"),
    Index("ix_urls_due", "source", "next_visit_at"),
)

# A later copy of a stored story: where it was republished. ``duplicate_of`` is the story's
# content_hash (stable across databases and exports, unlike ids); ``text`` is NULL unless the
# keep-duplicate-text setting asked for it.
copies = Table(
    "copies",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("url", Text, nullable=False),
    Column("final_url", Text, nullable=False),
    Column("canonical_url", Text),
    Column("source", Text),
    Column("title", Text),
    Column("published_at", Text),
    Column("agency", Text),
    Column("document_number", Text),
    Column("author", Text),
    Column("text", Text),
    Column("content_hash", Text, nullable=False),  # the copy's own exact key
    Column("fetched_at", UTCDateTime(), nullable=False),
    Column("lang", Text),
    Column("duplicate_of", Text, nullable=False),
    # Exact Jaccard of the shingle sets with the story's document; 1.0: same key. When a better
    # copy replaces the document, re-measured against it where the copy's text is kept (1.0 for
    # its key), else the figure of when the copy was recorded.
    Column("similarity", Float, nullable=False),
    # A document demoted to a copy (a better copy of its story arrived) keeps its version, so
    # that the earlier versions of its URL stay replaced; 1 and NULL for any other copy.
    Column("version", Integer, nullable=False, server_default=text("1")),
    Column("previous_version", Text),
    *_rank_columns(),
    UniqueConstraint("url", name="uq_copies_url"),
    Index("ix_copies_duplicate_of", "duplicate_of"),
    Index("ix_copies_content_hash", "content_hash"),
    Index("ix_copies_previous_version", "previous_version"),
)

# The LSH index of the near-duplicate check: one row per (band key, document).
near_dup_bands = Table(
    "near_dup_bands",
    metadata,
    Column("band_key", BigInteger, nullable=False),
    Column("document_id", _Id, nullable=False),
    PrimaryKeyConstraint("band_key", "document_id", name="pk_near_dup_bands"),
)

# The MinHash signature of every document: a cheap estimate before the exact comparison.
document_signatures = Table(
    "document_signatures",
    metadata,
    Column("document_id", _Id, primary_key=True, autoincrement=False),
    Column("signature", LargeBinary, nullable=False),
)

# Attachment files, once per content however many pages or URLs link them. The file itself is
# in the raw archive (crawler/archive.py); ``size`` is its length in bytes. ``url`` is where it
# was first downloaded. ``text`` (PDF, DOCX) or ``text_error`` (a crawler.errors reason).
attachments = Table(
    "attachments",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("sha256", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("final_url", Text),
    Column("type", Text),
    Column("content_type", Text),
    Column("size", BigInteger, nullable=False),
    Column("text", Text),
    Column("text_error", Text),
    Column("fetched_at", UTCDateTime(), nullable=False),
    UniqueConstraint("sha256", name="uq_attachments_sha256"),
)

# Which page links which attachment: the page's URL (a document's or a copy's ``url``), the
# link's URL, text and declared type, its place on the page, and once downloaded the file's
# sha256 (NULL before, or with ``error_reason`` when the download failed).
document_attachments = Table(
    "document_attachments",
    metadata,
    Column("document_url", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("title", Text),
    Column("type", Text),
    Column("position", Integer, nullable=False),
    Column("sha256", Text),
    Column("error_reason", Text),
    PrimaryKeyConstraint("document_url", "url", name="pk_document_attachments"),
    Index("ix_document_attachments_url", "url"),
    Index("ix_document_attachments_sha256", "sha256"),
)

_ATTACHMENT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Attachment))

# The extraction plans of issue 14 (crawler/plans): one row per source, host and template, the
# plan itself as JSON (its own format, versioned inside), its status and its counts as columns
# (several workers add to them at once: ``served = served + n``).
extraction_plans = Table(
    "extraction_plans",
    metadata,
    Column("source", Text, nullable=False),  # "" for pages of no source
    Column("host", Text, nullable=False),
    Column("template", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("plan", Text, nullable=False),
    Column("served", BigInteger, nullable=False, server_default=text("0")),
    Column("verified", BigInteger, nullable=False, server_default=text("0")),
    Column("mismatches", BigInteger, nullable=False, server_default=text("0")),
    Column("misses", BigInteger, nullable=False, server_default=text("0")),
    Column("learned_at", Text),
    Column("retired_at", Text),
    Column("retired_why", Text),
    PrimaryKeyConstraint("source", "host", "template", name="pk_extraction_plans"),
)
_PLAN_COUNTS = ("served", "verified", "mismatches", "misses")

# One row per applied schema version; the current version is the maximum.
schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("applied_at", UTCDateTime(), nullable=False),
)

_DOC_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Document))
# A copy is one page's record of another URL's story; its text is kept only on request.
_COPY_FIELDS: tuple[str, ...] = tuple(name for name in _DOC_FIELDS if name != "text")


@dataclass(frozen=True, slots=True)
class StoryOutcome:
    """What :meth:`Store.add_stories` did with one document.

    ``status``: ``stored`` (a new story), ``version`` (a new text for a URL that stored another
    before: stored as the next version, ``previous_version`` naming the earlier one), ``copy``
    (recorded as a copy of ``duplicate_of``, the story's content_hash, with ``similarity``),
    ``promoted`` (a better copy of a stored story: it is now the story's document, and the
    document it replaced, at the URL ``demoted``, is now a copy; ``previous_version`` as for a
    version), or ``unchanged`` (this URL had stored this very text before: a re-crawl, not a copy).
    """

    status: Literal["stored", "version", "copy", "promoted", "unchanged"]
    duplicate_of: str | None = None
    similarity: float = 1.0
    previous_version: str | None = None
    demoted: str | None = None


_URL_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(UrlState))


# -- URLs and engines -----------------------------------------------------------------------------

_URL_HELP = (
    "expected sqlite:///path/to/file.sqlite3, sqlite:///:memory: or postgresql://user@host:5432/dbname"
)


def _parse_url(raw: str) -> URL:
    """Parse and normalize a database URL; map bare ``postgresql://`` to the psycopg 3 driver."""
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError, TypeError):
        # "from None": the parser's own error may quote the URL, password included.
        raise StorageError(f"invalid database URL {mask_password(str(raw))!r}: {_URL_HELP}") from None
    backend, _, driver = url.drivername.partition("+")
    if backend in ("postgresql", "postgres"):
        # SQLAlchemy's default PostgreSQL driver is psycopg2; we ship psycopg 3.
        return url.set(drivername=f"postgresql+{driver or 'psycopg'}")
    if backend == "sqlite":
        return url
    raise StorageError(f"unsupported database {url.render_as_string(hide_password=True)!r}: {_URL_HELP}")


def _is_sqlite_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:")


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    """Per-connection SQLite setup: our own transaction control, WAL, busy timeout, FKs."""
    # Let SQLAlchemy emit BEGIN (see _sqlite_on_begin) instead of the sqlite3 module, which
    # would start transactions lazily and commit before DDL.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # busy_timeout first: switching to WAL needs a lock another process may hold.
        cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        # A no-op ("memory") for in-memory DBs. While another process switches a new file to
        # WAL, SQLite may answer "locked" at once instead of waiting: retry until the timeout.
        deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
        while True:
            try:
                cursor.execute("PRAGMA journal_mode = WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        cursor.execute("PRAGMA synchronous = NORMAL")  # durable enough in WAL, much faster
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    """Emit BEGIN, or BEGIN IMMEDIATE for write transactions.

    A deferred transaction that reads and then writes fails at once with SQLITE_BUSY (the busy
    timeout does not apply) if another process wrote in between; IMMEDIATE takes the write lock
    up front, waiting up to the busy timeout, so writers queue instead of failing.
    """
    mode = conn.get_execution_options().get(_SQLITE_BEGIN_OPTION, "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


def _create_engine(url: URL) -> Engine:
    if url.get_backend_name() == "sqlite":
        if _is_sqlite_memory(url):
            # One shared connection, or every checkout would see a new, empty database.
            engine = create_engine(
                url,
                poolclass=StaticPool,
                connect_args={"check_same_thread": False},
                hide_parameters=True,
            )
        else:
            database = url.database or ""
            if not database.startswith("file:"):  # URI filenames are the caller's business
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(
                url,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
                hide_parameters=True,
            )
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
    # hide_parameters: error messages and logs must not carry document text (or anything else
    # passed as a parameter).
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args, hide_parameters=True)


# -- row conversion -------------------------------------------------------------------------------


def _add_missing_columns(conn: Connection) -> None:
    """Add the columns a newer schema gave to existing tables (ALTER TABLE ADD COLUMN).

    Our migrations only ever add nullable or server-defaulted columns, so this one generic step
    upgrades any older database; the tables themselves are created by ``create_all``.
    """
    inspector = inspect(conn)
    for table in metadata.sorted_tables:
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            ddl = f"{column.type.compile(conn.dialect)}"
            if column.server_default is not None:
                ddl += f" NOT NULL DEFAULT {column.server_default.arg.text}"  # type: ignore[attr-defined]
            conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {ddl}'))
    for table in metadata.sorted_tables:
        for index in table.indexes:
            index.create(conn, checkfirst=True)


def _plan_of(row: Row[Any]) -> dict[str, Any]:
    """A stored plan in its dict form: the JSON with the columns that change over its life."""
    plan: dict[str, Any] = json.loads(row.plan)
    plan.update(
        status=row.status,
        retired_at=row.retired_at,
        retired_why=row.retired_why,
        counts={name: int(getattr(row, name)) for name in _PLAN_COUNTS},
    )
    return plan


def _shingles(text: str) -> set[int]:
    return shingle_hashes(dedup_key(text), DEFAULT_PARAMS.shingle)


def _strip_nul(value: Any) -> Any:
    """Drop NUL characters from strings: PostgreSQL text cannot hold them, and stripping on
    both backends keeps them behaving alike (NUL never carries meaning in crawled text)."""
    return value.replace("\x00", "") if isinstance(value, str) and "\x00" in value else value


def _rank_of(row: dict[str, Any]) -> CopyRank:
    """The rank of a document or copy row (see :func:`crawler.dedup.rank_key`)."""
    return CopyRank(
        role=row["source_role"],
        converted=bool(row["converted"]),
        damaged=bool(row["damaged"]),
        lang=row["lang"],
        published_at=row["published_at"],
        length=int(row["key_length"] or 0),
        url=row["url"],
    )


def _doc_to_row(doc: Document) -> dict[str, Any]:
    if not isinstance(doc.content_hash, str) or not doc.content_hash:
        raise ValueError(f"document {doc.url!r} has no content_hash; run the dedup stage before storing it")
    return {name: _strip_nul(getattr(doc, name)) for name in _DOC_FIELDS}


def _row_to_doc(row: Row[Any]) -> Document:
    mapping = row._mapping
    return Document(**{name: mapping[name] for name in _DOC_FIELDS})


def _state_to_row(state: UrlState) -> dict[str, Any]:
    row = {name: _strip_nul(getattr(state, name)) for name in _URL_FIELDS}
    row["status"] = UrlStatus(state.status).value  # also accepts the plain string; rejects typos
    row["attempts"] = int(state.attempts or 0)
    row["depth"] = int(state.depth or 0)
    return row


def _row_to_state(row: Row[Any]) -> UrlState:
    mapping = row._mapping
    values = {name: mapping[name] for name in _URL_FIELDS}
    values["status"] = UrlStatus(values["status"])
    return UrlState(**values)


# -- the store ------------------------------------------------------------------------------------


#: What a story's document is ranked by (crawler.dedup.CopyRank), read with it.
_HEAD_COLUMNS = ("source_role", "converted", "damaged", "lang", "published_at", "key_length")


class _LocksTaken(Exception):
    """Band locks a transaction needed in its middle were held by another one (PostgreSQL)."""

    def __init__(self, keys: Sequence[int]) -> None:
        super().__init__(f"{len(keys)} band locks held by another transaction")
        self.keys = list(keys)


class _Statements:
    """The statements a crawl runs for every page (its writes and URL reads), built once per store.

    Building a Core statement coerces every column, literal and clause on each call; on the
    embedded crawl's SQLite store that cost more than running the statement (measured: 0.9 ms
    per stored document, about 70 % of it building and compiling statements). Built once with
    bind parameters, each execution only binds values to a compiled form from the cache.
    """

    def __init__(self, upsert: Callable[[Table], Any]) -> None:
        zero = literal(0, Integer)
        digest: BindParameter[str] = bindparam("digest")
        url: BindParameter[str] = bindparam("url")
        # In one round trip, by rank: 0 the stored story with this exact key, 1 else a copy with
        # it (its story), 2 the latest version stored by this URL, 3 a copy recorded for this URL.
        # Each row: rank, url, story (a content_hash), version.
        # The story's own row (rank 0) also brings what ranks it (its id and _HEAD_COLUMNS), so
        # that the common copy needs no second query; the other ranks leave them NULL.
        head = [documents.c.id, *(documents.c[name] for name in _HEAD_COLUMNS)]
        blank = [cast(null(), column.type).label(column.name) for column in head]
        self.lookup = (
            select(
                literal(0, Integer).label("rank"),
                documents.c.url,
                documents.c.content_hash.label("story"),
                documents.c.version,
                *head,
            )
            .where(documents.c.content_hash == digest)
            .union_all(
                select(literal(1, Integer), copies.c.url, copies.c.duplicate_of, zero, *blank)
                .where(copies.c.content_hash == digest)
                .limit(1)
                .subquery()
                .select(),
                select(literal(2, Integer), documents.c.url, documents.c.content_hash, documents.c.version)
                .add_columns(*blank)
                .where(documents.c.url == url)
                .order_by(documents.c.version.desc(), documents.c.id.desc())
                .limit(1)
                .subquery()
                .select(),
                select(literal(3, Integer), copies.c.url, copies.c.duplicate_of, zero, *blank)
                .where(copies.c.url == url)
                .limit(1)
                .subquery()
                .select(),
            )
        )
        banded = select(near_dup_bands.c.document_id).where(
            near_dup_bands.c.band_key.in_(bindparam("bands", expanding=True))
        )
        self.candidates = (
            select(documents.c.id, documents.c.url, document_signatures.c.signature)
            .join(document_signatures, document_signatures.c.document_id == documents.c.id)
            .where(documents.c.id.in_(banded.scalar_subquery()))
            .order_by(documents.c.id)
        )
        self.candidate_texts = (
            select(
                documents.c.content_hash,
                documents.c.text,
                documents.c.id,
                documents.c.url,
                documents.c.version,
                *(documents.c[name] for name in _HEAD_COLUMNS),
            )
            .where(documents.c.id.in_(bindparam("ids", expanding=True)))
            .order_by(documents.c.id)
        )
        self.insert_document = (
            upsert(documents)
            .on_conflict_do_nothing(index_elements=[documents.c.content_hash])
            .returning(documents.c.id)
        )
        self.insert_bands = upsert(near_dup_bands).on_conflict_do_nothing()
        self.insert_signature = insert(document_signatures)
        copy_insert = upsert(copies)
        copy_columns = (*_COPY_FIELDS, "duplicate_of", "similarity", "text", "key_length")
        self.record_copy = copy_insert.on_conflict_do_update(
            index_elements=[copies.c.url],
            set_={name: copy_insert.excluded[name] for name in copy_columns if name != "url"},
        )
        self.delete_copy = copies.delete().where(copies.c.url == url)
        # -- choosing a story's document (Store._join_story): its rank, the index rows to lock,
        # whether its URL has a newer record, and the statements of a promotion.
        doc_id: BindParameter[int] = bindparam("id")
        self.story_document = select(
            documents.c.content_hash,
            documents.c.id,
            documents.c.url,
            documents.c.version,
            *(documents.c[name] for name in _HEAD_COLUMNS),
        ).where(documents.c.content_hash == digest)
        self.document_text = select(documents.c.text).where(documents.c.id == doc_id)
        self.document_bands = (
            select(near_dup_bands.c.band_key)
            .where(near_dup_bands.c.document_id == doc_id)
            .order_by(near_dup_bands.c.band_key)
        )
        self.newer_record = (
            select(literal(1, Integer))
            .where(documents.c.url == url)
            .where(documents.c.version > bindparam("version"))
            .limit(1)
            .subquery()
            .select()
            .union_all(select(literal(1, Integer)).where(copies.c.url == url).limit(1).subquery().select())
        )
        self.whole_document = select(documents).where(documents.c.id == doc_id)
        self.drop_bands = near_dup_bands.delete().where(near_dup_bands.c.document_id == doc_id)
        self.drop_signature = document_signatures.delete().where(document_signatures.c.document_id == doc_id)
        self.drop_document = documents.delete().where(documents.c.id == doc_id)
        self.story_copies = select(copies.c.id, copies.c.content_hash, copies.c.text).where(
            copies.c.duplicate_of == bindparam("old_story")
        )
        self.repoint_copies = (
            copies.update()
            .where(copies.c.duplicate_of == bindparam("old_story"))
            .values(duplicate_of=bindparam("new_story"))
        )
        self.set_similarity = (
            copies.update().where(copies.c.id == bindparam("copy_id")).values(similarity=bindparam("value"))
        )
        self.demote_urls = (
            urls.update()
            .where(urls.c.url.in_(bindparam("demoted", expanding=True)))
            .where(urls.c.status.in_([UrlStatus.FETCHED.value, UrlStatus.NOT_MODIFIED.value]))
            .values(status=UrlStatus.DUPLICATE.value)
        )
        url_insert = upsert(urls)
        excluded = url_insert.excluded
        updates: dict[str, Any] = {name: excluded[name] for name in _URL_FIELDS if name != "url"}
        # a late or replayed report never makes a URL look less tried
        updates["attempts"] = case(
            (excluded.attempts > urls.c.attempts, excluded.attempts), else_=urls.c.attempts
        )
        self.upsert_urls = url_insert.on_conflict_do_update(index_elements=[urls.c.url], set_=updates)
        self.queue_urls = (
            upsert(urls).on_conflict_do_nothing(index_elements=[urls.c.url]).returning(urls.c.url)
        )
        self.get_url = select(urls).where(urls.c.url == url)
        self.get_urls = select(urls).where(urls.c.url.in_(bindparam("urls", expanding=True)))
        # PostgreSQL: a new story, its LSH bands and its signature in one statement (one round
        # trip, not three); the row is a document's columns (_doc_to_row).
        names = sorted((*_DOC_FIELDS, "key_length"))
        self.insert_story_pg = text(
            f"WITH d AS (INSERT INTO documents ({', '.join(names)}) "
            f"VALUES ({', '.join(':' + n for n in names)}) "
            "ON CONFLICT (content_hash) DO NOTHING RETURNING id), "
            "b AS (INSERT INTO near_dup_bands (band_key, document_id) "
            "SELECT k, d.id FROM d, unnest(CAST(:band_keys AS bigint[])) AS k "
            "ON CONFLICT DO NOTHING), "
            "s AS (INSERT INTO document_signatures (document_id, signature) "
            "SELECT d.id, :signature FROM d) "
            "SELECT id FROM d"
        ).bindparams(bindparam("fetched_at", type_=UTCDateTime()))


class Store:
    """The document and URL store. Open it with :func:`open_store`.

    Safe to share between threads; open one per process (one inherited through ``fork`` also
    works). Every database failure surfaces as :class:`StorageError`.
    """

    def __init__(self, url: str) -> None:
        parsed = _parse_url(url)
        self._password = parsed.password if isinstance(parsed.password, str) else None
        #: The URL with its password masked: safe to log and show.
        self.safe_url: str = parsed.render_as_string(hide_password=True)
        self.dialect: Literal["sqlite", "postgresql"] = (
            "sqlite" if parsed.get_backend_name() == "sqlite" else "postgresql"
        )
        self._memory = self.dialect == "sqlite" and _is_sqlite_memory(parsed)
        # The single in-memory connection must not be used by two threads at once.
        self._lock: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if self._memory else contextlib.nullcontext()
        )
        self._insert = sqlite_dialect.insert if self.dialect == "sqlite" else pg_dialect.insert
        self._sql = _Statements(self._insert)
        self._closed = False
        try:
            self._engine = _create_engine(parsed)
        except NoSuchModuleError:
            raise StorageError(f"no driver for database {self.safe_url!r}: {_URL_HELP}") from None
        except (OSError, SQLAlchemyError, ImportError) as exc:
            raise StorageError(self._describe(f"opening the store on {self.safe_url}", exc)) from None
        self._pid = os.getpid()
        #: This thread's pinned connection, if any (see :meth:`pinned`).
        self._pin = threading.local()
        try:
            self._ensure_schema()
        except StorageError:
            self._engine.dispose()
            raise

    # -- plumbing ---------------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"Store({self.safe_url!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, for migrations and diagnostics."""
        return self._get_engine()

    def close(self) -> None:
        """Close all pooled connections. Idempotent."""
        if not self._closed:
            self._closed = True
            if os.getpid() != self._pid:
                # Inherited through fork: closing the parent's connections would break them.
                self._engine.dispose(close=False)
            self._engine.dispose()

    def _get_engine(self) -> Engine:
        if self._closed:
            raise StorageError(f"the store {self.safe_url} is closed")
        pid = os.getpid()
        if pid != self._pid:
            # Forked: the pooled connections belong to the parent. Forget them without closing
            # (closing would tear down the parent's sockets).
            self._engine.dispose(close=False)
            self._pid = pid
        return self._engine

    def _describe(self, action: str, exc: BaseException) -> str:
        orig = getattr(exc, "orig", None) or exc
        detail = " ".join(str(orig).split()) or type(orig).__name__
        return mask_password(f"{action} failed: {type(orig).__name__}: {detail}", self._password)

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn SQLAlchemy/driver errors into StorageError with a credential-free message."""
        try:
            yield
        except StorageError:
            raise
        except (SQLAlchemyError, OSError) as exc:
            raise StorageError(self._describe(f"{action} on {self.safe_url}", exc)) from exc

    @contextlib.contextmanager
    def pinned(self) -> Iterator[None]:
        """Run this thread's calls on one connection until the block ends (PostgreSQL; nothing
        changes on SQLite). A Celery task's store calls are a few short ones: each checked out a
        connection (a liveness ping: a round trip) and each read ran in a transaction of its own
        (BEGIN and ROLLBACK: two more). Pinned, a task pings once, on its first call, and reads
        run without a transaction (a single SELECT sees committed data). Every write is still
        its own transaction, committed before its call returns: nothing else changes."""
        if self.dialect != "postgresql" or getattr(self._pin, "active", False):
            yield
            return
        self._pin.active = True
        try:
            yield
        finally:
            conn: Connection | None = getattr(self._pin, "conn", None)
            self._pin.active, self._pin.conn = False, None
            if conn is not None:
                with self._errors("returning a connection"):
                    conn.close()

    def _pinned(self, autocommit: bool) -> Connection | None:
        """This thread's pinned connection (checked out on first use), set for reads without a
        transaction (``autocommit``) or for a write transaction; None when not pinned."""
        if not getattr(self._pin, "active", False):
            return None
        conn: Connection | None = getattr(self._pin, "conn", None)
        if conn is None:
            conn = self._pin.conn = self._get_engine().connect()
            self._pin.autocommit = False
        if self._pin.autocommit != autocommit:
            if conn.in_transaction():  # a read's (no-op) transaction, or a failed write's
                conn.rollback()
            # psycopg's autocommit attribute: set locally, no round trip.
            level = "AUTOCOMMIT" if autocommit else conn.default_isolation_level
            conn.execution_options(isolation_level=level)
            self._pin.autocommit = autocommit
        return conn

    def _write(self, action: str, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in one write transaction; retry if PostgreSQL aborted it as a deadlock."""
        with self._errors(action), self._lock:
            engine = self._get_engine()
            for attempt in range(_WRITE_RETRIES):
                try:
                    pinned = self._pinned(autocommit=False)
                    if pinned is not None:
                        with pinned.begin():
                            return work(pinned)
                    with engine.connect() as conn:
                        conn.execution_options(**{_SQLITE_BEGIN_OPTION: "IMMEDIATE"})
                        with conn.begin():
                            return work(conn)
                except DBAPIError as exc:
                    sqlstate = getattr(exc.orig, "sqlstate", None)
                    if sqlstate not in _PG_RETRYABLE_SQLSTATES or attempt == _WRITE_RETRIES - 1:
                        raise
                    # full jitter: transactions that deadlocked together do not retry in step
                    time.sleep(random.uniform(0, 0.02 * 2**attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def _read(self, action: str, work: Callable[[Connection], T]) -> T:
        with self._errors(action), self._lock:
            pinned = self._pinned(autocommit=True)
            if pinned is not None:
                try:
                    return work(pinned)
                finally:
                    pinned.rollback()  # ends the autobegun (no-op) transaction: no round trip
            with self._get_engine().connect() as conn:
                return work(conn)

    def _stream(self, action: str, stmt: Select[Any], batch_size: int) -> Iterator[Row[Any]]:
        """Yield rows of ``stmt`` in batches (a server-side cursor on PostgreSQL).

        The connection stays checked out until the iterator is exhausted or closed.
        """
        if self._memory:
            # One shared connection: materialize, so callers can write while iterating.
            yield from self._read(action, lambda conn: conn.execute(stmt).all())
            return
        with self._errors(action), self._get_engine().connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=batch_size).execute(stmt)
            yield from result

    def _ensure_schema(self) -> None:
        """Create missing tables and indexes, and check/record the schema version.

        Idempotent, and safe when several processes open a new database at once: PostgreSQL
        serializes creators with an advisory lock (concurrent CREATE TABLE IF NOT EXISTS can
        still collide in the catalog); SQLite's BEGIN IMMEDIATE does the same.
        """

        def create(conn: Connection) -> None:
            if self.dialect == "postgresql":
                conn.execute(select(func.pg_advisory_xact_lock(_PG_SCHEMA_LOCK_KEY)))
            metadata.create_all(conn, checkfirst=True)
            current = conn.scalar(select(func.max(schema_version.c.version)))
            if current is None:
                conn.execute(insert(schema_version).values(version=SCHEMA_VERSION, applied_at=utcnow()))
            elif current > SCHEMA_VERSION:
                raise StorageError(
                    f"the database {self.safe_url} has schema version {current}, newer than this "
                    f"code's {SCHEMA_VERSION}: upgrade policy-crawler"
                )
            elif current < SCHEMA_VERSION:
                # 1 -> 2 only added tables, which create_all just made. Documents stored by
                # version 1 keep their old content_hash and have no LSH bands: they are not
                # found as stories of later copies until re-crawled (see the README).
                # 2 -> 3 and 3 -> 4 only added nullable or defaulted columns (and indexes).
                # 4 -> 5 and 5 -> 6 only added tables (attachments and their links; plans).
                # 6 -> 7 only added defaulted or nullable columns (what ranks a story's copies;
                # key_length stays NULL for older rows and is measured from the text when needed).
                _add_missing_columns(conn)
                conn.execute(insert(schema_version).values(version=SCHEMA_VERSION, applied_at=utcnow()))

        self._write("opening the store", create)

    # -- documents --------------------------------------------------------------------------------

    def add_document(self, doc: Document) -> bool:
        """Store ``doc`` unless a document with its ``content_hash`` exists. True if inserted."""
        return self.add_documents([doc])[0]

    def add_documents(self, docs: Sequence[Document]) -> list[bool]:
        """Insert-if-absent a batch in one transaction; one bool per input, True if inserted.

        A hash repeated inside the batch counts as inserted (at most) for its first occurrence.
        Insertion order (``iter_documents`` order) follows the order of ``docs``. NUL characters
        are dropped from every string field. Raises ValueError for an empty ``content_hash``.
        """
        if not docs:
            return []
        keys: list[str] = []  # content_hash per input, as stored
        first_index: dict[str, int] = {}
        rows: list[dict[str, Any]] = []
        for index, doc in enumerate(docs):
            row = _doc_to_row(doc)
            keys.append(row["content_hash"])
            if row["content_hash"] not in first_index:
                first_index[row["content_hash"]] = index
                rows.append(row)
        stmt = (
            self._insert(documents)
            .on_conflict_do_nothing(index_elements=[documents.c.content_hash])
            .returning(documents.c.content_hash)
        )

        def work(conn: Connection) -> set[str]:
            # RETURNING yields only the rows actually inserted (not the conflicting ones).
            return set(conn.execute(stmt, rows).scalars())

        inserted = self._write("storing documents", work)
        return [first_index[key] == index and key in inserted for index, key in enumerate(keys)]

    def get_document(self, content_hash: str) -> Document | None:
        stmt = select(documents).where(documents.c.content_hash == content_hash)
        row = self._read("reading a document", lambda conn: conn.execute(stmt).first())
        return None if row is None else _row_to_doc(row)

    def iter_documents(
        self,
        *,
        source: str | None = None,
        latest_only: bool = False,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> Generator[Document, None, None]:
        """Stream documents in insertion order without loading them all into memory.

        ``latest_only`` leaves out versions a later version of the same article replaced (also
        when that later version is now a copy of a better document of its story).
        The iterator holds a database connection until exhausted; ``close()`` it to stop early.
        """
        stmt = select(documents).order_by(documents.c.id)
        if source is not None:
            stmt = stmt.where(documents.c.source == source)
        if latest_only:
            newer = documents.alias("newer")
            stmt = stmt.where(
                ~select(newer.c.id).where(newer.c.previous_version == documents.c.content_hash).exists()
            )
            # A later version that became a copy of a better document still replaced this one.
            stmt = stmt.where(
                ~select(copies.c.id).where(copies.c.previous_version == documents.c.content_hash).exists()
            )
        for row in self._stream("reading documents", stmt, batch_size):
            yield _row_to_doc(row)

    def count_documents(self, *, source: str | None = None) -> int:
        stmt = select(func.count()).select_from(documents)
        if source is not None:
            stmt = stmt.where(documents.c.source == source)
        return int(self._read("counting documents", lambda conn: conn.scalar(stmt)) or 0)

    # -- stories and their copies -----------------------------------------------------------------

    def add_stories(
        self,
        items: Sequence[tuple[Document, Fingerprint]],
        *,
        threshold: float = DEFAULT_PARAMS.threshold,
        keep_text: bool = False,
        states: Sequence[UrlState] = (),
    ) -> list[StoryOutcome]:
        """Store each document as a new story, or as a copy of an earlier one, or as its story's
        new document when it is a better copy than the one stored.

        ``states``, when given, are the pages' URL states, one per item: each is recorded in
        the same transaction, as ``duplicate`` when its document turned out a copy (one commit
        per page instead of two, and never a document without its URL's state). The records
        given are not changed: the outcomes say what became of each document.

        In order, in one transaction (see the module doc for why it is safe across processes):
        a document whose exact key (``content_hash``) is stored, by another URL, is a copy with
        similarity 1.0; one whose key a copy has is a copy of that copy's story; otherwise the
        LSH bands give candidates, filtered by their signature estimate and confirmed by the
        exact Jaccard of the shingle sets (``>= threshold``); the most similar wins. A candidate
        stored by the same URL is skipped (an edited page is a new version, not a copy). Copies
        keep their text only if ``keep_text``. A fingerprint may come without its shingles
        (empty): they are recomputed from the document's text when a candidate needs them.

        A copy that outranks its story's document (:func:`crawler.dedup.outranks`: its portal's
        role, clean text, date, completeness) takes its place (``promoted``): the document
        becomes a copy (its text kept only if ``keep_text``), every copy of the story is
        re-pointed to the new document's ``content_hash``, the near-duplicate index holds the
        new document's bands and signature instead of the old one's, and the old document's
        URL is recorded ``duplicate``. So the story's document is its best copy whatever order
        the copies arrive in. (Not when the old document's URL has a newer text since: a story
        whose document is an outdated text of its page keeps it, and the copy is a copy.)
        """
        if not items:
            return []
        for doc, _ in items:
            _doc_to_row(doc)  # validates content_hash before the transaction starts

        # PostgreSQL: band keys found to need a lock that another transaction held; the next
        # attempt takes them with its own, in order, before it reads anything.
        more: set[int] = set()

        def work(conn: Connection) -> list[StoryOutcome]:
            held: set[int] = set()  # advisory locks this transaction holds (PostgreSQL)
            if self.dialect == "postgresql":
                self._lock_bands(conn, {k for _, fp in items for k in fp.bands} | more, held)
            outcomes: list[StoryOutcome] = []
            demoted: dict[str, None] = {}  # URLs whose document became a copy, in order
            for doc, fp in items:
                outcome = self._add_story(conn, doc, fp, threshold, keep_text, held)
                if outcome.status in ("stored", "version", "promoted"):
                    demoted.pop(doc.url, None)  # a later page of the batch made it a story again
                if outcome.demoted is not None:
                    demoted[outcome.demoted] = None
                outcomes.append(outcome)
            if states:
                # A copy's page is recorded ``duplicate``; the caller's records stay as given.
                recorded = [
                    replace(state, status=UrlStatus.DUPLICATE) if outcome.status == "copy" else state
                    for state, outcome in zip(states, outcomes, strict=True)
                ]
                self._upsert_urls(conn, recorded)
            if demoted:
                # After the states above: a demoted page of this very batch ends ``duplicate``.
                conn.execute(self._sql.demote_urls, {"demoted": list(demoted)})
            return outcomes

        if states and len(states) != len(items):
            raise ValueError(f"{len(states)} URL states for {len(items)} documents")
        for _ in range(_DECISION_ROUNDS):
            try:
                return self._write("storing documents", work)
            except _LocksTaken as busy:
                more.update(busy.keys)
        raise StorageError("storing documents: the stories kept changing under concurrent writers")

    @staticmethod
    def _lock_bands(conn: Connection, keys: set[int], held: set[int]) -> None:
        """Take the advisory locks of band ``keys`` not held yet, in ascending order (waiting
        for them: only at the start of a transaction, so every waiter takes its locks in one
        order and none can deadlock)."""
        wanted = sorted(keys - held)
        if wanted:
            # unnest yields in array order: the locks are taken in ascending key order.
            conn.execute(
                text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS t(k)"),
                {"keys": wanted},
            )
            held.update(wanted)

    @staticmethod
    def _more_locks(conn: Connection, keys: set[int], held: set[int]) -> None:
        """Take the locks of ``keys`` in the middle of a transaction, without waiting: waiting
        there, out of order, could deadlock with another transaction doing the same. When one
        is taken, the transaction is rolled back and run again with them taken first."""
        wanted = sorted(keys - held)
        try_all = "SELECT bool_and(pg_try_advisory_xact_lock(k)) FROM unnest(CAST(:keys AS bigint[])) AS t(k)"
        taken = conn.execute(text(try_all), {"keys": wanted}).scalar()
        if not taken:
            raise _LocksTaken(wanted)
        held.update(wanted)

    def _add_story(
        self,
        conn: Connection,
        doc: Document,
        fp: Fingerprint,
        threshold: float,
        keep_text: bool,
        held: set[int],
    ) -> StoryOutcome:
        for _ in range(_DECISION_ROUNDS):
            outcome = self._place(conn, doc, fp, threshold, keep_text, held)
            if outcome is not None:
                return outcome
        # Each round took the locks of a story's document that another transaction had just
        # replaced; this many in a row means something is wrong, not busy.
        raise StorageError(f"the story of {doc.url} kept changing while it was stored")

    def _place(
        self,
        conn: Connection,
        doc: Document,
        fp: Fingerprint,
        threshold: float,
        keep_text: bool,
        held: set[int],
    ) -> StoryOutcome | None:
        """One decision for ``doc`` (see :meth:`add_stories`); None when it had to take more
        locks first (PostgreSQL), after which the decision is made again on what is committed."""
        row = _doc_to_row(doc)
        row["key_length"] = fp.length or len(dedup_key(doc.text))
        digest = row["content_hash"]
        found: dict[int, Row[Any]] = {}
        for found_row in conn.execute(self._sql.lookup, {"digest": digest, "url": doc.url}):
            found.setdefault(int(found_row.rank), found_row)
        exact = found.get(0) or found.get(1)  # a stored story with the key, else a copy with it
        if exact is not None:
            if exact.rank == 0 and exact.url == doc.url:
                return StoryOutcome("unchanged")
            # Found by its own key the story shares all its bands; through a copy, maybe none.
            if exact.rank == 0:
                return self._join_story(conn, row, fp, found, exact, 1.0, keep_text, held, True)
            head = conn.execute(self._sql.story_document, {"digest": exact.story}).first()
            if head is None:  # pragma: no cover - every copy is re-pointed when its document goes
                return self._record_copy(conn, row, exact.story, 1.0, keep_text)
            return self._join_story(conn, row, fp, found, head, 1.0, keep_text, held, False)
        best = self._best_candidate(conn, doc, fp, threshold)
        if best is not None:
            return self._join_story(conn, row, fp, found, best[0], best[1], keep_text, held, True)
        # A new text for a URL that stored one before: the article changed. The new text is
        # the next version; the earlier ones stay, and the export shows the latest.
        self._set_version(row, found)
        doc_id = self._insert_story(conn, row, fp)
        if doc_id is None:  # pragma: no cover - same key, same bands: the locks exclude this
            return self._record_copy(conn, row, digest, 1.0, keep_text)
        if 3 in found:
            # A page recorded as a copy before that now holds a story of its own is no copy.
            conn.execute(self._sql.delete_copy, {"url": doc.url})
        if row["previous_version"] is not None:
            return StoryOutcome("version", previous_version=row["previous_version"])
        return StoryOutcome("stored")

    @staticmethod
    def _set_version(row: dict[str, Any], found: dict[int, Row[Any]]) -> None:
        """A document stored by a URL that stored another text before is its next version."""
        latest = found.get(2)
        if latest is not None:
            row.update(version=int(latest.version) + 1, previous_version=latest.story)
        else:
            row.update(version=1, previous_version=None)

    def _join_story(
        self,
        conn: Connection,
        row: dict[str, Any],
        fp: Fingerprint,
        found: dict[int, Row[Any]],
        head: Any,
        similarity: float,
        keep_text: bool,
        held: set[int],
        shares_band: bool,
    ) -> StoryOutcome | None:
        """``row`` is a copy of the story whose document is ``head`` (a row with its id, url,
        version, content hash as ``story`` or ``content_hash``, and what ranks it): record it as
        one, or make it the story's document if it outranks ``head``. None: more locks were
        taken, decide again. ``shares_band``: the story was found through a band of ``row`` (so
        its lock is held).

        Locks (PostgreSQL): whoever replaces a story's document holds the locks of all the
        document's bands, and whoever records a copy of it holds at least one of them (a band
        that found it, or its own key's bands when the key is the document's). So a copy is
        never recorded against a document that a concurrent transaction is demoting: one waits
        for the other, and the later one sees the earlier one's outcome.
        """
        story = head.content_hash if "content_hash" in head._fields else head.story
        promote = head.url != row["url"] and outranks(_rank_of(row), self._rank_of_head(conn, head))
        if self.dialect == "postgresql" and (promote or not shares_band):
            bands = set(conn.execute(self._sql.document_bands, {"id": head.id}).scalars())
            if promote and not bands <= held:
                self._more_locks(conn, bands, held)
                return None
            if not promote and bands and not bands & held:  # found through one of its copies
                self._more_locks(conn, {min(bands)}, held)
                return None
        newer = {"url": head.url, "version": head.version}
        if promote and conn.execute(self._sql.newer_record, newer).first() is not None:
            promote = False  # the document is an outdated text of its page (see add_stories)
        if not promote:
            return self._record_copy(conn, row, story, similarity, keep_text)
        return self._promote(conn, row, fp, found, int(head.id), keep_text)

    def _rank_of_head(self, conn: Connection, head: Any) -> CopyRank:
        length = head.key_length
        if length is None:  # stored before schema 6: measured from its text
            length = len(dedup_key(conn.execute(self._sql.document_text, {"id": head.id}).scalar_one()))
        return CopyRank(
            role=head.source_role,
            converted=bool(head.converted),
            damaged=bool(head.damaged),
            lang=head.lang,
            published_at=head.published_at,
            length=int(length),
            url=head.url,
        )

    def _promote(
        self,
        conn: Connection,
        row: dict[str, Any],
        fp: Fingerprint,
        found: dict[int, Row[Any]],
        head_id: int,
        keep_text: bool,
    ) -> StoryOutcome:
        """``row`` replaces document ``head_id`` as its story's document, in this transaction."""
        old = conn.execute(self._sql.whole_document, {"id": head_id}).one()._mapping
        # The old document leaves the index: its text is no longer what later pages are
        # compared with (that is the story's document), and a copy is never a candidate.
        for stmt in (self._sql.drop_bands, self._sql.drop_signature, self._sql.drop_document):
            conn.execute(stmt, {"id": head_id})
        self._set_version(row, found)
        if self._insert_story(conn, row, fp) is None:  # pragma: no cover - its key was found above
            raise StorageError(f"{row['url']}: its key was taken while it replaced its story's document")
        if 3 in found:
            conn.execute(self._sql.delete_copy, {"url": row["url"]})
        story = row["content_hash"]
        mine: set[int] | None = None  # the new document's shingles, computed once if needed

        def similarity_to(other: str) -> float:
            nonlocal mine
            if mine is None:
                mine = set(fp.shingles) if fp.shingles else _shingles(row["text"])
            return jaccard(mine, _shingles(other))

        if old["content_hash"] != story:
            # The story's copies follow it. Their similarity is now to the new document: 1.0
            # for its own key, measured where the copy's text is kept; a copy without text
            # keeps the figure it was recorded with (its text is not there to measure).
            measured = []
            for copy in conn.execute(self._sql.story_copies, {"old_story": old["content_hash"]}):
                if copy.content_hash == story:
                    measured.append({"copy_id": copy.id, "value": 1.0})
                elif copy.text:
                    measured.append({"copy_id": copy.id, "value": similarity_to(copy.text)})
            conn.execute(self._sql.repoint_copies, {"old_story": old["content_hash"], "new_story": story})
            if measured:
                conn.execute(self._sql.set_similarity, measured)
        similarity = 1.0 if old["content_hash"] == story else similarity_to(old["text"])
        demoted = {name: old[name] for name in _COPY_FIELDS}
        demoted.update(
            duplicate_of=story,
            similarity=similarity,
            text=old["text"] if keep_text else None,
            key_length=old["key_length"],
        )
        conn.execute(self._sql.record_copy, demoted)
        return StoryOutcome("promoted", previous_version=row["previous_version"], demoted=old["url"])

    def _insert_story(self, conn: Connection, row: dict[str, Any], fp: Fingerprint) -> int | None:
        """Insert a new story with its LSH bands and signature; its id, or None if its key was
        taken. On PostgreSQL one statement (a round trip, not three)."""
        bands = sorted(set(fp.bands))
        signature = pack_signature(fp.signature)
        if self.dialect == "postgresql":
            value = conn.execute(
                self._sql.insert_story_pg, {**row, "band_keys": bands, "signature": signature}
            ).scalar()
            return None if value is None else int(value)
        doc_id = conn.execute(self._sql.insert_document, row).scalar()
        if doc_id is None:
            return None
        conn.execute(self._sql.insert_bands, [{"band_key": k, "document_id": doc_id} for k in bands])
        conn.execute(self._sql.insert_signature, {"document_id": doc_id, "signature": signature})
        return int(doc_id)

    def _best_candidate(
        self, conn: Connection, doc: Document, fp: Fingerprint, threshold: float
    ) -> tuple[Row[Any], float] | None:
        """The most similar stored story at or above ``threshold``: (its document's row, with
        what ranks it, and the similarity).

        ``fp.shingles`` may be empty (a caller that keeps many fingerprints waiting drops them):
        they are then recomputed from ``doc.text``, only if a candidate passes the estimate.
        """
        # Streamed, one signature unpacked at a time: a popular band's candidates grow with the
        # store (~1,000 at 20,000 documents), and held at once they were megabytes per page.
        rows = conn.execute(self._sql.candidates, {"bands": sorted(set(fp.bands))})

        def shingles_of(ids: list[int]) -> Iterator[tuple[Row[Any], set[int]]]:
            # The candidate's shingles are recomputed from its text (~0.3 ms), only for the few
            # that passed the estimate: cheaper than storing ~4 KB of shingles per document.
            for r in conn.execute(self._sql.candidate_texts, {"ids": ids}):
                yield r, _shingles(r.text)

        return best_story(
            fp,
            # A story this same URL stored is an earlier version of it, not another story.
            ((int(r.id), unpack_signature(r.signature)) for r in rows if r.url != doc.url),
            shingles_of,
            threshold,
            mine=lambda: _shingles(doc.text),
        )

    def _record_copy(
        self, conn: Connection, row: dict[str, Any], story: str, similarity: float, keep_text: bool
    ) -> StoryOutcome:
        values = {name: row[name] for name in _COPY_FIELDS}
        values.update(
            duplicate_of=story,
            similarity=similarity,
            text=row["text"] if keep_text else None,
            key_length=row["key_length"],
        )
        conn.execute(self._sql.record_copy, values)
        return StoryOutcome("copy", story, similarity)

    def iter_copies(
        self, *, duplicate_of: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> Generator[tuple[Document, float], None, None]:
        """Stream copies (a Document with ``duplicate_of`` set, text "" unless kept, and the
        similarity), ordered by story then by id; optionally of one story only."""
        stmt = select(copies).order_by(copies.c.duplicate_of, copies.c.id)
        if duplicate_of is not None:
            stmt = stmt.where(copies.c.duplicate_of == duplicate_of)
        for row in self._stream("reading copies", stmt, batch_size):
            mapping = row._mapping
            values = {name: mapping[name] for name in _COPY_FIELDS}
            yield Document(text=mapping["text"] or "", **values), float(mapping["similarity"])

    def get_copy(self, url: str) -> tuple[Document, float] | None:
        """The copy recorded for ``url`` (see :meth:`iter_copies`), or None."""
        stmt = select(copies).where(copies.c.url == url)
        row = self._read("reading a copy", lambda conn: conn.execute(stmt).first())
        if row is None:
            return None
        mapping = row._mapping
        values = {name: mapping[name] for name in _COPY_FIELDS}
        return Document(text=mapping["text"] or "", **values), float(mapping["similarity"])

    def count_copies(self) -> int:
        stmt = select(func.count()).select_from(copies)
        return int(self._read("counting copies", lambda conn: conn.scalar(stmt)) or 0)

    # -- attachments ------------------------------------------------------------------------------

    def link_attachments(self, document_url: str, links: Sequence[AttachmentLink]) -> None:
        """Record the attachments a page links (its :attr:`PageOutcome.attachments`), in order.

        Idempotent: a link recorded before keeps its download result (sha256 or error) and gets
        the new title, type and position. Links a page no longer has are kept (an earlier
        version of the article had them).
        """
        rows = {
            link.url: {
                "document_url": document_url,
                "url": link.url,
                "title": _strip_nul(link.title),
                "type": link.type,
                "position": position,
            }
            for position, link in enumerate(links)
        }
        if not rows:
            return
        stmt = self._insert(document_attachments)
        stmt = stmt.on_conflict_do_update(
            index_elements=[document_attachments.c.document_url, document_attachments.c.url],
            set_={name: stmt.excluded[name] for name in ("title", "type", "position")},
        )
        ordered = [rows[url] for url in sorted(rows)]  # one lock order for concurrent writers
        self._write("recording attachment links", lambda conn: conn.execute(stmt, ordered))

    def add_attachment(self, attachment: Attachment) -> bool:
        """Store a downloaded attachment unless one with its sha256 is stored (True if inserted),
        and point every page's link to its URL at it (:meth:`resolve_attachment`)."""
        row = {name: _strip_nul(getattr(attachment, name)) for name in _ATTACHMENT_FIELDS}
        stmt = (
            self._insert(attachments)
            .on_conflict_do_nothing(index_elements=[attachments.c.sha256])
            .returning(attachments.c.id)
        )

        def work(conn: Connection) -> bool:
            inserted = conn.execute(stmt, row).first() is not None
            self._resolve(conn, attachment.url, attachment.sha256, None)
            return inserted

        return self._write("storing an attachment", work)

    def resolve_attachment(
        self, url: str, *, sha256: str | None = None, error_reason: str | None = None
    ) -> None:
        """Record the download result of the attachment at ``url`` on every link to it: its
        file's ``sha256``, or why it could not be had (``error_reason``, a crawler.errors reason)."""
        self._write(
            "recording an attachment download", lambda conn: self._resolve(conn, url, sha256, error_reason)
        )

    def _resolve(self, conn: Connection, url: str, sha256: str | None, error_reason: str | None) -> None:
        conn.execute(
            document_attachments.update()
            .where(document_attachments.c.url == url)
            .values(sha256=sha256, error_reason=error_reason)
        )

    def pending_attachments(self, source: str) -> list[tuple[str, str | None]]:
        """The attachments of ``source``'s pages never downloaded nor refused: ``(url, type)``
        (a crawl stopped before their turn resumes them)."""
        stmt = (
            select(document_attachments.c.url, func.min(document_attachments.c.type))
            .join(urls, urls.c.url == document_attachments.c.document_url)
            .where(urls.c.source == source)
            .where(document_attachments.c.sha256.is_(None))
            .where(document_attachments.c.error_reason.is_(None))
            .group_by(document_attachments.c.url)
            .order_by(document_attachments.c.url)
        )
        return self._read(
            "reading pending attachments", lambda conn: [(r[0], r[1]) for r in conn.execute(stmt)]
        )

    def attachment_sha256(self, url: str) -> str | None:
        """The sha256 an earlier download of the attachment at ``url`` found, or None: a link
        already downloaded from another page needs no second download."""
        stmt = (
            select(document_attachments.c.sha256)
            .where(document_attachments.c.url == url)
            .where(document_attachments.c.sha256.is_not(None))
            .limit(1)
        )
        return self._read("reading an attachment link", lambda conn: conn.scalar(stmt))

    def get_attachment(self, sha256: str) -> Attachment | None:
        stmt = select(attachments).where(attachments.c.sha256 == sha256)
        row = self._read("reading an attachment", lambda conn: conn.execute(stmt).first())
        if row is None:
            return None
        mapping = row._mapping
        return Attachment(**{name: mapping[name] for name in _ATTACHMENT_FIELDS})

    def iter_attachments(self, *, batch_size: int = DEFAULT_BATCH_SIZE) -> Generator[Attachment, None, None]:
        """Stream the stored attachments in insertion order."""
        stmt = select(attachments).order_by(attachments.c.id)
        for row in self._stream("reading attachments", stmt, batch_size):
            mapping = row._mapping
            yield Attachment(**{name: mapping[name] for name in _ATTACHMENT_FIELDS})

    def update_attachment_text(self, sha256: str, text: str | None, text_error: str | None) -> None:
        """Replace an attachment's text (a re-extraction with better code)."""
        stmt = (
            attachments.update()
            .where(attachments.c.sha256 == sha256)
            .values(text=_strip_nul(text), text_error=text_error)
        )
        self._write("updating an attachment's text", lambda conn: conn.execute(stmt))

    def attachments_of(self, document_url: str) -> list[dict[str, Any]]:
        """A page's attachments in their export form (``Document.to_export(attachments=...)``)."""
        return self.attachments_for([document_url]).get(document_url, [])

    def attachments_for(self, document_urls: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """The export form of the attachments of each page in ``document_urls`` (only pages
        that link some), in page order: url, title, type, bytes, sha256, text (size, hash and
        text null until the file is downloaded). A round trip per 500 pages."""
        wanted = sorted(set(document_urls))
        stmt = (
            select(
                document_attachments.c.document_url,
                document_attachments.c.url,
                document_attachments.c.title,
                func.coalesce(attachments.c.type, document_attachments.c.type).label("type"),
                attachments.c.size,
                attachments.c.sha256,
                attachments.c.text,
            )
            .select_from(
                document_attachments.outerjoin(
                    attachments, attachments.c.sha256 == document_attachments.c.sha256
                )
            )
            .where(document_attachments.c.document_url.in_(bindparam("urls", expanding=True)))
            .order_by(document_attachments.c.document_url, document_attachments.c.position)
        )

        def work(conn: Connection) -> dict[str, list[dict[str, Any]]]:
            found: dict[str, list[dict[str, Any]]] = {}
            for start in range(0, len(wanted), 500):
                for row in conn.execute(stmt, {"urls": wanted[start : start + 500]}):
                    size = None if row.size is None else int(row.size)
                    found.setdefault(row.document_url, []).append(
                        attachment_export(row.url, row.title, row.type, size, row.sha256, row.text)
                    )
            return found

        return self._read("reading attachment links", work) if wanted else {}

    # -- URLs -------------------------------------------------------------------------------------

    def record_url(self, state: UrlState) -> None:
        """Upsert one URL's state (see :meth:`record_urls`)."""
        self.record_urls([state])

    def record_urls(self, states: Sequence[UrlState]) -> None:
        """Upsert URL states in one transaction: last write wins, except ``attempts`` keeps
        the maximum seen, so a late or replayed report never makes a URL look less tried."""
        if states:
            self._write("recording URLs", lambda conn: self._upsert_urls(conn, states))

    def _upsert_urls(self, conn: Connection, states: Sequence[UrlState]) -> None:
        if not states:
            return
        merged: dict[str, dict[str, Any]] = {}
        for state in states:
            row = _state_to_row(state)
            previous = merged.get(row["url"])
            if previous is not None:  # PostgreSQL refuses to update one row twice per statement
                row["attempts"] = max(row["attempts"], previous["attempts"])
            merged[row["url"]] = row
        # A fixed order makes concurrent batches lock rows in the same order (no deadlocks).
        rows = [merged[url] for url in sorted(merged)]
        conn.execute(self._sql.upsert_urls, rows)

    def add_queued(self, states: Sequence[UrlState]) -> set[str]:
        """Record URLs as queued unless they have a state already (insert-if-absent): the
        database, not only the broker, knows every URL a crawl has sent to be visited, so that
        a message the broker loses (a restart without persistence, a worker killed at the wrong
        moment) can be sent again by the next run. Returns the URLs recorded by this call (the
        others had a state)."""
        if not states:
            return set()
        rows = [_state_to_row(state) for state in {s.url: s for s in states}.values()]
        rows.sort(key=lambda row: row["url"])  # the same lock order in every transaction
        # RETURNING yields only the rows actually inserted (not the conflicting ones).
        return self._write(
            "recording queued URLs", lambda conn: set(conn.execute(self._sql.queue_urls, rows).scalars())
        )

    def get_url(self, url: str) -> UrlState | None:
        row = self._read("reading a URL", lambda conn: conn.execute(self._sql.get_url, {"url": url}).first())
        return None if row is None else _row_to_state(row)

    def get_urls(self, wanted: Sequence[str]) -> dict[str, UrlState]:
        """The stored states of those URLs in ``wanted`` that have one (a round trip per 500)."""
        unique = sorted(set(wanted))

        def work(conn: Connection) -> dict[str, UrlState]:
            found: dict[str, UrlState] = {}
            for start in range(0, len(unique), 500):
                rows = conn.execute(self._sql.get_urls, {"urls": unique[start : start + 500]})
                found.update((row.url, _row_to_state(row)) for row in rows)
            return found

        return self._read("reading URLs", work) if unique else {}

    def iter_due_urls(
        self, source: str, now: datetime, *, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> Generator[UrlState, None, None]:
        """Stream a source's URLs whose next visit has come (see :func:`crawler.recrawl.is_due`
        for what a crawl re-visits), soonest first."""
        stmt = (
            select(urls)
            .where(urls.c.source == source)
            .where(urls.c.next_visit_at.is_not(None))
            .where(urls.c.next_visit_at <= now)
            .order_by(urls.c.next_visit_at, urls.c.url)
        )
        for row in self._stream("reading due URLs", stmt, batch_size):
            yield _row_to_state(row)

    def iter_urls(
        self,
        *,
        status: UrlStatus | None = None,
        source: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> Generator[UrlState, None, None]:
        """Stream URL states, ordered by URL, optionally filtered by status and/or source."""
        stmt = select(urls).order_by(urls.c.url)
        if status is not None:
            stmt = stmt.where(urls.c.status == UrlStatus(status).value)
        if source is not None:
            stmt = stmt.where(urls.c.source == source)
        for row in self._stream("reading URLs", stmt, batch_size):
            yield _row_to_state(row)

    # -- extraction plans (crawler.plans.PlanStore) ----------------------------------------------

    def load_plans(self, source: str, host: str) -> list[dict[str, Any]]:
        """The plans of ``source`` and ``host`` in their dict form, with their status and counts."""
        stmt = (
            select(extraction_plans)
            .where(extraction_plans.c.source == source)
            .where(extraction_plans.c.host == host)
        )
        return self._read("reading extraction plans", lambda conn: [_plan_of(r) for r in conn.execute(stmt)])

    def save_plan(self, source: str, host: str, plan: dict[str, Any]) -> None:
        """Insert a plan, or replace a stored one of an older version; for the same version,
        everything but the counts; a stored newer version is kept (another worker learned
        again). The counts are the template's, over its versions: they only grow (a plan
        learned again adds its own), so the mismatches that retired a plan stay in sight."""
        key = {"source": source, "host": host, "template": str(plan["template"])}
        counts = plan.get("counts") or {}
        row = {
            **key,
            "version": int(plan["version"]),
            "status": str(plan.get("status", "active")),
            "plan": json.dumps({k: v for k, v in plan.items() if k != "counts"}, ensure_ascii=False),
            "learned_at": plan.get("learned_at"),
            "retired_at": plan.get("retired_at"),
            "retired_why": plan.get("retired_why"),
        }
        where = (
            (extraction_plans.c.source == source)
            & (extraction_plans.c.host == host)
            & (extraction_plans.c.template == key["template"])
        )

        def work(conn: Connection) -> None:
            found = conn.execute(select(extraction_plans.c.version).where(where).with_for_update()).first()
            fresh = {n: int(counts.get(n, 0)) for n in _PLAN_COUNTS}
            if found is None:  # another worker inserting it meanwhile wins (its plan is as good)
                conn.execute(
                    self._insert(extraction_plans)
                    .values(**row, **fresh)
                    .on_conflict_do_nothing(index_elements=["source", "host", "template"])
                )
            elif found.version < row["version"]:
                values = {extraction_plans.c[k]: v for k, v in row.items()}
                values.update({extraction_plans.c[n]: extraction_plans.c[n] + v for n, v in fresh.items()})
                conn.execute(extraction_plans.update().where(where).values(values))
            elif found.version == row["version"]:
                conn.execute(extraction_plans.update().where(where).values(**row))

        self._write("saving an extraction plan", work)

    def retire_plan(self, source: str, host: str, template: str, version: int, why: str) -> None:
        """Mark a plan retired, if the stored one is still that version."""
        stmt = (
            extraction_plans.update()
            .where(extraction_plans.c.source == source)
            .where(extraction_plans.c.host == host)
            .where(extraction_plans.c.template == template)
            .where(extraction_plans.c.version == version)
            .values(status="retired", retired_why=why, retired_at=utcnow().isoformat(timespec="seconds"))
        )
        self._write("retiring an extraction plan", lambda conn: conn.execute(stmt))

    def add_plan_counts(
        self, source: str, host: str, template: str, version: int, counts: dict[str, int]
    ) -> None:
        """Add count increments to a template's plan (several workers add theirs; those of a
        version since replaced still count: they are the template's pages)."""
        increments = {name: int(counts.get(name, 0)) for name in _PLAN_COUNTS}
        if not any(increments.values()):
            return
        stmt = (
            extraction_plans.update()
            .where(extraction_plans.c.source == source)
            .where(extraction_plans.c.host == host)
            .where(extraction_plans.c.template == template)
            .where(extraction_plans.c.version >= version)
            .values({extraction_plans.c[n]: extraction_plans.c[n] + v for n, v in increments.items()})
        )
        self._write("counting extraction plan pages", lambda conn: conn.execute(stmt))

    def iter_plans(self, *, source: str | None = None) -> list[tuple[str, str, dict[str, Any]]]:
        """Every stored plan as ``(source, host, plan dict)``, by source, host and template."""
        stmt = select(extraction_plans).order_by(
            extraction_plans.c.source, extraction_plans.c.host, extraction_plans.c.template
        )
        if source is not None:
            stmt = stmt.where(extraction_plans.c.source == source)
        return self._read(
            "reading extraction plans",
            lambda conn: [(r.source, r.host, _plan_of(r)) for r in conn.execute(stmt)],
        )

    def delete_plans(self, *, source: str | None = None, host: str | None = None) -> int:
        """Forget plans (all, a source's, or a host's): their templates learn again. How many."""
        stmt = extraction_plans.delete()
        if source is not None:
            stmt = stmt.where(extraction_plans.c.source == source)
        if host is not None:
            stmt = stmt.where(extraction_plans.c.host == host)
        return int(self._write("deleting extraction plans", lambda conn: conn.execute(stmt).rowcount))

    # -- reporting --------------------------------------------------------------------------------

    def url_counts(self) -> dict[str | None, dict[str, int]]:
        """URLs per source and status: ``{source: {status: n}}`` (None: URLs without a source)."""
        stmt = select(urls.c.source, urls.c.status, func.count()).group_by(urls.c.source, urls.c.status)

        def work(conn: Connection) -> dict[str | None, dict[str, int]]:
            counts: dict[str | None, dict[str, int]] = {}
            for source, status, n in conn.execute(stmt):
                counts.setdefault(source, {})[status] = int(n)
            return counts

        return self._read("counting URLs", work)

    def stats(self) -> dict[str, Any]:
        """Counts for the CLI and monitoring, read in one transaction.

        ``{"documents": n, "copies": n, "documents_by_source": {source: n}, "urls": n,
        "urls_by_status": {status: n}, "errors_by_reason": {reason: n}}``; a document or URL
        without a source is counted under ``None``.
        """

        def grouped(conn: Connection, column: Any, where: Any = None) -> dict[Any, int]:
            stmt = select(column, func.count()).group_by(column).order_by(column)
            if where is not None:
                stmt = stmt.where(where)
            return {key: int(n) for key, n in conn.execute(stmt)}

        def work(conn: Connection) -> dict[str, Any]:
            by_source = grouped(conn, documents.c.source)
            by_status = grouped(conn, urls.c.status)
            return {
                "documents": sum(by_source.values()),
                "copies": int(conn.scalar(select(func.count()).select_from(copies)) or 0),
                "documents_by_source": by_source,
                "urls": sum(by_status.values()),
                "urls_by_status": by_status,
                "errors_by_reason": grouped(conn, urls.c.error_reason, urls.c.error_reason.is_not(None)),
            }

        return self._read("computing stats", work)


def open_store(url: str | None = None) -> Store:
    """Open (and create if needed) the store at ``url``, default ``settings.database_url``.

    ``sqlite:///path`` (parent directories are created), ``sqlite:///:memory:``, or
    ``postgresql://user[:password]@host[:port]/db``. Raises :class:`StorageError` if the URL is
    bad or the database unreachable.
    """
    if url is None:
        from settings import get_settings  # lazily: plain storage imports stay free of pydantic

        url = get_settings().database_url
    return Store(url)
