"""Task names, queues and routes: plain data, importable without Celery (the CLI reads them).

Three queues: ``crawl`` carries one message per page visit (many, short), ``attachments`` one per
document file an article links (fewer, and a large PDF takes a while: kept apart, a slow file
never holds the page crawl, and workers can be dedicated with ``-Q attachments``), ``schedule``
the seeding of a whole source (few, triggered by beat or ``crawler enqueue --source``). Keeping
seeding apart means a deep crawl backlog never delays the start of a scheduled run. Workers
consume every queue unless started with ``-Q``.
"""

from __future__ import annotations

from typing import Any

#: Task names are explicit and stable: they are what travels in messages and what Flower shows.
FETCH_PAGE = "crawler.fetch_page"
FETCH_ATTACHMENT = "crawler.fetch_attachment"
CRAWL_SOURCE = "crawler.crawl_source"

CRAWL_QUEUE = "crawl"
ATTACHMENT_QUEUE = "attachments"
SCHEDULE_QUEUE = "schedule"
QUEUES: tuple[str, ...] = (CRAWL_QUEUE, ATTACHMENT_QUEUE, SCHEDULE_QUEUE)

TASK_ROUTES: dict[str, dict[str, Any]] = {
    FETCH_PAGE: {"queue": CRAWL_QUEUE},
    FETCH_ATTACHMENT: {"queue": ATTACHMENT_QUEUE},
    CRAWL_SOURCE: {"queue": SCHEDULE_QUEUE},
}

#: kombu's Redis transport keeps one list per queue and priority step; step 0 is the bare name.
_KOMBU_PRIORITY_STEPS = (0, 3, 6, 9)
_KOMBU_PRIORITY_SEP = "\x06\x16"
#: Hash of messages delivered to a worker and not yet acknowledged (running, or held until
#: their countdown with ``task_acks_late``); restored to their queue after the visibility timeout.
KOMBU_UNACKED_KEY = "unacked"


def queue_keys(queue: str) -> list[str]:
    """The Redis list keys of one kombu queue, every priority step included."""
    return [queue if step == 0 else f"{queue}{_KOMBU_PRIORITY_SEP}{step}" for step in _KOMBU_PRIORITY_STEPS]
