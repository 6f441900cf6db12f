"""Find a page's links (selectolax) and decide which of them are in a source's scope."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from selectolax.lexbor import LexborHTMLParser as HTMLParser

from crawler.errors import InvalidURL
from crawler.sources import Source, host_allowed
from crawler.urls import DEFAULT_MAX_URL_LENGTH, canonicalize, resolve

_SKIP_SCHEMES = ("javascript:", "mailto:", "tel:", "data:", "ftp:", "file:", "about:", "#")
_REFRESH_URL = re.compile(r"url\s*=\s*['\"]?([^'\";]+)", re.IGNORECASE)
# Files that are never HTML pages: not worth a request.
_BINARY_SUFFIX = re.compile(
    r"\.(pdf|docx?|xlsx?|pptx?|wps|et|zip|rar|7z|gz|tar|jpe?g|png|gif|bmp|webp|svg|ico|mp[34]|avi|mov|flv|"
    r"wmv|exe|apk|dmg|iso|css|js|json|xml|txt|ofd|ceb)$",
    re.IGNORECASE,
)


#: Links kept per page by default (``CRAWLER_MAX_LINKS_PER_PAGE``): a page of 50,000 links left
#: 49,720 queued rows behind; no portal page a crawl needs links more than a few thousand pages.
DEFAULT_MAX_LINKS_PER_PAGE = 5_000


def extract_links(html: str, page_url: str, *, max_url_length: int = DEFAULT_MAX_URL_LENGTH) -> list[str]:
    """Canonical absolute URLs of a page's ``<a>``/``<area>`` links and meta refresh, in page order.

    Relative links resolve against ``<base href>`` when present. ``rel=nofollow`` links, non-http
    schemes and malformed URLs are skipped. Each URL appears once.
    """
    return extract_links_capped(html, page_url, max_url_length=max_url_length, limit=None)[0]


@dataclass(slots=True)
class LinkTargets:
    """A page's link targets as written: every ``<a href>``/``<area href>`` (and whether it may
    be followed: not ``rel=nofollow``), the meta refresh URLs, the ``<base href>``."""

    anchors: list[tuple[str, bool]]
    refresh: list[str]
    base_href: str | None

    @classmethod
    def of(cls, tree: HTMLParser) -> LinkTargets:
        """Read from lexbor's tree in one walk (each CSS query walks the whole tree)."""
        anchors: list[tuple[str, bool]] = []
        refresh: list[str] = []
        base_href = None
        for node in tree.css("base[href], a[href], area[href], meta[http-equiv]"):
            attributes = node.attributes  # a dict built per call: read it once
            tag = node.tag
            if tag == "meta":
                if (attributes.get("http-equiv") or "").lower() == "refresh":
                    match = _REFRESH_URL.search(attributes.get("content") or "")
                    if match:
                        refresh.append(match.group(1))
            elif tag == "base":
                if base_href is None:
                    base_href = attributes.get("href") or ""
            else:
                href = attributes.get("href")
                if href:
                    anchors.append((href, "nofollow" not in (attributes.get("rel") or "").lower()))
        return cls(anchors, refresh, base_href)


def extract_links_capped(
    html: str,
    page_url: str,
    *,
    max_url_length: int = DEFAULT_MAX_URL_LENGTH,
    limit: int | None,
    targets: LinkTargets | None = None,
) -> tuple[list[str], int]:
    """:func:`extract_links`, keeping the first ``limit`` links (None: all), and how many were
    dropped: the distinct link targets, as written in the page, after the kept ones (they are
    not resolved, so a hostile page of a million links costs little more than its parse).
    ``targets``: the page's, read already (the extraction's fast path reads the same tree)."""
    if targets is None:
        targets = LinkTargets.of(HTMLParser(html))
    base = page_url
    base_href = (targets.base_href or "").strip()
    if base_href:
        base = resolve(page_url, base_href)
    candidates = [href for href, follow in targets.anchors if follow]
    candidates += targets.refresh

    seen: set[str] = set()
    links: list[str] = []
    dropped = 0
    try:
        origin: tuple[str, str] | None = urlsplit(base)[:2]  # (scheme, host): the cache's key
    except ValueError:
        origin = None
    known = _origin_cache(origin, max_url_length)
    for href in dict.fromkeys(h.strip() for h in candidates):  # menus repeat their links
        url = known.get(href, _UNKNOWN)
        if url is _UNKNOWN and (not href or href.lower().startswith(_SKIP_SCHEMES)):
            url = _SKIPPED  # a decision that depends on the href alone
            _remember(known, href, url)
        if url is _SKIPPED:
            continue
        if limit is not None and len(links) >= limit:
            dropped += 1
            continue
        if url is _UNKNOWN:
            url = _canonical_link(base, origin, href, max_url_length, known)
        if isinstance(url, str) and url not in seen:
            seen.add(url)
            links.append(url)
    return links, dropped


#: Canonical links per (base scheme, base host, length limit), by href, for hrefs that only depend
#: on the base's origin: pages of one site repeat their menus, footers and link lists, so most of
#: a page's links were already resolved and canonicalized on an earlier page (measured on the
#: bench web: 1.5 of 2.1 ms per page in ``extract_links`` went to ``urljoin`` and
#: ``canonicalize``). A value is the canonical URL, ``None`` for an invalid link, or
#: :data:`_SKIPPED` for an href that is never followed (any href: that does not depend on the
#: base). Bounded: cleared when full.
_LINK_CACHE: dict[tuple[str, str, int], dict[str, object]] = {}
_LINK_CACHE_SIZE: list[int] = [0]
LINK_CACHE_SIZE = 4096
_UNKNOWN, _SKIPPED = object(), object()
#: An absolute http(s) href, or one from the site root ("/a", "//host/a"): ``urljoin`` reads only
#: the base's scheme and host for these (a relative href also needs the base's path, and so does
#: one whose authority is empty, "//" or "http://?q": it resolves to the base's own path).
_ORIGIN_ONLY = re.compile(r"/(?!/)|//[^/?#]|https?://[^/?#]", re.IGNORECASE)


def _origin_cache(origin: tuple[str, str] | None, max_url_length: int) -> dict[str, object]:
    """The cache of a base origin's links (a throwaway dict when the base has none)."""
    if origin is None:
        return {}
    return _LINK_CACHE.setdefault((*origin, max_url_length), {})


def _remember(known: dict[str, object], href: str, value: object) -> None:
    if _LINK_CACHE_SIZE[0] >= LINK_CACHE_SIZE:
        for cache in _LINK_CACHE.values():
            cache.clear()  # ``known`` may be one of them: it stays the origin's cache
        _LINK_CACHE_SIZE[0] = 0
    known[href] = value
    _LINK_CACHE_SIZE[0] += 1


def link_cache_size() -> int:
    """Entries held by the link cache (bounded by :data:`LINK_CACHE_SIZE`)."""
    return sum(len(cache) for cache in _LINK_CACHE.values())


def _canonical_link(
    base: str,
    origin: tuple[str, str] | None,
    href: str,
    max_url_length: int,
    known: dict[str, object] | None = None,
) -> str | None:
    """``canonicalize(resolve(base, href))``, or ``None`` for an invalid link; cached per origin
    (``origin``: the base's scheme and host, as ``urlsplit`` reads them; ``known``: its cache)."""
    if known is None:
        known = _origin_cache(origin, max_url_length)
    cached = known.get(href, _UNKNOWN)
    if cached is None or isinstance(cached, str):
        return cached
    url = _resolve_link(base, href, max_url_length)
    if origin is not None and cached is _UNKNOWN and _ORIGIN_ONLY.match(href) is not None:
        _remember(known, href, url)
    return url


def _resolve_link(base: str, href: str, max_url_length: int) -> str | None:
    try:
        return canonicalize(resolve(base, href), max_length=max_url_length)
    except (InvalidURL, ValueError):
        return None


#: Deeper paths than this are generated, not written (calendars, relative-link loops).
MAX_PATH_SEGMENTS = 16
#: A path segment repeated this often (/a/b/a/b/a/b/) is a relative-link loop.
MAX_SEGMENT_REPEATS = 3


def looks_like_trap(url: str) -> bool:
    """URLs that only a crawler trap produces: absurdly deep paths or a repeating segment."""
    path = urlsplit(url).path
    segments = [s for s in path.split("/") if s]
    if len(segments) > MAX_PATH_SEGMENTS:
        return True
    return any(count >= MAX_SEGMENT_REPEATS for count in Counter(segments).values())


class PageKind(StrEnum):
    ARTICLE = "article"  # extract a document
    LIST = "list"  # follow its links only
    ANY = "any"  # unknown: follow links and try to extract (sources without patterns)


@dataclass(slots=True, frozen=True)
class Verdict:
    follow: bool
    kind: PageKind
    reason: str | None = None  # why not followed: out_of_scope, denied, too_deep, binary


#: Verdicts remembered per scope: the menus and sidebars that repeat on every page are a few
#: hundred URLs; a crawl's every other link is judged about once, and a larger memo only grows
#: the crawl's memory with its size (a URL and a verdict per link judged, up to the cap).
MAX_CACHED_VERDICTS = 4_096
_TOO_DEEP = Verdict(False, PageKind.ANY, "too_deep")


class Scope:
    """A source's crawl rules: allowed hosts, allow/deny patterns, maximum depth."""

    def __init__(self, source: Source, *, max_depth: int | None = None) -> None:
        self.source = source
        self.max_depth = source.max_depth if max_depth is None else max_depth
        self.hosts = frozenset(source.allowed_hosts)
        self._article = [re.compile(p) for p in source.article_patterns]
        self._list = [re.compile(p) for p in source.list_patterns]
        self._deny = [re.compile(p) for p in source.deny_patterns]
        self.start_urls = frozenset(canonicalize(u) for u in source.start_urls)
        # What the URL alone decides, per URL: the same menus and sidebars link the same URLs
        # from every page of a site, and judging one is a dozen regex searches (a tenth of a
        # worker's time per page). Bounded: emptied when full.
        self._by_url: dict[str, Verdict] = {}

    def host_allowed(self, url: str) -> bool:
        return host_allowed(self.hosts, url)

    def refuses(self, url: str) -> str | None:
        """Why ``url`` is outside the source whatever its kind (``out_of_scope``: a host the
        source does not cover; ``denied``: a deny pattern), or None: a redirect target must pass
        this, not the article/list patterns, which judge links, not where a page has moved."""
        reason = self.judge(url, 0).reason
        return reason if reason in ("out_of_scope", "denied") else None

    def judge(self, url: str, depth: int) -> Verdict:
        """Whether to fetch ``url`` found at ``depth`` links from a start URL, and as what."""
        verdict = self._by_url.get(url)
        if verdict is None:
            if len(self._by_url) >= MAX_CACHED_VERDICTS:
                self._by_url.clear()
            verdict = self._by_url[url] = self._judge_url(url)
        # The URL's own faults are named first; a page of the source's kinds (or none) too deep.
        if depth > self.max_depth and verdict.reason in (None, "no_pattern"):
            return _TOO_DEEP
        return verdict

    def _judge_url(self, url: str) -> Verdict:
        """The verdict on ``url`` at any depth within the maximum."""
        if not self.host_allowed(url):
            return Verdict(False, PageKind.ANY, "out_of_scope")
        if any(p.search(url) for p in self._deny):
            return Verdict(False, PageKind.ANY, "denied")
        if _BINARY_SUFFIX.search(url.split("?", 1)[0]):
            return Verdict(False, PageKind.ANY, "not_html")
        if looks_like_trap(url):
            return Verdict(False, PageKind.ANY, "trap")
        if url in self.start_urls:
            return Verdict(True, PageKind.LIST if (self._article or self._list) else PageKind.ANY)
        is_article = any(p.search(url) for p in self._article)
        is_list = any(p.search(url) for p in self._list)
        if self._article or self._list:
            if is_article:
                return Verdict(True, PageKind.ARTICLE)
            if is_list:
                return Verdict(True, PageKind.LIST)
            return Verdict(False, PageKind.ANY, "no_pattern")
        return Verdict(True, PageKind.ANY)
