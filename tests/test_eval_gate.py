"""The extraction gate: the labelled corpus, scored as its README defines, against pinned floors.

Runs :mod:`crawler.evaluate` exactly as ``python -m crawler.evaluate --check`` does (bytes in,
every page, per-group scores, speed against plain trafilatura in the same run) and fails on any
breached floor of :data:`crawler.evaluate.FLOORS`. Skipped, with the reason, only when the corpus
directory is not there (set ``CRAWLER_EVAL_CORPUS`` to point at it).
"""

from __future__ import annotations

import pytest

from crawler.evaluate import FLOORS, TARGETS, default_corpus, judge, run

CORPUS = default_corpus()

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CORPUS / "index.jsonl").is_file(),
        reason=f"extraction corpus not found at {CORPUS} (set CRAWLER_EVAL_CORPUS)",
    ),
]


def test_floors_are_never_looser_than_the_targets() -> None:
    targets = {(g, m): (op, v) for g, m, op, v in TARGETS}
    for group, metric, op, value in FLOORS:
        if (group, metric) in targets:
            t_op, t_value = targets[(group, metric)]
            assert op == t_op
            assert (value >= t_value) if op == ">=" else (value <= t_value), (group, metric)


def test_extraction_meets_the_pinned_floors() -> None:
    scores, summaries, speed = run(CORPUS, rounds=2)
    assert summaries["all"].n == 80
    assert all(s.error is None or not s.error.startswith("crash") for s in scores), [
        s.error for s in scores if s.error
    ]
    verdicts = judge(FLOORS, summaries, speed)
    assert len(verdicts) == len(FLOORS)
    failed = [f"{v.group} {v.metric} = {v.value:.4f}, floor {v.op} {v.bound}" for v in verdicts if not v.ok]
    assert not failed, "; ".join(failed)
