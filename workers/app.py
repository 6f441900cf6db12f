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
import sys
from dataclasses import dataclass
from typing import Any

from celery import Celery
from kombu import Queue

from settings import get_settings
from workers.routing import CRAWL_QUEUE, CRAWL_SOURCE, FETCH_PAGE, QUEUES, TASK_ROUTES

log = logging.getLogger(__name__)


#: Settings (``settings.Settings`` fields, env ``CRAWLER_<NAME>``) -> WorkerConfig fields.
SETTING_NAMES: dict[str, str] = {
    "redis_key_prefix": "key_prefix",
    "visibility_timeout": "visibility_timeout",
    "task_time_limit": "task_time_limit",
    "task_soft_time_limit": "task_soft_time_limit",
    "worker_max_tasks_per_child": "max_tasks_per_child",
    "worker_max_memory_per_child_kb": "max_memory_per_child_kb",
    "task_max_retries": "task_max_retries",
    "retry_base_delay": "retry_base_delay",
    "retry_max_delay": "retry_max_delay",
    "throttle_max_sleep": "throttle_max_sleep",
    "max_deliveries": "max_deliveries",
}


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """The cluster's knobs, read from settings (defaults here serve direct construction in tests)."""

    redis_url: str
    key_prefix: str = "crawler:"
    visibility_timeout: float = 3600.0
    task_time_limit: float = 300.0
    task_soft_time_limit: float = 240.0
    # A replaced child costs ~3 s of CPU (imports, first pages): 3 ms a task at 1,000 tasks. The
    # memory bound below is what guards against growth; this only bounds a slow leak.
    max_tasks_per_child: int = 20_000
    max_memory_per_child_kb: int = 512_000
    task_max_retries: int = 4
    retry_base_delay: float = 2.0
    retry_max_delay: float = 600.0
    #: A task waits in place (sleeping) for a host at most this long; longer waits re-queue it.
    throttle_max_sleep: float = 0.1
    #: Deliveries of one visit that never finished before the visit is given up as poisonous.
    max_deliveries: int = 3

    @classmethod
    def from_settings(cls, settings: Any | None = None) -> WorkerConfig:
        """From settings (``CRAWLER_*``)."""
        settings = settings if settings is not None else get_settings()
        values: dict[str, Any] = {"redis_url": settings.redis_url}
        for setting, field_name in SETTING_NAMES.items():
            values[field_name] = getattr(settings, setting)
        config = cls(**values)
        config.check()
        return config

    @property
    def max_countdown(self) -> float:
        """The longest countdown any task may be given.

        A message with a countdown is held unacknowledged by a worker until it is due and then
        until it has run; if that exceeds the visibility timeout Redis hands it to a second
        worker. So: half the visibility timeout, less the longest a task may run.
        """
        return self.visibility_timeout / 2 - self.task_time_limit

    def check(self) -> None:
        """Refuse settings under which delayed tasks would be delivered twice, or never run."""
        if self.task_soft_time_limit >= self.task_time_limit:
            raise ValueError("task_soft_time_limit must be below task_time_limit")
        if self.max_countdown < 60:
            raise ValueError(
                f"visibility_timeout {self.visibility_timeout:g} s is too short for task_time_limit "
                f"{self.task_time_limit:g} s: need visibility_timeout >= 2 * (task_time_limit + 60)"
            )
        if self.retry_max_delay > self.max_countdown:
            raise ValueError(
                f"retry_max_delay {self.retry_max_delay:g} s must be below the countdown bound "
                f"{self.max_countdown:g} s (half the visibility timeout less the task time limit)"
            )


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
        broker_transport_options={"visibility_timeout": int(config.visibility_timeout)},
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
        worker_send_task_events=True,
        task_send_sent_event=True,
        worker_hijack_root_logger=False,
        timezone="UTC",
        enable_utc=True,
    )
    from workers.schedule import beat_schedule_from_seeds

    celery_app.conf.beat_schedule = beat_schedule_from_seeds()
    return celery_app


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


def send_fetch(
    url: str,
    source_id: str,
    depth: int,
    *,
    attempt: int = 0,
    run: float | None = None,
    revisit: bool = False,
    countdown: float | None = None,
    via: Celery | None = None,
) -> None:
    """Queue one page visit (see :func:`workers.tasks.fetch_page` for the arguments), through
    ``via`` (an app on another broker, in tests) or this module's app."""
    options: dict[str, Any] = {}
    if countdown:
        options["countdown"] = bounded_countdown(countdown, config)
    (via or app).send_task(
        FETCH_PAGE,
        args=(url, source_id, depth),
        kwargs={"attempt": attempt, "run": run, "revisit": revisit},
        **options,
    )


def send_crawl_source(source_id: str) -> None:
    """Queue a run of a whole source (what beat does on schedule)."""
    app.send_task(CRAWL_SOURCE, args=(source_id,))
