"""
Tests for L{instrumentd.portagent.router} and L{instrumentd.portagent.outlet}:
who gets which packet, and the slow-client policy.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from instrumentd.packet import Packet, PacketParser, PacketType, encode_packet
from instrumentd.portagent.outlet import ClientOutlet, ClientQueues
from instrumentd.portagent.router import DATA_CLIENT_TYPES, Router

NOW = (0xDB300300, 0x80000000)


class MemoryDataLog:
    """
    A datalog that keeps packets in memory.
    """

    path = "memory"
    write_errors = 0
    bytes_dropped = 0

    def __init__(self) -> None:
        self.packets: list[bytes] = []

    @property
    def size(self) -> int:
        return sum(map(len, self.packets))

    def open(self) -> None:
        pass

    def write(self, packet: bytes) -> None:
        self.packets.append(packet)

    def rotate(self) -> str:
        return self.path

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class AbortableTransport(StringTransport):
    """
    A StringTransport that records C{abortConnection}.
    """

    aborted = False

    def abortConnection(self) -> None:
        self.aborted = True
        self.loseConnection()


def parse(data: bytes) -> list[Packet]:
    return PacketParser().feed(data)


class OutletTests(SynchronousTestCase):
    """
    L{ClientOutlet} never blocks and bounds what it holds.
    """

    def setUp(self) -> None:
        self.transport = AbortableTransport()
        self.overflows: list[tuple[ClientOutlet, int]] = []
        self.outlet = ClientOutlet(
            self.transport, 100, "c1", lambda o, why, n: self.overflows.append((o, n))
        )

    def test_registersStreamingProducer(self) -> None:
        """
        The outlet registers itself as the transport's streaming producer.
        """
        self.assertIs(self.transport.producer, self.outlet)
        self.assertTrue(self.transport.streaming)

    def test_sendsStraightThrough(self) -> None:
        """
        While the transport keeps up, data goes straight to it.
        """
        self.outlet.send(b"abc")
        self.assertEqual(self.transport.value(), b"abc")
        self.assertEqual(self.outlet.queued, 0)

    def test_queuesWhilePausedAndDrainsInOrder(self) -> None:
        """
        When paused, data queues; on resume it is written in order.
        """
        self.outlet.send(b"1")
        self.outlet.pauseProducing()
        self.outlet.send(b"2")
        self.outlet.send(b"3")
        self.assertEqual(self.transport.value(), b"1")
        self.assertEqual(self.outlet.queued, 2)
        self.outlet.resumeProducing()
        self.assertEqual(self.transport.value(), b"123")
        self.assertEqual(self.outlet.queued, 0)

    def test_newDataWaitsBehindQueue(self) -> None:
        """
        Data sent after a resume that was cut short by another pause does
        not overtake queued data.
        """
        self.outlet.pauseProducing()
        self.outlet.send(b"a")
        self.outlet.send(b"b")
        real_write = self.transport.write

        def write_then_pause(data: bytes) -> None:
            real_write(data)
            self.outlet.pauseProducing()

        self.transport.write = write_then_pause  # type: ignore[method-assign]
        self.outlet.resumeProducing()
        self.outlet.send(b"c")
        self.assertEqual(self.transport.value(), b"a")
        self.transport.write = real_write  # type: ignore[method-assign]
        self.outlet.resumeProducing()
        self.assertEqual(self.transport.value(), b"abc")

    def test_cutOffPastLimit(self) -> None:
        """
        A client whose queue passes the limit is aborted, its queue is
        freed, the overflow is reported once with the bytes dropped, and
        later sends are ignored.
        """
        self.outlet.pauseProducing()
        self.outlet.send(b"x" * 60)
        self.assertFalse(self.transport.aborted)
        self.outlet.send(b"y" * 60)
        self.assertTrue(self.transport.aborted)
        self.assertEqual(self.outlet.cut_off_reason, "buffer")
        self.assertEqual(self.overflows, [(self.outlet, 120)])
        self.assertEqual(self.outlet.queued, 0)
        self.assertIsNone(self.transport.producer)
        self.outlet.send(b"z")
        self.assertEqual(self.transport.value(), b"")

    def test_closeUnregisters(self) -> None:
        """
        Closing drops the queue and unregisters the producer.
        """
        self.outlet.pauseProducing()
        self.outlet.send(b"q")
        self.outlet.close()
        self.assertIsNone(self.transport.producer)
        self.assertEqual(self.outlet.queued, 0)


class RouterTests(SynchronousTestCase):
    """
    L{Router} records everything and sends each client what it asked for.
    """

    def setUp(self) -> None:
        self.datalog = MemoryDataLog()
        self.router = Router(self.datalog, lambda: NOW, client_buffer=1000)
        self.data = AbortableTransport()
        self.sniff = AbortableTransport()
        self.raw = AbortableTransport()
        self.router.add_client("data", self.data, "d")
        self.router.add_client("sniff", self.sniff, "s")
        self.router.add_client("raw", self.raw, "r")

    def test_everyTypeRecorded(self) -> None:
        """
        Every packet of every type goes to the datalog, with the time given.
        """
        for ptype in PacketType:
            self.router.publish(ptype, b"p", (1, 2))
        self.assertEqual(
            self.datalog.packets, [encode_packet(t, b"p", 1, 2) for t in PacketType]
        )
        self.assertEqual(self.router.counters.packets, len(PacketType))

    def test_recordedWithoutClients(self) -> None:
        """
        With no client at all, packets are still recorded.
        """
        router = Router(self.datalog, lambda: NOW, client_buffer=1000)
        router.publish(PacketType.DATA_FROM_INSTRUMENT, b"alone")
        self.assertEqual(parse(b"".join(self.datalog.packets))[0].payload, b"alone")

    def test_dataClientTypes(self) -> None:
        """
        Data clients get instrument data, status, fault, config and
        heartbeat packets, and not driver data or commands.
        """
        for ptype in PacketType:
            self.router.publish(ptype, ptype.name.encode())
        got = [p.type for p in parse(self.data.value())]
        self.assertEqual(got, [t for t in PacketType if t in DATA_CLIENT_TYPES])
        self.assertNotIn(PacketType.DATA_FROM_DRIVER, got)
        self.assertNotIn(PacketType.PORT_AGENT_COMMAND, got)

    def test_sniffLines(self) -> None:
        """
        Sniff clients get one line per packet of every type.
        """
        self.router.publish(PacketType.DATA_FROM_INSTRUMENT, b"S>\r\n")
        self.router.publish(PacketType.DATA_FROM_DRIVER, b"ds\r\n")
        self.assertEqual(
            self.sniff.value(),
            b"2016-07-13T00:00:00.500000Z DATA_FROM_INSTRUMENT S>\\r\\n\n"
            b"2016-07-13T00:00:00.500000Z DATA_FROM_DRIVER ds\\r\\n\n",
        )

    def test_rawGetsInstrumentBytesOnly(self) -> None:
        """
        Raw clients get the bare instrument bytes, nothing else.
        """
        self.router.publish(PacketType.PORT_AGENT_STATUS, b"CONNECTED")
        self.router.publish(PacketType.DATA_FROM_INSTRUMENT, b"# 12.3\r\n")
        self.router.publish(PacketType.PORT_AGENT_HEARTBEAT, b"HB")
        self.assertEqual(self.raw.value(), b"# 12.3\r\n")

    def test_longReadSplit(self) -> None:
        """
        A read longer than one packet is recorded and sent as several
        packets with one time; raw clients get it whole.
        """
        data = bytes(range(256)) * 300
        self.router.publish(PacketType.DATA_FROM_INSTRUMENT, data, (9, 9))
        recorded = parse(b"".join(self.datalog.packets))
        self.assertEqual(len(recorded), 2)
        self.assertEqual(b"".join(p.payload for p in recorded), data)
        self.assertEqual(parse(self.data.value()), recorded)
        self.assertEqual(self.raw.value(), data)

    def test_slowClientCutOff(self) -> None:
        """
        A data client that stops reading is cut off once it is a client
        buffer behind; the others, and the datalog, get everything, and a
        fault says what happened.
        """
        slow = AbortableTransport()
        slow_outlet = self.router.add_client("data", slow, "slow")
        slow_outlet.pauseProducing()
        chunks = [bytes([i]) * 300 for i in range(10)]
        for chunk in chunks:
            self.router.publish(PacketType.DATA_FROM_INSTRUMENT, chunk)
        self.assertTrue(slow.aborted)
        self.assertNotIn(slow_outlet, self.router.clients["data"])
        self.assertEqual(self.router.counters.slow_clients_cut_off, 1)
        self.assertGreater(self.router.counters.bytes_dropped, 1000)
        fast = parse(self.data.value())
        instrument = [
            p.payload for p in fast if p.type == PacketType.DATA_FROM_INSTRUMENT
        ]
        self.assertEqual(instrument, chunks)
        faults = [p.payload for p in fast if p.type == PacketType.PORT_AGENT_FAULT]
        self.assertEqual(len(faults), 1)
        self.assertIn(b"slow cut off", faults[0])
        self.assertIn(b"1000 bytes", faults[0])
        logged = parse(b"".join(self.datalog.packets))
        self.assertEqual(
            [p.payload for p in logged if p.type == PacketType.DATA_FROM_INSTRUMENT],
            chunks,
        )
        self.flushLoggedErrors()

    def test_removeClient(self) -> None:
        """
        A client that left gets nothing more.
        """
        outlet = self.router.clients["data"][0]
        self.router.remove_client("data", outlet)
        self.router.publish(PacketType.DATA_FROM_INSTRUMENT, b"after")
        self.assertEqual(self.data.value(), b"")
        self.assertEqual(self.router.clients["data"], [])

    def test_closeAll(self) -> None:
        """
        Shutdown disconnects every client.
        """
        self.router.close_all()
        for t in (self.data, self.sniff, self.raw):
            self.assertTrue(t.disconnecting)


class SharedBudgetTests(SynchronousTestCase):
    """
    The queues of all clients share one memory budget: past it, the client
    furthest behind is cut off, and no other.
    """

    def setUp(self) -> None:
        self.datalog = MemoryDataLog()
        self.router = Router(
            self.datalog, lambda: NOW, client_buffer=10_000, client_memory=3_200
        )
        self.transports = [AbortableTransport() for _ in range(3)]
        self.outlets = [
            self.router.add_client("data", t, f"c{i}")
            for i, t in enumerate(self.transports)
        ]

    def test_burstWithinBudgetKept(self) -> None:
        """
        Clients that fall behind by less than their buffer and the shared
        budget are kept, and catch up once their transports drain.
        """
        for outlet in self.outlets[:2]:
            outlet.pauseProducing()
        for i in range(3):
            self.router.publish(PacketType.DATA_FROM_INSTRUMENT, bytes([i]) * 300)
        self.assertEqual(self.router.queues.queued, 2 * 3 * 316)
        for outlet in self.outlets[:2]:
            outlet.resumeProducing()
        self.assertEqual(self.router.queues.queued, 0)
        self.assertEqual(self.router.counters.slow_clients_cut_off, 0)
        for t in self.transports:
            self.assertEqual(len(parse(t.value())), 3)

    def test_furthestBehindCutOff(self) -> None:
        """
        When all queues together pass the budget, the client with the most
        queued is cut off (with reason C{memory}), the others keep every
        packet, and the fault reaches them after the packet that caused it.
        """
        self.outlets[0].pauseProducing()
        self.router.publish(PacketType.DATA_FROM_INSTRUMENT, b"a" * 1000)
        self.outlets[1].pauseProducing()
        self.router.publish(PacketType.DATA_FROM_INSTRUMENT, b"b" * 1000)
        self.assertEqual(self.router.counters.slow_clients_cut_off, 0)
        self.router.publish(PacketType.DATA_FROM_INSTRUMENT, b"c" * 1000)
        self.assertTrue(self.transports[0].aborted)
        self.assertFalse(self.transports[1].aborted)
        self.assertEqual(self.outlets[0].cut_off_reason, "memory")
        self.assertEqual(self.router.counters.clients_cut_off["memory"], 1)
        self.assertEqual(self.router.queues.queued, self.outlets[1].queued)
        self.assertLessEqual(self.router.queues.peak, 3_200 + 1016)
        self.outlets[1].resumeProducing()
        for t in self.transports[1:]:
            packets = parse(t.value())
            self.assertEqual(
                [p.payload[:1] for p in packets],
                [b"a", b"b", b"c", b"d"],
            )
            self.assertIn(b"c0 cut off: the queues of all clients", packets[3].payload)

    def test_cutOffMidFanOutSkipsNoOne(self) -> None:
        """
        A client cut off while a packet is being fanned out does not make
        the client after it miss that packet.
        """
        router = Router(MemoryDataLog(), lambda: NOW, client_buffer=500)
        first, second = AbortableTransport(), AbortableTransport()
        slow = router.add_client("data", first, "slow")
        router.add_client("data", second, "fast")
        slow.pauseProducing()
        router.publish(PacketType.DATA_FROM_INSTRUMENT, b"x" * 600)
        self.assertTrue(first.aborted)
        packets = parse(second.value())
        self.assertEqual(
            [p.type for p in packets],
            [PacketType.DATA_FROM_INSTRUMENT, PacketType.PORT_AGENT_FAULT],
        )


class StallTests(SynchronousTestCase):
    """
    A client that takes nothing for the stall timeout while data waits is
    cut off; one that makes progress is not, however far behind.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.router = Router(
            MemoryDataLog(),
            lambda: NOW,
            client_buffer=1 << 20,
            stall_timeout=30.0,
            clock=self.clock,
        )
        self.stuck = AbortableTransport()
        self.slow = AbortableTransport()
        self.stuck_outlet = self.router.add_client("data", self.stuck, "stuck")
        self.slow_outlet = self.router.add_client("data", self.slow, "slow")

    def test_stalledCutOff(self) -> None:
        """
        Paused for the whole stall timeout: cut off with reason
        C{stalled}; a client paused later, that resumes in time, is kept,
        and no timer is left once no client waits.
        """
        self.stuck_outlet.pauseProducing()
        self.router.publish(PacketType.DATA_FROM_INSTRUMENT, b"x")
        self.clock.advance(20)
        self.slow_outlet.pauseProducing()
        self.clock.advance(9.9)
        self.assertFalse(self.stuck.aborted)
        self.clock.advance(0.1)
        self.assertTrue(self.stuck.aborted)
        self.assertEqual(self.stuck_outlet.cut_off_reason, "stalled")
        self.assertEqual(self.router.counters.clients_cut_off["stalled"], 1)
        self.assertFalse(self.slow.aborted)
        self.clock.advance(19)
        self.slow_outlet.resumeProducing()
        self.clock.advance(60)
        self.assertFalse(self.slow.aborted)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        [fault] = [
            p for p in parse(self.slow.value()) if p.type is PacketType.PORT_AGENT_FAULT
        ]
        self.assertIn(b"stuck cut off: it took nothing for 30 s", fault.payload)

    def test_progressKeepsClient(self) -> None:
        """
        A client that is paused again and again, but resumes each time
        within the timeout, is never cut off for stalling.
        """
        for _ in range(10):
            self.stuck_outlet.pauseProducing()
            self.router.publish(PacketType.DATA_FROM_INSTRUMENT, b"y" * 100)
            self.clock.advance(29)
            self.stuck_outlet.resumeProducing()
        self.assertFalse(self.stuck.aborted)
        self.assertEqual(self.router.counters.slow_clients_cut_off, 0)

    def test_needsClock(self) -> None:
        """
        A stall timeout without a clock is refused.
        """
        self.assertRaises(ValueError, ClientQueues, 100, 5.0, None)
