"""
Tests for the simulated Aanderaa 4831 optode
(L{instrumentd.instruments.aanderaa.optode.simulator}): its dialogue, sleep
and wake with lost characters, passkeys, sampling and output formats, and
the physics that makes its values hang together.

All in memory, with a C{Clock} and an L{InProcessLink}.
"""

from __future__ import annotations

import re

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from instrumentd.instruments.aanderaa.optode.oxygen import concentration
from instrumentd.instruments.aanderaa.optode.simulator import (
    MEASURE_SECONDS,
    WAKE_SECONDS,
    OptodeSimulator,
)
from instrumentd.simulator import InProcessLink, SimulatorSettings, make_simulator

#: A text-off sample line with every field: product, serial, ten values.
PLAIN = re.compile(r"^4831\t379(\t-?\d+\.\d{1,3}){10}\r\n$")


class _Bench:
    """
    An optode on a bench, just powered up and awake.
    """

    def __init__(self, **options: str) -> None:
        self.clock = Clock()
        self.clock.advance(1_000)
        self.optode = OptodeSimulator(
            SimulatorSettings(options=options), reactor=self.clock
        )
        self.link = InProcessLink(self.optode)
        self.clock.advance(0)
        self.power_up_output = self.run(MEASURE_SECONDS + 0.05)

    def run(self, seconds: float) -> str:
        # In steps: a Clock schedules what a call schedules from the end
        # of its advance, not from the call's own time.
        steps = max(1, round(seconds / 0.05))
        for _ in range(steps):
            self.clock.advance(seconds / steps)
        return self.link.take().decode("latin-1")

    def command(self, text: str, wait: float = 0.01) -> str:
        self.link.send(text.encode("latin-1") + b"\r\n")
        return self.run(wait)


class DialogueTests(SynchronousTestCase):
    """
    Commands, acknowledgements and errors, as the spec describes them.
    """

    def setUp(self) -> None:
        self.bench = _Bench(enable_polled_mode="yes")

    def test_powerUpSample(self) -> None:
        """
        At power-up the optode takes one sample, and with text off prints no
        start-up line; no echo.
        """
        self.assertRegex(self.bench.power_up_output, PLAIN)

    def test_getProperty(self) -> None:
        """
        C{Get} prints name, product, serial and value, TAB-separated, in
        any case of the command and name.
        """
        self.assertEqual(
            self.bench.command("get interval"), "Interval\t4831\t379\t5.000\r\n"
        )
        self.assertEqual(
            self.bench.command("GET Enable Polled Mode"),
            "Enable Polled Mode\t4831\t379\tYes\r\n",
        )

    def test_getAll(self) -> None:
        """
        C{Get All} prints every property, coefficient arrays in exponential
        form, ending with C{SVUFoilCoef}.
        """
        lines = self.bench.command("Get All").split("\r\n")
        self.assertEqual(lines[0], "Product Name\t4831\t379\tOptode")
        self.assertIn(
            "PhaseCoef\t4831\t379\t0.000000E+00\t1.000000E+00\t0.000000E+00"
            "\t0.000000E+00",
            lines,
        )
        self.assertTrue(lines[-2].startswith("SVUFoilCoef\t4831\t379\t"))
        self.assertEqual(lines[-1], "")

    def test_passkey(self) -> None:
        """
        Settings need their passkey level: C{Interval} passkey 1, C{Salinity}
        1000; without it the error line starts with C{*}.
        """
        command = self.bench.command
        self.assertEqual(command("Set Interval(10)"), "*ERROR PROTECED PROPERTY\r\n")
        self.assertEqual(command("Set Passkey(1)"), "#\r\n")
        self.assertEqual(command("Set Interval(10)"), "#\r\n")
        self.assertEqual(command("Set Salinity(35)"), "*ERROR PROTECED PROPERTY\r\n")
        self.assertEqual(command("Set Passkey(1000)"), "#\r\n")
        self.assertEqual(command("Set Salinity(35)"), "#\r\n")
        self.assertEqual(command("Set Passkey(7)"), "*ERROR INVALID PASSKEY\r\n")

    def test_badValues(self) -> None:
        """
        Bad values, unknown properties and commands, read-only properties
        and ENUM values in the wrong case are errors.
        """
        command = self.bench.command
        command("Set Passkey(1000)")
        self.assertEqual(command("Set Interval(0)"), "*ERROR ARGUMENT OUT OF RANGE\r\n")
        self.assertEqual(command("Set Enable Text(maybe)"), "*ERROR ARGUMENT\r\n")
        self.assertEqual(command("Set Mode(AICAP)"), "*ERROR ARGUMENT\r\n")
        self.assertEqual(command("Set Mode(AiCaP)"), "#\r\n")
        self.assertEqual(command("Set Colour(red)"), "*ERROR UNKNOWN PROPERTY\r\n")
        self.assertEqual(
            command("Set Serial Number(5)"), "*ERROR READ ONLY PROPERTY\r\n"
        )
        self.assertEqual(command("Dance"), "*ERROR UNKNOWN COMMAND\r\n")

    def test_comments(self) -> None:
        """
        C{//} and C{;} lines are comments: no reply at all.
        """
        self.assertEqual(self.bench.command("//"), "")
        self.assertEqual(self.bench.command("; wake up"), "")

    def test_saveLoadReset(self) -> None:
        """
        C{Load} brings back the saved settings; C{Reset} restarts with them.
        """
        command = self.bench.command
        command("Set Passkey(1)")
        command("Set Interval(20)")
        self.assertEqual(command("Load"), "#\r\n")
        self.assertIn("\t5.000", command("Get Interval"))
        command("Set Passkey(1)")
        command("Set Interval(20)")
        command("Set Enable Text(yes)")
        self.assertEqual(command("Save"), "#\r\n")
        self.assertEqual(command("Reset"), "#\r\n")
        started = self.bench.run(0.6 + MEASURE_SECONDS)
        self.assertTrue(started.startswith("StartupInfo\t4831\t379\tMode\t"))
        self.assertIn("\r\nMEASUREMENT\t4831\t379\tO2Concentration[uM]\t", started)


class SleepTests(SynchronousTestCase):
    """
    The serial receiver sleeps after C{Comm TimeOut}; the bytes that wake it
    are lost.
    """

    def test_sleepsAndLosesWakingBytes(self) -> None:
        """
        After a minute without input it says C{%} and sleeps; a command sent
        then is lost, and the optode says C{!} once awake.
        """
        bench = _Bench(enable_polled_mode="yes")
        self.assertEqual(bench.run(60), "%")
        self.assertFalse(bench.optode.awake)
        self.assertEqual(bench.command("Get Interval", WAKE_SECONDS + 0.01), "!")
        self.assertEqual(
            bench.command("Get Interval"), "Interval\t4831\t379\t5.000\r\n"
        )

    def test_passkeyLapses(self) -> None:
        """
        The passkey level lapses when the receiver sleeps.
        """
        bench = _Bench(enable_polled_mode="yes")
        bench.command("Set Passkey(1)")
        bench.run(60)
        bench.command("//", WAKE_SECONDS + 0.01)
        self.assertEqual(
            bench.command("Set Interval(9)"), "*ERROR PROTECED PROPERTY\r\n"
        )

    def test_alwaysOnNeverSleeps(self) -> None:
        """
        With C{Comm TimeOut} C{Always On} it never sleeps.
        """
        bench = _Bench(enable_polled_mode="yes", comm_timeout="Always On")
        self.assertEqual(bench.run(3600), "")
        self.assertTrue(bench.optode.awake)

    def test_noIndicator(self) -> None:
        """
        With C{Enable Comm Indicator} off it sleeps and wakes silently.
        """
        bench = _Bench(enable_polled_mode="yes", enable_comm_indicator="no")
        self.assertEqual(bench.run(60), "")
        self.assertEqual(bench.command("//", 1), "")
        self.assertTrue(bench.optode.awake)


class SamplingTests(SynchronousTestCase):
    """
    Polled and interval sampling, and the output formats.
    """

    def test_intervalFromPowerUp(self) -> None:
        """
        Out of polled mode it samples every C{Interval} from power-up, while
        its receiver sleeps too; C{Stop} ends that and C{Start} begins it.
        """
        bench = _Bench(interval="2")
        lines = bench.run(10).replace("%", "").splitlines(keepends=True)
        self.assertEqual(len(lines), 5)
        for line in lines:
            self.assertRegex(line, PLAIN)
        bench.command("//", 0.1)
        self.assertEqual(bench.command("Stop").lstrip("!%"), "#\r\n")
        self.assertEqual(bench.run(10), "")
        self.assertEqual(bench.command("Start"), "#\r\n")
        self.assertEqual(len(bench.run(4.01).splitlines()), 2)

    def test_polled(self) -> None:
        """
        In polled mode nothing comes unasked; C{Do Sample} prints a line
        after the measurement; C{Start} is refused.
        """
        bench = _Bench(enable_polled_mode="yes", comm_timeout="Always On")
        self.assertEqual(bench.run(30), "")
        self.assertEqual(bench.command("Do Sample"), "")
        self.assertRegex(bench.run(MEASURE_SECONDS + 0.05), PLAIN)
        self.assertEqual(bench.command("Start"), "*ERROR POLLED MODE ENABLED\r\n")

    def test_text(self) -> None:
        """
        With C{Enable Text} each value follows its name and unit.
        """
        bench = _Bench(enable_polled_mode="yes", enable_text="yes")
        bench.command("Do Sample")
        line = bench.run(MEASURE_SECONDS + 0.05)
        self.assertRegex(
            line,
            r"^MEASUREMENT\t4831\t379\tO2Concentration\[uM\]\t\d+\.\d{3}\t"
            r"AirSaturation\[%\]\t\d+\.\d{3}\tTemperature\[Deg\.C\]\t-?\d+\.\d{3}\t"
            r"CalPhase\[Deg\]\t.*\tRawTemp\[mV\]\t\d+\.\d\r\n$",
        )

    def test_fieldsAndExponential(self) -> None:
        """
        Fields switched off are left out; with C{Enable Decimalformat} off
        the values are exponential.
        """
        bench = _Bench(
            enable_polled_mode="yes",
            enable_airsaturation="no",
            enable_rawdata="no",
            enable_decimalformat="no",
        )
        bench.command("Do Sample")
        self.assertRegex(
            bench.run(MEASURE_SECONDS + 0.05),
            r"^4831\t379\t\d\.\d{6}E\+02\t\d\.\d{6}E\+0[01]\r\n$",
        )

    def test_relations(self) -> None:
        """
        The values hang together as real ones do: TCPhase = C1RPh - C2RPh,
        CalPhase = TCPhase with the default PhaseCoef, and O2 from the
        saturation and temperature.
        """
        bench = _Bench(enable_polled_mode="yes")
        bench.command("Do Sample")
        values = [float(v) for v in bench.run(MEASURE_SECONDS + 0.05).split("\t")[2:]]
        o2, saturation, temperature, cal, tc, c1, c2 = values[:7]
        self.assertLess(abs(tc - (c1 - c2)), 0.0015)
        self.assertEqual(cal, tc)
        self.assertLess(abs(o2 - concentration(saturation, temperature, 0.0)), 0.1)
        self.assertTrue(150 < o2 < 450, o2)


class PhysicsTests(SynchronousTestCase):
    """
    The oxygen solubility against the spec's real lines.
    """

    def test_realLines(self) -> None:
        """
        94.962 % at 7.658 deg C is 354.255 uM; 111.641 % at 22.893 deg C is
        299.573 uM (the instruments' own figures, to 0.01).
        """
        self.assertLess(abs(concentration(94.962, 7.658, 0.0) - 354.255), 0.01)
        self.assertLess(abs(concentration(111.641, 22.893, 0.0) - 299.573), 0.01)


class RegistryTests(SynchronousTestCase):
    """
    The optode is a model C{simulate} knows.
    """

    def test_made(self) -> None:
        """
        C{make_simulator("optode")} makes one, serial number from the
        settings.
        """
        optode = make_simulator(
            "optode", SimulatorSettings(serial_number=591), reactor=Clock()
        )
        self.assertIsInstance(optode, OptodeSimulator)
        self.assertEqual(optode.describe(), "Aanderaa 4831 optode S/N 591")
        optode.stop()
