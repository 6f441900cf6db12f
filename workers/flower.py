"""Flower, locked: it refuses to start open, and ``/metrics`` needs the same basic auth.

``celery -A workers.app flower`` loads :mod:`workers.app` before Flower reads its options, and
:func:`lock_flower` (called from there) wraps Flower's own option step so that, once Flower has
read every source of options (``--basic-auth``, ``FLOWER_BASIC_AUTH``, its config file, and our
default from ``CRAWLER_FLOWER_USER``/``CRAWLER_FLOWER_PASSWORD``), it checks what Flower would
really use:

* no credentials, an empty user or password, or the old default ``change-me``: one line on
  standard error and exit code 2, before any port is opened (Flower's OAuth ``--auth`` is
  accepted instead of basic auth);
* ``/metrics`` (Prometheus) is served only with the same credentials, unless
  ``CRAWLER_FLOWER_PUBLIC_METRICS=true`` opts in; ``/healthcheck`` stays open (it says "OK"
  and nothing else, and container health checks call it).

Credentials belong in the environment (or Flower's config file), never in argv: ``ps`` shows
every process's command line to every user of the machine.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from settings import WEAK_FLOWER_PASSWORDS

EXIT_USAGE = 2
HOW = "set CRAWLER_FLOWER_USER and CRAWLER_FLOWER_PASSWORD in the environment"


def credentials_problem(basic_auth: Sequence[str] | None, *, oauth: str = "") -> str | None:
    """Why Flower must not start with these ``user:password`` credentials, or None."""
    if oauth:
        return None  # Flower's OAuth (``--auth``) guards every page
    if not basic_auth:
        return f"Flower would start without authentication; {HOW}"
    for credential in basic_auth:
        user, separator, password = credential.partition(":")
        if not separator or not user.strip():
            return f"a Flower basic-auth credential has no user name; {HOW}"
        if not password:
            return f"the Flower basic-auth password is empty; {HOW}"
        if password in WEAK_FLOWER_PASSWORDS:
            return f"the Flower basic-auth password is the documented default {password!r}; {HOW}"
    return None


def _authenticated_metrics(metrics: type[Any]) -> type[Any]:
    """Flower's ``/metrics`` handler behind the same check as its other pages."""
    import tornado.web

    class AuthenticatedMetrics(metrics):
        @tornado.web.authenticated
        async def get(self) -> None:
            await super().get()

    return AuthenticatedMetrics


def protect_metrics(handlers: list[Any]) -> None:
    """Swap Flower's ``/metrics`` handler for an authenticated one, in its handler list."""
    from flower.views.monitor import Metrics

    for index, handler in enumerate(handlers):
        if isinstance(handler, tuple) and handler[0] == r"/metrics" and handler[1] is Metrics:
            handlers[index] = (handler[0], _authenticated_metrics(Metrics), *handler[2:])
            return
    raise RuntimeError("Flower's /metrics handler was not found: this Flower version is not supported")


def _refuse(problem: str) -> None:
    print(f"flower: refusing to start: {problem}", file=sys.stderr, flush=True)
    sys.exit(EXIT_USAGE)


def lock_flower(*, public_metrics: bool = False) -> None:
    """Install the checks into a Flower command about to run (see the module docstring)."""
    import flower.command
    import flower.urls

    original: Callable[[], None] | None = getattr(flower.command, "extract_settings", None)
    if original is None or getattr(original, "_locked", False):
        if original is None:  # a Flower we cannot check must not start unchecked
            _refuse("this Flower version cannot be checked for authentication (pin flower 2.x)")
        return

    def extract_settings() -> None:
        from tornado.options import options

        problem = credentials_problem(options.basic_auth, oauth=options.auth)
        if problem is not None:
            _refuse(problem)
        if not public_metrics:
            protect_metrics(flower.urls.handlers)
        assert original is not None
        original()

    extract_settings._locked = True  # type: ignore[attr-defined]
    flower.command.extract_settings = extract_settings
