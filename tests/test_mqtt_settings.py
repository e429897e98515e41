"""
Tests for the broker settings (addresses, passwords from files) and the
transport-backed socket paho reads and writes.
"""

from __future__ import annotations

from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from instrumentd.mqtt import (
    BrokerSettings,
    TransportSocket,
    address_problem,
    broker_endpoint,
    read_password,
)


class AddressTests(SynchronousTestCase):
    """
    :func:`address_problem` and :func:`broker_endpoint`.
    """

    def test_good(self) -> None:
        """
        mqtt:// and mqtts:// URLs and Twisted endpoint strings are taken.
        """
        for value in (
            "mqtt://127.0.0.1:1883",
            "mqtt://shore.example.org",
            "mqtts://[::1]:8883",
            "tcp:host=127.0.0.1:port=1883",
            "unix:path=/run/mosquitto/mqtt.sock",
        ):
            self.assertIsNone(address_problem(value), value)

    def test_bad(self) -> None:
        """
        Anything else is refused with a message naming the value and the
        accepted forms.
        """
        for value, words in (
            ("http://x", "mqtt or mqtts, not 'http'"),
            ("mqtt://", "no host"),
            ("mqtt://user:pw@host", "give only the host and port"),
            ("mqtt://host/path", "give only the host and port"),
            ("mqtt://host:99999", "not a broker address"),
            ("bogus:1", "Unknown endpoint type"),
            ("", "not a broker address"),
        ):
            problem = address_problem(value)
            assert problem is not None, value
            self.assertIn(words, problem)
            self.assertIn(repr(value), problem)
            self.assertIn("mqtt://HOST[:PORT]", problem)

    def test_endpoint_default_ports(self) -> None:
        """
        Without a port, mqtt:// is 1883 and mqtts:// 8883.
        """
        from twisted.internet.testing import MemoryReactorClock

        reactor = MemoryReactorClock()
        endpoint = broker_endpoint(
            reactor, BrokerSettings(address="mqtt://127.0.0.1", client_id="x")
        )
        self.assertEqual(endpoint._port, 1883)  # type: ignore[attr-defined]

    def test_endpoint_bad_ca(self) -> None:
        """
        A CA file that cannot be read is a clear error naming it.
        """
        from twisted.internet.testing import MemoryReactorClock

        error = self.assertRaises(
            ValueError,
            broker_endpoint,
            MemoryReactorClock(),
            BrokerSettings(
                address="mqtts://localhost", client_id="x", ca_file="/nonexistent/ca"
            ),
        )
        self.assertIn("/nonexistent/ca", str(error))


class PasswordTests(SynchronousTestCase):
    """
    :func:`read_password`.
    """

    def test_read(self) -> None:
        """
        The file's content without the white space around it.
        """
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("  pass word\n")
        self.assertEqual(read_password(path), "pass word")

    def test_missing_or_empty(self) -> None:
        """
        A missing or empty file is an error naming the file.
        """
        error = self.assertRaises(ValueError, read_password, "/nonexistent/pw")
        self.assertIn("/nonexistent/pw", str(error))
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("\n")
        self.assertIn(
            "is empty", str(self.assertRaises(ValueError, read_password, path))
        )

    def test_describe_has_no_password(self) -> None:
        """
        Settings hold the file's name, never the password.
        """
        settings = BrokerSettings(
            address="mqtt://h", client_id="c", username="u", password_file="/p"
        )
        self.assertEqual(settings.describe(), "mqtt://h as c (user u)")


class TransportSocketTests(SynchronousTestCase):
    """
    :class:`TransportSocket` behaves as a non-blocking socket.
    """

    def test_recv(self) -> None:
        """
        Received bytes come out in order, in pieces of at most the size
        asked; with none waiting, BlockingIOError; after the connection is
        lost and the buffer read, end of stream.
        """
        sock = TransportSocket(StringTransport())
        self.assertRaises(BlockingIOError, sock.recv, 10)
        sock.feed(b"abcdef")
        self.assertEqual(sock.recv(1), b"a")
        self.assertEqual(sock.recv(10), b"bcdef")
        self.assertRaises(BlockingIOError, sock.recv, 10)
        sock.feed(b"g")
        sock.lost()
        self.assertEqual(sock.recv(10), b"g")
        self.assertEqual(sock.recv(10), b"")

    def test_long_stream(self) -> None:
        """
        A long stream read in small pieces comes out whole (the buffer is
        compacted as it goes).
        """
        sock = TransportSocket(StringTransport())
        data = bytes(range(256)) * 1000
        out = bytearray()
        for start in range(0, len(data), 1000):
            sock.feed(data[start : start + 1000])
            while sock.buffered:
                out += sock.recv(7)
        self.assertEqual(bytes(out), data)

    def test_send_and_close(self) -> None:
        """
        send writes to the transport and takes everything; close loses the
        connection, and send after it is a broken pipe.
        """
        transport = StringTransport()
        sock = TransportSocket(transport)
        self.assertEqual(sock.send(bytearray(b"xyz")), 3)
        self.assertEqual(transport.value(), b"xyz")
        sock.close()
        self.assertTrue(transport.disconnecting)
        self.assertRaises(BrokenPipeError, sock.send, b"more")
        self.assertEqual(sock.recv(1), b"")
