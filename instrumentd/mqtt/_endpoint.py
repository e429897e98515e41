# -*- test-case-name: tests.test_mqtt_settings -*-
"""
The Twisted client endpoint that reaches a broker, from its address.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from instrumentd.mqtt._settings import DEFAULT_PORTS, BrokerSettings, address_problem

if TYPE_CHECKING:
    from twisted.internet.interfaces import IStreamClientEndpoint

__all__ = ["broker_endpoint"]


def broker_endpoint(reactor: Any, settings: BrokerSettings) -> IStreamClientEndpoint:
    """
    The endpoint to connect to the broker with.

    ``mqtt://HOST:PORT`` is a :class:`~twisted.internet.endpoints.HostnameEndpoint`
    (names resolved without blocking, IPv4 and IPv6 tried in turn);
    ``mqtts://`` wraps one in TLS that checks the broker's certificate
    against ``ca_file`` (or the system's trust store) and its host name,
    and presents ``cert_file``/``key_file`` if given.  Anything else is a
    Twisted client endpoint string.

    :param reactor: the reactor.
    :param settings: the broker's settings.
    :returns: the endpoint.
    :raises ValueError: for an address that is not one, or TLS files that
        cannot be read.
    """
    from twisted.internet.endpoints import (
        HostnameEndpoint,
        clientFromString,
        wrapClientTLS,
    )

    problem = address_problem(settings.address)
    if problem is not None:
        raise ValueError(problem)
    if "://" not in settings.address:
        endpoint: IStreamClientEndpoint = clientFromString(reactor, settings.address)
        return endpoint
    parts = urlsplit(settings.address)
    host = parts.hostname
    assert host is not None
    port = parts.port or DEFAULT_PORTS[parts.scheme]
    plain = HostnameEndpoint(reactor, host, port)
    if parts.scheme == "mqtt":
        return plain
    return wrapClientTLS(_tls_options(host, settings), plain)


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ValueError(f"cannot read the {what} {path}: {e}") from e


def _tls_options(host: str, settings: BrokerSettings) -> Any:
    from twisted.internet.ssl import (
        Certificate,
        PrivateCertificate,
        optionsForClientTLS,
        platformTrust,
    )

    trust: Any = (
        Certificate.loadPEM(_read(settings.ca_file, "broker CA file"))
        if settings.ca_file
        else platformTrust()
    )
    client = None
    if settings.cert_file:
        pem = _read(settings.cert_file, "client certificate file")
        if settings.key_file:
            pem += b"\n" + _read(settings.key_file, "client key file")
        client = PrivateCertificate.loadPEM(pem)
    return optionsForClientTLS(host, trustRoot=trust, clientCertificate=client)
