"""Unit tests of the cluster's plain decisions: retries, countdown bounds, the beat schedule,
the skip rule, the Celery configuration and the CLI's failure modes. No servers needed, except
the one test that checks the CLI's message when Redis is unreachable (it needs none running)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from celery.schedules import crontab

from crawler.errors import (
    BodyTooLarge,
    ConnectionFailed,
    DisallowedByRobots,
    FetchTimeout,
    HTTPStatusError,
    InvalidURL,
    NotHTML,
    RobotsUnavailable,
    ServerError,
)
from crawler.records import UrlState, UrlStatus, failure_record
from crawler.sources import Source
from crawler.visit import (
    Politeness,
    RetryPolicy,
    already_done,
    retry_delay,
)
from workers.app import WorkerConfig, app, bounded_countdown, config
from workers.routing import (
    ATTACHMENT_QUEUE,
    CRAWL_QUEUE,
    CRAWL_SOURCE,
    FETCH_ATTACHMENT,
    FETCH_PAGE,
    SCHEDULE_QUEUE,
    TASK_ROUTES,
)
from workers.schedule import beat_schedule_from_seeds, build_beat_schedule, schedule_of

REPO = Path(__file__).resolve().parent.parent
POLICY = RetryPolicy(max_retries=4, base_delay=2.0, max_delay=60.0, ceiling=100.0)


def _source(**fields: object) -> Source:
    values: dict[str, object] = {"id": "s", "name": "S", "start_urls": ["http://example.test/"]}
    values.update(fields)
    return Source.model_validate(values)


# -- retry decision -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "exc",
    [
        HTTPStatusError("404", status=404),
        DisallowedByRobots("no"),
        NotHTML("pdf"),
        BodyTooLarge("big"),
        InvalidURL("bad"),
        ValueError("a bug is not a fetch failure"),
    ],
)
def test_permanent_failures_are_never_retried(exc: BaseException) -> None:
    assert retry_delay(exc, 0, POLICY, rng=lambda: 0.5) is None


@pytest.mark.parametrize(
    "exc",
    [
        FetchTimeout("slow"),
        ConnectionFailed("refused"),
        ServerError("503", status=503),
        ServerError("429", status=429),
    ],
)
def test_transient_failures_back_off_exponentially_with_full_jitter(exc: BaseException) -> None:
    # rng() = 1 gives the top of the jitter range: base * 2**attempt, capped at max_delay.
    assert [retry_delay(exc, n, POLICY, rng=lambda: 1.0) for n in range(4)] == [2.0, 4.0, 8.0, 16.0]
    assert retry_delay(exc, 3, POLICY, rng=lambda: 0.25) == 4.0
    assert retry_delay(exc, 0, POLICY, rng=lambda: 0.0) == 0.0
    big = RetryPolicy(max_retries=20, base_delay=2.0, max_delay=60.0, ceiling=100.0)
    assert retry_delay(exc, 10, big, rng=lambda: 1.0) == 60.0


def test_retries_stop_after_max_retries() -> None:
    exc = FetchTimeout("slow")
    assert retry_delay(exc, POLICY.max_retries - 1, POLICY) is not None
    assert retry_delay(exc, POLICY.max_retries, POLICY) is None
    never = RetryPolicy(max_retries=0, base_delay=2.0, max_delay=60.0, ceiling=100.0)
    assert retry_delay(exc, 0, never) is None


def test_retry_after_is_a_floor_capped_by_the_ceiling() -> None:
    assert retry_delay(ServerError("429", status=429, retry_after=30.0), 0, POLICY, rng=lambda: 0.1) == 30.0
    # A server asking for an hour is not obeyed past the ceiling (below the visibility timeout).
    assert retry_delay(ServerError("503", status=503, retry_after=3600.0), 0, POLICY) == POLICY.ceiling


def test_robots_unavailable_waits_out_the_cached_failure() -> None:
    from crawler.robots import ROBOTS_FAILURE_TTL

    exc = RobotsUnavailable("robots.txt 503")
    assert retry_delay(exc, 0, POLICY, rng=lambda: 0.0) == ROBOTS_FAILURE_TTL


def test_retry_policy_refuses_delays_beyond_its_ceiling() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_retries=4, base_delay=2.0, max_delay=2000.0, ceiling=1000.0)


def test_failure_record_statuses() -> None:
    assert failure_record("u", "s", 1, DisallowedByRobots("x")).status is UrlStatus.DISALLOWED
    transient = failure_record("u", "s", 1, ServerError("503", status=503), attempts=5)
    assert (transient.status, transient.error_reason, transient.http_status, transient.attempts) == (
        UrlStatus.FAILED_TRANSIENT,
        "http_503",
        503,
        5,
    )
    permanent = failure_record("u", "s", 1, HTTPStatusError("404", status=404))
    assert permanent.status is UrlStatus.FAILED_PERMANENT


def test_host_delay_takes_the_longer_of_source_and_crawl_delay() -> None:
    polite = Politeness(delay=1.0, concurrency=2)
    assert polite.delay_for(_source(), None) == 1.0
    assert polite.delay_for(_source(per_host_delay=0.2), None) == 0.2
    assert polite.delay_for(_source(per_host_delay=0.2), 5.0) == 5.0
    assert polite.delay_for(None, 0.5) == 1.0


def test_command_line_delay_and_concurrency_win_over_the_source() -> None:
    polite = Politeness(delay=1.0, concurrency=2, delay_override=0.0, concurrency_override=6)
    source = _source(per_host_delay=2.0, per_host_concurrency=1)
    assert polite.delay_for(source, None) == 0.0
    assert polite.delay_for(source, 3.0) == 3.0  # robots.txt's Crawl-delay still raises it
    assert polite.concurrency_for(source) == 6
    plain = Politeness(delay=1.0, concurrency=2)
    assert (plain.delay_for(source, None), plain.concurrency_for(source)) == (2.0, 1)


# -- skip rule ------------------------------------------------------------------------------------


def test_already_done() -> None:
    at = datetime(2025, 1, 1, tzinfo=UTC)
    fetched = UrlState("u", "s", UrlStatus.FETCHED, fetched_at=at)
    assert not already_done(None)
    assert already_done(fetched)
    assert already_done(UrlState("u", "s", UrlStatus.FAILED_TRANSIENT, fetched_at=at))
    # Waiting for a retry or a budget: not done.
    assert not already_done(UrlState("u", "s", UrlStatus.QUEUED, fetched_at=at))
    # A re-visit counts only outcomes recorded since it was requested.
    assert already_done(fetched, since=at.timestamp() - 1)
    assert not already_done(fetched, since=at.timestamp() + 1)
    assert not already_done(UrlState("u", "s", UrlStatus.FETCHED), since=at.timestamp())


# -- countdowns and the visibility timeout --------------------------------------------------------


def test_every_countdown_stays_below_the_visibility_timeout() -> None:
    assert app.conf.broker_transport_options["visibility_timeout"] == config.visibility_timeout
    for seconds in (
        -5,
        0,
        1.5,
        config.max_countdown,
        config.visibility_timeout,
        10 * config.visibility_timeout,
    ):
        countdown = bounded_countdown(seconds, config)
        assert 0 <= countdown <= config.max_countdown < config.visibility_timeout
    # A countdown plus the longest run still ends well inside the visibility timeout.
    assert config.max_countdown + config.task_time_limit <= config.visibility_timeout / 2
    # The retry policy the workers use cannot exceed the bound either.
    from workers.tasks import Runtime

    assert Runtime().policy.ceiling == config.max_countdown


def test_the_visibility_timeout_alone_sets_every_dependent_limit() -> None:
    """Lowering the visibility timeout is one setting: the task limits, the retry cap, the page
    deadline and the extraction bound follow, and the worker's countdowns stay below it."""
    from settings import Settings

    for vt in (20.0, 180.0, 900.0, 3600.0, 7200.0):
        settings = Settings(visibility_timeout=vt)
        config = WorkerConfig.from_settings(settings)
        assert settings.task_soft_time_limit < settings.task_time_limit
        assert settings.page_deadline + settings.extract_timeout <= settings.task_soft_time_limit
        assert 0 < settings.retry_max_delay <= config.max_countdown
        assert config.max_countdown + config.task_time_limit <= vt / 2
        assert config.transport_options["visibility_timeout"] <= vt
        # kombu's sweep for messages of dead workers runs often enough to find them on time.
        assert config.transport_options["unacked_restore_interval"] <= max(1.0, vt / 60)
    default = Settings()
    assert (default.task_time_limit, default.task_soft_time_limit, default.retry_max_delay) == (300, 240, 600)
    assert (default.page_deadline, default.extract_timeout) == (60, 30)


def test_contradicting_limits_get_one_error_naming_every_value() -> None:
    from pydantic import ValidationError

    from settings import Settings

    with pytest.raises(ValidationError) as info:
        Settings(visibility_timeout=180, task_time_limit=300, task_soft_time_limit=300, page_deadline=500)
    message = str(info.value)
    for name in ("CRAWLER_TASK_TIME_LIMIT", "CRAWLER_TASK_SOFT_TIME_LIMIT", "CRAWLER_PAGE_DEADLINE"):
        assert name in message
    assert "CRAWLER_VISIBILITY_TIMEOUT" in message
    with pytest.raises(ValidationError, match="CRAWLER_RETRY_MAX_DELAY"):
        Settings(retry_max_delay=3000)


# -- Celery configuration -------------------------------------------------------------------------


def test_celery_configuration() -> None:
    conf = app.conf
    assert conf.task_serializer == "json" and conf.accept_content == ["json"]
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.worker_max_tasks_per_child > 0 and conf.worker_max_memory_per_child > 0
    assert conf.task_soft_time_limit < conf.task_time_limit
    assert conf.worker_send_task_events and conf.task_send_sent_event
    assert conf.task_ignore_result
    assert conf.broker_connection_retry_on_startup
    assert {q.name for q in conf.task_queues} == {CRAWL_QUEUE, ATTACHMENT_QUEUE, SCHEDULE_QUEUE}
    assert TASK_ROUTES[FETCH_ATTACHMENT]["queue"] == ATTACHMENT_QUEUE
    assert TASK_ROUTES[FETCH_PAGE]["queue"] == CRAWL_QUEUE
    assert TASK_ROUTES[CRAWL_SOURCE]["queue"] == SCHEDULE_QUEUE
    # What the router actually does with a message sent by name (as send_fetch does).
    assert app.amqp.router.route({}, FETCH_PAGE, (), {})["queue"].name == CRAWL_QUEUE
    assert app.amqp.router.route({}, CRAWL_SOURCE, (), {})["queue"].name == SCHEDULE_QUEUE


def test_routes_and_beat_entries_name_registered_tasks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import workers.tasks  # noqa: F401  (registers the tasks, as the worker's include does)

    registered = set(app.tasks)
    assert {FETCH_PAGE, CRAWL_SOURCE} <= registered
    assert set(TASK_ROUTES) <= registered
    for name, entry in app.conf.beat_schedule.items():
        assert entry["task"] in registered, name
    # ... and a schedule built from sources names them too.
    (tmp_path / "every.toml").write_text(
        'id = "every"\nname = "E"\nstart_urls = ["http://e.test/"]\nschedule = "@every 2s"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("CRAWLER_SEEDS_DIR", str(tmp_path))
    for entry in beat_schedule_from_seeds().values():
        assert entry["task"] in registered
        assert entry["options"]["queue"] == SCHEDULE_QUEUE


# -- beat schedule --------------------------------------------------------------------------------


def test_schedule_of_cron_and_intervals() -> None:
    assert schedule_of("@every 2s") == timedelta(seconds=2)
    assert schedule_of("@every 15m") == timedelta(minutes=15)
    cron = schedule_of("0 */6 * * 1-5")
    assert isinstance(cron, crontab)
    assert cron.hour == {0, 6, 12, 18} and cron.minute == {0} and cron.day_of_week == {1, 2, 3, 4, 5}
    # Cron's 7 is Sunday; Celery only knows 0.
    assert schedule_of("30 8 * * 7").day_of_week == {0}  # type: ignore[union-attr]
    assert schedule_of("30 8 * * 5-7").day_of_week == {5, 6, 0}  # type: ignore[union-attr]
    assert schedule_of("30 8 * * 1-7/2").day_of_week == {1, 3, 5, 0}  # type: ignore[union-attr]
    assert schedule_of("30 8 1,15 1-6 *").month_of_year == {1, 2, 3, 4, 5, 6}  # type: ignore[union-attr]


def test_build_beat_schedule_takes_enabled_scheduled_sources() -> None:
    sources = [
        _source(id="cron", schedule="0 */6 * * *"),
        _source(id="fast", schedule="@every 30s"),
        _source(id="manual"),
        _source(id="off", schedule="@every 1m", enabled=False),
    ]
    entries = build_beat_schedule(sources)
    assert set(entries) == {"crawl-source:cron", "crawl-source:fast"}
    fast = entries["crawl-source:fast"]
    assert fast["task"] == CRAWL_SOURCE and fast["args"] == ("fast",)
    assert fast["schedule"] == timedelta(seconds=30)
    assert fast["options"] == {"queue": SCHEDULE_QUEUE, "expires": 30.0}


def test_a_broken_source_file_does_not_break_the_schedule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "good.toml").write_text(
        'id = "good"\nname = "G"\nstart_urls = ["http://g.test/"]\nschedule = "5 4 * * *"\n', encoding="utf-8"
    )
    (tmp_path / "bad.toml").write_text('id = "bad"\nname = \n', encoding="utf-8")
    monkeypatch.setenv("CRAWLER_SEEDS_DIR", str(tmp_path))
    assert set(beat_schedule_from_seeds()) == {"crawl-source:good"}
    assert "bad.toml" in caplog.text


# -- CLI ------------------------------------------------------------------------------------------


def test_adhoc_source_ids_are_stable_and_valid() -> None:
    from crawler.sources import adhoc_source_id

    one = adhoc_source_id(["http://a.test/", "http://b.test/x"])
    assert one == adhoc_source_id(["http://b.test/x", "http://a.test/"])
    assert one != adhoc_source_id(["http://a.test/"])
    Source.from_urls(["http://a.test/"], id=one)  # passes the id pattern


def test_workers_cli_module_does_not_import_celery() -> None:
    code = (
        "import sys, cli.cluster\nprint(any(m == 'celery' or m.startswith('celery.') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("command", [["status"], ["wait", "--timeout", "1"], ["enqueue", "http://a.test/"]])
def test_cli_names_an_unreachable_redis(command: list[str], tmp_path: Path) -> None:
    import os

    env = dict(os.environ)
    env["CRAWLER_REDIS_URL"] = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    env["CRAWLER_DATABASE_URL"] = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    out = subprocess.run(
        [sys.executable, "-m", "cli", *command],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=env,
    )
    assert out.returncode == 1, out.stderr
    assert "cannot reach Redis at redis://127.0.0.1:1/0: start it or set CRAWLER_REDIS_URL" in out.stderr


def test_enqueue_without_targets_is_a_usage_error() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "cli", "enqueue"], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert out.returncode == 2
    assert "give start URLs" in out.stderr


def test_worker_config_reads_the_settings() -> None:
    from settings import Settings
    from workers.app import SETTING_NAMES

    settings = Settings(
        redis_url="redis://r:6379/3",
        redis_key_prefix="x:",
        task_max_retries=2,
        retry_base_delay=0.5,
        worker_max_tasks_per_child=10,
        visibility_timeout=7200,
    )
    got = WorkerConfig.from_settings(settings)
    assert (got.redis_url, got.key_prefix) == ("redis://r:6379/3", "x:")
    assert got.max_tasks_per_child == 10 and got.visibility_timeout == 7200.0
    policy = settings.retry_policy(ceiling=got.max_countdown)
    assert (policy.max_retries, policy.base_delay, policy.ceiling) == (2, 0.5, got.max_countdown)
    assert set(SETTING_NAMES) <= set(Settings.model_fields)
    assert set(SETTING_NAMES.values()) <= set(WorkerConfig.__dataclass_fields__)


def test_a_recovering_visit_keeps_its_mark_on_the_wire_and_old_messages_still_read() -> None:
    """A retried visit put off by a busy host goes out as a new message: the mark that it may
    have claimed links an earlier delivery never queued travels with it (fetch_page reads it as
    a retry), and a message without it reads as before."""
    from crawler.visit import Visit

    marked = Visit("http://a.cn/list.html", "s", 1, attempt=2, run=5.0, revisit=True, recovering=True)
    assert Visit.from_message(marked.args(), marked.kwargs()) == marked
    plain = Visit("http://a.cn/list.html", "s", 1)
    assert "recovering" not in plain.kwargs()
    assert Visit.from_message(plain.args(), {"attempt": 0, "run": None, "revisit": False}) == plain
    assert marked.next_attempt().recovering
