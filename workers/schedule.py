"""The beat schedule, built from the sources: one entry per enabled source with a ``schedule``.

``schedule`` is cron (``"m h dom mon dow"``, evaluated in the Celery app's time zone, UTC by
default) or an interval (``"@every 30s"``). Each entry sends ``crawler.crawl_source(source_id)``
to the ``schedule`` queue. A bad source file is logged and left out: beat and the workers must
still start when one file in the seeds directory is broken (``crawler sources`` names it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from celery.schedules import crontab

from crawler.sources import Source, every_seconds
from workers.routing import CRAWL_SOURCE, SCHEDULE_QUEUE

log = logging.getLogger(__name__)

#: A trigger still waiting in the queue after this long is dropped: the next one will come.
MAX_TRIGGER_EXPIRY = 3600.0


def entry_name(source_id: str) -> str:
    return f"crawl-source:{source_id}"


def schedule_of(expr: str) -> crontab | timedelta:
    """A source's ``schedule`` as a Celery schedule: ``crontab`` or a ``timedelta`` interval."""
    seconds = every_seconds(expr)
    if seconds is not None:
        return timedelta(seconds=seconds)
    minute, hour, day_of_month, month_of_year, day_of_week = expr.split()
    # Cron allows 7 for Sunday; Celery's crontab only knows 0-6.
    day_of_week = ",".join(_sunday_as_zero(item) for item in day_of_week.split(","))
    return crontab(
        minute=minute,
        hour=hour,
        day_of_month=day_of_month,
        month_of_year=month_of_year,
        day_of_week=day_of_week,
    )


def _sunday_as_zero(item: str) -> str:
    """Rewrite one day-of-week item that reaches 7 as an explicit list (``5-7`` -> ``5,6,0``)."""
    head, _, step = item.partition("/")
    if head == "*":
        return item
    low_text, _, high_text = head.partition("-")
    low = int(low_text)
    high = int(high_text) if high_text else (7 if step else low)  # cron "n/s" means n to the end
    if high != 7:
        return item
    return ",".join(str(day % 7) for day in range(low, high + 1, int(step or 1)))


def _expiry(schedule: crontab | timedelta) -> float:
    if isinstance(schedule, timedelta):
        return max(1.0, min(schedule.total_seconds(), MAX_TRIGGER_EXPIRY))
    return MAX_TRIGGER_EXPIRY


def build_beat_schedule(sources: Iterable[Source]) -> dict[str, dict[str, Any]]:
    """``beat_schedule`` entries for every enabled source that has a schedule."""
    entries: dict[str, dict[str, Any]] = {}
    for source in sources:
        if not source.enabled or not source.schedule:
            continue
        schedule = schedule_of(source.schedule)
        entries[entry_name(source.id)] = {
            "task": CRAWL_SOURCE,
            "schedule": schedule,
            "args": (source.id,),
            "options": {"queue": SCHEDULE_QUEUE, "expires": _expiry(schedule)},
        }
    return entries


def beat_schedule_from_seeds() -> dict[str, dict[str, Any]]:
    """The schedule of the seeds directory (``CRAWLER_SEEDS_DIR``); bad files are logged, skipped."""
    from seeds import sources_report

    report = sources_report()
    for error in report.errors:
        log.error("source left out of the beat schedule: %s", error)
    return build_beat_schedule(report.sources.values())
