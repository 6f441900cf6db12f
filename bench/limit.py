"""The extraction limits: what the CPU alone allows, with no network, queue or store in the way.

``python -m bench.limit PAGES --mode trafilatura|pipeline --workers 2 --out result.json``

* ``trafilatura``: ``trafilatura.extract(text)`` with its defaults over the decoded article pages,
  the call a straightforward Scrapy spider makes; one process per core. The bench's yardstick.
* ``pipeline``: :func:`crawler.pipeline.process_page` over the same pages' bytes (decode, links,
  our extraction and normalization, hash), what each embedded-crawl worker runs per article,
  with the extraction plans a crawl would have (learned from the first pages before the clock,
  then fixed; sampled checks still run trafilatura). The gap between this and the embedded
  crawl is the crawl's own overhead. Afterwards, the parent times the stages of a sample of
  fast-path pages one by one (CPU time): where a served page's milliseconds go.

Runs in its own process so that the bench measures its CPU and memory like every other run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import pickle
import sys
import time
from collections import Counter
from typing import Any

_PAGES: list[dict[str, Any]] = []
#: The plans each worker uses, per (host:port): learned in the parent before the pool forks.
_ORDERS: dict[str, Any] = {}
#: Pages of a template processed in the parent once it has a plan (checks widen the plan's
#: layout elements and lengths, as in a crawl's first pages); then the template is learned.
WIDEN_PAGES = 100
#: Fast-path pages whose stages are timed one by one after the run.
STAGE_SAMPLE = 300


def _load(path: str) -> None:
    global _PAGES
    with open(path, "rb") as handle:
        _PAGES = pickle.load(handle)


def _trafilatura(index: int) -> tuple[int, str | None, float]:
    import trafilatura

    started = time.process_time()
    text = trafilatura.extract(_PAGES[index]["text"])
    return len(text or ""), None, time.process_time() - started


def _job(page: dict[str, Any], orders: Any) -> Any:
    from crawler.links import PageKind
    from crawler.pipeline import PageJob

    return PageJob(
        url=page["url"],
        final_url=page["url"],
        body=page["body"],
        kind=PageKind.ARTICLE,
        http_charset=page["charset"],
        source="bench",
        keep_shingles=False,  # as the crawl asks its extraction processes
        plans=orders,
    )


def _pipeline(index: int) -> tuple[int, str | None, float]:
    """The page's text length, its plan event, and the CPU seconds process_page took."""
    from crawler.pipeline import process_page
    from crawler.plans import host_of

    page = _PAGES[index]
    job = _job(page, _ORDERS.get(host_of(page["url"])))
    started = time.process_time()
    outcome = process_page(job)
    spent = time.process_time() - started
    event = outcome.plan_report.event if outcome.plan_report else None
    return (len(outcome.document.text) if outcome.document else 0), event, spent


def learn_plans(pages: list[dict[str, Any]]) -> dict[str, Any]:
    """The plans a crawl has after its first pages: each template's pages through process_page
    with a plan book, every report recorded (learning, widening, retiring), until the template
    has no plan to be learned or :data:`WIDEN_PAGES` pages went through its plan."""
    from crawler.pipeline import process_page
    from crawler.plans import PlanBook, host_of, template_of

    book = PlanBook()
    served: Counter[tuple[str, str]] = Counter()
    for page in pages:
        host, template = host_of(page["url"]), template_of(page["url"])
        orders = book.orders("bench", host)
        if template in orders.settled or served[host, template] >= WIDEN_PAGES:
            continue
        outcome = process_page(_job(page, orders))
        if outcome.plan_report is not None:
            book.record("bench", host, outcome.plan_report)
            served[host, template] += template in orders.active
    return {host_of(p["url"]): book.orders("bench", host_of(p["url"])) for p in pages}


def time_stages(pages: list[dict[str, Any]], orders: dict[str, Any]) -> dict[str, Any]:
    """CPU milliseconds (mean) of each stage of process_page on fast-path pages (served by a plan
    without a check), timed one by one on up to :data:`STAGE_SAMPLE` of them, in
    :data:`STAGE_PASSES` passes over the same pages: each stage's figure is its lowest pass
    mean (the code is deterministic; a busy machine only adds to a pass)."""
    from crawler.plans import host_of

    served: list[Any] = []
    first: list[dict[str, float]] = []
    readers: Counter[str | None] = Counter()
    for page in pages:  # the first pass finds the sample
        if len(served) >= STAGE_SAMPLE:
            break
        job = _job(page, orders.get(host_of(page["url"])))
        timed = _stage_times(job)
        if timed is not None:
            served.append(job)
            first.append(timed[0])
            readers[timed[1]] += 1
    passes = [first] + [[t[0] for t in map(_stage_times, served) if t] for _ in range(STAGE_PASSES - 1)]
    result: dict[str, Any] = {"pages": len(served)}
    for stage in ("decode", "parse", "links", "extraction", "fingerprint", "process_page"):
        means = [sum(t[stage] for t in p) / len(p) for p in passes if p]
        result[stage] = round(1000 * min(means), 3) if means else None
    # the share of the timed pages the fast path read from lexbor's tree (the rest: lxml's)
    result["lexbor_share"] = round(readers["lexbor"] / len(served), 3) if served else None
    return result


#: Passes of the stage timing over the same sample (the lowest pass mean counts).
STAGE_PASSES = 3


def _stage_times(job: Any) -> tuple[dict[str, float], str | None] | None:
    """The CPU seconds of each stage of ``job``'s page and the tree its plan read it from, or
    None when its plan did not serve it unchecked."""
    from crawler.decode import decode_html
    from crawler.dedup import Fingerprint
    from crawler.fastread import parse
    from crawler.links import LinkTargets, extract_links_capped
    from crawler.pipeline import process_page
    from crawler.plans import PlanReport, extract_planned

    clock = time.thread_time
    heard: list[PlanReport] = []
    started = clock()
    decoded = decode_html(job.body, job.http_charset, None)
    decoded_at = clock()
    tree = parse(decoded.text)  # lexbor: shared by the links and a lexbor plan's fast path
    parsed_at = clock()
    targets = LinkTargets.of(tree)
    extract_links_capped(decoded.text, job.final_url, limit=job.max_links, targets=targets)
    linked_at = clock()
    hrefs = [href for href, _ in targets.anchors]
    extraction = extract_planned(decoded.text, job.final_url, job.plans, heard.append, tree, hrefs)
    extracted_at = clock()
    Fingerprint.of(extraction.text, keep_shingles=False)
    done = clock()
    if not heard or heard[0].event != "served":
        return None
    whole = clock()
    process_page(job)
    times = {
        "decode": decoded_at - started,
        "parse": parsed_at - decoded_at,
        "links": linked_at - parsed_at,
        "extraction": extracted_at - linked_at,
        "fingerprint": done - extracted_at,
        "process_page": clock() - whole,
    }
    return times, heard[0].reader


def _warm(mode: str) -> None:
    """Import and run once before the clock starts (both modes pay imports once per process)."""
    (_trafilatura if mode == "trafilatura" else _pipeline)(0)


def run(path: str, mode: str, workers: int) -> dict[str, Any]:
    global _ORDERS
    _load(path)
    if mode == "pipeline":
        _ORDERS = learn_plans(_PAGES)
    ctx = multiprocessing.get_context("fork")  # children inherit the pages: no pickling per task
    events: Counter[str | None] = Counter()
    with ctx.Pool(workers, initializer=_warm, initargs=(mode,)) as pool:
        pool.map(_noop, range(workers))  # wait for the workers to be up and warm
        started = time.monotonic()
        chars, cpu = 0, 0.0
        func = _trafilatura if mode == "trafilatura" else _pipeline
        for length, event, spent in pool.imap_unordered(func, range(len(_PAGES)), chunksize=8):
            chars += length
            cpu += spent
            events[event] += 1
        elapsed = time.monotonic() - started
    result = {
        "mode": mode,
        "workers": workers,
        "pages": len(_PAGES),
        "elapsed": elapsed,
        "chars": chars,
        # CPU inside the call itself, summed over the pages (the process tree's CPU also holds
        # loading the pages and, for the pipeline, learning the plans before the clock)
        "call_cpu_ms": 1000 * cpu / len(_PAGES) if _PAGES else 0.0,
    }
    if mode == "pipeline":
        result["plan_events"] = {str(k): v for k, v in events.items()}
        result["fast_path_ms"] = time_stages(_PAGES, _ORDERS)
    return result


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
