"""The bench harness (``make bench``) runs end to end on a tiny web, so that it cannot rot unnoticed.

Not a measurement: ~45 article pages, one round, only the runs that need no extra packages or
services (the extraction limit and the embedded crawl). Checks the JSON it writes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from crawler.samplesite import build_site

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.timeout(60)


def test_bench_runs_end_to_end_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    argv = [sys.executable, "-m", "bench", "--pages", "30", "--rounds", "1"]
    argv += ["--only", "limit,pipeline,embedded"]
    argv += ["--json", str(out), "--timeout", "45"]
    run = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=55)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(out.read_text(encoding="utf-8"))

    meta = report["meta"]
    assert meta["articles"] >= 30
    assert 20_000 < meta["article_bytes"]["median"] < 40_000  # pages weigh what real portals do
    summary = report["summary"]
    assert summary["limit"]["ok"] and summary["embedded"]["ok"], summary
    limit, embedded = summary["limit"], summary["embedded"]
    assert limit["articles"] == meta["articles"]
    # The crawl reached every reachable article and stored documents for them: one document per
    # story (reposts on other portals are recorded as copies, see crawler/dedup.py).
    assert embedded["articles"] >= meta["reachable_articles"]
    web = build_site()  # the web of --pages 30 (checked by its reachable count)
    assert len(web.reachable_articles()) == meta["reachable_articles"]
    stories = {web.articles[key].article_id for key in web.reachable_articles()}
    assert embedded["documents"] >= 0.8 * len(stories)
    assert embedded["pages_per_s"] > 0 and embedded["cpu_per_page"] > 0
    # the stored documents are scored against the ground truth, and the plans' share is read
    assert embedded["scored_documents"] == embedded["documents"]
    assert embedded["char_f1"] > 0.95 and embedded["leak_share"] == 0
    assert 0 <= embedded["fast_path_share"] <= 1 and embedded["plan_mismatches"] >= 0
    assert 0 < embedded["peak_mb"] < 1000
    assert {"crawl main", "pool worker"} <= set(embedded["peak_mb_by_role"])
    assert {t["target"] for t in report["targets"]} >= {"embedded >= 0.6x two-core extraction limit"}
    assert sorted(r["name"] for r in report["runs"]) == ["embedded", "limit", "pipeline"]
    pipeline = summary["pipeline"]
    assert pipeline["ok"] and pipeline["articles"] == meta["articles"]
    assert pipeline["call_cpu_ms"] > 0 and 0 <= pipeline["pipeline_served_share"] <= 1
    stages = pipeline["fast_path_ms"]  # a plan is learned on a 45-page web and serves pages
    assert 0 < stages["extraction"] < stages["process_page"]
    assert "extraction <= 1 ms CPU on a fast-path page" in run.stdout
    assert "embedded >= 0.6x two-core extraction limit" in run.stdout  # the PASS/FAIL lines


def test_the_sampler_sees_a_process_that_execs_as_its_new_program() -> None:
    """A forked child that execs (the forkserver) is labelled and measured as the program it runs
    now, not as the copy of its parent it was for a moment (which held the parent's memory)."""
    from bench.measure import TreeSampler

    after = "import time; kept = bytearray(20_000_000); time.sleep(0.8)  # after exec"
    before = (
        "import os, sys, time; held = bytearray(120_000_000); time.sleep(0.5); "
        f"os.execv(sys.executable, [sys.executable, '-c', {after!r}])"
    )
    child = subprocess.Popen([sys.executable, "-c", before])
    with TreeSampler([child.pid], interval=0.02) as sampler:
        child.wait(timeout=10)
    (process,) = sampler.result.summary()
    assert process["pid"] == child.pid
    command = sampler.result.processes[child.pid].cmd
    assert "after exec" in command and "held" not in command  # the command line it exec'd
    assert 20 <= process["peak_rss_mb"] < 100  # the 120 MB before the exec is not this program's
