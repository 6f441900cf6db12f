"""Where a SQLite store lives on disk, read from its URL without SQLAlchemy.

Commands that only read (``stats``, ``export``, ``errors``, ``duplicates``, ``status``) must not
create a store: a mistyped path, or a command run from another directory, used to leave an
empty database (and a ``data/`` folder) behind and report ``documents: 0``. They call
:func:`missing_store` first; only a crawl creates a store.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///PATH`` URL (relative to the working directory unless absolute),
    or None for another backend, an in-memory database or a ``file:`` URI."""
    text = url.strip()
    scheme, sep, rest = text.partition("://")
    if not sep or scheme.lower().partition("+")[0] != "sqlite":
        return None
    database = unquote(rest[1:] if rest.startswith("/") else rest).split("?", 1)[0]
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database).expanduser()


def missing_store(url: str) -> str | None:
    """Why a read command cannot use the store at ``url`` (it does not exist), in one line, or None."""
    path = sqlite_path(url)
    if path is None or path.is_file():
        return None
    where = path.resolve()
    if path.exists():
        return f"{where} is not a SQLite store (it is a directory or a special file)"
    return (
        f"no store at {where} (from --db or CRAWLER_DATABASE_URL); a crawl creates it: "
        f"crawler crawl SOURCE_ID|URL --db sqlite:///{path}"
    )
