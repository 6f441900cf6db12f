"""Attachments: the document files (PDF, DOC/DOCX, XLS/XLSX, WPS, OFD, ZIP, RAR) a notice links.

On Chinese government portals the policy itself is often a file: a short notice ends with
``附件：…实施细则.pdf``. Three steps, each a plain function the crawl drivers call:

* :func:`find_attachments` (run by :func:`crawler.extract.extract`, so by
  :func:`crawler.pipeline.process_page`): the links of the article's body or of its 附件 block
  that lead to a document file, by extension (in the path, or in a ``filename=`` parameter of a
  CMS download script) or by the URL shapes of download scripts. Links elsewhere on the page
  (menus, "download centre" sidebars) are not the article's attachments.
* :func:`fetch_attachment`: download one, through the same :class:`~crawler.fetch.Fetcher` as
  the pages (robots.txt, address guard, redirects checked hop by hop), in its document mode
  (:attr:`~crawler.fetch.Accept.DOCUMENT`), capped in size.
* :func:`attachment_text` (run by :func:`crawler.pipeline.process_attachment`, in the
  extraction process and within its time limit): the text of a PDF (pypdfium2) or DOCX (the
  ZIP's ``word/document.xml`` read with lxml); the other types are kept without text.

Why these libraries (measured on Chinese PDFs and a DOCX made from the sample web's 24
articles, 12,138 characters, 9 A4 pages; CPU time per page, and character recall/precision of
the text against the known one, whitespace ignored):

=========================  ======================  ======================  ==========
PDF                        embedded TrueType font  standard CID font       accuracy
=========================  ======================  ======================  ==========
pypdfium2 (PDFium)         4.0 ms/page             7.4 ms/page             1.000/1.000
pypdf                      74.8 ms/page            16.6 ms/page            1.000/1.000
pdfminer.six               126.6 ms/page           64.7 ms/page            1.000/1.000
=========================  ======================  ======================  ==========

All three read both kinds exactly; PDFium is 4-30x faster (and a crawl meets many long PDFs),
is Apache-2.0/BSD licensed and parses in C++ (a broken file raises ``PdfiumError``; one that
crashes it costs only the extraction process, which the drivers replace). For DOCX, python-docx
took 29.0 ms per document against 1.3 ms for reading ``word/document.xml`` with lxml (already a
dependency), which also reads the text of tables and text boxes that python-docx's
``paragraphs`` leaves out; both were exact.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

__all__ = [
    "TEXT_TYPES",
    "TYPES",
    "AttachmentFile",
    "AttachmentLink",
    "attachment_text",
    "fetch_attachment",
    "find_attachments",
    "sniff_type",
]
from urllib.parse import parse_qsl, unquote, urljoin, urlsplit

from lxml import etree
from lxml.html import HtmlElement

from crawler.document import AttachmentLink, utcnow
from crawler.errors import EmptyExtraction, InvalidURL, UnreadableAttachment
from crawler.joined import Joined
from crawler.normalize import normalize_text
from crawler.urls import DEFAULT_MAX_URL_LENGTH, canonicalize

if TYPE_CHECKING:  # the extraction processes import this module; they need no HTTP client
    from crawler.fetch import Exchange, Fetcher

#: The attachment types, by file extension. ``doc``/``xls``/``wps`` are OLE2 files, ``docx``/
#: ``xlsx``/``ofd`` ZIP packages.
TYPES: tuple[str, ...] = ("pdf", "doc", "docx", "xls", "xlsx", "wps", "ofd", "zip", "rar")
#: Types whose text is extracted.
TEXT_TYPES: frozenset[str] = frozenset({"pdf", "docx"})

_EXTENSION = re.compile(r"\.(pdf|docx?|xlsx?|wps|ofd|zip|rar)$", re.IGNORECASE)
# The download scripts of Chinese CMSs: /module/download/downfile.jsp?filename=…,
# DownLoad.aspx?FileID=…, /attach/download?id=…, getFile.do?id=…, fileDownload?…
_DOWNLOAD_SCRIPT = re.compile(
    r"(?:^|/)(?:down(?:load)?(?:file)?|getfile|file_?down(?:load)?|attach(?:ment)?(?:_?down(?:load)?)?)"
    r"(?:\.(?:jsp|aspx?|php|do|action|ashx|cgi))?$",
    re.IGNORECASE,
)
# "附件：", "附件1：", "相关附件", "附件下载", "下载附件", "相关文件下载", "附："
_LABEL = re.compile(r"^\s*(?:相关|下载)?附\s*件|^\s*相关(?:文件|下载)|^\s*附\s*[:：]")
# class/id words of attachment blocks (附件 = fujian; "xgfj" 相关附件)
_BLOCK_ATTR = re.compile(r"fujian|attach|appendix|enclosure|xgfj|\bfj\b|\bfj[-_]|[-_]fj\b", re.IGNORECASE)
# A document extension, or a download script's words, in a lowercased raw href: only such links
# are resolved. Substring tests, not a regex: an alternation regex tried at every position of the
# hrefs was most of this module's time (0.9 of 1.5 ms on a corpus page).
_MAYBE_FILE = (".pdf", ".doc", ".xls", ".wps", ".ofd", ".zip", ".rar", "down", "attach", "getfile")


def _maybe_file(href: str) -> bool:
    lowered = href.lower()
    return any(word in lowered for word in _MAYBE_FILE)


def file_like(raw_hrefs: Sequence[str]) -> list[int]:
    """The indexes, in order, of the hrefs that pass :func:`_maybe_file`, found by one search of
    each word over all of them (a page's ~150 links tested one by one cost 0.3 ms)."""
    joined = "\n".join(raw_hrefs)
    if joined.isascii():  # lowering keeps every length: lower the joined text at once
        hrefs = Joined(raw_hrefs, "\n", text=joined.lower())
    else:  # lowered one by one: lower() may change a string's length ("İ"), and offsets must hold
        hrefs = Joined(list(map(str.lower, raw_hrefs)), "\n")
    hits: set[int] = set()
    for word in _MAYBE_FILE:  # no word holds a newline: a hit lies inside one href
        at = hrefs.text.find(word)
        while at != -1:
            index = hrefs.index_at(at)
            hits.add(index)
            at = hrefs.text.find(word, hrefs.start_of(index + 1))  # this href is in: the next one
    return sorted(hits)


_BLOCK_TAGS = frozenset({"p", "div", "li", "ul", "ol", "td", "tr", "table", "dd", "dl", "span", "section"})
_WS = re.compile(r"\s+")
#: Ancestors of a link searched for an attachment block (label or class).
_BLOCK_DEPTH = 4


@dataclass(slots=True)
class AttachmentCandidate:
    link: AttachmentLink
    in_block: bool  # inside an 附件 block (label or class), whether or not the text keeps it


def type_of_url(url: str) -> tuple[str | None, bool]:
    """(type named by the URL, whether it is a download script's URL).

    ``/files/a.PDF`` -> ("pdf", False); ``/downfile.jsp?filename=a.docx`` -> ("docx", True);
    ``/DownLoad.aspx?FileID=12`` -> (None, True); ``/a.html`` -> (None, False).
    """
    parts = urlsplit(url)
    path = unquote(parts.path)
    script = bool(_DOWNLOAD_SCRIPT.search(path.rstrip("/")))
    found = _EXTENSION.search(path)
    if found:
        return found.group(1).lower(), script
    if parts.query:
        for _key, value in parse_qsl(parts.query, keep_blank_values=True):
            found = _EXTENSION.search(value.strip())
            if found:
                return found.group(1).lower(), True
    return None, script


def base_url(tree: HtmlElement, page_url: str) -> str:
    """The URL the page's relative links resolve against (its ``<base href>``, else itself)."""
    base = tree.find("head/base")  # where the HTML parser always puts it
    return resolve_base(page_url, base.get("href") if base is not None else None)


def resolve_base(page_url: str, base_href: str | None) -> str:
    """The page's URL resolved against its ``<base href>`` (either tree's), or the URL itself."""
    href = (base_href or "").strip()
    return urljoin(page_url, href) if href else page_url


def _squash(text: str) -> str:
    return _WS.sub("", text)


def _in_block(anchor: HtmlElement) -> bool:
    """Whether a link sits in an attachment block: an ancestor (a few levels up) with an
    attachment class/id, or whose text starts with an 附件 label, or that follows a short 附件
    label line (with only other link lines between them)."""
    el = anchor
    for _ in range(_BLOCK_DEPTH):
        parent = el.getparent()
        if parent is None or parent.tag in ("body", "html"):
            return False
        el = parent
        if el.tag not in _BLOCK_TAGS:
            continue
        if _BLOCK_ATTR.search(f"{el.get('class', '')} {el.get('id', '')}"):
            return True
        head = el.text_content()[:40]
        if _LABEL.match(head):
            return True
        if _after_label(el):
            return True
    return False


#: Sibling lines searched back for an 附件 label above a list of link lines.
_LABEL_LOOKBACK = 8


def _after_label(el: HtmlElement) -> bool:
    """Whether ``el`` follows a short 附件 label line, with only link lines between them."""
    previous = el.getprevious()
    for _ in range(_LABEL_LOOKBACK):
        if previous is None or not isinstance(previous.tag, str):
            return False
        text = previous.text_content()
        if len(text) <= 20 and _LABEL.match(text):
            return True
        links = previous.findall(".//a")
        if not links or len(_squash(text)) > len(_squash("".join(a.text_content() for a in links))) + 8:
            return False  # a line of prose, not one more file of the list
        previous = previous.getprevious()
    return False


def attachment_candidates(
    root: HtmlElement,
    page_url: str | None,
    *,
    base: str | None = None,
    max_url_length: int = DEFAULT_MAX_URL_LENGTH,
) -> list[AttachmentCandidate]:
    """Every link under ``root`` to a document file, in page order, once per URL (see the
    module doc for what counts); :func:`select_attachments` keeps the article's own. ``base``:
    what relative links resolve against (default: :func:`base_url` of ``root``)."""
    if not page_url:
        return []
    base = base or base_url(root, page_url)
    found: dict[str, AttachmentCandidate] = {}
    anchors = list(root.iter("a"))
    for index in file_like([a.get("href") or "" for a in anchors]):
        anchor = anchors[index]
        typed = _typed_url(anchor.get("href") or "", base, max_url_length)
        if typed is None:
            continue
        url, kind, script = typed
        title = _WS.sub(" ", anchor.text_content()).strip() or (anchor.get("title") or "").strip()
        if kind is None and script:
            named = _EXTENSION.search(title)  # "申报书模板.docx" behind DownLoad.aspx?FileID=12
            kind = named.group(1).lower() if named else None
        elif kind is None:
            continue
        if not title:
            title = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
        in_block = _in_block(anchor)
        if kind is None and not in_block:
            continue  # a download script's link outside an 附件 block: a "download centre"
        if url not in found:
            found[url] = AttachmentCandidate(AttachmentLink(url, title, kind), in_block)
        elif in_block:
            found[url].in_block = True
    return list(found.values())


def _typed_url(href: str, base: str, max_url_length: int) -> tuple[str, str | None, bool] | None:
    """A link's canonical URL and :func:`type_of_url`, or None for a link that is no file's."""
    href = href.strip()
    if href.startswith(("#", "javascript:", "mailto:")):
        return None
    try:
        url = canonicalize(urljoin(base, href), max_length=max_url_length)
    except (InvalidURL, ValueError):
        return None
    return (url, *type_of_url(url))


def may_link_files(hrefs: Sequence[str], base: str, *, max_url_length: int = DEFAULT_MAX_URL_LENGTH) -> bool:
    """Whether any of these hrefs could be an attachment candidate's: its URL names a document
    type or a download script (:func:`attachment_candidates` then looks at the anchor)."""
    origin = urlsplit(base)[:2]
    for index in file_like(hrefs):
        href = hrefs[index]
        # a site's pages repeat their chrome's links ("/app/download.htm"): the verdict on an
        # href that resolves against the base's scheme and host alone is remembered
        key = (origin, href, max_url_length) if _ORIGIN_ONLY.match(href) else None
        verdict = _FILE_VERDICTS.get(key) if key else None
        if verdict is None:
            typed = _typed_url(href, base, max_url_length)
            verdict = typed is not None and (typed[1] is not None or typed[2])
            if key:
                if len(_FILE_VERDICTS) >= FILE_VERDICTS_SIZE:
                    _FILE_VERDICTS.clear()
                _FILE_VERDICTS[key] = verdict
        if verdict:
            return True
    return False


#: :func:`may_link_files`'s verdicts by (base scheme and host, href, URL length limit); bounded:
#: cleared when full.
_FILE_VERDICTS: dict[tuple[tuple[str, str], str, int], bool] = {}
FILE_VERDICTS_SIZE = 4096
#: An href that resolves against the base's scheme and host alone: absolute, or from the root
#: (not "//host", not one whose authority is empty: those need more of the base, see links.py).
_ORIGIN_ONLY = re.compile(r"\s*(?:/(?!/)|https?://[^/?#\s])", re.IGNORECASE)


def select_attachments(candidates: Iterable[AttachmentCandidate], text: str) -> list[AttachmentLink]:
    """The candidates that belong to the article: in an 附件 block, or linked from the body
    (their link text is in the extracted text)."""
    squashed = _squash(text)
    kept = []
    for candidate in candidates:
        title = _squash(candidate.link.title)
        if candidate.in_block or (len(title) >= 2 and title in squashed):
            kept.append(candidate.link)
    return kept


def find_attachments(
    root: HtmlElement, page_url: str | None, text: str, *, max_url_length: int = DEFAULT_MAX_URL_LENGTH
) -> list[AttachmentLink]:
    """The article's attachments: :func:`attachment_candidates` then :func:`select_attachments`.
    Run it on the tree before links are unwrapped (extraction strips the 附件 line's link)."""
    return select_attachments(attachment_candidates(root, page_url, max_url_length=max_url_length), text)


# -- download -------------------------------------------------------------------------------------


@dataclass(slots=True)
class AttachmentFile:
    """A downloaded attachment: the bytes (decoded from any Content-Encoding), their SHA-256,
    and the request/response for the raw archive."""

    url: str
    final_url: str
    content_type: str
    body: bytes
    sha256: str
    fetched_at: datetime = field(default_factory=utcnow)
    exchange: Exchange | None = None

    @property
    def size(self) -> int:
        return len(self.body)


async def fetch_attachment(fetcher: Fetcher, url: str, *, max_bytes: int | None = None) -> AttachmentFile:
    """Download one attachment with the crawl's fetcher (robots.txt, address guard, redirects),
    at most ``max_bytes`` (default: the fetcher's ``max_attachment_bytes``). Raises the
    fetcher's errors (:class:`~crawler.errors.BodyTooLarge`, :class:`~crawler.errors.NotADocument`
    for a web page, ...); a host's politeness (its delay and slots) is the caller's, as for pages."""
    from crawler.fetch import Accept

    result = await fetcher.fetch(url, accept=Accept.DOCUMENT, max_bytes=max_bytes)
    return AttachmentFile(
        url=url,
        final_url=result.final_url,
        content_type=result.content_type,
        body=result.body,
        sha256=hashlib.sha256(result.body).hexdigest(),
        exchange=result.exchange,
    )


# -- type and text --------------------------------------------------------------------------------

_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_MIME_TYPES = {
    "application/pdf": "pdf",
    "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "application/vnd.ms-works": "wps",
    "application/kswps": "wps",
    "application/wps-office.wps": "wps",
    "application/ofd": "ofd",
    "application/zip": "zip",
    "application/x-zip-compressed": "zip",
    "application/x-rar-compressed": "rar",
    "application/vnd.rar": "rar",
}


def sniff_type(body: bytes, declared: str | None = None, content_type: str | None = None) -> str | None:
    """The file's type from its bytes, then the link's declared type, then its Content-Type.

    The bytes decide what they can (a ``.doc`` link that serves a PDF is a PDF): PDF, RAR, and
    for ZIP packages which one (DOCX, XLSX, OFD or a plain ZIP). OLE2 files (.doc, .xls, .wps)
    look alike: the declared type is kept when it is one of them.
    """
    head = body[:8]
    if head.startswith(b"%PDF-") or b"%PDF-" in body[:1024]:
        return "pdf"
    if head.startswith(b"Rar!\x1a\x07"):
        return "rar"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(body)) as package:
                names = set(package.namelist())
        except (zipfile.BadZipFile, ValueError, OSError):
            return declared if declared in ("zip", "docx", "xlsx", "ofd") else "zip"
        if "word/document.xml" in names:
            return "docx"
        if "xl/workbook.xml" in names:
            return "xlsx"
        if "OFD.xml" in names:
            return "ofd"
        return "zip"
    if head.startswith(_OLE2):
        return declared if declared in ("doc", "xls", "wps") else "doc"
    if declared:
        return declared
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    return _MIME_TYPES.get(mime)


#: Pages of a PDF read for text; the rest of a huge file is left out.
MAX_PDF_PAGES = 2000
#: Characters of text kept from one attachment.
MAX_TEXT_CHARS = 2_000_000
#: Uncompressed size of a DOCX's document.xml read at most (a ZIP bomb stops here).
MAX_DOCX_XML_BYTES = 64_000_000


def attachment_text(kind: str | None, body: bytes) -> str | None:
    """The normalized text of a PDF or DOCX (paragraphs on lines); None for other types.

    Raises :class:`~crawler.errors.UnreadableAttachment` for a file that cannot be parsed and
    :class:`~crawler.errors.EmptyExtraction` for one without text (a scanned PDF).
    """
    if kind == "pdf":
        text = pdf_text(body)
    elif kind == "docx":
        text = docx_text(body)
    else:
        return None
    text = normalize_text(text)[:MAX_TEXT_CHARS]
    if not text:
        raise EmptyExtraction(f"the {kind} file has no text (a scan?)")
    return text


def pdf_text(data: bytes) -> str:
    """The text of a PDF, page by page, its wrapped lines joined into paragraphs (pypdfium2)."""
    import pypdfium2 as pdfium  # imported where used: only extraction processes load PDFium

    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        raise UnreadableAttachment(f"not a readable PDF: {exc}") from exc
    pages: list[str] = []
    try:
        for index in range(min(len(document), MAX_PDF_PAGES)):
            page = document[index]
            try:
                textpage = page.get_textpage()
                try:
                    pages.append(join_wrapped_lines(textpage.get_text_range()))
                finally:
                    textpage.close()
            finally:
                page.close()
    except pdfium.PdfiumError as exc:
        raise UnreadableAttachment(f"PDF page {len(pages) + 1} cannot be read: {exc}") from exc
    finally:
        document.close()
    return "\n".join(pages)


_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# A line ending like this ends its paragraph even when it fills the line.
_PARAGRAPH_END = ("。", "！", "？", "：", "；", "!", "?", ":", ";", "…", "”", "）", ")")
#: A line at least this share of the page's full line length is wrapped, not a paragraph's end.
_FULL_LINE_SHARE = 0.85


def _width(line: str) -> int:
    """Display width: CJK and full-width characters count two."""
    return sum(2 if ord(c) >= 0x2E80 else 1 for c in line)


def join_wrapped_lines(page: str) -> str:
    """Join the lines a PDF wrapped at the page width back into paragraphs.

    A line is wrapped when it is about as wide as the page's full lines (the 90th percentile of
    its line widths) and does not end a sentence; CJK lines join without a space.
    """
    lines = [line.strip() for line in _LINE_BREAK.split(page)]
    lines = [line for line in lines if line]
    if len(lines) < 2:
        return "\n".join(lines)
    widths = sorted(_width(line) for line in lines)
    full = widths[int(0.9 * (len(widths) - 1))]
    out: list[str] = []
    current = ""
    for line in lines:
        if current:
            joiner = "" if (ord(current[-1]) >= 0x2E80 or ord(line[0]) >= 0x2E80) else " "
            current += joiner + line
        else:
            current = line
        if _width(line) < _FULL_LINE_SHARE * full or line.endswith(_PARAGRAPH_END):
            out.append(current)
            current = ""
    if current:
        out.append(current)
    return "\n".join(out)


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_W_P, _W_T, _W_TAB, _W_BR, _W_CR = (f"{_W}{n}" for n in ("p", "t", "tab", "br", "cr"))
_XML_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_comments=True
)


def docx_text(data: bytes) -> str:
    """The text of a DOCX: every paragraph of ``word/document.xml`` in order (tables and text
    boxes included), deleted revisions left out."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package:
            info = package.getinfo("word/document.xml")
            if info.file_size > MAX_DOCX_XML_BYTES:
                raise UnreadableAttachment(f"word/document.xml is {info.file_size} bytes uncompressed")
            xml = package.read(info)
    except UnreadableAttachment:
        raise
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, RuntimeError, EOFError) as exc:
        raise UnreadableAttachment(f"not a readable DOCX: {type(exc).__name__}: {exc}") from exc
    try:
        root = etree.fromstring(xml, _XML_PARSER)
    except etree.XMLSyntaxError as exc:
        raise UnreadableAttachment(f"DOCX XML is broken: {exc}") from exc
    paragraphs = []
    for paragraph in root.iter(_W_P):
        parts = []
        for node in paragraph.iter(_W_T, _W_TAB, _W_BR, _W_CR):
            # a text box's paragraphs sit inside a paragraph: each is read once, as its own
            if next(node.iterancestors(_W_P), None) is not paragraph:
                continue
            parts.append(node.text or "" if node.tag == _W_T else ("\t" if node.tag == _W_TAB else "\n"))
        paragraphs.append("".join(parts))
    return "\n".join(paragraphs)
