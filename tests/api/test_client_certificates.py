"""Mutual TLS: `tresor serve --tls-cert --tls-key --client-ca` as a real process, certificates
made by the test with `cryptography`, and httpx presenting a client certificate."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import signal
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.conftest import POLICIES
from tests.support.server import TRESOR, free_port

SUBJECT = "CN=billing-system,O=Example"


@dataclass
class Issued:
    cert: Path
    key: Path


def _name(cn: str, org: str = "Example") -> x509.Name:
    """O=org, then CN=cn (most significant first): RFC 4514 writes it "CN=cn,O=org"."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _write(
    folder: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> Issued:
    cert_path, key_path = folder / f"{stem}.pem", folder / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Issued(cert_path, key_path)


def _ca(folder: Path, stem: str) -> tuple[Issued, x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{stem} CA"))
        .issuer_name(_name(f"{stem} CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _write(folder, stem, cert, key), cert, key


def _leaf(
    folder: Path,
    stem: str,
    subject: x509.Name,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    *,
    server: bool,
) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    ca_cert, ca_key = ca
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return _write(folder, stem, builder.sign(ca_key, hashes.SHA256()), key)


@dataclass
class Pki:
    ca: Issued
    server: Issued
    client: Issued
    stranger: Issued  # issued by the same CA, subject bound to nobody
    rogue: Issued  # the bound subject, issued by another CA


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    folder = tmp_path / "pki"
    folder.mkdir()
    ca, ca_cert, ca_key = _ca(folder, "tresor-test")
    _, rogue_cert, rogue_key = _ca(folder, "rogue")
    return Pki(
        ca=ca,
        server=_leaf(folder, "server", _name("127.0.0.1"), (ca_cert, ca_key), server=True),
        client=_leaf(folder, "client", _name("billing-system"), (ca_cert, ca_key), server=False),
        stranger=_leaf(folder, "stranger", _name("unknown"), (ca_cert, ca_key), server=False),
        rogue=_leaf(
            folder, "rogue-client", _name("billing-system"), (rogue_cert, rogue_key), server=False
        ),
    )


@pytest.fixture
def tls_server(tmp_path: Path, pki: Pki) -> Iterator[tuple[str, Callable[..., str]]]:
    env = {
        **os.environ,
        "TRESOR_DATA_DIR": str(tmp_path / "data"),
        "TRESOR_POLICIES": str(POLICIES),
        "TRESOR_CLIENT_CACHE_SECONDS": "0",
    }
    env.pop("TRESOR_DATABASE_URL", None)

    def cli(*args: str) -> str:
        out = subprocess.run([TRESOR, *args], env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout

    cli("init")
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [
            TRESOR,
            "serve",
            "--port",
            str(port),
            "--tls-cert",
            str(pki.server.cert),
            "--tls-key",
            str(pki.server.key),
            "--client-ca",
            str(pki.ca.cert),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"https://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                if httpx.get(base + "/health", verify=_context(pki, None)).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    "tresor serve with TLS did not come up: " + (tmp_path / "serve.log").read_text()
                )
            time.sleep(0.1)
        yield base, cli
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _context(pki: Pki, who: Issued | None) -> ssl.SSLContext:
    """Trusts the test CA; presents `who`'s certificate when given."""
    context = ssl.create_default_context(cafile=str(pki.ca.cert))
    if who is not None:
        context.load_cert_chain(str(who.cert), str(who.key))
    return context


def _get(base: str, pki: Pki, who: Issued | None, key: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with httpx.Client(verify=_context(pki, who)) as http:
        return http.get(base + "/v1/audit", headers=headers).status_code


def test_a_bound_client_certificate_authenticates_its_client(tls_server, pki):
    """The certificate bound with `tresor clients cert` (subject written with spaces) is the
    client's credential; without it, or with a certificate bound to nobody, it is 401; a
    bearer key still works; revoking the client ends what its certificate opens."""
    base, cli = tls_server
    cli("clients", "create", "billing", "--role", "dpo")
    assert "CN=billing-system,O=Example" in cli(
        "clients", "cert", "billing", "--subject", "CN=billing-system, O=Example"
    )
    other_key = cli("clients", "create", "auditor", "--role", "dpo").strip().splitlines()[-1]
    assert _get(base, pki, pki.client) == 200
    assert _get(base, pki, None) == 401
    assert _get(base, pki, pki.stranger) == 401
    assert _get(base, pki, None, other_key) == 200
    assert _get(base, pki, pki.client, "tresor_wrong") == 401  # a key given is the credential
    cli("clients", "revoke", "billing")
    assert _get(base, pki, pki.client) == 401


def test_a_certificate_of_another_ca_does_not_get_through_the_handshake(tls_server, pki):
    """The bound subject on a certificate the client CA did not issue opens no connection."""
    base, cli = tls_server
    cli("clients", "create", "billing", "--role", "dpo")
    cli("clients", "cert", "billing", "--subject", SUBJECT)
    with pytest.raises(httpx.HTTPError):
        _get(base, pki, pki.rogue)


def test_tls_options_are_checked_before_serving(tmp_path):
    """`--client-ca` without a certificate, or a missing file, is an error, not a plain server."""
    env = {
        **os.environ,
        "TRESOR_DATA_DIR": str(tmp_path / "data"),
        "TRESOR_POLICIES": str(POLICIES),
    }
    for args, message in (
        (["--client-ca", "ca.pem"], "need --tls-cert"),
        (["--tls-cert", str(tmp_path / "missing.pem")], "no such file"),
    ):
        out = subprocess.run(
            [TRESOR, "serve", "--port", str(free_port()), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 2 and message in out.stderr, out.stderr
