"""Redis Sentinel without a server: the ``redis-sentinel://`` URL form (parsing, refusals,
masking), the client ``connect`` builds from it, and ``--app`` settings translated into it,
compared with the Sentinel client RedBeat's own ``get_redis`` builds for the same app.

Nothing here connects: redis-py's Sentinel and ``master_for`` only connect on the first
command, so both clients can be taken apart and compared as built.
"""

from __future__ import annotations

import ssl
import warnings
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest
from redbeat.schedulers import get_redis
from redis.connection import SSLConnection
from redis.sentinel import SentinelConnectionPool

from reconciler.core.errors import UsageError
from reconciler.load.celery_app import SharedSettings, read_app_settings, shared_settings
from reconciler.store.connection import (
    COMMAND_TIMEOUT_SECONDS,
    CONNECT_TIMEOUT_SECONDS,
    SENTINEL_TIMEOUT_SECONDS,
    connect,
)
from reconciler.store.redis_urls import SentinelTarget, mask_secrets, mask_url, parse_sentinel_url
from tests.support import checked_app
from tests.support.tls import tls_essence

if TYPE_CHECKING:
    from pathlib import Path

# Every character a URL gives a meaning to, and a '+' that form-decoding would turn into ' '.
NASTY = "p@ss:w/rd?&=#%+ é"

# -- the URL form ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "target"),
    [
        pytest.param(
            "redis-sentinel://127.0.0.1:26379/0?service_name=mymaster",
            SentinelTarget((("127.0.0.1", 26379),), "mymaster"),
            id="minimal",
        ),
        pytest.param(
            "redis-sentinel://s1?service_name=m",
            SentinelTarget((("s1", 26379),), "m"),
            id="default-port-no-db",
        ),
        pytest.param(
            "redis-sentinel://beat:pw@s1:26379,s2:26380,[::1]:26381/5?service_name=m"
            "&sentinel_username=sentry&sentinel_password=spw&ssl=true",
            SentinelTarget(
                (("s1", 26379), ("s2", 26380), ("::1", 26381)),
                "m",
                db=5,
                username="beat",
                password="pw",
                sentinel_username="sentry",
                sentinel_password="spw",
                ssl=True,
            ),
            id="everything",
        ),
        pytest.param(
            "redis-sentinel://:p%40ss%2Fw+1@s1:1/0?service_name=a%26b&sentinel_password=x+y%26",
            SentinelTarget((("s1", 1),), "a&b", password="p@ss/w+1", sentinel_password="x+y&"),
            id="percent-encoded-plus-kept",
        ),
        pytest.param(
            "redis-sentinel://:p@ss@s1:1/0?service_name=m",
            SentinelTarget((("s1", 1),), "m", password="p@ss"),
            id="at-sign-in-password",
        ),
        pytest.param(
            "redis-sentinel://beat@s1:1?service_name=m&ssl=false",
            SentinelTarget((("s1", 1),), "m", username="beat"),
            id="username-only",
        ),
        pytest.param(
            "REDIS-SENTINEL://s1:1/0?service_name=m",
            SentinelTarget((("s1", 1),), "m"),
            id="scheme-in-capitals",
        ),
    ],
)
def test_sentinel_urls(url: str, target: SentinelTarget) -> None:
    assert parse_sentinel_url(url) == target


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        pytest.param(
            "redis-sentinel://:SECRET@s1:26379/0",
            "service_name (the master's name the Sentinels monitor) is missing",
            id="no-service-name",
        ),
        pytest.param(
            "redis-sentinel://:SECRET@s1:26379/0?service_name=",
            "service_name (the master's name the Sentinels monitor) is missing",
            id="empty-service-name",
        ),
        pytest.param(
            "redis-sentinel://:SECRET@/0?service_name=m",
            "a Sentinel host is missing",
            id="no-host",
        ),
        pytest.param(
            "redis-sentinel://:SECRET@s1:1,/0?service_name=m",
            "a Sentinel host is missing",
            id="trailing-comma",
        ),
        pytest.param(
            "redis-sentinel://:SECRET@s1:26379x/0?service_name=m",
            "the port of Sentinel host 's1' must be a number from 1 to 65535",
            id="port-not-a-number",
        ),
        pytest.param(
            "redis-sentinel://:SECRET@s1:1,s2:70000/0?service_name=m",
            "the port of Sentinel host 's2' must be a number from 1 to 65535",
            id="port-too-big",
        ),
        pytest.param(
            "redis-sentinel://:SECRET@s1:0/0?service_name=m",
            "the port of Sentinel host 's1' must be a number",
            id="port-zero",
        ),
        pytest.param(
            "redis-sentinel://:SECRET@s1:/0?service_name=m",
            "the port of Sentinel host 's1' is empty",
            id="port-empty",
        ),
        pytest.param(
            "redis-sentinel://:SECRET@:26379/0?service_name=m",
            "a Sentinel address ':26379' has no host",
            id="host-empty",
        ),
        pytest.param(
            "redis-sentinel://:SECRET@[::1:26379/0?service_name=m",
            "the IPv6 host '[::1:26379' must be written [address]:port",
            id="ipv6-unclosed",
        ),
        pytest.param(
            "redis-sentinel://:SECRET@s1:1/zero?service_name=m",
            "the database after '/' must be a number",
            id="db-not-a-number",
        ),
        pytest.param(
            "redis-sentinel://:SECRET@s1:1/-1?service_name=m",
            "the database after '/' must be a number",
            id="db-negative",
        ),
        pytest.param(
            "redis-sentinel://:SECRET@s1:1/0?servicename=m",
            "unknown parameter 'servicename' (accepted: service_name, sentinel_username, "
            "sentinel_password, ssl, ssl_ca_certs, ssl_certfile, ssl_keyfile, ssl_cert_reqs, "
            "ssl_check_hostname)",
            id="unknown-parameter",
        ),
        pytest.param(
            "redis-sentinel://:SECRET@s1:1/0?service_name=m&password=SECRET",
            "unknown parameter 'password'",
            id="password-belongs-in-the-user-info",
        ),
        pytest.param(
            "redis-sentinel://s1:1/0?service_name=m&service_name=n&sentinel_password=SECRET",
            "service_name is given twice",
            id="duplicate",
        ),
        pytest.param(
            "redis-sentinel://:SECRET@s1:1/0?service_name=m&ssl=maybe",
            "ssl must be true or false",
            id="ssl-not-boolean",
        ),
        pytest.param(
            "redis-sentinel://:SECRET@s1:1/0?service_name=m&ssl_ca_certs=/ca.pem",
            "ssl_ca_certs needs ssl=true (TLS to the master)",
            id="tls-parameter-without-ssl",
        ),
        pytest.param(
            "redis-sentinel://:SECRET@s1:1/0?service_name=m&ssl=false&ssl_cert_reqs=none",
            "ssl_cert_reqs needs ssl=true (TLS to the master)",
            id="tls-parameter-with-ssl-false",
        ),
        pytest.param(
            "redis-sentinel://:SECRET@s1:1/0?service_name=m&ssl=true&ssl_cert_reqs=NONE",
            "ssl_cert_reqs must be none, optional or required, not 'NONE'",
            id="cert-reqs-unknown",
        ),
        pytest.param(
            "redis-sentinel://:SECRET@s1:1/0?service_name=m&ssl=true&ssl_check_hostname=si",
            "ssl_check_hostname must be true or false, not 'si'",
            id="check-hostname-not-boolean",
        ),
        pytest.param(
            "redis-sentinel://:SECRET@s1:1/0?service_name=m&ssl=true&ssl_ca_certs=",
            "ssl_ca_certs is empty; it takes the path of a PEM file",
            id="ca-certs-empty",
        ),
        pytest.param(
            "redis-sentinel://:SECRET@s1:1/0?service_name=m&ssl=true&ssl_keyfile=/k.pem",
            "ssl_keyfile is given without ssl_certfile (the client certificate)",
            id="key-without-certificate",
        ),
        pytest.param(
            "redis-sentinel://:SECRET@s1:1/0?service_name=m&ssl=true&ssl_cert_reqs=none"
            "&ssl_check_hostname=true",
            "ssl_check_hostname=true needs a certificate to check the name in: not "
            "ssl_cert_reqs=none",
            id="hostname-without-verification",
        ),
        pytest.param(
            "redis-sentinel://:SECRET@s1:1/0?service_name=m&ssl=true&ssl_certfile=a&ssl_certfile=b",
            "ssl_certfile is given twice",
            id="tls-duplicate",
        ),
        pytest.param(
            "redis-sentinel://:SEC/RET@s1:1/0?service_name=m",
            "'/', '?' and '#' in a user name or password must be percent-encoded",
            id="slash-in-password",
        ),
        pytest.param(
            "redis-sentinel://:SEC?RET@s1:1/0?service_name=m",
            "'/', '?' and '#' in a user name or password must be percent-encoded",
            id="question-mark-in-password",
        ),
        pytest.param(
            "redis-sentinel://:SECRET@s1:1/0?service_name=m#top",
            "a fragment ('#...') means nothing here",
            id="fragment",
        ),
    ],
)
def test_bad_sentinel_urls_name_the_problem_and_mask_the_url(url: str, problem: str) -> None:
    with pytest.raises(UsageError) as raised:
        parse_sentinel_url(url)
    message = str(raised.value)
    assert message.startswith(f"invalid Redis Sentinel URL {mask_url(url)!r}: {problem}")
    assert message.endswith(
        "; expected redis-sentinel://[[username]:password@]host:port"
        "[,host:port...][/db]?service_name=NAME[&sentinel_username=...]"
        "[&sentinel_password=...][&ssl=true[&ssl_ca_certs=...][&ssl_certfile=...]"
        "[&ssl_keyfile=...][&ssl_cert_reqs=...][&ssl_check_hostname=...]]"
    )
    # Not the password, nor a half of one cut at an unencoded '/' or '?'.
    assert "SEC" not in message
    assert "RET" not in message
    # connect() refuses it the same way, before any socket is opened.
    with pytest.raises(UsageError, match="invalid Redis Sentinel URL"):
        connect(url)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        pytest.param("redis://h:6379/0", "redis://h:6379/0", id="no-password"),
        pytest.param("redis://:pw@h:6379/0", "redis://:***@h:6379/0", id="password"),
        pytest.param("rediss://u:pw@h:6380/0", "rediss://u:***@h:6380/0", id="user-password"),
        pytest.param("redis://h/0?password=pw&db=1", "redis://h/0?password=***&db=1", id="query"),
        pytest.param("unix://:pw@/run/r.sock?db=1", "unix://:***@/run/r.sock?db=1", id="unix"),
        pytest.param("redis://:p@ss@h:6379/0", "redis://:***@h:6379/0", id="at-in-password"),
        pytest.param("redis://:p/ss@h:6379/0", "redis://***@h:6379/0", id="slash-unencoded"),
        pytest.param("redis://:p?s#s@h/0", "redis://***@h/0", id="query-marks-unencoded"),
        pytest.param(
            "redis://h:6379/0?password=m@ster:pw",
            "redis://h:6379/0?password=***",
            id="at-in-query-password",
        ),
        pytest.param(
            "redis-sentinel://h:26379/0?service_name=m&sentinel_password=s@pw",
            "redis-sentinel://h:26379/0?service_name=m&sentinel_password=***",
            id="at-in-sentinel-password",
        ),
        pytest.param(
            "redis-sentinel://h:26379/0?service_name=m&sentinel%5Fpassword=s%40pw",
            "redis-sentinel://h:26379/0?service_name=m&sentinel%5Fpassword=***",
            id="encoded-parameter-name",
        ),
        pytest.param(
            "redis-sentinel://beat:pw@s1:26379,s2:26380/0?service_name=m&sentinel_password=spw",
            "redis-sentinel://beat:***@s1:26379,s2:26380/0?service_name=m&sentinel_password=***",
            id="sentinel-both-passwords",
        ),
        pytest.param(
            "redis-sentinel://s1?sentinel_password=spw&service_name=m",
            "redis-sentinel://s1?sentinel_password=***&service_name=m",
            id="sentinel-password-first-no-path",
        ),
        pytest.param(
            "redis-sentinel://u@s1:1/0?service_name=m&sentinel_username=s",
            "redis-sentinel://u@s1:1/0?service_name=m&sentinel_username=s",
            id="sentinel-user-names-only",
        ),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_mask_secrets_removes_both_passwords_raw_and_decoded() -> None:
    url = SentinelTarget((("s1", 1),), "m", password="p@ss/w", sentinel_password="s&p=1").url()
    text = f"auth failed (p@ss/w, p%40ss%2Fw, s&p=1, s%26p%3D1) at {url}"
    masked = mask_secrets(text, url)
    assert masked == (
        "auth failed (***, ***, ***, ***) at "
        "redis-sentinel://:***@s1:1/0?service_name=m&sentinel_password=***"
    )


@pytest.mark.parametrize(
    "target",
    [
        SentinelTarget((("s1", 26379),), "master"),
        SentinelTarget(
            (("s1", 26379), ("::1", 1), ("host,with/odd@chars", 2)),
            NASTY,
            db=15,
            username=NASTY,
            password=NASTY + "1",
            sentinel_username=NASTY,
            sentinel_password=NASTY + "2",
            ssl=True,
        ),
        SentinelTarget(
            (("s1", 26379),),
            "m",
            password=NASTY,
            ssl=True,
            # Paths with the characters a URL gives a meaning to, and a space and a '+'.
            ssl_ca_certs="/etc/ssl/c a+b/ca&x=1#?.pem",
            ssl_certfile="C:\\certs\\client%20.pem",
            ssl_keyfile="/k@y/key.pem",
            ssl_cert_reqs="optional",
            ssl_check_hostname=False,
        ),
        SentinelTarget((("s1", 1),), "m", ssl=True, ssl_cert_reqs="none"),
        SentinelTarget((("s1", 1),), "m", sentinel_password="only the sentinels"),
    ],
)
def test_a_target_survives_its_url_and_its_passwords_are_masked(target: SentinelTarget) -> None:
    url = target.url()
    assert parse_sentinel_url(url) == target
    masked = mask_url(url)
    for secret in filter(None, (target.password, target.sentinel_password)):
        assert secret not in masked
        assert quote(secret, safe="") not in masked
    for path in filter(None, (target.ssl_ca_certs, target.ssl_certfile, target.ssl_keyfile)):
        assert quote(path, safe="/") in masked  # a path is not a secret: shown as given


def test_the_tls_settings_reach_the_masters_connections_only(tmp_path: Path) -> None:
    files = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key")}
    for path in files.values():
        path.write_text("not read before the first command\n", encoding="utf-8")
    target = SentinelTarget(
        (("s1", 26379),),
        "m",
        ssl=True,
        ssl_ca_certs=str(files["ca"]),
        ssl_certfile=str(files["cert"]),
        ssl_keyfile=str(files["key"]),
        ssl_cert_reqs="optional",
        ssl_check_hostname=False,
    )
    client = connect(target.url())
    try:
        pool = client.connection_pool
        assert isinstance(pool, SentinelConnectionPool)
        assert issubclass(pool.connection_class, SSLConnection)
        master = pool.connection_kwargs
        assert {name: master[name] for name in target.tls_options()} == {
            "ssl_ca_certs": str(files["ca"]),
            "ssl_certfile": str(files["cert"]),
            "ssl_keyfile": str(files["key"]),
            "ssl_cert_reqs": "optional",
            "ssl_check_hostname": False,
        }
        for node in pool.sentinel_manager.sentinels:
            options = node.connection_pool.connection_kwargs
            assert not [name for name in options if name.startswith("ssl")]
    finally:
        client.close()


@pytest.mark.parametrize("scheme", ["rediss", "redis-sentinel"])
@pytest.mark.parametrize(
    ("parameter", "problem"),
    [
        ("ssl_ca_certs", "no such file"),
        ("ssl_certfile", "no such file"),
        ("ssl_ca_certs", "is a folder, not a PEM file"),
    ],
)
def test_a_tls_file_that_cannot_be_read_is_refused_by_name(
    tmp_path: Path, scheme: str, parameter: str, problem: str
) -> None:
    path = tmp_path if "folder" in problem else tmp_path / "missing.pem"
    query = f"{parameter}={quote(str(path), safe='')}"
    url = (
        f"redis-sentinel://:SECRET@s1:1/0?service_name=m&ssl=true&{query}"
        if scheme == "redis-sentinel"
        else f"rediss://:SECRET@127.0.0.1:1/0?{query}"
    )
    with pytest.raises(UsageError) as raised:
        connect(url)
    message = str(raised.value)
    assert f"{parameter} {str(path)!r}" in message
    assert problem in message
    assert "SECRET" not in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("ssl_cert_reqs=bogus", "ssl_cert_reqs must be none, optional or required, not 'bogus'"),
        ("ssl_check_hostname=maybe", "ssl_check_hostname must be true or false, not 'maybe'"),
        (
            "ssl_keyfile=%2Fk.pem",
            "ssl_keyfile is given without ssl_certfile (the client certificate)",
        ),
        ("ssl_ca_certs=", "ssl_ca_certs is empty; it takes the path of a PEM file"),
    ],
)
def test_bad_tls_values_on_a_rediss_url_are_one_line_naming_the_parameter(
    query: str, problem: str
) -> None:
    # ssl_cert_reqs=bogus crashed the CLI (exit 3) with redis-py's own RedisError.
    with pytest.raises(UsageError) as raised:
        connect(f"rediss://:SECRET@127.0.0.1:1/0?{query}")
    assert str(raised.value) == (
        f"invalid Redis URL 'rediss://:***@127.0.0.1:1/0?{query}': {problem}"
    )


def test_connect_builds_the_master_client_with_bounded_timeouts() -> None:
    url = (
        "redis-sentinel://beat:pw@s1:26379,s2:26380/3?service_name=mymaster"
        "&sentinel_username=sentry&sentinel_password=spw&ssl=true"
    )
    client = connect(url)
    try:
        pool = client.connection_pool
        assert isinstance(pool, SentinelConnectionPool)
        assert pool.service_name == "mymaster"
        assert issubclass(pool.connection_class, SSLConnection)
        master = pool.connection_kwargs
        assert (master["db"], master["username"], master["password"]) == (3, "beat", "pw")
        assert master["decode_responses"] is True
        assert (master["socket_connect_timeout"], master["socket_timeout"]) == (
            CONNECT_TIMEOUT_SECONDS,
            COMMAND_TIMEOUT_SECONDS,
        )
        assert master["retry"].get_retries() == 2
        sentinels = [
            node.connection_pool.connection_kwargs for node in pool.sentinel_manager.sentinels
        ]
        assert [(node["host"], node["port"]) for node in sentinels] == [
            ("s1", 26379),
            ("s2", 26380),
        ]
        for node in sentinels:
            assert (node["username"], node["password"]) == ("sentry", "spw")
            assert (
                node["socket_connect_timeout"] == node["socket_timeout"] == SENTINEL_TIMEOUT_SECONDS
            )
            assert node["retry"].get_retries() == 1
            assert not node.get("ssl")  # as RedBeat: TLS to the master only
    finally:
        client.close()


# -- --app: the app's Sentinel settings, as RedBeat's get_redis opens them -----------------


def _app(**settings: Any) -> Any:
    return checked_app.make_checked_app(**settings)


def _redbeat_client(app: Any) -> Any:
    with warnings.catch_warnings():
        # RedBeat warns that its fallback to broker_transport_options is deprecated.
        warnings.simplefilter("ignore")
        client = get_redis(app)
    return getattr(client, "wrapped_connection", client)  # inside RetryingConnection


def _essence(client: Any) -> dict[str, Any]:
    """What decides where a Sentinel client goes and as whom; not timeouts or retries."""
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    master = pool.connection_kwargs
    tls = issubclass(pool.connection_class, SSLConnection)
    nodes = [node.connection_pool.connection_kwargs for node in pool.sentinel_manager.sentinels]
    return {
        "sentinels": [(node["host"], int(node["port"])) for node in nodes],
        "sentinel_credentials": [(node.get("username"), node.get("password")) for node in nodes],
        "sentinel_tls": [bool(node.get("ssl")) for node in nodes],
        "service_name": pool.service_name,
        "db": int(master.get("db") or 0),
        "username": master.get("username"),
        "password": master.get("password"),
        "decode_responses": master.get("decode_responses"),
        "tls": tls,
        "tls_settings": tls_essence(pool) if tls else None,
    }


SENTINEL_URL = "redis-sentinel://ignored-by-redbeat:1/9"


@pytest.mark.parametrize(
    ("settings", "url"),
    [
        pytest.param(
            {"redbeat_redis_options": {"sentinels": [("s1", 26379)]}},
            "redis-sentinel://s1:26379/0?service_name=master",
            id="minimal-default-service-name",
        ),
        pytest.param(
            {
                "redbeat_redis_options": {
                    "sentinels": [("s1", 26379), ["10.0.0.2", "26380"], ("::1", 26381)],
                    "service_name": "mymaster",
                    "password": "pw",
                    "username": "beat",
                    "db": 3,
                    "sentinel_kwargs": {"password": "spw", "socket_timeout": 1},
                    "socket_timeout": 2,
                    "retry_period": 30,
                    # Dropped by get_redis's Sentinel branch: they change nothing for beat.
                    "health_check_interval": 10,
                    "ssl_cert_reqs": "none",
                },
            },
            "redis-sentinel://beat:pw@s1:26379,10.0.0.2:26380,[::1]:26381/3"
            "?service_name=mymaster&sentinel_password=spw",
            id="full",
        ),
        pytest.param(
            {
                "redbeat_redis_options": {
                    "sentinels": [("s1", 26379)],
                    "service_name": NASTY,
                    "password": NASTY,
                    "sentinel_kwargs": {"username": "sentry", "password": NASTY},
                    "db": None,
                },
            },
            SentinelTarget(
                (("s1", 26379),),
                NASTY,
                password=NASTY,
                sentinel_username="sentry",
                sentinel_password=NASTY,
            ).url(),
            id="nasty-strings-db-none",
        ),
        pytest.param(
            {
                "redbeat_redis_options": {"sentinels": [("s1", 26379)], "service_name": "m"},
                "redbeat_redis_use_ssl": {},
            },
            "redis-sentinel://s1:26379/0?service_name=m&ssl=true",
            id="tls-empty-dict",
        ),
        pytest.param(
            {
                "redbeat_redis_options": {"sentinels": [("s1", 26379)], "service_name": "m"},
                "redbeat_redis_use_ssl": {"ssl_cert_reqs": ssl.CERT_REQUIRED},
            },
            "redis-sentinel://s1:26379/0?service_name=m&ssl=true&ssl_cert_reqs=required",
            id="tls-cert-required",
        ),
        pytest.param(
            {
                "redbeat_redis_options": {"sentinels": [("s1", 26379)], "service_name": "m"},
                "redbeat_redis_use_ssl": {"ssl_cert_reqs": None},
            },
            "redis-sentinel://s1:26379/0?service_name=m&ssl=true&ssl_cert_reqs=none",
            id="tls-cert-reqs-none-object",
        ),
        pytest.param(
            {
                "redbeat_redis_options": {"sentinels": [("s1", 26379)], "service_name": "m"},
                "redbeat_redis_use_ssl": True,
            },
            "redis-sentinel://s1:26379/0?service_name=m",
            id="use-ssl-true-is-ignored-by-redbeat",
        ),
        pytest.param(
            {
                "broker_transport_options": {
                    "sentinels": [("s1", 26379)],
                    "service_name": "m",
                    "password": "pw",
                    "visibility_timeout": 3600,
                },
            },
            "redis-sentinel://:pw@s1:26379/0?service_name=m",
            id="broker-transport-options-fallback",
        ),
    ],
)
def test_the_apps_sentinel_settings_become_the_client_redbeat_builds(
    settings: dict[str, Any], url: str
) -> None:
    app = _app(redbeat_redis_url=SENTINEL_URL, **settings)
    found = read_app_settings(app, "checked")
    assert (found.redis_url, found.unsupported_connection) == (url, None)
    options = (
        "redbeat_redis_options"
        if "redbeat_redis_options" in settings
        else ("broker_transport_options")
    )
    assert found.redis_url_setting == (
        f"redbeat_redis_url, {options} and redbeat_redis_use_ssl"
        if isinstance(settings.get("redbeat_redis_use_ssl"), dict)
        and settings["redbeat_redis_use_ssl"]
        else f"redbeat_redis_url and {options}"
    )
    assert shared_settings(SharedSettings(), found, keep=()).redis_url == url
    ours, redbeats = connect(url), _redbeat_client(app)
    try:
        assert _essence(ours) == _essence(redbeats)
    finally:
        ours.close()
        redbeats.close()
        app.redbeat_sentinel.close()


def test_every_tls_setting_of_the_app_reaches_the_master_as_redbeat_passes_it(
    tmp_path: Path,
) -> None:
    files = {name: tmp_path / f"{name} +.pem" for name in ("ca", "cert", "key")}
    for path in files.values():
        path.write_text("not read before the first command\n", encoding="utf-8")
    app = _app(
        redbeat_redis_url=SENTINEL_URL,
        redbeat_redis_options={"sentinels": [("s1", 26379)], "service_name": "m"},
        redbeat_redis_use_ssl={
            "ssl_cert_reqs": ssl.CERT_OPTIONAL,
            "ssl_ca_certs": str(files["ca"]),
            "ssl_certfile": files["cert"],  # a Path: redis-py takes any path
            "ssl_keyfile": str(files["key"]),
            "ssl_check_hostname": False,
        },
    )
    found = read_app_settings(app, "checked")
    assert found.unsupported_connection is None
    assert found.redis_url is not None
    target = parse_sentinel_url(found.redis_url)
    assert target.tls_options() == {
        "ssl_ca_certs": str(files["ca"]),
        "ssl_certfile": str(files["cert"]),
        "ssl_keyfile": str(files["key"]),
        "ssl_cert_reqs": "optional",
        "ssl_check_hostname": False,
    }
    ours, redbeats = connect(found.redis_url), _redbeat_client(app)
    try:
        assert _essence(ours) == _essence(redbeats)
    finally:
        ours.close()
        redbeats.close()
        app.redbeat_sentinel.close()


@pytest.mark.parametrize(
    ("settings", "phrase"),
    [
        pytest.param(
            {"redbeat_redis_options": {"sentinels": [("s1", 1)], "credential_provider": object()}},
            "redbeat_redis_options 'credential_provider' cannot be followed",
            id="credential-provider",
        ),
        pytest.param(
            {"redbeat_redis_options": {"sentinels": [("s1", 1)], "sentinel_kwargs": {"ssl": True}}},
            "redbeat_redis_options 'sentinel_kwargs' (ssl) cannot be passed to the Sentinel "
            "connections yet",
            id="sentinel-kwargs-tls",
        ),
        pytest.param(
            {
                "redbeat_redis_options": {"sentinels": [("s1", 1)]},
                "redbeat_redis_use_ssl": {"ssl_ca_certs": "/etc/ca.pem", "ssl_ciphers": "HIGH"},
            },
            "redbeat_redis_use_ssl (ssl_ciphers) cannot be passed to the client yet (only "
            "ssl_ca_certs, ssl_certfile, ssl_keyfile, ssl_cert_reqs, ssl_check_hostname can)",
            id="tls-options",
        ),
        pytest.param(
            {
                "redbeat_redis_options": {"sentinels": [("s1", 1)]},
                "redbeat_redis_use_ssl": {"ssl_check_hostname": "false"},
            },
            # redis-py would take the string "false" for true.
            "redbeat_redis_use_ssl 'ssl_check_hostname' is 'false', not True or False",
            id="tls-check-hostname-string",
        ),
        pytest.param(
            {
                "redbeat_redis_options": {"sentinels": [("s1", 1)]},
                "redbeat_redis_use_ssl": {"ssl_cert_reqs": "NONE"},
            },
            "redbeat_redis_use_ssl: ssl_cert_reqs must be none, optional or required, not 'NONE'",
            id="tls-cert-reqs-unknown",
        ),
        pytest.param(
            {"redbeat_redis_options": {"sentinels": ["s1:26379"]}},
            "redbeat_redis_options 'sentinels' must be a list of (host, port) pairs",
            id="sentinels-as-strings",
        ),
        pytest.param(
            {"redbeat_redis_options": {"sentinels": []}},
            "redbeat_redis_options 'sentinels' is empty",
            id="no-sentinels-listed",
        ),
        pytest.param(
            {"redbeat_redis_options": {"sentinels": [("s1", 1)], "db": "two"}},
            "redbeat_redis_options 'db' is 'two', not a database number",
            id="db",
        ),
        pytest.param(
            {"redbeat_redis_options": {"sentinels": [("s1", 1)], "password": 1234}},
            "redbeat_redis_options 'password' is a int, not a string",
            id="password-not-text",
        ),
        pytest.param(
            {"redbeat_redis_options": {"sentinels": [("s1", 1)], "cluster": True}},
            "Redis Cluster (redbeat_redis_options 'cluster'): a redis-sentinel:// URL with "
            "'cluster' is not supported yet",
            id="cluster-wins-as-in-get-redis",
        ),
    ],
)
def test_sentinel_settings_the_reconciler_cannot_follow_are_refused(
    settings: dict[str, Any], phrase: str
) -> None:
    found = read_app_settings(_app(redbeat_redis_url=SENTINEL_URL, **settings), "checked")
    assert found.unsupported_connection is not None
    assert phrase in found.unsupported_connection
    with pytest.raises(UsageError, match="pass --redis-url"):
        shared_settings(SharedSettings(), found, keep=())


def test_a_sentinel_url_without_sentinels_is_refused_as_redbeat_fails() -> None:
    app = _app(redbeat_redis_url="redis-sentinel://s1:26379/0", redbeat_redis_options={})
    with pytest.raises(ValueError, match="scheme"):
        _redbeat_client(app)  # get_redis hands the URL to redis-py, which refuses it
    found = read_app_settings(app, "checked")
    assert found.unsupported_connection == (
        "redbeat_redis_url is a redis-sentinel:// URL but redbeat_redis_options has no "
        "'sentinels' (a list of (host, port)), so RedBeat cannot connect either"
    )
