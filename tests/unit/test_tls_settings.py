"""An app's ``redbeat_redis_use_ssl`` with a ``rediss://`` URL: the reconciler's client is
made with the TLS settings RedBeat's own ``get_redis`` gives beat's (``ssl_cert_reqs =
CERT_REQUIRED`` plus the dict, under the URL's own query parameters). Nothing connects:
both clients are built and their connections' settings compared.
"""

from __future__ import annotations

import ssl
import warnings
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import pytest
from redbeat.schedulers import get_redis

from reconciler.load.celery_app import read_app_settings
from reconciler.store.connection import connect
from reconciler.store.redis_urls import mask_url
from tests.support import checked_app
from tests.support.tls import tls_essence

if TYPE_CHECKING:
    from pathlib import Path


def _files(folder: Path) -> dict[str, Path]:
    files = {name: folder / f"{name} +&.pem" for name in ("ca", "cert", "key")}
    for path in files.values():
        path.write_text("not read before the first command\n", encoding="utf-8")
    return files


def _redbeat_client(app: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = get_redis(app)
    return getattr(client, "wrapped_connection", client)


@pytest.mark.parametrize(
    ("url_query", "use_ssl", "expected"),
    [
        pytest.param("", None, {"cert_reqs": ssl.CERT_REQUIRED}, id="no-dict"),
        pytest.param(
            "",
            {
                "ssl_cert_reqs": ssl.CERT_OPTIONAL,
                "ssl_ca_certs": "ca",
                "ssl_certfile": "cert",  # passed as a Path
                "ssl_keyfile": "key",
                "ssl_check_hostname": False,
            },
            {"cert_reqs": ssl.CERT_OPTIONAL, "check_hostname": False},
            id="every-setting",
        ),
        pytest.param(
            "?ssl_cert_reqs=required",
            {"ssl_cert_reqs": None, "ssl_ca_certs": "ca"},
            # The URL's own parameter wins over the app's dict, as in redis-py's from_url.
            {"cert_reqs": ssl.CERT_REQUIRED},
            id="the-url-wins",
        ),
        pytest.param(
            "",
            {"ssl_cert_reqs": "none"},
            {"cert_reqs": ssl.CERT_NONE, "check_hostname": False},
            id="no-verification",
        ),
    ],
)
def test_the_apps_tls_settings_reach_the_client_as_redbeat_passes_them(
    tmp_path: Path, url_query: str, use_ssl: dict[str, Any] | None, expected: dict[str, Any]
) -> None:
    files = _files(tmp_path)
    settings: dict[str, Any] = {}
    if use_ssl is not None:
        settings["redbeat_redis_use_ssl"] = {
            name: (
                files[value]
                if name == "ssl_certfile"
                else str(files[value])
                if name in ("ssl_ca_certs", "ssl_keyfile")
                else value
            )
            for name, value in use_ssl.items()
        }
    app = checked_app.make_checked_app(
        redbeat_redis_url=f"rediss://:pw@redis.example:6380/0{url_query}", **settings
    )
    found = read_app_settings(app, "checked")
    assert found.unsupported_connection is None
    assert found.redis_url is not None
    assert found.redis_url_setting == (
        "redbeat_redis_url and redbeat_redis_use_ssl" if use_ssl else "redbeat_redis_url"
    )
    ours, redbeats = connect(found.redis_url), _redbeat_client(app)
    try:
        essence = tls_essence(ours.connection_pool)
        assert essence == tls_essence(redbeats.connection_pool)
        assert {name: essence[name] for name in expected} == expected
    finally:
        ours.close()
        redbeats.close()
    shown = unquote(mask_url(found.redis_url))
    for name in ("ssl_ca_certs", "ssl_keyfile"):  # a path is not a secret: shown as it is
        if use_ssl and name in use_ssl and name not in url_query:
            assert str(files[use_ssl[name]]) in shown
    assert ":pw@" not in shown
