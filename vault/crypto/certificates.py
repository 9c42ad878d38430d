"""Reading a client certificate the TLS layer has already verified: its PEM form and its
subject, for the ASGI TLS extension. The verification itself is the `ssl` module's job
(the server's `--client-ca`); this only names what was presented, so `api/` need not
import `cryptography` (nothing outside `vault.crypto` does)."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding


@dataclass(frozen=True, slots=True)
class PresentedCertificate:
    """A peer certificate as the application sees it."""

    pem: str
    #: RFC 4514 string of the subject, as `cryptography` writes it (the order of the
    #: name's parts matters when it is compared with a bound subject).
    subject: str


def normal_subject(text: str) -> str:
    """A distinguished name in RFC 4514 form as `cryptography` writes it (a presented
    certificate's subject is written the same way); raises ValueError when malformed."""
    return x509.Name.from_rfc4514_string(text).rfc4514_string()


def presented_certificate(der: bytes) -> PresentedCertificate:
    """The PEM form and subject of a DER certificate (raises ValueError when malformed)."""
    cert = x509.load_der_x509_certificate(der)
    return PresentedCertificate(
        cert.public_bytes(Encoding.PEM).decode(), cert.subject.rfc4514_string()
    )
