# -*- test-case-name: tests.test_mqtt_settings -*-
"""
How to reach a broker and who to be there: its address, the client id, the
user name and the file holding the password, TLS files, keepalive and
session, and the last will.

The password is never held here, only the name of the file that holds it:
it is read for each connection, so it is in no configuration dump, no
command line and no API answer, and a rotated password is picked up at the
next reconnect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

__all__ = [
    "DEFAULT_PORTS",
    "BrokerSettings",
    "Will",
    "address_problem",
    "read_password",
]

#: The IANA ports of MQTT and MQTT over TLS.
DEFAULT_PORTS: Final = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True, slots=True)
class Will:
    """
    The message the broker publishes for the client when it loses it
    without a DISCONNECT (a crash, a kill -9, a cut link after keepalive).

    :ivar topic: its topic.
    :ivar payload: its bytes.
    :ivar qos: its QoS.
    :ivar retain: whether the broker keeps it as the topic's retained
        message.
    """

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """
    How to connect to a broker.

    :ivar address: ``mqtt://HOST[:PORT]``, ``mqtts://HOST[:PORT]`` (TLS,
        the host name checked against the broker's certificate), or any
        Twisted client endpoint string (``unix:path=...``, ``tls:...``).
    :ivar client_id: the MQTT client id; the broker lets one connection
        hold it at a time.
    :ivar username: the MQTT user name, or ``None``.
    :ivar password_file: a file whose content (white space around it
        ignored) is the password, or ``None``.
    :ivar ca_file: PEM certificates the broker's certificate must chain
        to, for ``mqtts://``; ``None`` for the system's trust store.
    :ivar cert_file: a PEM client certificate, for brokers that ask for
        one (with ``key_file``).
    :ivar key_file: its PEM private key.
    :ivar keepalive: seconds between pings when idle; the broker drops the
        client (and publishes its will) after 1.5 times this with no word.
    :ivar clean_start: start a new session at each connection; ``False``
        resumes the broker's session for this client id.
    :ivar session_expiry: seconds the broker keeps the session (its
        subscriptions and queued QoS 1 messages) after a disconnect.
    :ivar max_inflight: QoS 1 messages sent but not acknowledged at once.
    :ivar manual_ack: acknowledge a received QoS 1 message only when the
        receiver calls its :attr:`~instrumentd.mqtt.Message.ack` (the
        collector does once the message is written), not on receipt.
    """

    address: str
    client_id: str
    username: str | None = None
    password_file: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    keepalive: int = 30
    clean_start: bool = True
    session_expiry: int = 0
    max_inflight: int = 100
    manual_ack: bool = False

    def describe(self) -> str:
        """
        The broker and the client, for logs: never the password.

        :returns: e.g. ``mqtt://shore:1883 as station-1 (user buoy1)``.
        """
        user = f" (user {self.username})" if self.username else ""
        return f"{self.address} as {self.client_id}{user}"


def read_password(path: str) -> str:
    """
    The password in a file.

    :param path: the file.
    :returns: its content, without the white space around it.
    :raises ValueError: if it cannot be read, or is empty; the message
        names the file, never its content.
    """
    try:
        with open(path, encoding="utf-8") as f:
            password = f.read().strip()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read the broker password file {path}: {e}") from e
    if not password:
        raise ValueError(f"the broker password file {path} is empty")
    return password


def address_problem(value: object) -> str | None:
    """
    What is wrong with a broker address, or ``None``.

    :param value: an address from a configuration or a command line.
    :returns: a message naming the value and the accepted forms.
    """
    forms = (
        "mqtt://HOST[:PORT], mqtts://HOST[:PORT] or a Twisted client endpoint "
        "string (tcp:HOST:PORT, unix:PATH, tls:...)"
    )
    if not isinstance(value, str) or not value:
        return f"{value!r} is not a broker address; use {forms}"
    if "://" in value:
        try:
            parts = urlsplit(value)
            port = parts.port
        except ValueError as e:
            return f"{value!r} is not a broker address ({e}); use {forms}"
        if parts.scheme not in DEFAULT_PORTS:
            return (
                f"{value!r} is not a broker address: the scheme must be mqtt or "
                f"mqtts, not {parts.scheme!r}; use {forms}"
            )
        if not parts.hostname:
            return f"{value!r} is not a broker address: it has no host; use {forms}"
        if parts.path not in ("", "/") or parts.query or parts.username:
            return (
                f"{value!r} is not a broker address: give only the host and "
                f"port (user name and password have keys of their own); use {forms}"
            )
        if port == 0:
            return f"{value!r} is not a broker address: port 0; use {forms}"
        return None
    from twisted.internet.endpoints import clientFromString

    try:
        clientFromString(_NoReactor(), value)
    except Exception as e:
        return f"{value!r} is not a broker address ({e}); use {forms}"
    return None


class _NoReactor:
    """
    Enough of a reactor for ``clientFromString`` to parse a description:
    endpoints only keep it until they connect.
    """
