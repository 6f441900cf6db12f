"""The store's one error, and how its messages keep passwords out.

Kept free of SQLAlchemy so that callers (the CLI, workers) can catch and print it without
importing the database layer. The URL records live in :mod:`crawler.records`.
"""

from __future__ import annotations

import re

from crawler.errors import CrawlerError
from crawler.records import UrlState, UrlStatus

__all__ = ["StorageError", "UrlState", "UrlStatus", "mask_password"]


class StorageError(CrawlerError):
    """The document store is unusable: bad URL, unreachable server, failed query.

    Messages never contain a database password (see :func:`mask_password`).
    """

    reason = "storage"


# userinfo in anything URL-like: scheme://user:password@host -> scheme://user:***@host
_USERINFO_RE = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*):(?P<pw>[^@\s]*)@")


def mask_password(text: str, password: str | None = None) -> str:
    """Hide credentials in ``text``: URL userinfo passwords, and ``password`` wherever it appears.

    Applied to every message a :class:`StorageError` carries, because those end up in logs and
    in the CLI output.
    """
    masked = _USERINFO_RE.sub(lambda m: f"{m.group('head')}:***@", text)
    if password:
        masked = masked.replace(password, "***")
    return masked
