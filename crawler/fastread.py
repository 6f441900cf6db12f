"""A served page read from the lexbor tree the links stage already built (selectolax).

A page an extraction plan serves (:mod:`crawler.plans`) needs what :func:`crawler.extract.read_page`
reads with lxml (the head, the page's metadata labels, the article region) and the lines of the
plan's container. Reading them from lexbor's tree saves lxml's parse and its tree walks: on a
bench page lexbor parses in 0.3 ms and lxml in 0.55, and lexbor's CSS engine finds the container
and the labels in C.

The two parsers can build different trees from broken markup, and the lxml reading also prunes
recommendation streams and looks for attachments. So this reading is trusted only where it was
shown to agree, and steps aside where it might not::

    plans.learn: a candidate recipe ──► this reading gives the very document too? ──► reader "lexbor"
    serving a "lexbor" plan ──► read_served() ──► Unsure ──► the lxml reading serves the page

A page raises :class:`Unsure` when it links document files (attachments are judged on lxml's
tree), when neither its labels nor its URL state a date (htmldate reads lxml's tree), when the
container is not found exactly once, or when the container is inside, or is, a stream the lxml
reading prunes. Streams inside the container are pruned here by the same rules. The sampled
checks against trafilatura go on as for every served page.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from selectolax.lexbor import LexborHTMLParser, LexborNode

from crawler import boilerplate
from crawler.attachments import AttachmentCandidate, may_link_files, resolve_base
from crawler.boilerplate import Line, make_lines
from crawler.extract import (
    CELL_TAGS,
    DISCUSSION_LD,
    MAX_PRUNE_SHARE,
    META_LABEL,
    META_STOP_TAGS,
    MIN_ARTICLE_CHARS,
    SITE_NAME_METAS,
    STREAM_ATTR,
    Head,
    HeadFacts,
    assemble_head,
    discussion_url,
    gather_meta,
    is_headline,
    is_label_cell,
    is_label_text,
    read_label_value,
    read_meta_line,
    squash_spaces,
    stated_date,
)

Selector = tuple[str, str, str]  # (tag, "id" or "class", value)

DIGITS = re.compile(r"\d")
TOKEN_WITH_DIGITS = re.compile(r"[A-Za-z0-9]*\d[A-Za-z0-9]*")
#: Elements whose text is never article text: those trafilatura removes with their content
#: (its MANUALLY_CLEANED list, copied so that importing this module does not load trafilatura).
SKIP = frozenset(
    """aside embed fencedframe footer form head iframe menu object script applet audio canvas figure
    map picture svg video area blink button datalist dialog frame frameset fieldset link input label
    legend marquee math menuitem nav noindex noscript optgroup option output param progress rp rt rtc
    select source style track textarea time use template title meta""".split()  # noqa: SIM905
)
HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)
#: Elements that end a line (trafilatura's lines are cut at them).
BLOCK = frozenset(
    """p div section article header footer aside main nav blockquote pre center form fieldset
    figure figcaption address dl dt dd ul ol li table thead tbody tfoot caption h1 h2 h3 h4 h5 h6
    hr""".split()  # noqa: SIM905
)
#: The kind of line a block element's text makes (default "p").
KIND = {"h1": "head", "h2": "head", "h3": "head", "h4": "head", "h5": "head", "h6": "head"}
KIND.update({"li": "item", "blockquote": "quote", "pre": "code"})
#: A table row holding one of these is page layout: its cells' paragraphs are lines.
_ROW_BLOCKS = ", ".join(sorted(BLOCK | {"br"}))
#: The elements the lxml reading prunes as streams when their class or id says so.
_STREAM_TAGS = frozenset({"div", "section", "ul", "ol", "aside", "dl", "table"})
_STREAM_QUERY = ", ".join(sorted(_STREAM_TAGS))
_TEXT = "-text"
_CONTENT_LANGUAGE = ("content-language", "Content-Language")


class Unsure(Exception):
    """This reading cannot vouch for the page: the lxml reading serves it. ``page_only``: for a
    reason of this page alone (file links, no stated date), not of its template's markup."""

    def __init__(self, why: str, *, page_only: bool = False) -> None:
        super().__init__(why)
        self.page_only = page_only


@dataclass(slots=True)
class FastPage:
    """What :func:`crawler.extract.finish` reads of a page (its :class:`~crawler.extract.PageFacts`)."""

    url: str | None
    head: Head
    page_meta: dict[str, str]
    candidates: list[AttachmentCandidate] = field(default_factory=list)


@dataclass(slots=True)
class Served:
    """A served page as read here: its facts, its container's lines and layout tokens."""

    page: FastPage
    lines: list[Line]
    tokens: frozenset[str]


def parse(html: str) -> LexborHTMLParser:
    return LexborHTMLParser(html)


#: The elements read_page looks at outside the container, found by one walk of lexbor's tree
#: (each CSS query walks the whole tree: ~50 us on a bench page).
_PAGE_QUERY = 'title, h1, meta, link, article, base, script[type="application/ld+json"]'


def read_served(
    tree: LexborHTMLParser,
    url: str | None,
    container: Selector,
    drops: tuple[Selector, ...],
    hrefs: list[str] | None = None,
) -> Served:
    """Read a page for a plan's ``container`` and ``drops``; raises :class:`Unsure`.
    ``hrefs``: the page's link targets when the caller has them (every ``<a href>``, at least)."""
    body, root = tree.body, tree.root
    if body is None or root is None:
        raise Unsure("no body")
    page_meta = gather_meta(_label_nodes(body), _read_node)
    date = stated_date(page_meta) or _url_date(url)
    if date is None:
        raise Unsure("no stated date", page_only=True)

    query = _container_query(container)
    found = root.css(f"{_PAGE_QUERY}, {query}" if query else _PAGE_QUERY)
    facts = HeadFacts(declared_lang=root.attributes.get("lang") if root.tag == "html" else None)
    articles: list[LexborNode] = []
    h1s: list[LexborNode] = []
    boxes: list[LexborNode] = []
    base: LexborNode | None = None
    discussion = discussion_url(url)
    for el in found:
        tag = el.tag
        if tag == container[0] and matches(el.attributes, container):
            boxes.append(el)
        if tag == "article":
            articles.append(el)
        elif tag == "script":  # CSS matches the type in any case, lxml's query did not
            if el.attributes.get("type") == "application/ld+json" and DISCUSSION_LD.search(el.text()):
                discussion = True
        elif tag == "base":
            parent = el.parent
            if base is None and parent is not None and parent.tag == "head":
                base = el
        elif tag in _HEAD_TAGS:
            if tag == "h1":
                h1s.append(el)
            _read_head_element(el, tag, facts)
    head = assemble_head(facts, url, date)

    region = root
    if not discussion and len(articles) == 1 and _visible_len(articles[0], True) >= MIN_ARTICLE_CHARS:
        region = articles[0]
        boxes = [el for el in boxes if _inside(el, region)]
        h1s = [el for el in h1s if _inside(el, region)]
    if len(boxes) != 1:
        raise Unsure(f"container {container[2]!r} found {len(boxes)} times")
    box = boxes[0]
    pruner = _Pruner(region, head.title, len(h1s))
    if any(pruner.prunes(el) for el in _ancestors_or_self(box, region)):
        raise Unsure("the container is in a stream")
    if hrefs is None:
        hrefs = [a.attributes.get("href") or "" for a in region.css("a")]
    base_href = base.attributes.get("href") if base is not None else None
    if url and may_link_files(hrefs, resolve_base(url, base_href)):
        raise Unsure("the page links document files", page_only=True)
    pruned = {el.mem_id for el in box.css(_STREAM_QUERY) if pruner.prunes(el)}
    lines = container_lines(box, drops, pruned)
    return Served(FastPage(url, head, page_meta), lines, frozenset(layout_tokens(box, pruned)))


def _url_date(url: str | None) -> str | None:
    """The date htmldate gives a page that states none, when it needs no tree for it: given the
    URL, ``find_date`` answers with the URL's date before it reads the page (``/2015/3/18/``).
    None otherwise (the lxml reading then runs htmldate on its tree)."""
    if not url:
        return None
    try:
        from htmldate.extractors import extract_url_date
        from htmldate.utils import Extractor
        from htmldate.validators import get_max_date, get_min_date

        # the options crawler.extract._head_date gives find_date
        options = Extractor(False, get_max_date(None), get_min_date(None), True, "%Y-%m-%d")
        found = extract_url_date(url, options)
    except Exception:  # another htmldate: its internals may differ, lxml's reading decides
        return None
    return found if isinstance(found, str) else None


# -- selectors, lines and tokens --------------------------------------------------------------------


def selector_of(attributes: Mapping[str, str | None], tag: str) -> Selector | None:
    """How a plan names an element (either tree's attributes): its id (unless it carries digits:
    numbered per page), else its class attribute."""
    ident = (attributes.get("id") or "").strip()
    if ident and not DIGITS.search(ident):
        return (tag, "id", ident)
    classes = " ".join((attributes.get("class") or "").split())
    if classes:
        return (tag, "class", classes)
    return None


def _css_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _container_query(selector: Selector) -> str | None:
    """A CSS query for a superset of the elements ``selector`` names (the exact rule, id
    stripped and class blanks folded, is :func:`_matches`); None when nothing can match."""
    tag, attr, value = selector
    words = value.split()
    if not words or not re.fullmatch(r"[a-z][a-z0-9]*", tag):
        return None
    if attr == "id":
        return f"{tag}[id*={_css_string(value)}]"
    return f"{tag}[class~={_css_string(words[0])}]"


def find_all(region: LexborNode, selector: Selector) -> list[LexborNode]:
    """The elements under ``region`` (itself included) that ``selector`` names."""
    query = _container_query(selector)
    # lexbor's css() looks at the region itself too, as lxml's iter() does
    return [el for el in region.css(query) if matches(el.attributes, selector)] if query else []


def matches(attributes: Mapping[str, str | None], selector: Selector) -> bool:
    """Whether an element's attributes (either tree's) carry the name ``selector`` gives."""
    _, attr, value = selector
    found = attributes.get(attr)
    if found is None:
        return False
    return (" ".join(found.split()) if attr == "class" else found.strip()) == value


def is_hidden(attributes: Mapping[str, str | None]) -> bool:
    """Not shown to a reader (trafilatura removes these too), by either tree's attributes."""
    if "hidden" in attributes:
        return True
    style = attributes.get("style")
    return style is not None and HIDDEN_STYLE.search(style) is not None


class LineCutter:
    """Text cut into lines as trafilatura cuts it, for both trees' walks: text gathers until a
    block ends, which makes it one line of the block's kind; a table row is one line of cells
    (``| cell | cell | ``)."""

    __slots__ = ("buffer", "pairs")

    def __init__(self) -> None:
        self.pairs: list[tuple[str, str]] = []  # (text, kind)
        self.buffer: list[str] = []

    def flush(self, kind: str) -> None:
        text = " ".join("".join(self.buffer).split())
        self.buffer.clear()
        if text:
            self.pairs.append((text, kind))

    def row(self, cells: list[str]) -> None:
        if any(cells):
            self.pairs.append(("| " + " | ".join(cells) + " | ", "row"))

    def lines(self) -> list[Line]:
        self.flush("p")
        return make_lines(self.pairs)


def container_lines(
    container: LexborNode, drops: tuple[Selector, ...] = (), pruned: set[int] | None = None
) -> list[Line]:
    """One line per paragraph, heading, list item or table row of the container, as
    :func:`crawler.plans.container_lines` cuts them from lxml's tree."""
    skipped = pruned or set()
    cut = LineCutter()
    add = cut.buffer.append

    def walk(parent: LexborNode, kind: str) -> None:
        node = parent.child
        while node is not None:
            tag = node.tag or "-"
            if tag == _TEXT:
                add(node.text_content or "")
            elif tag[0] != "-":
                attributes = node.attributes
                if (
                    tag in SKIP
                    or is_hidden(attributes)
                    or (drops and any(matches(attributes, d) for d in drops))
                    or (skipped and node.mem_id in skipped)
                ):
                    pass
                elif tag == "br":
                    cut.flush(kind)
                elif tag == "tr" and node.css_first(_ROW_BLOCKS) is None:
                    cut.flush(kind)
                    cut.row([" ".join(c.text().split()) for c in node.iter() if c.tag in ("td", "th")])
                elif tag in ("tr", "td", "th"):  # a layout table's cell: its paragraphs are lines
                    cut.flush(kind)
                    walk(node, "p")
                    cut.flush("p")
                elif tag in BLOCK:
                    cut.flush(kind)
                    inner = KIND.get(tag, "p")
                    walk(node, inner)
                    cut.flush(inner)
                else:
                    walk(node, kind)
            node = node.next

    walk(container, "p")
    return cut.lines()


def layout_tokens(container: LexborNode, pruned: set[int] | None = None) -> set[str]:
    """The ids and classes inside a container (digit runs folded), pruned streams left out."""
    tokens = set()
    skipped = pruned or set()
    for el in _elements(container, skipped):
        selector = selector_of(el.attributes, el.tag or "")
        if selector is not None:
            tokens.add(token_of(selector))
    return tokens


def token_of(selector: Selector) -> str:
    """A layout token: an element's tag and name with digit runs folded (``div.list0``)."""
    return TOKEN_WITH_DIGITS.sub("0", f"{selector[0]}.{selector[2]}")


def _elements(root: LexborNode, skipped: set[int]) -> Iterator[LexborNode]:
    """``root`` and the elements under it, in document order, without the ``skipped`` subtrees."""
    yield root
    node = root.child
    while node is not None:
        if node.is_element_node and not (skipped and node.mem_id in skipped):
            yield from _elements(node, skipped)
        node = node.next


# -- region and streams --------------------------------------------------------------------------


def _visible_len(node: LexborNode, skip_code: bool = False) -> int:
    total = boilerplate.visible_len(node.text())
    if skip_code:
        for code in node.css("script, style"):
            total -= boilerplate.visible_len(code.text())
    return total


def _inside(el: LexborNode, ancestor: LexborNode) -> bool:
    """Whether ``el`` is ``ancestor`` or lies under it."""
    stop = ancestor.mem_id
    node: LexborNode | None = el
    while node is not None:
        if node.mem_id == stop:
            return True
        node = node.parent
    return False


def _ancestors_or_self(el: LexborNode, region: LexborNode) -> Iterator[LexborNode]:
    node: LexborNode | None = el
    stop = region.mem_id
    while node is not None and node.is_element_node:
        yield node
        if node.mem_id == stop:
            return
        node = node.parent


class _Pruner:
    """:func:`crawler.extract._prune_streams`'s verdict on one element of the region."""

    def __init__(self, region: LexborNode, title: str | None, h1s: int) -> None:
        self.region = region
        self.title = title
        self.h1s = h1s  # in the region
        self._total = 0

    def prunes(self, el: LexborNode) -> bool:
        if el.tag not in _STREAM_TAGS:
            return False
        attributes = el.attributes
        if not STREAM_ATTR.search(f"{attributes.get('class') or ''} {attributes.get('id') or ''}"):
            return False
        inner = el.css("h1")
        title = self.title
        if inner and (self.h1s == 1 or not title or any(is_headline(h.text(), title) for h in inner)):
            return False
        if el.css_first("article") is not None:
            return False
        if not self._total:
            self._total = _visible_len(self.region) or 1
        return _visible_len(el) <= MAX_PRUNE_SHARE * self._total


# -- head and labels -------------------------------------------------------------------------------


_HEAD_TAGS = frozenset({"title", "h1", "meta", "link"})


def _read_head_element(el: LexborNode, tag: str, facts: HeadFacts) -> None:
    """What one title, h1, meta or link element adds to the facts (as read_head reads them)."""
    attributes = el.attributes
    if tag == "meta":
        if "content" not in attributes:
            return
        prop, name = attributes.get("property"), attributes.get("name")
        content = attributes.get("content") or ""
        if facts.og_title is None and "og:title" in (prop, name):
            facts.og_title = squash_spaces(content) or None
        if facts.source is None and name in ("ContentSource", "contentsource", "source"):
            facts.source = squash_spaces(content) or None
        if facts.meta_lang is None and attributes.get("http-equiv") in _CONTENT_LANGUAGE:
            facts.meta_lang = squash_spaces(content) or None
        if prop == "og:site_name" or name in SITE_NAME_METAS:
            parent = el.parent
            if parent is not None and parent.tag == "head":
                facts.site_names.append(squash_spaces(content))
    elif tag == "title":
        if facts.doc_title is None:
            facts.doc_title = squash_spaces(el.text()) or None
    elif tag == "h1":
        text = squash_spaces(el.text())
        if text:
            facts.h1s.append(text)
    elif facts.canonical is None and attributes.get("rel") == "canonical":
        facts.canonical = squash_spaces(attributes.get("href") or "") or None


def _label_nodes(body: LexborNode) -> Iterator[LexborNode]:
    """The body's text nodes that hold a label, in order: one regex pass over the body's text
    (joined in C, NUL between text nodes), then, for each hit, a descent to its text node
    through the children whose text holds it (a few dozen nodes, not the page's hundreds)."""
    text = body.text(separator="\0")
    last = -1
    for match in META_LABEL.finditer(text):
        start = match.start()
        if last >= 0 and text.find("\0", last, start) < 0:
            continue  # in the text node found last
        last = start
        node = _text_node_at(body, start)
        if node is None or match.group() not in (node.text_content or ""):
            raise Unsure("text nodes out of step")  # a NUL in the page's text, or a bug
        yield node


def _text_node_at(parent: LexborNode, offset: int) -> LexborNode | None:
    """The text node that holds character ``offset`` of ``parent.text(separator="\0")``. lexbor
    makes no empty text nodes, so a child holds text exactly when its own joined text is not
    empty, and the parent's joined text is its children's, joined by NUL."""
    node = parent
    while True:
        at = 0
        for child in node.iter(include_text=True):
            if child.is_text_node:
                own = child.text_content or ""
            elif child.is_element_node:
                own = child.text(separator="\0")
            else:
                continue
            if not own:
                continue
            end = at + len(own)
            if offset < end:
                if child.is_text_node:
                    return child
                node, offset = child, offset - at
                break
            at = end + 1
        else:
            return None


def _read_node(node: LexborNode, found: dict[str, str]) -> None:
    """:func:`crawler.extract._read_node` on a lexbor text node: lxml's ``el.text`` is a text
    node before the parent's first child element, its ``tail`` one after an element."""
    el = node.parent
    if el is None or not el.is_element_node:
        return
    is_tail = False
    before = node.prev
    while before is not None:
        if before.is_element_node:
            is_tail = True
            break
        before = before.prev
    is_cell = not is_tail and el.tag in CELL_TAGS and is_label_text(node.text_content or "")
    if is_cell and is_label_cell(el.text()):
        _read_label_cell(el, found)
        return
    element: LexborNode | None = el
    for _ in range(3):  # the label may sit in a <small> or <span> inside the line
        if element is None or not element.is_element_node or element.tag in META_STOP_TAGS:
            return
        if read_meta_line(element.text(), found) is not False:
            return
        element = element.parent


def _read_label_cell(cell: LexborNode, found: dict[str, str]) -> None:
    """The value after a label cell: its tail (the text nodes after it), else the next element's
    text when that is a cell too."""
    tail: list[str] = []
    nxt = cell.next
    while nxt is not None and not nxt.is_element_node:
        if nxt.tag == _TEXT:
            tail.append(nxt.text_content or "")
        nxt = nxt.next
    value = "".join(tail)
    if not value.split():
        if nxt is None or nxt.tag not in CELL_TAGS:
            return
        value = nxt.text()
    read_label_value(cell.text(), value, found)
