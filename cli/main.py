"""``crawler``: the command line.

Embedded mode (no servers): ``crawl``, ``demo``, ``extract``, ``export``, ``reextract``, ``stats``,
``sources``.
Cluster mode (Celery + Redis): ``enqueue``, ``status``, ``wait``, registered from :mod:`workers.cli`.
Every command reads its configuration from :mod:`settings` (``CRAWLER_*`` environment variables);
flags override single values for one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from crawler.errors import ConfigError, CrawlerError
from crawler.sources import Source

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

err_console = Console(stderr=True, soft_wrap=True)  # messages stay on one line, greppable


def settings_for(args: argparse.Namespace) -> Any:
    """The settings, with ``--db`` (when the command has it) overriding the database URL."""
    from settings import settings_for_database

    return settings_for_database(getattr(args, "db", None))


@contextmanager
def _open_store(args: argparse.Namespace) -> Iterator[Any]:
    from storage import open_store

    store = open_store(settings_for(args).database_url)
    try:
        yield store
    finally:
        store.close()


# -- crawl ---------------------------------------------------------------------------------------


def resolve_targets(targets: Sequence[str], *, max_depth: int | None = None) -> list[Source]:
    """Source ids and bare URLs -> sources. Bare URLs form one source scoped to their origins."""
    from seeds import all_sources

    urls = [t for t in targets if "://" in t]
    ids = [t for t in targets if "://" not in t]
    sources: list[Source] = []
    if ids:
        known = all_sources()
        for source_id in ids:
            if source_id not in known:
                raise ConfigError(
                    f"unknown source {source_id!r}; known: {', '.join(sorted(known)) or 'none'}"
                )
            sources.append(known[source_id])
    if urls:
        try:
            sources.append(Source.from_urls(urls, max_depth=3 if max_depth is None else max_depth))
        except ValueError as exc:
            raise ConfigError(f"bad start URL: {exc}") from exc
    return sources


def _status_line(crawl: Any) -> Text:
    s = crawl.stats
    return Text.assemble(
        ("crawling ", "bold"),
        f"fetched {s.pages_fetched}  stored {s.documents_stored}  duplicates {s.duplicates}  ",
        (f"errors {s.error_count}  ", "red" if s.error_count else ""),
        f"queued {crawl.queue_size}  {s.pages_per_second:.1f} pages/s",
    )


async def _run_crawl(crawl: Any, console: Console) -> Any:
    if not console.is_terminal:
        return await crawl.run()
    task = asyncio.create_task(crawl.run())
    with Live(_status_line(crawl), console=console, refresh_per_second=4, transient=True) as live:
        while not task.done():
            live.update(_status_line(crawl))
            await asyncio.wait({task}, timeout=0.25)
    return task.result()


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
    table.add_row("redirects to known URLs", str(stats.redirects_skipped))
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
    from crawler.crawl import CrawlOptions, EmbeddedCrawl

    settings = settings_for(args)
    options = CrawlOptions.from_settings(
        settings,
        max_pages=args.max_pages,
        max_depth=args.max_depth,
        concurrency=args.concurrency,
        allow_private_networks=True if args.allow_private_networks else None,
        per_host_delay=args.delay,
        revisit_all=True if getattr(args, "revisit_all", False) else None,
        retry_failed=True if getattr(args, "retry_failed", False) else None,
    )
    with _open_store(args) as store:
        crawl = EmbeddedCrawl(sources, store, options)
        stats = asyncio.run(_run_crawl(crawl, err_console))
    console.print(summary_table(stats))
    return stats


def cmd_crawl(args: argparse.Namespace) -> int:
    if not args.targets:
        err_console.print("crawl: give at least one source id or start URL (see `crawler sources`)")
        return EXIT_USAGE
    sources = resolve_targets(args.targets, max_depth=args.max_depth)
    crawl_sources(sources, args, console=Console())
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    """Serve the bundled sample site on 127.0.0.1 and crawl it into the embedded store."""
    from crawler.samplesite import build_site, serve_site
    from crawler.samplesite.server import DEFAULT_PORT_BASE

    console = Console()
    web = build_site()
    try:  # the fixed ports of seeds/sample-site.toml, so stored URLs are the same every run
        site = serve_site(web, port_base=DEFAULT_PORT_BASE)
    except OSError:
        site = serve_site(web)  # those ports are taken: any free ports will do
    with site:
        source = site.source()
        ports = sorted(int(url.rsplit(":", 1)[1]) for url in site.base_urls.values())
        console.print(
            f"[bold]sample site[/bold]: {len(ports)} portals on 127.0.0.1, ports {ports[0]}-{ports[-1]}"
        )
        args.allow_private_networks = True  # the sample site is on loopback, by design
        crawl_sources([source], args, console=console)
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
    console.print("Export them with: .venv/bin/crawler export -o documents.jsonl")
    return EXIT_OK


# -- extract / export / stats / sources ----------------------------------------------------------


def cmd_extract(args: argparse.Namespace) -> int:
    from crawler.extract import extract_bytes
    from crawler.pipeline import build_document

    out = sys.stdout
    status = EXIT_OK
    for name in args.files:
        path = Path(name)
        try:
            body = path.read_bytes()
        except OSError as exc:
            err_console.print(f"{name}: cannot read: {exc.strerror}")
            status = EXIT_FAILURE
            continue
        url = args.url or path.resolve().as_uri()
        try:
            result = extract_bytes(body, url=url)
        except CrawlerError as exc:
            err_console.print(f"{name}: {exc.reason}: {exc}")
            status = EXIT_FAILURE
            continue
        doc = build_document(result, url=url, final_url=url)
        attachments = [link.to_export() for link in result.attachments]
        out.write(json.dumps(doc.to_export(attachments), ensure_ascii=False) + "\n")
    return status


def cmd_export(args: argparse.Namespace) -> int:
    from cli.export import export_rows, write_jsonl, write_parquet

    if args.format == "parquet" and not args.output:
        err_console.print("export: --format parquet needs an output file (-o FILE)")
        return EXIT_USAGE
    with _open_store(args) as store:
        rows = export_rows(
            store, source=args.source, all_versions=args.all_versions, with_copies=args.with_copies
        )
        if args.format == "parquet":
            count = write_parquet(rows, args.output)
        else:
            stream: IO[str]
            with open(args.output, "w", encoding="utf-8") if args.output else _stdout() as stream:
                count = write_jsonl(rows, stream)
    if args.output:
        err_console.print(f"exported {count} documents to {args.output}")
    return EXIT_OK


def cmd_reextract(args: argparse.Namespace) -> int:
    """Extraction and dedup again from the raw archive (no network): what changed."""
    from crawler.archive import archive_files
    from crawler.reextract import reextract
    from seeds import all_sources

    settings = settings_for(args)
    directory = args.archive or settings.archive_dir
    paths = archive_files(directory)
    if not paths:
        err_console.print(f"reextract: no WARC files in {directory}")
        return EXIT_FAILURE
    hints = {source_id: source.encoding for source_id, source in all_sources().items()}
    with _open_store(args) as store:
        report = reextract(
            paths,
            store,
            source=args.source,
            encoding_hints=hints,
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
    """Stories that were republished: each story and its copies (URL, source, similarity)."""
    with _open_store(args) as store:
        groups: dict[str, list[dict[str, Any]]] = {}
        for copy, similarity in store.iter_copies(duplicate_of=args.story):
            groups.setdefault(copy.duplicate_of or "", []).append(
                {"url": copy.url, "source": copy.source, "similarity": round(similarity, 4)}
            )
        stories: list[dict[str, Any]] = []
        for story_hash, found in groups.items():
            story = store.get_document(story_hash)
            stories.append(
                {
                    "story": story_hash,
                    "title": story.title if story else None,
                    "url": story.url if story else None,
                    "source": story.source if story else None,
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
        table = Table(
            title=f"{item['title'] or '-'}  [dim]{item['story'][:16]} {item['url']}[/dim]",
            title_justify="left",
        )
        table.add_column("similarity", justify="right")
        table.add_column("source")
        table.add_column("copy URL")
        for found in item["copies"]:
            table.add_row(f"{found['similarity']:.3f}", str(found["source"]), found["url"])
        console.print(table)
    return EXIT_OK


@contextmanager
def _stdout() -> Iterator[IO[str]]:
    yield sys.stdout


def cmd_stats(args: argparse.Namespace) -> int:
    with _open_store(args) as store:
        stats = store.stats()
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
    return EXIT_OK


FAILED_STATUSES = ("failed_transient", "failed_permanent", "disallowed")


def cmd_errors(args: argparse.Namespace) -> int:
    """Failed URLs grouped by reason (most frequent first), each with up to --limit URLs."""
    from storage import UrlStatus

    by_reason: dict[str, list[Any]] = {}
    with _open_store(args) as store:
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
            console.print(f"  {state.url}  {state.error_message or ''}", highlight=False, soft_wrap=True)
        if len(states) > args.limit:
            console.print(f"  ... and {len(states) - args.limit} more (--limit, --json)")
    return EXIT_OK


def cmd_sources(args: argparse.Namespace) -> int:
    from seeds import seeds_dir, sources_report

    report = sources_report()
    console = Console()
    table = Table(title=f"sources in {seeds_dir()}", title_justify="left")
    for column in ("id", "name", "hosts", "depth", "delay", "schedule"):
        table.add_column(column, overflow="fold")
    for source in report.sources.values():
        delay = "default" if source.per_host_delay is None else f"{source.per_host_delay:g} s"
        table.add_row(
            source.id,
            source.name,
            ", ".join(source.allowed_hosts),
            str(source.max_depth),
            delay,
            source.schedule or "-",
        )
    console.print(table)
    for error in report.errors:
        err_console.print(f"[red]invalid source[/red] {error}")
    return EXIT_FAILURE if report.errors else EXIT_OK


# -- parser --------------------------------------------------------------------------------------


def _add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", metavar="URL", help="database URL (default: CRAWLER_DATABASE_URL or ./data)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    crawl.add_argument("--max-pages", type=int, help="stop after fetching this many pages")
    crawl.add_argument("--max-depth", type=int, help="links followed from a start URL (overrides the source)")
    crawl.add_argument("--concurrency", type=int, help="requests in flight (default CRAWLER_CONCURRENCY)")
    crawl.add_argument(
        "--delay", type=float, help="seconds between requests to one host (default per source)"
    )
    crawl.add_argument(
        "--allow-private-networks",
        action="store_true",
        help="allow loopback/private addresses (local sites and tests)",
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

    demo = sub.add_parser("demo", help="serve the bundled sample site on 127.0.0.1 and crawl it")
    demo.add_argument("--max-pages", type=int)
    demo.add_argument("--max-depth", type=int)
    demo.add_argument("--concurrency", type=int)
    demo.add_argument("--delay", type=float)
    _add_db(demo)
    # A second demo re-reads every page: it shows the conditional requests (304s) at work.
    demo.set_defaults(func=cmd_demo, allow_private_networks=True, revisit_all=True)

    extract = sub.add_parser("extract", help="extract documents from saved HTML files (prints JSONL)")
    extract.add_argument("files", nargs="+", metavar="FILE")
    extract.add_argument("--url", help="the URL the page was saved from")
    extract.set_defaults(func=cmd_extract)

    export = sub.add_parser("export", help="write stored documents as JSONL (or Parquet)")
    export.add_argument("-o", "--output", metavar="FILE", help="output file (default: standard output)")
    export.add_argument(
        "--format",
        choices=("jsonl", "parquet"),
        default="jsonl",
        help="jsonl (default) or parquet (needs -o; schema in the README)",
    )
    export.add_argument("--source", help="only this source's documents")
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

    duplicates = sub.add_parser("duplicates", help="stories republished elsewhere, with their copies")
    duplicates.add_argument("--story", metavar="CONTENT_HASH", help="only this story's copies")
    duplicates.add_argument("--json", action="store_true", help="machine-readable output")
    _add_db(duplicates)
    duplicates.set_defaults(func=cmd_duplicates)

    errors = sub.add_parser("errors", help="failed URLs grouped by reason")
    errors.add_argument("--reason", help="only this reason (e.g. http_404, timeout, robots)")
    errors.add_argument("--source", help="only this source's URLs")
    errors.add_argument("--limit", type=int, default=10, help="URLs shown per reason (default 10)")
    errors.add_argument("--json", action="store_true", help="every failed URL, machine-readable")
    _add_db(errors)
    errors.set_defaults(func=cmd_errors)

    sources = sub.add_parser("sources", help="list and validate the source definitions")
    sources.set_defaults(func=cmd_sources)

    # Cluster commands (enqueue, status, wait) live with the Celery code in workers/; that
    # module imports Celery only when one of its commands runs.
    try:
        from workers.cli import register
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
    except ConfigError as exc:
        err_console.print(f"[red]error:[/red] {exc}", highlight=False)
        return EXIT_USAGE
    except CrawlerError as exc:
        err_console.print(f"[red]error ({exc.reason}):[/red] {exc}", highlight=False)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except BrokenPipeError:
        # The reader went away (`crawler export | head`): not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
