"""Main text and metadata of an article page.

The page is parsed once into an lxml tree, from text we decoded ourselves (see
:mod:`crawler.decode`; lxml never guesses a charset from raw bytes here). Metadata is read from
that tree. Then the tree is narrowed to the article where the page says where it is, streams of
other stories are pruned, trafilatura extracts the article region, the Chinese-portal rules of
:mod:`crawler.boilerplate` remove the chrome that sits inside that region, and
:func:`crawler.normalize.normalize_text` gives the stored form: a converted repost's pinyin
readings go (from text, title and metadata alike, decided by their density), replacement
characters are dropped and the page flagged ``damaged``. The metadata of an official document
(issuing agency, document number, dates) is read from its 发布机构/发文字号 lines and its
information-disclosure table, wherever they stand.

Each choice below was measured on the labelled corpus (``python -m crawler.evaluate``); the
docstrings say what it bought. None is keyed to a site or a URL.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from configparser import ConfigParser
from copy import deepcopy
from dataclasses import dataclass, field
from datetime import date
from itertools import islice
from typing import Protocol, TypeVar
from urllib.parse import urljoin, urlsplit

from lxml import etree
from lxml.html import HtmlComment, HtmlElement, HtmlEntity, HTMLParser, HtmlProcessingInstruction, fromstring

from crawler import boilerplate
from crawler.attachments import (
    AttachmentCandidate,
    AttachmentLink,
    attachment_candidates,
    base_url,
    select_attachments,
)
from crawler.boilerplate import Line
from crawler.decode import decode_html
from crawler.errors import EmptyExtraction, GarbledText
from crawler.joined import Joined
from crawler.normalize import (
    drop_replacement_runs,
    has_converted_readings,
    looks_garbled,
    normalize_text,
    strip_pinyin_readings,
    to_simplified,
)


@dataclass(slots=True)
class Extraction:
    """What :func:`extract` found: the normalized text and the page's metadata."""

    text: str
    title: str | None
    published_at: str | None
    agency: str | None
    author: str | None
    canonical_url: str | None
    lang: str | None
    #: The official document number (发文字号), e.g. 国科发〔2024〕12号, or None.
    document_number: str | None = None
    #: Replacement characters (U+FFFD, 锟斤拷) were dropped from the text or title: bytes of the
    #: page were lost before or while decoding it.
    damaged: bool = False
    #: The page came through a converter that inserts pinyin readings (a repost): they were
    #: removed, so the text no longer shows it.
    converted: bool = False
    #: Document files the article links (its body or its 附件 block): see crawler.attachments.
    attachments: list[AttachmentLink] = field(default_factory=list)


_PARSER = HTMLParser(
    collect_ids=False, default_doctype=False, encoding="utf-8", remove_comments=True, remove_pis=True
)
# Every element an HtmlElement, chosen in C: lxml.html's own lookup is a Python call for every
# element proxy lxml makes (about a million per 300 pages in trafilatura's tree walks; 12 % of
# process_page). Only the form-field classes (FormElement, InputElement...) are given up, which
# nothing here uses.
_PARSER.set_element_class_lookup(
    etree.ElementDefaultClassLookup(
        element=HtmlElement, comment=HtmlComment, pi=HtmlProcessingInstruction, entity=HtmlEntity
    )
)
_WS = re.compile(r"\s+")


def parse_html(html: str) -> HtmlElement | None:
    """Parse decoded HTML. lxml gets UTF-8 bytes with the encoding fixed, so a stale
    ``<meta charset=gb2312>`` or an XML declaration cannot make it decode the page again."""
    data = html.encode("utf-8", "replace")
    if not data.strip():
        return None
    try:
        tree = fromstring(data, parser=_PARSER)
    except (etree.ParserError, ValueError, TypeError):
        return None
    return tree if isinstance(tree, HtmlElement) else None


def extract_bytes(
    body: bytes, url: str | None = None, http_charset: str | None = None, hint: str | None = None
) -> Extraction:
    """Decode the fetched bytes (:func:`crawler.decode.decode_html`), then :func:`extract`."""
    return extract(decode_html(body, http_charset, hint).text, url)


@dataclass(slots=True)
class Page:
    """A parsed page narrowed to its article region, with the metadata read before narrowing."""

    url: str | None
    head: Head
    page_meta: dict[str, str]
    discussion: bool
    region: HtmlElement
    #: Document files the region links, found before the 附件 lines lose their links.
    candidates: list[AttachmentCandidate]
    min_size: int


def read_page(html: str, url: str | None = None) -> Page:
    """Parse a decoded page, read its head and metadata, and narrow it to its article region:
    everything :func:`extract` does before it asks for the article's lines."""
    tree = parse_html(html)
    if tree is None:
        raise EmptyExtraction("the page has no HTML content")
    page_meta = read_page_meta(tree)
    head = read_head(tree, url, stated_date=stated_date(page_meta))
    discussion = is_discussion(tree, url)

    # on a discussion page the replies live outside the question's <article>
    base = base_url(tree, url) if url else None  # before the article leaves the tree
    region = tree if discussion else _article_region(tree)
    _prune_streams(region, head.title)
    # before the 附件 line's link is unwrapped below
    candidates = attachment_candidates(region, url, base=base)
    _keep_attachment_lines(region)
    min_size = MIN_EXTRACTED_SIZE if region is tree else ARTICLE_MIN_EXTRACTED_SIZE
    return Page(url, head, page_meta, discussion, region, candidates, min_size)


def extract(html: str, url: str | None = None) -> Extraction:
    """Extract the article of an already-decoded page.

    Raises :class:`EmptyExtraction` when no body text is found and :class:`GarbledText` when
    the text still looks like mojibake (it must not be stored as if it were an article).
    """
    page = read_page(html, url)
    return finish(page, trafilatura_lines(page))


def trafilatura_lines(page: Page) -> list[Line]:
    """The lines of the page's article as trafilatura finds them in its region (an extraction
    plan's container gives them too: :mod:`crawler.plans`; :func:`finish` takes either)."""
    return _main_lines(page.region, page.url, page.discussion, page.min_size)


class PageFacts(Protocol):
    """What :func:`finish` reads of a page besides its lines (a :class:`Page`, or the fast
    path's :class:`crawler.fastread.FastPage`)."""

    url: str | None
    head: Head
    page_meta: dict[str, str]
    candidates: list[AttachmentCandidate]


def finish(page: PageFacts, lines: list[Line]) -> Extraction:
    """The text and metadata of ``page`` from the lines of its article."""
    if not lines:
        raise EmptyExtraction("no main text found")
    head = page.head
    # A converted repost (readings after many characters) loses them everywhere; a page that
    # glosses one rare character keeps it (see normalize.has_converted_readings).
    title, titles = head.title, head.titles
    converted = has_converted_readings("\n".join([title or "", *(x.text for x in lines)]))
    if converted:
        lines = [Line(strip_pinyin_readings(x.text), x.kind) for x in lines]
        title = strip_pinyin_readings(title) if title else title
        titles = [strip_pinyin_readings(t) for t in titles]
    cleaned = boilerplate.clean(lines, titles=titles)
    text = normalize_text(cleaned.text, strip_readings=False)
    if not text:
        raise EmptyExtraction("only boilerplate found")
    if looks_garbled(text):
        raise GarbledText("the extracted text looks like mojibake")
    text, lost = drop_replacement_runs(text)
    if lost:
        text = normalize_text(text, strip_readings=False)
        if not text:
            raise EmptyExtraction("only replacement characters found")
    if title:
        title, lost_in_title = drop_replacement_runs(title)
        lost += lost_in_title
        title = squash_spaces(title) or None

    meta = {**page.page_meta, **cleaned.meta}  # a line inside the text is the more specific
    source = head.source
    if converted:
        meta = {key: strip_pinyin_readings(value) for key, value in meta.items()}
        source = strip_pinyin_readings(source) if source else source
    agency = _agency(meta.get("agency")) or _agency(meta.get("source") or source)
    return Extraction(
        text=text,
        title=title,
        published_at=(parse_date(meta.get("date")) or parse_date(meta.get("written")) or head.date),
        agency=agency,
        author=_person(meta.get("author")),
        canonical_url=head.canonical,
        lang=guess_lang(text, head.lang),
        document_number=document_number(meta.get("number")) or _number_line(cleaned.lines),
        damaged=lost > 0,
        converted=converted,
        attachments=select_attachments(page.candidates, text) if page.candidates else [],
    )


# -- region ---------------------------------------------------------------------------------------

#: An ``<article>`` holding at least this many characters is taken as the article itself.
MIN_ARTICLE_CHARS = 80


def _text_len(element: HtmlElement, skip_code: bool = False) -> int:
    """Visible characters under ``element`` (without script/style text when ``skip_code``)."""
    # text_content() is the same text as "".join(itertext()), joined in C (4x faster)
    total = boilerplate.visible_len(element.text_content())
    if skip_code:
        # script and style hold raw text, never elements: their texts do not overlap (2.5x faster
        # than selecting the text nodes without a script/style ancestor)
        for code in element.iter("script", "style"):  # the element itself included
            total -= boilerplate.visible_len(code.text_content())
    return total


def _article_region(tree: HtmlElement) -> HtmlElement:
    """The page's single ``<article>`` element when it has one, else the whole page.

    HTML5 says an ``<article>`` is a self-contained composition; a page with exactly one is
    telling us where the story is. Outside it live the "more stories" streams that trafilatura
    otherwise appends to short articles (measured: +0.7 F1 on such pages).
    """
    articles = tree.xpath("//article")
    if len(articles) != 1 or _text_len(articles[0], skip_code=True) < MIN_ARTICLE_CHARS:
        return tree
    wrapper = fromstring("<html><body></body></html>")
    wrapper[0].append(articles[0])
    return wrapper


#: class/id words of recommendation streams and headline lists next to an article ("more
#: stories", "recommend", "related", "hot news", rankings, carousels); trafilatura's own lists
#: miss these spellings. Checked on the corpus: they hold chrome, not article text.
STREAM_ATTR = re.compile(
    r"recommend|more[-_]?stories|hot[-_]?news|\brank(?:ing)?\b|rank[-_]|carousel|\brelated?\b|related[-_]|[-_]related",
    re.IGNORECASE,
)
#: An element holding more than this share of the page's text is never pruned as a stream.
MAX_PRUNE_SHARE = 0.5


def _prune_streams(root: HtmlElement, title: str | None = None) -> None:
    """Remove recommendation streams and headline lists (see :data:`STREAM_ATTR`).

    Never an element that holds the headline, an ``<article>``, or most of the text. The
    headline is the page's only ``<h1>``, or, when it has several, one that is the title: a
    stream whose items are set as ``<h1>`` (feed portals do that below the story) is still a
    stream.
    """
    total = 0  # the page's text length, counted once a candidate needs it
    h1s: list[HtmlElement] | None = None
    doomed = []
    for el in root.iter("div", "section", "ul", "ol", "aside", "dl", "table"):
        if not STREAM_ATTR.search(f"{el.get('class', '')} {el.get('id', '')}"):
            continue
        if h1s is None:
            h1s = list(root.iter("h1"))
        inner = list(el.iter("h1"))
        if inner and (len(h1s) == 1 or not title or any(is_headline(h.text_content(), title) for h in inner)):
            continue
        if el.find(".//article") is not None:
            continue
        if not total:
            total = _text_len(root) or 1
        if _text_len(el) <= MAX_PRUNE_SHARE * total:
            doomed.append(el)
    for el in doomed:
        if el.getparent() is not None:
            el.drop_tree()


def is_headline(h1_text: str, title: str) -> bool:
    """An h1's text is the page's title (the one, or a part of the other)."""
    text = squash_spaces(h1_text)
    return bool(text) and (text in title or title in text)


_ATTACHMENT = re.compile(r"^\s*附\s*件\s*\d*\s*[:：]?")


def _keep_attachment_lines(root: HtmlElement) -> None:
    """A notice's 附件 line is mostly a link to the file, and trafilatura drops link-dense
    paragraphs; unlink it so that it stays with the notice it belongs to."""
    for el in root.iter("p", "div", "li", "span"):
        text = el.text or ""
        if _ATTACHMENT.match(text) and len(el) <= 10 and len(el.text_content()) <= 300:
            etree.strip_tags(el, "a")


#: A table cell with more text than this is page layout, not data.
LAYOUT_CELL_CHARS = 150


def _is_layout_table(table: HtmlElement) -> bool:
    """A table used as a page grid: it nests a table or has a cell with a paragraph of text."""
    if table.find(".//table") is not None:
        return True
    for cell in table.iter("td", "th"):
        raw = cell.text_content()  # an upper bound: most cells are short, skip the exact count
        if len(raw) > LAYOUT_CELL_CHARS and len(_WS.sub("", raw)) > LAYOUT_CELL_CHARS:
            return True
    return False


# -- trafilatura ----------------------------------------------------------------------------------

#: trafilatura's MIN_EXTRACTED_SIZE: below this many characters it falls back to a dump of the
#: page ("baseline"). Kept at its default for whole pages; inside an ``<article>`` we already
#: know where the story is, and the dump only merges the header chrome into the text.
MIN_EXTRACTED_SIZE = 250
ARTICLE_MIN_EXTRACTED_SIZE = 30
_CONFIGS: dict[int, ConfigParser] = {}
_BLOCK_KIND = {"p": "p", "head": "head", "list": "item", "table": "row", "quote": "quote", "code": "code"}


def _trafilatura_config(min_size: int) -> ConfigParser:
    config = _CONFIGS.get(min_size)
    if config is None:
        from trafilatura.settings import DEFAULT_CONFIG

        config = deepcopy(DEFAULT_CONFIG)
        config.set("DEFAULT", "MIN_EXTRACTED_SIZE", str(min_size))
        _CONFIGS[min_size] = config
    return config


#: Balanced mode, fallbacks on. Measured with everything else as it is (news+gov mean F1 / leak
#: share / all-80 mean): balanced 0.975 / 0% / 0.907; favor_precision 0.961 / 7% / 0.906 (one
#: page empty); favor_recall 0.959 / 5% / 0.897; fast (no readability/justext) 0.958 / 0% / 0.893.
def _trafilatura_lines(
    region: HtmlElement, url: str | None, tables: bool, comments: bool, min_size: int
) -> list[Line]:
    """One line per paragraph, heading, list item or table row of trafilatura's output."""
    import trafilatura
    from trafilatura.xml import xmltotxt

    try:
        doc = trafilatura.bare_extraction(
            region,
            url=url,
            include_comments=comments,
            include_tables=tables,
            include_images=False,
            include_links=False,
            with_metadata=False,
            config=_trafilatura_config(min_size),
        )
    except Exception as exc:  # a page that breaks trafilatura is a page without usable text
        raise EmptyExtraction(f"trafilatura failed: {type(exc).__name__}: {exc}") from exc
    if doc is None or isinstance(doc, dict) or doc.body is None:
        return []
    bodies = [doc.body]
    if comments and getattr(doc, "commentsbody", None) is not None:
        bodies.append(doc.commentsbody)
    lines: list[Line] = []
    for body in bodies:
        for block in body:
            kind = _BLOCK_KIND.get(block.tag, "p")
            for text in xmltotxt(block, False).split("\n"):
                if text.strip():
                    lines.append(Line(text, kind))
    return lines


#: The tables-on retry runs when the tables-off pass kept less than this share of the page's
#: text, on a page that has at least this share of its text in tables ...
RETRY_BELOW_PAGE_SHARE = 0.2
RETRY_TABLE_SHARE = 0.3
#: ... and its result wins when the tables-off one is under this share of it.
PREFER_TABLES_BELOW = 0.5


def _main_lines(region: HtmlElement, url: str | None, discussion: bool, min_size: int) -> list[Line]:
    """Trafilatura with tables on, unless the page is laid out with tables.

    On a table-layout page (old portals) tables on keeps the whole grid with its menus; tables
    off makes trafilatura fall back to its readability comparison, which finds the story cell
    (measured: +0.03 mean F1 on news/gov pages and no leaked menus). Where the text itself is
    tabular (old forums, infobox pages) tables off finds next to nothing; a second pass with
    tables on is then kept when it finds much more. Pages without layout tables keep their data
    tables (a policy document's lists and schedules).
    """
    if not any(_is_layout_table(t) for t in region.iter("table")):
        return _trafilatura_lines(region, url, True, discussion, min_size)
    lines = _trafilatura_lines(region, url, False, discussion, min_size)
    page = _text_len(region, skip_code=True)
    found = sum(len(x.text) for x in lines)
    if page and found < RETRY_BELOW_PAGE_SHARE * page:
        in_tables = sum(_text_len(t, skip_code=True) for t in region.xpath("//table[not(ancestor::table)]"))
        if in_tables >= RETRY_TABLE_SHARE * page:
            alt = _trafilatura_lines(region, url, True, discussion, min_size)
            if found < PREFER_TABLES_BELOW * sum(len(x.text) for x in alt):
                return alt
    return lines


#: URL words of discussion pages (forums, Q&A, threads, short-review lists), where the replies
#: are the content rather than reader comments under an article.
DISCUSSION_URL = re.compile(
    r"bbs|forum|thread|topic|question|discuss|tieba|zhidao|comments|answer|showannounce|/faq/", re.IGNORECASE
)
DISCUSSION_LD = re.compile(r'"@type"\s*:\s*"(?:DiscussionForumPosting|QAPage|Question)"')


def discussion_url(url: str | None) -> bool:
    """:func:`is_discussion`'s test of the URL: its host or path names a forum or Q&A."""
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https"):
        return False
    return DISCUSSION_URL.search(f"{parts.netloc}{parts.path}") is not None


def is_discussion(tree: HtmlElement, url: str | None) -> bool:
    """A forum thread, Q&A or review-list page, by its URL words or its schema.org type.

    There the replies are kept (measured: forum pages of the corpus 0.72 -> 0.81 mean F1).
    """
    if discussion_url(url):
        return True
    return any(
        s.text and DISCUSSION_LD.search(s.text)
        for s in tree.iterfind('.//script[@type="application/ld+json"]')
    )


# -- head metadata --------------------------------------------------------------------------------


@dataclass(slots=True)
class Head:
    """Metadata read from the page before extraction."""

    title: str | None
    titles: list[str] = field(default_factory=list)  # every title string, for dropping headlines
    canonical: str | None = None
    date: str | None = None  # the page's own labels', else htmldate's
    lang: str | None = None
    source: str | None = None  # <meta name="ContentSource"> of TRS-style government CMSs


def read_head(tree: HtmlElement, url: str | None, *, stated_date: str | None = None) -> Head:
    """Title candidates, canonical URL, language, TRS source and the publication date: the one
    the page's own labels state (``stated_date``), else htmldate's (a third of reading the
    head: only when needed). One pass over the page's title, h1, meta and link elements: each
    XPath query this replaces walked the whole tree (0.45 -> 0.1 ms a bench page)."""
    og = doc_title = canonical = lang = source = None
    h1s: list[str] = []
    site_names: list[str] = []
    head = tree.find("head") if tree.tag == "html" else None
    for el in tree.iter("title", "h1", "meta", "link"):
        tag, get = el.tag, el.get
        if tag == "meta":
            prop, name, content = get("property"), get("name"), get("content")
            if content is None:
                continue
            if og is None and "og:title" in (prop, name):
                og = squash_spaces(content) or None
            if source is None and name in ("ContentSource", "contentsource", "source"):
                source = squash_spaces(content) or None
            if lang is None and get("http-equiv") in ("content-language", "Content-Language"):
                lang = squash_spaces(content) or None
            in_head = head is not None and el.getparent() is head
            if in_head and (prop == "og:site_name" or name in SITE_NAME_METAS):
                site_names.append(squash_spaces(content))
        elif tag == "title":
            if doc_title is None:
                doc_title = _first([el.text or "", *(child.tail or "" for child in el)])
        elif tag == "h1":
            text = squash_spaces("".join(el.itertext()))
            if text:
                h1s.append(text)
        elif canonical is None and get("rel") == "canonical":
            canonical = squash_spaces(get("href") or "") or None
    declared = tree.get("lang") if tree.tag == "html" else None
    date = stated_date or _head_date(tree, url)
    facts = HeadFacts(doc_title, og, h1s, site_names, canonical, declared, lang, source)
    return assemble_head(facts, url, date)


@dataclass(slots=True)
class HeadFacts:
    """What a page's title, h1, meta and link elements say, before the head is made of it (read
    with lxml by :func:`read_head`, with lexbor by :mod:`crawler.fastread`)."""

    doc_title: str | None = None
    og_title: str | None = None
    h1s: list[str] = field(default_factory=list)
    site_names: list[str] = field(default_factory=list)
    canonical: str | None = None
    declared_lang: str | None = None  # <html lang>
    meta_lang: str | None = None  # <meta http-equiv="content-language">
    source: str | None = None


def assemble_head(facts: HeadFacts, url: str | None, date: str | None) -> Head:
    """The :class:`Head` of a page from what its elements say."""
    title = best_title(facts.doc_title, facts.og_title, facts.h1s, facts.site_names)
    titles = [t for t in dict.fromkeys((title, facts.og_title, facts.doc_title, *facts.h1s)) if t]
    canonical = facts.canonical
    if canonical:
        canonical = urljoin(url, canonical) if url else canonical
        if not canonical.startswith(("http://", "https://")):
            canonical = None
    declared = squash_spaces(facts.declared_lang or "")
    return Head(title, titles, canonical, date, declared or facts.meta_lang, facts.source)


#: The ``name`` values of a site-name meta in the head (besides ``og:site_name``).
SITE_NAME_METAS = ("SiteName", "sitename", "site_name", "application-name")


#: The body's text nodes holding a metadata label (来源, 作者, 发布时间/日期, 发布机构, 发文机关,
#: 发文字号, 成文日期, 索引号; Simplified or Traditional, labels spaced out to align a table or not).
#: All text nodes, filtered by one regex in Python: as fast as the three ``contains()`` calls
#: this replaces (libxml2 pays per call on every node; measured 1.89 vs 1.94 ms a page on the
#: corpus, machine loaded), for three times the labels.
_BODY_TEXT = etree.XPath("//body//text()")
_SP = "[ \u3000\u00a0]*"
META_LABEL = re.compile(
    "来源|來源|作者|发布时间|發布時間|发布日期|發布日期|发布单位|發布單位|发文机关|發文機關|发文单位|發文單位|"
    f"发布机关|發布機關|文号|文號|发文字号|發文字號|成文日期|索{_SP}引{_SP}号|發{_SP}布{_SP}機{_SP}構|发{_SP}布{_SP}机{_SP}构"
)


_BODY_STRINGS = etree.XPath("//body//text()", smart_strings=False)
_BODY_TEXT_AT = etree.XPath("(//body//text())[$n]")
#: Up to this many label nodes are fetched one by one; more, all text nodes at once.
_FETCH_ONE_BY_ONE = 3


def _label_hits(strings: Joined) -> list[int]:
    """The indexes, in order, of the strings (text nodes joined by NUL) that hold a label."""
    hits: list[int] = []
    for match in META_LABEL.finditer(strings.text):
        index = strings.index_at(match.start())
        if not hits or hits[-1] != index:
            hits.append(index)
    return hits


def _meta_text(tree: HtmlElement) -> list[etree._ElementUnicodeResult]:
    """The body's text nodes that hold a label, in order. Found among plain strings (one regex
    pass over all of them); only the few hits become nodes with a parent: making every text
    node one was most of this function's time."""
    hits = _label_hits(Joined(_BODY_STRINGS(tree), "\0"))  # no label holds NUL: a hit lies in one node
    if not hits:
        return []
    if len(hits) <= _FETCH_ONE_BY_ONE:
        return [_BODY_TEXT_AT(tree, n=index + 1)[0] for index in hits]
    nodes = _BODY_TEXT(tree)
    return [nodes[index] for index in hits]


#: A label cell of a disclosure table or list: the label alone, its value in the next cell
#: (``<td>发文字号：</td><td>国科发〔2024〕12号</td>``, ``<dt>``/``<dd>``, ``<span>label</span>value``).
_LABEL_CELL = re.compile(rf"^\s*(?:{boilerplate.DISCLOSURE_ALT}|来源|信息来源)\s*[:：︰]?\s*$")
CELL_TAGS = frozenset(
    {"td", "th", "dt", "dd", "span", "label", "b", "strong", "em", "div", "li", "p", "font"}
)
#: Candidate nodes looked at per page: metadata sits in the header, before the text's own labels.
MAX_META_NODES = 40
#: Elements a metadata line is never looked for in (climbing from a label's text node).
META_STOP_TAGS = ("body", "html", "script", "style")


_Node = TypeVar("_Node")


def read_page_meta(tree: HtmlElement) -> dict[str, str]:
    """The page's own 来源/作者/日期 line and its information-disclosure table (索引号, 发文机关,
    发文字号, 成文日期, 发布日期), wherever they stand (often outside the article body, where
    trafilatura does not look): the first short elements that parse as metadata lines, and the
    label cells whose values sit in the next cell."""
    return gather_meta(_meta_text(tree), _read_node)


def gather_meta(nodes: Iterable[_Node], read: Callable[[_Node, dict[str, str]], None]) -> dict[str, str]:
    """What ``read`` finds in the first :data:`MAX_META_NODES` label nodes (read_page_meta's
    rules, for either parser's nodes)."""
    found: dict[str, str] = {}
    for node in islice(nodes, MAX_META_NODES):
        # Once the page's own 来源 and date are known, later labels (a comment's 作者, a list's
        # 来源) only complete what an official document adds: its issuer, number, signing date.
        into = found if not ("source" in found and "date" in found) else {}
        read(node, into)
        if into is not found:
            for key in ("agency", "number", "written"):
                if key in into:
                    found.setdefault(key, into[key])
        if {"source", "date", "agency", "number"} <= found.keys():
            break
    return found


def is_label_text(text: str) -> bool:
    """A text node that may be a label cell's own text (its element is checked whole next)."""
    return _LABEL_CELL.match(to_simplified(text)) is not None


def is_label_cell(whole: str) -> bool:
    """An element's whole text is a label alone ("来源:", not "来源:<a>新华网</a>")."""
    return len(whole) <= 24 and _LABEL_CELL.match(to_simplified(whole)) is not None


def read_meta_line(text: str, found: dict[str, str]) -> bool | None:
    """Read an element's text as a metadata line: True when it was one, False when not, None
    when it is too long to be one (its ancestors are longer still: stop climbing)."""
    text = squash_spaces(text)
    if len(text) > 160:
        return None
    if "(" in text or "（" in text:  # a repost's readings would cut a value short
        text = strip_pinyin_readings(text)
    simplified = to_simplified(text)
    meta = boilerplate.parse_meta_line(simplified) or boilerplate.parse_disclosure_row(simplified)
    if meta is not None and meta.strong and any(v for _, v in meta.pairs):
        boilerplate.read_meta(meta, text, found)
        return True
    return False


def read_label_value(label: str, value: str, found: dict[str, str]) -> None:
    """A label cell's text and the value next to it, read as one metadata line."""
    label, value = squash_spaces(label), squash_spaces(value)
    if not value or len(value) > 80:
        return
    line = strip_pinyin_readings(f"{label.rstrip(':：︰ ')}：{value}")
    meta = boilerplate.parse_meta_line(to_simplified(line))
    if meta is not None:
        boilerplate.read_meta(meta, line, found)


def _read_node(node: etree._ElementUnicodeResult, found: dict[str, str]) -> None:
    """Read the metadata line or label cell that holds a text node with a label."""
    el = node.getparent()
    is_tail = getattr(node, "is_tail", False)
    is_cell = el is not None and not is_tail and el.tag in CELL_TAGS and is_label_text(node)
    if is_cell and is_label_cell(el.text_content()):
        _read_label_cell(el, found)
        return
    if el is not None and is_tail:
        el = el.getparent()
    for _ in range(3):  # the label may sit in a <small> or <span> inside the line
        if el is None or el.tag in META_STOP_TAGS:
            return
        if read_meta_line(el.text_content(), found) is not False:
            return
        el = el.getparent()


def _read_label_cell(cell: HtmlElement, found: dict[str, str]) -> None:
    """A label alone in its element: the value is the text after it in the same parent (a
    ``<span>`` label's tail), else the next element's text (the next ``<td>``/``<dd>``)."""
    value = cell.tail or ""
    if not squash_spaces(value):
        nxt = cell.getnext()
        while nxt is not None and not isinstance(nxt, HtmlElement):
            nxt = nxt.getnext()
        if nxt is None or nxt.tag not in CELL_TAGS:
            return
        value = nxt.text_content()
    read_label_value(cell.text_content(), value, found)


def _first(values: list[object]) -> str | None:
    for value in values:
        text = squash_spaces(str(value))
        if text:
            return text
    return None


def squash_spaces(text: str) -> str:
    """Blank runs made one space, ends stripped."""
    return _WS.sub(" ", text).strip()


# Separators between a title and the site or section names around it: spaced dashes, bars and
# colons, underscores, "»". These end a title wherever they stand.
_TITLE_SPLIT = re.compile(r"\s+[-–—|｜·:：»]\s+|_|\||｜|--|»|::")
# Separators that also occur inside real titles ("中国-东盟", "坚持创新——访…"): a title is cut
# at them only when what follows is a site name, or a short tail after a long title.
_WEAK_TITLE_SPLIT = re.compile(
    r"——|—(?=\s)|－|(?<=[\u4e00-\u9fff）】」》”!！?？])-(?=[\u4e00-\u9fff【「《“])"
)
# A part of a <title> that names the site ("…网", "….com") or a section ("通知公告", "工作动态").
_SITE_PART = re.compile(
    r"(?:网|网站|频道|博客|论坛|百科|首页|官网|门户|\.com|\.cn|\.net|\.org|PIXNET)$|"
    r"^.{0,6}(?:公告|通告|动态|要闻|资讯|快讯|专题|栏目|公开|法规|解读|新闻中心)$",
    re.IGNORECASE,
)
# ... or names the body that runs it (科学技术部, 四川省科学技术厅, 某某市科技局, 人民政府), which a
# headline about such a body does not look like ("关于成立科技伦理委员会", "市政府召开…的中心").
_ORG_PART = re.compile(
    r"^(?!.*(?:关于|的|召开|举行|成立|印发|通知|公布|开展|揭牌|组建))"
    r"[\u4e00-\u9fff·（）()]{2,24}(?:部|厅|局|委|委员会|办公厅|办公室|政府|中心|研究院|科学院|管委会|协会|"
    r"学会|联合会|日报|晚报|报社|杂志社|电视台|电台|新闻社|通讯社|在线|之窗|平台)$"
)
#: A title is cut at a weak separator without a site name after it only when the tail is at most
#: this long and the head at least twice as long ("…的“洛克菲勒”-搜狐财经", not "京津冀-长三角…").
MAX_SITE_TAIL = 12


def best_title(
    doc_title: str | None, og_title: str | None, h1s: list[str], site_names: list[str] | tuple[str, ...] = ()
) -> str | None:
    """The article's title without the site name.

    ``<title>`` (or og:title) is split on the usual separators (" - ", "_", "|", "»"); the
    site and section names at either end ("…网", "…频道", "….com", "科学技术部", "通知公告", or
    the page's declared site name) go, and the first remaining part is the candidate; a weak
    separator ("——", a dash between hanzi) cuts only a site name or a short tail. An ``<h1>``
    wins when it is clearly the same headline: equal to og:title, the start of ``<title>``, or the
    candidate itself give or take a prefix or suffix. A logo or blog name in an h1 does not.
    """
    names = [n for n in site_names if n]
    candidate = _clean_title(doc_title or "", names) or _clean_title(og_title or "", names)
    h1s = [h for h in sorted(h1s, key=len, reverse=True) if len(h) >= 2 and not _site_like(h, names)]
    for h1 in h1s:
        if h1 == og_title or (doc_title and doc_title.startswith(h1)):
            return h1
    og = _clean_title(og_title or "", names)
    if og:
        return og
    for h1 in h1s:
        if candidate and (candidate in h1 or (h1 in candidate and len(h1) >= 0.6 * len(candidate))):
            return h1
    doc_parts = _title_parts(doc_title or "")
    return candidate or (h1s[0] if h1s else None) or (doc_parts[0] if doc_parts else None)


def _site_like(part: str, site_names: list[str]) -> bool:
    """Whether a part of a title names a site, a section or the body that runs the site."""
    key = to_simplified(part)
    if _SITE_PART.search(key) or _ORG_PART.match(key):
        return True
    return any(part == n or (len(part) >= 2 and part in n) for n in site_names)


def _clean_title(title: str, site_names: list[str]) -> str | None:
    """A <title> without the site and section names at its ends (see :func:`best_title`)."""
    parts = _title_parts(title)
    had_site = False
    while len(parts) > 1 and _site_like(parts[-1], site_names):
        parts.pop()
        had_site = True
    while len(parts) > 1 and _site_like(parts[0], site_names):
        parts.pop(0)
        had_site = True
    for part in parts:
        cut = _cut_weak_suffix(part, site_names, had_site)
        if not _site_like(cut, site_names):
            return cut
    return None


def _cut_weak_suffix(part: str, site_names: list[str], had_site: bool) -> str:
    seps = list(_WEAK_TITLE_SPLIT.finditer(part))
    if not seps:
        return part
    head, tail = part[: seps[-1].start()].strip(), part[seps[-1].end() :].strip()
    # a site name after a weak separator is shorter than the title ("京津冀-长三角协同创新论坛" is
    # one title), unless the page declares it
    if head and tail and _site_like(tail, site_names) and (len(head) >= len(tail) or tail in site_names):
        return _cut_weak_suffix(head, site_names, True)
    lead, rest = part[: seps[0].start()].strip(), part[seps[0].end() :].strip()
    if lead and rest and _site_like(lead, site_names) and not _site_like(rest, site_names):
        return rest
    if not had_site and head and len(tail) <= MAX_SITE_TAIL and len(head) >= 2 * len(tail):
        return head
    return part


def _title_parts(title: str) -> list[str]:
    """The parts of a title between separators, without brackets around a whole part."""
    parts = (p.strip(" -_|:") for p in _TITLE_SPLIT.split(title) if p)
    return [re.sub(r"^【(.*)】$", r"\1", p) for p in parts if p]


# -- dates ----------------------------------------------------------------------------------------

_DATE = re.compile(
    r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?(?:\s*(\d{1,2})[:：](\d{2})(?:[:：](\d{2}))?)?"
)


def parse_date(value: str | None) -> str | None:
    """ISO form of the first date in a 日期/发布时间 value: "2024年5月6日 10:30" -> 2024-05-06T10:30:00."""
    if not value:
        return None
    m = _DATE.search(value)
    if not m:
        return None
    y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if not 1990 <= y <= date.today().year + 1:
        return None
    try:
        day = date(y, mo, d)
    except ValueError:
        return None
    if m.group(4):
        hh, mm, ss = int(m.group(4)), int(m.group(5)), int(m.group(6) or 0)
        if hh < 24 and mm < 60 and ss < 60:
            return f"{day.isoformat()}T{hh:02d}:{mm:02d}:{ss:02d}"
    return day.isoformat()


def stated_date(page_meta: dict[str, str]) -> str | None:
    """The date the page's own labels state (发布日期, else 成文日期), parsed."""
    return parse_date(page_meta.get("date")) or parse_date(page_meta.get("written"))


def _head_date(tree: HtmlElement, url: str | None) -> str | None:
    """The publication date by htmldate (meta tags, JSON-LD, URL, visible dates; fast mode)."""
    try:
        from htmldate import find_date

        found = find_date(tree, url=url, extensive_search=False, original_date=True)
    except Exception:  # htmldate on a hostile page must not cost us the article
        return None
    return found if isinstance(found, str) else None


# -- document number ------------------------------------------------------------------------------

_OPEN = re.escape("〔[［(（【")
_CLOSE = re.escape("〕]］)）】")
# 国科发〔2024〕12号, 国科办函区[2024]3号, 川科规（2024）第5号: issuer's abbreviation, the year in
# brackets (hexagonal 〔〕 by the standard, square or round ones on many sites), the serial.
_NUMBER_SHAPE = re.compile(
    rf"^([\u4e00-\u9fff]{{1,16}})\s*[{_OPEN}]\s*((?:19|20)\d{{2}})\s*[{_CLOSE}]\s*(第?)\s*(\d{{1,5}})\s*([号號])$"
)
# A labelled value may also be a decree's number (科学技术部令第19号, 公告2024年第5号).
_LABELLED_NUMBER = re.compile(r"^[\u4e00-\u9fff0-9〔〕\[\]［］()（）【】第年\s]{2,40}[号號]$")
_NO_NUMBER = frozenset({"无", "暂无", "-", "—", "/", "空"})


def document_number(value: str | None) -> str | None:
    """The official document number of a 发文字号/文号 value, in its standard form (brackets
    around the year made 〔〕, digits ASCII, blanks removed), or None when the value is none."""
    if not value:
        return None
    value = _WS.sub("", unicodedata.normalize("NFKC", value)).strip("：:")
    if not value or value in _NO_NUMBER:
        return None
    shaped = _NUMBER_SHAPE.match(value)
    if shaped:
        issuer, year, ordinal, serial, hao = shaped.groups()
        return f"{issuer}〔{year}〕{ordinal}{int(serial)}{hao}"
    return value if _LABELLED_NUMBER.match(value) else None


#: A body line that is only a document number, within this many lines of the top (a notice
#: sets its number under its headline).
NUMBER_LINE_WITHIN = 6


def _number_line(lines: list[Line]) -> str | None:
    """The document number a notice sets on its own line near the top of its text."""
    for line in lines[:NUMBER_LINE_WITHIN]:
        if len(line.key) > 4 * 30:
            continue  # NFKC composes at most four characters into one (ᾅ): a paragraph, not a number
        key = unicodedata.normalize("NFKC", line.key)
        if len(key) <= 30 and _NUMBER_SHAPE.match(_WS.sub("", key)):
            return document_number(key)
    return None


# -- agency, author, language ---------------------------------------------------------------------

_NO_AGENCY = frozenset(
    {
        "",
        "未知",
        "本站",
        "本网",
        "原创",
        "网络",
        "互联网",
        "佚名",
        "不详",
        "admin",
        "管理员",
        "本站原创",
        "转载",
        "转载文章",
    }
)


def _clean_value(value: str | None) -> str | None:
    if not value:
        return None
    value = value.strip(" 　:：()（）[]【】")
    return value or None


def _person(value: str | None) -> str | None:
    """An author name, unless it says nothing (佚名, 未知, admin...)."""
    value = _clean_value(value)
    if value is None or value.lower() in _NO_AGENCY:
        return None
    return value


def _agency(value: str | None) -> str | None:
    """The 来源 of the page, unless it says nothing (未知, 本站, 转载...)."""
    value = _clean_value(value)
    if value is None or value.lower() in _NO_AGENCY:
        return None
    return value


_NOT_HANZI = re.compile("[^\u4e00-\u9fff]+")


def guess_lang(text: str, declared: str | None = None) -> str | None:
    """zh-Hans / zh-Hant by how many hanzi GB 2312 lacks (Traditional forms); else ja/ko by
    script, else the page's declared language."""
    hanzi = _NOT_HANZI.sub("", text[:3000])
    if len(hanzi) >= 10:
        # every hanzi GB 2312 lacks becomes one b"?" (no hanzi encodes to it)
        traditional = hanzi.encode("gb2312", "replace").count(b"?")
        return "zh-Hant" if traditional > 0.08 * len(hanzi) else "zh-Hans"
    sample = text[:3000]
    if any("\u3040" <= c <= "\u30ff" for c in sample):
        return "ja"
    if any("\uac00" <= c <= "\ud7af" for c in sample):
        return "ko"
    if declared:
        return declared.split(",")[0].strip() or None
    return None
