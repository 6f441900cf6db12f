"""Throwaway PostgreSQL schemas for tests (cheaper than databases, usable from subprocesses)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql


def libpq_url(url: str) -> str:
    """psycopg takes postgresql:// URIs, not SQLAlchemy's postgresql+driver:// form."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+', 1)[0]}{sep}{rest}"


@contextmanager
def temporary_schema(server_url: str, prefix: str = "test") -> Iterator[str]:
    """A fresh, uniquely named schema; yields a store URL selecting it, drops it afterwards.

    The URL selects the schema through libpq's ``options=-csearch_path=...``, so it works
    unchanged in subprocesses (workers started by a test).
    """
    schema = f"{prefix}_{uuid.uuid4().hex[:16]}"
    admin = libpq_url(server_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    separator = "&" if "?" in server_url else "?"
    try:
        yield f"{server_url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            # Fails loudly instead of hanging if a test leaked a connection holding locks.
            conn.execute("SET lock_timeout = '10s'")
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
