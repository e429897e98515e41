"""
Tests for :mod:`instrumentd.instruments.seabird.sbe37smp.simulator`: the SBE
37-SMP dialogue as the spec (``doc/specs/sbe37-smp.md``) describes it.

All in memory, with a ``Clock`` and an :class:`InProcessLink`; the real
front ends are exercised in ``tests.test_simulator_framework``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from instrumentd.instruments.seabird.sbe37smp.simulator import (
    ACQUISITION_SECONDS,
    ALLOWED_WHILE_LOGGING,
    CAPACITY,
    IDLE_SLEEP_SECONDS,
    WAKE_SECONDS,
    Mode,
    SBE37Simulator,
)
from instrumentd.simulator import InProcessLink, SimulatorSettings, make_simulator
from instrumentd.simulator.seawater import salinity, sound_velocity

#: The instrument clock at start: the spec's DS example.
START = datetime(2013, 2, 5, 19, 11, 43, tzinfo=UTC).timestamp()

#: The spec's calibration dump, verbatim.
SPEC_DC = """\
SBE37-SM V 2.6b  2165
temperature:  08-nov-05
    TA0 = -2.572242e-04
    TA1 = 3.138936e-04
    TA2 = -9.717158e-06
    TA3 = 2.138735e-07
conductivity:  08-nov-05
    G = -9.870930e-01
    H = 1.417895e-01
    I = 1.334915e-04
    J = 3.339261e-05
    CPCOR = 9.570000e-08
    CTCOR = 3.250000e-06
    WBOTC = 1.202400e-05
pressure S/N 4955, range = 10847.1964958 psia:  12-aug-05
    PA0 = 5.916199e+00
    PA1 = 4.851819e-01
    PA2 = 4.596432e-07
    PTCA0 = 2.762492e+02
    PTCA1 = 6.603433e-01
    PTCA2 = 5.756490e-03
    PTCSB0 = 2.461450e+01
    PTCSB1 = -9.000000e-04
    PTCSB2 = 0.000000e+00
    POFFSET = 0.000000e+00
rtc:  08-nov-05
    RTCA0 = 9.999862e-01
    RTCA1 = 1.686132e-06
    RTCA2 = -3.022745e-08
"""

#: A FORMAT=1 sample with every optional field, without '#'.
SAMPLE = re.compile(
    r"^ *(-?\d+\.\d{4}), +(-?\d+\.\d{5}), +(-?\d+\.\d{3}), +(-?\d+\.\d{4}), "
    r"+(\d+\.\d{3}), (\d\d [A-Z][a-z]{2} \d{4}), (\d\d:\d\d:\d\d)$"
)


class _Bench:
    """
    An SBE 37 on a bench: the simulator, its link and its clock.
    """

    def __init__(
        self, *, awake: bool = True, seed: int = 0, **settings: object
    ) -> None:
        self.clock = Clock()
        self.clock.advance(1_000)
        options: dict[str, object] = {"start_time": START, "seed": seed}
        options.update(settings)
        self.sbe37 = SBE37Simulator(
            SimulatorSettings(**options),  # type: ignore[arg-type]
            reactor=self.clock,
            awake=awake,
        )
        self.link = InProcessLink(self.sbe37)
        self.echo = self.sbe37.settings.echo

    def send(self, data: bytes, wait: float = 0.0) -> bytes:
        """
        Send bytes, let ``wait`` seconds pass, return what came back.
        """
        self.link.send(data)
        self.clock.advance(wait)
        return self.link.take()

    def command(self, text: str, wait: float = 0.0) -> str:
        """
        Send a command line (CR LF), return the reply without the echo.
        """
        reply = self.send(text.encode("ascii") + b"\r\n", wait).decode("ascii")
        echo = text + "\r\n" if self.echo else ""
        assert reply.startswith(echo), (text, reply)
        return reply[len(echo) :]

    def lines(self, text: str, wait: float = 0.0) -> list[str]:
        """
        Send a command; return the reply's lines before the final CR LF and
        prompt (none for a command that only prompts).
        """
        reply = self.command(text, wait)
        assert reply.endswith("\r\nS>"), (text, reply)
        return reply[: -len("\r\nS>")].split("\r\n")[:-1]

    def sample(self, text: str = "TS") -> str:
        """
        Take a sample with C{text}; return its line.
        """
        [line] = self.lines(text, ACQUISITION_SECONDS)
        return line


class WakeAndSleepTests(SynchronousTestCase):
    """
    A sleeping instrument ignores what wakes it and prompts after
    ``WAKE_SECONDS``; it sleeps after two idle minutes or at ``QS``.
    """

    def test_startsAsleep(self) -> None:
        """
        A new simulator is asleep: a command is not executed, only wakes it;
        after ``WAKE_SECONDS`` it sends CR LF and the prompt.
        """
        bench = _Bench(awake=False)
        self.assertIs(bench.sbe37.mode, Mode.ASLEEP)
        self.assertEqual(bench.send(b"DS\r\n", WAKE_SECONDS - 0.01), b"")
        self.assertIs(bench.sbe37.mode, Mode.WAKING)
        self.assertEqual(bench.send(b"", 0.01), b"\r\nS>")
        self.assertIs(bench.sbe37.mode, Mode.COMMAND)

    def test_bareCrLfWakes(self) -> None:
        """
        The usual wake-up, a bare CR LF, gets the prompt and nothing else,
        even when the LF arrives on its own during the wake-up.
        """
        bench = _Bench(awake=False)
        bench.send(b"\r")
        bench.send(b"\n")
        self.assertEqual(bench.send(b"", WAKE_SECONDS), b"\r\nS>")
        self.assertEqual(
            bench.command("DS").splitlines()[1], "not logging: received stop command"
        )

    def test_bytesWhileWakingIgnored(self) -> None:
        """
        Bytes that arrive while it wakes are lost, not echoed or run.
        """
        bench = _Bench(awake=False)
        bench.send(b"\r\n", 0.2)
        self.assertEqual(bench.send(b"DS\r\n", WAKE_SECONDS), b"\r\nS>")
        self.assertEqual(bench.send(b"X"), b"X")

    def test_wakeIsScaled(self) -> None:
        """
        The wake-up time is instrument time: at a time scale of 10 it takes
        a tenth of ``WAKE_SECONDS``.
        """
        bench = _Bench(awake=False, time_scale=10.0)
        self.assertEqual(bench.send(b"\r\n", WAKE_SECONDS / 10 - 0.001), b"")
        self.assertEqual(bench.send(b"", 0.001), b"\r\nS>")

    def test_sleepsAfterTwoIdleMinutes(self) -> None:
        """
        Two minutes without input put it to sleep; input before that keeps
        it awake for another two minutes.
        """
        bench = _Bench()
        bench.clock.advance(IDLE_SLEEP_SECONDS - 1)
        self.assertIs(bench.sbe37.mode, Mode.COMMAND)
        bench.send(b"\r\n", IDLE_SLEEP_SECONDS - 1)
        self.assertIs(bench.sbe37.mode, Mode.COMMAND)
        bench.clock.advance(1)
        self.assertIs(bench.sbe37.mode, Mode.ASLEEP)
        self.assertEqual(bench.send(b"DS\r\n", WAKE_SECONDS), b"\r\nS>")

    def test_idleSleepIsScaled(self) -> None:
        """
        At a time scale of 60 the two idle minutes pass in two seconds.
        """
        bench = _Bench(time_scale=60.0)
        bench.clock.advance(IDLE_SLEEP_SECONDS / 60)
        self.assertIs(bench.sbe37.mode, Mode.ASLEEP)

    def test_qsSleepsAtOnce(self) -> None:
        """
        ``QS`` echoes and sleeps without a prompt; its LF, even arriving
        later, does not wake it; the next command only wakes it.
        """
        bench = _Bench()
        self.assertEqual(bench.send(b"QS\r"), b"QS\r\n")
        self.assertIs(bench.sbe37.mode, Mode.ASLEEP)
        bench.send(b"\n", 5)
        self.assertIs(bench.sbe37.mode, Mode.ASLEEP)
        self.assertEqual(bench.send(b"DS\r\n", WAKE_SECONDS), b"\r\nS>")

    def test_partialLineForgottenOnSleep(self) -> None:
        """
        A half-typed command is forgotten when the instrument falls asleep.
        """
        bench = _Bench()
        bench.send(b"D", IDLE_SLEEP_SECONDS)
        bench.send(b"\r\n", WAKE_SECONDS)
        self.assertEqual(bench.command("S"), "\r\n?cmd S>")


class LineTests(SynchronousTestCase):
    """
    Echo, line ends, case and the prompts.
    """

    def test_echo(self) -> None:
        """
        Each character is echoed as it arrives; the line end as CR LF.
        """
        bench = _Bench()
        self.assertEqual(bench.send(b"d"), b"d")
        self.assertEqual(bench.send(b"s"), b"s")
        self.assertTrue(bench.send(b"\r").startswith(b"\r\nSBE37-SMP"))

    def test_echoOff(self) -> None:
        """
        With echo off, only the reply comes back.
        """
        bench = _Bench(echo=False)
        self.assertEqual(bench.send(b"interval=10\r\n"), b"\r\nS>")

    def test_backspace(self) -> None:
        """
        Backspace and DEL remove the last character and are echoed as
        backspace, space, backspace.
        """
        bench = _Bench()
        reply = bench.send(b"DX\x08S\r\n")
        self.assertTrue(reply.startswith(b"DX\x08 \x08S\r\nSBE37-SMP"))
        reply = bench.send(b"DX\x7fC\r\n")
        self.assertTrue(reply.startswith(b"DX\x08 \x08C\r\nSBE37-SM V"))

    def test_lineEnds(self) -> None:
        """
        CR LF, CR alone and LF alone each end one command.
        """
        bench = _Bench()
        for end in (b"\r\n", b"\r", b"\n"):
            self.assertEqual(bench.send(b"interval=6" + end), b"interval=6\r\n\r\nS>")
        self.assertEqual(bench.send(b"\r\n\r\n"), b"\r\n\r\nS>\r\n\r\nS>")

    def test_caseInsensitive(self) -> None:
        """
        Commands and flag values are case-insensitive.
        """
        bench = _Bench()
        self.assertEqual(bench.lines("TxRealTime=n"), [])
        self.assertIn("do not transmit real-time data", bench.lines("dS"))

    def test_emptyLine(self) -> None:
        """
        An empty line gets the prompt.
        """
        self.assertEqual(_Bench().command(""), "\r\nS>")

    def test_unknownCommand(self) -> None:
        """
        An unknown command, or an unknown setter, gets ``?cmd S>``.
        """
        bench = _Bench()
        self.assertEqual(bench.command("FOO"), "\r\n?cmd S>")
        self.assertEqual(bench.command("FOO=1"), "\r\n?cmd S>")
        self.assertEqual(bench.command("DSX"), "\r\n?cmd S>")

    def test_overlongLine(self) -> None:
        """
        A line longer than the instrument keeps is cut short, not stored
        without bound.
        """
        bench = _Bench(echo=False)
        self.assertEqual(bench.send(b"X" * 5000 + b"\r"), b"\r\n?cmd S>")


class StatusTests(SynchronousTestCase):
    """
    ``DS`` prints the status in the documented layout.
    """

    def test_layout(self) -> None:
        """
        With the defaults, every line is as in the spec's example.
        """
        bench = _Bench()
        lines = bench.lines("DS")
        expected = [
            "SBE37-SMP V 2.6 SERIAL NO. 2165   05 Feb 2013  19:11:43",
            "not logging: received stop command",
            "sample interval = 15 seconds",
            "samplenumber = 0, free = 191362",
            "transmit real-time data",
            "output salinity with each sample",
            "output sound velocity with each sample",
            "store time with each sample",
            "number of samples to average = 1",
            "reference pressure = 0.0 db",
            "serial sync mode disabled",
            "wait time after serial sync sampling = 0 seconds",
            "internal pump is installed",
        ]
        self.assertEqual(lines[:-1], expected)
        self.assertRegex(lines[-1], r"^temperature = \d+\.\d\d deg C$")
        self.assertAlmostEqual(
            float(lines[-1].split()[2]), bench.sbe37.water.at(START).temperature, 2
        )

    def test_settingsShown(self) -> None:
        """
        Every setting ``DS`` reports follows its setter.
        """
        bench = _Bench()
        for command in (
            "INTERVAL=300",
            "TXREALTIME=N",
            "OUTPUTSAL=N",
            "OUTPUTSV=N",
            "STORETIME=N",
            "NAVG=4",
            "REFPRESS=10.25",
            "SYNCMODE=Y",
            "SYNCWAIT=120",
            "SAMPLENUM=1234",
        ):
            self.assertEqual(bench.lines(command), [])
        bench.sbe37.pump_installed = False
        lines = bench.lines("DS")
        self.assertEqual(
            lines[2:13],
            [
                "sample interval = 300 seconds",
                "samplenumber = 1234, free = 190128",
                "do not transmit real-time data",
                "do not output salinity with each sample",
                "do not output sound velocity with each sample",
                "do not store time with each sample",
                "number of samples to average = 4",
                "reference pressure = 10.2 db",
                "serial sync mode enabled",
                "wait time after serial sync sampling = 120 seconds",
                "internal pump not installed",
            ],
        )

    def test_lowBattery(self) -> None:
        """
        A low battery adds the warning as the last line.
        """
        bench = _Bench()
        bench.sbe37.low_battery = True
        self.assertEqual(bench.lines("DS")[-1], "WARNING: LOW BATTERY VOLTAGE!!")

    def test_serialNumber(self) -> None:
        """
        The serial number from the settings is in the DS and DC headers.
        """
        bench = _Bench(serial_number=37123)
        self.assertTrue(
            bench.lines("DS")[0].startswith("SBE37-SMP V 2.6 SERIAL NO. 37123   ")
        )
        self.assertEqual(bench.lines("DC")[0], "SBE37-SM V 2.6b  37123")
        self.assertEqual(bench.sbe37.describe(), "SBE 37-SMP S/N 37123")

    def test_madeByName(self) -> None:
        """
        The registry makes an SBE 37 from its model name.
        """
        made = make_simulator("sbe37", SimulatorSettings(), reactor=Clock())
        self.assertIsInstance(made, SBE37Simulator)


class CalibrationTests(SynchronousTestCase):
    """
    ``DC`` and the calibration setters.
    """

    def test_layout(self) -> None:
        """
        ``DC`` prints the spec's dump exactly.
        """
        self.assertEqual(_Bench().lines("DC"), SPEC_DC.splitlines())

    def test_coefficientSetters(self) -> None:
        """
        Every coefficient setter changes its line in ``DC``; ``PTCB0`` and
        ``PTCSB0`` both set what DC prints as ``PTCSB0``.
        """
        bench = _Bench()
        names = [
            ("TA0", "TA0"), ("TA1", "TA1"), ("TA2", "TA2"), ("TA3", "TA3"),
            ("CG", "G"), ("CH", "H"), ("CI", "I"), ("CJ", "J"),
            ("WBOTC", "WBOTC"), ("CTCOR", "CTCOR"), ("CPCOR", "CPCOR"),
            ("PA0", "PA0"), ("PA1", "PA1"), ("PA2", "PA2"),
            ("PTCA0", "PTCA0"), ("PTCA1", "PTCA1"), ("PTCA2", "PTCA2"),
            ("PTCB0", "PTCSB0"), ("PTCB1", "PTCSB1"), ("PTCSB2", "PTCSB2"),
            ("POFFSET", "POFFSET"),
            ("RTCA0", "RTCA0"), ("RTCA1", "RTCA1"), ("RTCA2", "RTCA2"),
        ]  # fmt: skip
        for k, (setter, shown) in enumerate(names, start=1):
            self.assertEqual(bench.lines(f"{setter}={k}.5e-3"), [])
            self.assertIn(f"    {shown} = {k * 1e-3 + 0.5e-3:e}", bench.lines("DC"))

    def test_dateSetters(self) -> None:
        """
        The calibration dates are set as dd-mon-yy, in any case, and shown
        in lower case.
        """
        bench = _Bench()
        for name in ("TCALDATE", "CCALDATE", "PCALDATE", "RCALDATE"):
            self.assertEqual(bench.lines(f"{name}=01-JAN-20"), [])
        dc = bench.lines("DC")
        self.assertEqual(dc[1], "temperature:  01-jan-20")
        self.assertEqual(dc[6], "conductivity:  01-jan-20")
        self.assertEqual(
            dc[14], "pressure S/N 4955, range = 10847.1964958 psia:  01-jan-20"
        )
        self.assertEqual(dc[25], "rtc:  01-jan-20")

    def test_badValues(self) -> None:
        """
        A coefficient that is not a number, or a date not in dd-mon-yy
        form, is refused with an error line and changes nothing.
        """
        bench = _Bench()
        self.assertEqual(bench.lines("TA0=abc"), ["***ERROR: TA0 must be a number***"])
        self.assertEqual(bench.lines("PA1=nan"), ["***ERROR: PA1 must be a number***"])
        for date in ("2005-11-08", "08-xyz-05", "32-nov-05", ""):
            self.assertEqual(
                bench.lines(f"TCALDATE={date}"),
                ["***ERROR: TCALDATE must be dd-mon-yy, e.g. 08-nov-05***"],
            )
        self.assertEqual(bench.lines("DC"), SPEC_DC.splitlines())

    def test_coefficientsChangeReadings(self) -> None:
        """
        The instrument converts raw readings with the coefficients it
        holds: a different TA0 prints a different temperature for the same
        water, and restoring it restores the reading.
        """
        bench = _Bench()
        reading = bench.sbe37.measure(START)
        before = bench.sbe37.engineering(reading)
        bench.lines("TA0=-2.0e-04")
        changed = bench.sbe37.engineering(reading)
        self.assertGreater(abs(changed[0] - before[0]), 0.5)
        bench.lines("TA0=-2.572242e-04")
        self.assertEqual(bench.sbe37.engineering(reading), before)


class ClockTests(SynchronousTestCase):
    """
    The real-time clock: set with MMDDYY=, DDMMYY= and HHMMSS=.
    """

    def header_time(self, bench: _Bench) -> str:
        """
        The date and time in the ``DS`` header.
        """
        return bench.lines("DS")[0].split("   ", 1)[1]

    def test_runs(self) -> None:
        """
        The clock runs with the reactor, times the time scale.
        """
        bench = _Bench(time_scale=60.0)
        bench.clock.advance(1)
        self.assertEqual(self.header_time(bench), "05 Feb 2013  19:12:43")

    def test_setDateAndTime(self) -> None:
        """
        MMDDYY= and DDMMYY= set the date and keep the time of day; HHMMSS=
        sets the time; the clock runs on from there.
        """
        bench = _Bench()
        self.assertEqual(bench.lines("MMDDYY=123124"), [])
        self.assertEqual(self.header_time(bench), "31 Dec 2024  19:11:43")
        self.assertEqual(bench.lines("DDMMYY=010225"), [])
        self.assertEqual(self.header_time(bench), "01 Feb 2025  19:11:43")
        self.assertEqual(bench.lines("HHMMSS=235958"), [])
        bench.clock.advance(3)
        self.assertEqual(self.header_time(bench), "02 Feb 2025  00:00:01")

    def test_badDatesAndTimes(self) -> None:
        """
        Impossible or malformed dates and times are refused, naming the
        form.
        """
        bench = _Bench()
        cases = {
            "MMDDYY=133124": "***ERROR: MMDDYY must be mmddyy, a valid date***",
            "MMDDYY=0230": "***ERROR: MMDDYY must be mmddyy, a valid date***",
            "DDMMYY=300225": "***ERROR: DDMMYY must be ddmmyy, a valid date***",
            "HHMMSS=246000": "***ERROR: HHMMSS must be hhmmss, a valid time***",
            "HHMMSS=12:00:00": "***ERROR: HHMMSS must be hhmmss, a valid time***",
            "STARTMMDDYY=x": "***ERROR: STARTMMDDYY must be mmddyy, a valid date***",
            "STARTDDMMYY=320113": "***ERROR: STARTDDMMYY must be ddmmyy, a valid date***",
            "STARTHHMMSS=999999": "***ERROR: STARTHHMMSS must be hhmmss, a valid time***",
        }
        for command, error in cases.items():
            self.assertEqual(bench.lines(command), [error], command)
        self.assertEqual(self.header_time(bench), "05 Feb 2013  19:11:43")


class SetterTests(SynchronousTestCase):
    """
    Every setter validates its value; a refused value changes nothing.
    """

    def test_integerRanges(self) -> None:
        """
        INTERVAL, NAVG, SYNCWAIT and SAMPLENUM take whole numbers in their
        ranges, ends included.
        """
        bench = _Bench()
        ranges = {
            "INTERVAL": (5, 32767),
            "NAVG": (1, 32767),
            "SYNCWAIT": (0, 120),
            "SAMPLENUM": (0, CAPACITY),
        }
        for name, (low, high) in ranges.items():
            error = [f"***ERROR: {name} must be {low}..{high}***"]
            for bad in (str(low - 1), str(high + 1), "abc", "", "7.5"):
                self.assertEqual(bench.lines(f"{name}={bad}"), error, (name, bad))
            self.assertEqual(bench.lines(f"{name}={low}"), [])
            self.assertEqual(bench.lines(f"{name}={high}"), [])
        self.assertEqual(bench.sbe37.setup.interval, 32767)
        self.assertEqual(bench.sbe37.setup.navg, 32767)
        self.assertEqual(bench.sbe37.setup.syncwait, 120)
        self.assertEqual(bench.sbe37.samplenum, CAPACITY)

    def test_intervalErrorAsInSpec(self) -> None:
        """
        The spec's own example error.
        """
        self.assertEqual(
            _Bench().lines("INTERVAL=4"), ["***ERROR: INTERVAL must be 5..32767***"]
        )

    def test_flags(self) -> None:
        """
        The Y/N settings take Y or N only.
        """
        bench = _Bench()
        for name in ("TXREALTIME", "OUTPUTSAL", "OUTPUTSV", "STORETIME", "SYNCMODE"):
            self.assertEqual(bench.lines(f"{name}=N"), [])
            self.assertFalse(getattr(bench.sbe37.setup, name.lower()))
            self.assertEqual(bench.lines(f"{name}=Y"), [])
            self.assertTrue(getattr(bench.sbe37.setup, name.lower()))
            for bad in ("YES", "1", ""):
                self.assertEqual(
                    bench.lines(f"{name}={bad}"),
                    [f"***ERROR: {name} must be Y or N***"],
                )

    def test_refpress(self) -> None:
        """
        REFPRESS takes a number of decibars, 0..10000.
        """
        bench = _Bench()
        self.assertEqual(bench.lines("REFPRESS=12.5"), [])
        self.assertEqual(bench.sbe37.setup.refpress, 12.5)
        for bad in ("-1", "10001", "abc", "nan"):
            self.assertEqual(
                bench.lines(f"REFPRESS={bad}"),
                ["***ERROR: REFPRESS must be 0..10000 db***"],
            )
        self.assertEqual(bench.sbe37.setup.refpress, 12.5)

    def test_format(self) -> None:
        """
        FORMAT takes 0 or 1.
        """
        bench = _Bench()
        self.assertEqual(bench.lines("FORMAT=0"), [])
        self.assertEqual(bench.sbe37.setup.format, 0)
        self.assertEqual(
            bench.lines("FORMAT=2"), ["***ERROR: FORMAT must be 0 or 1***"]
        )
        self.assertEqual(bench.sbe37.setup.format, 0)


class SampleTests(SynchronousTestCase):
    """
    TS, TSR, SL, SLT and the sample formats.
    """

    def test_ts(self) -> None:
        """
        ``TS`` answers after the acquisition time with one sample (no
        ``#``), stamped with the time it was taken, and does not store it.
        """
        bench = _Bench()
        self.assertEqual(bench.command("TS", ACQUISITION_SECONDS - 0.01), "")
        reply = bench.send(b"", 0.01).decode()
        self.assertTrue(reply.endswith("\r\n\r\nS>"))
        match = SAMPLE.match(reply[: -len("\r\n\r\nS>")])
        assert match is not None, reply
        self.assertEqual(match.group(6, 7), ("05 Feb 2013", "19:11:43"))
        self.assertEqual(bench.sbe37.samplenum, 0)

    def test_fieldsFollowSettings(self) -> None:
        """
        Salinity, sound velocity and the time appear only when their
        settings are on.
        """
        bench = _Bench()
        bench.lines("OUTPUTSAL=N")
        bench.lines("STORETIME=N")
        self.assertEqual(len(bench.sample().split(",")), 4)
        bench.lines("OUTPUTSV=N")
        self.assertRegex(bench.sample(), r"^ *\d+\.\d{4}, +\d\.\d{5}, +\d+\.\d{3}$")
        bench.lines("OUTPUTSAL=Y")
        self.assertEqual(len(bench.sample().split(",")), 4)

    def test_derivedValuesConsistent(self) -> None:
        """
        Salinity and sound velocity are PSS-78 and Chen-Millero of the
        printed temperature, conductivity and pressure, to the last digit.
        """
        bench = _Bench()
        for _ in range(5):
            match = SAMPLE.match(bench.sample())
            assert match is not None
            t, c, p = (float(match.group(k)) for k in range(1, 4))
            s = salinity(c, t, p)
            self.assertEqual(f"{s:.4f}", match.group(4))
            self.assertEqual(f"{sound_velocity(s, t, p):.3f}", match.group(5).strip())
            bench.clock.advance(60)

    def test_valuesPlausibleAndSmooth(self) -> None:
        """
        Over two hours of samples every 15 s, values stay in the spec's
        typical ranges and change little from one sample to the next
        (pressure moves most, with the surface waves).
        """
        bench = _Bench()
        sbe37 = bench.sbe37
        previous = None
        for k in range(480):
            t, c, p = sbe37.engineering(sbe37.measure(START + 15 * k))
            self.assertTrue(5 <= t <= 20, t)
            self.assertTrue(3 <= c <= 5, c)
            self.assertTrue(0 <= p <= 20, p)
            if previous is not None:
                self.assertLess(abs(t - previous[0]), 0.2)
                self.assertLess(abs(c - previous[1]), 0.02)
                self.assertLess(abs(p - previous[2]), 0.5)
            previous = (t, c, p)

    def test_deterministic(self) -> None:
        """
        The same seed gives the same samples; another seed other samples.
        """
        first = [_Bench(seed=5).sample() for _ in range(2)]
        self.assertEqual(first[0], first[1])
        self.assertNotEqual(first[0], _Bench(seed=6).sample())

    def test_tsr(self) -> None:
        """
        ``TSR`` prints raw values: thermistor counts, conductivity
        frequency and strain-gauge counts; converted with the calibration
        they give what ``TS`` prints.
        """
        bench = _Bench()
        raw = bench.sample("TSR")
        self.assertRegex(raw, r"^ *\d+, +\d+\.\d{3}, +\d+\.\d{3}$")
        counts, hz, pressure_counts = (float(part) for part in raw.split(","))
        cal = bench.sbe37.calibration
        t = cal.temperature(counts)
        p = cal.pressure(pressure_counts, t)
        c = cal.conductivity(hz, t, p)
        reading = bench.sbe37.measure(START)
        self.assertEqual(
            (round(t, 4), round(c, 5), round(p, 3)), bench.sbe37.engineering(reading)
        )

    def test_format0(self) -> None:
        """
        With FORMAT=0, samples are raw, followed by the time if stored.
        """
        bench = _Bench()
        bench.lines("FORMAT=0")
        self.assertRegex(
            bench.sample(), r"^ *\d+, +\d+\.\d{3}, +\d+\.\d{3}, 05 Feb 2013, 19:11:43$"
        )

    def test_sl(self) -> None:
        """
        ``SL`` prints the last sample again at once, without measuring.
        """
        bench = _Bench()
        taken = bench.sample()
        bench.clock.advance(100)
        self.assertEqual(bench.lines("SL"), [taken])

    def test_slBeforeAnySample(self) -> None:
        """
        Before any sample, ``SL`` prints one taken then.
        """
        self.assertIsNotNone(SAMPLE.match(_Bench().lines("SL")[0]))

    def test_slt(self) -> None:
        """
        ``SLT`` prints the last sample at once, then takes a new one and
        stores it, then prompts.
        """
        bench = _Bench()
        taken = bench.sample()
        self.assertEqual(bench.command("SLT"), taken + "\r\n")
        self.assertEqual(bench.send(b"", ACQUISITION_SECONDS), b"\r\nS>")
        self.assertEqual(bench.sbe37.samplenum, 1)
        self.assertNotEqual(bench.lines("SL"), [taken])
        self.assertEqual(bench.lines("SL"), bench.lines("DD1,1"))

    def test_inputWhileBusyWaits(self) -> None:
        """
        Commands sent while a sample is being taken run after it, in order.
        """
        bench = _Bench()
        reply = bench.send(b"TS\r\nINTERVAL=7\r\n", ACQUISITION_SECONDS).decode()
        self.assertTrue(reply.startswith("TS\r\n"))
        self.assertTrue(reply.endswith("\r\n\r\nS>INTERVAL=7\r\n\r\nS>"), reply)
        self.assertEqual(bench.sbe37.setup.interval, 7)


class LoggingTests(SynchronousTestCase):
    """
    STARTNOW, STARTLATER, STOP, the samples logged, and what a logging
    instrument refuses.
    """

    def start(self, bench: _Bench) -> None:
        """
        Start logging; check the reply.
        """
        self.assertEqual(bench.lines("STARTNOW"), ["start now"])

    def test_samplesAtInterval(self) -> None:
        """
        Logging prints a ``#`` sample, CR LF ended, every INTERVAL, each
        stamped INTERVAL after the last, and counts them in SAMPLENUM.
        """
        bench = _Bench()
        bench.lines("INTERVAL=10")
        self.start(bench)
        self.assertEqual(bench.send(b"", ACQUISITION_SECONDS - 0.01), b"")
        times = []
        for k in range(3):
            output = bench.send(b"", 0.01 if k == 0 else 10).decode()
            self.assertTrue(output.startswith("#") and output.endswith("\r\n"), output)
            match = SAMPLE.match(output[1:-2])
            assert match is not None, output
            times.append(match.group(7))
        self.assertEqual(times, ["19:11:43", "19:11:53", "19:12:03"])
        self.assertEqual(bench.sbe37.samplenum, 3)

    def test_timeScale(self) -> None:
        """
        At a time scale of 15, an INTERVAL of 15 s passes in one second:
        ten seconds give ten samples.
        """
        bench = _Bench(time_scale=15.0)
        self.start(bench)
        bench.clock.pump([0.1] * 100)
        output = bench.link.take().decode()
        self.assertEqual(output.count("#"), 10)
        self.assertEqual(bench.sbe37.samplenum, 10)

    def test_noDriftWhenLate(self) -> None:
        """
        Sample times stay on the INTERVAL grid however late the reactor
        runs the timers.
        """
        bench = _Bench()
        self.start(bench)
        bench.clock.advance(62)
        stamps = re.findall(r"\d\d:\d\d:\d\d", bench.link.take().decode())
        self.assertEqual(
            stamps, ["19:11:43", "19:11:58", "19:12:13", "19:12:28", "19:12:43"]
        )

    def test_txrealtimeOff(self) -> None:
        """
        With TXREALTIME=N samples are stored but not printed.
        """
        bench = _Bench()
        bench.lines("TXREALTIME=N")
        self.start(bench)
        self.assertEqual(bench.send(b"", 31), b"")
        self.assertEqual(bench.sbe37.samplenum, 3)

    def test_statusWhileLogging(self) -> None:
        """
        ``DS`` says ``logging data`` while logging and the stop reason
        after ``STOP``; no sample follows ``STOP``.
        """
        bench = _Bench()
        self.start(bench)
        self.assertEqual(bench.lines("DS")[1], "logging data")
        self.assertEqual(bench.lines("STOP"), [])
        self.assertEqual(bench.lines("DS")[1], "not logging: received stop command")
        self.assertEqual(bench.send(b"", 60), b"")
        self.assertFalse(bench.sbe37.logging)

    def test_notAllowedWhileLogging(self) -> None:
        """
        While logging, every command but DS, DC, TS, SL, SLT, QS and STOP
        gets ``cmd not allowed while logging`` and the prompt, and changes
        nothing.
        """
        bench = _Bench(echo=False)
        bench.lines("TXREALTIME=N")
        self.start(bench)
        refused = [
            "TSR", "STARTNOW", "STARTLATER", "INITLOGGING", "TC", "TT", "TP",
            "DD1,1", "INTERVAL=10", "NAVG=2", "SAMPLENUM=0", "MMDDYY=010120",
            "HHMMSS=000000", "TA0=1", "FORMAT=0", "STARTHHMMSS=120000",
        ]  # fmt: skip
        for command in refused:
            self.assertEqual(
                bench.lines(command), ["cmd not allowed while logging"], command
            )
        self.assertEqual(bench.sbe37.setup.interval, 15)
        self.assertEqual(bench.command("BOGUS"), "\r\n?cmd S>")

    def test_allowedWhileLogging(self) -> None:
        """
        The commands the spec allows while logging work, and logging goes
        on after each (QS puts it to sleep, still logging).
        """
        self.assertEqual(
            ALLOWED_WHILE_LOGGING, {"DS", "DC", "TS", "SL", "SLT", "QS", "STOP"}
        )
        bench = _Bench(echo=False)
        bench.lines("TXREALTIME=N")
        self.start(bench)
        self.assertEqual(bench.lines("DS")[1], "logging data")
        self.assertEqual(bench.lines("DC"), SPEC_DC.splitlines())
        self.assertIsNotNone(SAMPLE.match(bench.sample("TS")))
        self.assertIsNotNone(SAMPLE.match(bench.lines("SL")[0]))
        bench.send(b"SLT\r\n", ACQUISITION_SECONDS)
        self.assertEqual(bench.command("QS"), "")
        self.assertIs(bench.sbe37.mode, Mode.ASLEEP)
        bench.clock.advance(30)
        self.assertTrue(bench.sbe37.logging)
        bench.send(b"\r\n", WAKE_SECONDS)
        self.assertEqual(bench.lines("STOP"), [])
        self.assertFalse(bench.sbe37.logging)

    def test_loggingWhileAsleep(self) -> None:
        """
        A logging instrument that falls asleep keeps printing samples.
        """
        bench = _Bench()
        self.start(bench)
        bench.clock.advance(IDLE_SLEEP_SECONDS + 1)
        self.assertIs(bench.sbe37.mode, Mode.ASLEEP)
        bench.link.take()
        self.assertEqual(bench.send(b"", 15).count(b"#"), 1)

    def test_startLater(self) -> None:
        """
        STARTLATER announces the start time, DS says it is waiting, and
        logging starts then.
        """
        bench = _Bench()
        self.assertEqual(bench.lines("STARTMMDDYY=020513"), [])
        self.assertEqual(bench.lines("STARTHHMMSS=191300"), [])
        self.assertEqual(
            bench.lines("STARTLATER"), ["start time = 05 Feb 2013 19:13:00"]
        )
        self.assertEqual(
            bench.lines("DS")[1],
            "not logging: waiting to start at 05 Feb 2013 19:13:00",
        )
        self.assertEqual(bench.lines("INTERVAL=20"), [])
        bench.clock.advance(76)
        self.assertFalse(bench.sbe37.logging)
        bench.clock.advance(1)
        self.assertTrue(bench.sbe37.logging)
        bench.clock.advance(ACQUISITION_SECONDS)
        self.assertIn(b"05 Feb 2013, 19:13:00\r\n", bench.link.take())

    def test_startLaterFollowsClock(self) -> None:
        """
        Setting the clock while waiting moves the start with the clock.
        """
        bench = _Bench()
        bench.lines("STARTDDMMYY=050213")
        bench.lines("STARTHHMMSS=200000")
        bench.lines("STARTLATER")
        bench.lines("HHMMSS=195959")
        bench.clock.advance(1)
        self.assertTrue(bench.sbe37.logging)

    def test_startLaterInPast(self) -> None:
        """
        A start time already past starts logging at once.
        """
        bench = _Bench()
        bench.lines("STARTMMDDYY=010113")
        bench.lines("STARTHHMMSS=000000")
        self.assertEqual(
            bench.lines("STARTLATER"), ["start time = 01 Jan 2013 00:00:00"]
        )
        self.assertTrue(bench.sbe37.logging)

    def test_startLaterNeedsTime(self) -> None:
        """
        STARTLATER without a start date and time is refused.
        """
        bench = _Bench()
        bench.lines("STARTHHMMSS=120000")
        self.assertEqual(
            bench.lines("STARTLATER"),
            ["***ERROR: set STARTMMDDYY= and STARTHHMMSS= before STARTLATER***"],
        )

    def test_stopCancelsStartLater(self) -> None:
        """
        STOP cancels a pending delayed start.
        """
        bench = _Bench()
        bench.lines("STARTMMDDYY=020513")
        bench.lines("STARTHHMMSS=191300")
        bench.lines("STARTLATER")
        bench.lines("STOP")
        bench.clock.advance(200)
        self.assertFalse(bench.sbe37.logging)
        self.assertIsNone(bench.sbe37.waiting_to_start)

    def test_memoryFull(self) -> None:
        """
        Logging stops when memory is full, and DS says why.
        """
        bench = _Bench()
        bench.lines(f"SAMPLENUM={CAPACITY - 1}")
        self.start(bench)
        bench.clock.advance(ACQUISITION_SECONDS)
        bench.clock.advance(15)
        bench.link.take()
        self.assertEqual(bench.sbe37.samplenum, CAPACITY)
        self.assertEqual(bench.lines("DS")[1], "not logging: memory full")


class StoredSampleTests(SynchronousTestCase):
    """
    DDb,e, SAMPLENUM= and INITLOGGING.
    """

    def test_ddShowsLoggedSamples(self) -> None:
        """
        ``DDb,e`` prints stored samples b to e as they were printed while
        logging, without the ``#``.
        """
        bench = _Bench()
        bench.lines("STARTNOW")
        bench.clock.pump([ACQUISITION_SECONDS] + [15] * 3)
        logged = [line[1:] for line in bench.link.take().decode().splitlines()]
        bench.lines("STOP")
        self.assertEqual(bench.lines("DD1,4"), logged)
        self.assertEqual(bench.lines("DD 2, 3"), logged[1:3])

    def test_ddUsesStoredTimeFlag(self) -> None:
        """
        A sample stored without its time is shown without it, whatever
        STORETIME says now.
        """
        bench = _Bench()
        bench.lines("STORETIME=N")
        bench.send(b"SLT\r\n", ACQUISITION_SECONDS)
        bench.lines("STORETIME=Y")
        self.assertEqual(len(bench.lines("DD1,1")[0].split(",")), 5)

    def test_ddErrors(self) -> None:
        """
        A range outside the stored samples, or a malformed one, is refused.
        """
        bench = _Bench()
        bench.lines("SAMPLENUM=3")
        range_error = ["***ERROR: DD needs 1 <= b <= e <= 3 (samplenumber)***"]
        for bad in ("DD0,1", "DD2,1", "DD1,4"):
            self.assertEqual(bench.lines(bad), range_error, bad)
        for bad in ("DD", "DD1", "DDX"):
            self.assertEqual(
                bench.lines(bad),
                ["***ERROR: DD needs first and last sample numbers: DDb,e***"],
                bad,
            )

    def test_samplenumResizes(self) -> None:
        """
        SAMPLENUM= below the count forgets samples; above it, the memory
        holds older samples INTERVAL apart ending now.
        """
        bench = _Bench()
        bench.lines("SAMPLENUM=3")
        lines = bench.lines("DD1,3")
        self.assertEqual(
            [line.rsplit(", ", 1)[1] for line in lines],
            ["19:10:58", "19:11:13", "19:11:28"],
        )
        bench.lines("SAMPLENUM=1")
        self.assertEqual(bench.lines("DD1,1"), lines[:1])
        self.assertEqual(bench.sbe37.samplenum, 1)

    def test_initlogging(self) -> None:
        """
        INITLOGGING empties the memory.
        """
        bench = _Bench()
        bench.lines("SAMPLENUM=10")
        self.assertEqual(bench.lines("INITLOGGING"), [])
        self.assertEqual(bench.lines("DS")[3], "samplenumber = 0, free = 191362")


class SelfTestTests(SynchronousTestCase):
    """
    TC, TT and TP print one reading a second until a key or 100 readings.
    """

    def test_tt(self) -> None:
        """
        TT prints a temperature each second; any key ends it with the
        prompt (the key is not a command).
        """
        bench = _Bench()
        self.assertEqual(bench.command("TT", 0.99), "")
        bench.clock.pump([0.01, 1, 1])
        lines = bench.link.take().decode().split("\r\n")
        self.assertEqual(len(lines), 4)
        for line in lines[:3]:
            self.assertRegex(line, r"^ *\d+\.\d{4}$")
        self.assertEqual(bench.send(b"X"), b"\r\nS>")
        self.assertEqual(bench.send(b"", 5), b"")
        self.assertIs(bench.sbe37.mode, Mode.COMMAND)

    def test_formats(self) -> None:
        """
        TC prints conductivity (5 decimals), TP pressure (3 decimals).
        """
        bench = _Bench()
        bench.command("TC")
        self.assertRegex(bench.send(b"", 1).decode(), r"^ *\d\.\d{5}\r\n$")
        bench.send(b" ")
        bench.command("TP")
        self.assertRegex(bench.send(b"", 1).decode(), r"^ *\d+\.\d{3}\r\n$")

    def test_endsAfterHundred(self) -> None:
        """
        After 100 readings the test ends by itself with the prompt.
        """
        bench = _Bench()
        bench.command("TT")
        bench.clock.pump([1] * 100)
        output = bench.link.take().decode()
        self.assertEqual(output.count("\r\n"), 101)
        self.assertTrue(output.endswith("\r\n\r\nS>"))
        self.assertIs(bench.sbe37.mode, Mode.COMMAND)

    def test_noSleepDuringTest(self) -> None:
        """
        The idle timer does not put a self-testing instrument to sleep.
        """
        bench = _Bench()
        bench.command("TT")
        bench.clock.pump([1] * 99)
        self.assertIs(bench.sbe37.mode, Mode.SELF_TEST)


class FaultTests(SynchronousTestCase):
    """
    Faults injected into an SBE 37's line, as a driver would meet them.
    """

    def test_cutSample(self) -> None:
        """
        A sample line cut in transit arrives as a first half with no line
        end, then the rest later.
        """
        bench = _Bench()
        bench.lines("STARTNOW")
        bench.sbe37.faults.cut_next_line(resume_after=2.0)
        first = bench.send(b"", ACQUISITION_SECONDS)
        self.assertTrue(first.startswith(b"#"))
        self.assertNotIn(b"\n", first)
        self.assertEqual(bench.send(b"", 1.99), b"")
        rest = bench.send(b"", 0.01)
        self.assertIsNotNone(SAMPLE.match((first + rest).decode()[1:-2]))

    def test_silentInstrumentKeepsLogging(self) -> None:
        """
        A silent line loses the samples sent meanwhile; the instrument goes
        on logging and they are in its memory.
        """
        bench = _Bench()
        bench.lines("STARTNOW")
        bench.sbe37.faults.go_silent(30)
        bench.link.send(b"DS\r\n")
        bench.clock.pump([1] * 30)
        self.assertEqual(bench.link.take(), b"")
        self.assertEqual(bench.sbe37.samplenum, 2)
        self.assertRegex(bench.send(b"", 15), rb"^#[^#]+\r\n$")

    def test_garbageBetweenSamples(self) -> None:
        """
        Garbage arrives between whole sample lines, and the instrument's
        dialogue carries on after it.
        """
        bench = _Bench()
        bench.lines("STARTNOW")
        first = bench.send(b"", ACQUISITION_SECONDS)
        bench.sbe37.faults.emit_garbage(data=b"\x00\xffnoise")
        rest = bench.send(b"", 15)
        self.assertEqual(rest[:7], b"\x00\xffnoise")
        self.assertIsNotNone(SAMPLE.match(rest[8:-2].decode()))
        self.assertIsNotNone(SAMPLE.match(first[1:-2].decode()))
        self.assertEqual(bench.lines("DS")[1], "logging data")

    def test_slowAnswers(self) -> None:
        """
        With slow answers, the echo and the reply each come late.
        """
        bench = _Bench()
        bench.sbe37.faults.answer_slowly(2.0)
        self.assertEqual(bench.send(b"DS\r\n", 1.99), b"")
        self.assertTrue(bench.send(b"", 0.01).startswith(b"DS\r\nSBE37-SMP"))

    def test_dropKeepsInstrument(self) -> None:
        """
        A dropped link closes the connection; the instrument logs on, and a
        new connection hears it.
        """
        bench = _Bench()
        bench.lines("STARTNOW")
        bench.sbe37.faults.drop_link()
        self.assertFalse(bench.link.connected)
        bench.clock.advance(31)
        bench.link.reconnect()
        self.assertEqual(bench.send(b"", 15).count(b"#"), 1)
        self.assertEqual(bench.sbe37.samplenum, 4)

    def test_stopLeavesNoTimers(self) -> None:
        """
        Stopping the simulator cancels every timer: logging, idle, faults.
        """
        bench = _Bench()
        bench.lines("STARTNOW")
        bench.sbe37.faults.go_silent(10)
        bench.sbe37.faults.answer_slowly(1)
        bench.link.send(b"DS\r\n")
        self.assertNotEqual(bench.clock.getDelayedCalls(), [])
        bench.sbe37.stop()
        self.assertEqual([c for c in bench.clock.getDelayedCalls() if c.active()], [])
