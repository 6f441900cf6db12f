"""Source definitions, one TOML file per source (see :mod:`crawler.sources` for the fields).

This package only locates the files; validation lives with the model in :mod:`crawler.sources`.
``CRAWLER_SEEDS_DIR`` points at another directory of source files.
"""

from __future__ import annotations

import os
from pathlib import Path

from crawler.sources import Source, SourcesReport, load_sources, load_sources_report

SEEDS_DIR = Path(__file__).resolve().parent


def seeds_dir() -> Path:
    return Path(os.environ.get("CRAWLER_SEEDS_DIR") or SEEDS_DIR)


def all_sources() -> dict[str, Source]:
    """Every source, validated; raises ConfigError naming each bad file."""
    return load_sources(seeds_dir())


def sources_report() -> SourcesReport:
    """Every good source plus the errors of the bad files."""
    return load_sources_report(seeds_dir())
