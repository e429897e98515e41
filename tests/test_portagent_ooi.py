"""
OOI software against real port agents (``twistd`` child processes), doing
what OOI's driver client does: it reads everything from the data port,
sends each command on a command connection that it closes at once without
reading a reply, and builds a direct-access address from ``get_config``.
Also: a recording replayed once (and only once) or in a loop, and the
C{get_stats} count of command connections.

The unit tests of L{instrumentd.portagent.ooiconfig} are here too.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

from twisted.internet.address import IPv4Address, UNIXAddress
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.trial.unittest import SynchronousTestCase, TestCase

from instrumentd import __version__
from instrumentd.packet import Packet, PacketType, encode_packet, unix_to_ntp
from instrumentd.portagent.ooiconfig import ooi_fields
from tests.agentsupport import (
    ByteClient,
    LineClient,
    PacketClient,
    connect,
    payloads,
    reactor,
    read_datalog,
    run,
    start_agent,
    start_instrument,
    within,
)

DATA = PacketType.DATA_FROM_INSTRUMENT
STATUS = PacketType.PORT_AGENT_STATUS
FAULT = PacketType.PORT_AGENT_FAULT
CONFIG = PacketType.PORT_AGENT_CONFIG
HEARTBEAT = PacketType.PORT_AGENT_HEARTBEAT

#: Seconds an instrument must stay away before DISCONNECTED is announced.
LONG_GRACE = 30.0


async def ooi_command(port: int | str | None, command: str) -> None:
    """
    Send one command the way OOI's driver client does: connect, write the
    line, close, never read.
    """
    client = LineClient()
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)  # type: ignore[arg-type]
    await within(connectProtocol(endpoint, client), "a command connection")
    client.write(command.encode() + b"\n")
    await client.disconnect()


def json_config(packet: Packet) -> dict[str, Any] | None:
    """
    The payload of a PORT_AGENT_CONFIG packet as a JSON object, or
    C{None} (the version text comes as a config packet too).
    """
    try:
        value = json.loads(packet.payload)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class DirectAccessTests(TestCase):
    """
    C{get_config} carries the keys OOI's agent sent, so an OOI driver finds
    the direct-access port.
    """

    def test_directAccessFromConfig(self) -> Deferred[None]:
        """
        An OOI driver asks C{get_config} on a command connection it closes
        at once, reads the PORT_AGENT_CONFIG packet from the data port, and
        takes C{host}, C{ports["da"]} and C{ports["sniff"]} from it (as
        C{mi-instrument}'s C{_get_direct_config} does).  That address is the
        raw port: the instrument's bytes arrive bare, and what the operator
        types reaches the instrument.  C{refdes}, C{type}, C{instaddr} and
        C{instport} describe the agent and its instrument as OOI's did.
        """

        async def go() -> None:
            instrument = await start_instrument(self)
            agent = await start_agent(
                self, instrument, heartbeat=0.2, disconnect_grace=LONG_GRACE
            )
            await instrument.wait_for_connection(1)
            driver = await connect(self, agent.ports["data"], PacketClient())
            await driver.wait_for_count(HEARTBEAT, 1)
            await ooi_command(agent.ports["command"], "get_config")
            await driver.wait_for_packet(CONFIG, lambda p: json_config(p) is not None)
            [config] = [
                c for c in map(json_config, driver.of_type(CONFIG)) if c is not None
            ]

            host = config.get("host")
            da = config.get("ports", {}).get("da")
            sniff = config.get("ports", {}).get("sniff")
            self.assertTrue(all((host, da, sniff)), config)
            self.assertEqual(host, "127.0.0.1")
            self.assertEqual(da, agent.ports["raw"])
            self.assertEqual(sniff, agent.ports["sniff"])
            self.assertEqual(config["refdes"], "TEST01")
            self.assertEqual(config["type"], "tcp")
            self.assertEqual(config["instaddr"], "127.0.0.1")
            self.assertEqual(config["instport"], instrument.port)
            # Ours are still there beside OOI's.
            self.assertEqual(config["name"], "TEST01")
            self.assertEqual(config["ports"]["data"], agent.ports["data"])

            operator = ByteClient()
            await within(
                connectProtocol(TCP4ClientEndpoint(reactor, host, da), operator),
                "a connection to the direct-access address",
            )
            self.addCleanup(operator.disconnect)
            instrument.send(b"S>")
            await operator.wait_for_bytes(b"S>")
            self.assertEqual(bytes(operator.received), b"S>")
            operator.write(b"ds\r")
            await instrument.wait_for_received(b"ds\r")

        return run(go())


class FaultTests(TestCase):
    """
    A command the agent refuses is also a PORT_AGENT_FAULT on the data port,
    which is all an OOI driver reads.
    """

    def test_refusedCommandsAreFaults(self) -> Deferred[None]:
        """
        An unknown command and a C{break} on a TCP link, each sent on a
        command connection closed at once, reach data clients as faults
        saying what was refused; so does any other refusal.  A command
        client that does read gets its ERROR reply as before.
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
            driver = await connect(self, agent.ports["data"], PacketClient())
            await driver.wait_for_count(HEARTBEAT, 1)

            await ooi_command(agent.ports["command"], "frobnicate")
            await driver.wait_for_packet(FAULT, lambda p: b"frobnicate" in p.payload)
            await ooi_command(agent.ports["command"], "break 100")
            await driver.wait_for_packet(FAULT, lambda p: b"break" in p.payload)
            command = await connect(self, agent.ports["command"], LineClient())
            reply = await command.ask("heartbeat_interval fast")
            self.assertTrue(reply.startswith("ERROR heartbeat_interval"), reply)
            await driver.wait_for_count(FAULT, 3)

            faults = [p.payload.decode() for p in driver.of_type(FAULT)]
            self.assertTrue(
                faults[0].startswith(
                    "command port: unknown command 'frobnicate'; valid commands: "
                    "get_state, get_config"
                ),
                faults[0],
            )
            self.assertEqual(
                faults[1],
                f"command port: break: the instrument link {instrument.endpoint} "
                "cannot send a break (only serial links can)",
            )
            self.assertEqual(faults[2], "command port: " + reply.removeprefix("ERROR "))

            # Good commands make no fault; the faults are in the datalog.
            self.assertEqual(await command.ask("ping"), f"pong TEST01 {__version__}")
            self.assertEqual(await within(agent.stop(), "the agent to stop"), 0)
            logged = read_datalog(datalog)
            self.assertEqual(
                [p.payload.decode() for p in logged if p.type is FAULT], faults
            )

        return run(go())


def write_recording(path: Path, reads: list[bytes]) -> None:
    """
    A datalog of instrument reads, a second apart, with a status and a
    heartbeat that a replay does not deliver.
    """
    t0 = 1_795_500_000.0
    packets = [encode_packet(STATUS, b"CONNECTED", *unix_to_ntp(t0))]
    for i, data in enumerate(reads):
        packets.append(encode_packet(DATA, data, *unix_to_ntp(t0 + i)))
    packets.append(encode_packet(HEARTBEAT, b"HB", *unix_to_ntp(t0 + len(reads))))
    path.write_bytes(b"".join(packets))


READS = [b"# 11.0123,  3.81234,   10.101\r\n", b"# 11.0200,  3.81301,   10.090\r\n"] * 5


class ReplayTests(TestCase):
    """
    A C{datalog:} instrument is replayed once, then the link is reported as
    ended and never reconnected: reprocessing a recording does not duplicate
    its data.  C{loop=true} repeats it.
    """

    def test_playedOnce(self) -> Deferred[None]:
        """
        Every recorded read is recorded again exactly once, in order; the
        link then ends, data clients are told (DISCONNECTED at once and a
        fault saying why), C{get_stats} says so, and many reconnect delays
        later nothing has been replayed again.
        """

        async def go() -> None:
            recording = Path(self.mktemp())
            write_recording(recording, READS)
            datalog = os.path.abspath(self.mktemp())
            agent = await start_agent(
                self,
                f"datalog:{recording}:speed=0",
                datalog_dir=datalog,
                heartbeat=0.1,
                max_reconnect_delay=0.1,
                disconnect_grace=LONG_GRACE,
            )
            driver = await connect(self, agent.ports["data"], PacketClient())
            await driver.wait_for_count(HEARTBEAT, 1)
            command = await connect(self, agent.ports["command"], LineClient())
            stats = json.loads(await command.ask("get_stats"))
            if stats["link"]["ended"] is None:
                # Still playing: our data client, registered before we asked,
                # will hear the end.
                await driver.wait_for_packet(FAULT, lambda p: b"ended" in p.payload)
            # Twenty heartbeats: far longer than the 0.1 s reconnect cap (and
            # its jitter), had the agent gone on reconnecting.
            beats = len(driver.of_type(HEARTBEAT))
            await driver.wait_for_count(HEARTBEAT, beats + 20)

            stats = json.loads(await command.ask("get_stats"))
            self.assertEqual(
                stats["link"]["ended"],
                "end of the recording (played once; loop=true repeats it)",
            )
            self.assertEqual(stats["state"], "DISCONNECTED")
            self.assertFalse(stats["link_up"])
            self.assertEqual(stats["instrument"]["connects"], 1)
            self.assertEqual(stats["instrument"]["reads_in"], len(READS))
            self.assertEqual(
                stats["packets_by_type"]["DATA_FROM_INSTRUMENT"], len(READS)
            )
            self.assertEqual(await command.ask("get_state"), "DISCONNECTED")

            self.assertEqual(await within(agent.stop(), "the agent to stop"), 0)
            logged = read_datalog(datalog)
            self.assertEqual(payloads(logged, DATA), b"".join(READS))
            self.assertEqual(
                [p.payload for p in logged if p.type is STATUS],
                [b"CONNECTED", b"DISCONNECTED", b"DISCONNECTED"],
            )
            [fault] = [p.payload.decode() for p in logged if p.type is FAULT]
            self.assertRegex(
                fault,
                r"^instrument link ended at \S+Z: end of the recording \(played "
                r"once; loop=true repeats it\); not reconnecting$",
            )

        return run(go())

    def test_loop(self) -> Deferred[None]:
        """
        With C{loop=true} the recording plays again and again on one link
        that stays up.
        """

        async def go() -> None:
            recording = Path(self.mktemp())
            write_recording(recording, READS)
            agent = await start_agent(
                self,
                f"datalog:{recording}:speed=20:loop=true",
                heartbeat=0.1,
                max_reconnect_delay=0.1,
                disconnect_grace=LONG_GRACE,
            )
            driver = await connect(self, agent.ports["data"], PacketClient())
            # At 20 times the recorded pace a pass takes half a second: wait
            # for more than two passes' worth of reads.
            await driver.wait_for_data(len(b"".join(READS)) * 2 + 1)
            command = await connect(self, agent.ports["command"], LineClient())
            stats = json.loads(await command.ask("get_stats"))
            self.assertIsNone(stats["link"]["ended"])
            self.assertTrue(stats["link_up"])
            self.assertEqual(stats["instrument"]["connects"], 1)
            self.assertEqual(driver.of_type(STATUS), [])
            self.assertEqual(driver.of_type(FAULT), [])

        return run(go())


class CommandClientCountTests(TestCase):
    """
    C{get_stats} C{clients.command} counts the command connections open now,
    the one asking included; C{clients_served.command} all there have been.
    """

    def test_commandConnectionsCounted(self) -> Deferred[None]:
        """
        Two command connections count two; after one has been answered and
        closed (it half-closed, so the agent closed it), one.
        """

        async def go() -> None:
            instrument = await start_instrument(self)
            agent = await start_agent(self, instrument, disconnect_grace=LONG_GRACE)
            first = await connect(self, agent.ports["command"], LineClient())
            second = await connect(self, agent.ports["command"], LineClient())
            await first.ask("ping")
            stats = json.loads(await second.ask("get_stats"))
            self.assertEqual(stats["clients"]["command"], 2)
            self.assertEqual(stats["clients_served"]["command"], 2)
            first.sendLine(b"ping")  # type: ignore[no-untyped-call]
            assert first.transport is not None
            first.transport.loseWriteConnection()  # type: ignore[attr-defined]
            await within(first.closed, "the agent to close the first connection")
            stats = json.loads(await second.ask("get_stats"))
            self.assertEqual(stats["clients"]["command"], 1)
            self.assertEqual(stats["clients_served"]["command"], 2)

        return run(go())


class _Port:
    """
    Just enough of an L{IListeningPort} for L{ooi_fields}.
    """

    def __init__(self, address: object) -> None:
        self.address = address

    def getHost(self) -> object:
        return self.address


class OOIFieldsTests(SynchronousTestCase):
    """
    L{ooi_fields} names the instrument, its link and the agent's ports as
    OOI's port agent did.
    """

    NUMBERS = {"data": 4101, "command": 4102, "sniff": 4103, "raw": 4104}

    def fields(self, instrument: str, **listening: Any) -> dict[str, object]:
        return ooi_fields("CTD01", instrument, self.NUMBERS, listening)

    def test_tcp(self) -> None:
        """
        A TCP link gives its host and port, in either spelling.
        """
        for description in ("tcp:host=10.0.0.5:port=4001", "tcp:10.0.0.5:4001"):
            fields = self.fields(description)
            self.assertEqual(
                (
                    fields["refdes"],
                    fields["type"],
                    fields["instaddr"],
                    fields["instport"],
                ),
                ("CTD01", "tcp", "10.0.0.5", 4001),
            )
        fields = self.fields(r"tcp6:host=\:\:1:port=4001")
        self.assertEqual((fields["instaddr"], fields["instport"]), ("::1", 4001))

    def test_splitAsTwisted(self) -> None:
        """
        An endpoint string splits into the positional and keyword parts
        Twisted's grammar reads, escaped or not.
        """
        from twisted.internet.endpoints import _parse

        from instrumentd.portagent.ooiconfig import _split

        for description in (
            "tcp:host=10.0.0.5:port=4001",
            "tcp:10.0.0.5:4001",
            "tcp:host=a:port=1:timeout=3=4",
            "serial:/dev/ttyUSB0:baudrate=9600",
            "tls:host=h:port=1:trustRoots=x=y:",
            "a::b=:=c",
            "",
            r"tcp6:host=\:\:1:port=4001",
            r"serial:/dev/serial/by-path/pci-0\:1:baudrate=9600",
        ):
            args, kwargs = _parse(description)
            self.assertEqual(_split(description), (args, kwargs), description)

    def test_otherLinks(self) -> None:
        """
        A serial link gives its device, a recording its files, with no port.
        """
        fields = self.fields(r"serial:/dev/serial/by-path/pci-0\:1:baudrate=9600")
        self.assertEqual(
            (fields["type"], fields["instaddr"], fields["instport"]),
            ("serial", "/dev/serial/by-path/pci-0:1", None),
        )
        fields = self.fields("datalog:a.datalog,b.datalog:speed=0")
        self.assertEqual(
            (fields["type"], fields["instaddr"], fields["instport"]),
            ("datalog", "a.datalog,b.datalog", None),
        )

    def test_ports(self) -> None:
        """
        The raw port is also C{da}; without a TCP raw port, C{da} is null.
        """
        fields = self.fields("tcp:h:1")
        self.assertEqual(fields["ports"], {**self.NUMBERS, "da": 4104})
        numbers = {**self.NUMBERS, "raw": None}
        fields = ooi_fields("CTD01", "tcp:h:1", numbers, {})
        self.assertEqual(fields["ports"], {**numbers, "da": None})
        self.assertIsNone(fields["host"])

    def test_host(self) -> None:
        """
        C{host} is where the raw (else the data) listener is bound, or this
        machine's name when it listens on every interface; nothing for
        UNIX sockets.
        """
        loopback = _Port(IPv4Address("TCP", "127.0.0.1", 4104))
        anywhere = _Port(IPv4Address("TCP", "0.0.0.0", 4101))
        unix = _Port(UNIXAddress(b"/run/ctd.sock"))
        self.assertEqual(self.fields("tcp:h:1", raw=[loopback])["host"], "127.0.0.1")
        self.assertEqual(
            self.fields("tcp:h:1", raw=[unix], data=[anywhere])["host"],
            socket.gethostname(),
        )
        self.assertIsNone(self.fields("tcp:h:1", raw=[unix])["host"])
