# -*- test-case-name: tests.test_mqtt_client -*-
"""
MQTT 5 from the reactor: paho-mqtt's protocol engine over Twisted
connections.

paho-mqtt (Eclipse, maintained, MQTT 5 complete) does the protocol; its
external-loop calls (``loop_read``, ``loop_write``, ``loop_misc``) are
driven from the reactor over a Twisted transport, so there is no paho
thread and no blocking connect or TLS handshake.  Twisted does the rest:
endpoints (TCP with name resolution, TLS with certificate and host name
checks, UNIX sockets) and reconnecting with back-off
(:class:`~twisted.application.internet.ClientService`).

- :class:`MQTTClient`: a service that keeps a session up: reconnects,
  subscribes again, tells its users when the session comes and goes;
  publishes with QoS 1 returning a Deferred that fires on the PUBACK.
- :class:`MQTTConnection`: one connection's session.
- :class:`BrokerSettings`, :class:`Will`: where and who; the password is
  read from a file for each connection and held nowhere else.
- :class:`Message`, :class:`MessageProperties`: what is received, with
  its MQTT 5 properties (response topic, correlation data, message expiry).

See ``doc/multi-host.md``.
"""

from instrumentd.mqtt._client import MQTTClient, default_backoff
from instrumentd.mqtt._connection import MQTTConnection
from instrumentd.mqtt._endpoint import broker_endpoint
from instrumentd.mqtt._errors import (
    BrokerRefusedError,
    MQTTError,
    NotConnectedError,
    PublishRefusedError,
)
from instrumentd.mqtt._message import Message, MessageProperties
from instrumentd.mqtt._settings import (
    DEFAULT_PORTS,
    BrokerSettings,
    Will,
    address_problem,
    read_password,
)
from instrumentd.mqtt._socket import TransportSocket

__all__ = [
    "DEFAULT_PORTS",
    "BrokerRefusedError",
    "BrokerSettings",
    "MQTTClient",
    "MQTTConnection",
    "MQTTError",
    "Message",
    "MessageProperties",
    "NotConnectedError",
    "PublishRefusedError",
    "TransportSocket",
    "Will",
    "address_problem",
    "broker_endpoint",
    "default_backoff",
    "read_password",
]
