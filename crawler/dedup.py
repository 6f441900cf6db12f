"""Exact deduplication key of a document body.

``content_hash`` is the SHA-256 of the body in a canonical form: NFKC (full-width and
half-width forms agree) with every whitespace character removed (reflowed paragraphs agree).
The store has a unique index on it, so deciding "seen before" is the database's job, atomic
across processes.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

_WHITESPACE = re.compile(r"\s+")


def canonical_form(text: str) -> str:
    return _WHITESPACE.sub("", unicodedata.normalize("NFKC", text))


def content_hash(text: str) -> str:
    return hashlib.sha256(canonical_form(text).encode("utf-8")).hexdigest()
