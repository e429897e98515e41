"""
Tests for L{instrumentd.driver.particles}: the particle envelope, its
timestamps and the preferred-timestamp rule, declarative regex particles
and raw particles.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from instrumentd.driver.errors import InstrumentProtocolError
from instrumentd.driver.particles import (
    DataParticle,
    ParticleField,
    QualityFlag,
    RawDataParticle,
    RegexDataParticle,
    TimestampName,
    ntp_from_unix,
)
from instrumentd.packet import NTP_UNIX_OFFSET, Packet, PacketType, unix_to_ntp

SAMPLE = b"# 12.3456,  3.51234,   10.123,  33.9876, 1497.432, 05 Feb 2013, 19:16:59\r\n"
SHORT_SAMPLE = b"#  9.8712,  3.28811,   25.506\r\n"

# 2013-02-05T19:16:59Z
SAMPLE_UNIX = 1360091819.0


def _sample_time(text: str) -> datetime:
    return datetime.strptime(text, "%d %b %Y, %H:%M:%S")


class CTDSampleParticle(RegexDataParticle):
    """
    A CTD sample line, declared the way a driver writer would.
    """

    stream_name = "ctd_parsed"
    pattern = re.compile(
        rb"#\s*(?P<temperature>-?\d+\.\d+),\s*(?P<conductivity>-?\d+\.\d+),"
        rb"\s*(?P<pressure>-?\d+\.\d+)"
        rb"(?:,\s*(?P<salinity>-?\d+\.\d+),\s*(?P<sound_velocity>-?\d+\.\d+),"
        rb"\s*(?P<sample_time>\d+ \w+ \d{4}, \d\d:\d\d:\d\d))?\r\n"
    )
    converters = {
        "temperature": float,
        "conductivity": float,
        "pressure": float,
        "salinity": float,
        "sound_velocity": float,
        "sample_time": _sample_time,
    }
    internal_time_value = "sample_time"


class StatusLineParticle(RegexDataParticle):
    """
    A particle with a C{str} pattern and a value left as text.
    """

    stream_name = "status_line"
    pattern = re.compile(r"SBE 37-SMP V (?P<version>\S+) SERIAL NO\. (?P<serial>\d+)")
    converters = {"serial": int}


class EchoParticle(DataParticle):
    """
    A hand-written particle: one value, the record as text.
    """

    stream_name = "echo"

    def _build_values(self, raw: bytes) -> list[dict[str, object]]:
        return [{"value_id": "text", "value": raw.decode()}]


class DataParticleTests(SynchronousTestCase):
    """
    Tests for the L{DataParticle} envelope.
    """

    def test_toDict(self) -> None:
        """
        The JSON form has the OOI envelope keys, the values in order, and
        survives a JSON round trip unchanged.
        """
        particle = EchoParticle(
            b"hello",
            port_timestamp=3569253419.25,
            internal_timestamp=3569253419.0,
            driver_timestamp=3569253420.0,
            quality_flag=QualityFlag.SUSPECT,
        )
        expected = {
            "pkt_format_id": "JSON_Data",
            "pkt_version": 1,
            "stream_name": "echo",
            "port_timestamp": 3569253419.25,
            "internal_timestamp": 3569253419.0,
            "driver_timestamp": 3569253420.0,
            "preferred_timestamp": "port_timestamp",
            "quality_flag": "suspect",
            "values": [{"value_id": "text", "value": "hello"}],
        }
        self.assertEqual(expected, particle.to_dict())
        self.assertEqual(expected, json.loads(particle.to_json()))

    def test_absentTimestampsOmitted(self) -> None:
        """
        Port and internal timestamps that are absent (C{None} or 0) are left
        out of the JSON form.
        """
        particle = EchoParticle(b"x", port_timestamp=0, driver_timestamp=1.0)
        self.assertNotIn("port_timestamp", particle.to_dict())
        self.assertNotIn("internal_timestamp", particle.to_dict())

    def test_driverTimestampFromClock(self) -> None:
        """
        Without an explicit driver timestamp, the injected clock's Unix time
        is converted to NTP.
        """
        clock = Clock()
        clock.advance(SAMPLE_UNIX)
        particle = EchoParticle(b"x", clock=clock)
        self.assertEqual(SAMPLE_UNIX + NTP_UNIX_OFFSET, particle.driver_timestamp)
        self.assertEqual(SAMPLE_UNIX + 2_208_988_800, ntp_from_unix(SAMPLE_UNIX))

    def test_noStreamName(self) -> None:
        """
        A particle class that names no stream cannot be used.
        """

        class Nameless(DataParticle):
            def _build_values(self, raw: bytes) -> list[dict[str, object]]:
                return []

        self.assertRaises(TypeError, Nameless, b"", driver_timestamp=1.0)

    def test_setInternalTimestamp(self) -> None:
        """
        The internal timestamp can be given as NTP or as Unix time, but not
        both or neither.
        """
        particle = EchoParticle(b"x", driver_timestamp=1.0)
        particle.set_internal_timestamp(unix=SAMPLE_UNIX)
        self.assertEqual(SAMPLE_UNIX + NTP_UNIX_OFFSET, particle.internal_timestamp)
        particle.set_internal_timestamp(ntp=5.0)
        self.assertEqual(5.0, particle.internal_timestamp)
        self.assertRaises(ValueError, particle.set_internal_timestamp)
        self.assertRaises(
            ValueError, particle.set_internal_timestamp, ntp=1.0, unix=1.0
        )

    def test_value(self) -> None:
        """
        C{value} finds a value by id and raises L{KeyError} for others.
        """
        particle = EchoParticle(b"x", driver_timestamp=1.0)
        self.assertEqual("x", particle.value("text"))
        self.assertRaises(KeyError, particle.value, "nothing")


class PreferredTimestampTests(SynchronousTestCase):
    """
    The preferred-timestamp rule: the named timestamp if present, else the
    first present of internal, port and driver; 0 counts as absent.
    """

    def _particle(
        self,
        port: float | None,
        internal: float | None,
        preferred: TimestampName = TimestampName.PORT,
    ) -> EchoParticle:
        return EchoParticle(
            b"x",
            port_timestamp=port,
            internal_timestamp=internal,
            driver_timestamp=300.0,
            preferred_timestamp=preferred,
        )

    def test_portPresent(self) -> None:
        """
        By default the port timestamp is preferred when there is one.
        """
        particle = self._particle(100.0, 200.0)
        self.assertEqual(TimestampName.PORT, particle.preferred_timestamp)
        self.assertEqual(100.0, particle.preferred_time)

    def test_noPortTimeFallsBackToInternal(self) -> None:
        """
        Without a port time, the instrument's internal time is used.
        """
        particle = self._particle(None, 200.0)
        self.assertEqual(TimestampName.INTERNAL, particle.preferred_timestamp)
        self.assertEqual(200.0, particle.preferred_time)
        self.assertEqual(
            "internal_timestamp", particle.to_dict()["preferred_timestamp"]
        )

    def test_zeroPortTimeFallsBackToInternal(self) -> None:
        """
        A port time of 0 (datalog playback) counts as no port time.
        """
        particle = self._particle(0.0, 200.0)
        self.assertEqual(TimestampName.INTERNAL, particle.preferred_timestamp)

    def test_noTimesFallsBackToDriver(self) -> None:
        """
        With neither port nor internal time, the driver's time is used.
        """
        particle = self._particle(None, None)
        self.assertEqual(TimestampName.DRIVER, particle.preferred_timestamp)
        self.assertEqual(300.0, particle.preferred_time)

    def test_internalPreferredButAbsent(self) -> None:
        """
        A particle preferring internal time that has none falls back to the
        port time.
        """
        particle = self._particle(100.0, None, TimestampName.INTERNAL)
        self.assertEqual(TimestampName.PORT, particle.preferred_timestamp)

    def test_driverPreferred(self) -> None:
        """
        A particle may prefer the driver's time even when others exist.
        """
        particle = self._particle(100.0, 200.0, TimestampName.DRIVER)
        self.assertEqual(TimestampName.DRIVER, particle.preferred_timestamp)

    def test_unknownName(self) -> None:
        """
        A preferred timestamp that is not a timestamp name is refused.
        """
        self.assertRaises(
            ValueError,
            EchoParticle,
            b"x",
            driver_timestamp=1.0,
            preferred_timestamp="sample_time",
        )


class RegexDataParticleTests(SynchronousTestCase):
    """
    Tests for the declarative L{RegexDataParticle}.
    """

    def test_values(self) -> None:
        """
        Each named group becomes a value, in pattern order, converted.
        """
        particle = CTDSampleParticle(SAMPLE, port_timestamp=1.0, driver_timestamp=2.0)
        self.assertEqual(
            [
                {"value_id": "temperature", "value": 12.3456},
                {"value_id": "conductivity", "value": 3.51234},
                {"value_id": "pressure", "value": 10.123},
                {"value_id": "salinity", "value": 33.9876},
                {"value_id": "sound_velocity", "value": 1497.432},
                {"value_id": "sample_time", "value": datetime(2013, 2, 5, 19, 16, 59)},
            ],
            particle.values,
        )
        self.assertEqual(
            "2013-02-05T19:16:59",
            particle.to_dict()["values"][-1]["value"],  # type: ignore[index]
        )

    def test_internalTimeFromValue(self) -> None:
        """
        The value named by C{internal_time_value} sets the internal
        timestamp, a naive datetime meaning UTC.
        """
        particle = CTDSampleParticle(SAMPLE, driver_timestamp=2.0)
        self.assertEqual(SAMPLE_UNIX + NTP_UNIX_OFFSET, particle.internal_timestamp)
        self.assertEqual(TimestampName.INTERNAL, particle.preferred_timestamp)

    def test_optionalGroupsNone(self) -> None:
        """
        Groups that took no part in the match have the value C{None}, and
        no internal time is set from a missing time.
        """
        particle = CTDSampleParticle(SHORT_SAMPLE, driver_timestamp=2.0)
        self.assertEqual(25.506, particle.value("pressure"))
        self.assertIsNone(particle.value("salinity"))
        self.assertIsNone(particle.internal_timestamp)

    def test_noMatch(self) -> None:
        """
        A record the pattern does not match is an L{InstrumentProtocolError}
        naming the stream; C{matches} says so beforehand.
        """
        truncated = b"# 12.3456,  3.51234,   10.1"
        self.assertFalse(CTDSampleParticle.matches(truncated))
        self.assertTrue(CTDSampleParticle.matches(SAMPLE))
        error = self.assertRaises(
            InstrumentProtocolError,
            CTDSampleParticle,
            truncated,
            driver_timestamp=1.0,
        )
        self.assertIn("ctd_parsed", str(error))

    def test_converterFails(self) -> None:
        """
        A value its converter refuses is an L{InstrumentProtocolError}
        naming the value.
        """
        bad = b"# 1.0, 2.0, 3.0, 4.0, 5.0, 31 Feb 2013, 19:16:59\r\n"
        error = self.assertRaises(
            InstrumentProtocolError, CTDSampleParticle, bad, driver_timestamp=1.0
        )
        self.assertIn("sample_time", str(error))

    def test_strPattern(self) -> None:
        """
        A C{str} pattern reads the record as Latin-1 text; unconverted groups
        stay text.
        """
        particle = StatusLineParticle(
            b"SBE 37-SMP V 2.6 SERIAL NO. 2165  05 Feb 2013", driver_timestamp=1.0
        )
        self.assertEqual(
            [
                {"value_id": "version", "value": "2.6"},
                {"value_id": "serial", "value": 2165},
            ],
            particle.values,
        )


def _reference_values(
    cls: type[RegexDataParticle], raw: bytes
) -> list[dict[str, object]]:
    """
    What a L{RegexDataParticle} must read from C{raw}, worked out the plain
    way: match, then each named group in order, decoded and converted.
    """
    match = cls.pattern.match(raw)  # type: ignore[arg-type]
    assert match is not None
    groups = cls.pattern.groupindex
    values: list[dict[str, object]] = []
    for name in sorted(groups, key=lambda group: groups[group]):
        text = match.group(name)
        if isinstance(text, bytes):
            text = text.decode("latin-1")
        convert = cls.converters.get(name)
        value = convert(text) if text is not None and convert is not None else text
        values.append({"value_id": name, "value": value})
    return values


class _DrySample(CTDSampleParticle):
    """
    A second kind of sample with a pattern of its own (no pressure).
    """

    pattern = re.compile(
        rb"#\s*(?P<temperature>-?\d+\.\d+),\s*(?P<conductivity>-?\d+\.\d+)\r\n"
    )
    internal_time_value = None


_RECORDS = (SAMPLE, SHORT_SAMPLE, b"# 1.5, 2.25\r\n", b"# 12.3456,  3.51234,   10.1")


class RegexReadOnceTests(SynchronousTestCase):
    """
    A record is matched once however a protocol asks (C{matches}, then the
    constructor), and each class works out how to read its groups once:
    neither may ever give a particle another record's values, or another
    pattern's.
    """

    @settings(max_examples=300, deadline=None)
    @given(
        st.lists(
            st.tuples(
                st.sampled_from(["matches", "build"]),
                st.sampled_from([CTDSampleParticle, _DrySample]),
                st.integers(0, len(_RECORDS) - 1),
                st.booleans(),
            ),
            max_size=30,
        )
    )
    def test_valuesAlwaysOwnRecords(
        self, steps: list[tuple[str, type[RegexDataParticle], int, bool]]
    ) -> None:
        """
        Whatever mix of C{matches} and constructions, of two classes, on
        records that are the same object or equal copies: each particle
        has exactly the values of its own record read by its own pattern,
        and a record its pattern does not match is refused.
        """
        for action, cls, which, copy in steps:
            raw = _RECORDS[which]
            if copy:
                raw = bytes(bytearray(raw))
            expected = cls.pattern.match(raw) is not None  # type: ignore[arg-type]
            if action == "matches":
                self.assertEqual(cls.matches(raw), expected)
            elif expected:
                particle = cls(raw, driver_timestamp=1.0)
                self.assertEqual(particle.values, _reference_values(cls, raw))
            else:
                self.assertRaises(
                    InstrumentProtocolError, cls, raw, driver_timestamp=1.0
                )

    def test_patternReplaced(self) -> None:
        """
        A class whose pattern or converters are replaced after it was used
        reads records with the new ones.
        """

        class Changing(CTDSampleParticle):
            pass

        self.assertEqual(
            Changing(SAMPLE, driver_timestamp=1.0).value("pressure"), 10.123
        )
        self.patch(Changing, "pattern", _DrySample.pattern)
        self.patch(Changing, "internal_time_value", None)
        particle = Changing(b"# 1.5, 2.25\r\n", driver_timestamp=1.0)
        self.assertEqual(
            particle.values,
            [
                {"value_id": "temperature", "value": 1.5},
                {"value_id": "conductivity", "value": 2.25},
            ],
        )
        self.patch(Changing, "converters", {"temperature": float})
        self.assertEqual(
            Changing(b"# 1.5, 2.25\r\n", driver_timestamp=1.0).values,
            [
                {"value_id": "temperature", "value": 1.5},
                {"value_id": "conductivity", "value": "2.25"},
            ],
        )
        self.assertEqual(Changing.value_ids(), ("temperature", "conductivity"))

    def test_converterFailsAfterOthersRead(self) -> None:
        """
        When a later value's converter fails, the error names that value,
        not an earlier one that was read.
        """

        def refuse(text: str) -> object:
            raise ArithmeticError("no")

        class Picky(CTDSampleParticle):
            converters = {**CTDSampleParticle.converters, "pressure": refuse}

        error = self.assertRaises(
            InstrumentProtocolError, Picky, SAMPLE, driver_timestamp=1.0
        )
        self.assertIn("pressure", str(error))
        self.assertNotIn("temperature", str(error))


class RawDataParticleTests(SynchronousTestCase):
    """
    Tests for L{RawDataParticle}.
    """

    def test_fromPacket(self) -> None:
        """
        A raw particle carries the payload in base64, its length, the
        packet type and checksum, and the packet's time as port time.
        """
        seconds, fraction = unix_to_ntp(SAMPLE_UNIX + 0.5)
        payload = b"S>\xff\x00"
        packet = Packet(PacketType.DATA_FROM_INSTRUMENT, payload, seconds, fraction)
        particle = RawDataParticle(packet, driver_timestamp=9.0)
        encoded = packet.encode()
        self.assertEqual("raw", particle.to_dict()["stream_name"])
        self.assertEqual(SAMPLE_UNIX + 0.5 + NTP_UNIX_OFFSET, particle.port_timestamp)
        self.assertEqual(
            [
                {
                    "value_id": "raw",
                    "value": base64.b64encode(payload).decode(),
                    "binary": True,
                },
                {"value_id": "length", "value": 4},
                {"value_id": "type", "value": 1},
                {"value_id": "checksum", "value": int.from_bytes(encoded[6:8])},
            ],
            particle.values,
        )
        json.loads(particle.to_json())


class FieldTests(SynchronousTestCase):
    """
    L{ParticleField}: what each value of a stream is, exported with the
    driver's metadata.
    """

    def test_metadata(self) -> None:
        """
        A field's metadata has its units, and its standard and long names
        where given.
        """
        self.assertEqual(ParticleField("dbar").metadata(), {"units": "dbar"})
        self.assertEqual(
            ParticleField("S m-1", "sea_water_electrical_conductivity", "C").metadata(),
            {
                "units": "S m-1",
                "standard_name": "sea_water_electrical_conductivity",
                "long_name": "C",
            },
        )

    def test_fieldMetadataInOrder(self) -> None:
        """
        A particle class's field metadata is in declaration order.
        """

        class Described(CTDSampleParticle):
            fields = {
                "temperature": ParticleField("degree_Celsius"),
                "pressure": ParticleField("dbar"),
            }

        self.assertEqual(
            list(Described.field_metadata().items()),
            [
                ("temperature", {"units": "degree_Celsius"}),
                ("pressure", {"units": "dbar"}),
            ],
        )

    def test_regexValueIds(self) -> None:
        """
        A regex particle knows its values without a record: its groups, in
        order.
        """
        self.assertEqual(
            CTDSampleParticle.value_ids(),
            (
                "temperature",
                "conductivity",
                "pressure",
                "salinity",
                "sound_velocity",
                "sample_time",
            ),
        )

    def test_unitsInRecord(self) -> None:
        """
        A value with units carries them in the particle's JSON form; one
        without (text) or not described carries none.
        """

        class Described(CTDSampleParticle):
            fields = {
                "temperature": ParticleField("degree_Celsius"),
                "sample_time": ParticleField(""),
            }

        values = Described(SAMPLE, driver_timestamp=1.0).to_dict()["values"]
        assert isinstance(values, list)
        by_id = {entry["value_id"]: entry for entry in values}
        self.assertEqual(by_id["temperature"]["units"], "degree_Celsius")
        self.assertNotIn("units", by_id["sample_time"])
        self.assertNotIn("units", by_id["pressure"])

    def test_rawFieldsDeclared(self) -> None:
        """
        The raw particle describes every value it carries.
        """
        self.assertEqual(set(RawDataParticle.value_ids()), set(RawDataParticle.fields))
