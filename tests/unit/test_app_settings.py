"""``--app``: RedBeat's settings read from the team's Celery app exactly as beat reads them,
and their precedence: an option typed on the command line, else the app, else the
environment, else the default. No server: a closed port shows which URL was chosen."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import pytest
from redbeat.schedulers import RedBeatConfig, RedBeatScheduler

from reconciler.core.beat_clock import BeatTiming
from reconciler.core.errors import UsageError
from reconciler.load.celery_app import (
    AppSettings,
    SharedSettings,
    read_app_settings,
    shared_settings,
)
from tests.support import checked_app

if TYPE_CHECKING:
    from .cli_runner import Workspace

APP = "tests.support.checked_app"
CLOSED = "redis://127.0.0.1:1"  # nothing listens: the error names the URL that was used


@pytest.fixture(autouse=True)
def _no_inherited_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("RECONCILER_APP", "GITHUB_ACTIONS", "CI", checked_app.ENV_REDIS_URL):
        monkeypatch.delenv(variable, raising=False)
    for variable in ("REDBEAT_REDIS_URL", "REDBEAT_KEY_PREFIX", "REDBEAT_TIMEZONE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.delenv("REDBEAT_LOCK_KEY", raising=False)


def _app(**settings: Any) -> Any:
    return checked_app.make_checked_app(**settings)


def _redbeat_config(app: Any) -> RedBeatConfig:
    with warnings.catch_warnings():
        # RedBeat warns (and logs) that its fallback to broker_url is deprecated.
        warnings.simplefilter("ignore")
        return RedBeatConfig(app)


def _without(*names: str) -> Any:
    """An app whose configuration lacks ``names`` (RedBeat tells unset from None)."""
    app = _app()
    for name in names:
        app.conf.changes.pop(name, None)
    return app


@pytest.mark.parametrize(
    "app",
    [
        pytest.param(_app(), id="all-set"),
        pytest.param(
            _without("redbeat_redis_url", "redbeat_key_prefix", "redbeat_lock_key"),
            id="defaults-and-broker-fallback",
        ),
        pytest.param(_app(redbeat_lock_key=None), id="lock-key-none"),
        pytest.param(_app(redbeat_lock_key="checked::lock"), id="lock-key-prefixed"),
        pytest.param(_app(redbeat_key_prefix="{rb}:", redbeat_lock_key="lk"), id="hash-tag-prefix"),
        pytest.param(_without("redbeat_key_prefix", "redbeat_lock_key"), id="default-lock"),
    ],
)
def test_settings_are_those_redbeat_reads(app: Any) -> None:
    ours = read_app_settings(app, "checked")
    redbeat = _redbeat_config(app)
    assert ours.redis_url == redbeat.redis_url
    assert ours.lock_key == (redbeat.lock_key or None)
    if redbeat.key_prefix is not None:
        assert ours.key_prefix == redbeat.key_prefix


def test_a_prefix_beat_cannot_use_is_refused() -> None:
    with pytest.raises(TypeError):
        _redbeat_config(_app(redbeat_key_prefix=None))  # beat fails to start
    with pytest.raises(UsageError, match="redbeat_key_prefix is None, not a string"):
        read_app_settings(_app(redbeat_key_prefix=None), "checked")


def test_settings_of_the_checked_app() -> None:
    found = read_app_settings(_app(), "checked")
    assert found == AppSettings(
        app_name="checked",
        redis_url=checked_app.DEFAULT_REDIS_URL,
        redis_url_setting="redbeat_redis_url",
        key_prefix="checked:",
        lock_key="checked:beat-lock",
        lock_key_setting="beat-lock",
        timezone_name="Europe/Paris",
        beat_timing=BeatTiming(300.0, None, "the Celery app 'checked'", assumed=False),
    )


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({}, id="defaults"),
        pytest.param({"beat_max_loop_interval": 5}, id="short-loop"),
        pytest.param({"beat_max_loop_interval": 30, "redbeat_lock_timeout": 45}, id="lock-set"),
        pytest.param({"redbeat_lock_timeout": 600}, id="lock-only"),
    ],
)
def test_beat_timing_is_what_redbeats_scheduler_uses(settings: dict[str, Any]) -> None:
    """The loop interval and lock timeout that date beat's sleep, against the values
    RedBeatScheduler itself settles on (built lazily: it connects to nothing)."""
    app = _app(**settings)
    ours = read_app_settings(app, "checked").beat_timing
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scheduler = RedBeatScheduler(app=app, lazy=True)
    assert ours.max_loop_interval == scheduler.max_interval
    assert ours.lock_timeout == scheduler.lock_timeout


def test_url_falls_back_to_broker_url_as_redbeat_2_4_does() -> None:
    app = _without("redbeat_redis_url")
    app.conf.broker_url = "redis://broker:6379/3"
    found = read_app_settings(app, "checked")
    assert (found.redis_url, found.redis_url_setting) == ("redis://broker:6379/3", "broker_url")


@pytest.mark.parametrize(
    ("settings", "zone"),
    [
        pytest.param({"timezone": "America/New_York"}, "America/New_York", id="named"),
        pytest.param({"timezone": None}, "UTC", id="unset-utc"),
        pytest.param({"timezone": None, "enable_utc": False}, None, id="host-local-time"),
    ],
)
def test_timezone_is_celerys(settings: dict[str, Any], zone: str | None) -> None:
    app = _app(**settings)
    assert read_app_settings(app, "checked").timezone_name == zone
    if zone is not None:
        assert str(app.timezone) == zone


def test_zoneinfo_timezone_setting_is_named() -> None:
    from zoneinfo import ZoneInfo

    assert read_app_settings(_app(timezone=ZoneInfo("Asia/Tokyo")), "c").timezone_name == (
        "Asia/Tokyo"
    )


@pytest.mark.parametrize(
    ("settings", "phrase"),
    [
        pytest.param(
            {
                "redbeat_redis_url": "redis-sentinel://s1:26379",
                "redbeat_redis_options": {"service_name": "m"},
            },
            "redbeat_redis_url is a redis-sentinel:// URL but redbeat_redis_options has no "
            "'sentinels'",
            id="sentinel-without-sentinels",
        ),
        pytest.param(
            {
                "redbeat_redis_url": "redis-sentinel://s1:26379",
                "redbeat_redis_options": {
                    "sentinels": [("s1", 26379)],
                    "sentinel_kwargs": {"ssl": 1},
                },
            },
            "redbeat_redis_options 'sentinel_kwargs' (ssl) cannot be passed",
            id="sentinel-option-not-followed",
        ),
        pytest.param(
            {"redbeat_redis_options": {"password": "x", "socket_timeout": 3}},
            "redbeat_redis_options (password) cannot be passed to the client yet",
            id="client-options",
        ),
        pytest.param(
            {
                "redbeat_redis_url": "rediss://h:6380/0",
                "redbeat_redis_use_ssl": {"ssl_cert_reqs": "none", "ssl_ciphers": "HIGH"},
            },
            "redbeat_redis_use_ssl (ssl_ciphers) cannot be passed to the client yet (only "
            "ssl_ca_certs, ssl_certfile, ssl_keyfile, ssl_cert_reqs, ssl_check_hostname can)",
            id="ssl-options",
        ),
        pytest.param(
            {"redbeat_redis_url": "amqp://guest:pw@rabbit//"},
            "redbeat_redis_url 'amqp://guest:***@rabbit//' is not a redis://",
            id="not-redis",
        ),
    ],
)
def test_connections_beat_opens_differently_are_refused(
    settings: dict[str, Any], phrase: str
) -> None:
    found = read_app_settings(_app(**settings), "checked")
    assert found.unsupported_connection is not None
    assert phrase in found.unsupported_connection
    with pytest.raises(UsageError, match="pass --redis-url") as raised:
        shared_settings(SharedSettings(), found, keep=())
    assert phrase in str(raised.value)
    # An explicit --redis-url says how to reach beat's Redis: then it is not refused.
    chosen = shared_settings(SharedSettings(redis_url=CLOSED), found, keep={"redis_url"})
    assert chosen.redis_url == CLOSED


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({"redbeat_redis_options": {"retry_period": 60, "socket_timeout": 5}}),
        pytest.param({"broker_transport_options": {"visibility_timeout": 3600}}),
    ],
)
def test_tuning_and_broker_options_do_not_matter(settings: dict[str, Any]) -> None:
    assert read_app_settings(_app(**settings), "checked").unsupported_connection is None


APP_SETTINGS = AppSettings(
    app_name="team",
    redis_url="redis://app:6379/0",
    redis_url_setting="redbeat_redis_url",
    key_prefix="team:",
    lock_key="team:lk",
    lock_key_setting="lk",
    timezone_name="Europe/Paris",
    beat_timing=BeatTiming(10.0, None, "the Celery app 'team'", assumed=False),
)
FROM_ENV = SharedSettings("redis://env:6379/0", "env:", "Asia/Tokyo", "env-lock", True)


@pytest.mark.parametrize(
    ("keep", "expected"),
    [
        pytest.param(
            set(),
            SharedSettings(
                "redis://app:6379/0", "team:", "Europe/Paris", "lk", True, APP_SETTINGS.beat_timing
            ),
            id="app-over-environment",
        ),
        pytest.param(
            {"redis_url", "key_prefix"},
            SharedSettings(
                "redis://env:6379/0", "env:", "Europe/Paris", "lk", True, APP_SETTINGS.beat_timing
            ),
            id="typed-url-and-prefix-win",
        ),
        pytest.param(
            {"timezone_name", "beat_lock_key"},
            SharedSettings(
                "redis://app:6379/0",
                "team:",
                "Asia/Tokyo",
                "env-lock",
                True,
                APP_SETTINGS.beat_timing,
            ),
            id="typed-timezone-and-lock-win",
        ),
        pytest.param(
            {"beat_lock"},
            SharedSettings(
                "redis://app:6379/0",
                "team:",
                "Europe/Paris",
                "env-lock",
                True,
                APP_SETTINGS.beat_timing,
            ),
            id="typed-no-beat-lock-wins",
        ),
    ],
)
def test_precedence(keep: set[str], expected: SharedSettings) -> None:
    assert shared_settings(FROM_ENV, APP_SETTINGS, keep) == expected


def test_environment_fills_what_the_app_leaves_unset() -> None:
    without_url = AppSettings(**{**APP_SETTINGS.__dict__, "redis_url": None})
    assert shared_settings(FROM_ENV, without_url, ()).redis_url == "redis://env:6379/0"


def test_app_without_a_lock_turns_the_beat_lock_check_off() -> None:
    no_lock = AppSettings(**{**APP_SETTINGS.__dict__, "lock_key": None, "lock_key_setting": None})
    assert shared_settings(FROM_ENV, no_lock, ()).beat_lock is False
    default_lock = AppSettings(**{**APP_SETTINGS.__dict__, "lock_key_setting": None})
    chosen = shared_settings(FROM_ENV, default_lock, ())
    assert (chosen.beat_lock, chosen.beat_lock_key) == (True, None)


def test_host_local_time_needs_an_explicit_timezone() -> None:
    local = AppSettings(**{**APP_SETTINGS.__dict__, "timezone_name": None})
    with pytest.raises(UsageError, match="enable_utc = False and no timezone"):
        shared_settings(FROM_ENV, local, ())
    assert shared_settings(FROM_ENV, local, {"timezone_name"}).timezone_name == "Asia/Tokyo"


# -- through the CLI ------------------------------------------------------------------------


def test_validate_reads_the_app_but_says_nothing_about_redis(workspace: Workspace) -> None:
    workspace.write("s.yaml", "version: 1\nschedules:\n  a: {task: checked.ping, every: 5m}\n")
    run = workspace.validate("s.yaml", "--app", APP)
    assert (run.exit_code, run.out, run.err) == (0, "1 schedule in 1 file is valid\n", "")
