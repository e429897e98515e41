"""
The SBE 37 as different firmware and sensors print it: the simulator's
``firmware``, ``pressure_sensor`` and ``pump`` options
(:mod:`instrumentd.instruments.seabird.sbe37smp.firmware`), and the
driver reading every layout found in real instruments' output and
Sea-Bird's manuals.

The texts below are real: each names its source (see
``doc/instruments/sbe37smp.md`` for the list).  Where a source prefixed
lines with ``# `` or ``* `` (a comment, an upload header), the prefix is
removed; otherwise they are verbatim.
"""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from instrumentd.driver.errors import InstrumentParameterError, ParameterRule
from instrumentd.driver.parameters import ParameterDictionary
from instrumentd.instruments.seabird.sbe37smp.parameters import declare_parameters
from instrumentd.instruments.seabird.sbe37smp.particles import (
    CALIBRATION_LINES,
    STATUS_LINES,
    SBE37CalibrationParticle,
    SBE37DrySampleParticle,
    SBE37SampleParticle,
    SBE37StatusParticle,
)
from instrumentd.instruments.seabird.sbe37smp.simulator import (
    ACQUISITION_SECONDS,
    SBE37Simulator,
)
from instrumentd.simulator import InProcessLink, SimulatorSettings
from tests.test_sbe37_driver import bench_for, chunk, values

#: ``petejan/raw2netCDF``, ``python/sbeASC2netCDF.py``: a real
#: ``SBE37SM-RS232 3.0h`` answering ``DS``.
DS_30H = """\
SBE37SM-RS232 3.0h  SERIAL NO. 6962  23 Mar 2010 06:07:37
vMain =  7.02, vLith =  3.26
samplenumber = 262098, free = 297142
not logging, stop command
sample interval = 60 seconds
data format = converted engineering
transmit real-time = no
sync mode = no
pump installed = no
"""

#: The same session's ``DC``.
DC_30H = """\
SBE37SM-RS232 V 3.0h  6962
temperature:  15-May-09
    TA0 = 2.243980e-05
    TA1 = 2.780597e-04
    TA2 = -2.782710e-06
    TA3 = 1.589985e-07
conductivity:  15-May-09
    G = -1.006941e+00
    H = 1.477867e-01
    I = -2.227526e-04
    J = 3.824996e-05
    CPCOR = -9.570000e-08
    CTCOR = 3.250000e-06
    WBOTC = 2.551112e-07
pressure S/N 2863059, range = 508 psia  04-May-09
    PA0 = -9.528925e-03
    PA1 = 1.676997e-03
    PA2 = 1.202383e-11
    PTCA0 = 5.232644e+05
    PTCA1 = 1.922083e+00
    PTCA2 = -1.141774e-01
    PTCB0 = 2.507875e+01
    PTCB1 = -8.500000e-04
    PTCB2 = 0.000000e+00
    PTEMPA0 = -6.912989e+01
    PTEMPA1 = 5.083005e-02
    PTEMPA2 = -5.488727e-07
    POFFSET = 0.000000e+00
"""

#: The same session's ``DD``: stored samples.
DD_30H = """\
 13.4082, 0.00004,   -0.119, 22 Sep 2009, 00:00:01
 13.4073, 0.00003,   -0.117, 22 Sep 2009, 00:01:01
"""

#: ``petejan/raw2netCDF``, ``data/SBE37-1777-1000m.asc``: a real
#: ``SBE37-SM V 2.6b``'s upload header (``DS``, then ``DC``).
DS_26B = """\
SBE37-SM V 2.6b  SERIAL NO. 1777    24 Mar 2019  23:34:51
not logging: received stop command
sample interval = 600 seconds
samplenumber = 55726, free = 243867
do not transmit real-time data
do not output salinity with each sample
do not output sound velocity with each sample
do not store time with each sample
number of samples to average = 4
serial sync mode disabled
wait time after serial sync sampling = 30 seconds
internal pump not installed
temperature = 11.72 deg C
"""

DC_26B = """\
SBE37-SM V 2.6b  1777
temperature:  21-mar-15
    TA0 = 4.038028e-05
    TA1 = 2.689302e-04
    TA2 = -2.059206e-06
    TA3 = 1.484023e-07
conductivity:  21-mar-15
    G = -9.625585e-01
    H = 1.291223e-01
    I = -7.715407e-05
    J = 2.536878e-05
    CPCOR = -9.570000e-08
    CTCOR = 3.250000e-06
    WBOTC = 9.645460e-06
pressure S/N 2432215, range = 5076 psia:  12-mar-15
    PA0 = -1.980161e+00
    PA1 = 2.435868e-01
    PA2 = -1.592412e-07
    PTCA0 = 7.238512e+01
    PTCA1 = -2.274251e-01
    PTCA2 = -5.191362e-03
    PTCSB0 = 2.481788e+01
    PTCSB1 = -1.625000e-03
    PTCSB2 = 0.000000e+00
    POFFSET = 0.000000e+00
rtc:  21-mar-15
    RTCA0 = 9.999703e-01
    RTCA1 = 1.803684e-06
    RTCA2 = -3.297514e-08
"""

#: ``petejan/raw2netCDF``, ``data/SBE37-2971.cnv``: a real ``SBE37-SM V
#: 2.3``'s ``DS`` (no salinity, sound velocity or pump lines; "A/D cycles
#: to average").
DS_23 = """\
SBE37-SM V 2.3  SERIAL NO. 2971    12 Mar 2018  04:16:26
not logging: received stop command
sample interval = 600 seconds
samplenumber = 51718, free = 247875
do not transmit real-time data
do not store time with each sample
A/D cycles to average = 4
serial sync mode disabled
wait time after serial sync sampling = 30 seconds
temperature = 20.16 deg C
"""

#: Sea-Bird, SBE 37-SM RS-232 manual revision 041 (firmware 5), page 35:
#: the first lines of its ``DS`` example, the last completed from the 3.0h
#: session's wording (the page's text breaks off at "not logging, sto").
DS_5_HEAD = """\
SBE37SM-RS232 v5.0.0 SERIAL NO. 30051 04 Aug 2017 20:55:10
vMain = 13.59, vLith = 2.91
samplenumber = 3418, free = 559240
not logging, stop command
"""

#: The same manual, page 46: a real-time sample with a pressure sensor
#: (OutputFormat=1; the manual shows spaces as ``·``).
SAMPLE_5 = "24.8339,  0.97795,   -9.262, 07 Jan 2000, 04:51:39"

#: The 3.0h session's calibration, as setters: the simulator then prints
#: that session's ``DC``.
CALIBRATION_30H = {
    line.split(" = ")[0].strip(): line.split(" = ")[1]
    for line in DC_30H.splitlines()
    if line.startswith("    ")
}


def simulator(**options: str) -> tuple[SBE37Simulator, InProcessLink, Clock]:
    """
    An awake SBE 37 with these options, its clock at 23 Mar 2010 06:07:37.
    """
    clock = Clock()
    start = datetime(2010, 3, 23, 6, 7, 37, tzinfo=UTC).timestamp()
    sbe37 = SBE37Simulator(
        SimulatorSettings(start_time=start, echo=False, options=options),
        reactor=clock,
        awake=True,
    )
    return sbe37, InProcessLink(sbe37), clock


def lines(
    link: InProcessLink, clock: Clock, command: str, wait: float = 0
) -> list[str]:
    """
    Send a command; return its reply's lines, without the prompt.
    """
    link.send(command.encode() + b"\r\n")
    clock.advance(wait)
    reply = link.take().decode()
    assert reply.endswith("\r\nS>"), reply
    return reply[: -len("\r\nS>")].split("\r\n")[:-1]


def widths(line: str) -> list[int]:
    """
    The widths of a sample line's comma-separated fields.
    """
    return [len(field) for field in line.split(",")]


class SimulatorFirmwareTests(SynchronousTestCase):
    """
    ``firmware=3.0h`` prints the 3.0h session's layouts.
    """

    def test_status(self) -> None:
        """
        ``DS``: the session's lines in its order and spacing, with the SMP's
        model and pump; the memory holds 559240 samples.
        """
        sbe37, link, clock = simulator(firmware="3.0h")
        sbe37.serial_number = 6962
        for command in ("SampleInterval=60", "TxRealTime=N", "SampleNumber=262098"):
            lines(link, clock, command)
        expected = (
            DS_30H.replace("SBE37SM-", "SBE37SMP-")
            .replace(" 7.02", "13.59")
            .replace(" 3.26", " 3.16")
            .replace("pump installed = no", "pump installed = yes")
        )
        self.assertEqual(lines(link, clock, "DS"), expected.splitlines())

    def test_calibration(self) -> None:
        """
        ``DC``: given the session's coefficients, the session's dump,
        verbatim but for the SMP's model.
        """
        sbe37, link, clock = simulator(firmware="3.0h")
        sbe37.serial_number = 6962
        sbe37.calibration.pressure_serial = 2863059
        sbe37.calibration.pressure_range = "508"
        for name, value in CALIBRATION_30H.items():
            setter = {"G": "CG", "H": "CH", "I": "CI", "J": "CJ"}.get(name, name)
            lines(link, clock, f"{setter}={value}")
        for setter, when in (("TCALDATE", "15-may-09"), ("CCALDATE", "15-may-09")):
            lines(link, clock, f"{setter}={when}")
        lines(link, clock, "PCALDATE=04-may-09")
        self.assertEqual(
            lines(link, clock, "DC"),
            DC_30H.replace("SBE37SM-", "SBE37SMP-").splitlines(),
        )

    def test_samples(self) -> None:
        """
        Samples have the session's column widths (conductivity 8 wide);
        while logging they are printed without ``#``.
        """
        _, link, clock = simulator(firmware="3.0h")
        for command in ("OUTPUTSAL=N", "OUTPUTSV=N"):
            lines(link, clock, command)
        [line] = lines(link, clock, "TS", ACQUISITION_SECONDS)
        self.assertEqual(widths(line), widths(DD_30H.splitlines()[0]))
        lines(link, clock, "STARTNOW")
        clock.advance(ACQUISITION_SECONDS)
        logged = link.take().decode()
        self.assertRegex(logged, r"^ *\d+\.\d{4}, *\d+\.\d{5},")
        self.assertEqual(widths(logged.rstrip("\r\n")), widths(line))

    def test_spec(self) -> None:
        """
        The default, 2.6, keeps the spec's sample widths: temperature 8,
        then 9 for each value.
        """
        _, link, clock = simulator()
        [line] = lines(link, clock, "TS", ACQUISITION_SECONDS)
        self.assertEqual(widths(line)[:5], [8, 9, 9, 9, 9])

    def test_badOption(self) -> None:
        """
        A firmware it does not know is refused, naming the option, the
        value and the choices.
        """
        with self.assertRaises(ValueError) as caught:
            simulator(firmware="4.1")
        self.assertEqual(
            str(caught.exception),
            "sbe37 option firmware='4.1' is not one of: 2.6, 3.0h",
        )


class SimulatorSensorTests(SynchronousTestCase):
    """
    ``pressure_sensor=no`` and ``pump=no`` change what is printed.
    """

    def test_noPressureSample(self) -> None:
        """
        Without a pressure sensor a sample has no pressure column: T, C,
        S, SV, date, time; raw output has no strain-gauge counts.
        """
        _, link, clock = simulator(pressure_sensor="no")
        [line] = lines(link, clock, "TS", ACQUISITION_SECONDS)
        self.assertEqual(widths(line), [8, 9, 9, 9, 12, 9])
        self.assertRegex(
            line, r"^ *\d+\.\d{4}, *\d\.\d{5}, *\d+\.\d{4}, *1\d{3}\.\d{3},"
        )
        [raw] = lines(link, clock, "TSR", ACQUISITION_SECONDS)
        self.assertEqual(len(raw.split(",")), 2)

    def test_noPressureDumps(self) -> None:
        """
        Without a pressure sensor ``DC`` has no pressure section; with
        firmware 3.0h ``DS`` then has a reference pressure line, which it
        has not with one.
        """
        for firmware in ("2.6", "3.0h"):
            _, link, clock = simulator(firmware=firmware, pressure_sensor="no")
            dc = lines(link, clock, "DC")
            pressure = ("pressure", "    PA", "    PT", "    PO")
            self.assertFalse([line for line in dc if line.startswith(pressure)], dc)
            self.assertIn("conductivity:", dc[6])
        _, link, clock = simulator(firmware="3.0h", pressure_sensor="no")
        self.assertIn("reference pressure = 0.0 db", lines(link, clock, "DS"))
        _, link, clock = simulator(firmware="3.0h")
        self.assertNotIn("reference pressure = 0.0 db", lines(link, clock, "DS"))

    def test_noPump(self) -> None:
        """
        ``pump=no``: each firmware's words for no pump, as the real 2.6b
        and 3.0h printed them.
        """
        _, link, clock = simulator(pump="no")
        self.assertEqual(lines(link, clock, "DS")[12], "internal pump not installed")
        _, link, clock = simulator(pump="no", firmware="3.0h")
        self.assertEqual(lines(link, clock, "DS")[-1], "pump installed = no")


def crlf(text: str) -> bytes:
    """
    Text as the instrument sends it: CR LF line ends.
    """
    return text.replace("\n", "\r\n").encode("latin-1")


def reply(dump: str) -> bytes:
    """
    A dump as a reply ends: its lines, then CR LF and the prompt.
    """
    return crlf(dump) + b"\r\nS>"


class StatusDumpTests(SynchronousTestCase):
    """
    The status particle reads every real status dump found.
    """

    def status(self, dump: str) -> dict[str, object]:
        [record] = chunk(reply(dump), [])
        return values(SBE37StatusParticle(record.data, driver_timestamp=1.0))

    def test_firmware30(self) -> None:
        """
        3.0h: battery voltages, the memory before the logging line, ``=
        yes/no`` settings, the pump; no 2.6 lines.
        """
        found = self.status(DS_30H)
        self.assertEqual(
            {k: v for k, v in found.items() if v is not None},
            {
                "firmware_version": "3.0h",
                "serial_number": "6962",
                "date_time": datetime(2010, 3, 23, 6, 7, 37, tzinfo=UTC),
                "main_battery_voltage": 7.02,
                "lithium_battery_voltage": 3.26,
                "logging_status": "not logging, stop command",
                "logging": False,
                "sample_interval": 60,
                "sample_number": 262098,
                "memory_free": 297142,
                "data_format": "converted engineering",
                "tx_realtime": False,
                "serial_sync_mode": False,
                "pump_installed": False,
                "low_battery": False,
            },
        )

    def test_firmware26b(self) -> None:
        """
        A real 2.6b: no reference pressure line, ``internal pump not
        installed``.
        """
        found = self.status(DS_26B)
        self.assertEqual(found["firmware_version"], "2.6b")
        self.assertIs(found["logging"], False)
        self.assertEqual(found["sample_number"], 55726)
        self.assertIs(found["pump_installed"], False)
        self.assertIs(found["tx_realtime"], False)
        self.assertEqual(found["number_of_samples_to_average"], 4)
        self.assertIsNone(found["reference_pressure"])
        self.assertEqual(found["temperature"], 11.72)

    def test_firmware23(self) -> None:
        """
        A real 2.3: A/D cycles instead of samples to average; no salinity,
        sound velocity or pump lines.
        """
        found = self.status(DS_23)
        self.assertEqual(found["firmware_version"], "2.3")
        self.assertEqual(found["ad_cycles_to_average"], 4)
        self.assertIsNone(found["number_of_samples_to_average"])
        for absent in ("output_salinity", "output_sound_velocity", "pump_installed"):
            self.assertIsNone(found[absent], absent)
        self.assertIs(found["store_time"], False)
        self.assertEqual(found["serial_sync_wait"], 30)

    def test_firmware5(self) -> None:
        """
        Firmware 5's known lines (the manual's example), and a line of no
        known kind skipped (the manual does not give the rest verbatim).
        """
        found = self.status(DS_5_HEAD + "output salinity, PSU\n")
        self.assertEqual(found["firmware_version"], "5.0.0")
        self.assertEqual(found["serial_number"], "30051")
        self.assertEqual(found["main_battery_voltage"], 13.59)
        self.assertEqual(found["lithium_battery_voltage"], 2.91)
        self.assertEqual(found["memory_free"], 559240)
        self.assertIs(found["logging"], False)
        self.assertIsNone(found["output_salinity"])

    def test_logging(self) -> None:
        """
        ``logging data`` is logging; the states the firmware-5 manual lists
        otherwise (``logging not started``, ``not logging``) are not.
        """
        head = "SBE37SMP-RS232 3.0h  SERIAL NO. 6962  23 Mar 2010 06:07:37\n"
        for line, logging in (
            ("logging data", True),
            ("not logging, stop command", False),
            ("logging not started", False),
            ("not logging: waiting to start at 05 Feb 2013 19:30:00", False),
        ):
            self.assertIs(self.status(head + line + "\n")["logging"], logging, line)


class CalibrationDumpTests(SynchronousTestCase):
    """
    The calibration particle reads every real calibration dump found, and
    one without a pressure section.
    """

    def calibration(self, dump: bytes) -> dict[str, object]:
        [record] = chunk(dump, [])
        return values(SBE37CalibrationParticle(record.data, driver_timestamp=1.0))

    def test_firmware30(self) -> None:
        """
        3.0h: ``PTCB0..2``, ``PTEMPA0..2``, a pressure line without colon,
        capitalised dates, no ``rtc`` section.
        """
        found = self.calibration(reply(DC_30H))
        self.assertEqual(found["firmware_version"], "3.0h")
        self.assertEqual(found["tcaldate"], "15-May-09")
        self.assertEqual(found["cj"], 3.824996e-05)
        self.assertEqual(found["pressure_serial_number"], "2863059")
        self.assertEqual(found["pressure_range"], 508.0)
        self.assertEqual(found["pcaldate"], "04-May-09")
        self.assertEqual(found["ptcb0"], 2.507875e01)
        self.assertEqual(found["ptempa2"], -5.488727e-07)
        self.assertEqual(found["poffset"], 0.0)
        self.assertIsNone(found["rcaldate"])
        self.assertIsNone(found["rtca0"])

    def test_firmware26b(self) -> None:
        """
        A real 2.6b: ``PTCSB0..2`` read as ``ptcb0..2``; the ``rtc`` section.
        """
        found = self.calibration(reply(DC_26B))
        self.assertEqual(found["ptcb1"], -1.625000e-03)
        self.assertEqual(found["pressure_range"], 5076.0)
        self.assertEqual(found["rtca2"], -3.297514e-08)
        self.assertIsNone(found["ptempa0"])

    def test_noPressureSensor(self) -> None:
        """
        Without a pressure sensor: every pressure value is None, the rest
        read.
        """
        for firmware in ("2.6", "3.0h"):
            _, link, clock = simulator(firmware=firmware, pressure_sensor="no")
            link.send(b"DC\r\n")
            clock.advance(1)
            found = self.calibration(link.take())
            self.assertEqual(found["ta0"], -2.572242e-04)
            self.assertEqual(found["wbotc"], 1.202400e-05)
            for name in ("pressure_serial_number", "pcaldate", "pa0", "poffset"):
                self.assertIsNone(found[name], name)


class DumpParameterTests(SynchronousTestCase):
    """
    The parameters read from each firmware's dumps.
    """

    def test_firmware30(self) -> None:
        """
        3.0h: the ``= yes/no`` settings and the calibration as 3.0h prints
        it; settings 3.0h does not print stay unread.
        """
        parameters = ParameterDictionary()
        declare_parameters(parameters)
        parameters.update_from(
            {**STATUS_LINES.read(DS_30H), **CALIBRATION_LINES.read(DC_30H)}
        )
        got = parameters.get_values()
        self.assertEqual(got["INTERVAL"], 60)
        self.assertEqual(got["SAMPLENUM"], 262098)
        self.assertIs(got["TXREALTIME"], False)
        self.assertIs(got["SYNCMODE"], False)
        self.assertIsNone(got["OUTPUTSAL"])
        self.assertEqual(got["TCALDATE"], "15-May-09")
        self.assertEqual(got["PCALDATE"], "04-May-09")
        self.assertEqual(got["PTCB2"], 0.0)
        self.assertEqual(got["PTEMPA0"], -6.912989e01)
        self.assertIsNone(got["RTCA0"])

    def test_firmware26b(self) -> None:
        """
        A real 2.6b: every setting it prints, ``PTCSB0..2`` as PTCB0..2.
        """
        parameters = ParameterDictionary()
        declare_parameters(parameters)
        parameters.update_from(
            {**STATUS_LINES.read(DS_26B), **CALIBRATION_LINES.read(DC_26B)}
        )
        got = parameters.get_values()
        self.assertIs(got["TXREALTIME"], False)
        self.assertIs(got["SYNCMODE"], False)
        self.assertEqual(got["NAVG"], 4)
        self.assertEqual(got["PCALDATE"], "12-mar-15")
        self.assertEqual(got["PTCB0"], 2.481788e01)


class SampleLineTests(SynchronousTestCase):
    """
    Sample lines of each firmware, with and without their optional columns.
    """

    def test_firmware5(self) -> None:
        """
        The firmware-5 manual's real-time example: temperature 7 wide, no
        ``#``.
        """
        [record] = chunk(SAMPLE_5.encode() + b"\r\n", [])
        found = values(SBE37SampleParticle(record.data, driver_timestamp=1.0))
        self.assertEqual(
            found,
            {
                "temperature": 24.8339,
                "conductivity": 0.97795,
                "pressure": -9.262,
                "salinity": None,
                "sound_velocity": None,
                "specific_conductivity": None,
                "instrument_time": datetime(2000, 1, 7, 4, 51, 39, tzinfo=UTC),
                "sample_number": None,
            },
        )
        numbered = SAMPLE_5.encode() + b", 3419\r\n"
        self.assertEqual(
            values(SBE37SampleParticle(numbered, driver_timestamp=1.0))[
                "sample_number"
            ],
            3419,
        )

    def test_firmware5Columns(self) -> None:
        """
        Firmware 5's optional columns and conductivity units as its manual
        defines them (rev. 041 p. 46: ``tt.tttt, c, p.ppp, sss.ssss,
        vvvv.vvv, x, dd mmm yyyy, hh:mm:ss, n``; conductivity and specific
        conductivity ``c.ccccc`` in S/m, ``cc.cccc`` in mS/cm, ``ccccc.c``
        in µS/cm).  The lines are built from that definition and the
        manual's example values (no capture of them was found); every
        conductivity is read in S/m.
        """
        cases = {
            "24.8339,  0.97795,   -9.262,  35.1234, 1497.432,  0.99123, "
            "07 Jan 2000, 04:51:39, 12": (0.97795, 35.1234, 1497.432, 0.99123, 12),
            "24.8339,  9.7795,   -9.262, 07 Jan 2000, 04:51:39": (
                0.97795, None, None, None, None,
            ),
            "24.8339, 9779.5,   -9.262, 07 Jan 2000, 04:51:39": (
                0.97795, None, None, None, None,
            ),
            "24.8339,  0.97795,   -9.262,  9912.3, 07 Jan 2000, 04:51:39": (
                0.97795, None, None, 0.99123, None,
            ),
        }  # fmt: skip
        for line, expected in cases.items():
            found = values(
                SBE37SampleParticle(f"{line}\r\n".encode(), driver_timestamp=1.0)
            )
            self.assertEqual(
                (
                    found["conductivity"],
                    found["salinity"],
                    found["sound_velocity"],
                    found["specific_conductivity"],
                    found["sample_number"],
                ),
                expected,
                line,
            )
        self.assertFalse(SBE37SampleParticle.matches(b"24.8339,  0.978,   -9.262\r\n"))

    def test_firmware30(self) -> None:
        """
        3.0h's stored samples (conductivity 8 wide).
        """
        records = chunk(crlf(DD_30H), [])
        found = [
            values(SBE37SampleParticle(r.data, driver_timestamp=1.0)) for r in records
        ]
        self.assertEqual([f["temperature"] for f in found], [13.4082, 13.4073])
        self.assertEqual([f["pressure"] for f in found], [-0.119, -0.117])

    def test_dry(self) -> None:
        """
        Without a pressure sensor the third value is salinity, or sound
        velocity if it is the only one; the dry reading says so.
        """
        for line, expected in (
            (b" 12.3456,  3.51234,  33.9876, 1497.432\r\n", (None, 33.9876, 1497.432)),
            (b" 12.3456,  3.51234, 1497.432\r\n", (None, None, 1497.432)),
            (b" 12.3456,  3.51234\r\n", (None, None, None)),
        ):
            [record] = chunk(line, [])
            found = values(SBE37DrySampleParticle(record.data, driver_timestamp=1.0))
            self.assertEqual(
                (found["pressure"], found["salinity"], found["sound_velocity"]),
                expected,
                line,
            )


#: Everything a 3.0h instrument says, with what ends its replies.
STREAM_30H = (
    b"ds\r\n"
    + crlf(DS_30H)
    + b"<Executed/>\r\nS>dc\r\n"
    + crlf(DC_30H)
    + b"<Executed/>\r\nS>"
    + crlf(DD_30H)
    + SAMPLE_5.encode()
    + b"\r\n"
)


class VariantChunkingTests(SynchronousTestCase):
    """
    The variants' records, however the stream is cut.
    """

    @settings(max_examples=100, deadline=None)
    @given(st.lists(st.integers(min_value=0, max_value=len(STREAM_30H)), max_size=60))
    def test_anyChunking(self, cuts: list[int]) -> None:
        """
        A 3.0h session's DS, DC (each ended by ``<Executed/>``), stored
        samples and a firmware-5 sample give the same records, whole, however
        they arrive.
        """
        whole = [r.data for r in chunk(STREAM_30H, [])]
        self.assertEqual(len(whole), 5)
        self.assertEqual([r.data for r in chunk(STREAM_30H, cuts)], whole)
        self.assertTrue(whole[0].startswith(b"SBE37SM-RS232 3.0h"))
        self.assertTrue(whole[0].endswith(b"pump installed = no\r\n"))
        self.assertTrue(whole[1].endswith(b"POFFSET = 0.000000e+00\r\n"))

    def test_cutDumpWaits(self) -> None:
        """
        A dump cut after any of its lines is not a record until what ends
        the reply arrives: a line still to come may be the last.
        """
        data = reply(DS_30H)
        for end in range(len(data) - 3):
            self.assertEqual(chunk(data[:end], []), [], end)


class DriverVariantTests(SynchronousTestCase):
    """
    The driver with each simulated variant: discovery, the pressure sensor
    learnt from the calibration dump.
    """

    def test_discovery30(self) -> None:
        """
        Firmware 3.0h: discovered in COMMAND, and in AUTOSAMPLE when
        logging (``logging data``); its samples, printed without ``#``,
        are particles.
        """
        bench = bench_for(self, options={"firmware": "3.0h"})
        bench.connect()
        self.assertEqual(bench.driver.get_cached_config()["PTEMPA1"], 5.083005e-02)
        logging = bench_for(self, options={"firmware": "3.0h"}, awake=True)
        logging.sbe37.data_received(b"STARTNOW\r\n")
        logging.connect(until="AUTOSAMPLE")
        logging.run(40)
        self.assertGreater(len(logging.particles("ctdpf_sample")), 1)

    def test_noPressureSensor(self) -> None:
        """
        Without a pressure sensor (learnt from DC), a sample's third column
        is read as what it is: here sound velocity alone.
        """
        bench = bench_for(self, options={"pressure_sensor": "no"})
        bench.connect()
        self.assertIs(bench.protocol.pressure_sensor, False)
        bench.wait(bench.driver.set_resource({"OUTPUTSAL": False}))
        result = self.successResultOf(
            bench.wait(bench.driver.execute_resource("acquire_sample"))
        )
        assert isinstance(result, dict)
        self.assertIsNone(result["pressure"])
        self.assertIsNone(result["salinity"])
        self.assertTrue(1400 < float(str(result["sound_velocity"])) < 1600)
        [particle] = bench.particles("ctdpf_sample")
        self.assertEqual(values(particle), result)


class CommandSetTests(SynchronousTestCase):
    """
    Each simulated firmware takes its own command names and answers
    another firmware's as a command it does not know.
    """

    def test_firmware30Names(self) -> None:
        """
        3.0h takes ``SampleInterval=``, ``ReferencePressure=`` and
        ``DateTime=mmddyyyyhhmmss``, in any case.
        """
        _sbe37, link, clock = simulator(firmware="3.0h", pressure_sensor="no")
        for command in (
            "SampleInterval=30",
            "ReferencePressure=10.5",
            "DateTime=01022011030405",
        ):
            self.assertEqual(lines(link, clock, command), [], command)
        status = lines(link, clock, "DS")
        self.assertIn("sample interval = 30 seconds", status)
        self.assertIn("reference pressure = 10.5 db", status)
        self.assertIn("02 Jan 2011 03:04:05", status[0])
        self.assertEqual(
            lines(link, clock, "DateTime=13452011030405"),
            ["***ERROR: DATETIME must be mmddyyyyhhmmss, a valid time***"],
        )

    def test_firmware30Refuses26(self) -> None:
        """
        3.0h answers 2.x's names (and those it has no setting for) with its
        error line, and changes nothing.
        """
        sbe37, link, clock = simulator(firmware="3.0h")
        for command in ("INTERVAL=30", "NAVG=4", "STORETIME=N", "MMDDYY=010211"):
            self.assertEqual(
                lines(link, clock, command),
                ["<ERROR type='INVALID COMMAND' msg='command not recognized'/>"],
                command,
            )
        self.assertEqual(sbe37.setup.interval, 15)
        self.assertEqual(sbe37.now().year, 2010)

    def test_firmware26Refuses30(self) -> None:
        """
        2.6 answers 3.0's names with ``?cmd S>``.
        """
        sbe37, link, _clock = simulator()
        for command in (b"SampleInterval=30", b"DateTime=01022011030405"):
            link.send(command + b"\r\n")
            self.assertEqual(link.take(), b"\r\n?cmd S>")
        self.assertEqual(sbe37.setup.interval, 15)


class DriverCommandSetTests(SynchronousTestCase):
    """
    The driver learns the firmware from ``DS`` and speaks its commands.
    """

    def test_set(self) -> None:
        """
        On 3.0h a set sends ``SampleInterval=``, and the value reads back.
        """
        bench = bench_for(self, options={"firmware": "3.0h"})
        bench.connect()
        self.assertEqual(bench.protocol.firmware, "3.0h")
        bench.connection.sent.clear()
        changed = bench.result(bench.driver.set_resource({"INTERVAL": 20}))
        self.assertEqual(changed, {"INTERVAL": 20})
        self.assertIn(b"SampleInterval=20\r\n", bench.connection.sent)
        self.assertEqual(bench.sbe37.setup.interval, 20)

    def test_clockSync(self) -> None:
        """
        On 3.0h the clock is set with one ``DateTime=`` as the next second
        begins.
        """
        bench = bench_for(self, options={"firmware": "3.0h"})
        bench.connect()
        when = bench.result(bench.driver.execute_resource("clock_sync"))
        self.assertEqual(when, "2023-11-14T22:13:21+00:00")
        self.assertIn(b"DateTime=11142023221321\r\n", bench.connection.sent)
        self.assertFalse([s for s in bench.connection.sent if s.startswith(b"MMDD")])
        self.assertLess(abs(bench.sbe37.clock.now() - bench.clock.seconds()), 0.2)

    def test_unsupported(self) -> None:
        """
        A setting 3.0h does not have is refused before anything is sent,
        and the startup values leave it out.
        """
        bench = bench_for(self, options={"firmware": "3.0h"})
        bench.connect()
        sent = b"".join(bench.connection.sent)
        self.assertNotIn(b"NAVG", sent)
        self.assertNotIn(b"STORETIME", sent)
        bench.connection.sent.clear()
        error = self.failureResultOf(
            bench.wait(bench.driver.set_resource({"NAVG": 4})),
            InstrumentParameterError,
        ).value
        self.assertEqual(error.rule, ParameterRule.UNSUPPORTED)
        self.assertIn("3.0h", str(error))
        self.assertEqual(bench.connection.sent, [])

    def test_firmware26(self) -> None:
        """
        2.6 still gets 2.x's names.
        """
        bench = bench_for(self)
        bench.connect()
        bench.result(bench.driver.set_resource({"INTERVAL": 20, "NAVG": 2}))
        self.assertIn(b"INTERVAL=20\r\n", bench.connection.sent)
        self.assertIn(b"NAVG=2\r\n", bench.connection.sent)
