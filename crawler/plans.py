"""Extraction plans: per-template shortcuts around trafilatura, learned from it and checked by it.

Government and science portals are made by content-management systems: every article of one
template keeps its body in the same container (``#zoom``, ``.TRS_Editor``, ``.pages_content``),
with the same chrome around it, and trafilatura rediscovers that container on every page. A
plan remembers it::

    page ──► template_of(url) ──► active plan? ──no──► trafilatura ──► learn(): a candidate
                                       │                                (container, drops)
                                      yes                               agreeing with it
                                       ▼
                      the container's lines ──► same boilerplate, normalize and metadata rules
                                       │
              sampled, new layout elements, length far off ──► trafilatura too: agree()?
                                                                no ─► mismatch: retire the plan

- **Template**: the site (source and host, kept by the caller) and the shape of the URL's last
  path segment and depth (``2/0_0.html``): free to compute before the page is even parsed.
- **Learning**: after trafilatura has extracted a page of a template without a plan,
  :func:`learn` looks for a container (an element named by its id or class, unique in the page)
  whose lines give the same document: text char F1 >= :data:`MIN_TEXT_F1` and every metadata
  field equal. :class:`PlanBook` makes a plan once :data:`LEARN_PAGES` pages of the template
  agree on the same container and drops; a template whose pages keep disagreeing (forums,
  one-off pages) is left to trafilatura.
- **Checking**: a fast-path page also goes through trafilatura when its URL falls in the 1 in
  :data:`VERIFY_EVERY` sample, when its container holds elements never seen while learning
  (a changed template), or when its text length is far outside the plan's range. A page whose
  container is missing goes through trafilatura alone (a miss). A disagreement retires the plan
  and the template learns again; the page itself gets trafilatura's document.
- **Reading**: a plan whose learning pages gave the very same document from lexbor's tree (the
  one the links stage parsed) has reader ``lexbor``: its pages are read there
  (:mod:`crawler.fastread`), without lxml's parse. A page that reading cannot vouch for (file
  links, no stated date, the container not found once) is read with lxml, as every page of an
  ``lxml`` plan is; the checks are the same for both.

The worker side (:func:`extract_planned`) is a pure function of the page and the plans it is
given (:class:`PlanOrders`); it reports what happened (:class:`PlanReport`). The book lives in
the process that owns the crawl (the embedded crawl's main process, each Celery worker process)
and keeps the plans in the store (``PlanStore``) so that every worker shares them.
"""

from __future__ import annotations

import logging
import re
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from lxml.html import HtmlElement
from selectolax.lexbor import LexborHTMLParser

from crawler import fastread
from crawler.boilerplate import Line
from crawler.errors import ExtractionError, ExtractionTimeout
from crawler.extract import Extraction, Page, extract, finish, read_page, trafilatura_lines
from crawler.fastread import (
    BLOCK,
    KIND,
    SKIP,
    TOKEN_WITH_DIGITS,
    LineCutter,
    Selector,
    Unsure,
    parse,
    read_served,
)
from crawler.normalize import strip_pinyin_readings

log = logging.getLogger(__name__)

#: The version of the stored plan's format (inside its JSON).
PLAN_FORMAT = 1
#: Pages of a template that must agree on one container before it gets a plan.
LEARN_PAGES = 3
#: Learning reports for a template without agreement after which it is left to trafilatura.
MAX_LEARN_TRIES = 12
#: One fast-path page in this many (by a hash of its URL) is also checked with trafilatura.
VERIFY_EVERY = 50
#: A fast-path text must match trafilatura's this well (character F1) ...
MIN_TEXT_F1 = 0.99
#: ... and a page whose text length is this many times outside the plan's range is checked.
LENGTH_SLACK = 3.0
#: Misses in a row (container gone) after which a plan is retired and the template learns again.
MAX_MISSES_IN_ROW = 5
#: Container candidates tried per learning page (smallest first).
MAX_CONTAINER_TRIES = 4

_WS = re.compile(r"\s+")
#: Metadata fields the fast path must give exactly as trafilatura's path does.
_FIELDS = (
    "title",
    "published_at",
    "agency",
    "author",
    "canonical_url",
    "document_number",
    "converted",
    "damaged",
)


class PlanMiss(Exception):
    """The plan's container is not in the page (or not once): trafilatura handles the page."""


def template_of(url: str) -> str:
    """The page-layout part of a template's key: the path's depth and the shape of its last
    segment (every run of letters and digits holding a digit becomes ``0``), and the query's
    parameter names. ``/kjbgz/201208/t20120828_189001.html`` -> ``2/0_0.html``."""
    parts = urlsplit(url)
    segments = (parts.path or "/").split("/")
    depth = sum(1 for s in segments[:-1] if s)
    shape = TOKEN_WITH_DIGITS.sub("0", segments[-1])
    if parts.query:
        shape += "?" + "&".join(sorted({k for k, _ in parse_qsl(parts.query, keep_blank_values=True)}))
    return f"{depth}/{shape}"


def host_of(url: str) -> str:
    """The site part of a template's key: host and port (sites on one host keep apart)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{host}:{port}" if port else host


# -- selectors and lines --------------------------------------------------------------------------


def _squash(text: str) -> str:
    return _WS.sub("", text)


def selector_of(el: HtmlElement) -> Selector | None:
    """How a plan names an element: its id (unless it carries digits: numbered per page), else
    its class attribute."""
    tag = el.tag
    return fastread.selector_of(el.attrib, tag) if isinstance(tag, str) else None


def _matches(el: HtmlElement, selector: Selector) -> bool:
    return fastread.matches(el.attrib, selector)


def find_all(root: HtmlElement, selector: Selector) -> list[HtmlElement]:
    return [el for el in root.iter(selector[0]) if _matches(el, selector)]


def layout_tokens(container: HtmlElement) -> set[str]:
    """The ids and classes inside a container (digit runs folded): a changed template shows new ones."""
    tokens = set()
    for el in container.iter():
        selector = selector_of(el)
        if selector is not None:
            tokens.add(fastread.token_of(selector))
    return tokens


def _holds_blocks(row: HtmlElement) -> bool:
    """A table row used as page layout: its cells hold paragraphs, not values."""
    return any(
        isinstance(el.tag, str) and (el.tag in BLOCK or el.tag == "br") for el in row.iterdescendants()
    )


def container_lines(container: HtmlElement, drops: Iterable[Selector] = ()) -> list[Line]:
    """One line per paragraph, heading, list item or table row of the container, as
    trafilatura's lines are cut (rows as ``| cell | cell | ``), without the dropped elements."""
    dropped = tuple(drops)
    cut = LineCutter()
    add = cut.buffer.append

    def walk(el: HtmlElement, kind: str) -> None:
        tag = el.tag
        if (
            not isinstance(tag, str)
            or tag in SKIP
            or fastread.is_hidden(el.attrib)
            or (dropped and any(_matches(el, d) for d in dropped))
        ):
            pass
        elif tag == "br":
            cut.flush(kind)
        elif tag == "tr" and not _holds_blocks(el):
            cut.flush(kind)
            cut.row([" ".join(c.text_content().split()) for c in el if c.tag in ("td", "th")])
        elif tag in ("tr", "td", "th"):  # a layout table's cell: its paragraphs are lines
            cut.flush(kind)
            add(el.text or "")
            for child in el:
                walk(child, "p")
            cut.flush("p")
        elif tag in BLOCK:
            cut.flush(kind)
            inner = KIND.get(tag, "p")
            add(el.text or "")
            for child in el:
                walk(child, inner)
            cut.flush(inner)
        else:
            add(el.text or "")
            for child in el:
                walk(child, kind)
        add(el.tail or "")

    add(container.text or "")
    for child in container:
        walk(child, "p")
    return cut.lines()


# -- the plan as the worker sees it ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Recipe:
    """Where a template's article is: the container, and the elements inside it to drop."""

    container: Selector
    drops: tuple[Selector, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"container": list(self.container), "drops": [list(d) for d in self.drops]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Recipe:
        tag, attr, value = data["container"]
        return cls(
            (str(tag), str(attr), str(value)),
            tuple((str(t), str(a), str(v)) for t, a, v in data.get("drops", ())),
        )


@dataclass(frozen=True, slots=True)
class Candidate:
    """What one learning page proposes: a recipe that gives its document, and what it saw."""

    recipe: Recipe
    tokens: frozenset[str]
    length: int
    #: Whether the lexbor reading (crawler.fastread) gave the very document too; None: it could
    #: not vouch for this page (file links, no stated date), which says nothing of the template.
    lexbor: bool | None = None


@dataclass(frozen=True, slots=True)
class PlanOrders:
    """What an extraction process is told for one site: the active plans by template, and the
    templates it should not learn (their pages vary)."""

    active: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    settled: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class PlanReport:
    """What happened to one page: ``served`` (fast path), ``verified`` (fast path, checked and
    agreeing), ``mismatch`` (checked and disagreeing: trafilatura's document was kept), ``miss``
    (container not found: trafilatura), ``candidate`` or ``no_candidate`` (learning)."""

    template: str
    version: int
    event: str
    why: str | None = None
    length: int = 0
    tokens: frozenset[str] = frozenset()
    candidate: Candidate | None = None
    #: Which tree a fast-path page was read from: "lexbor" (the links stage's) or "lxml".
    reader: str | None = None


def char_f1(got: str, expected: str) -> float:
    """F1 of the two texts' character multisets (blanks ignored)."""
    a, b = Counter(_squash(got)), Counter(_squash(expected))
    if not a and not b:
        return 1.0
    common = sum((a & b).values())
    if not common:
        return 0.0
    precision, recall = common / sum(a.values()), common / sum(b.values())
    return 2 * precision * recall / (precision + recall)


def agree(fast: Extraction, reference: Extraction) -> str | None:
    """Why the fast path's extraction is not as good as trafilatura's, or None when it is."""
    if fast.text != reference.text:
        f1 = char_f1(fast.text, reference.text)
        if f1 < MIN_TEXT_F1:
            return f"text F1 {f1:.3f}"
    for name in _FIELDS:
        if getattr(fast, name) != getattr(reference, name):
            return f"{name} differs"
    if [a.url for a in fast.attachments] != [a.url for a in reference.attachments]:
        return "attachments differ"
    return None


def _verify_sampled(url: str) -> bool:
    return zlib.crc32(url.encode("utf-8", "surrogatepass")) % VERIFY_EVERY == 0


def extract_planned(
    html: str,
    url: str,
    orders: PlanOrders,
    report: Callable[[PlanReport], None],
    tree: LexborHTMLParser | None = None,
    hrefs: list[str] | None = None,
) -> Extraction:
    """:func:`crawler.extract.extract` with the site's plans: the fast path where the page's
    template has one (checked as the module says), trafilatura and learning where it has none.
    ``tree``, ``hrefs``: the page's lexbor parse and its ``<a href>`` targets when the caller has
    them (the links stage's: :class:`crawler.links.LinkTargets`). Raises what
    :func:`extract` raises for the page; ``report`` hears what happened."""
    template = template_of(url)
    plan = orders.active.get(template)
    if plan is None:
        extraction = extract(html, url)
        if template not in orders.settled:
            candidate = None
            try:
                candidate = learn(html, url, extraction, tree)
            except ExtractionTimeout:
                raise
            except Exception as exc:  # learning must never cost the page its document
                log.warning("learning an extraction plan failed on %s: %s", url, exc)
            report(PlanReport(template, 0, "candidate" if candidate else "no_candidate", candidate=candidate))
        return extraction

    version = int(plan["version"])
    recipe = Recipe.from_dict(plan["recipe"])
    page: Page | None = None
    fast: Extraction | None = None
    reader = "lexbor"
    if plan["recipe"].get("reader") == "lexbor":
        fast, tokens = _read_lexbor(html, url, recipe, tree, hrefs)
    if fast is None:
        # One lxml parse serves the fast path and, where it is needed, trafilatura: the
        # container's lines and finish() only read the page.
        reader = "lxml"
        try:
            page = read_page(html, url)
            found = find_all(page.region, recipe.container)
            if len(found) != 1:
                raise PlanMiss(f"container {recipe.container[2]!r} found {len(found)} times")
            tokens = frozenset(layout_tokens(found[0]))
            fast = finish(page, container_lines(found[0], recipe.drops))
        except ExtractionTimeout:
            raise
        except PlanMiss as exc:
            report(PlanReport(template, version, "miss", why=str(exc)))  # before trafilatura may raise
            return _trafilatura(page, html, url)
        except Exception as exc:  # nothing usable on the fast path (or a bug): trafilatura decides
            why = exc.reason if isinstance(exc, ExtractionError) else type(exc).__name__
            report(PlanReport(template, version, "miss", why=f"fast path: {why}"))
            return _trafilatura(page, html, url)

    check = _check_reason(url, plan["recipe"], tokens, len(fast.text))
    if check is None:
        report(PlanReport(template, version, "served", length=len(fast.text), reader=reader))
        return fast
    try:
        page = page or read_page(html, url)
        reference = finish(page, trafilatura_lines(page))
    except ExtractionError as exc:
        report(PlanReport(template, version, "mismatch", why=f"trafilatura: {exc.reason} ({check})"))
        raise
    differs = agree(fast, reference)
    if differs is not None:
        report(PlanReport(template, version, "mismatch", why=f"{differs} ({check})", reader=reader))
        return reference
    verified = PlanReport(template, version, "verified", check, len(fast.text), tokens, reader=reader)
    report(verified)
    return fast


def _read_lexbor(
    html: str, url: str, recipe: Recipe, tree: LexborHTMLParser | None, hrefs: list[str] | None
) -> tuple[Extraction | None, frozenset[str]]:
    """The fast path on the lexbor tree (:mod:`crawler.fastread`), or None when that reading
    cannot vouch for the page (the lxml reading then serves it)."""
    try:
        if tree is None:
            tree, hrefs = parse(html), None
        served = read_served(tree, url, recipe.container, recipe.drops, hrefs)
        return finish(served.page, served.lines), served.tokens
    except ExtractionTimeout:
        raise
    except (Unsure, ExtractionError):
        return None, frozenset()
    except Exception as exc:  # a bug here must not cost the page: the lxml reading decides
        log.warning("lexbor fast path failed on %s: %s", url, exc)
        return None, frozenset()


def _trafilatura(page: Page | None, html: str, url: str) -> Extraction:
    """trafilatura's extraction, from the page already parsed when there is one."""
    return extract(html, url) if page is None else finish(page, trafilatura_lines(page))


def _check_reason(url: str, recipe: Mapping[str, Any], tokens: frozenset[str], length: int) -> str | None:
    """Why a fast-path page must also go through trafilatura, or None."""
    known = set(recipe.get("tokens", ()))
    new = sorted(tokens - known)
    if new:
        return "new layout elements: " + ", ".join(new[:3])
    low, high = recipe.get("length", (0, 0))
    if length * LENGTH_SLACK < low or length > high * LENGTH_SLACK:
        return f"text length {length} outside {low}-{high}"
    if _verify_sampled(url):
        return "sampled"
    return None


# -- learning -------------------------------------------------------------------------------------


def learn(
    html: str, url: str | None, reference: Extraction, tree: LexborHTMLParser | None = None
) -> Candidate | None:
    """A recipe that gives ``reference`` (trafilatura's extraction of this page) from one
    container of the page, or None. Candidates are elements named by id or class, unique in the
    article region, holding the text's first and last lines; the smallest are tried first, as
    they are, then without their children that hold none of the text."""
    page = read_page(html, url)
    target = _squash(reference.text)
    if not target:
        return None
    text_lines = reference.text.split("\n")
    first, last = _squash(text_lines[0])[:16], _squash(text_lines[-1])[-16:]
    found: list[tuple[int, Selector, HtmlElement]] = []
    for el in page.region.iter():
        if not isinstance(el.tag, str) or el.tag in SKIP:
            continue
        selector = selector_of(el)
        if selector is None:
            continue
        raw = el.text_content()
        if len(raw) < 0.8 * len(target):
            continue
        text = _squash(strip_pinyin_readings(raw) if reference.converted else raw)
        if len(text) > 4 * len(target) + 3000 or first not in text or last not in text:
            continue
        found.append((len(text), selector, el))
    found.sort(key=lambda item: item[0])
    tried = 0
    for _, selector, el in found:
        if tried >= MAX_CONTAINER_TRIES:
            break
        if len(find_all(page.region, selector)) != 1:
            continue
        tried += 1
        for drops in ((), _drops(el, target, reference.converted)):
            if drops is None:
                continue
            try:
                got = finish(page, container_lines(el, drops))
            except ExtractionError:
                continue
            # exactly trafilatura's text (stricter than the checks' F1): a plan learned here
            # gives the very documents, content hashes included, that trafilatura would
            if got.text == reference.text and agree(got, reference) is None:
                recipe, tokens = Recipe(selector, drops), frozenset(layout_tokens(el))
                lexbor = _lexbor_agrees(html, url, recipe, tokens, reference, tree)
                return Candidate(recipe, tokens, len(reference.text), lexbor)
    return None


def _lexbor_agrees(
    html: str,
    url: str | None,
    recipe: Recipe,
    tokens: frozenset[str],
    reference: Extraction,
    tree: LexborHTMLParser | None,
) -> bool | None:
    """Whether the lexbor reading gives this page's very document and layout tokens with the
    recipe (None: it could not vouch for this page, for reasons of the page alone)."""
    try:
        served = read_served(tree if tree is not None else parse(html), url, recipe.container, recipe.drops)
        got = finish(served.page, served.lines)
    except ExtractionTimeout:
        raise
    except Unsure as exc:
        return None if exc.page_only else False
    except Exception:  # ExtractionError, or a tree lexbor reads otherwise: not this template's reader
        return False
    return got.text == reference.text and agree(got, reference) is None and served.tokens == tokens


def _drops(container: HtmlElement, target: str, converted: bool) -> tuple[Selector, ...] | None:
    """Named elements inside the container whose text is no part of the reference text."""
    drops: list[Selector] = []
    for el in container.iterdescendants():
        if not isinstance(el.tag, str) or el.tag in SKIP or el.tag == "br":
            continue
        selector = selector_of(el)
        if (
            selector is None
            or selector in drops
            or any(_matches(a, d) for a in el.iterancestors() for d in drops)
        ):
            continue
        raw = el.text_content()
        text = _squash(strip_pinyin_readings(raw) if converted else raw)
        if text and text not in target:
            drops.append(selector)
    return tuple(drops) or None


# -- the book: plans per site, learned from reports, kept in the store -----------------------------


class PlanStore(Protocol):
    """Where plans are kept (``storage.Store`` implements it)."""

    def load_plans(self, source: str, host: str) -> list[dict[str, Any]]: ...

    def save_plan(self, source: str, host: str, plan: dict[str, Any]) -> None: ...

    def retire_plan(self, source: str, host: str, template: str, version: int, why: str) -> None: ...

    def add_plan_counts(
        self, source: str, host: str, template: str, version: int, counts: dict[str, int]
    ) -> None: ...


@dataclass(slots=True)
class _Template:
    plan: dict[str, Any] | None = None
    version: int = 0  # the highest version known (the next learned plan takes the one after)
    candidates: list[Candidate] = field(default_factory=list)
    tries: int = 0
    varies: bool = False
    misses_in_row: int = 0


@dataclass(slots=True)
class _Site:
    templates: dict[str, _Template] = field(default_factory=dict)
    loaded_at: float | None = None


#: A store write the book asks for: ("save", source, host, plan) / ("retire", source, host,
#: (template, version, why)) / ("counts", source, host, (template, version, counts)).
PlanWrite = tuple[str, str, str, Any]

_COUNTED = {"served": "served", "verified": "verified", "mismatch": "mismatches", "miss": "misses"}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class PlanBook:
    """The plans of every site one crawl process extracts, learned from its pages' reports.

    It does no I/O itself: the caller loads a site's stored plans when :meth:`wants_load` says
    so (:meth:`install`), and writes what :meth:`take_writes` returns (:func:`write_plans`), in
    whatever thread owns its store connection. ``reload_after`` (seconds) has a site's plans
    read again, to pick up what other workers learned or retired.
    """

    def __init__(
        self,
        *,
        learn_pages: int = LEARN_PAGES,
        max_tries: int = MAX_LEARN_TRIES,
        reload_after: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.learn_pages = learn_pages
        self.max_tries = max_tries
        self.reload_after = reload_after
        self.clock = clock
        self._sites: dict[tuple[str, str], _Site] = {}
        self._saves: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._retires: list[PlanWrite] = []
        self._counts: dict[tuple[str, str, str, int], Counter[str]] = {}
        #: Reports since the last :meth:`take_writes`.
        self.pending = 0
        #: A plan was learned or retired since the last :meth:`take_writes` (share it soon).
        self.urgent = False

    def _site(self, source: str, host: str) -> _Site:
        return self._sites.setdefault((source, host), _Site())

    def wants_load(self, source: str, host: str) -> bool:
        site = self._sites.get((source, host))
        if site is None or site.loaded_at is None:
            return True
        return self.reload_after is not None and self.clock() - site.loaded_at >= self.reload_after

    def install(self, source: str, host: str, stored: Iterable[Mapping[str, Any]]) -> None:
        """Take in the stored plans of a site: a newer version than ours wins; a plan we
        retired stays retired until a newer one arrives."""
        site = self._site(source, host)
        site.loaded_at = self.clock()
        for plan in stored:
            template = site.templates.setdefault(str(plan["template"]), _Template())
            version = int(plan["version"])
            if version < template.version or (version == template.version and template.plan is None):
                continue
            mine = template.plan
            template.version = version
            if plan.get("status") != "active":
                template.plan = None
            elif mine is None or int(mine["version"]) != version:
                template.plan = {k: v for k, v in plan.items() if k != "counts"}
                template.candidates.clear()

    def orders(self, source: str, host: str) -> PlanOrders:
        site = self._site(source, host)
        active = {t: s.plan for t, s in site.templates.items() if s.plan is not None}
        settled = frozenset(t for t, s in site.templates.items() if s.varies and s.plan is None)
        return PlanOrders(active, settled)

    def plan(self, source: str, host: str, template: str) -> dict[str, Any] | None:
        found = self._site(source, host).templates.get(template)
        return found.plan if found is not None else None

    def record(self, source: str, host: str, report: PlanReport) -> None:
        """Count a page's report: learn a plan, widen one, or retire one."""
        self.pending += 1
        template = self._site(source, host).templates.setdefault(report.template, _Template())
        if report.event in ("candidate", "no_candidate"):
            self._learn(source, host, report, template)
            return
        plan = template.plan
        key = (source, host, report.template, report.version)
        self._counts.setdefault(key, Counter())[_COUNTED[report.event]] += 1
        if plan is None or int(plan["version"]) != report.version:
            return  # a report on a plan this book has since retired or replaced
        template.misses_in_row = template.misses_in_row + 1 if report.event == "miss" else 0
        if report.event == "mismatch":
            self._retire(source, host, report.template, template, f"mismatch: {report.why}")
        elif template.misses_in_row >= MAX_MISSES_IN_ROW:
            self._retire(
                source,
                host,
                report.template,
                template,
                f"{template.misses_in_row} misses in a row: {report.why}",
            )
        elif report.event == "verified":
            self._widen(source, host, report, plan)

    def _retire(self, source: str, host: str, name: str, template: _Template, why: str) -> None:
        """The plan no longer fits the template: trafilatura takes its pages, which learn again."""
        assert template.plan is not None
        version = int(template.plan["version"])
        log.warning("extraction plan %s %s v%d retired: %s", host, name, version, why)
        template.plan = None
        template.candidates.clear()
        template.tries = template.misses_in_row = 0
        template.varies = False
        self._saves.pop((source, host, name), None)
        self._retires.append(("retire", source, host, (name, version, why)))
        self.urgent = True

    def _widen(self, source: str, host: str, report: PlanReport, plan: dict[str, Any]) -> None:
        """A checked page that agreed: its layout elements and length belong to the template."""
        recipe = plan["recipe"]
        tokens = set(recipe.get("tokens", ()))
        low, high = recipe.get("length", (report.length, report.length))
        widened = {
            **recipe,
            "tokens": sorted(tokens | report.tokens),
            "length": [min(low, report.length), max(high, report.length)],
        }
        if widened != recipe:
            plan["recipe"] = widened
            self._saves[(source, host, report.template)] = plan

    def _learn(self, source: str, host: str, report: PlanReport, template: _Template) -> None:
        if template.plan is not None or template.varies:
            return
        template.tries += 1
        if report.candidate is not None:
            template.candidates.append(report.candidate)
            agreeing = [c for c in template.candidates if c.recipe == report.candidate.recipe]
            if len(agreeing) >= self.learn_pages:
                template.version += 1
                template.plan = {
                    "format": PLAN_FORMAT,
                    "template": report.template,
                    "signature": "url-shape",
                    "version": template.version,
                    "status": "active",
                    "recipe": {
                        **report.candidate.recipe.to_dict(),
                        # lexbor's reading where it gave the very documents and never differed
                        "reader": "lexbor"
                        if any(c.lexbor for c in agreeing) and all(c.lexbor is not False for c in agreeing)
                        else "lxml",
                        "tokens": sorted(frozenset().union(*(c.tokens for c in agreeing))),
                        "length": [min(c.length for c in agreeing), max(c.length for c in agreeing)],
                    },
                    "learned_at": _now(),
                    "retired_at": None,
                    "retired_why": None,
                }
                template.candidates.clear()
                template.tries = 0
                self._saves[(source, host, report.template)] = template.plan
                self.urgent = True
                log.info(
                    "extraction plan learned for %s %s: %s", host, report.template, report.candidate.recipe
                )
                return
        if template.tries >= self.max_tries:
            template.varies = True  # its pages do not agree: trafilatura keeps them
            template.candidates.clear()

    def take_writes(self) -> list[PlanWrite]:
        """What to write to the store since the last call: plans learned or widened, plans
        retired, then the page counts."""
        writes: list[PlanWrite] = [
            ("save", source, host, dict(plan)) for (source, host, _), plan in self._saves.items()
        ]
        writes += self._retires
        writes += [
            ("counts", source, host, (template, version, dict(counts)))
            for (source, host, template, version), counts in self._counts.items()
        ]
        self._saves, self._retires, self._counts = {}, [], {}
        self.pending, self.urgent = 0, False
        return writes


def write_plans(store: PlanStore, writes: Iterable[PlanWrite]) -> None:
    """Carry out a book's writes on its store."""
    for kind, source, host, value in writes:
        if kind == "save":
            store.save_plan(source, host, value)
        elif kind == "retire":
            template, version, why = value
            store.retire_plan(source, host, template, version, why)
        else:
            template, version, counts = value
            store.add_plan_counts(source, host, template, version, counts)
