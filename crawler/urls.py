"""URL canonicalization: one spelling per page, so that the crawler never queues a page twice.

``canonicalize`` lower-cases scheme and host, encodes IDNs as punycode, drops default ports,
user info and fragments, resolves ``.``/``..`` segments, normalizes percent-encoding (upper-case
hex, unreserved characters decoded, non-ASCII encoded as UTF-8), removes tracking parameters and
sorts the query. Anything that cannot be made into an absolute http(s) URL raises
:class:`~crawler.errors.InvalidURL`.
"""

from __future__ import annotations

import posixpath
import re
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit

from crawler.errors import InvalidURL

DEFAULT_MAX_URL_LENGTH = 2048

# Parameters that identify a click or a campaign, never a page. Matched case-insensitively.
TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "msclkid",
        "yclid",
        "mc_cid",
        "mc_eid",
        "spm",
        "scm",
        "from",
        "share_token",
        "sharesource",
        "share_source",
        "isappinstalled",
        "wxshare_count",
        "nsukey",
        "_hsenc",
        "_hsmi",
        "ref",
        "ref_src",
    }
)
TRACKING_PREFIXES = ("utm_", "share_", "wt.", "hmsr", "hmpl", "hmcu", "hmkw", "hmci")
# Session identifiers: a new value per visit would make every page look new (a crawler trap).
# Not "sid": some CMSs use it for a section id, and dropping it would merge distinct pages.
SESSION_PARAMS = frozenset(
    {"jsessionid", "phpsessid", "sessionid", "session_id", "aspsessionid", "cfid", "cftoken"}
)
_PATH_SESSION = re.compile(r";(jsessionid|phpsessid|sessionid)=[^/?#]*", re.IGNORECASE)

# Characters left as they are in a path or query (RFC 3986 unreserved plus sub-delims we keep).
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
_QUERY_SAFE = "/?:@!$'()*,;-._~"  # not '+': parse_qsl reads it as a space
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def is_tracking_param(name: str) -> bool:
    """Parameters that never identify a page: click/campaign tracking and session ids."""
    lowered = name.lower()
    return (
        lowered in TRACKING_PARAMS
        or lowered in SESSION_PARAMS
        or lowered.startswith(TRACKING_PREFIXES)
        or lowered.startswith("aspsessionid")
    )


def _normalize_host(host: str) -> str:
    host = host.strip().rstrip(".").lower()
    if not host:
        raise InvalidURL("URL has no host")
    if host.startswith("["):  # IPv6 literal: keep as it is
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise InvalidURL(f"host {host!r} is not a valid domain name") from exc


_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _normalize_escapes(part: str) -> str:
    """RFC 3986 6.2.2: decode escapes of unreserved characters only (``%7E`` -> ``~``), upper-case
    the others. ``%2F`` stays encoded: decoding it would change the path's meaning."""

    def fix(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else "%" + match.group(1).upper()

    return _ESCAPE.sub(fix, _STRAY_PERCENT.sub("%25", part))


def _normalize_path(path: str) -> str:
    if not path:
        return "/"
    path = _PATH_SESSION.sub("", path)  # /a.jsp;jsessionid=ABC -> /a.jsp
    path = _normalize_escapes(path)  # before dot segments: %2E%2E is '..'
    trailing = path.endswith("/")
    resolved = posixpath.normpath(path)
    if resolved.startswith("//"):  # normpath keeps a leading '//' by POSIX rules
        resolved = "/" + resolved.lstrip("/")
    if resolved == ".":
        resolved = "/"
    if trailing and not resolved.endswith("/"):
        resolved += "/"
    # Non-ASCII and other unsafe characters become UTF-8 escapes; existing escapes are kept.
    return quote(resolved, safe=_PATH_SAFE + "%", errors="surrogateescape")


def _normalize_query(query: str) -> str:
    if not query:
        return ""
    pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k and not is_tracking_param(k)]
    pairs.sort()
    return urlencode(pairs, quote_via=quote, safe=_QUERY_SAFE)


def canonicalize(url: str, *, max_length: int = DEFAULT_MAX_URL_LENGTH) -> str:
    """Return the canonical spelling of an absolute http(s) URL, or raise InvalidURL."""
    if not isinstance(url, str):
        raise InvalidURL(f"URL must be a string, not {type(url).__name__}")
    url = url.strip()
    if len(url) > max_length:
        raise InvalidURL(f"URL is {len(url)} characters long (limit {max_length})", url=url[:200])
    if _CONTROL.search(url):
        raise InvalidURL("URL contains control characters", url=url[:200])
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidURL(f"malformed URL {url[:200]!r}: {exc}", url=url[:200]) from exc
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise InvalidURL(f"unsupported scheme {scheme or '(none)'!r} in {url[:200]!r}", url=url[:200])
    host = _normalize_host(parts.hostname or "")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    canonical = urlunsplit((scheme, netloc, _normalize_path(parts.path), _normalize_query(parts.query), ""))
    if len(canonical) > max_length:
        raise InvalidURL(f"URL is longer than {max_length} characters once encoded", url=url[:200])
    return canonical


def resolve(base: str, href: str) -> str:
    """Resolve ``href`` against ``base`` (a page URL or its ``<base href>``)."""
    return urljoin(base, href.strip())


def host_of(url: str) -> str:
    """``host[:port]`` of a URL, lower-case, the key of per-host politeness."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return f"{host}:{parts.port}" if parts.port else host


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
