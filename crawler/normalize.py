"""Text normalization for stored documents, and the mojibake test.

Stored text keeps its script (Simplified or Traditional) and its full-width punctuation, so we
apply NFC, never NFKC: NFKC would turn "，" into "," and change what the page says. What we do
remove is invisible or injected noise: zero-width characters, control characters, runs of
blanks, and the pinyin readings some repost portals insert after characters (部長(zhǎng)).

:func:`looks_garbled` decides whether a text is still mojibake after decoding; the decoder
(:mod:`crawler.decode`) uses :func:`garble_score` from here to verify a candidate charset.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass


def _common_hanzi() -> frozenset[str]:
    """Frequent hanzi: GB 2312 level 1 (3755 simplified) and Big5 常用字 (5401 traditional).

    Real Chinese text draws ~99% of its hanzi from these; text decoded with the wrong charset
    (UTF-8 read as GBK, Big5 read as GBK, ...) draws mostly from the rare rows.
    """
    chars: set[str] = set()
    for lead in range(0xB0, 0xD8):
        for trail in range(0xA1, 0xFF):
            try:
                chars.add(bytes((lead, trail)).decode("gb2312"))
            except UnicodeDecodeError:
                pass
    for lead in range(0xA4, 0xC7):
        trails = range(0x40, 0x7F) if lead == 0xC6 else (*range(0x40, 0x7F), *range(0xA1, 0xFF))
        for trail in trails:
            try:
                chars.add(bytes((lead, trail)).decode("big5"))
            except UnicodeDecodeError:
                pass
    return frozenset(c for c in chars if len(c) == 1 and _is_hanzi(c))


def _is_hanzi(ch: str) -> bool:
    cp = ord(ch)
    return (
        0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2FFFF or 0xF900 <= cp <= 0xFAFF
    )


COMMON_HANZI: frozenset[str] = _common_hanzi()

# -- normalize_text -------------------------------------------------------------------------------

# Zero-width characters, BOM, soft hyphen and invisible operators: they only hide inside text
# (ZWJ goes too: emoji need it, a policy text does not).
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e\u2061\u2062\u2063"), None)
# C0/C1 controls except tab and newline (tabs become spaces below); DEL too.
_CONTROLS = dict.fromkeys([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0x7F, 0xA0)], None)
_STRIP_TABLE = {**_INVISIBLE, **_CONTROLS}
_STRIPPED = re.compile("[" + "".join(re.escape(chr(cp)) for cp in sorted(_STRIP_TABLE)) + "]")
# Horizontal blanks: ASCII space/tab, NBSP, U+2000..U+200A, narrow NBSP, ideographic space.
_BLANKS = re.compile(r"[ \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")
_NEWLINES = re.compile(r"\r\n?|[\u2028\u2029\u0085\x0b\x0c]")

# One toned pinyin syllable: initial, then a final, with a tone mark on a vowel or a tone digit.
_TONED = "āáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜńňǹḿ"
_VOWEL = f"[aeiouüv{_TONED}]"
_SYLLABLE = rf"(?:[zcs]h|[bpmfdtnlgkhjqxrzcsyw])?(?:{_VOWEL}{{1,3}}(?:ng|n|r)?|[ńňǹḿ]g?)[1-5]?"
# A reading: 1-3 syllables in half- or full-width parentheses, right after a hanzi. The group
# must carry a tone (mark or digit), so "(bug)" or "(ok)" are never taken for a reading. The
# parenthesis comes first and the hanzi before it is checked behind it: the engine then skips to
# parentheses instead of testing a look-behind at every character (6x faster on plain text).
_PINYIN_READING = re.compile(
    rf"[(（](?<=[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff][(（])"
    rf"(?=[^)）]*(?:[{_TONED}]|[a-zü]{{2,}}[1-5]))"
    rf"{_SYLLABLE}(?:[ '’]?{_SYLLABLE}){{0,2}}[)）]"
)


def strip_pinyin_readings(text: str) -> str:
    """Remove pinyin readings inserted after hanzi: ``部長(zhǎng)`` -> ``部長``.

    Unconditional (the dedup key uses it); whether a page's stored text loses its readings is
    decided by :func:`has_converted_readings`.
    """
    return _PINYIN_READING.sub("", text)


_HANZI_CHAR = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
#: A text is a converted repost when it has at least one reading per this many hanzi. The repost
#: portals of shared/samples/000-003 annotate one hanzi in 4-5 (0.20-0.25), the sample web's
#: converter one in 6-8; a real text that glosses a rare character (鲧(gǔn)) has one in
#: hundreds, and keeps it.
READING_SHARE = 0.03


def count_pinyin_readings(text: str) -> int:
    """How many pinyin readings (a toned syllable group in parentheses after a hanzi) ``text`` has."""
    if "(" not in text and "（" not in text:
        return 0
    return sum(1 for _ in _PINYIN_READING.finditer(text))


def has_converted_readings(text: str) -> bool:
    """Whether ``text`` went through a converter that inserts readings after characters.

    Decided by density, never by one match: at least one reading per ~33 hanzi
    (:data:`READING_SHARE`), so that a single gloss in a long text is kept as written.
    """
    readings = count_pinyin_readings(text)
    if not readings:
        return False
    return readings >= READING_SHARE * len(_HANZI_CHAR.findall(text))


def normalize_text(text: str, *, strip_readings: bool | None = None) -> str:
    """The stored form of a text: NFC, no invisible/control characters, blanks collapsed,
    readings removed, one paragraph per line, no empty lines.

    Readings go when ``strip_readings`` says so; None decides by :func:`has_converted_readings`
    on ``text`` itself (a caller that has the whole page decides for the page).
    """
    text = unicodedata.normalize("NFC", text)
    text = _NEWLINES.sub("\n", text)
    if _STRIPPED.search(text):  # translate looks every character up in a dict: 15x the search
        text = text.translate(_STRIP_TABLE)
    if strip_readings is None:
        strip_readings = has_converted_readings(text)
    if strip_readings:
        text = strip_pinyin_readings(text)
    lines = (_BLANKS.sub(" ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


# U+FFFD runs, and "锟斤拷" (two U+FFFD encoded as UTF-8 and read as GBK): what a decoder or a
# converter upstream left where bytes were lost. Nothing can bring those characters back.
_REPLACEMENT_RUN = re.compile("(?:\ufffd|锟斤拷)+")


def drop_replacement_runs(text: str) -> tuple[str, int]:
    """``text`` without its replacement runs, and how many characters were dropped."""
    if "\ufffd" not in text and "锟斤拷" not in text:
        return text, 0
    cleaned = _REPLACEMENT_RUN.sub("", text)
    return cleaned, len(text) - len(cleaned)


# -- mojibake -------------------------------------------------------------------------------------


@dataclass(slots=True)
class GarbleStats:
    """Counts over the non-ASCII, non-blank characters of a text."""

    nonascii: int = 0
    hanzi: int = 0
    common_hanzi: int = 0
    bad: int = 0  # U+FFFD, private use, C1 controls, unassigned
    latin1_runs: int = 0  # Latin-1 supplement characters in runs of 4+ ("ÖÐÎÄ": GBK read as Latin-1)
    greek_cyrillic: int = 0
    kana: int = 0
    hangul: int = 0
    halfwidth_kana: int = 0
    signatures: int = 0  # "锟斤拷" and "Ã©"-style pairs

    @property
    def rare_hanzi_share(self) -> float:
        return 1.0 - self.common_hanzi / self.hanzi if self.hanzi else 0.0


# "锟斤拷" is U+FFFD U+FFFD encoded as UTF-8 and read as GBK; "Ã©", "â€™" are UTF-8 read as
# Latin-1/cp1252; "ï»¿" is a UTF-8 BOM read as Latin-1.
_SIGNATURES = re.compile(r"锟斤拷|烫烫烫|屯屯屯|[ÃÂ][\u0080-\u00bf]|â€[\u0080-\u00bf™œ˜”“¦]|ï»¿")
#: The characters a signature can start with: a text without any has none to search for.
_SIGNATURE_LEADS = frozenset("锟烫屯ÃÂâï")
_SIGNATURE_LEAD = re.compile("[" + "".join(sorted(_SIGNATURE_LEADS)) + "]")  # 8x a set of the text
_ASCII_OR_BLANK = re.compile(r"[\x00-\x7f\s]+")
_LATIN1_RUN = re.compile(r"[\u00a1-\u00b6\u00b8-\u00ff]{4,}")


#: The hanzi ranges garble_stats counts (URO, extension A, compatibility, planes 2-3).
_HANZI = re.compile("[\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff\U00020000-\U0003ffff]+")
#: The common hanzi (those in the counted ranges): deleting them, the length lost is their count
#: (a regex class: 4x faster than str.translate with a table).
_COMMON = re.compile("[" + "".join(sorted(ch for ch in COMMON_HANZI if _HANZI.fullmatch(ch))) + "]+")


def garble_stats(text: str) -> GarbleStats:
    """Counted in C where it can be: every page is checked once when decoded (20-30 kB of text)
    and its extracted text once more. Hanzi and common hanzi are counted by a regex and a
    deletion table; only the few distinct characters left are classified one by one. The two
    pattern searches run only when the text holds a character they could match."""
    s = GarbleStats()
    rest = _ASCII_OR_BLANK.sub("", text)  # the non-ASCII, non-blank characters
    if not rest:
        return s
    s.nonascii = len(rest)
    others = _HANZI.sub("", rest)
    s.hanzi = len(rest) - len(others)
    if s.hanzi:
        s.common_hanzi = len(rest) - len(_COMMON.sub("", rest))
    latin1 = 0  # Latin-1 letters and signs: a run of them is GBK read as Latin-1
    for ch, n in Counter(others).items():
        cp = ord(ch)
        if cp == 0xFFFD or 0xE000 <= cp <= 0xF8FF or 0x80 <= cp <= 0x9F or cp >= 0xF0000:
            s.bad += n
        elif 0x370 <= cp <= 0x4FF:
            s.greek_cyrillic += n
        elif 0x3040 <= cp <= 0x30FF:
            s.kana += n
        elif 0xAC00 <= cp <= 0xD7AF:
            s.hangul += n
        elif 0xFF61 <= cp <= 0xFF9F:
            s.halfwidth_kana += n
        elif 0xA1 <= cp <= 0xFF and cp != 0xB7:
            latin1 += n
    if latin1 >= 4:  # fewer such characters make no run of 4 (the regex costs ~2 ms a page)
        s.latin1_runs = sum(len(m) for m in _LATIN1_RUN.findall(text))
    leads = set(_SIGNATURE_LEAD.findall(rest))
    if leads:
        s.signatures = _count_signatures(text, leads)
    return s


def _count_signatures(text: str, leads: Iterable[str]) -> int:
    """``len(_SIGNATURES.findall(text))``, trying the pattern only where one of its lead
    characters stands (found by str.find: the regex alone scans a page at ~20 ns a character)."""
    starts = []
    for lead in leads:
        at = text.find(lead)
        while at != -1:
            starts.append(at)
            at = text.find(lead, at + 1)
    count = end = 0
    for at in sorted(starts):
        if at < end:
            continue  # inside the previous match: findall's matches do not overlap
        match = _SIGNATURES.match(text, at)
        if match is not None:
            count, end = count + 1, match.end()
    return count


def garble_score(text: str) -> float:
    """Share of the non-ASCII characters that look like mojibake (0 = clean, 1 = all garbage).

    Counted as mojibake: replacement/private-use/C1 characters, Latin-1 letters in runs,
    mojibake signatures, rare hanzi beyond the few percent real text has, and Greek/Cyrillic
    or kana mixed into a hanzi text (Big5 read as GBK lands in those GB 2312 rows).
    """
    s = garble_stats(text)
    if not s.nonascii:
        return 0.0
    junk: float = s.bad + s.latin1_runs + 3 * s.signatures
    if s.hanzi:
        # Real text has a few percent rare hanzi (names, classical words); beyond ~10% is noise.
        junk += max(0, (s.hanzi - s.common_hanzi) - 0.1 * s.hanzi)
        # Greek/Cyrillic or kana sprinkled into a hanzi text is Big5/GBK confusion; a Japanese
        # page has far more kana than that.
        if s.kana < 0.5 * s.hanzi:
            junk += s.greek_cyrillic + s.kana
        # Modern Korean has almost no hanja: hangul next to many hanzi is GBK read as EUC-KR.
        if s.hanzi > 0.1 * s.hangul:
            junk += s.hangul
        junk += s.halfwidth_kana  # GBK read as Shift_JIS
    return min(1.0, junk / s.nonascii)


#: A text whose :func:`garble_score` exceeds this is mojibake. Chosen by measurement on the
#: extraction corpus: gold texts and our outputs score at most 0.015 (the worst: pages with many
#: rare names, or a stretch of broken bytes), the shared samples with their short mojibake
#: stretch 0.0, while every wrong decode of a corpus page (UTF-8/GBK/Big5/Latin-1 confusions)
#: scores 0.31 or more.
GARBLED_THRESHOLD = 0.12


def looks_garbled(text: str, expected_hanzi_ratio: float | None = None) -> bool:
    """True when ``text`` still looks like mojibake.

    Flags text whose :func:`garble_score` is above :data:`GARBLED_THRESHOLD`. When the caller
    knows roughly how much of the text should be common hanzi (``expected_hanzi_ratio``, the
    share of non-blank characters, e.g. from a reference text or the source's language), a text
    with far fewer (under half of that) is flagged too: that is GBK read as UTF-8 with
    replacement, or the reverse, degrading into something that is no longer hanzi at all.
    """
    if not text:
        return False
    if garble_score(text) > GARBLED_THRESHOLD:
        return True
    return expected_hanzi_ratio is not None and common_hanzi_ratio(text) < 0.5 * expected_hanzi_ratio


def common_hanzi_ratio(text: str) -> float:
    """Share of the non-blank characters that are common hanzi."""
    chars = sum(1 for ch in text if not ch.isspace())
    return garble_stats(text).common_hanzi / chars if chars else 0.0


# -- script folding for matching ------------------------------------------------------------------

_T2S: dict[int, str] | None = None


def _t2s_table() -> dict[int, str]:
    """Traditional -> Simplified, character by character, for every Big5-HKSCS hanzi that has a
    one-character simplified form (built once from OpenCC's table, ~50 ms)."""
    global _T2S
    if _T2S is None:
        chars: set[str] = set()
        for lead in range(0x81, 0xFF):
            for trail in (*range(0x40, 0x7F), *range(0xA1, 0xFF)):
                try:
                    ch = bytes((lead, trail)).decode("big5hkscs")
                except UnicodeDecodeError:
                    continue
                if len(ch) == 1 and _is_hanzi(ch):
                    chars.add(ch)
        source = sorted(chars)
        try:
            from opencc import OpenCC

            # one character per line, so that no phrase rule spans two of them
            target = OpenCC("t2s").convert("\n".join(source)).split("\n")
        except Exception:  # no converter: matching falls back to the text as it is
            target = source
        if len(target) != len(source):
            target = source
        _T2S = {ord(a): b for a, b in zip(source, target, strict=True) if a != b and len(b) == 1}
    return _T2S


@functools.cache
def _traditional() -> re.Pattern[str] | None:
    """A class of the characters :func:`to_simplified` folds (None: it folds none)."""
    table = _t2s_table()
    return re.compile("[" + "".join(re.escape(chr(cp)) for cp in sorted(table)) + "]") if table else None


def has_traditional(text: str) -> bool:
    """Whether :func:`to_simplified` would change ``text``."""
    traditional = _traditional()
    return traditional is not None and traditional.search(text) is not None


def to_simplified(text: str) -> str:
    """``text`` with Traditional characters folded to Simplified (for matching rules only: stored
    text keeps its script). A text without any is returned as it is: a regex class finds that
    4x faster than str.translate goes through it."""
    traditional = _traditional()
    if traditional is None or traditional.search(text) is None:
        return text
    return text.translate(_t2s_table())
