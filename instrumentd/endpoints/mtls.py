"""
The ``mtls:`` server endpoint: TLS that also requires a client certificate.

Twisted's ``ssl:`` server endpoint encrypts but takes any client.  ``mtls:``
takes the same certificate and key and a file of certificate-authority
certificates; a client must present a certificate signed by one of them or
the handshake fails before a byte reaches the listener::

    mtls:PORT:privateKey=server.key[:certKey=server.pem]:caCerts=clients-ca.pem
        [:interface=127.0.0.1][:backlog=50]

A colon inside a path is written ``\\:``, as in every endpoint string.
"""

from __future__ import annotations

import re
from typing import Final

from twisted.internet.endpoints import SSL4ServerEndpoint
from twisted.internet.interfaces import IReactorSSL

__all__ = ["parse_mtls_endpoint"]

_VALID: Final = ("privateKey", "certKey", "caCerts", "interface", "backlog")
_PEM_CERT: Final = re.compile(
    rb"-----BEGIN CERTIFICATE-----\r?\n.+?\r?\n-----END CERTIFICATE-----", re.DOTALL
)


def _read(option: str, path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ValueError(f"mtls: {option}={path!r}: {e.strerror}") from None


def parse_mtls_endpoint(
    reactor: IReactorSSL, *args: str, **kwargs: str
) -> SSL4ServerEndpoint:
    """
    Make a TLS server endpoint that requires client certificates.

    :param reactor: the reactor given to ``serverFromString``.
    :param args: the port number, alone.
    :param kwargs: ``privateKey`` (required), ``certKey`` (the key file if
        absent), ``caCerts`` (required: PEM certificates of the authorities
        whose client certificates are accepted), ``interface`` and
        ``backlog``.
    :returns: an endpoint; nothing is bound yet.
    :raises ValueError: naming the option and what is wrong.
    """
    from twisted.internet import ssl

    unknown = sorted(set(kwargs) - set(_VALID))
    if unknown:
        raise ValueError(
            f"mtls: unknown option(s) {', '.join(unknown)}; valid: {', '.join(_VALID)}"
        )
    if len(args) != 1:
        raise ValueError("mtls: give exactly one port, e.g. mtls:4101:privateKey=...")
    try:
        port = int(args[0])
    except ValueError:
        raise ValueError(f"mtls: port {args[0]!r} is not a number") from None
    for required in ("privateKey", "caCerts"):
        if required not in kwargs:
            raise ValueError(f"mtls: {required}= is required")
    key = _read("privateKey", kwargs["privateKey"])
    cert = _read("certKey", kwargs.get("certKey", kwargs["privateKey"]))
    try:
        identity = ssl.PrivateCertificate.loadPEM(cert + b"\n" + key)
    except Exception as e:
        raise ValueError(f"mtls: cannot load the certificate and key: {e}") from None
    authorities = [
        ssl.Certificate.loadPEM(pem)
        for pem in _PEM_CERT.findall(_read("caCerts", kwargs["caCerts"]))
    ]
    if not authorities:
        raise ValueError(
            f"mtls: caCerts={kwargs['caCerts']!r} holds no PEM certificate"
        )
    options = ssl.CertificateOptions(
        privateKey=identity.privateKey.original,
        certificate=identity.original,
        trustRoot=ssl.trustRootFromCertificates(authorities),
    )
    try:
        backlog = int(kwargs.get("backlog", "50"))
    except ValueError:
        raise ValueError(
            f"mtls: backlog {kwargs['backlog']!r} is not a number"
        ) from None
    return SSL4ServerEndpoint(
        reactor, port, options, backlog=backlog, interface=kwargs.get("interface", "")
    )
