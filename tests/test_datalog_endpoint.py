"""
Tests for L{instrumentd.endpoints.datalog}: replaying recorded instrument
output through the C{datalog:} client endpoint, with a L{Clock} for the
pacing, and once with the real reactor through the plugin.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import clientFromString
from twisted.internet.error import (
    ConnectError,
    ConnectionAborted,
    ConnectionDone,
    ConnectionLost,
    NoProtocol,
)
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IPushProducer,
    IStreamClientEndpoint,
    IStreamClientEndpointStringParserWithReactor,
    ITransport,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactor
from twisted.logger import capturedLogs
from twisted.plugin import IPlugin, getPlugins
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from instrumentd.endpoints import LinkEnded
from instrumentd.endpoints.datalog import (
    SINGLE_READ_LOOP_GAP,
    YIELD_BYTES,
    DatalogAddress,
    DatalogEndpoint,
    DatalogReplayTransport,
    parse_datalog_endpoint,
)
from instrumentd.packet import PacketType, encode_packet, unix_to_ntp

#: 2026-11-24T06:00:00Z.
T0 = 1_795_500_000.0

Record = tuple[PacketType, bytes, float]

DATA = PacketType.DATA_FROM_INSTRUMENT

RECORDS: list[Record] = [
    (PacketType.PORT_AGENT_STATUS, b"CONNECTED", T0 - 3),
    (DATA, b"# 11.0123,  3.81234,   10.101", T0),
    (DATA, b",  33.9001, 1492.123\r\n", T0 + 0.05),
    (PacketType.DATA_FROM_DRIVER, b"ds\r\n", T0 + 2),
    (PacketType.PORT_AGENT_HEARTBEAT, b"HB", T0 + 3),
    (DATA, b"# 11.0200,  3.81301,   10.090\r\n", T0 + 5),
]


def write_datalog(path: Path, records: Iterable[Record], tail: bytes = b"") -> Path:
    """
    Write records as a datalog file, followed by C{tail}.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"".join(encode_packet(k, d, *unix_to_ntp(t)) for k, d, t in records) + tail
    )
    return path


class TurnCountingClock(Clock):
    """
    A L{Clock} that counts the delayed calls it has run.

    L{Clock.advance} also runs calls scheduled by the calls it runs, when they
    are due, so C{advance(0)} cannot show whether code yields to the reactor
    with C{callLater(0)}; the count can.
    """

    def __init__(self) -> None:
        super().__init__()
        self.turns = 0

    def callLater(
        self, delay: float, callable: Callable[..., object], *args: object, **kw: object
    ) -> IDelayedCall:
        def run(*args: object, **kw: object) -> object:
            self.turns += 1
            return callable(*args, **kw)

        return super().callLater(delay, run, *args, **kw)


class RecordingProtocol(Protocol):
    """
    Records when each read arrives, in which reactor turn, and how the
    connection ended.
    """

    def __init__(self, clock: TurnCountingClock) -> None:
        self.clock = clock
        self.received: list[tuple[float, bytes]] = []
        self.turns: list[int] = []
        self.reason: Failure | None = None
        self.made = 0

    def connectionMade(self) -> None:
        self.made += 1

    def dataReceived(self, data: bytes) -> None:
        self.received.append((self.clock.seconds(), data))
        self.turns.append(self.clock.turns)

    def connectionLost(self, reason: Failure = ConnectionDone) -> None:  # type: ignore[assignment]
        self.reason = reason

    @property
    def data(self) -> bytes:
        return b"".join(d for _, d in self.received)

    @property
    def times(self) -> list[float]:
        return [t for t, _ in self.received]


def recording_factory(
    clock: TurnCountingClock, protocol: type[RecordingProtocol] = RecordingProtocol
) -> Factory:
    """
    A factory of C{protocol} instances timed by C{clock}.
    """
    factory = Factory()
    factory.buildProtocol = lambda addr: protocol(clock)  # type: ignore[method-assign]
    return factory


def run_to_end(clock: Clock, limit: int = 100_000) -> None:
    """
    Advance the clock to each pending call in turn until none is left.
    """
    for _ in range(limit):
        calls = clock.getDelayedCalls()
        if not calls:
            return
        clock.advance(max(0.0, min(c.getTime() for c in calls) - clock.seconds()))
    raise AssertionError("the clock never ran out of calls")


def run_until(clock: Clock, until: float) -> None:
    """
    Advance the clock to each pending call in turn, as L{run_to_end} does,
    until the next is due after C{until}; then to C{until}.
    """
    while calls := clock.getDelayedCalls():
        due = min(c.getTime() for c in calls)
        if due > until:
            break
        clock.advance(max(0.0, due - clock.seconds()))
    clock.advance(max(0.0, until - clock.seconds()))


class ReplayTests(SynchronousTestCase):
    """
    L{DatalogEndpoint} replays the recorded instrument bytes with their
    recorded pacing, under a L{Clock}.
    """

    def setUp(self) -> None:
        self.clock = TurnCountingClock()
        self.clock.advance(1000)
        self.path = write_datalog(Path(self.mktemp()), RECORDS)

    def connect(
        self,
        *paths: Path,
        speed: float = 1.0,
        max_gap: float = 60.0,
        loop: bool = False,
    ) -> RecordingProtocol:
        """
        Connect a L{RecordingProtocol} to a replay of C{paths}.
        """
        endpoint = DatalogEndpoint(
            self.clock, paths or (self.path,), speed=speed, max_gap=max_gap, loop=loop
        )
        protocol = self.successResultOf(
            endpoint.connect(recording_factory(self.clock, RecordingProtocol))
        )
        assert isinstance(protocol, RecordingProtocol)
        return protocol

    def assertTimes(self, got: list[float], expected: list[float]) -> None:
        """
        The delivery times are as expected, to a microsecond.
        """
        self.assertEqual(len(got), len(expected), (got, expected))
        for g, e in zip(got, expected, strict=True):
            self.assertAlmostEqual(g, e, places=6)

    def test_recordedPacing(self) -> None:
        """
        Each instrument packet is one C{dataReceived} call, at its recorded
        time after the first; other packet types are not delivered.
        """
        protocol = self.connect()
        self.assertEqual(protocol.made, 1)
        self.assertEqual(protocol.received, [])
        run_to_end(self.clock)
        self.assertEqual(
            [d for _, d in protocol.received], [r[1] for r in RECORDS if r[0] is DATA]
        )
        self.assertTimes(protocol.times, [1000, 1000.05, 1005])

    def test_speed(self) -> None:
        """
        C{speed} divides the recorded waits.
        """
        protocol = self.connect(speed=10)
        run_to_end(self.clock)
        self.assertTimes(protocol.times, [1000, 1000.005, 1000.5])

    def test_slower(self) -> None:
        """
        A speed below 1 stretches them.
        """
        protocol = self.connect(speed=0.5)
        run_to_end(self.clock)
        self.assertTimes(protocol.times, [1000, 1000.1, 1010])

    def test_endOfRecording(self) -> None:
        """
        By default the recording is played once: after the last packet the
        connection closes cleanly for good (L{LinkEnded}, a
        L{ConnectionDone} that says reconnecting would not help), with no
        delayed call left behind.
        """
        protocol = self.connect()
        run_to_end(self.clock)
        assert protocol.reason is not None
        protocol.reason.trap(LinkEnded)
        self.assertIsInstance(protocol.reason.value, ConnectionDone)
        self.assertEqual(
            protocol.reason.getErrorMessage(),
            "end of the recording (played once; loop=true repeats it)",
        )
        transport = protocol.transport
        assert isinstance(transport, DatalogReplayTransport)
        self.assertFalse(transport.connected)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(transport.packets_delivered, 3)
        self.assertEqual(transport.passes, 1)
        self.assertEqual(transport.bytes_delivered, len(protocol.data))

    def test_loop(self) -> None:
        """
        With C{loop}, the recording starts again on the same connection, the
        next pass one average interval of the last (here 5 s over 2
        intervals) after its last read, for ever.
        """
        protocol = self.connect(loop=True)
        run_until(self.clock, 1015.1)
        transport = protocol.transport
        assert isinstance(transport, DatalogReplayTransport)
        self.assertIsNone(protocol.reason)
        self.assertTrue(transport.connected)
        self.assertEqual(transport.passes, 2)
        pass_data = [r[1] for r in RECORDS if r[0] is DATA]
        self.assertEqual(protocol.data, b"".join(pass_data * 2 + pass_data[:2]))
        self.assertTimes(
            protocol.times,
            [1000, 1000.05, 1005, 1007.5, 1007.55, 1012.5, 1015, 1015.05],
        )
        transport.loseConnection()
        self.clock.advance(0)
        assert protocol.reason is not None
        protocol.reason.trap(ConnectionDone)
        self.assertNotIsInstance(protocol.reason.value, LinkEnded)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_loopSingleRead(self) -> None:
        """
        A looped recording of one read repeats it every
        L{SINGLE_READ_LOOP_GAP} recorded seconds, divided by the speed.
        """
        write_datalog(self.path, [RECORDS[0], (DATA, b"x", T0)])
        protocol = self.connect(loop=True, speed=2)
        run_until(self.clock, 1000 + 1.6 * SINGLE_READ_LOOP_GAP)
        self.assertTimes(
            protocol.times, [1000 + i * SINGLE_READ_LOOP_GAP / 2 for i in range(4)]
        )

    def test_loopGapCapped(self) -> None:
        """
        The wait between passes is capped by C{max_gap} like any other.
        """
        write_datalog(self.path, [(DATA, b"a", T0), (DATA, b"b", T0 + 3600)])
        protocol = self.connect(loop=True, max_gap=10)
        run_until(self.clock, 1035)
        self.assertEqual(protocol.data, b"abab")
        self.assertTimes(protocol.times, [1000, 1010, 1020, 1030])

    def test_loopWithoutData(self) -> None:
        """
        A looped recording with no instrument data would repeat nothing for
        ever: it ends, saying why.
        """
        write_datalog(self.path, [r for r in RECORDS if r[0] is not DATA])
        protocol = self.connect(loop=True, speed=0)
        self.clock.advance(0)
        assert protocol.reason is not None
        protocol.reason.trap(LinkEnded)
        self.assertIn("no instrument data", protocol.reason.getErrorMessage())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_longGapCapped(self) -> None:
        """
        A recorded gap longer than C{max_gap} is replayed as C{max_gap}, and a
        recorded time that goes backwards is no wait at all.
        """
        write_datalog(
            self.path,
            [
                (DATA, b"a", T0),
                (DATA, b"b", T0 + 3600),
                (DATA, b"c", T0 + 3601),
                (DATA, b"d", T0 + 100),
                (DATA, b"e", T0 + 102),
            ],
        )
        protocol = self.connect(max_gap=10)
        run_to_end(self.clock)
        self.assertEqual(protocol.data, b"abcde")
        self.assertTimes(protocol.times, [1000, 1010, 1011, 1011, 1013])

    def test_defaultGapCap(self) -> None:
        """
        By default the longest wait is 60 recorded seconds.
        """
        write_datalog(self.path, [(DATA, b"a", T0), (DATA, b"b", T0 + 86400)])
        protocol = self.connect(speed=2)
        run_to_end(self.clock)
        self.assertTimes(protocol.times, [1000, 1030])

    def test_asFastAsPossible(self) -> None:
        """
        At C{speed=0} everything is delivered within a few reactor turns
        (C{advance(0)}), but the replay yields after about L{YIELD_BYTES} so
        one huge file cannot freeze the process.
        """
        chunk = bytes(range(256)) * 16
        write_datalog(self.path, [(DATA, chunk, T0 + i * 3600) for i in range(80)])
        protocol = self.connect(speed=0)
        self.clock.advance(0)
        self.assertEqual(protocol.data, chunk * 80)
        per_turn: dict[int, int] = {}
        for turn, (_, data) in zip(protocol.turns, protocol.received, strict=True):
            per_turn[turn] = per_turn.get(turn, 0) + len(data)
        self.assertGreaterEqual(len(per_turn), 5)
        self.assertLessEqual(max(per_turn.values()), YIELD_BYTES)
        self.assertEqual(self.clock.seconds(), 1000)
        assert protocol.reason is not None
        protocol.reason.trap(ConnectionDone)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_yieldsOverOtherPackets(self) -> None:
        """
        Long runs of packets that are not delivered (a driver's upload)
        still yield to the reactor.
        """
        other = (PacketType.DATA_FROM_DRIVER, b"x" * 4096, T0)
        write_datalog(self.path, [other] * 100 + [(DATA, b"end", T0)])
        protocol = self.connect(speed=0)
        self.clock.advance(0)
        self.assertEqual(protocol.data, b"end")
        self.assertGreaterEqual(protocol.turns[0], 100 * 4096 // YIELD_BYTES)

    def test_severalFiles(self) -> None:
        """
        Files are played one after the other, the pacing running on across
        them.
        """
        second = write_datalog(
            Path(self.mktemp()), [(DATA, b"next", T0 + 7), (DATA, b"last", T0 + 8)]
        )
        protocol = self.connect(self.path, second)
        run_to_end(self.clock)
        self.assertEqual(protocol.data[-8:], b"nextlast")
        self.assertTimes(protocol.times, [1000, 1000.05, 1005, 1007, 1008])

    def test_directory(self) -> None:
        """
        A directory plays its datalogs in recording order.
        """
        root = Path(self.mktemp())
        write_datalog(
            root / "2026/11/24/x_20261124T060000Z-1.datalog", [(DATA, b"2", T0 + 1)]
        )
        write_datalog(
            root / "2026/11/24/x_20261124T060000Z.datalog", [(DATA, b"1", T0)]
        )
        write_datalog(
            root / "2026/11/25/x_20261125T000000Z.datalog", [(DATA, b"3", T0 + 2)]
        )
        protocol = self.connect(root)
        run_to_end(self.clock)
        self.assertEqual(protocol.data, b"123")

    def test_ooiArchive(self) -> None:
        """
        A directory in OOI's port-agent layout (daily archives
        C{ARCHIVE/<refdes>/<YYYY>/<MM>/<refdes>.datalog.<YYYY>_<MM>_<DD>},
        today's file in C{CURRENT/<refdes>.datalog}) is parsed and played in
        recording order, the ASCII logs left out.
        """
        root = Path(self.mktemp())
        archive = root / "ARCHIVE/RS01-CTD/2016"
        write_datalog(
            archive / "10/RS01-CTD.datalog.2016_10_10", [(DATA, b"3", T0 + 2)]
        )
        write_datalog(
            archive / "10/RS01-CTD.datalog.2016_10_09", [(DATA, b"2", T0 + 1)]
        )
        write_datalog(archive / "09/RS01-CTD.datalog.2016_09_30", [(DATA, b"1", T0)])
        write_datalog(root / "CURRENT/RS01-CTD.datalog", [(DATA, b"4", T0 + 3)])
        ascii_log = root / "DISCARD/RS01-CTD/2016/10/RS01-CTD.log.2016_10_10"
        ascii_log.parent.mkdir(parents=True)
        ascii_log.write_text("3677356800.5000 :    PA_HEARTBEAT :  CRC OK : 'HB'\n")
        endpoint = parse_datalog_endpoint(self.clock, str(root / "ARCHIVE"))
        protocol = self.successResultOf(endpoint.connect(recording_factory(self.clock)))
        assert isinstance(protocol, RecordingProtocol)
        run_to_end(self.clock)
        self.assertEqual(protocol.data, b"123")
        protocol = self.connect(root)
        run_to_end(self.clock)
        self.assertEqual(protocol.data, b"1234")

    def test_damagedRecording(self) -> None:
        """
        Junk and a last packet cut short are skipped and logged; the good
        packets are still delivered.
        """
        whole = self.path.read_bytes()
        self.path.write_bytes(b"junk" + whole[:-5])
        with capturedLogs() as events:
            protocol = self.connect(speed=0)
            run_to_end(self.clock)
        self.assertEqual(protocol.data, RECORDS[1][1] + RECORDS[2][1])
        text = " ".join(str(e.get("log_format")) for e in events)
        self.assertIn("cut short", text)
        cut = [e for e in events if "cut" in e]
        self.assertIn("bytes present", cut[0]["cut"])
        junk = [e for e in events if "junk" in e]
        self.assertEqual(junk[0]["junk"], 4)

    def test_pauseResume(self) -> None:
        """
        Pausing stops delivery and the recording's clock: after a resume the
        next packet comes as long after it as it was due after the pause.
        """
        protocol = self.connect()
        self.clock.advance(0)
        transport = protocol.transport
        assert isinstance(transport, DatalogReplayTransport)
        self.assertEqual(len(protocol.received), 1)
        self.clock.advance(0.01)
        transport.pauseProducing()
        self.assertTrue(transport.paused)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(100)
        self.assertEqual(len(protocol.received), 1)
        transport.resumeProducing()
        run_to_end(self.clock)
        self.assertTimes(protocol.times, [1000, 1100.05, 1105])
        assert protocol.reason is not None
        protocol.reason.trap(ConnectionDone)

    def test_pauseInsideDataReceived(self) -> None:
        """
        A protocol may pause the replay from C{dataReceived}: nothing more
        comes, even packets already due, until it resumes.
        """
        write_datalog(self.path, [(DATA, b"a", T0), (DATA, b"b", T0), (DATA, b"c", T0)])

        class Pausing(RecordingProtocol):
            def dataReceived(self, data: bytes) -> None:
                super().dataReceived(data)
                assert isinstance(self.transport, DatalogReplayTransport)
                self.transport.pauseProducing()

        endpoint = DatalogEndpoint(self.clock, [self.path], speed=0)
        protocol = self.successResultOf(
            endpoint.connect(recording_factory(self.clock, Pausing))
        )
        assert isinstance(protocol, Pausing)
        assert isinstance(protocol.transport, DatalogReplayTransport)
        run_to_end(self.clock)
        self.assertEqual(protocol.data, b"a")
        protocol.transport.resumeProducing()
        run_to_end(self.clock)
        self.assertEqual(protocol.data, b"ab")

    def test_loseConnection(self) -> None:
        """
        C{loseConnection} stops the replay at once; the protocol learns on the
        next reactor turn, with L{ConnectionDone}, and no delayed call is left.
        """
        protocol = self.connect()
        self.clock.advance(0)
        transport = protocol.transport
        assert isinstance(transport, DatalogReplayTransport)
        transport.loseConnection()
        self.assertTrue(transport.disconnecting)
        self.assertIsNone(protocol.reason)
        transport.loseConnection()
        self.clock.advance(0)
        assert protocol.reason is not None
        protocol.reason.trap(ConnectionDone)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(100)
        self.assertEqual(len(protocol.received), 1)
        self.assertFalse(transport.connected)

    def test_loseConnectionInsideDataReceived(self) -> None:
        """
        A protocol may disconnect from C{dataReceived}: nothing more is
        delivered, and C{connectionLost} is not called re-entrantly.
        """

        class Hanging(RecordingProtocol):
            def dataReceived(self, data: bytes) -> None:
                super().dataReceived(data)
                assert self.transport is not None
                self.transport.loseConnection()
                assert self.reason is None

        endpoint = DatalogEndpoint(self.clock, [self.path], speed=0)
        protocol = self.successResultOf(
            endpoint.connect(recording_factory(self.clock, Hanging))
        )
        assert isinstance(protocol, Hanging)
        run_to_end(self.clock)
        self.assertEqual(len(protocol.received), 1)
        assert protocol.reason is not None
        protocol.reason.trap(ConnectionDone)

    def test_abortConnection(self) -> None:
        """
        C{abortConnection} ends the replay with L{ConnectionAborted}.
        """
        protocol = self.connect()
        assert isinstance(protocol.transport, DatalogReplayTransport)
        protocol.transport.abortConnection()
        run_to_end(self.clock)
        self.assertEqual(protocol.received, [])
        assert protocol.reason is not None
        protocol.reason.trap(ConnectionAborted)

    def test_stopProducing(self) -> None:
        """
        C{stopProducing} ends the replay.
        """
        protocol = self.connect()
        assert isinstance(protocol.transport, DatalogReplayTransport)
        protocol.transport.stopProducing()
        run_to_end(self.clock)
        self.assertEqual(protocol.received, [])
        assert protocol.reason is not None
        protocol.reason.trap(ConnectionDone)

    def test_writesDiscarded(self) -> None:
        """
        What the protocol writes is thrown away and counted; text is refused
        as a real transport refuses it.
        """
        protocol = self.connect()
        transport = protocol.transport
        assert isinstance(transport, DatalogReplayTransport)
        transport.write(b"ds\r\n")
        transport.writeSequence([b"ts", b"\r\n"])
        self.assertEqual(transport.bytes_discarded, 8)
        self.assertRaises(TypeError, transport.write, "ds\r\n")
        run_to_end(self.clock)
        self.assertEqual(len(protocol.received), 3)

    def test_interfaces(self) -> None:
        """
        The endpoint, the transport and the address provide their
        interfaces.
        """
        endpoint = DatalogEndpoint(self.clock, [self.path])
        self.assertTrue(verifyObject(IStreamClientEndpoint, endpoint))
        protocol = self.connect()
        self.assertTrue(verifyObject(ITransport, protocol.transport))
        self.assertTrue(verifyObject(IPushProducer, protocol.transport))
        assert protocol.transport is not None
        self.assertTrue(verifyObject(IAddress, protocol.transport.getPeer()))

    def test_addresses(self) -> None:
        """
        Both ends of the connection are named by the recording's absolute
        paths, and the factory is given that address.
        """
        built: list[object] = []

        class Remembering(Factory):
            def buildProtocol(self, addr: object) -> Protocol:
                built.append(addr)
                return Protocol()

        address = DatalogAddress((str(self.path.absolute()),))
        endpoint = DatalogEndpoint(self.clock, [self.path])
        protocol = self.successResultOf(endpoint.connect(Remembering()))
        assert protocol.transport is not None
        self.assertEqual(built, [address])
        self.assertEqual(protocol.transport.getPeer(), address)
        self.assertEqual(protocol.transport.getHost(), address)
        protocol.transport.loseConnection()
        run_to_end(self.clock)

    def test_noProtocol(self) -> None:
        """
        A factory that builds no protocol fails the connection attempt.
        """
        factory = Factory.forProtocol(Protocol)
        factory.buildProtocol = lambda addr: None  # type: ignore[method-assign]
        endpoint = DatalogEndpoint(self.clock, [self.path])
        self.failureResultOf(endpoint.connect(factory), NoProtocol)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_connectionMadeFails(self) -> None:
        """
        An exception from C{connectionMade} fails the connection attempt and
        starts no replay.
        """

        class Broken(Protocol):
            def connectionMade(self) -> None:
                raise ZeroDivisionError()

        endpoint = DatalogEndpoint(self.clock, [self.path])
        self.failureResultOf(
            endpoint.connect(Factory.forProtocol(Broken)), ZeroDivisionError
        )
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_fileGone(self) -> None:
        """
        A file removed since the endpoint was made fails the connection
        attempt with L{ConnectError} naming it.
        """
        endpoint = DatalogEndpoint(self.clock, [self.path])
        self.path.unlink()
        failure = self.failureResultOf(
            endpoint.connect(Factory.forProtocol(Protocol)), ConnectError
        )
        self.assertIn(str(self.path.absolute()), str(failure.value))

    def test_unreadableDuringReplay(self) -> None:
        """
        A file that cannot be read when the replay reaches it ends the
        connection with L{ConnectionLost} naming it, and is logged.
        """
        second = write_datalog(Path(self.mktemp()), RECORDS)
        with capturedLogs() as events:
            protocol = self.connect(self.path, second)
            second.unlink()
            run_to_end(self.clock)
        self.assertEqual(len(protocol.received), 3)
        assert protocol.reason is not None
        protocol.reason.trap(ConnectionLost)
        self.assertIn(str(second.absolute()), str(protocol.reason.value))
        self.assertTrue(any("error" in e for e in events))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_noClock(self) -> None:
        """
        A reactor without a clock fails the connection attempt.
        """
        endpoint = parse_datalog_endpoint(MemoryReactor(), str(self.path))
        self.failureResultOf(endpoint.connect(Factory.forProtocol(Protocol)), TypeError)

    def test_replayAgain(self) -> None:
        """
        Each connection is a new replay from the start.
        """
        endpoint = DatalogEndpoint(self.clock, [self.path], speed=0)
        factory = recording_factory(self.clock, RecordingProtocol)
        first = self.successResultOf(endpoint.connect(factory))
        run_to_end(self.clock)
        second = self.successResultOf(endpoint.connect(factory))
        run_to_end(self.clock)
        assert isinstance(first, RecordingProtocol)
        assert isinstance(second, RecordingProtocol)
        self.assertEqual(first.data, second.data)
        self.assertEqual(len(first.received), 3)


class ParserTests(SynchronousTestCase):
    """
    C{datalog:} endpoint strings, parsed through the plugin.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.path = write_datalog(Path(self.mktemp()), RECORDS)

    def parse(self, description: str) -> DatalogEndpoint:
        """
        Parse C{description} with L{clientFromString}.
        """
        endpoint = clientFromString(self.clock, description)
        assert isinstance(endpoint, DatalogEndpoint)
        return endpoint

    def test_plugin(self) -> None:
        """
        The plugin provides the parser interface for the C{datalog} prefix.
        """
        parsers = {
            p.prefix: p
            for p in getPlugins(IStreamClientEndpointStringParserWithReactor)
        }
        self.assertIn("datalog", parsers)
        self.assertTrue(verifyObject(IPlugin, parsers["datalog"]))
        self.assertTrue(
            verifyObject(
                IStreamClientEndpointStringParserWithReactor, parsers["datalog"]
            )
        )

    def test_defaults(self) -> None:
        """
        One file, at the recorded speed, with gaps capped at 60 s.
        """
        endpoint = self.parse(f"datalog:{self.path}")
        self.assertEqual(endpoint.paths, (self.path.absolute(),))
        self.assertEqual((endpoint.speed, endpoint.max_gap), (1.0, 60.0))

    def test_relativePath(self) -> None:
        """
        A relative path is relative to the working directory at parse time.
        """
        self.assertFalse(self.path.is_absolute())
        endpoint = self.parse(f"datalog:{self.path}")
        self.assertEqual(endpoint.paths, (Path.cwd() / self.path,))

    def test_options(self) -> None:
        """
        C{speed} and C{maxgap} are numbers; several files are separated by
        commas.
        """
        other = write_datalog(Path(self.mktemp()), RECORDS)
        endpoint = self.parse(f"datalog:{self.path},{other}:speed=2.5:maxgap=inf")
        self.assertEqual(endpoint.paths, (self.path.absolute(), other.absolute()))
        self.assertEqual((endpoint.speed, endpoint.max_gap), (2.5, float("inf")))
        self.assertEqual(self.parse(f"datalog:{self.path}:speed=0").speed, 0)

    def test_escapedColon(self) -> None:
        """
        A colon in a path is escaped as in every endpoint string.
        """
        path = write_datalog(
            Path(self.mktemp()) / "x_2026-11-24T06:00Z.datalog", RECORDS
        )
        escaped = str(path).replace(":", "\\:")
        self.assertEqual(self.parse(f"datalog:{escaped}").paths, (path.absolute(),))

    def test_unescapedColon(self) -> None:
        """
        An unescaped colon splits the path; the error says how to escape it.
        """
        e = self.assertRaises(
            ValueError, clientFromString, self.clock, "datalog:a:b.datalog"
        )
        self.assertIn(r"escape a colon inside a path as \:", str(e))

    def test_missingFile(self) -> None:
        """
        A file that does not exist is refused at parse time, by name.
        """
        e = self.assertRaises(
            ValueError,
            clientFromString,
            self.clock,
            f"datalog:{self.path},nowhere.datalog",
        )
        self.assertIn(repr(str(Path.cwd() / "nowhere.datalog")), str(e))

    def test_noFile(self) -> None:
        """
        A file is required.
        """
        e = self.assertRaises(ValueError, clientFromString, self.clock, "datalog:")
        self.assertIn("missing file", str(e))

    def test_emptyDirectory(self) -> None:
        """
        A directory with no datalog in it is refused.
        """
        empty = Path(self.mktemp())
        empty.mkdir()
        e = self.assertRaises(
            ValueError, clientFromString, self.clock, f"datalog:{empty}"
        )
        self.assertIn("no datalog files (*.datalog, or OOI's", str(e))

    def test_badSpeed(self) -> None:
        """
        A speed that is not a finite number >= 0 is refused, quoting it.
        """
        for value in ("fast", "-1", "nan", "inf", ""):
            e = self.assertRaises(
                ValueError,
                clientFromString,
                self.clock,
                f"datalog:{self.path}:speed={value}",
            )
            self.assertIn("speed must be", str(e))
            self.assertIn(repr(value), str(e))

    def test_badMaxGap(self) -> None:
        """
        A gap cap that is not a number > 0 is refused, quoting it.
        """
        for value in ("0", "-5", "soon"):
            e = self.assertRaises(
                ValueError,
                clientFromString,
                self.clock,
                f"datalog:{self.path}:maxgap={value}",
            )
            self.assertIn("maxgap must be", str(e))
            self.assertIn(repr(value), str(e))

    def test_loopOption(self) -> None:
        """
        C{loop} is off unless asked for, with the usual yes/no words in any
        case; anything else is refused naming the value and the valid ones.
        """
        self.assertFalse(self.parse(f"datalog:{self.path}").loop)
        for word, value in [
            ("true", True),
            ("YES", True),
            ("1", True),
            ("false", False),
            ("No", False),
            ("0", False),
        ]:
            self.assertIs(self.parse(f"datalog:{self.path}:loop={word}").loop, value)
        e = self.assertRaises(
            ValueError, clientFromString, self.clock, f"datalog:{self.path}:loop=often"
        )
        self.assertEqual(
            str(e),
            "datalog: loop='often' is not valid; valid: 0, 1 (or false, true, no, yes; any case)",
        )

    def test_unknownOption(self) -> None:
        """
        An unknown option is refused, listing the valid ones.
        """
        e = self.assertRaises(
            ValueError, clientFromString, self.clock, f"datalog:{self.path}:rate=2"
        )
        self.assertEqual(
            str(e), "datalog: unknown option 'rate'; valid options: speed, maxgap, loop"
        )

    def test_configurationCheck(self) -> None:
        """
        Parsing needs no clock (configuration checks parse with a
        L{MemoryReactor}).
        """
        endpoint = clientFromString(MemoryReactor(), f"datalog:{self.path}")
        self.assertIsInstance(endpoint, DatalogEndpoint)


class RealReactorTests(TestCase):
    """
    A replay through C{clientFromString} on the real reactor.
    """

    async def test_replay(self) -> None:
        """
        The plugin's endpoint delivers the recorded instrument bytes, paced,
        then closes cleanly.
        """
        from twisted.internet import reactor

        path = write_datalog(Path(self.mktemp()), RECORDS)
        done: Deferred[None] = Deferred()
        reasons: list[Failure] = []
        received: list[bytes] = []

        class Collecting(Protocol):
            def dataReceived(self, data: bytes) -> None:
                received.append(data)

            def connectionLost(self, reason: Failure = ConnectionDone) -> None:  # type: ignore[assignment]
                reasons.append(reason)
                done.callback(None)

        endpoint = clientFromString(reactor, f"datalog:{path}:speed=20")
        started = time.monotonic()
        protocol = await endpoint.connect(Factory.forProtocol(Collecting))
        self.assertIsInstance(protocol, Collecting)
        await done
        elapsed = time.monotonic() - started
        reasons[0].trap(ConnectionDone)
        self.assertEqual(received, [r[1] for r in RECORDS if r[0] is DATA])
        # 5 recorded seconds at speed 20; the reactor never fires early by
        # more than its timer resolution.
        self.assertGreater(elapsed, 5 / 20 - 0.02)
