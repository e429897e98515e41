# -*- test-case-name: tests.test_collector_e2e -*-
"""
``twistd instrumentd collect``: the shore collector as a service.

An MQTT 5 client (:class:`~instrumentd.mqtt.MQTTClient`) keeps a
persistent session with the broker (``clean_start`` false, a session
expiry), so the broker queues the stations' messages while the collector
is away.  It subscribes to ``instrumentd/STATION/+/data/+`` and
``.../events/+``; with a ``group``, to the shared subscriptions
``$share/GROUP/...``, so that several collectors of one group divide the
messages.  It also subscribes (never shared: retained messages are not
sent to shared subscriptions) to ``instrumentd/STATION/+/meta``, which
keeps each instrument's ``metadata.json`` in the archive.  Messages are
acknowledged by hand, only once the
:class:`~instrumentd.collector.core.Collector` has written them.  The HTTP
API (:mod:`instrumentd.collector.api`) says what was archived and which
gaps are open.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger

from instrumentd.collector.api import collector_resource
from instrumentd.collector.core import Collector

if TYPE_CHECKING:
    from twisted.internet.interfaces import IListeningPort

    from instrumentd.mqtt import Message, MQTTClient
    from instrumentd.station.config import CollectorConfig

__all__ = ["CollectorService"]


class CollectorService(MultiService):
    """
    The collector: broker session, archive and HTTP API.

    :param config: the checked configuration.
    :param reactor: the reactor; the global one if ``None``.

    :ivar collector: the archive's writer and ledger.
    :ivar client: the MQTT client.
    :ivar api_port: the API's listening port, once started.
    """

    log = Logger()

    def __init__(self, config: CollectorConfig, reactor: Any = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        from instrumentd.mqtt import BrokerSettings, MQTTClient

        self.config = config
        self._reactor = reactor
        self.collector = Collector(
            config.data_dir,
            reactor,
            name=config.client_id,
            fsync=config.fsync,
            checkpoint_interval=config.checkpoint_interval,
            max_open_files=config.max_open_files,
            max_open_gaps=config.max_open_gaps,
            max_closed=config.max_closed_gaps,
            on_write_failure=self._write_failed,
        )
        settings = BrokerSettings(
            address=config.broker,
            client_id=config.client_id,
            username=config.username,
            password_file=config.password_file,
            ca_file=config.ca_file,
            cert_file=config.cert_file,
            key_file=config.key_file,
            keepalive=config.keepalive,
            clean_start=False,
            session_expiry=config.session_expiry,
            manual_ack=True,
        )
        self.client: MQTTClient = MQTTClient(settings, reactor=reactor)
        self.client.on_message(self._message)
        self.client.setServiceParent(self)  # type: ignore[no-untyped-call]
        self.api_port: IListeningPort | None = None

    def _message(self, message: Message) -> None:
        ack = message.ack
        self.collector.receive(message.topic, message.payload, ack)

    def _write_failed(self, error: OSError) -> None:
        # The messages of the failed batch were not acknowledged; the broker
        # sends a session's unacknowledged messages again only on a new
        # connection.
        connection = self.client.connection
        if connection is not None and connection.transport is not None:
            connection.transport.loseConnection()

    def startService(self) -> None:
        """
        Rebuild the ledger from the archive, listen for the API, subscribe
        and connect.
        """
        from twisted.internet.endpoints import serverFromString
        from twisted.web.server import Site

        from instrumentd.station.apisite import APISite

        self.collector.start()
        for topic_filter in self.config.topic_filters() + self.config.meta_filters():
            self.client.subscribe(topic_filter, qos=1)
        site: Site = APISite(
            collector_resource(self.collector, self.client.stats),
            reactor=self._reactor,
        )
        endpoint = serverFromString(self._reactor, self.config.api)
        listening = endpoint.listen(site)
        listening.addCallback(self._listening)
        listening.addErrback(self._cannot_listen)
        super().startService()  # type: ignore[no-untyped-call]

    def _listening(self, port: IListeningPort) -> None:
        self.api_port = port
        address = port.getHost()
        host = getattr(address, "host", None)
        where = (
            f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:"
            f"{address.port}/api"  # type: ignore[attr-defined]
            if host is not None
            else str(address)
        )
        self.log.info(
            "collector API listening on {where}; archive {directory}; "
            "subscribing to {filters} at {broker}",
            where=where,
            directory=self.config.data_dir,
            filters=", ".join(self.config.topic_filters() + self.config.meta_filters()),
            broker=self.client.settings.describe(),
        )

    def _cannot_listen(self, failure: Any) -> None:
        self.log.critical(
            "cannot start the collector API on {api}: {error}",
            api=self.config.api,
            error=failure.value,
        )
        self._reactor.callLater(0, self._reactor.stop)

    def stopService(self) -> Deferred[None]:
        """
        Disconnect, write and checkpoint what was received, close the API.
        """
        stopping: Deferred[Any] = maybeDeferred(super().stopService)

        def close(_: object) -> Deferred[None] | None:
            self.collector.stop()
            if self.api_port is not None:
                port, self.api_port = self.api_port, None
                stopped: Deferred[None] | None = port.stopListening()
                return stopped
            return None

        return stopping.addCallback(close)
