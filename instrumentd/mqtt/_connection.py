# -*- test-case-name: tests.test_mqtt_client -*-
"""
One connection to a broker: a Twisted protocol that runs a paho-mqtt client
over its transport, from the reactor.

paho does the MQTT 5 protocol (packets, properties, QoS 1 flows, keepalive)
and no I/O of its own: it reads and writes a
:class:`~instrumentd.mqtt._socket.TransportSocket`.  Bytes that arrive are
given to ``loop_read``; paho asks to write through its
``on_socket_register_write`` callback, answered with ``loop_write`` on the
next reactor turn; ``loop_misc`` runs on a timer for keepalive.  paho's
thread (``loop_start``) and its blocking ``connect`` are never used.

paho's callbacks run inside its read and write loops; the Deferreds they
settle are fired after the loop returns, so code run by a Deferred may use
the connection freely.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, Final

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from instrumentd.mqtt._errors import (
    BrokerRefusedError,
    MQTTError,
    NotConnectedError,
    PublishRefusedError,
)
from instrumentd.mqtt._message import Message, MessageProperties
from instrumentd.mqtt._settings import BrokerSettings, Will, read_password
from instrumentd.mqtt._socket import TransportSocket

if TYPE_CHECKING:
    from twisted.internet.interfaces import IDelayedCall, IReactorTime

__all__ = ["MQTTConnection"]

_log = Logger()

#: The longest to wait for the broker's CONNACK once connected.
CONNACK_TIMEOUT: Final = 30.0

#: How often paho's keepalive bookkeeping runs, at most, seconds.
_MISC_INTERVAL: Final = 1.0


class _PahoClient(paho.Client):
    """
    paho's client, on the socket it is handed instead of one it opens.
    """

    transport_socket: TransportSocket | None = None

    def _create_socket(self) -> Any:
        # paho's own would connect (and shake hands for TLS) blocking the
        # reactor; the transport is connected already.
        assert self.transport_socket is not None
        return self.transport_socket


class MQTTConnection(Protocol):
    """
    An MQTT 5 session over one connection.

    :param settings: the broker's settings (client id, user, keepalive,
        session).
    :param clock: the reactor's clock.
    :param will: the last will, or ``None``.
    :param deliver: called with each message received.

    :ivar accepted: fires once the broker's CONNACK accepted the session;
        fails if it refused it (:class:`BrokerRefusedError`) or the
        connection ended first.
    :ivar ended: fires when the connection is gone.
    :ivar reason: why it went, once it has.
    :ivar session_present: from the CONNACK: the broker had a session for
        this client id.
    """

    def __init__(
        self,
        settings: BrokerSettings,
        *,
        clock: IReactorTime,
        will: Will | None = None,
        deliver: Callable[[Message], None] | None = None,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._will = will
        self._deliver = deliver
        self.accepted: Deferred[None] = Deferred()
        self.ended: Deferred[None] = Deferred()
        self.reason: Failure | None = None
        self.session_present = False
        self._client: _PahoClient | None = None
        self._socket: TransportSocket | None = None
        self._publishing: dict[int, tuple[str, Deferred[None]]] = {}
        self._subscribing: dict[int, tuple[list[str], Deferred[None]]] = {}
        self._ready: list[Callable[[], object]] = []
        self._write_call: IDelayedCall | None = None
        self._connack_timeout: IDelayedCall | None = None
        self._misc = LoopingCall(self._keepalive)
        self._misc.clock = clock
        self._refusal: Exception | None = None

    # -- Twisted's side ------------------------------------------------------

    def connectionMade(self) -> None:
        """
        Send CONNECT through a new paho client.
        """
        assert self.transport is not None
        self._socket = TransportSocket(self.transport)
        settings = self.settings
        client = _PahoClient(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            protocol=paho.MQTTv5,
            reconnect_on_failure=False,
            manual_ack=settings.manual_ack,
        )
        client.transport_socket = self._socket
        client.max_inflight_messages_set(settings.max_inflight)
        if settings.username is not None:
            password = None
            if settings.password_file is not None:
                try:
                    password = read_password(settings.password_file)
                except ValueError as e:
                    self._refuse(e)
                    return
            client.username_pw_set(settings.username, password)
        if self._will is not None:
            will = self._will
            client.will_set(will.topic, will.payload, will.qos, will.retain)
        client.on_connect = self._on_connect
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_socket_register_write = self._on_register_write
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        if settings.session_expiry:
            properties.SessionExpiryInterval = settings.session_expiry
        # The host and port are not used (the socket is connected): paho
        # only checks that they are there.
        client.connect_async(
            "broker",
            1883,
            settings.keepalive,
            clean_start=settings.clean_start,
            properties=properties,
        )
        self._client = client
        client.reconnect()
        self._connack_timeout = self._clock.callLater(CONNACK_TIMEOUT, self._no_connack)
        self._misc.start(min(_MISC_INTERVAL, settings.keepalive / 2), now=False)

    def dataReceived(self, data: bytes) -> None:
        """
        Give the bytes to paho, packet by packet.
        """
        assert self._socket is not None
        self._socket.feed(data)
        while self._socket.buffered and self._client is not None:
            if self._client.loop_read() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break
        self._after_loop()

    def connectionLost(self, reason: Failure = ConnectionDone) -> None:  # type: ignore[assignment]
        """
        Fail what waited for an answer; fire :attr:`ended`.
        """
        if self._socket is not None:
            self._socket.lost()
        self._client = None
        self._cancel_timers()
        self._run_ready()
        lost = MQTTError(f"the connection to the broker was lost: {reason.value}")
        publishing, self._publishing = self._publishing, {}
        for topic, waiting in publishing.values():
            waiting.errback(
                MQTTError(f"the connection was lost before {topic} was acknowledged")
            )
        subscribing, self._subscribing = self._subscribing, {}
        for _filters, waiting in subscribing.values():
            waiting.errback(lost)
        if not self.accepted.called:
            self.accepted.errback(self._refusal or lost)
        self.reason = reason
        self.ended.callback(None)

    # -- what callers use ----------------------------------------------------

    @property
    def open(self) -> bool:
        """
        Whether the session is up: CONNACK accepted, connection not lost.
        """
        return (
            self._client is not None
            and self.accepted.called
            and self._refusal is None
            and not self.ended.called
        )

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        properties: MessageProperties | None = None,
    ) -> Deferred[None]:
        """
        Publish one message.

        :param topic: its topic.
        :param payload: its bytes.
        :param qos: 0 or 1.
        :param retain: whether the broker keeps it as the topic's retained
            message.
        :param properties: its MQTT 5 properties.
        :returns: a Deferred that fires when the broker has acknowledged it
            (PUBACK, QoS 1) or it has been written (QoS 0); it fails with
            :class:`PublishRefusedError` if the broker refused it, with
            :class:`MQTTError` if the connection is lost first, and with
            :class:`NotConnectedError` at once if there is no session.
        """
        client = self._client
        if client is None or not self.open:
            return fail(NotConnectedError("not connected to the broker"))
        info = client.publish(
            topic,
            payload,
            qos,
            retain,
            properties.to_paho() if properties is not None else None,
        )
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return fail(
                MQTTError(f"cannot publish to {topic}: {paho.error_string(info.rc)}")
            )
        waiting: Deferred[None] = Deferred()
        self._publishing[info.mid] = (topic, waiting)
        return waiting

    def subscribe(self, filters: list[tuple[str, int]]) -> Deferred[None]:
        """
        Subscribe to topic filters.

        :param filters: ``(filter, qos)`` pairs.
        :returns: a Deferred firing on the broker's SUBACK; it fails with
            :class:`MQTTError` naming the filter the broker refused.
        """
        client = self._client
        if client is None or not self.open:
            return fail(NotConnectedError("not connected to the broker"))
        rc, mid = client.subscribe(
            [(name, SubscribeOptions(qos=qos)) for name, qos in filters]
        )
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            return fail(MQTTError(f"cannot subscribe: {paho.error_string(rc)}"))
        waiting: Deferred[None] = Deferred()
        self._subscribing[mid] = ([name for name, _ in filters], waiting)
        return waiting

    def disconnect(self) -> Deferred[None]:
        """
        Send DISCONNECT (the broker then does not publish the will) and
        close.

        :returns: a Deferred firing once the connection is closed.
        """
        closed: Deferred[None] = Deferred()

        def close(result: None) -> None:
            closed.callback(None)

        self.ended.addCallback(close)
        client = self._client
        if client is not None and self.open:
            client.disconnect()
            self._want_write()
        elif self.transport is not None and not self.ended.called:
            self.transport.loseConnection()
        return closed

    # -- paho's callbacks (inside its loops) -----------------------------------

    def _on_connect(
        self,
        client: paho.Client,
        userdata: object,
        flags: Any,
        reason: Any,
        properties: Any,
    ) -> None:
        if self._connack_timeout is not None and self._connack_timeout.active():
            self._connack_timeout.cancel()
        if reason.is_failure:
            self._ready.append(lambda: self._refuse(BrokerRefusedError(str(reason))))
            return
        self.session_present = bool(getattr(flags, "session_present", False))
        self._ready.append(self._accept)

    def _on_publish(
        self,
        client: paho.Client,
        userdata: object,
        mid: int,
        reason: Any,
        properties: Any,
    ) -> None:
        entry = self._publishing.pop(mid, None)
        if entry is None:
            return
        topic, waiting = entry
        if reason.is_failure:
            refused = PublishRefusedError(topic, str(reason))
            self._ready.append(lambda: waiting.errback(refused))
        else:
            self._ready.append(lambda: waiting.callback(None))

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: object,
        mid: int,
        reasons: list[Any],
        properties: Any,
    ) -> None:
        entry = self._subscribing.pop(mid, None)
        if entry is None:
            return
        names, waiting = entry
        refused = [
            f"{name} ({reason})"
            for name, reason in zip(names, reasons, strict=False)
            if reason.is_failure
        ]
        if refused:
            error = MQTTError(
                f"the broker refused the subscription to {', '.join(refused)}"
            )
            self._ready.append(lambda: waiting.errback(error))
        else:
            self._ready.append(lambda: waiting.callback(None))

    def _on_message(
        self, client: paho.Client, userdata: object, message: paho.MQTTMessage
    ) -> None:
        if self._deliver is None:
            return
        ack = None
        if self.settings.manual_ack and message.qos > 0:
            ack = partial(self._ack, client, message.mid, message.qos)
        received = Message.from_paho(message, self._clock.seconds(), ack)
        deliver = self._deliver
        self._ready.append(lambda: deliver(received))

    def _ack(self, client: paho.Client, mid: int, qos: int) -> None:
        # Only on the connection the message came on: after a reconnect the
        # broker sends it again, and that delivery is acknowledged.
        if self._client is client and self.open:
            client.ack(mid, qos)
            self._want_write()

    def _on_register_write(
        self, client: paho.Client, userdata: object, sock: object
    ) -> None:
        self._want_write()

    # -- running paho's loops --------------------------------------------------

    def _want_write(self) -> None:
        if self._write_call is None and self._client is not None:
            self._write_call = self._clock.callLater(0, self._write)

    def _write(self) -> None:
        self._write_call = None
        if self._client is not None:
            self._client.loop_write()
        self._after_loop()

    def _keepalive(self) -> None:
        lost = (
            self._client is not None
            and self._client.loop_misc() == MQTTErrorCode.MQTT_ERR_CONN_LOST
        )
        if lost and self.transport is not None:
            # No PINGRESP within keepalive: the broker or the link is gone.
            # Closing in order would wait on a peer that may never answer.
            self.transport.abortConnection()  # type: ignore[attr-defined]
        self._after_loop()

    def _after_loop(self) -> None:
        self._run_ready()
        if self._client is not None and self._client.want_write():
            self._want_write()

    def _run_ready(self) -> None:
        while self._ready:
            ready, self._ready = self._ready, []
            for action in ready:
                try:
                    action()
                except Exception:
                    _log.failure("An MQTT message's handler failed")

    def _accept(self) -> None:
        if not self.accepted.called:
            self.accepted.callback(None)

    def _refuse(self, error: Exception) -> None:
        self._refusal = error
        if not self.accepted.called:
            self.accepted.errback(error)
        if self.transport is not None:
            self.transport.loseConnection()

    def _no_connack(self) -> None:
        self._connack_timeout = None
        self._refusal = MQTTError(
            f"the broker did not answer CONNECT within {CONNACK_TIMEOUT:g} seconds"
        )
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def _cancel_timers(self) -> None:
        if self._write_call is not None and self._write_call.active():
            self._write_call.cancel()
        self._write_call = None
        if self._connack_timeout is not None and self._connack_timeout.active():
            self._connack_timeout.cancel()
        self._connack_timeout = None
        if self._misc.running:
            self._misc.stop()
