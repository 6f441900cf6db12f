"""The sample web's attachment files, made on the fly: a PDF and a DOCX with Chinese text, a WPS.

No font file and no document library: the PDF shows its text in STSong-Light, one of the
standard Chinese CID fonts every PDF reader has (nothing embedded, so a page of text is ~2 kB),
encoded UniGB-UCS2-H as Word and WPS exports without embedding do; the DOCX is the three parts a
Word document needs, zipped with a fixed date so its bytes (and SHA-256) never change; the WPS
is an OLE2 header and filler (WPS Office's binary format: kept, never read). The text of each
file is its ground truth: :func:`file_text`.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from html import escape

#: CJK characters per PDF line (12 pt on A4 with 72 pt margins) and lines per page.
PDF_LINE_CHARS = 36
PDF_PAGE_LINES = 34

CONTENT_TYPES = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "wps": "application/vnd.ms-works",
}


@dataclass(frozen=True, slots=True)
class SampleFile:
    """An attachment of the sample web: ``name`` keys its bytes (two pages linking files of one
    name link the same bytes), ``title`` its link text, ``type`` its extension, ``paragraphs``
    its text (empty for a WPS, whose text is never read)."""

    name: str
    title: str
    type: str
    paragraphs: tuple[str, ...] = ()

    @property
    def text(self) -> str | None:
        """What extraction should return: the title line, then one line per paragraph."""
        return "\n".join((self.title, *self.paragraphs)) if self.type in ("pdf", "docx") else None

    @property
    def body(self) -> bytes:
        return file_bytes(self)


def _pdf_lines(paragraphs: Sequence[str]) -> list[str]:
    lines: list[str] = []
    for paragraph in paragraphs:
        lines += [paragraph[i : i + PDF_LINE_CHARS] for i in range(0, len(paragraph), PDF_LINE_CHARS)]
    return lines


def _ucs2(text: str) -> bytes:
    return b"<" + text.encode("utf-16-be").hex().upper().encode() + b">"


def cjk_pdf_bytes(title: str, paragraphs: Sequence[str]) -> bytes:
    """A valid PDF (correct xref) of a centred title and the paragraphs, wrapped at
    :data:`PDF_LINE_CHARS` characters, as many A4 pages as they need."""
    lines = _pdf_lines(paragraphs)
    pages = [lines[i : i + PDF_PAGE_LINES] for i in range(0, len(lines), PDF_PAGE_LINES)] or [[]]
    font = [
        b"<< /Type /Font /Subtype /Type0 /BaseFont /STSong-Light-UniGB-UCS2-H /Encoding /UniGB-UCS2-H "
        b"/DescendantFonts [4 0 R] >>",
        b"<< /Type /Font /Subtype /CIDFontType0 /BaseFont /STSong-Light "
        b"/CIDSystemInfo << /Registry (Adobe) /Ordering (GB1) /Supplement 2 >> /FontDescriptor 5 0 R "
        b"/DW 1000 /W [1 95 500] >>",
        b"<< /Type /FontDescriptor /FontName /STSong-Light /Flags 6 /FontBBox [-25 -254 1000 880] "
        b"/ItalicAngle 0 /Ascent 880 /Descent -120 /CapHeight 880 /StemV 93 >>",
    ]
    objects: list[bytes] = [b"<< /Type /Catalog /Pages 2 0 R >>", b"", *font]  # 1, 2, 3-5
    kids = []
    for number, page_lines in enumerate(pages):
        ops = [b"BT /F1 12 Tf 20 TL"]
        if number == 0:
            x = (595 - 16 * len(title)) / 2
            ops.append(b"/F1 16 Tf 1 0 0 1 %.1f 780 Tm %s Tj /F1 12 Tf" % (x, _ucs2(title)))
            ops.append(b"1 0 0 1 72 740 Tm")
        else:
            ops.append(b"1 0 0 1 72 780 Tm")
        ops += [_ucs2(line) + b" Tj T*" for line in page_lines]
        ops.append(b"ET")
        stream = b"\n".join(ops)
        content = len(objects) + 1
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
        kids.append(len(objects) + 1)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents %d 0 R "
            b"/Resources << /Font << /F1 3 0 R >> >> >>" % content
        )
    refs = b" ".join(b"%d 0 R" % k for k in kids)
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (refs, len(kids))
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, obj in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, obj)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


_DOCX_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
    "</Types>"
)
_DOCX_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    'Target="word/document.xml"/></Relationships>'
)
_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def _docx_paragraph(text: str, *, title: bool = False) -> str:
    props = '<w:pPr><w:jc w:val="center"/></w:pPr>' if title else ""
    font = '<w:rPr><w:rFonts w:eastAsia="仿宋_GB2312"/><w:sz w:val="32"/></w:rPr>'
    # two runs, as Word splits them, so that a reader must join runs
    half = len(text) // 2
    runs = "".join(
        f'<w:r>{font}<w:t xml:space="preserve">{escape(part, quote=False)}</w:t></w:r>'
        for part in (text[:half], text[half:])
        if part
    )
    return f"<w:p>{props}{runs}</w:p>"


def docx_bytes(title: str, paragraphs: Sequence[str]) -> bytes:
    """A minimal valid DOCX of a centred title and the paragraphs (same bytes on every call)."""
    body = _docx_paragraph(title, title=True) + "".join(_docx_paragraph(p) for p in paragraphs)
    document = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<w:document xmlns:w="{_W}"><w:body>{body}<w:sectPr/></w:body></w:document>'
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as package:
        for name, text in (
            ("[Content_Types].xml", _DOCX_TYPES),
            ("_rels/.rels", _DOCX_RELS),
            ("word/document.xml", document),
        ):
            info = zipfile.ZipInfo(name, date_time=(2024, 5, 20, 9, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            package.writestr(info, text.encode("utf-8"))
    return out.getvalue()


def wps_bytes(title: str) -> bytes:
    """An OLE2 compound-file header and filler: a WPS file as far as its bytes' type goes."""
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(16) + b"\x3e\x00\x03\x00\xfe\xff\x09\x00"
    return (header + title.encode("utf-16-le")).ljust(1536, b"\x00")


@cache
def file_bytes(file: SampleFile) -> bytes:
    if file.type == "pdf":
        return cjk_pdf_bytes(file.title, file.paragraphs)
    if file.type == "docx":
        return docx_bytes(file.title, file.paragraphs)
    if file.type == "wps":
        return wps_bytes(file.title)
    raise ValueError(f"no sample file of type {file.type!r}")
