"""Crawl settings for tests, built the way the product builds them (from :class:`settings.Settings`,
so no test repeats a default)."""

from __future__ import annotations

from typing import Any

from crawler.crawl import CrawlOptions
from crawler.fetch import FetchLimits
from settings import Settings

#: What every local test crawl needs: the sample servers are on 127.0.0.1; no raw archive unless a
#: test asks for one (with archive_dir), so that no test writes under the repository's data/.
LOCAL = {
    "allowed_networks": ["127.0.0.0/8"],
    "user_agent": "policy-crawler-test/1",
    "archive_enabled": False,
}


def local_settings(**values: Any) -> Settings:
    """Settings for a test: loopback allowed, a test user agent, then ``values``."""
    return Settings(**{**LOCAL, **values})


def fetch_limits(**values: Any) -> FetchLimits:
    return local_settings(**values).fetch_limits()


def crawl_options(settings: dict[str, Any] | None = None, **flags: Any) -> CrawlOptions:
    """Options of an embedded test crawl: ``settings`` are ``CRAWLER_*`` values, ``flags`` the
    command line's (max_pages, concurrency, delay, extract_workers, revisit_all, ...)."""
    return local_settings(**(settings or {})).crawl_options(**flags)
