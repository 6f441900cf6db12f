"""``crawler export``: the stored documents as JSONL (the default) or Parquet, the same rows.

A row is :meth:`crawler.document.Document.to_export` with the document's attachments
(:meth:`storage.Store.attachments_for`, read a batch of documents at a time). The Parquet file
has the typed schema :data:`PARQUET_SCHEMA` (documented in the README), attachments a nested
list of structs; it is written in row groups of :data:`PARQUET_ROW_GROUP` documents, so an
export never holds the corpus in memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any

from crawler.document import ATTACHMENT_EXPORT_KEYS, EXPORT_KEYS, Document

if TYPE_CHECKING:
    import pyarrow as pa

    from storage import Store

#: Documents read (and their attachments looked up) per batch.
EXPORT_BATCH = 500
#: Documents per Parquet row group.
PARQUET_ROW_GROUP = 5000


def export_rows(
    store: Store, *, source: str | None = None, all_versions: bool = False, with_copies: bool = False
) -> Iterator[dict[str, Any]]:
    """The export rows: documents (latest versions unless ``all_versions``) in insertion order,
    then with ``with_copies`` the recorded copies (``duplicate_of`` set, text null unless kept)."""
    yield from _with_attachments(store, store.iter_documents(source=source, latest_only=not all_versions))
    if with_copies:
        copies = (copy for copy, _ in store.iter_copies() if source is None or copy.source == source)
        for row in _with_attachments(store, copies):
            row["text"] = row["text"] or None  # null unless CRAWLER_KEEP_DUPLICATE_TEXT
            yield row


def _with_attachments(store: Store, docs: Iterator[Document]) -> Iterator[dict[str, Any]]:
    batch: list[Document] = []
    for doc in docs:
        batch.append(doc)
        if len(batch) >= EXPORT_BATCH:
            yield from _rows(store, batch)
            batch = []
    yield from _rows(store, batch)


def _rows(store: Store, batch: list[Document]) -> Iterator[dict[str, Any]]:
    if not batch:
        return
    found = store.attachments_for([doc.url for doc in batch])
    for doc in batch:
        yield doc.to_export(found.get(doc.url, ()))


def write_jsonl(rows: Iterator[dict[str, Any]], stream: IO[str]) -> int:
    count = 0
    for row in rows:
        stream.write(json.dumps(row, ensure_ascii=False) + "\n")
        count += 1
    return count


def parquet_schema() -> pa.Schema:
    """The Parquet export's schema: one column per export key, in order."""
    import pyarrow as pa

    attachment = pa.struct(
        [
            pa.field("url", pa.string(), nullable=False),
            pa.field("title", pa.string()),
            pa.field("type", pa.string()),
            pa.field("bytes", pa.int64()),
            pa.field("sha256", pa.string()),
            pa.field("text", pa.string()),
        ]
    )
    assert tuple(attachment.names) == ATTACHMENT_EXPORT_KEYS
    types: dict[str, pa.DataType] = {
        "fetched_at": pa.timestamp("us", tz="UTC"),
        "version": pa.int32(),
        "attachments": pa.list_(attachment),
    }
    required = {"url", "final_url", "content_hash", "fetched_at", "version", "attachments"}
    schema = pa.schema(
        [pa.field(key, types.get(key, pa.string()), nullable=key not in required) for key in EXPORT_KEYS]
    )
    return schema


def _column_values(rows: list[dict[str, Any]], key: str) -> list[Any]:
    if key == "fetched_at":
        return [datetime.fromisoformat(row[key]) for row in rows]
    return [row[key] for row in rows]


def write_parquet(rows: Iterator[dict[str, Any]], sink: str | IO[bytes]) -> int:
    """Write the rows to a Parquet file (zstd) in row groups; the number of rows written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = parquet_schema()
    count = 0
    with pq.ParquetWriter(sink, schema, compression="zstd") as writer:
        batch: list[dict[str, Any]] = []

        def flush() -> None:
            if batch:
                arrays = [pa.array(_column_values(batch, f.name), type=f.type) for f in schema]
                writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
                batch.clear()

        for row in rows:
            batch.append(row)
            count += 1
            if len(batch) >= PARQUET_ROW_GROUP:
                flush()
        flush()
    return count
