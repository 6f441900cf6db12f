"""The document store: documents and per-URL crawl state, in SQLite (default) or PostgreSQL.

Usage::

    from storage import open_store

    with open_store() as store:             # settings.database_url
        store.add_document(doc)             # False if its content_hash is already stored
        for doc in store.iter_documents(source="gov"):
            ...
"""

from __future__ import annotations

from .models import StorageError, UrlState, UrlStatus
from .sql import SCHEMA_VERSION, Store, StoryOutcome, open_store

__all__ = ["SCHEMA_VERSION", "StorageError", "Store", "StoryOutcome", "UrlState", "UrlStatus", "open_store"]
