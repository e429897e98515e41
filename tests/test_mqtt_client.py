"""
Tests for :mod:`instrumentd.mqtt` against a real Mosquitto on loopback
(:mod:`tests.brokersupport`): connect, QoS 1 publish acknowledged by the
broker, subscriptions with MQTT 5 properties, the last will, user names
with passwords from a file, TLS, ACL refusals, and reconnecting after the
broker is killed and restarted.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.error import ConnectionDone
from twisted.internet.task import deferLater
from twisted.logger import formatEvent, globalLogPublisher
from twisted.python import log
from twisted.python.failure import Failure
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

from instrumentd.mqtt import (
    BrokerSettings,
    Message,
    MessageProperties,
    MQTTClient,
    NotConnectedError,
    PublishRefusedError,
    Will,
)
from tests.brokersupport import LOG_TAIL, Broker, tail
from tests.tlssupport import make_certificates

#: Generous: the machine is shared.
TIMEOUT = 60


def fast_retry(failures: int) -> float:
    """
    Reconnect soon, so a restarted broker is found again quickly.
    """
    return 0.2


class Inbox:
    """
    Messages a client received, and a way to wait for some.
    """

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._waiters: list[tuple[Callable[[list[Message]], bool], Deferred[None]]] = []

    def __call__(self, message: Message) -> None:
        self.messages.append(message)
        for waiter in list(self._waiters):
            if waiter[0](self.messages):
                self._waiters.remove(waiter)
                waiter[1].callback(None)

    def wait(self, done: Callable[[list[Message]], bool]) -> Deferred[None]:
        """
        :returns: a Deferred firing once ``done(messages)`` is true.
        """
        waiting: Deferred[None] = Deferred()
        if done(self.messages):
            waiting.callback(None)
        else:
            self._waiters.append((done, waiting))
        return waiting

    def on(self, topic: str) -> list[Message]:
        return [m for m in self.messages if m.topic == topic]


class BrokerTestCase(TestCase):
    """
    A broker per test, stopped after it; clients made here are stopped
    first.
    """

    timeout = TIMEOUT

    def make_broker(self, **kwargs: Any) -> Broker:
        broker = Broker(os.path.abspath(self.mktemp()), **kwargs)
        self.addCleanup(broker.kill)
        self.addCleanup(lambda: log.msg("broker log (end):\n" + broker.log()[-4000:]))
        return broker

    def make_client(self, broker_url: str, client_id: str, **kwargs: Any) -> MQTTClient:
        settings_keys = {
            key: kwargs.pop(key)
            for key in list(kwargs)
            if key in BrokerSettings.__dataclass_fields__
        }
        settings = BrokerSettings(
            address=broker_url, client_id=client_id, **settings_keys
        )
        client = MQTTClient(
            settings, reactor=reactor, retry_policy=fast_retry, **kwargs
        )
        client.startService()
        self.addCleanup(client.stopService)
        return client


class PublishSubscribeTests(BrokerTestCase):
    """
    QoS 1 publications acknowledged, received with their properties.
    """

    @inlineCallbacks
    def test_publish_acknowledged_and_received(self) -> Any:
        """
        A QoS 1 publication's Deferred fires on the PUBACK; a subscriber
        gets the payload and the MQTT 5 request properties.
        """
        broker = self.make_broker()
        yield broker.start()
        receiver = self.make_client(broker.url, "receiver")
        inbox = Inbox()
        receiver.on_message(inbox)
        yield receiver.when_connected()
        yield receiver.subscribe("test/#", 1)
        sender = self.make_client(broker.url, "sender")
        yield sender.when_connected()
        properties = MessageProperties(
            response_topic="test/replies/1",
            correlation_data=b"\x00\x01abc",
            message_expiry_interval=60,
            content_type="application/json",
        )
        for n in range(50):
            yield sender.publish(
                f"test/{n % 2}", b'{"n": %d}' % n, qos=1, properties=properties
            )
        yield inbox.wait(lambda messages: len(messages) == 50)
        self.assertEqual(
            [m.payload for m in inbox.messages], [b'{"n": %d}' % n for n in range(50)]
        )
        first = inbox.messages[0]
        self.assertEqual(first.topic, "test/0")
        self.assertEqual(first.qos, 1)
        self.assertEqual(first.properties.response_topic, "test/replies/1")
        self.assertEqual(first.properties.correlation_data, b"\x00\x01abc")
        self.assertEqual(first.properties.content_type, "application/json")
        expiry = first.properties.message_expiry_interval
        assert expiry is not None
        self.assertTrue(0 < expiry <= 60, expiry)

    @inlineCallbacks
    def test_many_in_flight(self) -> Any:
        """
        More publications than the in-flight window at once: each Deferred
        fires, and they arrive in order.
        """
        broker = self.make_broker()
        yield broker.start()
        receiver = self.make_client(broker.url, "receiver")
        inbox = Inbox()
        receiver.on_message(inbox)
        yield receiver.when_connected()
        yield receiver.subscribe("bulk", 1)
        sender = self.make_client(broker.url, "sender", max_inflight=10)
        yield sender.when_connected()
        from twisted.internet.defer import gatherResults

        yield gatherResults(
            [sender.publish("bulk", str(n).encode()) for n in range(500)]
        )
        yield inbox.wait(lambda messages: len(messages) == 500)
        self.assertEqual([int(m.payload) for m in inbox.messages], list(range(500)))

    @inlineCallbacks
    def test_retained(self) -> Any:
        """
        A retained message reaches a client that subscribes later, marked
        as retained.
        """
        broker = self.make_broker()
        yield broker.start()
        sender = self.make_client(broker.url, "sender")
        yield sender.when_connected()
        yield sender.publish("kept", b"here", retain=True)
        receiver = self.make_client(broker.url, "receiver")
        inbox = Inbox()
        receiver.on_message(inbox)
        yield receiver.when_connected()
        yield receiver.subscribe("kept", 1)
        yield inbox.wait(lambda messages: len(messages) == 1)
        self.assertTrue(inbox.messages[0].retain)
        self.assertEqual(inbox.messages[0].payload, b"here")

    def test_publish_without_session(self) -> None:
        """
        Without a session, publish fails at once: nothing is queued in
        memory behind the caller's back.
        """
        client = MQTTClient(
            BrokerSettings(address="mqtt://127.0.0.1:1", client_id="x"),
            reactor=reactor,
        )
        self.failureResultOf(client.publish("t", b"x"), NotConnectedError)


class WillTests(BrokerTestCase):
    """
    The last will.
    """

    @inlineCallbacks
    def test_will_on_lost_connection(self) -> Any:
        """
        A connection that ends without DISCONNECT makes the broker publish
        the will; a clean stop does not.
        """
        broker = self.make_broker()
        yield broker.start()
        watcher = self.make_client(broker.url, "watcher")
        inbox = Inbox()
        watcher.on_message(inbox)
        yield watcher.when_connected()
        yield watcher.subscribe("status/#", 1)

        clean = self.make_client(
            broker.url, "clean", will=Will("status/clean", b"gone", retain=False)
        )
        yield clean.when_connected()
        yield clean.stopService()

        crashing = self.make_client(
            broker.url, "crashing", will=Will("status/crashing", b"gone", retain=False)
        )
        connection = yield crashing.when_connected()
        # A crash, as far as the broker can tell: the socket just closes.
        crashing.stopService()
        connection.transport.abortConnection()
        yield inbox.wait(lambda messages: bool(inbox.on("status/crashing")))
        self.assertEqual(inbox.on("status/crashing")[0].payload, b"gone")
        self.assertEqual(inbox.on("status/clean"), [])


class SecurityTests(BrokerTestCase):
    """
    Passwords from files, ACLs, TLS.
    """

    def password_file(self, password: str) -> str:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(password + "\n")
        return path

    @inlineCallbacks
    def test_password_from_file(self) -> Any:
        """
        The password is read from its file; the client's stats name the
        user, never the password.
        """
        broker = self.make_broker(users={"station": "s3cret-pw"})
        yield broker.start()
        client = self.make_client(
            broker.url,
            "station",
            username="station",
            password_file=self.password_file("s3cret-pw"),
        )
        yield client.when_connected()
        self.assertTrue(client.connected)
        self.assertNotIn("s3cret-pw", repr(client.stats()))
        self.assertNotIn("s3cret-pw", repr(client.settings))

    @inlineCallbacks
    def test_wrong_password(self) -> Any:
        """
        A wrong password: the broker refuses, the reason is kept in the
        stats, and the client keeps trying (with back-off).
        """
        broker = self.make_broker(users={"station": "s3cret-pw"})
        yield broker.start()
        client = self.make_client(
            broker.url,
            "station",
            username="station",
            password_file=self.password_file("wrong"),
        )
        refused: Deferred[None] = Deferred()

        def check() -> None:
            if client.last_error and not refused.called:
                refused.callback(None)
            elif not refused.called:
                reactor.callLater(0.05, check)

        check()
        yield refused
        self.assertFalse(client.connected)
        self.assertIn("refused", client.last_error or "")
        self.assertEqual(self.flushLoggedErrors(), [])

    @inlineCallbacks
    def test_wrong_password_over_tls(self) -> Any:
        """
        A wrong password to a TLS broker: one clear line naming the broker
        and the refusal ("not authorised"), attempts again with back-off,
        and no failure logged (no traceback, no state machine error).
        """
        certificates = make_certificates(self.mktemp())
        broker = self.make_broker(
            users={"station": "s3cret-pw"}, certificates=certificates
        )
        yield broker.start()
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        delays: list[tuple[int, float]] = []

        def policy(failures: int) -> float:
            delay = 0.05 * 2 ** min(failures, 4)
            delays.append((failures, delay))
            return delay

        settings = BrokerSettings(
            address=broker.tls_url,
            client_id="station",
            ca_file=certificates.ca,
            username="station",
            password_file=self.password_file("wrong"),
        )
        client = MQTTClient(settings, reactor=reactor, retry_policy=policy)
        client.startService()
        self.addCleanup(client.stopService)
        # Three refusals in a row, each waited on: the third attempt was
        # scheduled after the second refusal was dealt with in full.
        tried: Deferred[None] = Deferred()

        def attempts(event: dict[str, Any]) -> None:
            if len(delays) >= 3 and not tried.called:
                tried.callback(None)

        globalLogPublisher.addObserver(attempts)
        self.addCleanup(globalLogPublisher.removeObserver, attempts)
        yield tried
        # The connection the third refusal closed is gone too.
        yield deferLater(reactor, 0.5, lambda: None)
        failures = [event for event in events if "log_failure" in event]
        self.assertEqual(
            failures,
            [],
            "\n".join(
                str(event["log_failure"].getTraceback())[-2000:] for event in failures
            ),
        )
        self.assertFalse(client.connected)
        refusals = [
            formatEvent(event)
            for event in events
            if "Cannot use the MQTT broker" in str(event.get("log_format"))
        ]
        self.assertEqual(len(refusals), 1, refusals)
        self.assertIn(broker.tls_url, refusals[0])
        self.assertIn("not authori", refusals[0].lower())
        self.assertEqual([failures for failures, _ in delays[:3]], [1, 2, 3])

    @inlineCallbacks
    def test_acl_refuses_publication(self) -> Any:
        """
        A publication the ACL forbids fails with the broker's reason
        (MQTT 5 PUBACK reason code), and the session stays up.
        """
        broker = self.make_broker(
            users={"station": "pw"},
            acl="user station\ntopic write allowed/#\n",
        )
        yield broker.start()
        client = self.make_client(
            broker.url,
            "station",
            username="station",
            password_file=self.password_file("pw"),
        )
        yield client.when_connected()
        yield client.publish("allowed/x", b"1")
        failure = yield self.assertFailure(
            client.publish("forbidden/x", b"1"), PublishRefusedError
        )
        self.assertIn("forbidden/x", str(failure))
        self.assertTrue(client.connected)

    @inlineCallbacks
    def test_tls(self) -> Any:
        """
        ``mqtts://`` with the broker's CA: the session is up over TLS,
        and messages flow.
        """
        certificates = make_certificates(self.mktemp())
        broker = self.make_broker(certificates=certificates)
        yield broker.start()
        client = self.make_client(broker.tls_url, "tls-client", ca_file=certificates.ca)
        inbox = Inbox()
        client.on_message(inbox)
        yield client.when_connected()
        yield client.subscribe("secure", 1)
        yield client.publish("secure", b"over tls")
        yield inbox.wait(lambda messages: len(messages) == 1)
        self.assertEqual(inbox.messages[0].payload, b"over tls")

    @inlineCallbacks
    def test_tls_untrusted(self) -> Any:
        """
        A broker certificate that does not chain to the CA given: no
        session.
        """
        certificates = make_certificates(self.mktemp())
        other = make_certificates(self.mktemp())
        broker = self.make_broker(certificates=certificates)
        yield broker.start()
        client = self.make_client(broker.tls_url, "tls-client", ca_file=other.ca)
        failed: Deferred[None] = Deferred()

        def check() -> None:
            if client.last_error and not failed.called:
                failed.callback(None)
            elif not failed.called:
                reactor.callLater(0.05, check)

        check()
        yield failed
        self.assertFalse(client.connected)
        self.assertEqual(self.flushLoggedErrors(), [])


class ReconnectTests(BrokerTestCase):
    """
    The broker killed and restarted.
    """

    @inlineCallbacks
    def test_reconnects_and_subscribes_again(self) -> Any:
        """
        After the broker is killed and restarted, the client reconnects,
        says so to its listeners, and its subscription works again.
        """
        broker = self.make_broker()
        yield broker.start()
        client = self.make_client(broker.url, "c1")
        inbox = Inbox()
        client.on_message(inbox)
        lost: Deferred[None] = Deferred()
        client.on_disconnected(lambda: lost.called or lost.callback(None))
        yield client.when_connected()
        yield client.subscribe("again", 1)
        yield broker.kill()
        yield lost
        self.assertFalse(client.connected)
        self.failureResultOf(client.publish("again", b"x"), NotConnectedError)
        back = client.when_connected()
        yield broker.start()
        yield back
        self.assertEqual(client.connections, 2)
        yield client.publish("again", b"after")
        yield inbox.wait(lambda messages: len(messages) == 1)
        self.assertEqual(inbox.messages[0].payload, b"after")


class BrokerSupportTests(BrokerTestCase):
    """
    The test broker on a shared machine.
    """

    @inlineCallbacks
    def test_port_taken_meanwhile(self) -> Any:
        """
        A port taken between its choice and the broker's start (another
        process on the machine): the first start takes new ports.
        """
        taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        broker = self.make_broker()
        broker.port = port
        yield broker.start()
        self.assertNotEqual(broker.port, port)
        client = self.make_client(broker.url, "after")
        yield client.when_connected()

    def test_log_tail(self) -> None:
        """
        A failure's message carries the end of a broker's log, bounded
        (trial's workers send a log event as one AMP value, 64 KiB at
        most).
        """
        lines = [f"line {n} " + "x" * 60 for n in range(5000)]
        text = tail(lines)
        self.assertLessEqual(len(text), LOG_TAIL + 4)
        self.assertTrue(text.endswith(lines[-1]))
        self.assertEqual(tail(["a", "b"]), "a\nb")


class RequireBrokerTests(SynchronousTestCase):
    """
    Without Mosquitto, the broker tests skip on a developer's machine and
    fail in CI.
    """

    def test_missing(self) -> None:
        """
        ``CI`` set: AssertionError naming the package; unset: SkipTest.
        """
        from tests import brokersupport

        self.patch(brokersupport, "MOSQUITTO", "/nonexistent/mosquitto")
        self.patch(os, "environ", {"CI": "true"})
        error = self.assertRaises(AssertionError, brokersupport.require_broker)
        self.assertIn("apt-get install mosquitto", str(error))
        self.patch(os, "environ", {})
        self.assertRaises(SkipTest, brokersupport.require_broker)


class KeepaliveTests(BrokerTestCase):
    """
    A broker that stops answering is noticed by keepalive.
    """

    @inlineCallbacks
    def test_silent_broker(self) -> Any:
        """
        The broker is paused (SIGSTOP: its connections stay open, nothing
        is answered): within about 1.5 keepalives the client counts the
        session lost; when the broker goes on, the client is back.
        """
        import signal

        broker = self.make_broker()
        yield broker.start()
        client = self.make_client(broker.url, "c1", keepalive=1)
        lost: Deferred[None] = Deferred()
        client.on_disconnected(lambda: lost.called or lost.callback(None))
        yield client.when_connected()
        assert broker.process is not None and broker.process.pid is not None
        pid = broker.process.pid
        os.kill(pid, signal.SIGSTOP)
        self.addCleanup(os.kill, pid, signal.SIGCONT)
        yield lost
        back = client.when_connected()
        os.kill(pid, signal.SIGCONT)
        yield back
        self.assertEqual(client.connections, 2)


class StopWhileConnectingTests(TestCase):
    """
    Stopping while a session is being set up.
    """

    timeout = TIMEOUT

    @inlineCallbacks
    def test_stop_before_connack(self) -> Any:
        """
        Connected, CONNECT sent, no CONNACK yet: stopping closes the
        connection and completes, and nothing is logged as a failure
        (ClientService has one transition for the attempt's end while it
        stops; the connection's loss is it).
        """
        from twisted.internet.endpoints import TCP4ServerEndpoint
        from twisted.internet.protocol import Factory, Protocol

        arrived: Deferred[None] = Deferred()

        class Silent(Protocol):
            def dataReceived(self, data: bytes) -> None:
                if not arrived.called:
                    arrived.callback(None)

        port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            Factory.forProtocol(Silent)
        )
        self.addCleanup(port.stopListening)
        client = MQTTClient(
            BrokerSettings(f"mqtt://127.0.0.1:{port.getHost().port}", client_id="c"),
            reactor=reactor,
            retry_policy=fast_retry,
        )
        client.startService()
        yield arrived
        yield client.stopService()
        self.assertFalse(client.connected)
        self.assertEqual(self.flushLoggedErrors(), [])


class RefusedSubscriptionTests(SynchronousTestCase):
    """
    A subscription the broker refuses does not cost the session.
    (Mosquitto grants subscriptions its ACL will filter, so the broker's
    answer is scripted here: MQTT 5 CONNACK and SUBACK packets.)
    """

    def test_session_used_all_the_same(self) -> None:
        """
        The SUBACK refuses the filter (0x87, not authorized): the refusal is
        kept in ``last_error`` and the session is up.
        """
        from twisted.internet.task import Clock
        from twisted.internet.testing import StringTransport

        clock = Clock()
        client = MQTTClient(
            BrokerSettings(address="mqtt://127.0.0.1", client_id="c"), reactor=clock
        )
        client.subscribe("in/#", 1)
        connection = client._new_connection()
        transport = StringTransport()
        connection.makeConnection(transport)
        self.addCleanup(connection.connectionLost, Failure(ConnectionDone()))
        prepared = client._prepare(connection)
        clock.advance(0)
        self.assertTrue(transport.value().startswith(b"\x10"))  # CONNECT
        connection.dataReceived(b"\x20\x03\x00\x00\x00")  # CONNACK, success
        clock.advance(0)
        self.assertIn(b"in/#", transport.value())  # SUBSCRIBE, packet id 1
        connection.dataReceived(b"\x90\x04\x00\x01\x00\x87")  # SUBACK: refused
        self.successResultOf(prepared)
        self.assertTrue(client.connected)
        self.assertIn("in/#", client.last_error or "")
        self.assertIn("Not authorized", client.last_error or "")
        self.flushLoggedErrors()


class EarlyPublishTests(SynchronousTestCase):
    """
    Publishing on a session being prepared.
    """

    def test_publish_while_subscribing(self) -> None:
        """
        Between the CONNACK and the SUBACK the session can carry messages
        already (a persistent session's requests arrive then, and their
        answers must go out).
        """
        from twisted.internet.task import Clock
        from twisted.internet.testing import StringTransport

        clock = Clock()
        client = MQTTClient(
            BrokerSettings(address="mqtt://127.0.0.1", client_id="c"), reactor=clock
        )
        client.subscribe("in/#", 1)
        connection = client._new_connection()
        transport = StringTransport()
        connection.makeConnection(transport)
        self.addCleanup(connection.connectionLost, Failure(ConnectionDone()))
        prepared = client._prepare(connection)
        prepared.addErrback(lambda reason: None)
        connection.dataReceived(b"\x20\x03\x00\x00\x00")  # CONNACK, success
        clock.advance(0)
        self.assertFalse(client.connected)  # the SUBACK has not come
        transport.clear()
        publishing = client.publish("replies/x", b"answer")
        clock.advance(0)
        self.assertNoResult(publishing)
        publishing.addErrback(lambda reason: None)
        self.assertIn(b"replies/x", transport.value())
