"""Turn a page's bytes into text, choosing the charset the way a careful browser would.

Chinese sites lie about their charset often enough that no declaration is trusted blindly:
pages say gb2312 and are UTF-8, say nothing and are GBK, or use characters gb2312 lacks. So
every candidate is *verified*: it must decode (strictly, or with a handful of damaged bytes) and
the result must not look like mojibake (:func:`crawler.normalize.garble_score`).

Order: BOM; then UTF-8 when the bytes are valid UTF-8 with multibyte sequences (GBK or Big5
text is practically never valid UTF-8, so this beats any declaration); then the HTTP charset,
the ``<meta>`` charset, the source's hint; then a detector (charset-normalizer) and the CJK
charsets; finally UTF-8 with replacement. :func:`decode_html` never raises.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from crawler.normalize import COMMON_HANZI, GARBLED_THRESHOLD, garble_score

#: How far into the body we look for ``<meta charset>``. WHATWG prescans 1024 bytes; real
#: Chinese portals put kilobytes of scripts and styles first, so we look further.
META_SCAN_BYTES = 8192
#: Share of damaged characters (U+FFFD after a lenient decode) we accept from a charset that
#: otherwise fits: saved pages often have a truncated sequence or a stray byte or two.
MAX_DAMAGE = 0.003
#: Up to this share of damage a UTF-8 decode is tried again with its invalid runs read as GBK
#: (a fragment pasted from a GBK page); a GBK page read as UTF-8 is damaged far beyond it.
MIXED_DAMAGE = 0.05

_BOMS: tuple[tuple[bytes, str], ...] = (
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)

_META_CHARSET = re.compile(
    rb"""<meta[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9_\-:.]+)|<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9_\-:.]+)""",
    re.IGNORECASE,
)

# Labels read as a superset, as browsers do: gb2312/gbk pages use characters outside those sets.
_SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "cp936": "gb18030",
    "big5": "big5hkscs",
    "cp950": "big5hkscs",
    "iso8859-1": "cp1252",
    "latin-1": "cp1252",
    "ascii": "cp1252",
}
_ALIASES = {
    "x-gbk": "gbk",
    "gb_2312-80": "gb2312",
    "gb_2312": "gb2312",
    "csgb2312": "gb2312",
    "x-euc-cn": "gb2312",
    "euc-cn": "gb2312",
    "windows-936": "gbk",
    "x-big5": "big5",
    "cn-big5": "big5",
    "x-x-big5": "big5",
    "unicode": "utf-8",
}
# Single-byte labels that a CJK page often carries by mistake (server defaults).
_WEAK = frozenset({"cp1252"})
# Codecs that are not charsets of web pages.
_NOT_CHARSETS = frozenset(
    {"idna", "punycode", "raw-unicode-escape", "unicode-escape", "undefined", "mbcs", "oem"}
)


@dataclass(slots=True, frozen=True)
class Decoded:
    """The text of a page, the codec that produced it, and which step chose that codec."""

    text: str
    encoding: str
    method: str  # "bom", "http", "meta", "hint", "detected" or "fallback"


def normalize_charset(label: str | None) -> str | None:
    """The Python codec we read a declared charset label with, or None if unusable."""
    if not label:
        return None
    clean = label.strip().strip("\"'").strip().lower()
    clean = _ALIASES.get(clean, clean)
    try:
        info = codecs.lookup(clean)
    except (LookupError, ValueError, TypeError):
        return None
    name = info.name
    if name in _NOT_CHARSETS or not getattr(info, "_is_text_encoding", True):
        return None
    return _SUPERSETS.get(name, name)


def find_meta_charset(body: bytes) -> str | None:
    """The charset label of the first ``<meta>`` (or XML declaration) near the top of the page."""
    match = _META_CHARSET.search(body, 0, META_SCAN_BYTES)
    if not match:
        return None
    label = match.group(1) or match.group(2)
    return label.decode("ascii", "replace") if label else None


def decode_html(body: bytes, http_charset: str | None = None, hint: str | None = None) -> Decoded:
    """Decode a fetched page. Never raises: the worst case is UTF-8 with replacement."""
    try:
        return _decode(bytes(body), http_charset, hint)
    except Exception:
        try:
            data = bytes(body)
        except Exception:
            data = b""
        return Decoded(data.decode("utf-8", "replace"), "utf-8", "fallback")


def _decode(body: bytes, http_charset: str | None, hint: str | None) -> Decoded:
    for bom, encoding in _BOMS:
        if body.startswith(bom):
            return Decoded(body[len(bom) :].decode(encoding, "replace"), encoding, "bom")

    declared: list[tuple[str, str]] = []  # (method, codec), in order of authority
    for method, label in (("http", http_charset), ("meta", find_meta_charset(body)), ("hint", hint)):
        codec = normalize_charset(label)
        if codec and method == "meta" and codec.startswith(("utf-16", "utf-32")):
            codec = "utf-8"  # a meta readable as ASCII is not in UTF-16 (WHATWG)
        if codec:
            declared.append((method, codec))

    if body.isascii():
        for method, codec in declared:
            if not codec.startswith(("utf-16", "utf-32")):
                return Decoded(body.decode("ascii"), codec, method)
        return Decoded(body.decode("ascii"), "ascii", "detected")

    # Valid UTF-8 with multibyte sequences, or UTF-8 with a few damaged bytes: UTF-8.
    utf8 = _lenient(body, "utf-8")
    if utf8 is not None:
        method = next((m for m, codec in declared if codec == "utf-8"), "detected")
        return Decoded(utf8, "utf-8", method)

    for method, codec in declared:
        text = _verified(body, codec)
        if text is not None:
            return Decoded(text, codec, method)

    best = _detect(body)
    if best is not None:
        return Decoded(best[1], best[0], "detected")
    return Decoded(body.decode("utf-8", "replace"), "utf-8", "fallback")


def _lenient(body: bytes, codec: str) -> str | None:
    """Decode, tolerating a few damaged bytes; None if it does not fit."""
    try:
        return body.decode(codec)
    except UnicodeDecodeError:
        pass
    except (LookupError, ValueError, TypeError):
        return None
    text = body.decode(codec, "replace")
    damaged = text.count("\ufffd")
    nonascii = len(text) - len(text.encode("ascii", "ignore"))
    if codec == "utf-8" and damaged <= MIXED_DAMAGE * nonascii:
        # a GBK fragment in a UTF-8 page: damage only until the fragment is read as GBK
        text = _repair_utf8(body)
        damaged = text.count("\ufffd")
    if damaged <= max(2, MAX_DAMAGE * nonascii) and nonascii >= 20 * damaged:
        return text
    return None


_HIGH_BYTES = re.compile(rb"[\x80-\xff]+")
#: What a GBK fragment inside a UTF-8 page may decode to: common hanzi and CJK punctuation.
_CJK_PUNCTUATION = frozenset("，。、；：？！“”‘’（）《》【】〔〕—…·　")


#: A run of fewer bytes is not read as GB18030: two bytes of a cut UTF-8 character (E4 B8) are
#: also a GBK hanzi (涓), so a fragment must hold at least two characters to be told apart.
MIN_GBK_RUN = 4


def _repair_run(run: bytes) -> str:
    try:
        return run.decode("utf-8")
    except UnicodeDecodeError:
        pass
    fixed = ""
    if len(run) >= MIN_GBK_RUN:
        try:
            fixed = run.decode("gb18030")
        except UnicodeDecodeError:
            pass
    if fixed and all(ch in COMMON_HANZI or ch in _CJK_PUNCTUATION for ch in fixed):
        return fixed
    return run.decode("utf-8", "replace")


def _repair_utf8(body: bytes) -> str:
    """A UTF-8 page with a few invalid bytes: each run of non-ASCII bytes that is not UTF-8 is
    read as GB18030 when that gives common hanzi (a GBK fragment pasted into a UTF-8 template or
    include), else with U+FFFD as before. Only called on a page that is UTF-8 but for a little
    damage (:data:`MIXED_DAMAGE`), so it costs nothing on clean UTF-8 or GBK pages."""
    parts: list[str] = []
    last = 0
    for match in _HIGH_BYTES.finditer(body):
        parts.append(body[last : match.start()].decode("ascii"))
        parts.append(_repair_run(match.group(0)))
        last = match.end()
    parts.append(body[last:].decode("ascii"))
    return "".join(parts)


def _verified(body: bytes, codec: str) -> str | None:
    """The text if ``codec`` decodes ``body`` into something that is not mojibake."""
    if codec.startswith(("utf-16", "utf-32")) and b"\x00" not in body:
        return None  # UTF-16/32 markup is full of NUL bytes
    if codec in _WEAK:
        if _looks_multibyte(body):
            return None
        try:
            return body.decode(codec)
        except UnicodeDecodeError:
            return body.decode("latin-1")
    text = _lenient(body, codec)
    if text is None or garble_score(text) > GARBLED_THRESHOLD:
        return None
    return text


_CJK = frozenset({"gb18030", "big5hkscs", "utf-8"})
#: Handicap of a non-CJK detector guess against the CJK decodes (in garble-score units).
NON_CJK_PENALTY = 0.05

_HIGH_RUN = re.compile(rb"[\x80-\xff]{2,}")
_HIGH = re.compile(rb"[\x80-\xff]")


def _looks_multibyte(body: bytes) -> bool:
    """True when most high bytes come in runs, as in a CJK page, not alone as in Latin-1 text."""
    high = len(_HIGH.findall(body))
    in_runs = sum(len(m) for m in _HIGH_RUN.findall(body))
    return high > 0 and in_runs > 0.5 * high


#: A CJK decode this clean is accepted without asking the (slower) detector.
CLEAN_ENOUGH = 0.02


def _detect(body: bytes) -> tuple[str, str] | None:
    """Try the CJK charsets, then ask charset-normalizer; keep the cleanest verified decode.

    This crawler reads Chinese sites, so GB18030 and Big5-HKSCS are tried first and a clean
    decode ends the search. Any single-byte charset "decodes" GBK bytes without error and
    without Latin mojibake (into Cyrillic, say), so a non-CJK guess of the detector must be
    clearly cleaner than the CJK decodes to win.
    """
    best: tuple[float, str, str] | None = None

    def consider(codec: str) -> None:
        nonlocal best
        text = _verified(body, codec)
        if text is not None:
            score = garble_score(text) + (0.0 if codec in _CJK else NON_CJK_PENALTY)
            if best is None or score < best[0]:
                best = (score, codec, text)

    for codec in ("gb18030", "big5hkscs"):
        consider(codec)
        if best is not None and best[0] <= CLEAN_ENOUGH:
            return best[1], best[2]
    guess: str | None = None
    try:
        from charset_normalizer import from_bytes

        match = from_bytes(body).best()
        guess = normalize_charset(match.encoding) if match is not None else None
    except Exception:  # the detector is an aid; its failure leaves the CJK candidates
        guess = None
    if guess and guess not in ("gb18030", "big5hkscs"):
        consider(guess)
    return (best[1], best[2]) if best else None
