"""The store keeps extraction plans (crawler.plans.PlanStore) on both backends, with the
semantics of the reference in-memory store: versions, counts that only grow (a template's, over
its versions), retirement of the version seen."""

from __future__ import annotations

import threading
from typing import Any

from storage import Store


def _plan(version: int, **fields: Any) -> dict[str, Any]:
    return {
        "format": 1,
        "template": "t1",
        "signature": "sig",
        "version": version,
        "status": "active",
        "recipe": {"container": "#zoom"},
        "counts": {"served": 0, "verified": 0, "mismatches": 0, "misses": 0},
        "learned_at": "2026-12-02T00:00:00+00:00",
        "retired_at": None,
        "retired_why": None,
        **fields,
    }


def test_a_plan_round_trips_and_its_counts_only_grow(store: Store) -> None:
    store.save_plan("s", "a.cn", _plan(1))
    store.add_plan_counts("s", "a.cn", "t1", 1, {"served": 3, "verified": 1})
    store.save_plan("s", "a.cn", _plan(1, recipe={"container": "#zoom", "drops": ["x"]}))
    (loaded,) = store.load_plans("s", "a.cn")
    assert loaded["recipe"] == {"container": "#zoom", "drops": ["x"]}  # same version: replaced
    assert loaded["counts"] == {"served": 3, "verified": 1, "mismatches": 0, "misses": 0}  # kept
    assert store.load_plans("s", "b.cn") == [] and store.load_plans("other", "a.cn") == []


def test_versions_decide_and_retirement_needs_the_version_seen(store: Store) -> None:
    store.save_plan("s", "a.cn", _plan(2))
    store.save_plan("s", "a.cn", _plan(1, recipe={"container": "old"}))  # older: ignored
    assert store.load_plans("s", "a.cn")[0]["version"] == 2
    store.retire_plan("s", "a.cn", "t1", 1, "mismatch")  # a version nobody serves: ignored
    assert store.load_plans("s", "a.cn")[0]["status"] == "active"
    store.add_plan_counts("s", "a.cn", "t1", 1, {"served": 5})  # a superseded version's pages
    assert store.load_plans("s", "a.cn")[0]["counts"]["served"] == 5  # are the template's too
    store.add_plan_counts("s", "a.cn", "t1", 3, {"served": 4})  # a version not stored yet: no row
    assert store.load_plans("s", "a.cn")[0]["counts"]["served"] == 5
    store.retire_plan("s", "a.cn", "t1", 2, "mismatch: title")
    (retired,) = store.load_plans("s", "a.cn")
    assert (retired["status"], retired["retired_why"]) == ("retired", "mismatch: title")
    assert retired["retired_at"]
    store.add_plan_counts("s", "a.cn", "t1", 2, {"mismatches": 1})
    # learned again: its counts add to the template's, and the mismatch that retired v2 stays
    store.save_plan("s", "a.cn", _plan(3, counts={"served": 7}))
    (again,) = store.load_plans("s", "a.cn")
    assert (again["version"], again["status"], again["retired_why"]) == (3, "active", None)
    assert again["counts"] == {"served": 12, "verified": 0, "mismatches": 1, "misses": 0}


def test_counts_from_concurrent_workers_add_up(store: Store) -> None:
    store.save_plan("s", "a.cn", _plan(1))

    def worker() -> None:
        for _ in range(20):
            store.add_plan_counts("s", "a.cn", "t1", 1, {"served": 1})

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.load_plans("s", "a.cn")[0]["counts"]["served"] == 80


def test_plans_are_listed_and_cleared(store: Store) -> None:
    store.save_plan("s", "a.cn", _plan(1))
    store.save_plan("s", "b.cn", _plan(1))
    store.save_plan("t", "a.cn", _plan(1))
    assert [(s, h) for s, h, _ in store.iter_plans()] == [("s", "a.cn"), ("s", "b.cn"), ("t", "a.cn")]
    assert store.delete_plans(source="s", host="b.cn") == 1
    assert store.delete_plans(source="s") == 1
    assert [(s, h) for s, h, _ in store.iter_plans()] == [("t", "a.cn")]


def test_crawler_plans_lists_and_clears_and_stats_shows_the_fast_path_share(
    sqlite_url: str, capsys: Any
) -> None:
    import json

    from cli.main import main
    from storage import open_store

    with open_store(sqlite_url) as store:
        counts = {"served": 90, "verified": 2, "mismatches": 0, "misses": 8}
        store.save_plan("s", "a.cn", _plan(1, counts=counts))
    capsys.readouterr()
    assert main(["plans", "--json", "--db", sqlite_url]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["host"], row["served"], row["fast_path_share"]) == ("a.cn", 90, 0.9)
    assert main(["stats", "--json", "--db", sqlite_url]) == 0
    assert json.loads(capsys.readouterr().out)["plans"] == [row]
    assert main(["plans", "--clear", "--source", "s", "--db", sqlite_url]) == 0
    capsys.readouterr()
    assert main(["plans", "--json", "--db", sqlite_url]) == 0
    assert json.loads(capsys.readouterr().out) == []
