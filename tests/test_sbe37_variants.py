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

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from instrumentd.instruments.seabird.sbe37smp.simulator import (
    ACQUISITION_SECONDS,
    SBE37Simulator,
)
from instrumentd.simulator import InProcessLink, SimulatorSettings

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
        for command in ("INTERVAL=60", "TXREALTIME=N", "SAMPLENUM=262098"):
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
