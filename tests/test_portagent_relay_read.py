"""
Tests for L{Router.relay_read}, the port agent's path for every read of
its instrument: it records and sends what L{Router.publish} of a
C{DATA_FROM_INSTRUMENT} message would, byte for byte and in the same
order, with the C encoder and with the Python one, whichever clients are
connected and whatever they do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from instrumentd import packet
from instrumentd.packet import MAX_PAYLOAD_SIZE, PacketType, ntp_clock
from instrumentd.portagent import router as router_module
from instrumentd.portagent.router import Router
from tests.test_portagent_router import NOW, AbortableTransport, MemoryDataLog

FROM_INSTRUMENT = PacketType.DATA_FROM_INSTRUMENT


class Direct:
    """
    A direct client that keeps what it is handed, and may publish from
    inside a message (as a driver answering at once would).
    """

    def __init__(self, router: Router, relay: Callable[[Router, bytes], None]) -> None:
        self.router = router
        self.relay = relay
        self.got: list[tuple[Any, ...]] = []

    def message(
        self, packet_type: PacketType, payload: bytes, seconds: int, fraction: int
    ) -> None:
        self.got.append((packet_type, payload, seconds, fraction))
        if payload == b"again":
            self.relay(self.router, b"inside")

    def agent_stopped(self) -> None:
        pass


def by_publish(router: Router, data: bytes) -> None:
    """
    What the agent did with a read before L{Router.relay_read}.
    """
    counters = router.counters
    counters.bytes_from_instrument += len(data)
    counters.reads_from_instrument += 1
    router.publish(FROM_INSTRUMENT, data)


def by_relay_read(router: Router, data: bytes) -> None:
    router.relay_read(data)


def run(
    relay: Callable[[Router, bytes], None],
    kinds: tuple[str, ...],
    reads: list[bytes],
    *,
    slow: bool = False,
    direct: bool = False,
    clock: Callable[[], tuple[int, int]] = lambda: NOW,
) -> dict[str, Any]:
    """
    A router with clients of C{kinds}, given C{reads} through C{relay}:
    everything it recorded, sent, counted and cut off.
    """
    datalog = MemoryDataLog()
    router = Router(datalog, clock, client_buffer=300)
    transports = [AbortableTransport() for _ in kinds]
    outlets = [
        router.add_client(kind, t, f"c{i}")
        for i, (kind, t) in enumerate(zip(kinds, transports, strict=True))
    ]
    if slow:
        outlets[0].pauseProducing()
    handed = None
    if direct:
        handed = Direct(router, relay)
        router.direct.append(handed)
    for data in reads:
        relay(router, data)
    return {
        "datalog": datalog.packets,
        "sent": [t.value() for t in transports],
        "aborted": [t.aborted for t in transports],
        "counters": vars(router.counters),
        "queued": router.queues.queued,
        "direct": handed.got if handed else None,
        "publishing": router._publishing,
    }


class Read(bytes):
    """
    A read that is not exactly C{bytes} (the C encoder leaves it to Python).
    """


#: Reads of every kind: empty, small, with 0xFF (telnet's escape) and
#: header-like bytes, one not exactly C{bytes}, the largest one packet
#: carries, and one byte longer (split into two packets).
READS = [
    b"",
    b"L00001 23.4,5.6\r\n",
    b"\xff\xfe\xff\xff" * 20,
    b"\xa3\x9d\x7a\x01\x00\x10" * 5,
    Read(b"from a serial line"),
    b"m" * MAX_PAYLOAD_SIZE,
    b"n" * (MAX_PAYLOAD_SIZE + 1),
    b"again",
    b"last",
]

SETUPS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    ((), {}),
    ((), {"direct": True}),
    (("data",), {}),
    (("data", "data"), {}),
    (("data", "sniff"), {}),
    (("data", "raw"), {}),
    (("rfc2217", "data", "rfc2217"), {}),
    (("data", "data"), {"direct": True}),
    (("data", "data"), {"slow": True}),
    (("data", "sniff", "raw", "rfc2217"), {"slow": True, "direct": True}),
]


class RelayReadTests(SynchronousTestCase):
    """
    L{Router.relay_read} does what L{Router.publish} did for a read.
    """

    def assertSame(self, **options: Any) -> None:
        for kinds, extra in SETUPS:
            want = run(by_publish, kinds, READS, **extra, **options)
            got = run(by_relay_read, kinds, READS, **extra, **options)
            self.assertEqual(got, want, (kinds, extra))
            self.assertFalse(got["publishing"])

    def test_sameAsPublish(self) -> None:
        """
        For every set of clients (none, data, sniff, raw, RFC 2217, direct
        alone or with data clients, a direct client publishing from its
        handler,
        a slow client cut off part-way, with its fault after the message
        that passed its buffer), and every kind of read (empty, 0xFF bytes,
        not C{bytes}, the longest and one byte past), the datalog, every
        client's bytes, the counters and the queues are the same.
        """
        self.assertSame()

    def test_sameWithClock(self) -> None:
        """
        The same with the agent's clock (L{ntp_clock} of a reactor's clock,
        the C one where it was built) at a time with a fraction.
        """
        clock = Clock()
        clock.advance(1_800_000_000.123_456)
        self.assertSame(clock=ntp_clock(clock))

    def test_sameWithoutExtension(self) -> None:
        """
        Without the C extension (the Python encoder and clock), the same.
        """
        self.patch(packet, "encode_packet_c", None)
        self.patch(packet, "_NtpClock", None)
        self.patch(router_module, "_encode", packet.encode_packet)
        clock = Clock()
        clock.advance(1_800_000_000.5)
        self.assertSame()
        self.assertSame(clock=ntp_clock(clock))

    def test_counted(self) -> None:
        """
        Each read is counted: its bytes, one read, one packet of its type.
        """
        result = run(by_relay_read, ("data",), [b"abc", b"de"])
        counters = result["counters"]
        self.assertEqual(counters["bytes_from_instrument"], 5)
        self.assertEqual(counters["reads_from_instrument"], 2)
        self.assertEqual(counters["packets"], 2)
        self.assertEqual(counters["packets_by_type"], {"DATA_FROM_INSTRUMENT": 2})
        self.assertEqual(result["sent"][0], b"".join(result["datalog"]))

    def test_insidePublish(self) -> None:
        """
        A read relayed while a message is being published (from a direct
        client's handler) goes through L{Router.publish}, so it is sent
        after that message, as before.
        """
        result = run(by_relay_read, ("data",), [b"again"], direct=True)
        want = run(by_publish, ("data",), [b"again"], direct=True)
        self.assertEqual(result, want)
        self.assertEqual([p[16:] for p in result["datalog"]], [b"again", b"inside"])
