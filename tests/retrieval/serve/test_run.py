"""Starting the server: TLS files, the clear-text warning, and the API over HTTPS."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from indexer.errors import UsageError
from retrieval.cli import app
from retrieval.serve.headers import PAGE_CSP
from retrieval.serve.run import checked_tls
from retrieval.serve.security import clear_text_warning
from tests.fixtures.server import API, Server, run_server

TOKEN = "tls-s3cret"


def self_signed(folder: Path, name: str = "server") -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, signed by its own key (PEM files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "objsearch test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "photos.lan"])
def test_a_network_bind_without_tls_is_warned_about(host: str) -> None:
    warning = clear_text_warning(host, tls=False)
    assert warning is not None and host in warning
    for words in ("clear text", "--tls-cert", "Running on a LAN", "Caddy or nginx", "--allowed-host"):  # fmt: skip
        assert words in warning
    assert clear_text_warning(host, tls=True) is None


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_loopback_needs_no_warning(host: str) -> None:
    assert clear_text_warning(host, tls=False) is None


def test_tls_files_are_checked(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    other_cert, other_key = self_signed(tmp_path, "other")
    assert checked_tls(str(cert), str(key)) == (str(cert), str(key))
    assert checked_tls(None, None) is None
    with pytest.raises(UsageError, match="go together"):
        checked_tls(str(cert), None)
    with pytest.raises(UsageError, match="no such file"):
        checked_tls(str(cert), str(tmp_path / "missing.pem"))
    with pytest.raises(UsageError, match="cannot be used"):
        checked_tls(str(cert), str(other_key))  # a key that does not match
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(UsageError, match="cannot be used"):
        checked_tls(str(garbage), str(key))
    assert other_cert.is_file()


def test_cli_reports_bad_tls_files_without_a_traceback(tmp_path: Path) -> None:
    cert, _ = self_signed(tmp_path)
    result = CliRunner().invoke(
        app, ["serve", "--index", str(tmp_path / "index"), "--tls-cert", str(cert)]
    )
    assert result.exit_code == 2
    assert "--tls-key" in result.output and "Traceback" not in result.output
    bad_name = CliRunner().invoke(
        app, ["serve", "--index", str(tmp_path / "index"), "--allowed-host", "*"]
    )
    assert bad_name.exit_code == 2 and "not a host name" in bad_name.output


@pytest.fixture(scope="module")
def tls_server(
    served_index: Path, models, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    cert, key = self_signed(tmp_path_factory.mktemp("tls"))
    extra = ("--tls-cert", str(cert), "--tls-key", str(key), "--token", TOKEN)
    with run_server(served_index, models.clip_dir, *extra, tls_ca=cert) as server:
        yield server


def test_the_api_answers_over_https(tls_server: Server) -> None:
    assert tls_server.url.startswith("https://127.0.0.1:")
    with tls_server.client() as client:
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-security-policy"] == PAGE_CSP
        login = client.post(f"{API}/login", data={"token": TOKEN})
        assert login.status_code == 200
        cookie = login.headers["set-cookie"].lower()
        assert "secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie
        status = client.get(f"{API}/status")
        assert status.status_code == 200 and status.json()["photos"] > 0
        same_origin = client.post(
            f"{API}/localize",
            headers={"Origin": tls_server.url},
            data={"prompts": "a cat", "photo_id": "999999"},
        )
        assert same_origin.status_code == 404  # past the origin check: the id is unknown
    with pytest.raises(httpx.TransportError):  # plain HTTP is not answered on a TLS port
        httpx.get(tls_server.url.replace("https:", "http:") + "/", timeout=10)
    untrusted = httpx.Client(timeout=10)  # the system's CAs do not know this certificate
    with pytest.raises(httpx.ConnectError), untrusted:
        untrusted.get(tls_server.url + "/")
    output = tls_server.output()
    assert f"at {tls_server.url}/" in output and "clear text" not in output
    assert TOKEN not in output
