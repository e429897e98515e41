# -*- test-case-name: tests.test_mqtt_client -*-
"""
A client that stays connected to a broker: reconnects with back-off,
subscribes again after each reconnect, and tells its users when the
session comes and goes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from twisted.application.internet import ClientService, backoffPolicy
from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure

from instrumentd.mqtt._connection import MQTTConnection
from instrumentd.mqtt._endpoint import broker_endpoint
from instrumentd.mqtt._errors import NotConnectedError
from instrumentd.mqtt._message import Message, MessageProperties
from instrumentd.mqtt._settings import BrokerSettings, Will

if TYPE_CHECKING:
    from twisted.internet.interfaces import IAddress, IProtocol

__all__ = ["MQTTClient", "default_backoff"]

_log = Logger()


def default_backoff() -> Callable[[int], float]:
    """
    The reconnect delays: 1 s after the first failure, doubling to at most
    30 s, with up to a second of jitter so a fleet does not reconnect in
    step after a broker restart.

    :returns: a policy for :class:`~twisted.application.internet.ClientService`.
    """
    return backoffPolicy(initialDelay=0.5, maxDelay=30.0, factor=2.0)


class _ConnectionFactory(Factory):
    def __init__(self, client: MQTTClient) -> None:
        self._client = client

    def buildProtocol(self, addr: IAddress | None) -> MQTTConnection:
        return self._client._new_connection()


class MQTTClient(Service):
    """
    A session with a broker, kept up for as long as the service runs.

    Subscriptions made with :meth:`subscribe` are made again on every new
    connection.  :meth:`publish` needs a session now: it fails at once with
    :class:`NotConnectedError` without one (a caller that must not lose a
    message keeps it, as the MQTT sink keeps it in its spool, and sends it
    again after :meth:`on_connected` says the session is back).

    :param settings: how to reach the broker and who to be there.
    :param reactor: the reactor; the global one if ``None``.
    :param will: the last will, or ``None``.
    :param retry_policy: seconds to wait before the next attempt, given the
        number of failures in a row; :func:`default_backoff` if ``None``.

    :ivar connection: the current session's connection, or ``None``.
    :ivar connections: how many sessions were established.
    :ivar last_error: the last failure to connect, in words, or ``None``.
    """

    def __init__(
        self,
        settings: BrokerSettings,
        *,
        reactor: Any = None,
        will: Will | None = None,
        retry_policy: Callable[[int], float] | None = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        self.settings = settings
        self.will = will
        self._reactor = reactor
        self._retry_policy = retry_policy or default_backoff()
        self._subscriptions: dict[str, int] = {}
        self._message_listeners: list[Callable[[Message], object]] = []
        self._connected_listeners: list[Callable[[MQTTConnection], object]] = []
        self._disconnected_listeners: list[Callable[[], object]] = []
        self._waiting: list[Deferred[MQTTConnection]] = []
        self._service: ClientService | None = None
        self.connection: MQTTConnection | None = None
        self._preparing: MQTTConnection | None = None
        self.connections = 0
        # Sessions that failed in a row (refused, or lost before they were
        # up): the back-off's count, as ClientService's own restarts from
        # one for each connection it hands to _prepare (see there).
        self._failures = 0
        self.last_error: str | None = None
        self.name = "mqtt"

    # -- listeners ---------------------------------------------------------

    def on_message(self, listener: Callable[[Message], object]) -> Callable[[], None]:
        """
        Call ``listener`` with every message received.

        :returns: a callable that stops it.
        """
        self._message_listeners.append(listener)
        return lambda: _remove(self._message_listeners, listener)

    def on_connected(
        self, listener: Callable[[MQTTConnection], object]
    ) -> Callable[[], None]:
        """
        Call ``listener`` with the connection each time a session is up
        (CONNACK accepted, subscriptions made).

        :returns: a callable that stops it.
        """
        self._connected_listeners.append(listener)
        return lambda: _remove(self._connected_listeners, listener)

    def on_disconnected(self, listener: Callable[[], object]) -> Callable[[], None]:
        """
        Call ``listener`` each time an established session ends.

        :returns: a callable that stops it.
        """
        self._disconnected_listeners.append(listener)
        return lambda: _remove(self._disconnected_listeners, listener)

    # -- using the session ---------------------------------------------------

    @property
    def connected(self) -> bool:
        """
        Whether a session is up now.
        """
        return self.connection is not None and self.connection.open

    def when_connected(self) -> Deferred[MQTTConnection]:
        """
        The current session's connection, or the next one.

        :returns: a Deferred firing with it.
        """
        if self.connection is not None and self.connection.open:
            return succeed(self.connection)
        waiting: Deferred[MQTTConnection] = Deferred()
        self._waiting.append(waiting)
        return waiting

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
        Publish on the current session.  See :meth:`MQTTConnection.publish`.

        :raises NotConnectedError: (in the Deferred) without a session.
        """
        # A session being prepared (CONNACK in, subscriptions on their
        # way) can carry messages already: a broker delivers what it kept
        # for a persistent session right after the CONNACK, and the
        # answers to those requests must not be lost.
        connection = self.connection or self._preparing
        if connection is None:
            return fail(NotConnectedError("not connected to the broker"))
        return connection.publish(
            topic, payload, qos=qos, retain=retain, properties=properties
        )

    def subscribe(self, topic_filter: str, qos: int = 1) -> Deferred[None]:
        """
        Subscribe now (if connected) and after every reconnect.

        :param topic_filter: the filter (``+``/``#`` wildcards,
            ``$share/GROUP/...`` for a shared subscription).
        :param qos: the QoS wanted.
        :returns: a Deferred firing on the SUBACK (failing if the broker
            refuses it), or at once without a session (the subscription is
            made when one comes; a refusal then is logged and kept in
            :attr:`last_error`, and the session is used all the same).
        """
        self._subscriptions[topic_filter] = qos
        if self.connection is not None and self.connection.open:
            return self.connection.subscribe([(topic_filter, qos)])
        return succeed(None)

    def stats(self) -> dict[str, object]:
        """
        :returns: ``broker`` (address and client, no password),
            ``connected``, ``connections`` and ``last_error``.
        """
        return {
            "broker": self.settings.describe(),
            "connected": self.connected,
            "connections": self.connections,
            "last_error": self.last_error,
        }

    # -- the service ---------------------------------------------------------

    def startService(self) -> None:
        """
        Start connecting.

        :raises ValueError: for an address or TLS files that cannot be used.
        """
        endpoint = broker_endpoint(self._reactor, self.settings)
        super().startService()  # type: ignore[no-untyped-call]
        self._service = ClientService(
            endpoint,
            _ConnectionFactory(self),
            retryPolicy=self._delay,
            clock=self._reactor,
            prepareConnection=self._prepare,
        )
        self._service.startService()

    def stopService(self) -> Deferred[None]:
        """
        Disconnect cleanly (the will is not published) and stop.

        :returns: a Deferred firing once the connection is closed.
        """
        super().stopService()  # type: ignore[no-untyped-call]
        service, self._service = self._service, None
        connection = self.connection
        waiting, self._waiting = self._waiting, []
        for each in waiting:
            each.errback(NotConnectedError("the MQTT client was stopped"))
        closing: Deferred[None] = (
            connection.disconnect() if connection is not None else succeed(None)
        )
        if service is None:
            return closing

        def stop(_: object) -> Deferred[None]:
            return service.stopService()

        return closing.addCallback(stop)

    # -- connections ---------------------------------------------------------

    def _new_connection(self) -> MQTTConnection:
        return MQTTConnection(
            self.settings,
            clock=self._reactor,
            will=self.will,
            deliver=self._deliver,
        )

    def _delay(self, attempt: int) -> float:
        return self._retry_policy(max(attempt, self._failures))

    def _prepare(self, proxy: IProtocol) -> Deferred[None]:
        # ClientService hands a proxy of the protocol; its attributes are
        # the protocol's.
        connection = cast("MQTTConnection", proxy)
        self._preparing = connection

        def subscribe(_: object) -> Deferred[Any]:
            if not self._subscriptions:
                return succeed(None)
            subscribing = connection.subscribe(sorted(self._subscriptions.items()))
            # A subscription the broker refuses (an ACL) is reported, and
            # the session is used all the same: publishing must not stop
            # because reading is not allowed.
            return subscribing.addErrback(refused)

        def refused(reason: Failure) -> Failure | None:
            if not connection.open or reason.check(CancelledError):
                # The session is gone: that fails this attempt.
                return reason
            message = reason.getErrorMessage()
            self.last_error = message
            _log.warn(
                "MQTT broker {broker}: {error}",
                broker=self.settings.describe(),
                error=message,
            )
            return None

        def up(_: object) -> None:
            self._preparing = None
            self._failures = 0
            self.connections += 1
            self.connection = connection
            _log.info(
                "Connected to the MQTT broker {broker}",
                broker=self.settings.describe(),
            )
            connection.ended.addCallback(lambda _: self._ended(connection))
            for listener in list(self._connected_listeners):
                _call(listener, connection)
            waiting, self._waiting = self._waiting, []
            for each in waiting:
                each.callback(connection)

        def reset(_: object) -> None:
            self.last_error = None

        def failed(reason: Failure) -> Deferred[None] | None:
            # The session failed (the broker refused it, or the connection
            # went first).  The attempt ends when its connection does:
            # ClientService does not close a connection whose preparation
            # failed, and takes that connection's end, whenever it comes,
            # as the end of a connection it is using -- which it is not
            # while it waits to retry (Automat's NoTransition, logged with
            # a traceback).  So the preparation succeeds, the connection is
            # closed, and its end starts the wait; the back-off counts the
            # failures in a row itself.
            if self._preparing is connection:
                self._preparing = None
            if reason.check(CancelledError):
                # The service is stopping (ClientService cancelled the
                # attempt and waits, Disconnecting, for one end of it).
                # That end is the connection's: closed here, its loss
                # completes the stop.  The preparation's own end, failure
                # or success, would be a second one it has no transition
                # for, so it never comes.
                if connection.transport is not None and not connection.ended.called:
                    connection.transport.loseConnection()
                return Deferred()
            self._failures += 1
            message = str(reason.value)
            if message != self.last_error:
                _log.error(
                    "Cannot use the MQTT broker {broker}: {error}",
                    broker=self.settings.describe(),
                    error=message,
                )
            self.last_error = message
            if connection.transport is not None and not connection.ended.called:
                connection.transport.loseConnection()
            return None

        return (
            connection.accepted.addCallback(reset)
            .addCallback(subscribe)
            .addCallbacks(up, failed)
        )

    def _ended(self, connection: MQTTConnection) -> None:
        if self.connection is not connection:
            return
        self.connection = None
        if self.running:
            _log.warn(
                "Lost the MQTT broker {broker}; reconnecting",
                broker=self.settings.describe(),
            )
        for listener in list(self._disconnected_listeners):
            _call(listener)

    def _deliver(self, message: Message) -> None:
        for listener in list(self._message_listeners):
            _call(listener, message)


def _remove(listeners: list[Any], listener: object) -> None:
    if listener in listeners:
        listeners.remove(listener)


def _call(listener: Callable[..., object], *args: object) -> None:
    try:
        listener(*args)
    except Exception:
        _log.failure("An MQTT client listener failed")
