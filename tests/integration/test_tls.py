"""TLS for real: the CLI reaches a real redis-server through a TLS terminator
(tests/support/tls.py), directly with ``rediss://`` and through a real Sentinel with
``redis-sentinel://...&ssl=true``, with a CA, client certificates and each verification mode.

One redis-server (with ``requirepass``) sits behind three terminators, each accepting TLS
and, for the Sentinel, plaintext on the same port:

- ``verify``: a server certificate for 127.0.0.1 and localhost, signed by the test CA;
- ``mtls``: the same, and it requires a client certificate signed by the test CA;
- ``othername``: a certificate signed by the test CA for another host name only.

One Sentinel monitors each terminator's port as its own master (named as above), so the
Sentinel reaches the master in plaintext while the reconciler reaches it over TLS. Every
case runs both ways. Each failure must be one line, exit 1, no password printed, nothing
written; each success must have gone over TLS (the terminator counts its handshakes).
"""

from __future__ import annotations

import json
import sys
import textwrap
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

import pytest

from tests.integration.plan_apply_support import isolate, run_cli
from tests.support.redis_server import RedisServer
from tests.support.sentinel import SentinelServer
from tests.support.tls import Address, Certificates, TlsProxy, make_certificates

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    import redis

    from tests.integration.plan_apply_support import CliResult

pytestmark = pytest.mark.integration

PASSWORD = "tl5/p@ss?w#rd"
PREFIX = "redbeat:"
SCHEDULES = """
    version: 1
    schedules:
      nightly-report:
        task: checked.report
        cron: "0 3 * * *"
        args: [mon]
"""
TERMINATORS = ("verify", "mtls", "othername")
WAYS = ("rediss", "sentinel")


@dataclass(frozen=True)
class TlsBed:
    master: RedisServer
    certificates: Certificates
    proxies: dict[str, TlsProxy]
    sentinel: SentinelServer

    def url(self, way: str, terminator: str, **parameters: str) -> str:
        """The URL reaching the master behind ``terminator``, directly over ``rediss://``
        or through the Sentinel, with TLS query ``parameters``."""
        query = "&".join(f"{name}={quote(value, safe='/')}" for name, value in parameters.items())
        password = quote(PASSWORD, safe="")
        if way == "rediss":
            port = self.proxies[terminator].port
            return f"rediss://:{password}@127.0.0.1:{port}/0" + (f"?{query}" if query else "")
        return (
            f"redis-sentinel://:{password}@127.0.0.1:{self.sentinel.port}/0"
            f"?service_name={terminator}&ssl=true" + (f"&{query}" if query else "")
        )


@pytest.fixture(scope="module")
def tls_bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBed]:
    certificates = make_certificates(tmp_path_factory.mktemp("certificates"))
    other = certificates.authority.issue_cert("redis.internal")
    with RedisServer() as master:
        master.config_set("requirepass", PASSWORD)
        upstream = Address(master.host, master.port)
        proxies = {
            "verify": TlsProxy(upstream, certificates, plaintext_too=True),
            "mtls": TlsProxy(
                upstream, certificates, require_client_certificate=True, plaintext_too=True
            ),
            "othername": TlsProxy(upstream, certificates, plaintext_too=True),
        }
        other.configure_cert(proxies["othername"].context)  # replaces the server certificate
        try:
            for proxy in proxies.values():
                proxy.start()
            extra = [f"sentinel auth-pass verify {PASSWORD}"]
            for name in ("mtls", "othername"):
                extra += [
                    f"sentinel monitor {name} 127.0.0.1 {proxies[name].port} 1",
                    f"sentinel auth-pass {name} {PASSWORD}",
                ]
            # SentinelServer reads only the host and port of its master: the terminator's.
            with SentinelServer(
                proxies["verify"].address,  # type: ignore[arg-type]
                service_name="verify",
                extra_config=extra,
            ) as sentinel:
                yield TlsBed(master, certificates, proxies, sentinel)
        finally:
            for proxy in proxies.values():
                proxy.stop()
            master.config_set("requirepass", "", password=PASSWORD)


@pytest.fixture
def master(tls_bed: TlsBed) -> Iterator[redis.Redis]:
    """A plaintext client of the master itself, emptied before the test."""
    client = tls_bed.master.client(password=PASSWORD)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    isolate(monkeypatch, tmp_path)
    monkeypatch.delenv("RECONCILER_APP", raising=False)
    (tmp_path / "schedules").mkdir()
    (tmp_path / "schedules" / "s.yaml").write_text(textwrap.dedent(SCHEDULES), encoding="utf-8")
    return tmp_path


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> CliResult:
    result = run_cli(capsys, *argv)
    for secret in (PASSWORD, quote(PASSWORD, safe=""), "p@ss"):
        assert secret not in result.out + result.err, f"{secret!r} printed by {argv}"
    return result


def assert_works(
    capsys: pytest.CaptureFixture[str], bed: TlsBed, master: redis.Redis, terminator: str, url: str
) -> None:
    """plan, apply and plan again succeed over TLS, and the entry is in Redis."""
    proxy = bed.proxies[terminator]
    before = proxy.tls_sessions
    planned = cli(capsys, "plan", "--redis-url", url, "--format", "json")
    assert planned.code == 0, planned.err
    assert [change["action"] for change in json.loads(planned.out)["changes"]] == ["create"]
    applied = cli(capsys, "apply", "--redis-url", url, "--auto-approve")
    assert applied.code == 0, applied.err
    assert master.hget(PREFIX + "nightly-report", "definition")
    again = cli(capsys, "plan", "--redis-url", url, "--detailed-exitcode")
    assert again.code == 0, again.out + again.err
    assert proxy.tls_sessions > before, "the reconciler did not connect over TLS"


def assert_refused(
    capsys: pytest.CaptureFixture[str], master: redis.Redis, url: str, *reasons: str
) -> CliResult:
    """plan and apply each stop with one line naming a reason, exit 1, nothing written."""
    for argv in (("plan",), ("apply", "--auto-approve")):
        result = cli(capsys, *argv, "--redis-url", url)
        assert result.code == 1, result.out + result.err
        assert len(result.err_lines) == 1, result.err
        line = result.err_lines[0]
        assert line.startswith("error: Redis at "), line
        assert any(reason in line for reason in reasons), line
        assert "Traceback" not in result.err
    assert master.dbsize() == 0
    return result


@pytest.mark.parametrize("way", WAYS)
def test_the_right_ca_file_verifies_the_server(
    capsys: pytest.CaptureFixture[str],
    tls_bed: TlsBed,
    master: redis.Redis,
    workdir: Path,
    way: str,
) -> None:
    ca = str(tls_bed.certificates.ca)
    url = tls_bed.url(way, "verify", ssl_ca_certs=ca)
    assert_works(capsys, tls_bed, master, "verify", url)
    # Explicitly required, with the host name checked: the same.
    master.flushall()
    strict = tls_bed.url(
        way, "verify", ssl_ca_certs=ca, ssl_cert_reqs="required", ssl_check_hostname="true"
    )
    assert_works(capsys, tls_bed, master, "verify", strict)


@pytest.mark.parametrize("way", WAYS)
def test_a_server_certificate_from_another_ca_is_refused(
    capsys: pytest.CaptureFixture[str],
    tls_bed: TlsBed,
    master: redis.Redis,
    workdir: Path,
    way: str,
) -> None:
    wrong = str(tls_bed.certificates.wrong_ca)
    for url in (
        tls_bed.url(way, "verify", ssl_ca_certs=wrong),
        tls_bed.url(way, "verify", ssl_ca_certs=wrong, ssl_cert_reqs="required"),
        # No CA file: the system's bundle, which does not hold the test CA either.
        tls_bed.url(way, "verify"),
    ):
        result = assert_refused(
            capsys,
            master,
            url,
            "certificate verify failed: unable to get local issuer certificate",
        )
        assert result.err_lines[0].endswith(
            "; the server's certificate is not signed by a CA this client trusts (give that "
            "CA's PEM file with ssl_ca_certs)"
        )
        assert wrong not in result.err or "ssl_ca_certs=" in result.err  # only in the URL
    assert tls_bed.proxies["verify"].refused_handshakes > 0


@pytest.mark.parametrize("way", WAYS)
def test_no_verification_accepts_any_server_certificate(
    capsys: pytest.CaptureFixture[str],
    tls_bed: TlsBed,
    master: redis.Redis,
    workdir: Path,
    way: str,
) -> None:
    # What ssl_cert_reqs=none gives up: a certificate from any CA, for any name, passes.
    url = tls_bed.url(
        way, "othername", ssl_ca_certs=str(tls_bed.certificates.wrong_ca), ssl_cert_reqs="none"
    )
    assert_works(capsys, tls_bed, master, "othername", url)


@pytest.mark.parametrize("way", WAYS)
def test_a_certificate_for_another_host_name_is_refused_unless_the_check_is_off(
    capsys: pytest.CaptureFixture[str],
    tls_bed: TlsBed,
    master: redis.Redis,
    workdir: Path,
    way: str,
) -> None:
    ca = str(tls_bed.certificates.ca)
    assert_refused(
        capsys,
        master,
        tls_bed.url(way, "othername", ssl_ca_certs=ca),
        "; the server's certificate is not for this host name (ssl_check_hostname=false "
        "skips that check)",
    )
    unchecked = tls_bed.url(way, "othername", ssl_ca_certs=ca, ssl_check_hostname="false")
    assert_works(capsys, tls_bed, master, "othername", unchecked)


@pytest.mark.parametrize("way", WAYS)
def test_a_server_that_requires_a_client_certificate(
    capsys: pytest.CaptureFixture[str],
    tls_bed: TlsBed,
    master: redis.Redis,
    workdir: Path,
    way: str,
) -> None:
    certificates = tls_bed.certificates
    ca = str(certificates.ca)
    assert_refused(
        capsys,
        master,
        tls_bed.url(way, "mtls", ssl_ca_certs=ca),
        "if the server requires a client certificate, give it with ssl_certfile and ssl_keyfile",
    )
    url = tls_bed.url(
        way,
        "mtls",
        ssl_ca_certs=ca,
        ssl_certfile=str(certificates.client_cert),
        ssl_keyfile=str(certificates.client_key),
    )
    assert_works(capsys, tls_bed, master, "mtls", url)


@pytest.mark.parametrize("way", WAYS)
def test_an_unreadable_tls_file_is_refused_by_name_before_connecting(
    capsys: pytest.CaptureFixture[str],
    tls_bed: TlsBed,
    master: redis.Redis,
    workdir: Path,
    way: str,
) -> None:
    before = tls_bed.proxies["verify"].tls_sessions
    missing = str(workdir / "no-such-ca.pem")
    result = cli(capsys, "plan", "--redis-url", tls_bed.url(way, "verify", ssl_ca_certs=missing))
    assert result.code == 1
    assert len(result.err_lines) == 1, result.err
    assert result.err_lines[0].endswith(f": ssl_ca_certs {missing!r}: no such file")
    assert tls_bed.proxies["verify"].tls_sessions == before


@pytest.mark.parametrize("way", WAYS)
def test_the_apps_redbeat_redis_use_ssl_is_followed(
    capsys: pytest.CaptureFixture[str],
    tls_bed: TlsBed,
    master: redis.Redis,
    workdir: Path,
    way: str,
) -> None:
    """An app with the CA and client certificate in redbeat_redis_use_ssl, as RedBeat
    takes them: ``--app`` reaches the master that requires the certificate."""
    certificates = tls_bed.certificates
    use_ssl = {
        "ssl_cert_reqs": "CERT_REQUIRED",  # ssl.CERT_REQUIRED in the module written below
        "ssl_ca_certs": str(certificates.ca),
        "ssl_certfile": str(certificates.client_cert),
        "ssl_keyfile": str(certificates.client_key),
    }
    if way == "rediss":
        connection = f"redbeat_redis_url={tls_bed.url('rediss', 'mtls')!r},"
    else:
        options = {
            "sentinels": [("127.0.0.1", tls_bed.sentinel.port)],
            "service_name": "mtls",
            "password": PASSWORD,
        }
        connection = f"redbeat_redis_url='redis-sentinel://', redbeat_redis_options={options!r},"
    name = f"tls_app_{uuid.uuid4().hex[:8]}"
    (workdir / f"{name}.py").write_text(
        textwrap.dedent(
            f"""
            import ssl

            from tests.support.checked_app import make_checked_app

            use_ssl = {use_ssl!r}
            use_ssl["ssl_cert_reqs"] = ssl.CERT_REQUIRED
            app = make_checked_app({connection} redbeat_redis_use_ssl=use_ssl)
            """
        ),
        encoding="utf-8",
    )
    try:
        before = tls_bed.proxies["mtls"].tls_sessions
        planned = cli(capsys, "plan", "--app", name)
        assert planned.code == 0, planned.err
        shown = planned.err_lines[0]
        assert "redbeat_redis_use_ssl)" in shown, shown
        assert f"ssl_certfile={certificates.client_cert}" in shown, shown
        applied = cli(capsys, "apply", "--app", name, "--auto-approve")
        assert applied.code == 0, applied.err
        assert master.keys("*nightly-report")
        assert tls_bed.proxies["mtls"].tls_sessions > before
    finally:
        sys.modules.pop(name, None)


@pytest.mark.parametrize("way", WAYS)
def test_without_a_ca_file_the_systems_bundle_decides(
    capsys: pytest.CaptureFixture[str],
    tls_bed: TlsBed,
    master: redis.Redis,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    way: str,
) -> None:
    """No ssl_ca_certs: OpenSSL's default bundle, which SSL_CERT_FILE replaces (without it,
    the system's bundle does not hold the test CA: the refusal is in the test above); and
    ssl_ca_certs adds to that bundle."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_bed.certificates.ca))
    assert_works(capsys, tls_bed, master, "verify", tls_bed.url(way, "verify"))
    # ssl_ca_certs adds to that bundle; it does not replace it.
    master.flushall()
    wrong = str(tls_bed.certificates.wrong_ca)
    assert_works(capsys, tls_bed, master, "verify", tls_bed.url(way, "verify", ssl_ca_certs=wrong))
