"""Checked command-line values: each flag's type function names what it accepts.

A bad flag ends the command with exit code 2 and exactly one line on standard error
(:class:`OneLineParser`), e.g. ``crawler crawl: error: argument --concurrency: must be an
integer from 1 to 1024, got '0' (see crawler crawl --help)``. Nothing here imports more than
the standard library and :mod:`settings`'s constants, so ``crawler --help`` stays fast.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from settings import DATABASE_URL_HELP, check_database_url

#: Source ids, as ``crawler.sources.Source.id`` accepts them.
SOURCE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_CONTENT_HASH = re.compile(r"^[0-9a-f]{64}$")


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the usage text is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        message = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def integer(low: int, high: int | None = None) -> Callable[[str], int]:
    """An integer within ``[low, high]``."""
    allowed = f"an integer from {low} to {high}" if high is not None else f"an integer of {low} or more"

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}")
        return value

    parse.__name__ = "integer"
    return parse


def seconds(low: float, high: float, *, low_inclusive: bool = True) -> Callable[[str], float]:
    """A finite number of seconds within the bounds."""
    allowed = (
        f"a number of seconds from {low:g} to {high:g}"
        if low_inclusive
        else f"a number of seconds greater than {low:g} and at most {high:g}"
    )

    def parse(text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}") from None
        too_low = value < low if low_inclusive else value <= low
        if not math.isfinite(value) or too_low or value > high:
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}")
        return value

    parse.__name__ = "seconds"
    return parse


def network(text: str) -> str:
    """A CIDR network (``127.0.0.0/8``) or one address."""
    from crawler.netpolicy import parse_network

    try:
        return str(parse_network(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def database_url(text: str) -> str:
    try:
        return check_database_url(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {DATABASE_URL_HELP}, got {text!r}") from None


def source_id(text: str) -> str:
    if not SOURCE_ID.match(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a source id (lower-case letters, digits, '-' and '_'; see `crawler sources`)"
        )
    return text


def content_hash(text: str) -> str:
    value = text.strip().lower()
    if not _CONTENT_HASH.match(value):
        raise argparse.ArgumentTypeError(
            f"must be a content_hash (64 hex digits, as `crawler duplicates --json` shows), got {text!r}"
        )
    return value


def http_url(text: str) -> str:
    from crawler.sources import check_start_url

    try:
        return check_start_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def error_reason(text: str) -> str:
    from crawler.errors import known_reason
    from crawler.records import UrlStatus

    if known_reason(text) or text in {s.value for s in UrlStatus}:
        return text
    raise argparse.ArgumentTypeError(
        f"unknown reason {text!r}; reasons are those `crawler errors` lists (e.g. http_404, timeout, robots, "
        "blocked_address; see crawler/errors.py)"
    )


def output_file(text: str) -> str:
    """A file the command may create or replace: not a directory, in a folder that exists.
    ``-`` is standard output."""
    if text == "-":
        return text
    path = Path(text)
    if text.endswith(("/", os.sep)) or path.is_dir():
        example = f"{text.rstrip('/')}/documents.jsonl"
        raise argparse.ArgumentTypeError(f"{text!r} is a directory; give a file name such as {example}")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"folder {str(folder)!r} does not exist (create it first)")
    if not os.access(folder, os.W_OK):
        raise argparse.ArgumentTypeError(f"folder {str(folder)!r} is not writable")
    return text


def input_file(text: str) -> str:
    """A file to read, or ``-`` for standard input (checked when it is read)."""
    if not text:
        raise argparse.ArgumentTypeError("an empty file name; give a path or - for standard input")
    return text
