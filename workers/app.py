"""The Celery application of the distributed crawler.

Run it with::

    celery -A workers.app worker -l info          # as many as you like, on any machines
    celery -A workers.app beat -l info            # exactly one: scheduled crawls of the sources
    celery -A workers.app flower --address=127.0.0.1 --port=5555   # CRAWLER_FLOWER_PASSWORD set

Every value comes from :func:`settings.get_settings` (``CRAWLER_*``). The choices that matter:

* messages are JSON only and carry plain values (URL, source id, depth): never HTML, never
  pickled objects;
* ``task_acks_late`` + ``task_reject_on_worker_lost``: a task whose worker dies is delivered
  again, which is safe because every task is idempotent (see :mod:`workers.tasks`);
* the Redis transport redelivers any message unacknowledged for ``visibility_timeout`` seconds,
  and a message with a countdown stays unacknowledged while it waits. So every countdown is
  bounded by :data:`WorkerConfig.max_countdown`, well below the visibility timeout (checked
  here at import and in :func:`bounded_countdown`);
* ``worker_prefetch_multiplier = 1``: a worker holds one page task beyond the one it runs, so
  a slow page never strands a backlog in one worker;
* task events on, so that Flower shows every task under its explicit name; Flower's basic auth
  defaults to the settings' ``flower_user``/``flower_password`` and Flower refuses to start
  without a real password (see :func:`default_flower_auth` and :mod:`workers.flower`).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from celery import Celery
from celery.signals import worker_shutting_down
from kombu import Queue
from kombu.exceptions import BatchPublishError

from crawler.visit import AttachmentVisit, Visit
from settings import Settings, get_settings, max_countdown
from workers.routing import CRAWL_QUEUE, CRAWL_SOURCE, FETCH_ATTACHMENT, FETCH_PAGE, QUEUES, TASK_ROUTES

log = logging.getLogger(__name__)


#: Settings (``settings.Settings`` fields, env ``CRAWLER_<NAME>``) -> WorkerConfig fields.
SETTING_NAMES: dict[str, str] = {
    "redis_url": "redis_url",
    "redis_key_prefix": "key_prefix",
    "visibility_timeout": "visibility_timeout",
    "task_time_limit": "task_time_limit",
    "task_soft_time_limit": "task_soft_time_limit",
    "worker_max_tasks_per_child": "max_tasks_per_child",
    "worker_max_memory_per_child_kb": "max_memory_per_child_kb",
    "throttle_max_sleep": "throttle_max_sleep",
    "max_deliveries": "max_deliveries",
    "worker_soft_shutdown_timeout": "soft_shutdown_timeout",
}


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """The cluster's knobs, read from settings (:meth:`from_settings`; the settings derive and
    check the time limits, see :func:`settings.derive_limits`)."""

    redis_url: str
    key_prefix: str
    visibility_timeout: float
    task_time_limit: float
    task_soft_time_limit: float
    max_tasks_per_child: int
    max_memory_per_child_kb: int
    #: A task waits in place (sleeping) for a host at most this long; longer waits re-queue it.
    throttle_max_sleep: float
    #: Deliveries of one visit that never finished before the visit is given up as poisonous.
    max_deliveries: int
    #: Seconds a worker stopped with SIGTERM lets its running tasks finish (then hands them back).
    soft_shutdown_timeout: float

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> WorkerConfig:
        """From settings (``CRAWLER_*``)."""
        settings = settings if settings is not None else get_settings()
        return cls(**{field_name: getattr(settings, name) for name, field_name in SETTING_NAMES.items()})

    @property
    def max_countdown(self) -> float:
        """The longest countdown any task may be given (see :func:`settings.max_countdown`)."""
        return max_countdown(self.visibility_timeout, self.task_time_limit)

    @property
    def transport_options(self) -> dict[str, Any]:
        """The Redis transport's options, all following the visibility timeout: a message held
        by a worker that died whole is handed out again once it is that old, and the sweep that
        finds such messages runs often enough (every 1-10 s) to do so about on time (kombu's
        default sweep, every ~100 s, would add up to that much); a sweep's mutex left by a
        worker killed during it expires within a tenth of the timeout."""
        vt = self.visibility_timeout
        return {
            "visibility_timeout": int(vt) if vt >= 1 else vt,
            "unacked_restore_interval": min(10.0, max(1.0, vt / 60)),
            "unacked_restore_throttle": 1,
            "unacked_mutex_expire": int(min(300.0, max(5.0, vt / 10))),
        }


def bounded_countdown(seconds: float, config: WorkerConfig) -> float:
    """Clamp a countdown into ``[0, max_countdown]``; the assertion guards the invariant that
    every countdown stays below the broker's visibility timeout."""
    countdown = min(max(0.0, float(seconds)), config.max_countdown)
    assert countdown < config.visibility_timeout, "a countdown must stay below the visibility timeout"
    return countdown


def visibility_timeout(app: Celery, config: WorkerConfig) -> float:
    """The visibility timeout the app's broker connection really uses (a deployment may set the
    transport options itself), else the configured one."""
    options = app.conf.broker_transport_options or {}
    return float(options.get("visibility_timeout") or config.visibility_timeout)


def make_app(config: WorkerConfig | None = None) -> Celery:
    config = config or WorkerConfig.from_settings()
    celery_app = Celery("policy_crawler", include=["workers.tasks"])
    celery_app.conf.update(
        broker_url=config.redis_url,
        broker_connection_retry_on_startup=True,
        broker_transport_options=config.transport_options,
        # No result backend: tasks record their outcome in the store, nobody waits on results.
        result_backend=None,
        task_ignore_result=True,
        task_serializer="json",
        result_serializer="json",
        event_serializer="json",
        accept_content=["json"],
        task_queues=[Queue(name) for name in QUEUES],
        task_default_queue=CRAWL_QUEUE,
        task_routes=TASK_ROUTES,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_max_tasks_per_child=config.max_tasks_per_child,
        worker_max_memory_per_child=config.max_memory_per_child_kb,
        task_time_limit=config.task_time_limit,
        task_soft_time_limit=config.task_soft_time_limit,
        worker_soft_shutdown_timeout=config.soft_shutdown_timeout,
        worker_send_task_events=True,
        task_send_sent_event=True,
        worker_hijack_root_logger=False,
        timezone="UTC",
        enable_utc=True,
    )
    from workers.schedule import beat_schedule_from_seeds

    celery_app.conf.beat_schedule = beat_schedule_from_seeds()
    return celery_app


@worker_shutting_down.connect
def _hand_back_on_sigterm(sig: str = "", how: str = "", **_: Any) -> None:
    """SIGTERM (a deploy, ``docker compose stop``, Kubernetes) hands the worker's tasks back
    instead of keeping them until they finish.

    Celery answers SIGTERM with a warm shutdown: it waits for the running tasks (a slow page:
    up to the page deadline), and docker or Kubernetes kill it when their grace period ends
    first, leaving its messages unacknowledged until the visibility timeout (an hour). So a
    SIGTERM becomes Celery's cold shutdown (SIGQUIT): the running pages get
    ``worker_soft_shutdown_timeout`` seconds, then are cancelled, and every message the worker
    holds (running, prefetched, or waiting for a countdown) goes back to its queue when the
    worker closes its connection (kombu's restore at shutdown). A visit cut short is simply
    visited again: every visit is idempotent.
    """
    if sig == "SIGTERM" and how == "Warm":
        os.kill(os.getpid(), signal.SIGQUIT)


def default_flower_auth(settings: Any | None = None) -> None:
    """Make Flower's basic auth default to the settings' ``flower_user``/``flower_password``,
    and lock Flower when this process is about to run it (:mod:`workers.flower`).

    ``celery -A workers.app flower`` imports this module before Flower reads its ``FLOWER_*``
    environment variables, so the credentials travel through the environment, never argv
    (``--basic-auth`` still wins when given). Flower refuses to start when what it would use is
    empty or the old default, and serves ``/metrics`` behind the same auth unless
    ``CRAWLER_FLOWER_PUBLIC_METRICS`` opts in.
    """
    settings = settings if settings is not None else get_settings()
    os.environ.setdefault("FLOWER_BASIC_AUTH", f"{settings.flower_user}:{settings.flower_password}")
    # The celery command loads its plugins (Flower's command among them) before the app.
    if "flower.command" in sys.modules:
        from workers.flower import lock_flower

        lock_flower(public_metrics=settings.flower_public_metrics)


def warn_deprecated_settings(settings: Any | None = None) -> None:
    """Log what the deprecated settings do (the CLI prints the same warning for ``crawl``)."""
    settings = settings if settings is not None else get_settings()
    if settings.allow_private_networks:
        log.warning(
            "CRAWLER_ALLOW_PRIVATE_NETWORKS is deprecated: it opens loopback and every private range "
            "to the workers; open only what you crawl with CRAWLER_ALLOWED_NETWORKS (e.g. 127.0.0.0/8)"
        )


def _check_settings_for_the_celery_command() -> None:
    """Under ``celery -A workers.app ...``, a bad ``CRAWLER_*`` value ends the command with its
    one-line message and exit code 2, not a traceback through Celery's app loader."""
    if "celery.bin.celery" not in sys.modules:
        return  # imported as a library: the caller handles SettingsError
    from settings import SettingsError

    try:
        WorkerConfig.from_settings()
    except (SettingsError, ValueError) as exc:
        print(f"celery -A workers.app: error: {' '.join(str(exc).split())}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


_check_settings_for_the_celery_command()
config = WorkerConfig.from_settings()
app = make_app(config)
default_flower_auth()
warn_deprecated_settings()


# -- sending (by name: senders need not import the task code) -------------------------------------


def send_fetch(visit: Visit, *, countdown: float | None = None, via: Celery | None = None) -> None:
    """Queue one page visit (its message is :class:`crawler.visit.Visit`), through ``via`` (an
    app on another broker, in tests) or this module's app."""
    options: dict[str, Any] = {}
    if countdown:
        options["countdown"] = bounded_countdown(countdown, config)
    (via or app).send_task(FETCH_PAGE, args=visit.args(), kwargs=visit.kwargs(), **options)


def send_fetches(visits: Sequence[Visit], *, via: Celery | None = None) -> None:
    """Queue many page visits (a page's links) at once, through ``via`` or this module's app.

    On the Redis broker their messages and task-sent events go in one pipeline (kombu's
    ``Producer.batch``): one round trip for the lot instead of two per message. The pipeline
    is sent without kombu's per-message retries; if it fails (delivery uncertain), every
    visit is sent again on its own, with them: a message sent twice costs a skipped task.
    """
    target = via or app
    if len(visits) < 2:
        for visit in visits:
            send_fetch(visit, via=target)
        return
    try:
        with target.producer_or_acquire() as producer, producer.batch():
            for visit in visits:
                target.send_task(FETCH_PAGE, args=visit.args(), kwargs=visit.kwargs(), producer=producer)
    except BatchPublishError as exc:
        log.warning("sending %d visits in one batch failed (%s); sending them one by one", len(visits), exc)
        for visit in visits:
            send_fetch(visit, via=target)


def send_attachment(
    visit: AttachmentVisit, *, countdown: float | None = None, via: Celery | None = None
) -> None:
    """Queue one attachment download (its message is :class:`crawler.visit.AttachmentVisit`)."""
    options: dict[str, Any] = {}
    if countdown:
        options["countdown"] = bounded_countdown(countdown, config)
    (via or app).send_task(FETCH_ATTACHMENT, args=visit.args(), kwargs=visit.kwargs(), **options)


def send_crawl_source(source_id: str) -> None:
    """Queue a run of a whole source (what beat does on schedule)."""
    app.send_task(CRAWL_SOURCE, args=(source_id,))
