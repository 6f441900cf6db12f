"""The bundled sample web: Chinese policy portals served on 127.0.0.1, with ground truth.

What the README's first command crawls offline (``crawler demo``), and what integration tests and
benchmarks crawl. :func:`build_site` describes the web (sites, routes, expected texts);
:func:`serve_site` serves it, one port per site. See :mod:`crawler.samplesite.site` for the sites
and their traps, :mod:`crawler.samplesite.server` for serving and hostile test routes, and
:mod:`crawler.samplesite.content` for the articles.
"""

from __future__ import annotations

from crawler.samplesite.content import ARTICLES, Article, expected_text, get_article
from crawler.samplesite.server import (
    DEFAULT_PORT_BASE,
    LoggedRequest,
    Request,
    Response,
    Route,
    RunningSite,
    drip,
    fail_then,
    gzip_bomb,
    html,
    malformed_html,
    not_found,
    oversized,
    pdf,
    pdf_as_html,
    redirect,
    redirect_loop,
    serve_site,
    server_error,
    site_url,
    slow,
    too_many_requests,
    wrong_meta_charset,
)
from crawler.samplesite.site import (
    ADDED,
    CUT,
    ORIGINAL,
    ORPHAN,
    REPOST,
    SITE_NAMES,
    ArticlePage,
    PageKey,
    SampleWeb,
    Site,
    build_site,
)

__all__ = [
    "ADDED",
    "ARTICLES",
    "CUT",
    "DEFAULT_PORT_BASE",
    "ORIGINAL",
    "ORPHAN",
    "REPOST",
    "SITE_NAMES",
    "Article",
    "ArticlePage",
    "LoggedRequest",
    "PageKey",
    "Request",
    "Response",
    "Route",
    "RunningSite",
    "SampleWeb",
    "Site",
    "build_site",
    "drip",
    "expected_text",
    "fail_then",
    "get_article",
    "gzip_bomb",
    "html",
    "malformed_html",
    "not_found",
    "oversized",
    "pdf",
    "pdf_as_html",
    "redirect",
    "redirect_loop",
    "serve_site",
    "server_error",
    "site_url",
    "slow",
    "too_many_requests",
    "wrong_meta_charset",
]
