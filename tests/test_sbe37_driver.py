"""
Tests for the SBE 37-SMP driver (:mod:`instrumentd.instruments.seabird.sbe37smp`),
deterministic: the driver and the SBE 37 simulator in one process on a
``Clock``, joined by ``twisted.test.iosim``.

The real parts (a port agent process, TCP and a pty) are in
``tests.test_sbe37_e2e``.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from instrumentd.driver.chunker import Chunker
from instrumentd.driver.errors import (
    InstrumentParameterError,
    InstrumentProtocolError,
    InstrumentStateError,
)
from instrumentd.driver.events import (
    ConfigChangeEvent,
    DirectAccessEvent,
    ErrorEvent,
    ResultEvent,
    StateChangeEvent,
)
from instrumentd.driver.particles import ntp_from_unix
from instrumentd.driver.readers import time_reader
from instrumentd.instruments.seabird.sbe37smp import (
    SBE37CalibrationParticle,
    SBE37Protocol,
    SBE37SampleParticle,
    SBE37StatusParticle,
)
from instrumentd.instruments.seabird.sbe37smp.parameters import (
    CALIBRATION,
    SETTINGS,
)
from instrumentd.instruments.seabird.sbe37smp.particles import (
    SAMPLE_SIEVE,
    SIEVES,
    read_instrument_time,
)
from instrumentd.instruments.seabird.sbe37smp.simulator import (
    CAPACITY,
    Mode,
    SBE37Simulator,
)
from instrumentd.interfaces import IInstrumentConnection
from instrumentd.simulator import SimulatorSettings
from instrumentd.testing import DriverBench, undeclared_fields

T = TypeVar("T")

#: The instrument's clock at start: the spec's DS example.
INSTRUMENT_START = datetime(2013, 2, 5, 19, 11, 43, tzinfo=UTC).timestamp()
#: The host's clock at start (UTC), a quarter second past a whole second.
HOST_START = 1_700_000_000.25

#: The spec's sample examples.
SPEC_SAMPLES = [
    b"# 12.3456,  3.51234,   10.123,  33.9876, 1497.432, 05 Feb 2013, 19:16:59\r\n",
    b"# 12.3391,  3.51187,   10.131,  33.9871, 1497.415, 05 Feb 2013, 19:17:04\r\n",
    b"#  9.8712,  3.28811,   25.506\r\n",
]

COMMAND_CAPABILITIES = [
    "acquire_calibration",
    "acquire_sample",
    "acquire_status",
    "apply_startup",
    "clock_sync",
    "get",
    "set",
    "start_autosample",
    "start_direct",
]
AUTOSAMPLE_CAPABILITIES = [
    "acquire_calibration",
    "acquire_sample",
    "acquire_status",
    "clock_sync",
    "get",
    "stop_autosample",
]


class Bench(DriverBench):
    """
    A driver and a simulated SBE 37 on one clock
    (L{instrumentd.testing.DriverBench}), the instrument's clock at the
    spec's example time.
    """

    def __init__(
        self,
        *,
        awake: bool = False,
        protocol: type[SBE37Protocol] = SBE37Protocol,
        init_config: dict[str, object] | None = None,
        **settings: Any,
    ) -> None:
        clock = Clock()
        clock.advance(HOST_START)
        options: dict[str, Any] = {"start_time": INSTRUMENT_START}
        options.update(settings)
        self.sbe37 = SBE37Simulator(
            SimulatorSettings(**options), reactor=clock, awake=awake
        )
        super().__init__(protocol, self.sbe37, clock, init_config=init_config)

    def connect(self, until: str = "COMMAND", limit: float = 20.0) -> None:
        """
        Connect and let the protocol discover the instrument.
        """
        super().connect(until, limit)


def values(particle: Any) -> dict[str, object]:
    """
    A particle's values as a dict.
    """
    return {entry["value_id"]: entry["value"] for entry in particle.values}


def states(bench: Bench) -> list[str]:
    """
    The protocol states announced, in order.
    """
    return [event.state for event in bench.of_type(StateChangeEvent)]


def bench_for(test: SynchronousTestCase, **options: Any) -> Bench:
    """
    A bench closed when the test ends.
    """
    bench = Bench(**options)
    test.addCleanup(bench.close)
    return bench


def in_command(test: SynchronousTestCase, **options: Any) -> Bench:
    """
    A bench whose driver has found the instrument in command mode.
    """
    bench = bench_for(test, **options)
    bench.connect()
    return bench


def start_logging(bench: Bench) -> None:
    """
    Start autosample through the driver.
    """
    started = bench.wait(bench.driver.execute_resource("start_autosample"))
    assert started.called and bench.state == "AUTOSAMPLE", bench.state


class SampleParticleTests(SynchronousTestCase):
    """
    Sample lines as C{ctdpf_sample} particles.
    """

    def test_specExamples(self) -> None:
        """
        The spec's lines give temperature, conductivity, pressure, salinity,
        sound velocity and the instrument's time (the internal timestamp);
        the port timestamp is the one given.
        """
        first = SBE37SampleParticle(
            SPEC_SAMPLES[0], port_timestamp=3.5e9, driver_timestamp=3.6e9
        )
        self.assertEqual(
            values(first),
            {
                "temperature": 12.3456,
                "conductivity": 3.51234,
                "pressure": 10.123,
                "salinity": 33.9876,
                "sound_velocity": 1497.432,
                "specific_conductivity": None,
                "instrument_time": datetime(2013, 2, 5, 19, 16, 59, tzinfo=UTC),
                "sample_number": None,
            },
        )
        self.assertEqual(
            first.internal_timestamp,
            ntp_from_unix(datetime(2013, 2, 5, 19, 16, 59, tzinfo=UTC).timestamp()),
        )
        self.assertEqual(first.port_timestamp, 3.5e9)
        self.assertEqual(first.stream_name, "ctdpf_sample")
        bare = SBE37SampleParticle(SPEC_SAMPLES[2], driver_timestamp=1.0)
        self.assertEqual(
            values(bare),
            {
                "temperature": 9.8712,
                "conductivity": 3.28811,
                "pressure": 25.506,
                "salinity": None,
                "sound_velocity": None,
                "specific_conductivity": None,
                "instrument_time": None,
                "sample_number": None,
            },
        )
        self.assertIsNone(bare.internal_timestamp)

    def test_oneDerivedColumn(self) -> None:
        """
        With only one of OUTPUTSAL and OUTPUTSV on, the column is told by
        its decimals: four for salinity, three for sound velocity.
        """
        salinity = SBE37SampleParticle(
            b" 9.8712,  3.28811,   25.506,  33.9876\r\n", driver_timestamp=1.0
        )
        self.assertEqual(values(salinity)["salinity"], 33.9876)
        self.assertIsNone(values(salinity)["sound_velocity"])
        velocity = SBE37SampleParticle(
            b" 9.8712,  3.28811,   25.506, 1497.432\r\n", driver_timestamp=1.0
        )
        self.assertEqual(values(velocity)["sound_velocity"], 1497.432)
        self.assertIsNone(values(velocity)["salinity"])

    def test_json(self) -> None:
        """
        The particle's JSON form has the stream, both timestamps and the
        instrument time as ISO 8601 text.
        """
        particle = SBE37SampleParticle(
            SPEC_SAMPLES[0], port_timestamp=3.5e9, driver_timestamp=3.6e9
        )
        data = json.loads(particle.to_json())
        self.assertEqual(data["stream_name"], "ctdpf_sample")
        self.assertEqual(data["port_timestamp"], 3.5e9)
        self.assertIn("internal_timestamp", data)
        self.assertEqual(data["values"][6]["value"], "2013-02-05T19:16:59+00:00")

    def test_notSamples(self) -> None:
        """
        Raw counts (TSR), self-test readings, dump lines, a line without
        its CR LF and numbers run on from other text are not samples.
        """
        for line in [
            b" 64836025,  5467.212,   333.474\r\n",
            b" 12.3456\r\n",
            b"sample interval = 15 seconds\r\n",
            b"# 12.3456,  3.51234,   10.1",
            b"x 12.3456,  3.51234,   10.123\r\n",
            b"# 12.3456,  3.51234\r\n",
        ]:
            self.assertFalse(SBE37SampleParticle.matches(line), line)


def chunk(stream: bytes, cuts: list[int]) -> list[Any]:
    """
    Feed C{stream} to a chunker with the SBE 37's sieves, cut at C{cuts},
    each piece stamped with its index; return the records.
    """
    chunker = Chunker(SIEVES)
    records = []
    edges = sorted({0, len(stream), *(c for c in cuts if 0 < c < len(stream))})
    for index, (start, end) in enumerate(itertools.pairwise(edges)):
        chunker.add_chunk(stream[start:end], float(index))
        records.extend(chunker.take_records())
    return records


def simulator_output(*commands: bytes, low_battery: bool = False) -> bytes:
    """
    What an awake simulator prints for C{commands} (echo included).
    """
    clock = Clock()
    sbe37 = SBE37Simulator(
        SimulatorSettings(start_time=INSTRUMENT_START), reactor=clock, awake=True
    )
    sbe37.low_battery = low_battery
    output: list[bytes] = []

    class _Collect:
        def write(self, data: bytes) -> None:
            output.append(data)

    sbe37.line.attach(_Collect())  # type: ignore[arg-type]
    for command in commands:
        sbe37.data_received(command)
        clock.advance(2)
    sbe37.stop()
    return b"".join(output)


def _as_read(read: Callable[[str], datetime], text: str) -> object:
    try:
        return read(text)
    except ValueError as error:
        return str(error)


class InstrumentTimeTests(SynchronousTestCase):
    """
    The instrument's time, read through its dates remembered, reads as the
    general time reader reads it.
    """

    @settings(max_examples=400, deadline=None)
    @given(
        st.lists(
            # Times a few minutes apart, in one of which all the seconds
            # fall: the minute remembered is met often.
            st.builds(
                lambda minute, second: minute + second,
                st.sampled_from(
                    [
                        *("05 Feb 2013, 19:16:", " 5 Feb 2013  09:59:"),
                        *("05 Feb 2013, 24:00:", "31 Feb 2013, 00:00:"),
                    ]
                ),
                st.sampled_from(
                    ["00", "59", "60", "61", "5", "\u0665\u0669", "x1", " 1", "1 "]
                ),
            )
            | st.builds(
                lambda day, month, year, sep, h, m, sec, tail: (
                    f"{day} {month} {year}{sep}{h}:{m}:{sec}{tail}"
                ),
                st.sampled_from(["05", "5", "31", "30", "\u0660\u0665"]),
                st.sampled_from(["Feb", "feb", "Jan", "Foo"]),
                st.sampled_from(["2013", "2012", "201"]),
                st.sampled_from([", ", "  ", ",", " ,  ", ", \t"]),
                st.sampled_from(
                    ["19", "9", "00", "23", "24", "\u0660\u0669", "x9", "\u00b2"]
                ),
                st.sampled_from(["16", "59", "60", "1", "\u0665\u0669"]),
                st.sampled_from(["59", "00", "61", "5"]),
                st.sampled_from(["", " ", "x"]),
            ),
            max_size=12,
        )
    )
    def test_asGeneral(self, texts: list[str]) -> None:
        """
        Times and near misses, in any order (dates remembered or not), give
        the general reader's time or its error.
        """
        general = time_reader(
            r"\s*(?P<day>\d{1,2}) (?P<month>[A-Za-z]{3}) (?P<year>\d{4}),?\s+"
            r"(?P<hour>\d{1,2}):(?P<minute>\d{2}):(?P<second>\d{2})\s*",
            example="05 Feb 2013, 19:16:59",
        )
        for text in texts:
            self.assertEqual(
                _as_read(read_instrument_time, text), _as_read(general, text), text
            )


class ChunkerTests(SynchronousTestCase):
    """
    The SBE 37's records in the byte stream: complete only at their end,
    found among prompts, echoes and noise.
    """

    def test_cutLineWaits(self) -> None:
        """
        A sample line cut short in transit is not a record until its CR LF
        arrives; then it is one record, read in full, stamped with its
        first piece's time.
        """
        line = SPEC_SAMPLES[0]
        cut = line.index(b"10.1") + 4
        chunker = Chunker(SIEVES)
        chunker.add_chunk(b"S>" + line[:cut], 7.0)
        self.assertEqual(chunker.take_records(), [])
        chunker.add_chunk(line[cut:], 9.0)
        [record] = chunker.take_records()
        self.assertEqual(record.data, line)
        self.assertEqual(record.timestamp, 7.0)
        self.assertEqual(
            values(SBE37SampleParticle(record.data, driver_timestamp=1.0))["pressure"],
            10.123,
        )

    def test_amongPromptsEchoesNoise(self) -> None:
        """
        Samples after a prompt, after a character of echo, after garbage,
        and a polled sample after its command's echo are found; the rest is
        noise.
        """
        polled = b" 11.0000,  3.50000,   10.000\r\n"
        stream = (
            b"DS\r\n\x00\xff\xfe"
            + b"\r\nS>"
            + SPEC_SAMPLES[0]
            + b"D"
            + SPEC_SAMPLES[1]
            + b"S\r\n\x13garbage"
            + SPEC_SAMPLES[2]
            + b"TS\r\n"
            + polled
            + b"\r\nS>"
        )
        records = chunk(stream, list(range(0, len(stream), 7)))
        self.assertEqual(
            [r.data for r in records],
            [*SPEC_SAMPLES[:2], SPEC_SAMPLES[2], polled],
        )

    @settings(max_examples=150, deadline=None)
    @given(
        st.lists(
            st.one_of(
                st.sampled_from(SPEC_SAMPLES),
                st.sampled_from([b"\r\nS>", b"DS\r\n", b"TS\r\n", b"S>", b"?cmd S>"]),
                st.binary(max_size=12).map(
                    lambda junk: bytes(b for b in junk if b not in b"#\r\n>0123456789")
                ),
            ),
            max_size=25,
        ),
        st.lists(st.integers(min_value=0, max_value=2000), max_size=40),
    )
    def test_anyChunking(self, pieces: list[bytes], cuts: list[int]) -> None:
        """
        However the stream is cut, among prompts, echoes and junk (junk
        without digits, line ends, prompts or C{#}), exactly the sample lines
        come out, whole and in order.
        """
        stream = b"".join(pieces)
        records = chunk(stream, cuts)
        self.assertEqual(
            [r.data for r in records], [p for p in pieces if p in SPEC_SAMPLES]
        )

    @settings(max_examples=400, deadline=None)
    @given(
        st.lists(
            st.sampled_from(
                [
                    *(b"#", b" ", b"-", b"1", b"23", b".", b"45", b",", b", "),
                    *(b"\r\n", b"\n", b">", b"S>", b"05 Feb 2013", b" 19:16:59"),
                    *(b":", b"Feb"),
                ]
            )
            | st.sampled_from(SPEC_SAMPLES),
            max_size=30,
        ).map(b"".join)
    )
    def test_sieveAsBacktracking(self, stream: bytes) -> None:
        """
        The sample sieve (possessive, for speed) finds exactly the spans its
        backtracking form finds, in any mix of sample lines and their parts.
        """
        backtracking = re.compile(
            rb"(?:#|(?<![^\n>])) *-?\d+\.\d+(?:, *-?\d+\.\d+)+"
            rb"(?:, *\d{1,2} [A-Za-z]{3} \d{4}, *\d{1,2}:\d\d:\d\d)?(?:, *\d+)?\r\n"
        )
        self.assertEqual(
            [m.span() for m in SAMPLE_SIEVE.finditer(stream)],
            [m.span() for m in backtracking.finditer(stream)],
        )

    def test_statusWaitsForItsEnd(self) -> None:
        """
        A status dump is a record only once the reply's end has begun, so an
        optional low-battery warning after its last line is part of it.
        """
        output = simulator_output(b"DS\r\n", low_battery=True)
        warning = output.index(b"WARNING")
        chunker = Chunker(SIEVES)
        chunker.add_chunk(output[:warning], 1.0)
        self.assertEqual(chunker.take_records(), [])
        chunker.add_chunk(output[warning:-4], 2.0)
        self.assertEqual(chunker.take_records(), [])
        chunker.add_chunk(output[-4:], 3.0)
        [record] = chunker.take_records()
        particle = SBE37StatusParticle(record.data, driver_timestamp=1.0)
        self.assertTrue(values(particle)["low_battery"])

    def test_dumpsByteByByte(self) -> None:
        """
        The simulator's DS, DC and TS output, a byte at a time, gives one
        status, one calibration and one sample record.
        """
        output = simulator_output(b"DS\r\n", b"DC\r\n", b"TS\r\n")
        records = chunk(output, list(range(len(output))))
        kinds = [
            [
                cls.stream_name
                for cls in (
                    SBE37SampleParticle,
                    SBE37StatusParticle,
                    SBE37CalibrationParticle,
                )
                if cls.matches(r.data)
            ]
            for r in records
        ]
        self.assertEqual(
            kinds, [["ctdpf_status"], ["ctdpf_calibration"], ["ctdpf_sample"]]
        )


class DumpParticleTests(SynchronousTestCase):
    """
    The status and calibration dumps as particles.
    """

    def test_status(self) -> None:
        """
        Every item of the status dump is a value; the instrument's clock is
        the internal timestamp.
        """
        output = simulator_output(b"DS\r\n")
        start = output.index(b"SBE37-SMP")
        particle = SBE37StatusParticle(output[start:], driver_timestamp=1.0)
        found = values(particle)
        self.assertEqual(found["serial_number"], "2165")
        self.assertEqual(found["firmware_version"], "2.6")
        self.assertIs(found["logging"], False)
        self.assertEqual(found["logging_status"], "not logging: received stop command")
        self.assertEqual(found["sample_interval"], 15)
        self.assertEqual(found["sample_number"], 0)
        self.assertEqual(found["memory_free"], CAPACITY)
        for flag in ("tx_realtime", "output_salinity", "store_time", "pump_installed"):
            self.assertIs(found[flag], True, flag)
        self.assertIs(found["serial_sync_mode"], False)
        self.assertIs(found["low_battery"], False)
        self.assertEqual(found["reference_pressure"], 0.0)
        self.assertEqual(particle.internal_timestamp, ntp_from_unix(INSTRUMENT_START))

    def test_calibration(self) -> None:
        """
        Every coefficient of the calibration dump is a value, named as its
        parameter in lower case.
        """
        output = simulator_output(b"DC\r\n")
        particle = SBE37CalibrationParticle(
            output[output.index(b"SBE37-SM") :], driver_timestamp=1.0
        )
        found = values(particle)
        self.assertEqual(found["ta0"], -2.572242e-04)
        self.assertEqual(found["cg"], -9.870930e-01)
        self.assertEqual(found["ptcb0"], 2.461450e01)
        self.assertEqual(found["rtca2"], -3.022745e-08)
        self.assertEqual(found["pcaldate"], "12-aug-05")
        self.assertEqual(found["pressure_range"], 10847.1964958)
        self.assertEqual(
            {name.lower() for name in CALIBRATION} - set(found), set(), found
        )


class DiscoveryTests(SynchronousTestCase):
    """
    Finding out what the instrument is doing, by itself, each time the link
    comes up.
    """

    def test_commandOnLinkUp(self) -> None:
        """
        With no request, the protocol wakes the sleeping instrument (a bare
        CR LF first), reads DS and DC, and goes to COMMAND; the settings and
        calibration are known.
        """
        bench = bench_for(self)
        self.assertIs(bench.sbe37.mode, Mode.ASLEEP)
        bench.connect()
        self.assertEqual(states(bench), ["UNKNOWN", "COMMAND"])
        self.assertEqual(bench.connection.sent[0], b"\r\n")
        self.assertEqual(bench.connection.sent[1:3], [b"DS\r\n", b"DC\r\n"])
        cached = bench.driver.get_cached_config()
        self.assertEqual(cached["INTERVAL"], 15)
        self.assertEqual(cached["TA0"], -2.572242e-04)
        self.assertEqual(cached["PCALDATE"], "12-aug-05")
        self.assertEqual(len(bench.particles("ctdpf_status")), 1)
        self.assertEqual(len(bench.particles("ctdpf_calibration")), 1)
        self.assertEqual(bench.driver.get_resource_capabilities()["commands"],
                         COMMAND_CAPABILITIES)  # fmt: skip

    def test_autosampleOnLinkUp(self) -> None:
        """
        An instrument found logging puts the driver in AUTOSAMPLE.
        """
        bench = bench_for(self, awake=True)
        bench.sbe37.data_received(b"STARTNOW\r\n")
        bench.connect(until="AUTOSAMPLE")
        self.assertEqual(
            bench.driver.get_resource_capabilities()["commands"],
            AUTOSAMPLE_CAPABILITIES,
        )

    def test_askedDiscoveryShares(self) -> None:
        """
        A discover asked for while the one begun at link up runs gets its
        result; the instrument is asked once.
        """
        bench = bench_for(self)
        bench.driver.connect()
        asked = bench.driver.discover_state()
        self.assertEqual(self.successResultOf(bench.wait(asked)), "COMMAND")
        self.assertEqual(bench.sent_text().count(b"DC\r\n"), 1)

    def test_silentInstrument(self) -> None:
        """
        An instrument that never answers: after the wake-up tries the
        failure is published as an error event and the driver stays UNKNOWN;
        asked again once it answers, it discovers.
        """
        bench = bench_for(self)
        bench.sbe37.faults.go_silent()
        bench.driver.connect()
        bench.run(7)
        self.assertEqual(bench.state, "UNKNOWN")
        [error] = bench.of_type(ErrorEvent)
        self.assertEqual(error.error_code, "INSTRUMENT_TIMEOUT")
        self.assertIn("wake-up", error.message)
        bench.sbe37.faults.speak_again()
        again = bench.wait(bench.driver.discover_state())
        self.assertEqual(self.successResultOf(again), "COMMAND")

    def test_notOnStartWhenTurnedOff(self) -> None:
        """
        With C{discover_on_start} off, nothing is sent until asked.
        """

        class Quiet(SBE37Protocol):
            discover_on_start = False

        bench = bench_for(self, protocol=Quiet)
        bench.driver.connect()
        bench.run(3)
        self.assertEqual(bench.state, "UNKNOWN")
        self.assertEqual(bench.connection.sent, [])


class CommandTests(SynchronousTestCase):
    """
    The instrument's own commands.
    """

    def test_interface(self) -> None:
        """
        The test connection provides L{IInstrumentConnection}.
        """
        bench = bench_for(self)
        verifyObject(IInstrumentConnection, bench.connection)

    def test_acquireSample(self) -> None:
        """
        TS: the result is the sample's values; the same line is published as
        a particle, its internal timestamp the instrument's time and its
        port timestamp when it arrived.
        """
        bench = in_command(self)
        result = self.successResultOf(
            bench.wait(bench.driver.execute_resource("acquire_sample"))
        )
        [particle] = bench.particles("ctdpf_sample")
        self.assertEqual(values(particle), result)
        assert isinstance(result, dict)
        instrument_time = result["instrument_time"]
        assert isinstance(instrument_time, datetime)
        self.assertEqual(
            particle.internal_timestamp, ntp_from_unix(instrument_time.timestamp())
        )
        self.assertLess(
            abs(particle.port_timestamp - ntp_from_unix(bench.clock.seconds())), 0.1
        )
        self.assertTrue(-2 < float(str(result["temperature"])) < 35)
        self.assertEqual(b"TS\r\n", bench.connection.sent[-1])

    def test_acquireStatus(self) -> None:
        """
        DS: the status values, also published as a particle; the settings in
        it are recorded.
        """
        bench = in_command(self)
        bench.sbe37.setup.navg = 4
        result = self.successResultOf(
            bench.wait(bench.driver.execute_resource("acquire_status"))
        )
        assert isinstance(result, dict)
        self.assertEqual(result["sample_interval"], 15)
        self.assertEqual(result["number_of_samples_to_average"], 4)
        self.assertEqual(values(bench.particles("ctdpf_status")[-1]), result)
        self.assertEqual(bench.driver.get_cached_config()["NAVG"], 4)
        self.assertEqual(bench.of_type(ConfigChangeEvent)[-1].changes, {"NAVG": 4})

    def test_acquireCalibration(self) -> None:
        """
        DC: the coefficients, also published as a particle and recorded as
        the read-only calibration parameters.
        """
        bench = in_command(self)
        bench.sbe37.calibration.ta0 = -2.5e-4
        result = self.successResultOf(
            bench.wait(bench.driver.execute_resource("acquire_calibration"))
        )
        assert isinstance(result, dict)
        self.assertEqual(result["ta0"], -2.5e-4)
        self.assertEqual(bench.driver.get_cached_config()["TA0"], -2.5e-4)
        self.assertEqual(len(bench.particles("ctdpf_calibration")), 2)

    def test_clockSync(self) -> None:
        """
        The instrument's clock is set to UTC: the date, then the time as the
        next whole second begins.
        """
        bench = in_command(self)
        self.assertLess(bench.sbe37.clock.now(), HOST_START - 3e8)
        result = bench.wait(bench.driver.execute_resource("clock_sync"))
        when = self.successResultOf(result)
        sent = bench.sent_text()
        self.assertIn(b"MMDDYY=111423\r\n", sent)
        self.assertIn(b"HHMMSS=221321\r\n", sent)
        self.assertEqual(when, "2023-11-14T22:13:21+00:00")
        self.assertLess(abs(bench.sbe37.clock.now() - bench.clock.seconds()), 0.2)

    def test_clockSyncAtMidnight(self) -> None:
        """
        If midnight passes between the date and the time, the date is sent
        again.
        """
        bench = in_command(self)
        midnight = datetime(2023, 11, 15, tzinfo=UTC).timestamp()
        bench.clock.advance(midnight - 0.5 - bench.clock.seconds())
        # The engine thinks the instrument may be asleep after the jump;
        # let it answer the wake-up first.
        bench.sbe37.data_received(b"\r\n")
        bench.run(1)
        bench.clock.advance(midnight - 0.5 - bench.clock.seconds())
        bench.connection.sent.clear()
        result = bench.wait(bench.driver.execute_resource("clock_sync"))
        self.assertEqual(self.successResultOf(result), "2023-11-15T00:00:00+00:00")
        self.assertEqual(
            [s for s in bench.connection.sent if s.startswith((b"MM", b"HH"))],
            [b"MMDDYY=111423\r\n", b"HHMMSS=000000\r\n", b"MMDDYY=111523\r\n"],
        )
        self.assertEqual(bench.sbe37.now().date().isoformat(), "2023-11-15")

    def test_autosample(self) -> None:
        """
        Start: AUTOSAMPLE, a sample particle every INTERVAL; status, sample
        and calibration still work, setting is refused before anything is
        sent; stop: COMMAND, and the instrument has stopped.
        """
        bench = in_command(self)
        start_logging(bench)
        bench.run(62)
        samples = bench.particles("ctdpf_sample")
        self.assertEqual(len(samples), 5)
        times = [p.internal_timestamp for p in samples]
        self.assertEqual([b - a for a, b in itertools.pairwise(times)],
                         [15.0] * 4)  # fmt: skip
        status = bench.wait(bench.driver.execute_resource("acquire_status"))
        self.assertIs(self.successResultOf(status)["logging"], True)  # type: ignore[index]
        self.successResultOf(
            bench.wait(bench.driver.execute_resource("acquire_calibration"))
        )
        self.successResultOf(
            bench.wait(bench.driver.execute_resource("acquire_sample"))
        )
        bench.connection.sent.clear()
        refused = bench.driver.set_resource({"INTERVAL": 20})
        self.assertEqual(
            self.failureResultOf(refused, InstrumentStateError).value.state,
            "AUTOSAMPLE",
        )
        self.assertEqual(bench.connection.sent, [])
        stopped = bench.wait(bench.driver.execute_resource("stop_autosample"))
        self.successResultOf(stopped)
        self.assertEqual(bench.state, "COMMAND")
        self.assertFalse(bench.sbe37.logging)
        self.assertEqual(states(bench)[-2:], ["AUTOSAMPLE", "COMMAND"])

    def test_clockSyncWhileLogging(self) -> None:
        """
        While logging, a clock sync stops, sets the clock and starts again;
        the driver stays in AUTOSAMPLE.
        """
        bench = in_command(self)
        start_logging(bench)
        bench.connection.sent.clear()
        result = bench.wait(bench.driver.execute_resource("clock_sync"))
        self.successResultOf(result)
        commands = [s for s in bench.connection.sent if s != b"\r\n"]
        self.assertEqual(
            [c.split(b"=")[0].strip() for c in commands],
            [b"STOP", b"MMDDYY", b"HHMMSS", b"STARTNOW"],
        )
        self.assertTrue(bench.sbe37.logging)
        self.assertEqual(bench.state, "AUTOSAMPLE")
        self.assertLess(abs(bench.sbe37.clock.now() - bench.clock.seconds()), 0.2)

    def test_logsAgainAfterFailedClockSync(self) -> None:
        """
        A clock sync while logging that fails halfway still starts logging
        again.
        """
        bench = in_command(self)
        start_logging(bench)
        bench.sbe37.faults.answer_slowly(0)
        original = bench.sbe37._setters

        def no_clock() -> dict[str, Callable[[str], None]]:
            setters = original()
            del setters["MMDDYY"]
            return setters

        self.patch(bench.sbe37, "_setters", no_clock)
        result = bench.wait(bench.driver.execute_resource("clock_sync"))
        error = self.failureResultOf(result, InstrumentProtocolError).value
        self.assertIn("MMDDYY", str(error))
        self.assertTrue(bench.sbe37.logging)
        self.assertEqual(bench.connection.sent[-1], b"STARTNOW\r\n")


class ParameterTests(SynchronousTestCase):
    """
    Reading, checking and setting parameters.
    """

    def test_getAll(self) -> None:
        """
        A get of everything returns the instrument's settings and its
        calibration.
        """
        bench = in_command(self)
        bench.sbe37.calibration.ptcb1 = -8e-4
        got = self.successResultOf(bench.wait(bench.driver.get_resource("ALL")))
        self.assertEqual(
            {name: got[name] for name in SETTINGS},
            {
                "INTERVAL": 15,
                "NAVG": 1,
                "SAMPLENUM": 0,
                "TXREALTIME": True,
                "OUTPUTSAL": True,
                "OUTPUTSV": True,
                "STORETIME": True,
                "SYNCMODE": False,
                "SYNCWAIT": 0,
                "REFPRESS": 0.0,
            },
        )
        self.assertEqual(got["CG"], -9.870930e-01)
        # Read once per connection: the calibration is not read again.
        self.assertEqual(got["PTCB1"], -9e-4)
        self.assertEqual(set(got), {*SETTINGS, *CALIBRATION})

    def test_setEverySetting(self) -> None:
        """
        Each setting is sent as the instrument's own command, read back from
        DS, returned as changed and announced.
        """
        bench = in_command(self)
        wanted = {
            "INTERVAL": 30,
            "NAVG": 4,
            "SAMPLENUM": 10,
            "TXREALTIME": False,
            "OUTPUTSAL": False,
            "OUTPUTSV": False,
            "STORETIME": False,
            "SYNCMODE": True,
            "SYNCWAIT": 120,
            "REFPRESS": 12.5,
        }
        changed = self.successResultOf(bench.wait(bench.driver.set_resource(wanted)))
        self.assertEqual(changed, wanted)
        setup = bench.sbe37.setup
        self.assertEqual(
            (setup.interval, setup.navg, bench.sbe37.samplenum, setup.syncwait),
            (30, 4, 10, 120),
        )
        self.assertEqual(
            (setup.txrealtime, setup.outputsal, setup.outputsv, setup.storetime),
            (False, False, False, False),
        )
        self.assertTrue(setup.syncmode)
        self.assertEqual(setup.refpress, 12.5)
        sent = bench.sent_text()
        for command in (
            b"INTERVAL=30",
            b"TXREALTIME=N",
            b"SYNCMODE=Y",
            b"REFPRESS=12.500",
        ):
            self.assertIn(command + b"\r\n", sent)
        self.assertEqual(dict(bench.of_type(ConfigChangeEvent)[-1].changes), wanted)

    def test_refusedBeforeSending(self) -> None:
        """
        Values out of the spec's ranges, read-only calibration and unknown
        names are refused naming the parameter and rule; nothing is sent.
        """
        bench = in_command(self)
        bench.connection.sent.clear()
        refusals: list[tuple[dict[str, object], str]] = [
            ({"INTERVAL": 4}, "range"),
            ({"INTERVAL": 32768}, "range"),
            ({"NAVG": 0}, "range"),
            ({"SYNCWAIT": 121}, "range"),
            ({"REFPRESS": -1.0}, "range"),
            ({"SAMPLENUM": -1}, "range"),
            ({"OUTPUTSAL": "maybe"}, "type"),
            ({"TA0": 1.0}, "read_only"),
            ({"TCALDATE": "01-jan-20"}, "read_only"),
            ({"FORMAT": 0}, "unknown"),
        ]
        for wanted, rule in refusals:
            error = self.failureResultOf(
                bench.driver.set_resource(wanted), InstrumentParameterError
            ).value
            self.assertEqual((error.parameter, error.rule), (*wanted, rule))
        bench.flush()
        self.assertEqual(bench.connection.sent, [])

    def test_refusedByInstrument(self) -> None:
        """
        A value the instrument refuses fails the set with its error line.
        """
        bench = in_command(self)
        result = bench.wait(bench.driver.set_resource({"SAMPLENUM": CAPACITY + 1}))
        error = self.failureResultOf(result, InstrumentProtocolError).value
        self.assertIn("***ERROR: SAMPLENUM must be 0..191362***", str(error))

    def test_samplenumReadFresh(self) -> None:
        """
        SAMPLENUM grows while logging, so a get in command mode reads it
        from the instrument; the other settings come from the cache.
        """
        bench = in_command(self)
        start_logging(bench)
        bench.run(32)
        self.successResultOf(
            bench.wait(bench.driver.execute_resource("stop_autosample"))
        )
        bench.connection.sent.clear()
        cached = self.successResultOf(bench.wait(bench.driver.get_resource(["NAVG"])))
        self.assertEqual(cached, {"NAVG": 1})
        self.assertEqual(bench.connection.sent, [])
        fresh = bench.wait(bench.driver.get_resource(["SAMPLENUM"]))
        self.assertEqual(self.successResultOf(fresh), {"SAMPLENUM": 3})
        self.assertEqual(bench.connection.sent, [b"DS\r\n"])

    def test_metadata(self) -> None:
        """
        The metadata gives every parameter's range, visibility and startup
        and direct-access flags, and every command's description.
        """
        metadata: Any = bench_for(self).driver.get_config_metadata()
        parameters = metadata["parameters"]
        self.assertEqual(parameters["INTERVAL"]["range"], [5, 32767])
        self.assertEqual(parameters["SYNCWAIT"]["range"], [0, 120])
        self.assertEqual(parameters["NAVG"]["range"], [1, 32767])
        self.assertEqual(parameters["TA0"]["visibility"], "READ_ONLY")
        self.assertTrue(parameters["INTERVAL"]["direct_access"])
        self.assertFalse(parameters["SAMPLENUM"]["direct_access"])
        self.assertTrue(parameters["TXREALTIME"]["startup"])
        commands = metadata["commands"]
        self.assertEqual(commands["clock_sync"]["display_name"], "Synchronize clock")
        self.assertIn("UTC", commands["clock_sync"]["description"])
        self.assertEqual(metadata["driver"]["name"], "seabird_sbe37smp")
        json.dumps(metadata)

    def test_streamUnits(self) -> None:
        """
        Every value of every stream declares its units, and the metadata
        carries them with the CF standard names.
        """
        self.assertEqual(undeclared_fields(SBE37Protocol), [])
        metadata: Any = bench_for(self).driver.get_config_metadata()
        sample = metadata["streams"]["ctdpf_sample"]
        self.assertEqual(
            sample["temperature"]["standard_name"], "sea_water_temperature"
        )
        self.assertEqual(sample["conductivity"]["units"], "S m-1")
        self.assertEqual(sample["pressure"]["units"], "dbar")
        self.assertEqual(
            sorted(metadata["streams"]),
            ["ctdpf_calibration", "ctdpf_sample", "ctdpf_status"],
        )


class StartupTests(SynchronousTestCase):
    """
    Startup parameters, applied after connecting.
    """

    def test_applied(self) -> None:
        """
        Startup values from the configuration are set once the instrument is
        found in command mode; the defaults hold for the rest; they are set
        again on request.
        """
        bench = bench_for(
            self, init_config={"parameters": {"INTERVAL": 30, "STORETIME": False}}
        )
        bench.sbe37.setup.txrealtime = False
        bench.connect()
        setup = bench.sbe37.setup
        self.assertEqual((setup.interval, setup.storetime), (30, False))
        self.assertTrue(setup.txrealtime)
        setup.interval = 60
        self.successResultOf(bench.wait(bench.driver.apply_startup_params()))
        self.assertEqual(setup.interval, 30)

    def test_statusReadOnce(self) -> None:
        """
        The startup values are compared with the settings discovery's DS
        has just read, not with a second DS: an instrument whose settings
        already match is sent DS once, and nothing is set.
        """
        bench = bench_for(self, init_config={"parameters": {"INTERVAL": 15}})
        bench.connect()
        self.assertEqual(bench.connection.sent, [b"\r\n", b"DS\r\n", b"DC\r\n"])
        self.assertEqual(len(bench.particles("ctdpf_status")), 1)

    def test_statusReadBackOnly(self) -> None:
        """
        A startup value that differs is set after discovery's DS, then DS is
        read once more to read it back: two in all, not three.
        """
        bench = bench_for(self, init_config={"parameters": {"INTERVAL": 30}})
        bench.connect()
        self.assertEqual(
            bench.connection.sent,
            [b"\r\n", b"DS\r\n", b"DC\r\n", b"INTERVAL=30\r\n", b"DS\r\n"],
        )
        self.assertEqual(bench.sbe37.setup.interval, 30)
        self.assertEqual(bench.driver.get_cached_config()["INTERVAL"], 30)

    def test_readAgainLater(self) -> None:
        """
        Only the session that read them skips the read: an instrument found
        logging gets its startup values when autosample stops, in a session
        of its own, which reads DS first (the settings may have changed
        since discovery).
        """
        bench = bench_for(
            self, awake=True, init_config={"parameters": {"INTERVAL": 30}}
        )
        bench.sbe37.data_received(b"STARTNOW\r\n")
        bench.connect(until="AUTOSAMPLE")
        sent = len(bench.connection.sent)
        self.successResultOf(
            bench.wait(bench.driver.execute_resource("stop_autosample"))
        )
        self.assertEqual(
            [c for c in bench.connection.sent[sent:] if c != b"\r\n"],
            [b"STOP\r\n", b"DS\r\n", b"INTERVAL=30\r\n", b"DS\r\n"],
        )
        self.assertEqual(bench.sbe37.setup.interval, 30)

    def test_waitForCommandMode(self) -> None:
        """
        Found logging, the startup values wait until autosample stops.
        """
        bench = bench_for(
            self, awake=True, init_config={"parameters": {"INTERVAL": 30}}
        )
        bench.sbe37.data_received(b"STARTNOW\r\n")
        bench.connect(until="AUTOSAMPLE")
        self.assertEqual(bench.sbe37.setup.interval, 15)
        self.successResultOf(
            bench.wait(bench.driver.execute_resource("stop_autosample"))
        )
        self.assertEqual(bench.sbe37.setup.interval, 30)


class DirectAccessTests(SynchronousTestCase):
    """
    Direct access, and the settings restored after it.
    """

    def test_intervalRestored(self) -> None:
        """
        An operator's INTERVAL= reaches the instrument, its echo comes back
        as direct-access events, and stopping restores the old interval.
        """
        bench = in_command(self)
        self.successResultOf(bench.driver.start_direct())
        self.successResultOf(bench.driver.execute_direct(b"INTERVAL=60\r\n"))
        bench.flush()
        self.assertEqual(bench.sbe37.setup.interval, 60)
        echoed = b"".join(e.data for e in bench.of_type(DirectAccessEvent))
        self.assertIn(b"INTERVAL=60\r\n\r\nS>", echoed)
        stopped = bench.wait(bench.driver.stop_direct())
        self.assertEqual(self.successResultOf(stopped), "COMMAND")
        self.assertEqual(bench.sbe37.setup.interval, 15)
        self.assertIn(b"INTERVAL=15\r\n", bench.sent_text())

    def test_leftAsleep(self) -> None:
        """
        An operator who leaves the instrument asleep (QS): stopping direct
        access wakes it and finds it in command mode.
        """
        bench = in_command(self)
        bench.driver.start_direct()
        bench.driver.execute_direct(b"QS\r\n")
        bench.flush()
        self.assertIs(bench.sbe37.mode, Mode.ASLEEP)
        stopped = bench.wait(bench.driver.stop_direct())
        self.assertEqual(self.successResultOf(stopped), "COMMAND")
        self.assertIs(bench.sbe37.mode, Mode.COMMAND)

    def test_leftLogging(self) -> None:
        """
        An operator who leaves it logging with a new interval: AUTOSAMPLE,
        and the interval is restored when autosample stops.
        """
        bench = in_command(self)
        bench.driver.start_direct()
        bench.driver.execute_direct(b"INTERVAL=20\r\nSTARTNOW\r\n")
        bench.run(1)
        stopped = bench.wait(bench.driver.stop_direct())
        self.assertEqual(self.successResultOf(stopped), "AUTOSAMPLE")
        self.assertEqual(bench.sbe37.setup.interval, 20)
        self.successResultOf(
            bench.wait(bench.driver.execute_resource("stop_autosample"))
        )
        self.assertEqual(bench.sbe37.setup.interval, 15)


class WakeTests(SynchronousTestCase):
    """
    The wake-up is sent only when the instrument may be asleep.
    """

    def test_wokenAfterIdle(self) -> None:
        """
        After two idle minutes the instrument sleeps; the next command is
        preceded by a bare CR LF and answered.
        """
        bench = in_command(self)
        bench.run(125, step=1)
        self.assertIs(bench.sbe37.mode, Mode.ASLEEP)
        bench.connection.sent.clear()
        status = bench.wait(bench.driver.execute_resource("acquire_status"))
        self.successResultOf(status)
        self.assertEqual(bench.connection.sent, [b"\r\n", b"DS\r\n"])

    def test_notWhenRecent(self) -> None:
        """
        Commands within the sleep time go without a wake-up.
        """
        bench = in_command(self)
        bench.run(60, step=1)
        bench.connection.sent.clear()
        self.successResultOf(
            bench.wait(bench.driver.execute_resource("acquire_status"))
        )
        self.assertEqual(bench.connection.sent, [b"DS\r\n"])


class LinkTests(SynchronousTestCase):
    """
    The instrument link dropping and coming back.
    """

    def test_backToAutosample(self) -> None:
        """
        A logging instrument's link drops: the driver says so; when it comes
        back the driver rediscovers AUTOSAMPLE by itself and samples flow.
        """
        bench = in_command(self)
        start_logging(bench)
        bench.run(16)
        before = len(bench.particles("ctdpf_sample"))
        bench.sbe37.faults.drop_link()
        bench.flush()
        self.assertEqual(bench.state, "INSTRUMENT_DISCONNECTED")
        bench.run(30)
        bench.connection.plug_in()
        bench.run_until(lambda: bench.state == "AUTOSAMPLE", 10)
        self.assertEqual(states(bench)[-2:], ["UNKNOWN", "AUTOSAMPLE"])
        bench.run(30)
        self.assertEqual(len(bench.particles("ctdpf_sample")), before + 2)

    def test_backToCommand(self) -> None:
        """
        An instrument in command mode comes back in COMMAND.
        """
        bench = in_command(self)
        bench.sbe37.faults.drop_link()
        bench.flush()
        bench.connection.plug_in()
        bench.run_until(lambda: bench.state == "COMMAND", 10)
        self.assertEqual(states(bench)[-2:], ["UNKNOWN", "COMMAND"])

    def test_cutLineAcrossDrop(self) -> None:
        """
        A sample line cut in the middle and then lost with the link is never
        published; the samples after it are whole.
        """
        bench = in_command(self)
        start_logging(bench)
        bench.run(1.5)
        bench.sbe37.faults.cut_next_line(resume_after=5.0)
        bench.run_until(lambda: not bench.sbe37.faults.cut_pending, 20)
        bench.flush()
        [first] = bench.particles("ctdpf_sample")
        bench.sbe37.faults.drop_link()
        bench.flush()
        bench.connection.plug_in()
        bench.run(31)
        samples = bench.particles("ctdpf_sample")
        self.assertEqual(samples[0], first)
        times = [p.internal_timestamp for p in samples]
        # The cut sample (the second) is missing, none is invented.
        self.assertEqual(
            [round(t - times[0]) for t in times], [0, 30, 45][: len(times)]
        )

    def test_cutLineDelayed(self) -> None:
        """
        A sample line whose second half comes late is one sample, read in
        full.
        """
        bench = in_command(self)
        bench.sbe37.faults.cut_next_line(resume_after=2.0)
        result = bench.wait(bench.driver.execute_resource("acquire_sample"))
        [particle] = bench.particles("ctdpf_sample")
        self.assertEqual(values(particle), self.successResultOf(result))


class SchedulerTests(SynchronousTestCase):
    """
    Scheduled jobs from the startup configuration.
    """

    def test_clockSyncAndStatus(self) -> None:
        """
        A scheduled clock sync and status run and publish their results.
        """
        bench = bench_for(
            self,
            init_config={
                "scheduler": {
                    "clock_sync": {"interval": 3600},
                    "acquire_status": {"interval": 1800},
                }
            },
        )
        bench.connect()
        bench.run(3610, step=1)
        results = [event.command for event in bench.of_type(ResultEvent)]
        self.assertEqual(sorted(results), ["acquire_status", "acquire_status",
                                           "clock_sync"])  # fmt: skip
        self.assertLess(abs(bench.sbe37.clock.now() - bench.clock.seconds()), 2)
