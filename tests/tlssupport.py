"""
Certificates made by the tests: a certificate authority, a server
certificate for ``127.0.0.1``/``localhost`` it signed, and a client
certificate it signed, written as PEM files.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class TestCertificates:
    """
    Paths of the PEM files.

    :ivar ca: the authority's certificate.
    :ivar server_cert: the server's certificate.
    :ivar server_key: the server's private key.
    :ivar client_cert: a client certificate signed by the authority.
    :ivar client_key: its key.
    :ivar stranger_cert: a self-signed client certificate no one trusts.
    :ivar stranger_key: its key.
    """

    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    stranger_cert: str
    stranger_key: str


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write(path: str, data: bytes) -> str:
    with open(path, "wb") as f:
        f.write(data)
    return path


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def make_certificates(directory: str) -> TestCertificates:
    """
    Make an authority, a server and a client certificate under
    ``directory`` (created).
    """
    os.makedirs(directory, exist_ok=True)
    pem = serialization.Encoding.PEM
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate(
        "instrumentd test CA", ca_key, "instrumentd test CA", ca_key, ca=True
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _certificate(
        "localhost", server_key, "instrumentd test CA", ca_key, server=True
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _certificate("operator", client_key, "instrumentd test CA", ca_key)
    stranger_key = ec.generate_private_key(ec.SECP256R1())
    stranger = _certificate("stranger", stranger_key, "stranger", stranger_key)
    join = os.path.join
    return TestCertificates(
        ca=_write(join(directory, "ca.pem"), ca.public_bytes(pem)),
        server_cert=_write(join(directory, "server.pem"), server.public_bytes(pem)),
        server_key=_write(join(directory, "server.key"), _key_pem(server_key)),
        client_cert=_write(join(directory, "client.pem"), client.public_bytes(pem)),
        client_key=_write(join(directory, "client.key"), _key_pem(client_key)),
        stranger_cert=_write(
            join(directory, "stranger.pem"), stranger.public_bytes(pem)
        ),
        stranger_key=_write(join(directory, "stranger.key"), _key_pem(stranger_key)),
    )


def escape(path: str) -> str:
    """
    A path as it must appear in an endpoint string.
    """
    return path.replace("\\", "\\\\").replace(":", "\\:")
