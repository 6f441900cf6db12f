"""The extraction limits: what the CPU alone allows, with no network, queue or store in the way.

``python -m bench.limit PAGES --mode trafilatura|pipeline --workers 2 --out result.json``

* ``trafilatura``: ``trafilatura.extract(text)`` with its defaults over the decoded article pages,
  the call a straightforward Scrapy spider makes; one process per core. The bench's yardstick.
* ``pipeline``: :func:`crawler.pipeline.process_page` over the same pages' bytes (decode, links,
  our extraction and normalization, hash), what each embedded-crawl worker runs per article.
  The gap between this and the embedded crawl is the crawl's own overhead.

Runs in its own process so that the bench measures its CPU and memory like every other run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import pickle
import sys
import time
from typing import Any

_PAGES: list[dict[str, Any]] = []


def _load(path: str) -> None:
    global _PAGES
    with open(path, "rb") as handle:
        _PAGES = pickle.load(handle)


def _trafilatura(index: int) -> int:
    import trafilatura

    text = trafilatura.extract(_PAGES[index]["text"])
    return len(text or "")


def _pipeline(index: int) -> int:
    from crawler.links import PageKind
    from crawler.pipeline import PageJob, process_page

    page = _PAGES[index]
    job = PageJob(
        url=page["url"],
        final_url=page["url"],
        body=page["body"],
        kind=PageKind.ARTICLE,
        http_charset=page["charset"],
    )
    outcome = process_page(job)
    return len(outcome.document.text) if outcome.document else 0


def _warm(mode: str) -> None:
    """Import and run once before the clock starts (both modes pay imports once per process)."""
    (_trafilatura if mode == "trafilatura" else _pipeline)(0)


def run(path: str, mode: str, workers: int) -> dict[str, Any]:
    _load(path)
    func = _trafilatura if mode == "trafilatura" else _pipeline
    ctx = multiprocessing.get_context("fork")  # children inherit the pages: no pickling per task
    with ctx.Pool(workers, initializer=_warm, initargs=(mode,)) as pool:
        pool.map(_noop, range(workers))  # wait for the workers to be up and warm
        started = time.monotonic()
        chars = sum(pool.imap_unordered(func, range(len(_PAGES)), chunksize=8))
        elapsed = time.monotonic() - started
    return {"mode": mode, "workers": workers, "pages": len(_PAGES), "elapsed": elapsed, "chars": chars}


def _noop(_: int) -> None:
    time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.limit")
    parser.add_argument("pages", help="pickle written by bench.server --dump")
    parser.add_argument("--mode", choices=("trafilatura", "pipeline"), default="trafilatura")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    result = run(args.pages, args.mode, args.workers)
    with open(args.out, "w") as handle:
        json.dump(result, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
