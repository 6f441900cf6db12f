"""When to visit a URL again, and how to ask a server whether a page changed.

A page's *revisit interval* starts at its kind's default (list pages often, articles rarely)
and then follows the page: halved when a visit found it changed, doubled when it was the same
(a 304, or the same text), always within the source's bounds. So a list page that changes every
hour is soon read about every hour, and an article nobody edits drifts to the maximum. The
next visit is ``now + interval``; a crawl visits a known URL again only when that time has come
(:func:`is_due`), and then asks conditionally (:func:`conditional_headers`), so an unchanged
page costs a 304 and no extraction.

Which URLs a run starts with is decided here too (:func:`plan_run`), for both modes: the start
URLs, always, and the known URLs :func:`resumes` names.

Plain functions over :class:`~crawler.records.UrlState`: the embedded crawl and the workers
share them. Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from crawler.errors import InvalidURL
from crawler.records import UrlState, UrlStatus
from crawler.urls import canonicalize

if TYPE_CHECKING:
    from crawler.links import Scope

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}

#: States whose page was read: they carry a next-visit time and are re-visited when it comes.
REVISITED_STATES = frozenset(
    {UrlStatus.FETCHED, UrlStatus.NOT_MODIFIED, UrlStatus.DUPLICATE, UrlStatus.REDIRECTED}
)
#: States whose stored validators (ETag, Last-Modified) describe the text we hold (a re-visit
#: waiting for a retry or a budget keeps them: see crawler.records.failure_record).
_VALIDATED_STATES = frozenset(
    {UrlStatus.FETCHED, UrlStatus.NOT_MODIFIED, UrlStatus.DUPLICATE, UrlStatus.QUEUED}
)


def parse_duration(value: str | float | int) -> float:
    """Seconds of ``"90"``, ``"90s"``, ``"15m"``, ``"6h"``, ``"7d"`` or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"not a duration (use e.g. '90s', '15m', '6h', '7d'): {value!r}")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative: {value!r}")
    return seconds


@dataclass(frozen=True, slots=True)
class RevisitPolicy:
    """A source's revisit bounds, in seconds (see ``[revisit]`` in a source file).

    ``list_pages``/``articles``: the first interval of a page of that kind; ``min_interval`` and
    ``max_interval``: the range adaptation keeps to. Pages of unknown kind (sources without
    patterns) start as articles.
    """

    list_pages: float = 3600.0
    articles: float = 7 * 86400.0
    min_interval: float = 600.0
    max_interval: float = 90 * 86400.0

    def __post_init__(self) -> None:
        if not 0 <= self.min_interval <= self.max_interval:
            raise ValueError("min_interval must be between 0 and max_interval")
        for name in ("list_pages", "articles"):
            value = getattr(self, name)
            if not self.min_interval <= value <= self.max_interval:
                raise ValueError(f"{name} ({value:g} s) must lie between min_interval and max_interval")


DEFAULT_POLICY = RevisitPolicy()


def next_interval(
    previous: float | None, *, is_list: bool, changed: bool | None, policy: RevisitPolicy
) -> float:
    """The interval after a visit.

    ``previous``: the interval the page had (None: first visit); ``changed``: whether the visit
    found new text (None: no text to compare, e.g. a failure or a first visit).
    """
    if previous is None or changed is None:
        base = policy.list_pages if is_list else policy.articles
        return min(max(base if previous is None else previous, policy.min_interval), policy.max_interval)
    interval = previous / 2 if changed else previous * 2
    return min(max(interval, policy.min_interval), policy.max_interval)


def schedule_visit(
    state: UrlState,
    previous: UrlState | None,
    *,
    is_list: bool,
    policy: RevisitPolicy,
    now: datetime,
) -> UrlState:
    """Set ``state``'s revisit interval and next visit after a visit that ended in ``state``.

    Changed means the URL's text differs from the one it held (``content_hash``); a 304 keeps
    the previous text and is unchanged. States that are not revisited get no next visit.
    """
    if state.status not in REVISITED_STATES:
        state.next_visit_at = None
        state.revisit_interval = previous.revisit_interval if previous is not None else None
        return state
    had_text = previous is not None and previous.content_hash is not None
    changed: bool | None
    if state.status == UrlStatus.NOT_MODIFIED:
        changed = False
    elif had_text and state.content_hash is not None:
        assert previous is not None
        changed = state.content_hash != previous.content_hash
    else:
        changed = None
    interval = next_interval(
        previous.revisit_interval if previous is not None else None,
        is_list=is_list,
        changed=changed,
        policy=policy,
    )
    state.revisit_interval = interval
    state.next_visit_at = now + timedelta(seconds=interval)
    return state


def is_due(state: UrlState | None, now: datetime, *, retry_failed: bool = False) -> bool:
    """Whether a crawl should visit a URL whose stored record is ``state`` now.

    Never seen, or left queued (a page budget, a pending retry): yes. Read before: when its next
    visit has come (a record from before next-visit times existed is due). Failed transiently:
    only when retries are asked for. Failed permanently, disallowed, out of scope: no.
    """
    if state is None or state.status == UrlStatus.QUEUED:
        return True
    if state.status in REVISITED_STATES:
        return state.next_visit_at is None or state.next_visit_at <= now
    if state.status == UrlStatus.FAILED_TRANSIENT:
        return retry_failed
    return False


def conditional_headers(state: UrlState | None) -> dict[str, str]:
    """``If-None-Match``/``If-Modified-Since`` for a re-visit, from the validators the last
    successful visit stored; none when we hold no text the validators vouch for."""
    if state is None or state.status not in _VALIDATED_STATES or state.content_hash is None:
        return {}
    headers: dict[str, str] = {}
    if state.etag and _sendable(state.etag):
        headers["If-None-Match"] = state.etag
    if state.last_modified and _sendable(state.last_modified):
        headers["If-Modified-Since"] = state.last_modified
    return headers


def _sendable(value: str) -> bool:
    """A validator we can send back: printable ASCII (a server may send Latin-1 bytes in an
    ETag; httpx refuses to encode them, and the visit would fail every time)."""
    return value.isascii() and value.isprintable()


def not_modified_state(
    previous: UrlState,
    *,
    source: str | None,
    depth: int,
    etag: str | None,
    last_modified: str | None,
    now: datetime,
    attempts: int = 1,
) -> UrlState:
    """The record of a 304 for a visit on behalf of ``source``: the page still holds the text we
    stored; validators refreshed."""
    return UrlState(
        previous.url,
        source,
        UrlStatus.NOT_MODIFIED,
        depth,
        http_status=304,
        final_url=previous.final_url,
        fetched_at=now,
        content_hash=previous.content_hash,
        etag=etag or previous.etag,
        last_modified=last_modified or previous.last_modified,
        attempts=attempts,
        revisit_interval=previous.revisit_interval,
    )


def links_digest(links: list[str]) -> str:
    """What a page without a document (a list page) holds, for telling whether it changed on a
    re-visit: a digest of its links, in any order. Prefixed so it never equals a text's key."""
    digest = hashlib.blake2b(digest_size=16)
    for link in sorted(set(links)):
        digest.update(link.encode("utf-8", "surrogatepass") + b"\n")
    return "links:" + digest.hexdigest()


# -- the start of a run ---------------------------------------------------------------------------

#: States a run never visits again by itself: only a start URL naming one gets another try.
_FINAL_STATES = frozenset({UrlStatus.FAILED_PERMANENT, UrlStatus.DISALLOWED, UrlStatus.OUT_OF_SCOPE})


def resumes(state: UrlState, now: datetime, *, retry_failed: bool, revisit_all: bool = False) -> bool:
    """Whether a run visits a known URL again from its start.

    Left queued (a crawl stopped or killed before its turn, a page budget, a pending retry):
    always. Failed permanently, disallowed, out of scope: never. Failed transiently: when the run
    retries failures (``retry_failed``). Read before: when its next visit has come, or always
    with ``revisit_all``.
    """
    if state.status == UrlStatus.QUEUED:
        return True
    if state.status in _FINAL_STATES:
        return False
    if state.status == UrlStatus.FAILED_TRANSIENT:
        return retry_failed
    return revisit_all or is_due(state, now)


@dataclass(slots=True)
class RunStart:
    """What a run of one source starts with (see :func:`plan_run`)."""

    #: The source's start URLs, canonical: visited by every run (conditionally).
    starts: list[str] = field(default_factory=list)
    #: Start URLs that are not valid URLs, with why.
    invalid: list[tuple[str, InvalidURL]] = field(default_factory=list)
    #: Known URLs visited again, shallowest first (not the start URLs).
    resumed: list[UrlState] = field(default_factory=list)


def plan_run(
    scope: Scope,
    known: Iterable[UrlState],
    now: datetime,
    *,
    retry_failed: bool,
    revisit_all: bool = False,
    max_url_length: int,
) -> RunStart:
    """Which URLs a run of ``scope``'s source starts with, from what the store ``known`` of it.

    The start URLs always, whatever their state: a crawl visits the start URLs it names, and a
    start URL refused once (a 404, a blocked address) gets another try. Then the known URLs that
    :func:`resumes` names and the source's scope still follows (a source file may have changed
    since they were recorded). The embedded crawl passes every known URL of the source; the
    workers pass what the store's indexed queries return (queued, due, failed), which is the
    same selection.
    """
    plan = RunStart()
    for raw in scope.source.start_urls:
        try:
            url = canonicalize(raw, max_length=max_url_length)
        except InvalidURL as exc:
            plan.invalid.append((raw, exc))
            continue
        if url not in plan.starts:
            plan.starts.append(url)
    starts = set(plan.starts)
    chosen: dict[str, UrlState] = {}
    for state in known:
        if state.url in starts or state.url in chosen:
            continue
        if (
            resumes(state, now, retry_failed=retry_failed, revisit_all=revisit_all)
            and scope.judge(state.url, state.depth).follow
        ):
            chosen[state.url] = state
    plan.resumed = sorted(chosen.values(), key=lambda s: (s.depth, s.url))
    return plan
