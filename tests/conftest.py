"""Shared fixtures: database URLs for the store's contract tests, on SQLite and PostgreSQL.

PostgreSQL is required, not optional: CI must run the contract on both backends, so an
unreachable server fails the tests (with instructions) instead of skipping them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from storage import Store, open_store
from storage.models import mask_password
from tests.pg import libpq_url, temporary_schema

#: Environment variable naming the PostgreSQL server (and database) tests may use.
PG_URL_ENV = "CRAWLER_TEST_POSTGRES_URL"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """The PostgreSQL URL from ``$CRAWLER_TEST_POSTGRES_URL`` (default: local ``test`` database).

    Checked once per session; unreachable means FAIL, never skip.
    """
    url = os.environ.get(PG_URL_ENV, DEFAULT_PG_URL)
    problem = None
    try:
        psycopg.connect(libpq_url(url), connect_timeout=5).close()
    except psycopg.Error as exc:
        problem = f"{exc.__class__.__name__}: {' '.join(str(exc).split())}"
    if problem is not None:  # failed outside the except block: no chained traceback noise
        pytest.fail(
            f"PostgreSQL is not reachable at {mask_password(url)} ({problem}).\n"
            "The storage tests need a real PostgreSQL server. Start one, e.g.\n"
            "  docker run -d --name crawler-pg -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust "
            "-e POSTGRES_DB=test postgres:16\n"
            "or `sudo service postgresql start` (then `createdb -U postgres test`),\n"
            f"or point ${PG_URL_ENV} at a server where you may create schemas.",
            pytrace=False,
        )
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file URL in the test's temporary directory (the file does not exist yet)."""
    return f"sqlite:///{tmp_path / 'store.sqlite3'}"


@pytest.fixture
def pg_url(pg_server_url: str) -> Iterator[str]:
    """A fresh, uniquely named PostgreSQL schema (empty), dropped afterwards.

    The URL selects it through libpq's ``options=-csearch_path=...``, so it works unchanged in
    subprocesses. A schema is much cheaper than a database (no template copy).
    """
    with temporary_schema(pg_server_url) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def store_url(request: pytest.FixtureRequest) -> str:
    """The URL of an empty store, once on SQLite and once on PostgreSQL."""
    return str(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """An open store on each backend, closed afterwards."""
    with open_store(store_url) as opened:
        yield opened


# Local servers for the fetcher tests (127.0.0.1 only).
from tests.fixtures_net import (  # noqa: E402, F401
    fake_dns,
    hostile_server,
    slow_server,
    socket_guard,
    unused_port_server,
)
