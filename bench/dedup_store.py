"""What the store's near-duplicate check costs per page: ``python -m bench.dedup_store DB_URL``.

Times :meth:`storage.sql.Store.add_stories` (exact key, bands, estimate, exact confirmation,
insert) against the plain insert-if-absent it replaced (``add_documents``), one page per
transaction as a Celery worker does, on a scratch store at ``DB_URL``, for the labelled set of
:mod:`crawler.neardup_eval`. (It lives here, not in ``crawler/``: the pipeline library never
imports the store.)
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import replace

from crawler.dedup import Fingerprint
from crawler.document import Document
from crawler.neardup_eval import labelled_set, measure_cost
from storage import open_store


def store_cost(url: str) -> tuple[float, float]:
    """Seconds per page of ``add_stories`` and of ``add_documents`` on the store at ``url``."""
    items = labelled_set(generated_stories=40, unrelated=100)
    prepared = []
    for n, item in enumerate(items):
        fp = Fingerprint.of(item.text)
        url_n = f"https://eval/{n}"
        doc = Document(url=url_n, final_url=url_n, text=item.text, content_hash=fp.content_hash)
        prepared.append((doc, fp))
    with open_store(url) as store:
        start = time.perf_counter()
        for doc, _ in prepared:  # other keys: the baseline must not collide with the stories
            store.add_documents([replace(doc, content_hash="baseline-" + doc.content_hash)])
        baseline = (time.perf_counter() - start) / len(prepared)
        start = time.perf_counter()
        for pair in prepared:
            store.add_stories([pair])
        return (time.perf_counter() - start) / len(prepared), baseline


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dedup_store", description=__doc__.split("\n")[0])
    parser.add_argument("store", metavar="DB_URL", help="an empty, scratch database")
    args = parser.parse_args(argv)
    seconds, baseline = store_cost(args.store)
    page, _dedup, _share = measure_cost()
    print(
        f"store: add_stories {seconds * 1e3:.2f} ms vs plain insert {baseline * 1e3:.2f} ms per page: "
        f"+{(seconds - baseline) / page:.1%} of process_page's {page * 1e3:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
