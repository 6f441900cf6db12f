"""Deduplication keys of a document body: the exact key, and MinHash/LSH for near-duplicates.

One story is often published by several portals: copied as is, converted to Traditional with
pinyin readings inserted (``部長(zhǎng)``), with a paragraph of the reposter's own added, or with a
paragraph cut. We want one document per story, so:

* **Exact duplicates** are decided on a canonical key (:func:`dedup_key`): pinyin readings
  stripped, NFKC, Traditional folded to Simplified (OpenCC's t2s character table, see
  :func:`_script_fold_table`), and everything that is not a letter or a digit (punctuation,
  symbols, whitespace) removed.
  ``content_hash`` is its SHA-256; the store has a unique index on it, so "seen before" is the
  database's decision, atomic across processes. A Traditional repost with readings of a
  Simplified original therefore has the original's ``content_hash``. Stored text keeps its script.
* **Near duplicates**: character shingles of the key, a MinHash signature, LSH bands. Two texts
  whose shingle sets have Jaccard similarity ``s`` share at least one band with probability
  ``1 - (1 - s**rows)**bands``; a band hit is only a *candidate*, confirmed with the exact
  Jaccard of the two shingle sets (:func:`similarity`), so precision does not depend on the
  sketch. The parameters (:data:`DEFAULT_PARAMS`) were chosen by measurement
  (``python -m crawler.neardup_eval --sweep``): with 5-grams, the least similar pair of copies
  of one story (a paragraph added vs. one cut, short article) has Jaccard 0.540 and the most
  similar pair of different stories 0.499, so the threshold sits between them at 0.52; 32 bands
  of 4 rows make a pair a candidate with probability 0.99 at Jaccard 0.6, 0.91 at 0.52 (such
  borderline copies are usually found through their closer original) and 0.23 at 0.3 (few
  wasted candidates), and the candidate's exact check decides. Containment (share of the
  smaller set) was rejected: a short article reaches 0.97 inside an unrelated generated one that
  reuses its sentences.

The signature is one-permutation MinHash with densification (Shrivastava & Li, 2014): each
shingle is hashed once and falls into one of ``num_perm`` bins, each bin keeps its minimum, empty
bins borrow from the next non-empty one. numpy is not a dependency, and ``num_perm`` full
permutations in plain Python cost ~``num_perm`` times more (see the evaluation's cost line).

Which copy is the story's document is decided by quality, not by arrival: :func:`rank_key` orders
a story's copies (the portal's declared role, clean Simplified text, the earliest date, the
longest text) over a small value the store keeps per document and copy (:class:`CopyRank`); a
better copy arriving later replaces the document (:meth:`storage.sql.Store.add_stories`).
"""

from __future__ import annotations

import hashlib
import math
import re
import struct
import unicodedata
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import TypeVar

from crawler.normalize import strip_pinyin_readings

#: A MinHash signature: ``num_perm`` unsigned 32-bit values.
Signature = tuple[int, ...]

_MASK32 = 0xFFFFFFFF
_MASK64 = 0xFFFFFFFFFFFFFFFF
_GOLDEN = 0x9E3779B97F4A7C15  # 64-bit Fibonacci hashing multiplier: spreads crc32 over 64 bits
_EMPTY = _MASK32 + 1  # larger than any bin value
# str's \w is exactly the L* and N* categories plus "_" (10x faster than a category loop).
_NOT_LETTER_OR_NUMBER = re.compile(r"[\W_]+")


@dataclass(frozen=True, slots=True)
class NearDupParams:
    """Near-duplicate detection settings (see :mod:`crawler.neardup_eval` for how they were chosen).

    ``shingle``: characters per shingle of the canonical key. ``num_perm``: MinHash bins, a
    power of two, ``= bands * rows``. ``threshold``: the exact Jaccard similarity of the shingle
    sets at or above which a candidate is a copy.
    """

    shingle: int = 5
    bands: int = 32
    rows: int = 4
    threshold: float = 0.52

    @property
    def num_perm(self) -> int:
        return self.bands * self.rows

    def __post_init__(self) -> None:
        n = self.bands * self.rows
        if self.shingle < 1 or n < 1 or n & (n - 1):
            raise ValueError("shingle must be >= 1 and bands * rows a power of two")
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")


DEFAULT_PARAMS = NearDupParams()


# -- the exact key --------------------------------------------------------------------------------


@cache
def _script_fold_table() -> dict[int, str]:
    """Every character of OpenCC's t2s character table mapped to one representative of its class.

    Why classes and not plain t2s: t2s is one-to-many on some characters (瞭 -> 瞭|了, 覆 -> 覆|复)
    and only its phrase tables choose (瞭解 -> 了解), which costs milliseconds a page in the pure
    Python OpenCC. Folding every character that t2s relates (瞭, 了; 覆, 復, 複, 复) to one
    representative makes the Traditional copy and the Simplified original agree with one
    ``str.translate``, at the price of not telling those characters apart, which a dedup key
    can afford. Variants such as 爲/為 -> 为 come with the table. Representatives are Simplified
    where the class has a Simplified member. Built once (~30 ms).
    """
    try:
        import opencc

        path = Path(opencc.__file__).parent / "dictionary" / "TSCharacters.txt"
        lines = path.read_text(encoding="utf-8").splitlines()
    except Exception:  # pragma: no cover - no OpenCC data: only NFKC and punctuation folding
        return {}
    parent: dict[str, str] = {}

    def find(ch: str) -> str:
        while parent.setdefault(ch, ch) != ch:
            parent[ch] = parent[parent[ch]]
            ch = parent[ch]
        return ch

    traditional: set[str] = set()
    for line in lines:
        source, _, targets = line.partition("\t")
        if len(source) != 1:
            continue
        traditional.add(source)
        for target in targets.split():
            if len(target) == 1:
                parent[find(source)] = find(target)
    classes: dict[str, list[str]] = {}
    for ch in list(parent):
        classes.setdefault(find(ch), []).append(ch)
    table: dict[int, str] = {}
    for members in classes.values():
        simplified = [c for c in members if c not in traditional]
        rep = min(simplified or members)
        table.update({ord(c): rep for c in members if c != rep})
    return table


#: The NFKC forms of the full-width and half-width forms block, the ideographic space, the
#: ellipsis and the no-break space. NFKC(translate(x)) == NFKC(x): each character becomes its own
#: NFKC form, whose decomposition is the character's own.
_WIDTH_FOLD = {
    cp: folded
    for cp in (*range(0xFF00, 0xFFF0), 0x3000, 0x2026, 0x00A0)
    if (folded := unicodedata.normalize("NFKC", chr(cp))) != chr(cp)
}


def dedup_key(text: str) -> str:
    """The canonical form two copies of one story share, whatever their script and punctuation."""
    # Chinese text is NFKC but for its full-width punctuation: mapped by table first, most texts
    # need no normalizing pass at all (checking is ~free; exact: see _WIDTH_FOLD)
    folded = strip_pinyin_readings(text).translate(_WIDTH_FOLD)
    if not unicodedata.is_normalized("NFKC", folded):
        folded = unicodedata.normalize("NFKC", folded)
    folded = folded.translate(_script_fold_table())
    # Letters (L*) and numbers (N*) only: punctuation, symbols, whitespace and marks go.
    return _NOT_LETTER_OR_NUMBER.sub("", folded)


def canonical_form(text: str) -> str:
    """Alias of :func:`dedup_key`, kept for callers of the earlier name."""
    return dedup_key(text)


def content_hash(text: str) -> str:
    """SHA-256 (hex) of :func:`dedup_key`: the exact-duplicate key the store is unique on."""
    return hashlib.sha256(dedup_key(text).encode("utf-8")).hexdigest()


# -- shingles, MinHash, LSH -----------------------------------------------------------------------


def shingle_hashes(key: str, size: int) -> set[int]:
    """The distinct 32-bit hashes (CRC-32: stable across processes) of the key's ``size``-grams.

    A key shorter than ``size`` is one shingle.
    """
    if len(key) <= size:
        return {zlib.crc32(key.encode("utf-8"))} if key else set()
    data = key.encode("utf-32-le")  # fixed width: shingle i is data[4i : 4(i + size)]
    width = 4 * size
    crc = zlib.crc32
    return {crc(data[i : i + width]) for i in range(0, len(data) - width + 4, 4)}


def signature(hashes: Iterable[int], num_perm: int) -> Signature:
    """One-permutation MinHash of a set of 32-bit shingle hashes, densified (see module doc)."""
    shift = 64 - (num_perm.bit_length() - 1)
    bins = [_EMPTY] * num_perm
    for h in hashes:
        mixed = (h * _GOLDEN) & _MASK64
        index = mixed >> shift if shift < 64 else 0
        value = mixed & _MASK32
        if value < bins[index]:
            bins[index] = value
    if _EMPTY in bins:
        if all(b == _EMPTY for b in bins):
            return tuple([_MASK32] * num_perm)
        # Rotation densification: an empty bin takes the next non-empty bin's value, offset by
        # the distance so that two different empty patterns rarely collide by accident.
        filled = list(bins)
        for i in range(num_perm):
            if bins[i] == _EMPTY:
                j, distance = (i + 1) % num_perm, 1
                while bins[j] == _EMPTY:
                    j, distance = (j + 1) % num_perm, distance + 1
                filled[i] = (bins[j] + distance * 0x9E3779B1) & _MASK32
        bins = filled
    return tuple(bins)


def band_keys(sig: Sequence[int], bands: int, rows: int) -> list[int]:
    """One signed 64-bit key per band (fits a BIGINT column and a Redis key): band index + rows."""
    keys = []
    for band in range(bands):
        chunk = sig[band * rows : (band + 1) * rows]
        digest = hashlib.blake2b(struct.pack(f"<I{rows}I", band, *chunk), digest_size=8).digest()
        keys.append(int.from_bytes(digest, "little", signed=True))
    return keys


def estimated_similarity(a: Sequence[int], b: Sequence[int]) -> float:
    """The MinHash estimate of Jaccard similarity: the share of equal signature positions."""
    return sum(1 for x, y in zip(a, b, strict=True) if x == y) / len(a) if a else 0.0


def jaccard(a: set[int], b: set[int]) -> float:
    """Exact Jaccard similarity of two shingle sets (1.0 for two empty sets)."""
    if not a and not b:
        return 1.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


def similarity(text_a: str, text_b: str, size: int = DEFAULT_PARAMS.shingle) -> float:
    """Exact Jaccard similarity of two texts' shingle sets (of their canonical keys)."""
    return jaccard(shingle_hashes(dedup_key(text_a), size), shingle_hashes(dedup_key(text_b), size))


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What the duplicate checks need of one text, computed once where the text is extracted
    (a worker process), so that the single writer only looks up and compares."""

    content_hash: str
    signature: Signature
    bands: tuple[int, ...]
    shingles: frozenset[int]
    #: Characters of the canonical key: how much of the story the text carries (what ranking a
    #: story's copies calls completeness, :func:`rank_key`); 0 when unknown.
    length: int = 0

    @classmethod
    def of(
        cls, text: str, params: NearDupParams = DEFAULT_PARAMS, *, keep_shingles: bool = True
    ) -> Fingerprint:
        """``keep_shingles=False``: an empty shingle set (see :meth:`Store.add_stories
        <storage.sql.Store.add_stories>`, which recomputes it from the text when needed)."""
        key = dedup_key(text)
        shingles = shingle_hashes(key, params.shingle)
        sig = signature(shingles, params.num_perm)
        return cls(
            hashlib.sha256(key.encode("utf-8")).hexdigest(),
            sig,
            tuple(band_keys(sig, params.bands, params.rows)),
            frozenset(shingles) if keep_shingles else frozenset(),
            len(key),
        )


#: A candidate whose signature estimate is this far below the threshold is not worth the exact
#: comparison (the estimate's standard error at 128 bins is ~0.045; 3.5 of them).
PREFILTER_MARGIN = 0.15


def pack_signature(sig: Sequence[int]) -> bytes:
    """A signature as stored (4 bytes a value, little-endian)."""
    return struct.pack(f"<{len(sig)}I", *sig)


def unpack_signature(data: bytes) -> Signature:
    return struct.unpack(f"<{len(data) // 4}I", data)


def containment(a: set[int], b: set[int]) -> float:
    """Share of the smaller shingle set found in the larger one: 1.0 when one text is the other
    with paragraphs added (the "paragraph cut" and "paragraph added" reposts)."""
    if not a or not b:
        return 1.0 if a == b else 0.0
    return len(a & b) / min(len(a), len(b))


def score(a: set[int], b: set[int], measure: str = "jaccard") -> float:
    """The confirmation score of a candidate pair: ``jaccard`` or ``containment``."""
    return containment(a, b) if measure == "containment" else jaccard(a, b)


K = TypeVar("K")
S = TypeVar("S")


def best_story(
    fp: Fingerprint,
    candidates: Iterable[tuple[K, Sequence[int]]],
    shingles_of: Callable[[list[K]], Iterable[tuple[S, set[int]]]],
    threshold: float,
    *,
    mine: Callable[[], set[int]] | None = None,
    measure: str = "jaccard",
) -> tuple[S, float] | None:
    """The near-duplicate decision: the most similar earlier story at or above ``threshold``,
    as ``(story, similarity)``, or None. One function for every index (the in-memory one below
    and the store's, :meth:`storage.sql.Store.add_stories`); they only differ in where the
    candidates and their shingles come from.

    ``candidates``: ``(key, signature)`` of the stories sharing an LSH band with ``fp``. Those
    whose signature estimate falls more than :data:`PREFILTER_MARGIN` below the threshold are
    dropped; ``shingles_of(keys)`` gives ``(story, shingle set)`` for the others, confirmed by
    the exact score (Jaccard by default). ``mine``: ``fp``'s shingle set when ``fp`` was
    computed without it (only called if a candidate passes the estimate).
    """
    likely = [
        key
        for key, sig in candidates
        if estimated_similarity(fp.signature, sig) >= threshold - PREFILTER_MARGIN
    ]
    if not likely:
        return None
    shingles = set(fp.shingles) if fp.shingles or mine is None else mine()
    best: tuple[S, float] | None = None
    for story, theirs in shingles_of(likely):
        sim = score(shingles, theirs, measure)
        if sim >= threshold and (best is None or sim > best[1]):
            best = (story, sim)
    return best


# -- which copy is the story's document -----------------------------------------------------------

#: What a source may declare of a portal (:attr:`crawler.sources.Source.role`): it issues the
#: originals of what it publishes, or it republishes other portals' stories.
ISSUER = "issuer"
REPOST = "repost"
ROLES: tuple[str, ...] = (ISSUER, REPOST)
_ROLE_ORDER = {ISSUER: 0, REPOST: 2}  # undeclared: 1, between the two
_TRADITIONAL = "zh-Hant"


@dataclass(frozen=True, slots=True)
class CopyRank:
    """What choosing a story's document needs of one of its copies: a few values the store keeps
    as columns of every document and copy (see :func:`rank_key` for how they are weighed).

    ``role``: its portal's declared role (:data:`ISSUER`, :data:`REPOST`, None: not declared);
    ``converted``: a repost whose pinyin readings were stripped; ``damaged``: replacement runs
    were dropped from its text; ``lang``: ``zh-Hans``, ``zh-Hant``, ...; ``published_at``: the
    date the page gives (ISO 8601); ``length``: characters of its canonical key
    (:attr:`Fingerprint.length`: its content, without punctuation or readings); ``url``: its
    page, the last tie-break.
    """

    role: str | None = None
    converted: bool = False
    damaged: bool = False
    lang: str | None = None
    published_at: str | None = None
    length: int = 0
    url: str = ""


def _published_day(value: str | None) -> float:
    """The day of an ISO 8601 date or date-time as a day number; infinity when unknown.

    Days, not times: a repost often shows its own posting time, or none, and a date alone says
    nothing of the hour, so within one day the copies tie and the next criterion decides.
    """
    if not value:
        return math.inf
    try:
        return float(date.fromisoformat(value[:10]).toordinal())
    except ValueError:
        return math.inf


def rank_key(rank: CopyRank) -> tuple[int, int, float, int, str]:
    """The order of a story's copies, best first (smaller is better), criterion by criterion:

    1. the portal's role: an issuer's copy, then an undeclared portal's, then a repost portal's;
    2. cleanliness: a Simplified text without readings, then a converted or Traditional copy
       (``converted``, ``lang`` zh-Hant), then a damaged page (text was lost);
    3. the earliest published day (a copy without a date comes last);
    4. completeness: the longer canonical key. Every copy of a story is near-identical to it
       (the index confirmed it), so the longer one is the one that lost nothing;
    5. the page's URL, the smaller first: copies equal in all of the above (the same text on two
       issuing portals) still have one order, so the document never depends on which arrived
       first (a crawl stopped and resumed ends with the document an uninterrupted one has).
    """
    role = _ROLE_ORDER.get(rank.role or "", 1)
    if rank.damaged:
        clean = 2
    elif rank.converted or rank.lang == _TRADITIONAL:
        clean = 1
    else:
        clean = 0
    return role, clean, _published_day(rank.published_at), -rank.length, rank.url


def outranks(candidate: CopyRank, incumbent: CopyRank) -> bool:
    """Whether ``candidate`` should replace ``incumbent`` as its story's document: only when it
    is strictly better. A re-crawl of the document's own page ties and never moves it (nor
    re-points its copies)."""
    return rank_key(candidate) < rank_key(incumbent)


def best_copy(copies: Iterable[tuple[K, CopyRank]]) -> K | None:
    """The key of the best of ``copies`` (the first of equals: copies of one page), or None for
    none: the document a story ends with, whatever the arrival order."""
    best: tuple[K, CopyRank] | None = None
    for key, rank in copies:
        if best is None or outranks(rank, best[1]):
            best = (key, rank)
    return None if best is None else best[0]


class MemoryIndex:
    """An in-process LSH index with exact confirmation, over :func:`best_story`.

    Used by the evaluation and the tests; the embedded and distributed modes keep the same
    index in the database (:meth:`storage.sql.Store.add_stories`) so that it is shared.
    """

    def __init__(self, params: NearDupParams = DEFAULT_PARAMS, measure: str = "jaccard") -> None:
        self.params = params
        self.measure = measure
        self.bands: dict[int, list[int]] = {}
        self.shingles: list[set[int]] = []
        self.signatures: list[Signature] = []
        self.exact: dict[str, int] = {}  # content_hash of every document seen -> its story

    def add(self, text: str | Fingerprint) -> tuple[int, int | None, float]:
        """Index a text unless it is a copy. Returns (its story number, the story it copies or
        None, the confirmed similarity). A copy points at the most similar earlier story."""
        fp = text if isinstance(text, Fingerprint) else Fingerprint.of(text, self.params)
        digest, shingles, sig = fp.content_hash, set(fp.shingles), fp.signature
        if digest in self.exact:  # the exact key first: the store's unique index
            return self.exact[digest], self.exact[digest], 1.0
        keys = fp.bands
        candidates = sorted({doc for k in keys for doc in self.bands.get(k, ())})
        best = best_story(
            fp,
            [(doc, self.signatures[doc]) for doc in candidates],
            lambda docs: [(doc, self.shingles[doc]) for doc in docs],
            self.params.threshold,
            measure=self.measure,
        )
        if best is not None:
            self.exact[digest] = best[0]
            return best[0], best[0], best[1]
        number = len(self.shingles)
        self.exact[digest] = number
        self.shingles.append(shingles)
        self.signatures.append(sig)
        for k in keys:
            self.bands.setdefault(k, []).append(number)
        return number, None, 1.0
