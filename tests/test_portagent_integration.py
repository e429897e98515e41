"""
Integration tests of the port agent: real ``twistd`` child processes
started by the launcher, real loopback sockets, a pretend instrument served
by the test, and the datalog read back from disk after the agent stopped.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import random
import re
import signal
import statistics
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IStreamClientEndpointStringParserWithReactor
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import LoopingCall
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.plugin import getPlugins
from twisted.trial.unittest import SkipTest, TestCase

from instrumentd import __version__
from instrumentd.datalogfiles import recorded_files
from instrumentd.packet import Packet, PacketParser, PacketType
from instrumentd.portagent.launcher import PortAgentLaunchError, launch_port_agent
from instrumentd.portagent.listeners import READ_ONLY_NOTICE, WRITER_NOTICE
from instrumentd.sniff import escape_payload, format_utc
from tests.agentsupport import (
    ByteClient,
    LineClient,
    PacketClient,
    StalledClient,
    connect,
    elapse,
    payloads,
    reactor,
    read_datalog,
    run,
    start_agent,
    start_instrument,
    within,
)

#: Seconds an instrument must stay away before DISCONNECTED is announced, in
#: the tests that do not test the grace period itself.
LONG_GRACE = 30.0

#: Cap of the reconnect backoff: the agent comes back quickly after a drop
#: (the link adds up to a second of jitter on top).
RECONNECT = 0.2

DATA = PacketType.DATA_FROM_INSTRUMENT
DRIVER = PacketType.DATA_FROM_DRIVER
STATUS = PacketType.PORT_AGENT_STATUS
FAULT = PacketType.PORT_AGENT_FAULT
HEARTBEAT = PacketType.PORT_AGENT_HEARTBEAT


def noise(size: int, seed: int) -> bytes:
    """
    ``size`` reproducible bytes of every value (instrument output is not
    always text).
    """
    return random.Random(seed).randbytes(size)


def escaped(data: bytes) -> str:
    """
    Bytes as the sniff port documents them: printable ASCII as itself,
    ``\\r``, ``\\n``, ``\\t`` and ``\\\\`` escaped, any other byte ``\\xNN``.
    """
    named = {0x0D: "\\r", 0x0A: "\\n", 0x09: "\\t", 0x5C: "\\\\"}
    return "".join(
        named.get(b, chr(b) if 0x20 <= b < 0x7F else f"\\x{b:02x}") for b in data
    )


def statuses(packets: list[Packet]) -> list[bytes]:
    """
    The payloads of the PORT_AGENT_STATUS packets.
    """
    return [p.payload for p in packets if p.type is STATUS]


async def registered(client: PacketClient | LineClient) -> None:
    """
    Wait until the agent sends the client something (with heartbeats on,
    soon), which shows the agent has accepted the connection and will send
    it every packet from now on.
    """
    if isinstance(client, PacketClient):
        await client.conditions.when(
            lambda: bool(client.packets), "the agent to serve a new data client"
        )
    else:
        await client.wait_for_lines(1)


class DataIntegrityTests(TestCase):
    """
    Every byte the instrument sends is recorded and delivered, whatever
    clients and the instrument link do.
    """

    def test_datalogExactAcrossChurn(self) -> Deferred[None]:
        """
        Through data, sniff and raw clients coming and going, a data client
        that stops reading and is cut off, the instrument dropping the link
        and being reconnected, and a C{rotate} command in mid-stream, the
        DATA_FROM_INSTRUMENT payloads of the datalog files, concatenated in
        recording order, are byte for byte what the instrument sent, and so
        is what a data client connected throughout received.
        """

        async def go() -> None:
            instrument = await start_instrument(self)
            datalog = os.path.abspath(self.mktemp())
            agent = await start_agent(
                self,
                instrument,
                datalog_dir=datalog,
                heartbeat=0.2,
                client_buffer="256KiB",
                rotate="none",
                max_reconnect_delay=RECONNECT,
                disconnect_grace=LONG_GRACE,
            )
            await instrument.wait_for_connection(1)
            command = await connect(self, agent.ports["command"], LineClient())
            steady = await connect(self, agent.ports["data"], PacketClient())
            await registered(steady)

            async def send(data: bytes) -> None:
                instrument.send(data)
                await steady.wait_for_data(len(instrument.sent))

            await send(noise(65536, 1))

            sniff = await connect(self, agent.ports["sniff"], LineClient())
            raw = await connect(self, agent.ports["raw"], ByteClient())
            await registered(sniff)
            raw.write(b"raw here\r\n")
            await instrument.wait_for_received(b"raw here\r\n")
            burst = noise(30000, 2)
            await send(burst)
            await raw.wait_for_bytes(burst[-100:], "the burst on the raw client")
            self.assertEqual(bytes(raw.received), burst)

            stalled = StalledClient(agent.ports["data"])
            self.addCleanup(stalled.close)
            stalled.send(b"stalled here\r\n")
            await instrument.wait_for_received(b"stalled here\r\n")
            await send(noise(4 << 20, 3))
            await steady.wait_for_packet(FAULT, lambda p: b"cut off" in p.payload)
            await stalled.wait_closed()

            await sniff.disconnect()
            await raw.disconnect()
            passing = await connect(self, agent.ports["data"], PacketClient())
            await registered(passing)
            await send(noise(10000, 4))
            await passing.wait_for_data(10000)
            await passing.disconnect()

            await send(b"before the drop\r\n")
            await instrument.drop()
            await instrument.wait_for_connection(2)
            await send(noise(20000, 5))

            instrument.send(noise(50000, 6))
            reply = await command.ask("rotate")
            self.assertTrue(reply.startswith("OK rotated "), reply)
            await send(noise(50000, 7))

            self.assertFalse(steady.is_closed)
            status = await within(agent.stop(), "the agent to stop")
            self.assertEqual(status, 0)

            packets = read_datalog(datalog)
            self.assertEqual(payloads(packets, DATA), bytes(instrument.sent))
            self.assertEqual(bytes(steady.instrument_data), bytes(instrument.sent))
            self.assertEqual(len(recorded_files(datalog, "TEST01")), 2)
            self.assertEqual(payloads(packets, DRIVER), b"raw here\r\nstalled here\r\n")

        return run(go())

    def test_stalledClientCutOff(self) -> Deferred[None]:
        """
        A data client that stops reading is cut off once it is more than
        C{--client-buffer} behind: its connection is closed, C{get_stats}
        counts it and the bytes dropped, and the other data client gets a
        PORT_AGENT_FAULT naming it and every byte of instrument data.
        """

        async def go() -> None:
            instrument = await start_instrument(self)
            agent = await start_agent(
                self,
                instrument,
                heartbeat=0.2,
                client_buffer="256KiB",
                disconnect_grace=LONG_GRACE,
            )
            await instrument.wait_for_connection(1)
            command = await connect(self, agent.ports["command"], LineClient())
            reader = await connect(self, agent.ports["data"], PacketClient())
            await registered(reader)
            stalled = StalledClient(agent.ports["data"])
            self.addCleanup(stalled.close)
            stalled.send(b"x")
            await instrument.wait_for_received(b"x")

            bulk = noise(6 << 20, 8)
            instrument.send(bulk)
            await reader.wait_for_data(len(bulk))
            await reader.wait_for_packet(FAULT, lambda p: b"cut off" in p.payload)
            await stalled.wait_closed()

            [fault] = reader.of_type(FAULT)
            self.assertIn(
                f"data client {stalled.label} cut off".encode(), fault.payload
            )
            self.assertIn(b"262144 bytes", fault.payload)
            stats = json.loads(await command.ask("get_stats"))
            self.assertGreaterEqual(stats["slow_clients_cut_off"], 1)
            self.assertGreater(stats["bytes_dropped"], 0)
            self.assertEqual(stats["clients"]["data"], 1)
            self.assertEqual(bytes(reader.instrument_data), bulk)
            self.assertFalse(reader.is_closed)

        return run(go())


def peak_memory(pid: int) -> tuple[int, int]:
    """
    A process's resident memory now and at its peak, in bytes (Linux).
    """
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) * 1024
    return values["VmRSS"], values["VmHWM"]


class ClientQueueTests(TestCase):
    """
    Clients are cut off for making no progress or for passing a memory
    budget, never for a burst; the agent's memory stays bounded.
    """

    def test_burstSurvived(self) -> None:
        """
        With the default options, a data client that stops reading while
        the agent relays a 40 MiB burst (the agent outruns it by far more
        than the old 4 MiB buffer) is not cut off: once it reads again it
        gets every byte.
        """

        async def go() -> None:
            instrument = await start_instrument(self)
            agent = await start_agent(
                self, instrument, heartbeat=0.2, disconnect_grace=LONG_GRACE
            )
            await instrument.wait_for_connection(1)
            command = await connect(self, agent.ports["command"], LineClient())
            reader = await connect(self, agent.ports["data"], PacketClient())
            burst = await connect(self, agent.ports["data"], PacketClient())
            await registered(reader)
            await registered(burst)
            assert burst.transport is not None
            burst.transport.pauseProducing()  # type: ignore[attr-defined]

            bulk = noise(40 << 20, 31)
            instrument.send(bulk)
            await within(reader.wait_for_data(len(bulk)), "the burst", 60)
            burst.transport.resumeProducing()  # type: ignore[attr-defined]
            await within(burst.wait_for_data(len(bulk)), "the burst", 60)

            self.assertEqual(bytes(burst.instrument_data), bulk)
            self.assertFalse(burst.is_closed)
            self.assertEqual(burst.of_type(FAULT), [])
            stats = json.loads(await command.ask("get_stats"))
            self.assertEqual(stats["slow_clients_cut_off"], 0)
            self.assertGreater(stats["client_queues"]["peak"], 4 << 20)

        return run(go())

    def test_onePacketPerRead(self) -> None:
        """
        A flood from the instrument is framed as exactly one packet per read
        (the agent reads at most one packet's payload at a time, not 64 KiB
        that would need a second, 17-byte packet), and a client gets every
        byte in order.
        """

        async def go() -> None:
            instrument = await start_instrument(self)
            agent = await start_agent(
                self, instrument, heartbeat=0.2, disconnect_grace=LONG_GRACE
            )
            await instrument.wait_for_connection(1)
            command = await connect(self, agent.ports["command"], LineClient())
            reader = await connect(self, agent.ports["data"], PacketClient())
            await registered(reader)

            bulk = noise(8 << 20, 18)
            instrument.send(bulk)
            await within(reader.wait_for_data(len(bulk)), "the flood", 60)

            self.assertEqual(bytes(reader.instrument_data), bulk)
            stats = json.loads(await command.ask("get_stats"))
            reads = stats["instrument"]["reads_in"]
            self.assertEqual(stats["instrument"]["bytes_in"], len(bulk))
            self.assertEqual(stats["packets_by_type"]["DATA_FROM_INSTRUMENT"], reads)
            # Reads were large (here about 64 KiB on average), so there
            # were reads that a 64 KiB read size would have split.
            self.assertLess(reads, len(bulk) // 1024)

        return run(go())

    def test_stalledClientCutOffForNoProgress(self) -> None:
        """
        A data client that takes nothing while data waits for it is cut off
        after the stall timeout, long before it fills its buffer: counted
        as C{stalled}, with a PORT_AGENT_FAULT to the other data client.
        """

        async def go() -> None:
            instrument = await start_instrument(self)
            agent = await start_agent(
                self,
                instrument,
                heartbeat=0.2,
                client_stall_timeout=2,
                disconnect_grace=LONG_GRACE,
            )
            await instrument.wait_for_connection(1)
            command = await connect(self, agent.ports["command"], LineClient())
            reader = await connect(self, agent.ports["data"], PacketClient())
            await registered(reader)
            stalled = StalledClient(agent.ports["data"])
            self.addCleanup(stalled.close)
            stalled.send(b"s")
            await instrument.wait_for_received(b"s")

            bulk = noise(24 << 20, 32)
            instrument.send(bulk)
            await within(reader.wait_for_data(len(bulk)), "the data", 60)
            await reader.wait_for_packet(FAULT, lambda p: b"cut off" in p.payload)
            await stalled.wait_closed()

            [fault] = reader.of_type(FAULT)
            self.assertIn(
                f"data client {stalled.label} cut off: it took nothing for 2 s".encode(),
                fault.payload,
            )
            stats = json.loads(await command.ask("get_stats"))
            self.assertEqual(stats["clients_cut_off"]["stalled"], 1)
            self.assertEqual(stats["slow_clients_cut_off"], 1)
            self.assertEqual(stats["clients"]["data"], 1)
            self.assertEqual(bytes(reader.instrument_data), bulk)

        return run(go())

    def test_memoryBounded(self) -> None:
        """
        Four data clients that never read, each allowed a 16 MiB buffer,
        share a 16 MiB client memory: as their queues pass it together, the
        one furthest behind is cut off each time, so what the agent queues
        (and its resident memory) stays within the budget while 96 MiB go
        by, and a client that reads gets every byte.  The instrument sends
        2 MiB at a time, each once the reading client has the previous
        ones, so that client never falls far behind (under load it could
        otherwise be 16 MiB behind and be cut off in its turn, as it
        should be).
        """

        async def go() -> None:
            instrument = await start_instrument(self)
            agent = await start_agent(
                self,
                instrument,
                heartbeat=0.2,
                client_memory="16MiB",
                client_buffer="16MiB",
                disconnect_grace=LONG_GRACE,
            )
            await instrument.wait_for_connection(1)
            command = await connect(self, agent.ports["command"], LineClient())
            reader = await connect(self, agent.ports["data"], PacketClient())
            await registered(reader)
            stalled = []
            for i in range(4):
                client = StalledClient(agent.ports["data"])
                self.addCleanup(client.close)
                client.send(b"%d" % i)
                await instrument.wait_for_received(b"%d" % i)
                stalled.append(client)
            resident_before, _ = peak_memory(agent.pid)

            bulk = noise(96 << 20, 33)
            step = 2 << 20
            for start in range(0, len(bulk), step):
                instrument.send(bulk[start : start + step])
                await reader.wait_for_data(start + step)
            _, peak = peak_memory(agent.pid)
            for client in stalled:
                await client.wait_closed()

            stats = json.loads(await command.ask("get_stats"))
            self.assertEqual(stats["slow_clients_cut_off"], 4)
            self.assertGreaterEqual(stats["clients_cut_off"]["memory"], 3)
            self.assertLessEqual(stats["client_queues"]["peak"], (16 << 20) + 65552)
            self.assertEqual(stats["client_queues"]["budget"], 16 << 20)
            self.assertEqual(stats["client_queues"]["queued"], 0)
            # Without the shared budget the four queues would have grown to
            # 64 MiB together; the agent's peak memory stays well below.
            self.assertLess(peak - resident_before, 48 << 20)
            self.assertEqual(bytes(reader.instrument_data), bulk)

        return run(go())


class DatalogFullDiskTests(TestCase):
    """
    A real agent whose datalog is on a small tmpfs that fills up (this
    needs root to mount it; CI runs as root).  The same logic is unit
    tested with a fault-injecting file object in L{tests.test_datalog}.
    """

    def small_tmpfs(self, size: str) -> str:
        """
        Mount a tmpfs of ``size`` on a fresh directory, unmounted when the
        test ends (after the agent has stopped).
        """
        if os.geteuid() != 0:
            raise SkipTest("mounting a tmpfs needs root (CI runs as root)")
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", directory],
            check=False,
            capture_output=True,
            text=True,
        )
        if mounted.returncode:
            raise SkipTest(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
        self.addCleanup(subprocess.run, ["umount", directory], check=True)
        return directory

    def test_fullDiskAccountedAndRecovered(self) -> None:
        """
        While the tmpfs is full, instrument data still reaches clients, a
        PORT_AGENT_FAULT says the datalog cannot record, attempts reuse the
        one file (no new empty files), and once space is freed recording
        resumes by itself (another fault says so).  Afterwards the packet
        bytes the agent handled are exactly the bytes in the datalog plus
        C{datalog.bytes_dropped}, and so are the instrument's bytes.
        """

        async def go() -> None:
            disk = self.small_tmpfs("4m")
            datalog = os.path.join(disk, "datalog")
            instrument = await start_instrument(self)
            agent = await start_agent(
                self,
                instrument,
                datalog_dir=datalog,
                heartbeat=0,
                disconnect_grace=LONG_GRACE,
            )
            await instrument.wait_for_connection(1)
            data = await connect(self, agent.ports["data"], PacketClient())
            command = await connect(self, agent.ports["command"], LineClient())
            self.assertEqual(await command.ask("get_state"), "CONNECTED")
            await data.wait_for_packet(STATUS)
            # Start a new file, so that everything recorded before the disk
            # fills is on disk, and what the new file lacks was dropped.
            reply = await command.ask("rotate")
            [old, file] = recorded_files(datalog, "TEST01")
            self.assertEqual(reply, f"OK rotated {old}")

            filler = os.path.join(disk, "filler")
            with open(filler, "wb", buffering=0) as f:
                try:
                    while True:
                        f.write(b"\0" * 65536)
                except OSError as e:
                    self.assertEqual(e.errno, errno.ENOSPC)

            instrument.send(noise(1 << 20, 21))
            await data.wait_for_packet(
                FAULT, lambda p: p.payload.startswith(b"datalog cannot record")
            )
            # Keep data coming for a while on the full disk: attempts are
            # made (1 s, then 2 s later) and must not make new files.
            trickle = LoopingCall(
                lambda: instrument.send(noise(700, len(instrument.sent)))
            )
            trickle.start(0.1)
            self.addCleanup(lambda: trickle.running and trickle.stop())
            await elapse(4.0)
            self.assertEqual(recorded_files(datalog, "TEST01"), [old, file])

            os.remove(filler)
            await data.wait_for_packet(
                FAULT, lambda p: p.payload.startswith(b"datalog recording again")
            )
            trickle.stop()
            await data.wait_for_data(len(instrument.sent))
            stats = json.loads(await command.ask("get_stats"))["datalog"]
            self.assertFalse(stats["failing"])
            self.assertGreaterEqual(stats["write_errors"], 2)
            dropped = stats["bytes_dropped"]
            self.assertGreater(dropped, 0)
            await within(agent.stop(), "the agent to stop")

            self.assertEqual(recorded_files(datalog, "TEST01"), [old, file])
            logged = read_datalog(datalog)  # whole packets only, in every file
            with open(file, "rb") as f:
                since_full = PacketParser().feed(f.read())
            on_disk = Counter(logged)
            # Every packet the agent handled while the disk was full went to
            # the data client (no commands or driver bytes were sent then),
            # so what the client has and the file lacks was dropped.
            lost = list((Counter(data.packets) - on_disk).elements())
            self.assertEqual(sum(16 + len(p.payload) for p in lost), dropped)
            self.assertEqual(
                os.path.getsize(file), sum(16 + len(p.payload) for p in since_full)
            )
            self.assertEqual(
                len(payloads(logged, DATA)) + len(payloads(lost, DATA)),
                len(instrument.sent),
            )
            self.assertEqual(bytes(data.instrument_data), bytes(instrument.sent))

        return run(go())


class LinkStateTests(TestCase):
    """
    Data clients hear CONNECTED, heartbeats, and DISCONNECTED only when the
    instrument has stayed away for the whole grace period.
    """

    def test_heartbeatsAndGrace(self) -> Deferred[None]:
        """
        Heartbeats come every C{--heartbeat} seconds.  A drop shorter than
        C{--disconnect-grace} is never announced; an instrument that stays
        away is announced DISCONNECTED no sooner than the grace period after
        it left, and CONNECTED again when it is back.
        """
        grace = 2.5

        async def go() -> None:
            instrument = await start_instrument(self)
            agent = await start_agent(
                self,
                instrument,
                heartbeat=0.2,
                disconnect_grace=grace,
                max_reconnect_delay=RECONNECT,
            )
            await instrument.wait_for_connection(1)
            client = await connect(self, agent.ports["data"], PacketClient())
            await client.wait_for_count(HEARTBEAT, 6)
            beats = [p.unix_time for p in client.of_type(HEARTBEAT)]
            gaps = [b - a for a, b in itertools.pairwise(beats)]
            self.assertTrue(0.15 < statistics.median(gaps) < 0.3, gaps)
            self.assertTrue(all(p.payload == b"HB" for p in client.of_type(HEARTBEAT)))
            # The agent announces CONNECTED when its side of the connection
            # completes, which may be just after the instrument accepted and
            # so after this client arrived; by now (six heartbeats later) it
            # has.  Everything below is about what comes after.
            before = statuses(client.packets)
            self.assertIn(before, ([], [b"CONNECTED"]))

            def since() -> list[bytes]:
                return statuses(client.packets)[len(before) :]

            # A blip: the instrument drops the link and the agent is back
            # well within the grace period.
            dropped = time.time()
            await instrument.drop()
            await instrument.wait_for_connection(2)
            self.assertLess(time.time() - dropped, grace)
            await client.conditions.when(
                lambda: (
                    client.packets[-1].type is HEARTBEAT
                    and client.packets[-1].unix_time > dropped + grace + 0.2
                ),
                "heartbeats from past the grace period after the blip",
            )
            self.assertEqual(since(), [])

            # An outage: nothing listens any more.
            await instrument.stop_listening()
            left = time.time()
            await instrument.drop()
            await client.wait_for_count(STATUS, len(before) + 1)
            announced = client.of_type(STATUS)[len(before)]
            self.assertEqual(announced.payload, b"DISCONNECTED")
            self.assertGreaterEqual(announced.unix_time - left, grace - 0.05)
            self.assertLess(announced.unix_time - left, grace + 2)

            await instrument.listen()
            await instrument.wait_for_connection(3)
            await client.wait_for_count(STATUS, len(before) + 2)
            self.assertEqual(since(), [b"DISCONNECTED", b"CONNECTED"])

        return run(go())


class InstrumentInputTests(TestCase):
    """
    What clients send reaches the instrument, and is recorded.
    """

    def test_dataClientAndRawPort(self) -> Deferred[None]:
        """
        Bytes from a data client reach the instrument.  The first raw client
        writes to the instrument; a second is told it is read-only and what
        it types goes nowhere, until the first leaves and it is told it has
        the line.  Everything that reached the instrument is in the datalog
        as DATA_FROM_DRIVER, and nothing else is.
        """

        async def go() -> None:
            instrument = await start_instrument(self)
            datalog = os.path.abspath(self.mktemp())
            agent = await start_agent(
                self, instrument, datalog_dir=datalog, disconnect_grace=LONG_GRACE
            )
            await instrument.wait_for_connection(1)
            driver = await connect(self, agent.ports["data"], PacketClient())
            driver.write(b"ts\r\n")
            await instrument.wait_for_received(b"ts\r\n")

            first = await connect(self, agent.ports["raw"], ByteClient())
            first.write(b"first\r\n")
            await instrument.wait_for_received(b"first\r\n")
            second = await connect(self, agent.ports["raw"], ByteClient())
            await second.wait_for_bytes(READ_ONLY_NOTICE, "the read-only notice")
            self.assertEqual(bytes(second.received), READ_ONLY_NOTICE)
            self.assertNotIn(WRITER_NOTICE, bytes(first.received))
            second.write(b"ignored\r\n")
            # Sent after "ignored" left the second client, so once it has
            # reached the instrument the agent has read "ignored" too.
            first.write(b"again\r\n")
            await instrument.wait_for_received(b"again\r\n")
            instrument.send(b"S>")
            await second.wait_for_bytes(b"S>")
            await first.wait_for_bytes(b"S>")

            await first.disconnect()
            await second.wait_for_bytes(WRITER_NOTICE, "the writer notice")
            second.write(b"second\r\n")
            await instrument.wait_for_received(b"second\r\n")

            expected = b"ts\r\nfirst\r\nagain\r\nsecond\r\n"
            self.assertEqual(bytes(instrument.received), expected)
            self.assertEqual(await within(agent.stop(), "the agent to stop"), 0)
            self.assertEqual(payloads(read_datalog(datalog), DRIVER), expected)

        return run(go())


SNIFF_LINE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) (?P<type>[A-Z_]+) (?P<payload>.*)$"
)


class SniffTests(TestCase):
    """
    The sniff port shows every packet as one line of text.
    """

    def test_oneLinePerPacket(self) -> Deferred[None]:
        """
        Each packet is one line: its time in ISO 8601 UTC, its type's name
        and its payload as escaped text.  The instrument data lines match
        the data client's packets one for one, and commands show up too.
        """

        async def go() -> None:
            instrument = await start_instrument(self)
            agent = await start_agent(
                self, instrument, heartbeat=0.2, disconnect_grace=LONG_GRACE
            )
            await instrument.wait_for_connection(1)
            sniff = await connect(self, agent.ports["sniff"], LineClient())
            data = await connect(self, agent.ports["data"], PacketClient())
            await registered(sniff)
            await registered(data)
            sent = b"\r\nS>ts\r\n 21.1234, 3.45678\r\n" + bytes(range(256))
            instrument.send(sent)
            await data.wait_for_data(len(sent))
            command = await connect(self, agent.ports["command"], LineClient())
            await command.ask("ping")
            await sniff.wait_for_line(
                lambda line: " PORT_AGENT_COMMAND ping" in line, "the ping command"
            )
            # All of that can take less than one 0.2 s heartbeat period.
            await sniff.wait_for_line(
                lambda line: " PORT_AGENT_HEARTBEAT HB" in line, "a heartbeat"
            )

            parsed = [SNIFF_LINE.match(line) for line in sniff.lines]
            self.assertNotIn(None, parsed, sniff.lines)
            matches = [m for m in parsed if m is not None]
            now = time.time()
            for match in matches:
                stamp = datetime.strptime(match["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
                self.assertLess(
                    abs(stamp.replace(tzinfo=UTC).timestamp() - now), 60, match["time"]
                )
                self.assertIn(match["type"], PacketType.__members__)
            self.assertIn(HEARTBEAT.name, {m["type"] for m in matches})

            # One line per packet: the data lines are the data client's
            # instrument packets, with the same times and payloads.
            delivered = data.of_type(DATA)
            lines = [m for m in matches if m["type"] == DATA.name]
            self.assertEqual(
                [(m["time"], m["payload"]) for m in lines],
                [
                    (format_utc(p.unix_time), escape_payload(p.payload))
                    for p in delivered
                ],
            )
            self.assertEqual("".join(m["payload"] for m in lines), escaped(sent))

        return run(go())


class CommandPortTests(TestCase):
    """
    The command port answers every line with exactly one line.
    """

    def test_everyCommand(self) -> Deferred[None]:
        """
        Each command, good or bad, gets one reply line, and the connection
        stays open: the replies are what each command promises.
        """

        async def go() -> None:
            instrument = await start_instrument(self)
            datalog = os.path.abspath(self.mktemp())
            agent = await start_agent(
                self,
                instrument,
                datalog_dir=datalog,
                heartbeat=0.2,
                disconnect_grace=LONG_GRACE,
            )
            await instrument.wait_for_connection(1)
            data = await connect(self, agent.ports["data"], PacketClient())
            await data.wait_for_count(HEARTBEAT, 2)
            command = await connect(self, agent.ports["command"], LineClient())
            commands = [
                "get_state",
                "get_config",
                "get_version",
                "ping",
                "get_stats",
                "break",
                "help",
                "",
                "frobnicate",
                "break abc",
                "heartbeat_interval 0",
            ]
            replies = [await command.ask(c) for c in commands]
            answers = dict(zip(commands, replies, strict=True))

            self.assertEqual(answers["get_state"], "CONNECTED")
            config = json.loads(answers["get_config"])
            self.assertEqual(config["name"], "TEST01")
            self.assertEqual(config["ports"], {**agent.ports, "da": agent.ports["raw"]})
            self.assertEqual(config["version"], __version__)
            self.assertEqual(answers["get_version"], __version__)
            self.assertEqual(answers["ping"], f"pong TEST01 {__version__}")
            stats = json.loads(answers["get_stats"])
            self.assertEqual(stats["state"], "CONNECTED")
            self.assertEqual(stats["clients"]["data"], 1)
            self.assertTrue(answers["break"].startswith("ERROR"), answers["break"])
            self.assertIn("cannot send a break", answers["break"])
            self.assertTrue(answers["help"].startswith("commands: get_state"))
            self.assertTrue(answers[""].startswith("ERROR empty command line"))
            self.assertTrue(
                answers["frobnicate"].startswith("ERROR unknown command 'frobnicate'")
            )
            self.assertTrue(answers["break abc"].startswith("ERROR break: 'abc'"))
            self.assertEqual(answers["heartbeat_interval 0"], "OK heartbeat_interval 0")

            # Heartbeats have stopped: none is stamped after the reply came.
            off = time.time()
            await elapse(1.0)
            self.assertEqual(
                [p for p in data.of_type(HEARTBEAT) if p.unix_time > off], []
            )

            before = recorded_files(datalog, "TEST01")
            reply = await command.ask("rotate")
            self.assertEqual(reply, f"OK rotated {before[-1]}")
            after = recorded_files(datalog, "TEST01")
            self.assertEqual(after[: len(before)], before)
            self.assertEqual(len(after), len(before) + 1)

            # Exactly one line per command: nothing extra has arrived, and
            # the connection is still open.
            self.assertEqual(await command.ask("ping"), f"pong TEST01 {__version__}")
            self.assertEqual(len(command.lines), len(commands) + 2)
            self.assertFalse(command.is_closed)

        return run(go())


class CommandHalfCloseTests(TestCase):
    """
    A client that shuts down its sending side (as C{nc -N} does) is
    answered every command it sent.
    """

    def test_halfCloseAnswered(self) -> None:
        """
        Commands followed by C{shutdown(SHUT_WR)} on a real socket each get
        their reply, a last one without a line end included, and then the
        agent closes the connection.
        """

        async def go() -> None:
            instrument = await start_instrument(self)
            agent = await start_agent(
                self, instrument, heartbeat=0, disconnect_grace=LONG_GRACE
            )
            await instrument.wait_for_connection(1)
            client = await connect(self, agent.ports["command"], ByteClient())
            assert client.transport is not None
            client.write(b"get_stats\nping\nget_version")
            # TCP's loseWriteConnection is shutdown(SHUT_WR) on the socket.
            client.transport.loseWriteConnection()  # type: ignore[attr-defined]
            await within(client.closed, "the agent to close the command connection")
            lines = bytes(client.received).decode().split("\n")
            self.assertEqual(len(lines), 4, lines)
            self.assertEqual(lines[3], "")
            self.assertEqual(json.loads(lines[0])["name"], "TEST01")
            self.assertEqual(lines[1], f"pong TEST01 {__version__}")
            self.assertEqual(lines[2], __version__)

        return run(go())

    def test_halfCloseAnsweredBehindToken(self) -> None:
        """
        The same with a token: the token line, the commands, then
        C{shutdown(SHUT_WR)}; every command is answered.
        """

        async def go() -> None:
            token = b"half-close-token-0123456789"
            token_file = os.path.abspath(self.mktemp())
            with open(token_file, "wb") as f:
                f.write(token + b"\n")
            instrument = await start_instrument(self)
            agent = await start_agent(
                self,
                instrument,
                heartbeat=0,
                disconnect_grace=LONG_GRACE,
                token_file=token_file,
            )
            client = await connect(self, agent.ports["command"], ByteClient())
            assert client.transport is not None
            client.write(token + b"\nping\nget_version\n")
            client.transport.loseWriteConnection()  # type: ignore[attr-defined]
            await within(client.closed, "the agent to close the command connection")
            self.assertEqual(
                bytes(client.received).decode(),
                f"pong TEST01 {__version__}\n{__version__}\n",
            )

        return run(go())


class ShutdownTests(TestCase):
    """
    SIGTERM shuts the agent down in order.
    """

    def test_sigterm(self) -> Deferred[None]:
        """
        On SIGTERM the agent exits 0, having removed its status file, and
        its datalog holds every byte the instrument sent, ending with a
        whole packet.
        """
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

        async def go() -> None:
            instrument = await start_instrument(self)
            datalog = os.path.abspath(self.mktemp())
            agent = await start_agent(
                self, instrument, datalog_dir=datalog, heartbeat=0.2
            )
            await instrument.wait_for_connection(1)
            client = await connect(self, agent.ports["data"], PacketClient())
            await registered(client)
            sent = noise(300000, 9)
            instrument.send(sent)
            await client.wait_for_data(len(sent))
            ended = agent.ended
            os.kill(agent.pid, signal.SIGTERM)
            self.assertEqual(await within(ended, "the agent to exit"), 0)
            [event] = [e for e in events if "status_file_left" in e]
            self.assertIs(event["status_file_left"], False)
            self.assertEqual(payloads(read_datalog(datalog), DATA), sent)

        return run(go())


def serial_endpoints_available() -> bool:
    """
    Whether the ``serial:`` client endpoint plugin is installed.
    """
    return any(
        getattr(parser, "prefix", None) == "serial"
        for parser in getPlugins(IStreamClientEndpointStringParserWithReactor)
    )


class BadOptionTests(TestCase):
    """
    Bad options make the agent exit non-zero, naming the option.
    """

    async def refused(self, **options: object) -> PortAgentLaunchError:
        """
        Launch an agent that must fail; return the launch error.
        """
        options.setdefault("instrument", "tcp:host=127.0.0.1:port=1")
        try:
            agent = await launch_port_agent(
                name="BAD01",
                datalog_dir=os.path.abspath(self.mktemp()),
                reactor=reactor,
                **options,  # type: ignore[arg-type]
            )
        except PortAgentLaunchError as e:
            self.assertEqual(e.reason, "exited before it was ready")
            self.assertNotEqual(e.exit_code, 0)
            return e
        await agent.stop()
        raise AssertionError(f"the agent started with {options}")

    def test_unknownEndpointType(self) -> Deferred[None]:
        """
        An instrument endpoint of an unknown type.
        """

        async def go() -> None:
            error = await self.refused(instrument="bogus:x")
            self.assertIn(
                "--instrument: 'bogus:x': unknown endpoint type 'bogus'",
                error.stdout_tail,
            )

        return run(go())

    def test_badSerialBaudRate(self) -> Deferred[None]:
        """
        A serial instrument endpoint with a baud rate that is not a number.
        """
        if not serial_endpoints_available():
            raise SkipTest("the serial: endpoint plugin is not installed")

        async def go() -> None:
            error = await self.refused(instrument="serial:/dev/null:baudrate=abc")
            self.assertIn(
                "--instrument: 'serial:/dev/null:baudrate=abc': serial: "
                "baudrate='abc' is not valid",
                error.stdout_tail,
            )

        return run(go())

    def test_negativeHeartbeat(self) -> Deferred[None]:
        """
        A negative heartbeat interval.
        """

        async def go() -> None:
            error = await self.refused(heartbeat=-1)
            self.assertIn(
                "--heartbeat: '-1' is out of range; valid: 0 (off), or 0.1 to "
                "86400 seconds",
                error.stdout_tail,
            )

        return run(go())

    def test_unknownRotation(self) -> Deferred[None]:
        """
        A rotation that is not daily, hourly or none.
        """

        async def go() -> None:
            error = await self.refused(rotate="weekly")
            self.assertIn(
                "--rotate: 'weekly' is not one of daily, hourly, none",
                error.stdout_tail,
            )

        return run(go())

    def test_dataPortInUse(self) -> Deferred[None]:
        """
        A data port that something else is listening on.
        """

        async def go() -> None:
            factory = Factory.forProtocol(Protocol)
            taken = reactor.listenTCP(0, factory, interface="127.0.0.1")
            self.addCleanup(taken.stopListening)
            port = taken.getHost().port
            description = f"tcp:{port}:interface=127.0.0.1"
            error = await self.refused(data_port=description)
            self.assertIn(
                f"cannot listen for data clients on {description} (--data-port)",
                error.stdout_tail,
            )
            self.assertIn("Address already in use", error.stdout_tail)

        return run(go())
