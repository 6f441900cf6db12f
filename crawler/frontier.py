"""The embedded crawl's ready queue, bounded in memory.

The frontier is ordered by depth, so a site whose list pages link thousands of articles, or a
crawl that resumes thousands of URLs an earlier one left queued, has them all waiting at once.
:class:`SpillingQueue` keeps at most ``capacity`` of those visits in memory and writes the rest
to a private SQLite file, from which they come back in the same order, smallest (depth, seq)
first, when memory runs low.

The file is only an overflow of memory, not a record: the store holds every URL the crawl has
queued (``queued`` records, or the state a re-visit starts from), and the next crawl resumes
from the store. It is SQLite's private temporary database, made at the first spill in the
temporary directory (``SQLITE_TMPDIR``, ``TMPDIR``, else /var/tmp) and deleted as it is
opened, so that nothing is left behind even by ``kill -9``.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import sqlite3
from array import array
from dataclasses import dataclass, field
from typing import Any

from crawler.visit import AttachmentVisit, Visit

#: Visits a crawl keeps in memory by default (``CRAWLER_FRONTIER_IN_MEMORY``).
DEFAULT_IN_MEMORY = 4096
#: Visits written to the file in one transaction.
_SPILL_BATCH = 512
#: URLs a :class:`UrlSet` takes in a Python set before it merges them into its sorted array.
_MERGE_AT = 4096
#: SQLite page cache of the file, KiB: reads are in key order through an index, few pages at a time.
_CACHE_KIB = 512


@dataclass(order=True, slots=True)
class FrontierItem:
    """A visit on the frontier: visits are taken shallowest first, then in the order queued."""

    depth: int
    seq: int
    visit: Visit | AttachmentVisit = field(compare=False)


_Row = tuple[int, int, str, str, str | None, int, int, float | None, int, int]


def _to_row(item: FrontierItem) -> _Row:
    visit = item.visit
    if isinstance(visit, AttachmentVisit):  # attempt -1 marks an attachment download
        return (item.depth, item.seq, visit.url, visit.source_id, visit.type, 0, -1, None, 0, 0)
    return (
        item.depth,
        item.seq,
        visit.url,
        visit.source_id,
        None,
        visit.depth,
        visit.attempt,
        visit.run,
        int(visit.revisit),
        int(visit.recovering),
    )


def _from_row(row: _Row) -> FrontierItem:
    depth, seq, url, source_id, kind, visit_depth, attempt, run, revisit, recovering = row
    if attempt < 0:
        return FrontierItem(depth, seq, AttachmentVisit(url, source_id, kind))
    visit = Visit(url, source_id, visit_depth, attempt, run, bool(revisit), bool(recovering))
    return FrontierItem(depth, seq, visit)


class SpillingQueue(asyncio.Queue[FrontierItem]):
    """An asyncio priority queue of frontier items that holds at most ``capacity`` of them in
    memory (the smallest, so the order is exactly that of one unbounded priority queue); the
    others wait in a file. ``put_nowait`` never blocks; ``qsize`` counts both places."""

    def __init__(self, capacity: int) -> None:
        if capacity < 2:
            raise ValueError("a frontier needs room for at least 2 visits in memory")
        self.capacity = capacity
        super().__init__()

    # asyncio.Queue's storage hooks (as asyncio.PriorityQueue uses them)

    def _init(self, maxsize: int) -> None:
        self._memory: list[FrontierItem] = []
        self._outgoing: list[_Row] = []  # spilled, not yet written to the file
        self._spilled = 0  # in the file or in _outgoing
        #: The smallest key spilled, while anything is (every key in memory is smaller).
        self._spill_min: tuple[int, int] | None = None
        self._db: sqlite3.Connection | None = None
        #: The most visits this queue has held in memory at once, and how many it wrote out.
        self.peak_in_memory = 0
        self.spills = 0

    # asyncio.Queue's own qsize and empty read its _queue, which this queue has not.
    def qsize(self) -> int:
        return len(self._memory) + self._spilled

    def empty(self) -> bool:
        return self.qsize() == 0

    def _put(self, item: FrontierItem) -> None:
        # Memory holds only items that come before every spilled one, so that a refill never
        # has to look at memory again.
        key = (item.depth, item.seq)
        if self._spill_min is not None and key > self._spill_min:
            self._spill(item)
        elif len(self._memory) < self.capacity:
            heapq.heappush(self._memory, item)
            self.peak_in_memory = max(self.peak_in_memory, len(self._memory))
        else:  # full: the last of memory and this item, the later one goes to the file
            last = max(self._memory)
            if item > last:
                self._spill(item)
            else:
                self._memory.remove(last)
                heapq.heapify(self._memory)
                heapq.heappush(self._memory, item)
                self._spill(last)

    def _spill(self, item: FrontierItem) -> None:
        self._outgoing.append(_to_row(item))
        self._spilled += 1
        self.spills += 1
        key = (item.depth, item.seq)
        if self._spill_min is None or key < self._spill_min:
            self._spill_min = key
        if len(self._outgoing) >= _SPILL_BATCH:
            self._write_out()

    def _get(self) -> FrontierItem:
        if self._spilled and len(self._memory) <= self.capacity // 2:
            self._refill()
        return heapq.heappop(self._memory)

    # the file

    @property
    def in_memory(self) -> int:
        return len(self._memory)

    @property
    def spilled(self) -> int:
        return self._spilled

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            # "": a private temporary database on disk, gone with the connection. Nothing here
            # has to survive a crash (the store is the record): no journal, no syncs.
            db = sqlite3.connect("", isolation_level=None)
            db.execute("PRAGMA journal_mode = OFF")
            db.execute("PRAGMA synchronous = OFF")
            db.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
            db.execute(
                "CREATE TABLE waiting (depth INTEGER NOT NULL, seq INTEGER NOT NULL,"
                " url TEXT NOT NULL, source TEXT NOT NULL, kind TEXT, visit_depth INTEGER NOT NULL,"
                " attempt INTEGER NOT NULL, run REAL, revisit INTEGER NOT NULL,"
                " recovering INTEGER NOT NULL, PRIMARY KEY (depth, seq))"
                " WITHOUT ROWID"
            )
            self._db = db
        return self._db

    def _write_out(self) -> None:
        if not self._outgoing:
            return
        db = self._connection()
        with _transaction(db):
            db.executemany("INSERT INTO waiting VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", self._outgoing)
        self._outgoing = []

    def _refill(self) -> None:
        """Move the smallest spilled items to memory until memory is full."""
        self._write_out()
        db = self._connection()
        room = self.capacity - len(self._memory)
        with _transaction(db):
            rows: list[_Row] = db.execute(
                "SELECT * FROM waiting ORDER BY depth, seq LIMIT ?", (room,)
            ).fetchall()
            if rows:
                last = (rows[-1][0], rows[-1][1])
                db.execute("DELETE FROM waiting WHERE (depth, seq) <= (?, ?)", last)
            smallest = db.execute("SELECT depth, seq FROM waiting ORDER BY depth, seq LIMIT 1").fetchone()
        for row in rows:
            heapq.heappush(self._memory, _from_row(row))
        self._spilled -= len(rows)
        self._spill_min = None if smallest is None else (smallest[0], smallest[1])
        self.peak_in_memory = max(self.peak_in_memory, len(self._memory))

    def close(self) -> None:
        """Let go of the file (what waits in it is dropped: the store keeps those URLs queued)."""
        if self._db is not None:
            self._db.close()
            self._db = None


class _transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN")

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.db.execute("ROLLBACK" if exc_type is not None else "COMMIT")


class UrlSet:
    """A set of URLs at 8 bytes each: their 64-bit hashes in a sorted array, the latest few in a
    Python set until they are merged in. A crawl remembers every URL it claimed; kept as
    strings (~150 bytes each with the set's slot), allocated all through the crawl, they also
    kept the memory around them from being given back.

    Two URLs with the same hash count as one: with 64-bit hashes (Python's own string hash,
    SipHash with a per-process key) the odds that any two of a million URLs collide are about
    3 in 100 million, and the cost would be one page left for the next crawl's links.
    """

    def __init__(self) -> None:
        self._sorted = array("q")
        self._recent: set[int] = set()

    def __contains__(self, url: object) -> bool:
        key = hash(url)
        if key in self._recent:
            return True
        at = bisect.bisect_left(self._sorted, key)
        return at < len(self._sorted) and self._sorted[at] == key

    def add(self, url: str) -> None:
        if url in self:
            return
        self._recent.add(hash(url))
        # Merging costs the array's length: merge when the set is a share of it, so that the
        # total work stays n log n however large the crawl.
        if len(self._recent) >= max(_MERGE_AT, len(self._sorted) // 8):
            self._merge()

    def __len__(self) -> int:
        return len(self._sorted) + len(self._recent)

    def _merge(self) -> None:
        self._sorted = array("q", heapq.merge(self._sorted, sorted(self._recent)))
        self._recent = set()
