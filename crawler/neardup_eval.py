"""Measure near-duplicate detection on labelled story groups, and choose its parameters.

Why: "one story, one document" must not merge different stories (precision) and must catch the
reposts (recall), at a small share of the per-page cost. The labelled set is built from the
sample web's articles, whose reposts are known exactly:

* stories: the 24 base articles and the first ``--generated-stories`` generated articles, each
  as its original plus four copies: an exact repost, Traditional with pinyin readings, a paragraph
  added, a paragraph cut (the transformations the sample portals apply);
* negatives: further generated articles (unrelated, built from the same sentence pool, so they
  share phrases), and the two articles on the same topic as sample 004 (厅市工作会商), which
  must never be merged with it.

Documents are fed to :class:`crawler.dedup.MemoryIndex` (the store runs the same decision) in a
seeded random order, as a crawl would meet them; every pair of documents counts: same story and
put in the same group is a true positive, and so on.

``python -m crawler.neardup_eval`` prints the figures for the default parameters (``--check``:
exit 1 below the targets); ``--sweep`` prints the table the defaults were chosen from.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

from crawler.dedup import DEFAULT_PARAMS, Fingerprint, MemoryIndex, NearDupParams
from crawler.samplesite.content import (
    ARTICLES,
    generated_article,
    to_traditional,
    with_added_paragraph,
    with_cut_paragraph,
)

#: Articles on the same topic as sample 004 that are different stories.
SAME_TOPIC = ("s004-sichuan-guangan-consultation", "sc-mianyang-consultation", "sc-nanchong-consultation")
VARIANTS = ("original", "exact", "traditional", "added", "cut")

TARGETS = {
    "precision": 0.99,
    "recall": 0.97,
    "traditional_recall": 1.0,
    "same_topic_merges": 0,
    "cost_share": 0.10,
}


@dataclass(frozen=True, slots=True)
class Item:
    story: str
    variant: str
    text: str


def labelled_set(generated_stories: int = 100, unrelated: int = 300) -> list[Item]:
    """Story groups (every variant of an article) plus unrelated single documents."""
    items: list[Item] = []
    bases = list(ARTICLES) + [generated_article(n) for n in range(generated_stories)]
    for article in bases:
        items += [
            Item(article.id, "original", article.text),
            Item(article.id, "exact", article.text),
            Item(article.id, "traditional", to_traditional(article.text, key=article.id)),
            Item(article.id, "added", with_added_paragraph(article).text),
            Item(article.id, "cut", with_cut_paragraph(article).text),
        ]
    for n in range(generated_stories, generated_stories + unrelated):
        article = generated_article(n)
        items.append(Item(article.id, "original", article.text))
    return items


@dataclass(slots=True)
class Result:
    precision: float
    recall: float
    traditional_recall: float
    same_topic_merges: int
    pairs: int
    documents: int


def evaluate(
    items: Sequence[Item], params: NearDupParams = DEFAULT_PARAMS, measure: str = "jaccard", seeds: int = 3
) -> Result:
    """Pair precision and recall over ``seeds`` random arrival orders (pooled)."""
    tp = fp = fn = 0
    trad_found = trad_total = same_topic = 0
    for seed in range(seeds):
        order = list(range(len(items)))
        random.Random(seed).shuffle(order)
        index = MemoryIndex(params, measure)
        group: dict[int, int] = {}
        for i in order:
            group[i], _, _ = index.add(items[i].text)
        for i, j in combinations(range(len(items)), 2):
            same, merged = items[i].story == items[j].story, group[i] == group[j]
            tp += same and merged
            fp += merged and not same
            fn += same and not merged
            if same and {items[i].variant, items[j].variant} == {"original", "traditional"}:
                trad_total += 1
                trad_found += merged
            if merged and not same and items[i].story in SAME_TOPIC and items[j].story in SAME_TOPIC:
                same_topic += 1
    return Result(
        precision=tp / (tp + fp) if tp + fp else 1.0,
        recall=tp / (tp + fn) if tp + fn else 1.0,
        traditional_recall=trad_found / trad_total if trad_total else 1.0,
        same_topic_merges=same_topic,
        pairs=tp + fn,
        documents=len(items),
    )


def measure_cost(params: NearDupParams = DEFAULT_PARAMS, rounds: int = 3) -> tuple[float, float, float]:
    """(seconds of ``process_page`` per page, seconds of the dedup work per page, their ratio)
    on the sample web's article pages, rendered to bytes as served.

    The dedup work is what a page adds: its fingerprint (key, shingles, signature, band keys;
    in the worker) and the index check with exact confirmation against an index holding every
    other page (in the writer).
    """
    from crawler.links import PageKind
    from crawler.pipeline import PageJob, process_page
    from crawler.samplesite import build_site
    from crawler.samplesite.server import Request

    web = build_site()
    jobs: list[PageJob] = []
    for (site_name, path), _page in sorted(web.articles.items()):
        site = web.sites[site_name]
        found = site.lookup(path)
        if found is None:
            continue
        route = found[1]
        response = route if not callable(route) else route(Request("GET", site_name, path))
        body = response.body if isinstance(response.body, bytes) else b"".join(response.body())
        url = f"http://{site_name}.test{path}"
        jobs.append(PageJob(url=url, final_url=url, body=body, kind=PageKind.ARTICLE, follow_links=True))
    texts: list[str] = []
    start = time.perf_counter()
    for _ in range(rounds):
        texts = []
        for job in jobs:
            outcome = process_page(job)
            if outcome.document is not None:
                texts.append(outcome.document.text)
    page_time = (time.perf_counter() - start) / (rounds * len(jobs))
    start = time.perf_counter()
    for _ in range(rounds):
        index = MemoryIndex(params)
        for text in texts:
            index.add(Fingerprint.of(text, params))
    dedup_time = (time.perf_counter() - start) / (rounds * max(len(texts), 1))
    return page_time, dedup_time, dedup_time / page_time


def memory_per_document(params: NearDupParams = DEFAULT_PARAMS, n: int = 300) -> tuple[float, int]:
    """(bytes per document of the in-process index (tracemalloc), bytes per document of the
    stored index rows: band keys and ids, and the packed signature)."""
    texts = [generated_article(n_).text for n_ in range(n)]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    index = MemoryIndex(params)
    for text in texts:
        index.add(text)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    stored = params.bands * (8 + 8) + params.num_perm * 4 + 8
    return (after - before) / n, stored


def separation(items: Sequence[Item], shingles: Sequence[int] = (3, 4, 5, 6)) -> None:
    """The margin a threshold can sit in: the least similar pair of one story against the most
    similar pair of two stories, per shingle size and measure."""
    from crawler.dedup import containment, dedup_key, jaccard, shingle_hashes

    print("shingle  min same-story J  max other J   min same-story C  max other C")
    for k in shingles:
        sets = [shingle_hashes(dedup_key(item.text), k) for item in items]
        lo_j = lo_c = 1.0
        hi_j = hi_c = 0.0
        for i, j in combinations(range(len(items)), 2):
            jac, con = jaccard(sets[i], sets[j]), containment(sets[i], sets[j])
            if items[i].story == items[j].story:
                lo_j, lo_c = min(lo_j, jac), min(lo_c, con)
            else:
                hi_j, hi_c = max(hi_j, jac), max(hi_c, con)
        print(f"{k:7}  {lo_j:16.3f}  {hi_j:11.3f}   {lo_c:16.3f}  {hi_c:11.3f}")


def sweep(items: Sequence[Item]) -> None:
    separation(items)
    print("shingle bands rows threshold measure   precision recall  trad  same-topic")
    for shingle in (3, 4, 5):
        for bands, rows in ((16, 4), (32, 2), (8, 8), (32, 4)):
            for measure, thresholds in (("jaccard", (0.5, 0.55, 0.6, 0.7)), ("containment", (0.7, 0.8))):
                for threshold in thresholds:
                    params = NearDupParams(shingle=shingle, bands=bands, rows=rows, threshold=threshold)
                    r = evaluate(items, params, measure, seeds=1)
                    print(
                        f"{shingle:7} {bands:5} {rows:4} {threshold:9.2f} {measure:11} "
                        f"{r.precision:9.4f} {r.recall:6.4f} {r.traditional_recall:5.2f} "
                        f"{r.same_topic_merges:6}"
                    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m crawler.neardup_eval", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--sweep", action="store_true", help="print the parameter table")
    parser.add_argument("--check", action="store_true", help="exit 1 if a figure misses its target")
    args = parser.parse_args(argv)
    items = labelled_set()
    if args.sweep:
        sweep(items)
        return 0
    result = evaluate(items)
    page, dedup, share = measure_cost()
    per_doc, stored = memory_per_document()
    p = DEFAULT_PARAMS
    print(f"parameters: shingle {p.shingle}, {p.bands} bands x {p.rows} rows, Jaccard >= {p.threshold}")
    print(f"documents {result.documents}, same-story pairs {result.pairs} (3 arrival orders)")
    rows = [
        ("pair precision", f"{result.precision:.4f}", ">= 0.99", result.precision >= TARGETS["precision"]),
        ("pair recall", f"{result.recall:.4f}", ">= 0.97", result.recall >= TARGETS["recall"]),
        (
            "Traditional+readings found",
            f"{result.traditional_recall:.0%}",
            "100%",
            result.traditional_recall >= 1.0,
        ),
        ("same-topic false merges", str(result.same_topic_merges), "0", result.same_topic_merges == 0),
        (
            "dedup share of per-page time",
            f"{share:.1%} ({dedup * 1e3:.2f} of {page * 1e3:.1f} ms)",
            "<= 10%",
            share <= TARGETS["cost_share"],
        ),
        ("index memory per document", f"{per_doc:.0f} B in process, {stored} B stored", "-", True),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value, target, ok in rows:
        print(f"{name:<{width}}  {value:<34} {target:<8} {'ok' if ok else 'MISSED'}")
    return 1 if args.check and not all(r[3] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
