"""``crawler``: the command line.

Embedded mode (no servers): ``crawl``, ``demo``, ``extract``, ``export``, ``reextract``, ``stats``,
``sources``.
Cluster mode (Celery + Redis): ``enqueue``, ``status``, ``wait``, registered from :mod:`cli.cluster`.
Every command reads its configuration from :mod:`settings` (``CRAWLER_*`` environment variables);
flags override single values for one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from cli import args as checked
from cli.args import OneLineParser
from crawler.errors import ConfigError, CrawlerError
from crawler.sources import Source
from settings import SettingsError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
#: Seconds between progress lines when standard error is not a terminal (``--progress``).
PROGRESS_INTERVAL = 5.0
#: Where ``crawler demo`` keeps its documents unless ``--db`` says otherwise: never the store of
#: real crawls.
DEMO_DATABASE_URL = "sqlite:///data/demo.sqlite3"
DEPRECATED_PRIVATE_NETWORKS = (
    "warning: --allow-private-networks / CRAWLER_ALLOW_PRIVATE_NETWORKS is deprecated: it opens loopback "
    "and every private range; open only what you crawl, e.g. --allow-network 127.0.0.0/8 "
    "(CRAWLER_ALLOWED_NETWORKS)"
)

err_console = Console(stderr=True, soft_wrap=True)  # messages stay on one line, greppable


def error_line(message: str, *, label: str = "crawler: error") -> None:
    """One line on standard error (markup in the message is printed as it is)."""
    err_console.print(f"[red]{label}:[/red] {escape(' '.join(message.split()))}", highlight=False)


def settings_for(args: argparse.Namespace) -> Any:
    """The settings, with the command's flags (``--db``, ``--allow-network``,
    ``--allow-private-networks``) overriding the environment's values for this run."""
    from settings import settings_for_database

    settings = settings_for_database(getattr(args, "db", None))
    update: dict[str, Any] = {}
    networks = getattr(args, "allow_network", None)
    if networks:
        update["allowed_networks"] = list(dict.fromkeys([*settings.allowed_networks, *networks]))
    if getattr(args, "allow_private_networks", False):
        update["allow_private_networks"] = True
    return settings.model_copy(update=update) if update else settings


@contextmanager
def _open_store(args: argparse.Namespace, *, must_exist: bool = False) -> Iterator[Any]:
    """The store of ``--db`` / CRAWLER_DATABASE_URL. ``must_exist``: a read command, which
    refuses (ConfigError, one line) a SQLite file that is not there instead of creating it."""
    from storage import open_store
    from storage.location import missing_store

    url = settings_for(args).database_url
    if must_exist:
        problem = missing_store(url)
        if problem is not None:
            raise ConfigError(problem)
    store = open_store(url)
    try:
        yield store
    finally:
        store.close()


# -- crawl ---------------------------------------------------------------------------------------


def resolve_targets(targets: Sequence[str], *, max_depth: int | None = None) -> list[Source]:
    """Source ids and bare URLs -> sources. Bare URLs form one source scoped to their origins.

    Raises ConfigError (one line) for an unknown or invalid source (a bad file disables only
    itself) and for anything that is neither a source id nor an http(s) URL."""
    from pydantic import ValidationError

    from crawler.sources import check_start_url, describe_errors
    from seeds import sources_report

    ids = [t for t in targets if checked.SOURCE_ID.match(t)]
    urls: list[str] = []
    for target in targets:
        if checked.SOURCE_ID.match(target):
            continue
        try:
            urls.append(check_start_url(target))
        except ValueError as exc:
            if "://" not in target and ":" not in target and "." not in target:
                raise ConfigError(
                    f"{target!r} is neither a source id (see `crawler sources`) nor an http(s) URL"
                ) from None
            raise ConfigError(f"bad start URL: {exc}") from None
    sources: list[Source] = []
    if ids:
        report = sources_report()
        for source_id in ids:
            if source_id in report.invalid:
                raise ConfigError(f"source {source_id!r} is disabled: {report.invalid[source_id]}")
            if source_id not in report.sources:
                raise ConfigError(
                    f"unknown source {source_id!r}; known: {', '.join(sorted(report.sources)) or 'none'}"
                )
            sources.append(report.sources[source_id])
    if urls:
        try:
            sources.append(Source.from_urls(urls, max_depth=3 if max_depth is None else max_depth))
        except ValidationError as exc:
            raise ConfigError(f"bad start URL: {describe_errors(exc)}") from None
    return sources


def _status_line(crawl: Any) -> Text:
    s = crawl.stats
    return Text.assemble(
        ("crawling ", "bold"),
        f"fetched {s.pages_fetched}  stored {s.documents_stored}  duplicates {s.duplicates}  ",
        (f"errors {s.error_count}  ", "red" if s.error_count else ""),
        f"queued {crawl.queue_size}  {s.pages_per_second:.1f} pages/s",
    )


def progress_line(crawl: Any) -> str:
    """One plain line of a running crawl's counts (for logs: stderr that is not a terminal)."""
    s = crawl.stats
    return (
        f"progress: fetched {s.pages_fetched} not_modified {s.not_modified} stored {s.documents_stored} "
        f"duplicates {s.duplicates} errors {s.error_count} queued {crawl.queue_size} "
        f"{s.pages_per_second:.1f} pages/s "
        f"elapsed {s.elapsed:.0f} s"
    )


async def _run_crawl(crawl: Any, console: Console, *, progress: float = PROGRESS_INTERVAL) -> Any:
    """Run the crawl: a live status line on a terminal, else a progress line every ``progress``
    seconds (0: none) on standard error. A stop signal ends it (see :func:`_stop_on_signals`)."""
    _stop_on_signals(crawl, console)
    task = asyncio.create_task(crawl.run())
    if console.is_terminal:
        with Live(_status_line(crawl), console=console, refresh_per_second=4, transient=True) as live:
            while not task.done():
                live.update(_status_line(crawl))
                await asyncio.wait({task}, timeout=0.25)
        return task.result()
    while progress > 0 and not task.done():
        await asyncio.wait({task}, timeout=progress)
        if not task.done():
            print(progress_line(crawl), file=sys.stderr, flush=True)
    return await task


#: Signals that stop a crawl: Ctrl-C, ``kill``/``docker stop``, a closed terminal.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _stop_on_signals(crawl: Any, console: Console) -> None:
    """A stop signal ends the crawl: the pages in flight get a few seconds, the rest stays
    queued in the store. A second signal stops it at once."""
    loop = asyncio.get_running_loop()

    def on_signal(signum: signal.Signals) -> None:
        now = crawl.stats.interrupted
        crawl.stop_signal = crawl.stop_signal or signum
        message = "stopping now" if now else "finishing the pages in flight (again to stop now)"
        console.print(f"{signum.name}: {message}")
        crawl.stop(now=now)

    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)


def summary_table(stats: Any) -> Table:
    table = Table(title="crawl summary", show_header=False, title_justify="left")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("pages fetched", str(stats.pages_fetched))
    table.add_row("documents stored", str(stats.documents_stored))
    table.add_row("duplicates", str(stats.duplicates))
    if stats.versions:
        table.add_row("changed articles (new versions)", str(stats.versions))
    if stats.not_modified:
        table.add_row("not modified (304)", str(stats.not_modified))
    if stats.unchanged:
        table.add_row("unchanged since last crawl", str(stats.unchanged))
    if stats.resumed:
        table.add_row("known URLs visited again", str(stats.resumed))
    if stats.retries:
        table.add_row("transient failures tried again", str(stats.retries))
    table.add_row("redirects to known URLs", str(stats.redirects_skipped))
    if stats.links_dropped:
        table.add_row("links dropped (CRAWLER_MAX_LINKS_PER_PAGE)", str(stats.links_dropped))
    if stats.damaged:
        table.add_row("pages with damaged bytes (replacement runs dropped)", str(stats.damaged))
    table.add_row("errors", str(stats.error_count))
    for reason, count in sorted(stats.errors.items(), key=lambda kv: (-kv[1], kv[0])):
        table.add_row(f"  {reason}", str(count))
    skipped = sum(stats.skipped.values())
    if skipped:
        table.add_row("links not followed", str(skipped))
        for reason, count in sorted(stats.skipped.items(), key=lambda kv: (-kv[1], kv[0])):
            table.add_row(f"  {reason}", str(count))
    table.add_row("elapsed", f"{stats.elapsed:.2f} s")
    table.add_row("pages/s", f"{stats.pages_per_second:.1f}")
    return table


def crawl_sources(sources: list[Source], args: argparse.Namespace, *, console: Console) -> Any:
    from crawler.crawl import EmbeddedCrawl

    settings = settings_for(args)
    if settings.allow_private_networks:
        err_console.print(escape(DEPRECATED_PRIVATE_NETWORKS), highlight=False)
    # The network policy travels in the settings (Settings.fetch_limits reads it).
    options = settings.crawl_options(
        max_pages=args.max_pages,
        max_depth=args.max_depth,
        concurrency=args.concurrency,
        delay=args.delay,
        revisit_all=bool(getattr(args, "revisit_all", False)),
        retry_failed=bool(getattr(args, "retry_failed", False)),
    )
    with _open_store(args) as store:
        crawl = EmbeddedCrawl(sources, store, options)
        stats = asyncio.run(_run_crawl(crawl, err_console, progress=args.progress))
    console.print(summary_table(stats))
    if stats.interrupted:
        err_console.print(
            f"interrupted: {stats.waiting} URL(s) wait in the store; run the same command again "
            "to continue where the crawl stopped",
            highlight=False,
        )
    args.stop_signal = crawl.stop_signal
    return stats


def cmd_crawl(args: argparse.Namespace) -> int:
    if not args.targets:
        error_line("crawl: give at least one source id or start URL (see `crawler sources`)")
        return EXIT_USAGE
    sources = resolve_targets(args.targets, max_depth=args.max_depth)
    stats = crawl_sources(sources, args, console=Console())
    return _exit_status(stats, args)


def _exit_status(stats: Any, args: argparse.Namespace) -> int:
    """What a crawl's command exits with: for a crawl a signal stopped, what a shell reports for
    that signal (128 + its number); 1 when no start URL could be fetched; else 0."""
    signum = getattr(args, "stop_signal", None)
    if stats.interrupted:
        return 128 + int(signum) if signum is not None else EXIT_INTERRUPTED
    if stats.starts_answered == 0:
        error_line("crawl: no start URL could be fetched (see `crawler errors`)")
        return EXIT_FAILURE
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    """Serve the bundled sample site on 127.0.0.1 and crawl it into the demo's own store."""
    from crawler.samplesite import build_site, serve_site
    from crawler.samplesite.server import DEFAULT_PORT_BASE

    console = Console()
    web = build_site()
    ports = f"{DEFAULT_PORT_BASE}-{DEFAULT_PORT_BASE + len(web.sites) - 1}"
    try:  # the fixed ports of seeds/sample-site.toml, so stored URLs are the same every run
        site = serve_site(web, port_base=DEFAULT_PORT_BASE)
    except OSError as exc:
        error_line(
            f"demo: the sample site needs ports {ports} on 127.0.0.1 and one is taken ({exc}); "
            "stop what holds it (another `crawler demo` or `python -m crawler.samplesite`?) and retry"
        )
        return EXIT_FAILURE
    args.db = args.db or DEMO_DATABASE_URL
    args.allow_network = ["127.0.0.0/8"]  # the sample site is on loopback, by design
    with site:
        source = site.source()
        console.print(f"[bold]sample site[/bold]: {len(web.sites)} portals on 127.0.0.1, ports {ports}")
        stats = crawl_sources([source], args, console=console)
    with _open_store(args) as store:
        table = Table(title=f"documents in {settings_for(args).database_url}", title_justify="left")
        table.add_column("published", no_wrap=True, min_width=10)
        table.add_column("agency", no_wrap=True, max_width=12, overflow="ellipsis")
        table.add_column("chars", justify="right", no_wrap=True, min_width=5)
        # CJK characters are two cells wide: give the title what the other columns leave.
        table.add_column("title", no_wrap=True, overflow="ellipsis", max_width=max(20, console.width - 46))
        for doc in store.iter_documents(source=source.id):
            table.add_row(doc.published_at or "-", doc.agency or "-", str(len(doc.text)), doc.title or "")
        console.print(table)
    console.print(
        f"Export them with: .venv/bin/crawler export --db {args.db} -o documents.jsonl", soft_wrap=True
    )
    return _exit_status(stats, args)


# -- extract / export / stats / sources ----------------------------------------------------------


def cmd_extract(args: argparse.Namespace) -> int:
    """Saved pages (or ``-``, standard input) -> JSONL, with the crawl's bounds: the body cap
    (CRAWLER_MAX_BODY_BYTES) and the extraction time limit (CRAWLER_EXTRACT_TIMEOUT)."""
    from cli.files import read_capped, read_file_capped
    from crawler.extract import extract_bytes
    from crawler.pipeline import build_document, time_limit

    settings = settings_for(args)
    if args.files.count("-") > 1:
        error_line("extract: standard input (-) can be read only once")
        return EXIT_USAGE
    out = sys.stdout
    status = EXIT_OK
    for name in args.files:
        try:
            if name == "-":
                body = read_capped(sys.stdin.buffer, settings.max_body_bytes, name="standard input")
                url = args.url or "file:///dev/stdin"
            else:
                path = Path(name)
                body = read_file_capped(path, settings.max_body_bytes)
                url = args.url or path.resolve().as_uri()
        except OSError as exc:
            error_line(f"{name}: cannot read: {exc.strerror or exc}")
            status = EXIT_FAILURE
            continue
        except CrawlerError as exc:
            error_line(f"{name}: {exc.reason}: {exc}")
            status = EXIT_FAILURE
            continue
        try:
            with time_limit(settings.extract_timeout):
                result = extract_bytes(body, url=url)
        except CrawlerError as exc:
            error_line(f"{name}: {exc.reason}: {exc}")
            status = EXIT_FAILURE
            continue
        finally:
            del body  # a large page's bytes need not outlive its extraction
        doc = build_document(result, url=url, final_url=url)
        attachments = [link.to_export() for link in result.attachments]
        out.write(json.dumps(doc.to_export(attachments), ensure_ascii=False) + "\n")
    return status


def cmd_export(args: argparse.Namespace) -> int:
    """Documents as JSONL on standard output, or into ``-o FILE`` (JSONL or Parquet) all at once:
    written to a temporary file beside it and renamed, so a failed export leaves the old file as
    it was."""
    from cli.export import export_rows, write_jsonl, write_parquet
    from cli.files import atomic_binary_file, atomic_text_file

    to_file = args.output not in (None, "-")
    if args.format == "parquet" and not to_file:
        error_line("export: --format parquet needs an output file (-o FILE)")
        return EXIT_USAGE
    with _open_store(args, must_exist=True) as store:
        rows = export_rows(
            store, source=args.source, all_versions=args.all_versions, with_copies=args.with_copies
        )
        if args.format == "parquet":
            with atomic_binary_file(args.output) as sink:
                count = write_parquet(rows, sink)
        else:
            stream: IO[str]
            with atomic_text_file(args.output) if to_file else _stdout() as stream:
                count = write_jsonl(rows, stream)
    if to_file:
        err_console.print(f"exported {count} documents to {escape(args.output)}", highlight=False)
    return EXIT_OK


def cmd_reextract(args: argparse.Namespace) -> int:
    """Extraction and dedup again from the raw archive (no network): what changed."""
    from crawler.archive import archive_files
    from crawler.reextract import reextract
    from seeds import all_sources

    settings = settings_for(args)
    directory = args.archive or settings.archive_directory()
    if directory is None:
        error_line("reextract: a PostgreSQL store has an archive only where CRAWLER_ARCHIVE_DIR says")
        return EXIT_USAGE
    paths = archive_files(directory)
    if not paths:
        err_console.print(f"reextract: no WARC files in {directory}")
        return EXIT_FAILURE
    sources = all_sources()
    hints = {source_id: source.encoding for source_id, source in sources.items()}

    def role(source_id: str | None, url: str) -> str | None:
        source = sources.get(source_id or "")
        return source.role_for(url) if source is not None else None

    with _open_store(args) as store:
        report = reextract(
            paths,
            store,
            source=args.source,
            encoding_hints=hints,
            roles=role,
            threshold=settings.near_dup_threshold,
            keep_text=settings.keep_duplicate_text,
            time_limit=settings.extract_timeout,
        )
    summary = {
        "archive": str(directory),
        "files": len(paths),
        "pages": report.pages,
        "unchanged": report.documents["unchanged"],
        "changed": report.documents["version"],
        "new": report.documents["stored"],
        "copies": report.documents["copy"],
        "promoted": report.documents["promoted"],  # better copies that became their story's document
        "errors": dict(report.errors),
        "attachments": report.attachments,
        "attachments_changed": len(report.attachments_changed),
        "attachments_added": report.attachments_added,
        "changed_urls": report.changed,
        "new_urls": report.new,
    }
    if args.json:
        print(json.dumps(summary, ensure_ascii=False, indent=2))
        return EXIT_OK
    table = Table(
        title=f"re-extraction of {directory} ({len(paths)} files)", show_header=False, title_justify="left"
    )
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("pages re-extracted", str(report.pages))
    table.add_row("unchanged", str(summary["unchanged"]))
    table.add_row("changed (stored as a new version)", str(summary["changed"]))
    table.add_row("new stories", str(summary["new"]))
    table.add_row("copies of stories", str(summary["copies"]))
    for reason, count in sorted(report.errors.items(), key=lambda kv: (-kv[1], kv[0])):
        table.add_row(f"no document: {reason}", str(count))
    table.add_row("attachment files", str(report.attachments))
    table.add_row("  text changed", str(summary["attachments_changed"]))
    table.add_row("  not in the store before", str(report.attachments_added))
    console = Console()
    console.print(table)
    for url in report.changed:
        console.print(f"changed: {url}", highlight=False, soft_wrap=True)
    for url in report.new:
        console.print(f"new: {url}", highlight=False, soft_wrap=True)
    return EXIT_OK


def cmd_duplicates(args: argparse.Namespace) -> int:
    """Stories that were republished: each story's document (its best copy), then its copies
    (URL, source, the role its source declares, similarity)."""
    with _open_store(args, must_exist=True) as store:
        groups: dict[str, list[dict[str, Any]]] = {}
        for copy, similarity in store.iter_copies(duplicate_of=args.story):
            groups.setdefault(copy.duplicate_of or "", []).append(
                {
                    "url": copy.url,
                    "source": copy.source,
                    "role": copy.source_role,
                    "similarity": round(similarity, 4),
                }
            )
        stories: list[dict[str, Any]] = []
        for story_hash, found in groups.items():
            story = store.get_document(story_hash)
            document = None
            if story is not None:
                document = {"url": story.url, "source": story.source, "role": story.source_role}
            stories.append(
                {
                    "story": story_hash,
                    "title": story.title if story else None,
                    "url": story.url if story else None,
                    "source": story.source if story else None,
                    "document": document,
                    "copies": found,
                }
            )
    if args.json:
        print(json.dumps(stories, ensure_ascii=False, indent=2))
        return EXIT_OK
    console = Console()
    if not stories:
        console.print("no copies recorded" + (f" for story {args.story}" if args.story else ""))
        return EXIT_OK
    for item in stories:
        table = Table(title=f"{item['title'] or '-'}  [dim]{item['story'][:16]}[/dim]", title_justify="left")
        table.add_column("")
        table.add_column("similarity", justify="right")
        table.add_column("source")
        table.add_column("role")
        table.add_column("URL")
        document = item["document"]
        if document is not None:  # the story's document first: the copy every other one copies
            table.add_row("document", "", str(document["source"]), document["role"] or "-", document["url"])
        for found in item["copies"]:
            table.add_row(
                "copy", f"{found['similarity']:.3f}", str(found["source"]), found["role"] or "-", found["url"]
            )
        console.print(table)
    return EXIT_OK


@contextmanager
def _stdout() -> Iterator[IO[str]]:
    yield sys.stdout


def plan_rows(store: Any, source: str | None = None) -> list[dict[str, Any]]:
    """The stored extraction plans, a row each: where, which template, how it fares. The
    fast-path share is the share of the template's pages its plan served unchecked."""
    rows = []
    for plan_source, host, plan in store.iter_plans(source=source):
        counts = plan.get("counts") or {}
        pages = sum(int(counts.get(n, 0)) for n in ("served", "verified", "mismatches", "misses"))
        rows.append(
            {
                "source": plan_source or None,
                "host": host,
                "template": plan.get("template"),
                "version": plan.get("version"),
                "status": plan.get("status"),
                **{n: int(counts.get(n, 0)) for n in ("served", "verified", "mismatches", "misses")},
                "fast_path_share": round(int(counts.get("served", 0)) / pages, 4) if pages else None,
                "learned_at": plan.get("learned_at"),
                "retired_why": plan.get("retired_why"),
            }
        )
    return rows


def _plan_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="extraction plans (per template)", title_justify="left")
    for column in ("source", "host", "template", "v", "status", "fast path", "checked", "mismatches"):
        table.add_column(
            column, justify="right" if column in ("v", "fast path", "checked", "mismatches") else "left"
        )
    for row in rows:
        pages = row["served"] + row["verified"] + row["mismatches"] + row["misses"]
        share = "-" if row["fast_path_share"] is None else f"{row['fast_path_share']:.0%} of {pages}"
        status = row["status"] if not row["retired_why"] else f"{row['status']} ({row['retired_why']})"
        table.add_row(
            str(row["source"] or "-"),
            row["host"],
            str(row["template"])[:16],
            str(row["version"]),
            status,
            share,
            str(row["verified"]),
            str(row["mismatches"]),
        )
    return table


def cmd_plans(args: argparse.Namespace) -> int:
    """List the learned extraction plans, or forget them (``--clear``): their templates go
    back to trafilatura and learn again."""
    with _open_store(args, must_exist=True) as store:
        if args.clear:
            gone = store.delete_plans(source=args.source, host=args.host)
            err_console.print(f"forgot {gone} plan(s)", highlight=False)
            return EXIT_OK
        rows = [r for r in plan_rows(store, args.source) if args.host is None or r["host"] == args.host]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
    elif rows:
        Console().print(_plan_table(rows))
    else:
        Console().print("no extraction plans (a template gets one after its first pages; see the README)")
    return EXIT_OK


def cmd_stats(args: argparse.Namespace) -> int:
    with _open_store(args, must_exist=True) as store:
        stats = store.stats()
        stats["plans"] = plan_rows(store)
    if args.json:
        print(json.dumps(stats, ensure_ascii=False, indent=2))
        return EXIT_OK
    console = Console()
    console.print(f"documents: [bold]{stats['documents']}[/bold]")
    console.print(f"copies of stories (`crawler duplicates`): [bold]{stats.get('copies', 0)}[/bold]")
    for title, key in (
        ("documents by source", "documents_by_source"),
        ("URLs by status", "urls_by_status"),
        ("errors by reason", "errors_by_reason"),
    ):
        if stats.get(key):
            table = Table(title=title, title_justify="left")
            table.add_column("key")
            table.add_column("count", justify="right")
            for name, count in sorted(stats[key].items(), key=lambda kv: (-kv[1], str(kv[0]))):
                table.add_row(str(name), str(count))
            console.print(table)
    if stats["plans"]:
        console.print(_plan_table(stats["plans"]))
    return EXIT_OK


FAILED_STATUSES = ("failed_transient", "failed_permanent", "disallowed", "out_of_scope")


def cmd_errors(args: argparse.Namespace) -> int:
    """Failed URLs grouped by reason (most frequent first), each with up to --limit URLs."""
    from storage import UrlStatus

    by_reason: dict[str, list[Any]] = {}
    with _open_store(args, must_exist=True) as store:
        for status in FAILED_STATUSES:
            for state in store.iter_urls(status=UrlStatus(status), source=args.source):
                reason = state.error_reason or status
                if args.reason is None or reason == args.reason:
                    by_reason.setdefault(reason, []).append(state)
    ordered = sorted(by_reason.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    if args.json:
        out = {
            reason: [
                {
                    "url": s.url,
                    "final_url": s.final_url,
                    "status": str(s.status),
                    "http_status": s.http_status,
                    "message": s.error_message,
                }
                for s in states
            ]
            for reason, states in ordered
        }
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return EXIT_OK
    console = Console()
    if not ordered:
        console.print("no failed URLs")
    for reason, states in ordered:
        kind = (
            "transient, retried by the next scheduled run"
            if states[0].status == "failed_transient"
            else str(states[0].status)
        )
        console.print(f"[bold]{reason}[/bold]: {len(states)} URL(s) ({kind})", highlight=False)
        for state in states[: args.limit]:
            # A failure on a redirect hop: name the hop, where the answer came from.
            hop = f" -> {state.final_url}" if state.final_url and state.final_url != state.url else ""
            console.print(
                escape(f"  {state.url}{hop}  {state.error_message or ''}"), highlight=False, soft_wrap=True
            )
        if len(states) > args.limit:
            console.print(f"  ... and {len(states) - args.limit} more (--limit, --json)")
    return EXIT_OK


def cmd_sources(args: argparse.Namespace) -> int:
    """Every source file: the valid ones, and the invalid ones with why (each bad file disables
    only itself: the other sources still crawl and still run on schedule)."""
    from seeds import seeds_dir, sources_report

    report = sources_report()
    console = Console()
    table = Table(title=f"sources in {seeds_dir()}", title_justify="left")
    table.add_column("id", no_wrap=True)
    for column in ("name", "hosts", "depth", "delay", "schedule", "status"):
        table.add_column(column, overflow="fold")
    rows: list[tuple[str, ...]] = []
    for source in report.sources.values():
        delay = "default" if source.per_host_delay is None else f"{source.per_host_delay:g} s"
        rows.append(
            (
                source.id,
                source.name,
                ", ".join(source.allowed_hosts),
                str(source.max_depth),
                delay,
                source.schedule or "-",
                "ok" if source.enabled else "off (enabled = false)",
            )
        )
    for stem, error in report.invalid.items():
        why = str(error).split(": ", 1)[-1]  # the path is in the table's title
        rows.append((stem, "-", "-", "-", "-", "-", f"invalid, disabled: {why}"))
    for row in sorted(rows):
        table.add_row(*(escape(cell) for cell in row))
    console.print(table)
    for error in report.errors:
        error_line(str(error), label="invalid source")
    return EXIT_FAILURE if report.errors else EXIT_OK


# -- parser --------------------------------------------------------------------------------------


def _add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        metavar="URL",
        type=checked.database_url,
        help="database URL (default: CRAWLER_DATABASE_URL, sqlite:///data/crawler.sqlite3)",
    )


def _add_crawl_shape(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-pages", type=checked.integer(1), metavar="N", help="stop after fetching this many pages"
    )
    parser.add_argument(
        "--max-depth",
        type=checked.integer(0, 50),
        metavar="N",
        help="links followed from a start URL (overrides the source)",
    )
    parser.add_argument(
        "--concurrency",
        type=checked.integer(1, 1024),
        metavar="N",
        help="requests in flight (default CRAWLER_CONCURRENCY)",
    )
    parser.add_argument(
        "--delay",
        type=checked.seconds(0, 3600),
        metavar="S",
        help="seconds between requests to one host (default per source)",
    )
    parser.add_argument(
        "--progress",
        type=checked.seconds(0, 3600),
        default=PROGRESS_INTERVAL,
        metavar="S",
        help=f"when standard error is not a terminal, a progress line every S seconds "
        f"(default {PROGRESS_INTERVAL:g}; 0: none)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="crawler",
        description="Crawl Chinese policy-news portals into clean, de-duplicated documents.",
        epilog="Settings come from CRAWLER_* environment variables; see the README for the table.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    crawl = sub.add_parser(
        "crawl",
        help="crawl sources or start URLs into the embedded store",
        description="Crawl sources (ids from `crawler sources`) or start URLs. Bare "
        "URLs are crawled within their own origins.",
    )
    crawl.add_argument("targets", nargs="*", metavar="SOURCE_ID|URL")
    _add_crawl_shape(crawl)
    crawl.add_argument(
        "--allow-network",
        action="append",
        type=checked.network,
        metavar="CIDR",
        help="also allow connections to this address range, e.g. 127.0.0.0/8 for a site on this "
        "machine (repeatable; adds to CRAWLER_ALLOWED_NETWORKS). Link-local, multicast and cloud "
        "metadata addresses open only when named exactly",
    )
    crawl.add_argument(
        "--allow-private-networks",
        action="store_true",
        help="deprecated: allow loopback and every private range (use --allow-network)",
    )
    crawl.add_argument(
        "--retry-failed",
        action="store_true",
        help="visit again the URLs whose last visit failed transiently (see `crawler errors`)",
    )
    crawl.add_argument(
        "--revisit-all",
        action="store_true",
        help="visit every known URL now (conditionally), whatever its next-visit time",
    )
    _add_db(crawl)
    crawl.set_defaults(func=cmd_crawl)

    demo = sub.add_parser(
        "demo",
        help="serve the bundled sample site on 127.0.0.1 (ports 8801-8808) and crawl it",
        description=f"Serve the sample site on its fixed ports and crawl it into its own store "
        f"({DEMO_DATABASE_URL} unless --db).",
    )
    _add_crawl_shape(demo)
    _add_db(demo)
    # A second demo re-reads every page: it shows the conditional requests (304s) at work.
    demo.set_defaults(func=cmd_demo, revisit_all=True)

    extract = sub.add_parser(
        "extract",
        help="extract documents from saved HTML files, or - for standard input (prints JSONL)",
    )
    extract.add_argument("files", nargs="+", metavar="FILE", type=checked.input_file)
    extract.add_argument("--url", type=checked.http_url, help="the URL the page was saved from")
    extract.set_defaults(func=cmd_extract)

    export = sub.add_parser("export", help="write stored documents as JSONL (or Parquet)")
    export.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        type=checked.output_file,
        help="output file, replaced only once the export is complete (default: standard output)",
    )
    export.add_argument(
        "--format",
        choices=("jsonl", "parquet"),
        default="jsonl",
        help="jsonl (default) or parquet (needs -o; schema in the README)",
    )
    export.add_argument("--source", type=checked.source_id, help="only this source's documents")
    export.add_argument(
        "--with-copies",
        action="store_true",
        help="also write the recorded copies of stories (lines with duplicate_of set)",
    )
    export.add_argument(
        "--all-versions",
        action="store_true",
        help="also write the earlier versions of articles that changed (default: the latest only)",
    )
    _add_db(export)
    export.set_defaults(func=cmd_export)

    again = sub.add_parser(
        "reextract",
        help="extract and deduplicate again from the raw archive (no network); report what changed",
        description="Run extraction and dedup again on the latest archived response of every page "
        "(CRAWLER_ARCHIVE_DIR): unchanged texts stay, changed ones are stored as new versions.",
    )
    again.add_argument("--source", help="only this source's pages")
    again.add_argument("--archive", metavar="DIR", help="WARC directory (default: CRAWLER_ARCHIVE_DIR)")
    again.add_argument("--json", action="store_true", help="machine-readable report")
    _add_db(again)
    again.set_defaults(func=cmd_reextract)

    stats = sub.add_parser("stats", help="documents and URLs in the store")
    stats.add_argument("--json", action="store_true", help="machine-readable output")
    _add_db(stats)
    stats.set_defaults(func=cmd_stats)

    plans = sub.add_parser(
        "plans",
        help="the learned extraction plans (per template), or --clear them",
        description="Extraction plans let a learned page template skip trafilatura (checked by "
        "sampling). List them with their fast-path share and mismatches, or forget them.",
    )
    plans.add_argument("--source", type=checked.source_id, help="only this source's plans")
    plans.add_argument("--host", help="only this host's plans (e.g. www.most.gov.cn)")
    plans.add_argument("--clear", action="store_true", help="forget the plans (they are learned again)")
    plans.add_argument("--json", action="store_true", help="machine-readable output")
    _add_db(plans)
    plans.set_defaults(func=cmd_plans)

    duplicates = sub.add_parser("duplicates", help="stories republished elsewhere, with their copies")
    duplicates.add_argument(
        "--story", metavar="CONTENT_HASH", type=checked.content_hash, help="only this story's copies"
    )
    duplicates.add_argument("--json", action="store_true", help="machine-readable output")
    _add_db(duplicates)
    duplicates.set_defaults(func=cmd_duplicates)

    errors = sub.add_parser("errors", help="failed URLs grouped by reason")
    errors.add_argument(
        "--reason", type=checked.error_reason, help="only this reason (e.g. http_404, timeout, robots)"
    )
    errors.add_argument("--source", type=checked.source_id, help="only this source's URLs")
    errors.add_argument(
        "--limit", type=checked.integer(1), default=10, metavar="N", help="URLs shown per reason (default 10)"
    )
    errors.add_argument("--json", action="store_true", help="every failed URL, machine-readable")
    _add_db(errors)
    errors.set_defaults(func=cmd_errors)

    sources = sub.add_parser("sources", help="list and validate the source definitions")
    sources.set_defaults(func=cmd_sources)

    # Cluster commands (enqueue, status, wait) live with the Celery code in workers/; that
    # module imports Celery only when one of its commands runs.
    try:
        from cli.cluster import register
    except ImportError:
        pass
    else:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except (ConfigError, SettingsError) as exc:
        error_line(str(exc))
        return EXIT_USAGE
    except CrawlerError as exc:
        error_line(str(exc), label=f"crawler: error ({exc.reason})")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`crawler export | head`): not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
