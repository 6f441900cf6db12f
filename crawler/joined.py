"""Many short strings searched at once: joined by a separator, searched in C (``str.find``, a
regex), and each hit mapped back to the string it lies in. Testing a page's hundreds of hrefs
or text nodes one by one costs a Python call each; one search over all of them does not."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate, repeat
from operator import add


class Joined:
    """``strings`` joined by ``separator`` (``text``). A hit of a pattern that cannot match the
    separator lies inside one string: :meth:`index_at` says which."""

    def __init__(self, strings: Sequence[str], separator: str, *, text: str | None = None) -> None:
        """``text``: the joined text when the caller has it (strings of the same lengths)."""
        self.strings = strings
        self.separator = separator
        self.text = separator.join(strings) if text is None else text
        self._starts: list[int] | None = None  # computed at the first hit: most searches find none

    def _offsets(self) -> list[int]:
        if self._starts is None:
            # C iterators throughout: a generator here cost a Python step per string
            step = len(self.separator)
            self._starts = list(accumulate(map(add, map(len, self.strings), repeat(step)), initial=0))
        return self._starts

    def index_at(self, offset: int) -> int:
        """The index of the string that holds ``offset`` of :attr:`text`."""
        return bisect_right(self._offsets(), offset) - 1

    def start_of(self, index: int) -> int:
        """Where string ``index`` starts in :attr:`text` (``len(strings)``: past the end)."""
        return self._offsets()[index]
