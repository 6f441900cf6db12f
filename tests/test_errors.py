"""One vocabulary of outcomes: every stored reason is a class of :mod:`crawler.errors`, and the
records are built from those classes by one builder (:func:`crawler.records.failure_record`)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from crawler import errors
from crawler.records import UrlStatus, failure_record

REPO = Path(__file__).resolve().parent.parent
PRODUCT_PACKAGES = ("crawler", "storage", "workers", "cli")


def _reason_literals(path: Path) -> list[str]:
    """``reason=`` / ``error_reason=`` keyword arguments and assignments given a string literal."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.keyword) and node.arg in ("reason", "error_reason"):
            if isinstance(node.value, ast.Constant | ast.JoinedStr):
                found.append(f"{path.relative_to(REPO)}:{node.value.lineno}")
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if (
                    isinstance(target, ast.Attribute)
                    and target.attr in ("reason", "error_reason")
                    and isinstance(node.value, ast.Constant)
                ):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    return found


def test_no_reason_is_invented_outside_the_errors_module() -> None:
    offenders = [
        hit
        for package in PRODUCT_PACKAGES
        for path in sorted((REPO / package).rglob("*.py"))
        if path != REPO / "crawler" / "errors.py" and "samplesite" not in path.parts
        for hit in _reason_literals(path)
    ]
    assert not offenders, f"reasons written as strings outside crawler/errors.py: {offenders}"


def test_every_reason_is_known_and_unique_per_class() -> None:
    classes: list[type[errors.CrawlerError]] = []
    pending: list[type[errors.CrawlerError]] = [errors.CrawlerError]
    while pending:
        cls = pending.pop()
        classes.append(cls)
        pending.extend(cls.__subclasses__())
    leaves = [c for c in classes if not c.__subclasses__() and c.__module__ == errors.__name__]
    reasons = [c.reason for c in leaves if c not in (errors.ServerError, errors.HTTPStatusError)]
    assert len(reasons) == len(set(reasons)), sorted(reasons)
    for reason in reasons:
        assert errors.known_reason(reason)
    assert errors.known_reason("http_404") and errors.known_reason("http_503")
    assert not errors.known_reason("http_40") and not errors.known_reason("made_up")
    for cls in leaves:
        assert cls.__name__ in errors.__doc__, f"{cls.__name__} missing from the tree in the docstring"


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (errors.DisallowedByRobots("no"), UrlStatus.DISALLOWED),
        (errors.OverBudget("spent"), UrlStatus.QUEUED),
        (errors.FetchTimeout("slow"), UrlStatus.FAILED_TRANSIENT),
        (errors.RobotsUnavailable("503"), UrlStatus.FAILED_TRANSIENT),
        (errors.InternalError("bug"), UrlStatus.FAILED_TRANSIENT),
        (errors.TimeLimitExceeded("cut"), UrlStatus.FAILED_TRANSIENT),
        (errors.WorkerLost("dead"), UrlStatus.FAILED_PERMANENT),
        (errors.UnknownSource("who"), UrlStatus.FAILED_PERMANENT),
        (errors.RedirectLoop("loop"), UrlStatus.FAILED_PERMANENT),
        (errors.RedirectOutOfScope("away", final_url="http://b.example/"), UrlStatus.OUT_OF_SCOPE),
        (errors.HTTPStatusError("gone", status=410), UrlStatus.FAILED_PERMANENT),
    ],
)
def test_failure_record_status_follows_the_class(error: errors.CrawlerError, status: UrlStatus) -> None:
    record = failure_record("http://a.example/x", "s", 2, error, attempts=3)
    assert record.status is status
    assert record.error_reason == error.reason
    assert record.attempts == 3 and record.depth == 2


def test_a_failed_redirect_hop_is_named_in_the_record() -> None:
    error = errors.HTTPStatusError("gone", status=404, final_url="http://a.example/moved")
    record = failure_record("http://a.example/old", "s", 1, error)
    assert (record.final_url, record.error_reason) == ("http://a.example/moved", "http_404")


def test_a_waiting_visit_stays_queued_with_its_reason() -> None:
    record = failure_record("u", "s", 0, errors.ServerError("503", status=503), waiting=True)
    assert (record.status, record.error_reason, record.http_status) == (UrlStatus.QUEUED, "http_503", 503)
