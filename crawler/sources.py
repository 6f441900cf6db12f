"""Sources as data: the model of one source definition and the loader of a directory of them.

A source file is TOML (one source per file, the file stem equals its ``id``)::

    id = "most-news"
    name = "Ministry of Science and Technology: news"
    start_urls = ["https://www.most.gov.cn/kjbgz/"]
    allowed_hosts = ["www.most.gov.cn"]
    article_patterns = ['/t\\d{8}_\\d+\\.html?$']
    list_patterns = ['/kjbgz/(index(_\\d+)?\\.html?)?$']
    max_depth = 2
    per_host_delay = 2.0
    schedule = "0 */6 * * *"
    encoding = "utf-8"
    role = "issuer"      # optional: "issuer" (publishes originals) or "repost" (republishes others')

    [host_roles]         # optional: the role of one host when a source spans several portals
    "reposts.example.cn" = "repost"

    [revisit]            # optional: when pages are read again (see crawler.recrawl)
    list_pages = "1h"    # first interval of list and start pages
    articles = "7d"      # first interval of articles
    min = "10m"          # adaptation keeps every interval within [min, max]
    max = "90d"

``role`` ranks the copies of a story (:func:`crawler.dedup.rank_key`): when one story is published
by several portals, an issuer's copy is the story's document, a repost portal's copy is a copy.
Undeclared portals rank between the two.

A malformed file raises :class:`~crawler.errors.ConfigError` naming the file, the field and the
problem; the other files still load (see :func:`load_sources_report`).
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from crawler.errors import ConfigError, InvalidURL
from crawler.recrawl import DEFAULT_POLICY, RevisitPolicy, parse_duration
from crawler.urls import canonicalize, host_of

_CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_CRON_NAMES = ("minute", "hour", "day of month", "month", "day of week")
_CRON_ITEM = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?$")


_EVERY = re.compile(r"^@every\s+(\d+)\s*(s|m|h)$")
_EVERY_SECONDS = {"s": 1, "m": 60, "h": 3600}


def every_seconds(expr: str) -> int | None:
    """Seconds of an ``@every 30s`` / ``@every 15m`` / ``@every 6h`` schedule, None for cron."""
    match = _EVERY.match(expr.strip())
    return int(match.group(1)) * _EVERY_SECONDS[match.group(2)] if match else None


def validate_cron(expr: str) -> str:
    """Check a schedule: five cron fields (numbers, ``*``, ranges, steps, lists) or ``@every N[smh]``."""
    if expr.strip().startswith("@every"):
        seconds = every_seconds(expr)
        if not seconds:
            raise ValueError(f"interval must look like '@every 30s', '@every 15m' or '@every 6h': {expr!r}")
        return expr.strip()
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"cron needs 5 fields (minute hour day month weekday), got {len(fields)}: {expr!r}")
    for text, (low, high), name in zip(fields, _CRON_RANGES, _CRON_NAMES, strict=True):
        for item in text.split(","):
            if not _CRON_ITEM.match(item):
                raise ValueError(f"cron {name} field {text!r} is not valid")
            numbers = [int(n) for n in re.findall(r"\d+", item.split("/")[0])]
            if any(not low <= n <= high for n in numbers):
                raise ValueError(f"cron {name} field {text!r} is outside {low}-{high}")
            if "/" in item and int(item.split("/")[1]) == 0:
                raise ValueError(f"cron {name} field {text!r} has a zero step")
    return expr


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_HOST = re.compile(r"^([a-z0-9_.-]+(:\d+)?|[0-9a-f:.]+)$")  # host_of's form: IPv6 without brackets


def check_start_url(url: str) -> str:
    """``url`` if it is an absolute http(s) URL a crawl can start from; else ValueError saying
    why in one line (``'ftp://x.cn/' is not an http(s) URL``)."""
    text = url.strip()
    if re.fullmatch(r"[A-Za-z0-9.-]+:\d+(/\S*)?", text):  # host:port, no scheme
        suggestion = f"http://{text}" + ("" if "/" in text else "/")
        raise ValueError(f"{url!r} is not an absolute URL; did you mean {suggestion}?")
    scheme = _SCHEME.match(text)
    if scheme is None:
        if re.fullmatch(r"[A-Za-z0-9.-]+\.[A-Za-z]{2,}(:\d+)?(/\S*)?", text):
            suggestion = f"https://{text}" + ("" if "/" in text else "/")
            raise ValueError(f"{url!r} is not an absolute URL; did you mean {suggestion}?")
        raise ValueError(f"{url!r} is not an absolute http(s) URL")
    if scheme.group(1).lower() not in ("http", "https"):
        raise ValueError(f"{url!r} is not an http(s) URL (scheme {scheme.group(1).lower()!r})")
    try:
        parts = urlsplit(text)
        hostname = parts.hostname
    except ValueError as exc:
        raise ValueError(f"{url!r} is not a valid URL: {exc}") from None
    if not hostname:
        raise ValueError(f"{url!r} has no host")
    try:
        canonical = canonicalize(text)
    except InvalidURL as exc:
        raise ValueError(f"{url!r} is not a valid URL: {exc}") from None
    if not _HOST.match(host_of(canonical)):
        raise ValueError(f"{url!r} has an invalid host name {hostname!r}")
    return text


def host_allowed(hosts: frozenset[str] | list[str], url: str) -> bool:
    """Whether ``url``'s host is one of ``hosts`` (``host`` or ``host:port``) or a subdomain of a
    port-less one: the rule of a source's scope (:class:`crawler.links.Scope`)."""
    host = host_of(url)
    bare = host.split(":", 1)[0]
    return host in hosts or any(bare.endswith("." + h) for h in hosts if ":" not in h)


def describe_errors(exc: ValidationError) -> str:
    """A source's ValidationError as one line: ``field 'max_depth': ...; field '...': ...``."""
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(file)"
        msg = " ".join(str(err["msg"]).removeprefix("Value error, ").split())
        problems.append(f"field '{loc}': {msg}")
    return "; ".join(problems)


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from exc


Pattern = Annotated[str, Field(min_length=1)]
#: What a source declares of a portal (crawler.dedup.ISSUER, crawler.dedup.REPOST).
Role = Literal["issuer", "repost"]


class Revisit(BaseModel):
    """A source's ``[revisit]`` table: durations as ``"90s"``, ``"15m"``, ``"6h"``, ``"7d"`` or
    seconds. Defaults: list pages hourly, articles weekly, adapting within 10 minutes..90 days."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    list_pages: float = DEFAULT_POLICY.list_pages
    articles: float = DEFAULT_POLICY.articles
    min_interval: float = Field(DEFAULT_POLICY.min_interval, alias="min")
    max_interval: float = Field(DEFAULT_POLICY.max_interval, alias="max")

    @field_validator("list_pages", "articles", "min_interval", "max_interval", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)

    @model_validator(mode="after")
    def _bounds(self) -> Revisit:
        self.policy()  # raises ValueError with the reason when the bounds contradict each other
        return self

    def policy(self) -> RevisitPolicy:
        return RevisitPolicy(self.list_pages, self.articles, self.min_interval, self.max_interval)


class Source(BaseModel):
    """One crawl source. Immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    name: str = Field(min_length=1)
    start_urls: list[str] = Field(min_length=1)
    allowed_hosts: list[str] = Field(default_factory=list)
    article_patterns: list[Pattern] = Field(default_factory=list)
    list_patterns: list[Pattern] = Field(default_factory=list)
    deny_patterns: list[Pattern] = Field(default_factory=list)
    max_depth: int = Field(3, ge=0, le=50)
    max_pages: int | None = Field(default=None, gt=0)
    per_host_delay: float | None = Field(default=None, ge=0, le=3600)
    per_host_concurrency: int | None = Field(default=None, gt=0, le=64)
    schedule: str | None = None
    encoding: str | None = None
    enabled: bool = True
    description: str | None = None
    #: Whether the source's portals issue the originals of what they publish or republish
    #: other portals' stories; None: not declared (ranks between the two).
    role: Role | None = None
    #: The role of single hosts (``host`` or ``host:port``, among ``allowed_hosts``), for a
    #: source that spans portals of both kinds; the others have ``role``.
    host_roles: dict[str, Role] = Field(default_factory=dict)
    revisit: Revisit = Field(default_factory=Revisit)

    @field_validator("start_urls")
    @classmethod
    def _check_urls(cls, urls: list[str]) -> list[str]:
        return [check_start_url(url) for url in urls]

    @field_validator("allowed_hosts")
    @classmethod
    def _check_hosts(cls, hosts: list[str]) -> list[str]:
        for host in hosts:
            if not re.fullmatch(r"[A-Za-z0-9.-]+(:\d+)?", host):
                raise ValueError(f"{host!r} is not a host name (no scheme or path)")
        return [h.lower() for h in hosts]

    @field_validator("article_patterns", "list_patterns", "deny_patterns")
    @classmethod
    def _check_patterns(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            _compile(pattern)
        return patterns

    @field_validator("schedule")
    @classmethod
    def _check_schedule(cls, value: str | None) -> str | None:
        return None if value is None else validate_cron(value)

    @field_validator("encoding")
    @classmethod
    def _check_encoding(cls, value: str | None) -> str | None:
        if value is None:
            return None
        import codecs

        try:
            codecs.lookup(value)
        except LookupError as exc:
            raise ValueError(f"unknown encoding {value!r}") from exc
        return value

    @field_validator("host_roles")
    @classmethod
    def _check_host_roles(cls, roles: dict[str, Role]) -> dict[str, Role]:
        for host in roles:
            if not re.fullmatch(r"[A-Za-z0-9.-]+(:\d+)?", host):
                raise ValueError(f"{host!r} is not a host name (no scheme or path)")
        return {host.lower(): role for host, role in roles.items()}

    @model_validator(mode="after")
    def _default_hosts(self) -> Source:
        if not self.allowed_hosts:
            # As Scope sees them: canonical (default port dropped, IDN as punycode).
            hosts = sorted({host_of(canonicalize(u)) for u in self.start_urls})
            object.__setattr__(self, "allowed_hosts", hosts)
        # A start URL the scope would drop is a mistake in the file, not something to skip quietly.
        outside = [u for u in self.start_urls if not host_allowed(self.allowed_hosts, canonicalize(u))]
        if outside:
            raise ValueError(
                f"start URL {outside[0]!r} is outside allowed_hosts ({', '.join(self.allowed_hosts)})"
            )
        stray = [host for host in self.host_roles if host not in self.allowed_hosts]
        if stray:
            listed = ", ".join(self.allowed_hosts)
            raise ValueError(f"host_roles names {stray[0]!r}, which is not in allowed_hosts ({listed})")
        return self

    def role_for(self, url: str) -> Role | None:
        """The role of the portal serving ``url``: its host's entry in ``host_roles`` (with its
        port, else without), else the source's ``role``."""
        if self.host_roles:
            try:
                host = host_of(canonicalize(url))
            except InvalidURL:
                return self.role
            found = self.host_roles.get(host) or self.host_roles.get(host.split(":", 1)[0])
            if found is not None:
                return found
        return self.role

    @classmethod
    def from_urls(cls, urls: list[str], *, id: str | None = None, max_depth: int = 3) -> Source:
        """A source for bare start URLs: the scope is the URLs' own origins; its id is
        :func:`adhoc_source_id` of the URLs unless given (the same in both modes, so that the
        same command continues the same crawl)."""
        return cls(
            id=id or adhoc_source_id(urls),
            name="start URLs given on the command line",
            start_urls=urls,
            max_depth=max_depth,
        )


def adhoc_source_id(urls: list[str]) -> str:
    """A stable id for the ad-hoc source of some start URLs (the same URLs, in any order or
    spelling of one canonical URL, give the same source)."""

    def canonical(url: str) -> str:
        try:
            return canonicalize(url)
        except InvalidURL:
            return url  # the source's validation names it

    digest = hashlib.sha256("\n".join(sorted({canonical(u) for u in urls})).encode()).hexdigest()
    return f"adhoc-{digest[:12]}"


def load_source(path: Path) -> Source:
    """Load and validate one source file; raise ConfigError naming the file, field and problem."""
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        source = Source.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {describe_errors(exc)}") from exc
    if source.id != path.stem:
        raise ConfigError(f"{path}: field 'id': {source.id!r} must equal the file name {path.stem!r}")
    return source


@dataclass(slots=True)
class SourcesReport:
    sources: dict[str, Source] = field(default_factory=dict)
    errors: list[ConfigError] = field(default_factory=list)
    #: The bad files by their stem (the id they would define): each disables only itself.
    invalid: dict[str, ConfigError] = field(default_factory=dict)


def load_sources_report(directory: Path) -> SourcesReport:
    """Load every ``*.toml`` in ``directory``; bad files are reported, good ones still load."""
    report = SourcesReport()
    for path in sorted(directory.glob("*.toml")):
        try:
            source = load_source(path)
        except ConfigError as exc:
            report.errors.append(exc)
            report.invalid[path.stem] = exc
            continue
        report.sources[source.id] = source
    return report


def load_sources(directory: Path) -> dict[str, Source]:
    """Load every source in ``directory``; raise ConfigError listing every bad file."""
    report = load_sources_report(directory)
    if report.errors:
        raise ConfigError("\n".join(str(e) for e in report.errors))
    return report.sources
