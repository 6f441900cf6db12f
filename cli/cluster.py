"""Cluster commands of the ``crawler`` CLI: ``enqueue``, ``status``, ``wait``.

:func:`register` adds them to the main parser. Nothing here imports Celery (or the crawl code)
at module import time, only inside the command functions, so that ``crawler --help`` stays fast
and the ``crawler`` package never pulls Celery in.

The cluster itself runs with the standard Celery commands::

    celery -A workers.app worker -l info
    celery -A workers.app beat -l info
    celery -A workers.app flower --address=127.0.0.1 --port=5555   # CRAWLER_FLOWER_PASSWORD set

How ad-hoc start URLs reach the workers: ``crawler enqueue URL...`` without ``--source`` builds a
source scoped to the URLs' origins (as ``crawler crawl URL`` does) with a stable id
``adhoc-<hash of the URLs>``, publishes its JSON in Redis (``<prefix>source:<id>``), and queues
the URLs under that id. Workers look a source id up in their seeds directory first, then in
Redis, so the scope travels once, not in every message.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from settings import settings_for_database

if TYPE_CHECKING:
    import redis

    from crawler.sources import Source
    from workers.state import CrawlState

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
#: ``wait`` declares the cluster idle after this many consecutive idle polls (a message is
#: briefly in neither a queue nor the unacked hash while a worker takes it).
IDLE_POLLS = 3


class ClusterUnreachable(Exception):
    """Redis (the broker and the crawl state) does not answer."""


def _err(message: str) -> None:
    print(message, file=sys.stderr)


def _safe_url(url: str) -> str:
    from storage.models import mask_password

    return mask_password(url)


@contextmanager
def _redis(settings: Any) -> Iterator[redis.Redis]:
    """A connected Redis client, or :class:`ClusterUnreachable` with instructions."""
    import redis as redis_module

    from workers.state import connect

    client = connect(settings.redis_url, timeout=3.0)
    try:
        client.ping()
    except (redis_module.ConnectionError, redis_module.TimeoutError, OSError) as exc:
        client.close()
        raise ClusterUnreachable(
            f"cannot reach Redis at {_safe_url(settings.redis_url)}: start it or set CRAWLER_REDIS_URL "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    try:
        yield client
    finally:
        client.close()


def _state(client: redis.Redis) -> CrawlState:
    from workers.app import config
    from workers.state import CrawlState

    return CrawlState(client, config.key_prefix)


def _run(command: Any, args: argparse.Namespace) -> int:
    try:
        import workers.app  # noqa: F401  (checks the cluster settings: one line if they clash)
    except ValueError as exc:
        from settings import Settings, env_name

        message = " ".join(str(exc).split())
        for name in sorted(Settings.model_fields, key=len, reverse=True):  # name the variables
            message = re.sub(rf"\b{name}\b", env_name(name), message)
        _err(f"crawler: error: the cluster settings do not fit together: {message}")
        return EXIT_USAGE
    try:
        return int(command(args))
    except ClusterUnreachable as exc:
        _err(f"crawler: error: {exc}")
        return EXIT_FAILURE


# -- enqueue -------------------------------------------------------------------------------------


def _find_source(source_id: str, state: CrawlState) -> Source | None:
    from seeds import sources_report

    return sources_report().sources.get(source_id) or state.get_source(source_id)


def cmd_enqueue(args: argparse.Namespace) -> int:
    return _run(_enqueue, args)


def _enqueue(args: argparse.Namespace) -> int:
    from crawler.errors import InvalidURL
    from crawler.links import Scope
    from crawler.sources import Source
    from crawler.urls import canonicalize

    if not args.urls and not args.source:
        _err("enqueue: give start URLs, --source ID, or both (see `crawler sources`)")
        return EXIT_USAGE
    settings = settings_for_database(getattr(args, "db", None))
    urls: list[str] = []
    for raw in args.urls:
        try:
            urls.append(canonicalize(raw, max_length=settings.max_url_length))
        except InvalidURL as exc:
            _err(f"enqueue: bad URL {raw!r}: {exc}")
            return EXIT_USAGE
    with _redis(settings) as client:
        from crawler.visit import Visit
        from workers.app import send_crawl_source, send_fetch

        state = _state(client)
        if args.source:
            source = _find_source(args.source, state)
            if source is None:
                from seeds import sources_report

                invalid = sources_report().invalid.get(args.source)
                if invalid is not None:  # a bad file disables only itself
                    _err(f"enqueue: source {args.source!r} is disabled: {invalid}")
                else:
                    _err(f"enqueue: unknown source {args.source!r} (not in the seeds nor published in Redis)")
                return EXIT_USAGE
        else:
            try:
                source = Source.from_urls(urls, max_depth=3 if args.max_depth is None else args.max_depth)
            except ValueError as exc:
                from pydantic import ValidationError

                from crawler.sources import describe_errors

                why = describe_errors(exc) if isinstance(exc, ValidationError) else str(exc)
                _err(f"enqueue: bad start URL: {why}")
                return EXIT_USAGE
        # Published even for seeds: a worker whose image lacks this source still finds it.
        state.put_source(source)
        if not urls:
            send_crawl_source(source.id)
            print(f"queued a run of source {source.id}")
            return EXIT_OK
        scope = Scope(source)
        wanted: list[str] = []
        for url in urls:
            verdict = scope.judge(url, 0)
            if verdict.follow:
                wanted.append(url)
            else:
                _err(f"enqueue: skipping {url}: not in the scope of {source.id} ({verdict.reason})")
        # Given URLs are start pages of a run: visited again even if some earlier crawl saw them.
        run = time.time()
        queued = 0
        for url, claimed in zip(wanted, state.claim_for_run(source.id, run, wanted), strict=True):
            if claimed:
                send_fetch(Visit(url, source.id, 0, run=run, revisit=True))
                queued += 1
        print(f"queued {queued} URL(s) for source {source.id}")
        return EXIT_OK if queued or not urls else EXIT_FAILURE


# -- status --------------------------------------------------------------------------------------


def cluster_counts(client: redis.Redis) -> dict[str, Any]:
    """Messages waiting per queue, and delivered but unfinished (running or due later)."""
    from workers.routing import KOMBU_UNACKED_KEY, QUEUES, queue_keys

    pipe = client.pipeline(transaction=False)
    for queue in QUEUES:
        for key in queue_keys(queue):
            pipe.llen(key)
    pipe.hlen(KOMBU_UNACKED_KEY)
    replies = [int(n) for n in pipe.execute()]
    per_queue: dict[str, int] = {}
    index = 0
    for queue in QUEUES:
        steps = len(queue_keys(queue))
        per_queue[queue] = sum(replies[index : index + steps])
        index += steps
    return {"queued": per_queue, "unacked": replies[-1]}


def _active_tasks(timeout: float) -> dict[str, int] | None:
    """Tasks running per worker, asked of the workers themselves (None: no worker answered)."""
    from workers.app import app

    replies = app.control.inspect(timeout=timeout).active()
    if not replies:
        return None
    return {name: len(tasks or []) for name, tasks in sorted(replies.items())}


def _store_counts(settings: Any) -> dict[str, Any]:
    from storage import StorageError, open_store
    from storage.location import missing_store

    problem = missing_store(settings.database_url)
    if problem is not None:  # status only reads: it must not create an empty store
        raise StorageError(problem)

    with open_store(settings.database_url) as store:
        stats = store.stats()
        url_counts = store.url_counts()
    per_source: dict[str, dict[str, Any]] = {}
    for source, count in stats["documents_by_source"].items():
        per_source.setdefault(str(source), {"documents": 0, "urls": {}})["documents"] = count
    for source, by_status in url_counts.items():
        per_source.setdefault(str(source), {"documents": 0, "urls": {}})["urls"].update(by_status)
    return {"documents": stats["documents"], "urls": stats["urls"], "sources": per_source}


def cmd_status(args: argparse.Namespace) -> int:
    return _run(_status, args)


def _status(args: argparse.Namespace) -> int:
    from storage import StorageError

    settings = settings_for_database(getattr(args, "db", None))
    with _redis(settings) as client:
        state = _state(client)
        report: dict[str, Any] = cluster_counts(client)
        report["seen_urls"] = state.seen_count()
        report["last_runs"] = {
            source: time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(run))
            for source, run in state.last_runs().items()
        }
    report["workers"] = _active_tasks(args.inspect_timeout)
    try:
        report["store"] = _store_counts(settings)
    except StorageError as exc:
        report["store"] = {"error": str(exc)}
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2, sort_keys=True))
        return EXIT_OK
    _print_status(report, settings)
    return EXIT_OK


def _print_status(report: dict[str, Any], settings: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]broker[/bold] {_safe_url(settings.redis_url)}")
    for queue, depth in report["queued"].items():
        console.print(f"  queue {queue}: {depth} waiting")
    console.print(f"  delivered, not finished (running or due later): {report['unacked']}")
    console.print(f"  URLs ever queued: {report['seen_urls']}")
    workers = report["workers"]
    if workers is None:
        console.print("  workers: none answered (start one: celery -A workers.app worker -l info)")
    else:
        for name, active in workers.items():
            console.print(f"  worker {name}: {active} task(s) running")
    for source, when in sorted(report["last_runs"].items()):
        console.print(f"  last run of {source}: {when} UTC")
    store = report["store"]
    if "error" in store:
        console.print(f"[red]store unavailable:[/red] {store['error']}")
        return
    table = Table(title=f"store {store['documents']} documents, {store['urls']} URLs", title_justify="left")
    table.add_column("source")
    table.add_column("documents", justify="right")
    table.add_column("URLs by status")
    for source, entry in sorted(store["sources"].items()):
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(entry["urls"].items()))
        table.add_row(source, str(entry["documents"]), statuses)
    console.print(table)


# -- wait ----------------------------------------------------------------------------------------


def cmd_wait(args: argparse.Namespace) -> int:
    return _run(_wait, args)


def _wait(args: argparse.Namespace) -> int:
    """Poll until the queues are empty and nothing is in flight; a progress line on standard
    error every ``--progress`` seconds (and when the counts change) so a script's log shows it."""
    settings = settings_for_database(getattr(args, "db", None))
    started = time.monotonic()
    deadline = started + args.timeout if args.timeout is not None else None
    last_line = ""
    last_printed = -float("inf")
    with _redis(settings) as client:
        idle = 0
        while True:
            counts = cluster_counts(client)
            queued = sum(counts["queued"].values())
            busy = queued + counts["unacked"]
            idle = idle + 1 if busy == 0 else 0
            if idle >= IDLE_POLLS:
                _err(f"wait: idle after {time.monotonic() - started:.0f} s")
                return EXIT_OK
            if deadline is not None and time.monotonic() >= deadline:
                _err(
                    f"wait: timed out after {args.timeout:g} s: "
                    f"{queued} queued, {counts['unacked']} delivered and unfinished"
                )
                return EXIT_FAILURE
            line = f"wait: {queued} queued, {counts['unacked']} delivered and unfinished"
            now = time.monotonic()
            due = now - last_printed >= args.progress
            changed = line != last_line and now - last_printed >= min(args.progress, 1.0)
            if args.progress > 0 and (due or changed):
                _err(f"{line} ({now - started:.0f} s)")
                last_line, last_printed = line, now
            time.sleep(args.interval)


# -- registration --------------------------------------------------------------------------------


def register(subparsers: Any) -> None:
    """Add ``enqueue``, ``status`` and ``wait`` to the ``crawler`` command's subparsers."""
    from cli import args as checked

    enqueue = subparsers.add_parser(
        "enqueue",
        help="queue start URLs or a source run for the Celery workers",
        description="Queue work for the cluster (celery -A workers.app worker). With URLs and "
        "--source, the URLs are crawled in that source's scope; bare URLs form an ad-hoc source "
        "scoped to their origins; --source alone queues a run of the source (as beat does).",
    )
    enqueue.add_argument("urls", nargs="*", metavar="URL", type=checked.http_url)
    enqueue.add_argument(
        "--source", metavar="ID", type=checked.source_id, help="a source id (see `crawler sources`)"
    )
    enqueue.add_argument(
        "--max-depth",
        type=checked.integer(0, 50),
        metavar="N",
        help="link depth of an ad-hoc source (default 3)",
    )
    enqueue.set_defaults(func=cmd_enqueue)

    status = subparsers.add_parser(
        "status", help="queues, running tasks and per-source counts of the cluster"
    )
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument(
        "--inspect-timeout",
        type=checked.seconds(0, 60, low_inclusive=False),
        default=1.0,
        metavar="S",
        help="seconds to wait for workers to answer",
    )
    status.add_argument(
        "--db", metavar="URL", type=checked.database_url, help="database URL (default: CRAWLER_DATABASE_URL)"
    )
    status.set_defaults(func=cmd_status)

    wait = subparsers.add_parser("wait", help="wait until nothing is queued or running (exit 0), for scripts")
    wait.add_argument(
        "--timeout",
        type=checked.seconds(0, 30 * 86400, low_inclusive=False),
        metavar="S",
        help="give up (exit 1) after S seconds",
    )
    wait.add_argument(
        "--interval",
        type=checked.seconds(0, 60, low_inclusive=False),
        default=0.5,
        metavar="S",
        help="seconds between checks",
    )
    wait.add_argument(
        "--progress",
        type=checked.seconds(0, 3600),
        default=5.0,
        metavar="S",
        help="a progress line on standard error when the counts change, and at least every S seconds "
        "(default 5; 0: none)",
    )
    wait.set_defaults(func=cmd_wait)
