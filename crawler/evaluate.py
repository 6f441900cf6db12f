"""The extraction gate: score :func:`crawler.extract.extract_bytes` on the labelled corpus.

``python -m crawler.evaluate [--corpus DIR] [--json OUT] [--check] [--rounds N]``

Runs our extractor on every page of the extraction corpus exactly as saved (bytes in), scores
the output against the hand-labelled gold text with the corpus README's definitions, prints a
table overall, per category and for news+gov, measures our speed against plain
``trafilatura.extract`` on the same pages, and compares everything with the targets.
``--check`` exits 1 when a pinned floor (:data:`FLOORS`) is breached; it is the CI gate.

Scoring (from the corpus README; keep it so that figures compare): both texts NFKC-normalized
with all whitespace removed; character-bag and bigram-bag precision/recall/F1 over multisets;
empty output scores 0; a *leak* is a boilerplate marker in the output that the gold lacks; a
*garbled* output has >2% replacement/Latin-1/private-use characters, far fewer common hanzi than
the gold, or is a page of Cyrillic/Greek where the gold has none. An extraction error counts as
empty output.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from crawler.errors import ExtractionError
from crawler.normalize import common_hanzi_ratio

CATEGORIES: tuple[str, ...] = ("news", "gov", "forum", "blog", "literature", "reference")
#: Boilerplate markers, as they read after NFKC (the full-width colon becomes ':').
LEAK_MARKERS: tuple[str, ...] = (
    "免责声明",
    "版权所有",
    "ICP备",
    "当前位置",
    "打印",
    "关闭窗口",
    "责任编辑",
    "来源:",
    "点击:",
)

#: The issues' targets. A row is (group, metric, comparison, value). Issue 13 raised the news+gov
#: mean to 0.975 and asked for no leak at all.
TARGETS: tuple[tuple[str, str, str, float], ...] = (
    ("news+gov", "f1_mean", ">=", 0.975),
    ("news+gov", "f1_median", ">=", 0.99),
    ("news+gov", "leak_share", "<=", 0.0),
    ("news+gov", "garbled", "<=", 0),
    ("news+gov", "empty", "<=", 0),
    ("all", "f1_mean", ">=", 0.90),
    ("speed", "ratio", ">=", 0.75),
)

#: Pinned floors for ``--check`` and the CI gate (tests/test_eval_gate.py): what we measured minus
#: a small margin (0.01 F1; speed a little under its lowest run), never looser than the targets.
#: Measured when pinned (issue 13): news+gov mean 0.980 / median 0.999 / bigram 0.979, no leak,
#: empty or garbled output; all 80 mean 0.910 / median 0.993, one garbled (a forum page where the
#: extractor picks an English upload notice); speed ratio 1.04-1.07 on a loaded machine (0.85-0.93
#: when the floor was set). The news+gov mean floor is the target itself (0.975), 0.005 under the
#: measure. Raise them when the extractor improves; never lower them to let a change through.
FLOORS: tuple[tuple[str, str, str, float], ...] = (
    ("news+gov", "f1_mean", ">=", 0.975),
    ("news+gov", "f1_median", ">=", 0.99),
    ("news+gov", "bigram_f1_mean", ">=", 0.969),
    ("news+gov", "leak_share", "<=", 0.0),
    ("news+gov", "garbled", "<=", 0),
    ("news+gov", "empty", "<=", 0),
    ("all", "f1_mean", ">=", 0.90),
    ("all", "f1_median", ">=", 0.983),
    ("all", "garbled", "<=", 1),
    ("all", "empty", "<=", 0),
    ("speed", "ratio", ">=", 0.80),
)


def default_corpus() -> Path:
    env = os.environ.get("CRAWLER_EVAL_CORPUS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent.parent / "shared" / "extraction-corpus"


# -- corpus ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class Case:
    id: str
    category: str
    html: bytes
    gold: str
    actual_encoding: str
    url: str | None = None

    def correct_text(self) -> str:
        """The page decoded with the charset it really has (for the plain-trafilatura baseline)."""
        encoding = self.actual_encoding if self.actual_encoding not in ("unknown", "", None) else "gb18030"
        return self.html.decode(encoding, "replace")


def load_corpus(directory: Path) -> list[Case]:
    cases = []
    with (directory / "index.jsonl").open(encoding="utf-8") as index:
        for line in index:
            if not line.strip():
                continue
            row = json.loads(line)
            base = directory / "cases" / row["id"]
            cases.append(
                Case(
                    id=row["id"],
                    category=row["category"],
                    html=base.with_suffix(".html").read_bytes(),
                    gold=base.with_suffix(".txt").read_text(encoding="utf-8"),
                    actual_encoding=row.get("actual_encoding") or "",
                    url=row.get("url"),
                )
            )
    return cases


# -- scoring --------------------------------------------------------------------------------------


def scoring_form(text: str) -> str:
    """NFKC, all whitespace removed: the form both sides are compared in."""
    return "".join(unicodedata.normalize("NFKC", text).split())


def _prf(out: Counter[str], gold: Counter[str]) -> tuple[float, float, float]:
    if not out or not gold:
        return 0.0, 0.0, 0.0
    overlap = sum((out & gold).values())
    p = overlap / sum(out.values())
    r = overlap / sum(gold.values())
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def _bigrams(text: str) -> Counter[str]:
    return Counter(text[i : i + 2] for i in range(len(text) - 1))


def _suspect_share(text: str) -> float:
    """Share of replacement, Latin-1 supplement and private-use characters."""
    if not text:
        return 0.0
    bad = sum(1 for ch in text if ch == "\ufffd" or "\u0080" <= ch <= "\u00ff" or "\ue000" <= ch <= "\uf8ff")
    return bad / len(text)


def _greek_cyrillic_share(text: str) -> float:
    if not text:
        return 0.0
    return sum(1 for ch in text if "\u0370" <= ch <= "\u04ff") / len(text)


def is_garbled(output: str, gold: str) -> bool:
    """The README's definition, on the scoring forms of output and gold."""
    if not output:
        return False
    if _suspect_share(output) > 0.02:
        return True
    gold_ratio = common_hanzi_ratio(gold)
    # "far fewer common hanzi than the gold": under a third of the gold's share
    if gold_ratio > 0.2 and common_hanzi_ratio(output) < gold_ratio / 3:
        return True
    return _greek_cyrillic_share(output) > 0.2 and _greek_cyrillic_share(gold) == 0


@dataclass(slots=True)
class CaseScore:
    id: str
    category: str
    precision: float
    recall: float
    f1: float
    bigram_f1: float
    leaks: list[str]
    empty: bool
    garbled: bool
    error: str | None = None


def score_case(case_id: str, category: str, output: str, gold: str, error: str | None = None) -> CaseScore:
    out, ref = scoring_form(output), scoring_form(gold)
    p, r, f1 = _prf(Counter(out), Counter(ref))
    _, _, bf1 = _prf(_bigrams(out), _bigrams(ref))
    leaks = [m for m in LEAK_MARKERS if m in out and m not in ref]
    return CaseScore(case_id, category, p, r, f1, bf1, leaks, not out, is_garbled(out, ref), error)


@dataclass(slots=True)
class Summary:
    group: str
    n: int
    p_mean: float
    r_mean: float
    f1_mean: float
    p_median: float
    r_median: float
    f1_median: float
    bigram_f1_mean: float
    leak_share: float
    empty: int
    garbled: int


def summarize(group: str, scores: list[CaseScore]) -> Summary:
    if not scores:
        return Summary(group, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)

    def col(name: str) -> list[float]:
        return [getattr(s, name) for s in scores]

    return Summary(
        group=group,
        n=len(scores),
        p_mean=statistics.fmean(col("precision")),
        r_mean=statistics.fmean(col("recall")),
        f1_mean=statistics.fmean(col("f1")),
        p_median=statistics.median(col("precision")),
        r_median=statistics.median(col("recall")),
        f1_median=statistics.median(col("f1")),
        bigram_f1_mean=statistics.fmean(col("bigram_f1")),
        leak_share=sum(1 for s in scores if s.leaks) / len(scores),
        empty=sum(1 for s in scores if s.empty),
        garbled=sum(1 for s in scores if s.garbled),
    )


def group_scores(scores: list[CaseScore]) -> dict[str, Summary]:
    groups: dict[str, list[CaseScore]] = {"all": scores, "news+gov": []}
    for cat in CATEGORIES:
        groups[cat] = [s for s in scores if s.category == cat]
    groups["news+gov"] = groups["news"] + groups["gov"]
    return {name: summarize(name, members) for name, members in groups.items()}


# -- running --------------------------------------------------------------------------------------


def run_ours(case: Case) -> tuple[str, str | None]:
    """Our extractor on the saved bytes; an extraction error is empty output."""
    from crawler.extract import extract_bytes

    try:
        return extract_bytes(case.html, case.url).text, None
    except ExtractionError as exc:
        return "", f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # a crash is a failure to score, not a reason to stop the run
        return "", f"crash {type(exc).__name__}: {exc}"


def evaluate(
    cases: Iterable[Case], extractor: Callable[[Case], tuple[str, str | None]] = run_ours
) -> list[CaseScore]:
    scores = []
    for case in cases:
        output, error = extractor(case)
        scores.append(score_case(case.id, case.category, output, case.gold, error))
    return scores


@dataclass(slots=True)
class Speed:
    rounds: int
    pages: int
    ours_pps: float
    trafilatura_pps: float
    ratio: float
    ours_seconds: list[float] = field(default_factory=list)
    trafilatura_seconds: list[float] = field(default_factory=list)


def measure_speed(cases: list[Case], rounds: int = 3) -> Speed:
    """Pages/s of ours (bytes in) vs plain ``trafilatura.extract`` (correctly decoded text in).

    Interleaved page by page, alternating which goes first, so that load or thermal drift hits
    both sides alike.
    """
    import trafilatura

    texts = [c.correct_text() for c in cases]
    if cases:  # first-call costs (imports, caches) are not what we measure
        run_ours(cases[0])
        trafilatura.extract(texts[0], url=cases[0].url)
    ours_t: list[float] = []
    traf_t: list[float] = []
    for rnd in range(rounds):
        o_sum = t_sum = 0.0
        for i, (case, text) in enumerate(zip(cases, texts, strict=True)):
            order = (0, 1) if (i + rnd) % 2 == 0 else (1, 0)
            for which in order:
                start = time.perf_counter()
                if which == 0:
                    run_ours(case)
                    o_sum += time.perf_counter() - start
                else:
                    trafilatura.extract(text, url=case.url)
                    t_sum += time.perf_counter() - start
        ours_t.append(o_sum)
        traf_t.append(t_sum)
    n = len(cases) * len(ours_t)
    ours_pps = n / sum(ours_t) if sum(ours_t) else 0.0
    traf_pps = n / sum(traf_t) if sum(traf_t) else 0.0
    return Speed(
        len(ours_t), len(cases), ours_pps, traf_pps, ours_pps / traf_pps if traf_pps else 0.0, ours_t, traf_t
    )


# -- targets --------------------------------------------------------------------------------------


@dataclass(slots=True)
class Verdict:
    group: str
    metric: str
    op: str
    bound: float
    value: float
    ok: bool


def _metric(summaries: dict[str, Summary], speed: Speed | None, group: str, metric: str) -> float | None:
    if group == "speed":
        return getattr(speed, metric) if speed is not None else None
    return float(getattr(summaries[group], metric))


def judge(
    rows: Iterable[tuple[str, str, str, float]], summaries: dict[str, Summary], speed: Speed | None
) -> list[Verdict]:
    verdicts = []
    for group, metric, op, bound in rows:
        value = _metric(summaries, speed, group, metric)
        if value is None:
            continue
        ok = value >= bound if op == ">=" else value <= bound
        verdicts.append(Verdict(group, metric, op, bound, value, ok))
    return verdicts


# -- report ---------------------------------------------------------------------------------------


def print_report(
    summaries: dict[str, Summary],
    scores: list[CaseScore],
    speed: Speed | None,
    targets: list[Verdict],
    floors: list[Verdict],
    worst: int = 10,
) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(140, Console().width))
    table = Table(title="Extraction on the labelled corpus (char-bag scores, README definitions)")
    for name in (
        "group",
        "N",
        "P mean",
        "R mean",
        "F1 mean",
        "P med",
        "R med",
        "F1 med",
        "bigram F1",
        "leak",
        "empty",
        "garbled",
    ):
        table.add_column(name, justify="left" if name == "group" else "right")
    order = ["all", "news+gov", *CATEGORIES]
    for name in order:
        g = summaries[name]
        table.add_row(
            name,
            str(g.n),
            f"{g.p_mean:.3f}",
            f"{g.r_mean:.3f}",
            f"{g.f1_mean:.3f}",
            f"{g.p_median:.3f}",
            f"{g.r_median:.3f}",
            f"{g.f1_median:.3f}",
            f"{g.bigram_f1_mean:.3f}",
            f"{g.leak_share:.1%}",
            str(g.empty),
            str(g.garbled),
        )
    console.print(table)

    low = sorted(scores, key=lambda s: s.f1)[:worst]
    worst_table = Table(title=f"Lowest {len(low)} pages")
    for name in ("id", "category", "P", "R", "F1", "leaks", "note"):
        worst_table.add_column(name)
    for s in low:
        worst_table.add_row(
            s.id,
            s.category,
            f"{s.precision:.3f}",
            f"{s.recall:.3f}",
            f"{s.f1:.3f}",
            ",".join(s.leaks),
            s.error or ("garbled" if s.garbled else ""),
        )
    console.print(worst_table)
    leaky = [s for s in scores if s.leaks]
    if leaky:
        console.print("Leaks: " + "; ".join(f"{s.id} ({','.join(s.leaks)})" for s in leaky))

    if speed is not None:
        console.print(
            f"Speed over {speed.rounds} round(s) of {speed.pages} pages: ours {speed.ours_pps:.1f} pages/s "
            f"(bytes in, decode+extract+clean), plain trafilatura.extract "
            f"{speed.trafilatura_pps:.1f} pages/s (decoded text in): ratio {speed.ratio:.2f}"
        )

    for title, verdicts in (("Targets", targets), ("Pinned floors (--check)", floors)):
        t = Table(title=title)
        for name in ("group", "metric", "bound", "measured", "result"):
            t.add_column(name)
        for v in verdicts:
            t.add_row(
                v.group,
                v.metric,
                f"{v.op} {v.bound:g}",
                f"{v.value:.4g}",
                "[green]PASS[/green]" if v.ok else "[red]FAIL[/red]",
            )
        console.print(t)


def run(corpus: Path, rounds: int = 3) -> tuple[list[CaseScore], dict[str, Summary], Speed | None]:
    cases = load_corpus(corpus)
    scores = evaluate(cases)
    summaries = group_scores(scores)
    speed = measure_speed(cases, rounds) if rounds > 0 else None
    return scores, summaries, speed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crawler.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--corpus", type=Path, default=default_corpus(), help="corpus directory (index.jsonl, cases/)"
    )
    parser.add_argument("--json", type=Path, help="write per-page scores, summaries and speed here")
    parser.add_argument("--check", action="store_true", help="exit 1 if a pinned floor is breached")
    parser.add_argument(
        "--rounds", type=int, default=3, help="timed rounds for the speed comparison (0: skip)"
    )
    args = parser.parse_args(argv)

    if not (args.corpus / "index.jsonl").is_file():
        print(f"no corpus at {args.corpus} (set --corpus or CRAWLER_EVAL_CORPUS)", file=sys.stderr)
        return 2
    scores, summaries, speed = run(args.corpus, args.rounds)
    targets = judge(TARGETS, summaries, speed)
    floors = judge(FLOORS, summaries, speed)
    print_report(summaries, scores, speed, targets, floors)
    if args.json:
        payload = {
            "summaries": {k: asdict(v) for k, v in summaries.items()},
            "pages": [asdict(s) for s in scores],
            "speed": asdict(speed) if speed else None,
            "targets": [asdict(v) for v in targets],
            "floors": [asdict(v) for v in floors],
        }
        args.json.write_text(json.dumps(payload, ensure_ascii=False, indent=2), encoding="utf-8")
    if args.check and not all(v.ok for v in floors):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
