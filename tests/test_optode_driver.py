"""
Tests for the Aanderaa optode driver
(L{instrumentd.instruments.aanderaa.optode.driver}), deterministic: the driver
and the optode simulator in one process on a C{Clock}
(L{instrumentd.testing.DriverBench}).  The real parts are in
C{tests.test_optode_e2e}.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from instrumentd.driver.chunker import Chunker
from instrumentd.driver.errors import InstrumentProtocolError
from instrumentd.driver.events import ConfigChangeEvent
from instrumentd.instruments.aanderaa.optode.driver import OptodeProtocol
from instrumentd.instruments.aanderaa.optode.particles import (
    SIEVES,
    OptodeSample,
    OptodeStatus,
)
from instrumentd.instruments.aanderaa.optode.simulator import OptodeSimulator
from instrumentd.simulator import SimulatorSettings
from instrumentd.testing import DriverBench, undeclared_fields

#: The spec's real lines (OOI moored 4831 s/n 379; profiler s/n 209 without
#: air saturation, after a '?%'; 4330F text on, FW3 and FW2).
REAL_PLAIN = (
    b"4831\t379\t354.255\t94.962\t7.658\t32.971\t32.971\t41.373\t8.402"
    b"\t738.5\t797.6\t448.6\r\n"
)
REAL_NO_SATURATION = (
    b"?%4831\t209\t234.656\t9.091\t36.930\t36.930\t46.151\t9.221\t1047.5"
    b"\t979.7\t637.7\r\n"
)
REAL_TEXT = (
    b"MEASUREMENT\t4330F\t832\tO2Concentration[uM]\t299.573\tAirSaturation[%]"
    b"\t111.641\tTemperature[Deg.C]\t22.893\tCalPhase[Deg]\t26.866\tTCPhase[Deg]"
    b"\t28.905\tC1RPh[Deg]\t36.820\tC2RPh[Deg]\t7.915\tC1Amp[mV]\t3048.6"
    b"\tC2Amp[mV]\t1312.1\tRawTemp[mV]\t88.3\r\n"
)
REAL_FW2 = (
    b"MEASUREMENT\t4330F\t829\tO2Concentration(uM)\t263.870\tAirSaturation(%)"
    b"\t99.293\tTemperature(Deg.C)\t23.349\tCalPhase(Deg)\t27.110\tTCPhase(Deg)"
    b"\t30.200\tC1RPh(Deg)\t34.202\tC2RPh(Deg)\t4.002\tC1Amp(mV)\t595.3"
    b"\tC2Amp(mV)\t697.2\tRawTemp(mV)\t185.3\t\r\n"
)


def values(particle: Any) -> dict[str, object]:
    return {entry["value_id"]: entry["value"] for entry in particle.values}


def bench_for(
    test: SynchronousTestCase, connect: str | None = "COMMAND", **options: str
) -> DriverBench:
    """
    A driver and an optode just powered up, connected and discovered
    (unless C{connect} is None).
    """
    clock = Clock()
    clock.advance(1_700_000_000)
    optode = OptodeSimulator(SimulatorSettings(options=options), reactor=clock)
    bench = DriverBench(OptodeProtocol, optode, clock)
    test.addCleanup(bench.close)
    if connect is not None:
        bench.connect(connect)
    return bench


class ParticleTests(SynchronousTestCase):
    """
    Sample lines in every form the spec shows, and the status dump.
    """

    def test_realPlain(self) -> None:
        """
        A text-off line with every field reads as OOI's DOSTA values.
        """
        sample = values(OptodeSample(REAL_PLAIN, driver_timestamp=1.0))
        self.assertEqual(sample["product_number"], "4831")
        self.assertEqual(sample["oxygen_concentration"], 354.255)
        self.assertEqual(sample["oxygen_saturation"], 94.962)
        self.assertEqual(sample["optode_temperature"], 7.658)
        self.assertEqual(sample["raw_temperature"], 448.6)

    def test_withoutSaturation(self) -> None:
        """
        Nine values are the line without air saturation, and the sleep and
        wake marks before it are no part of it.
        """
        [record] = _records(REAL_NO_SATURATION)
        sample = values(OptodeSample(record, driver_timestamp=1.0))
        self.assertIsNone(sample["oxygen_saturation"])
        self.assertEqual(sample["optode_temperature"], 9.091)
        self.assertEqual(sample["serial_number"], "209")

    def test_textForms(self) -> None:
        """
        Text lines, square (FW3) or round (FW2) brackets, product letters
        and a trailing TAB.
        """
        for line in (REAL_TEXT, REAL_FW2):
            [record] = _records(line)
            sample = values(OptodeSample(record, driver_timestamp=1.0))
            self.assertEqual(sample["product_number"], "4330F")
            self.assertIsInstance(sample["red_amplitude"], float)
        self.assertEqual(
            values(OptodeSample(REAL_TEXT, driver_timestamp=1.0))["blue_phase"], 36.82
        )

    def test_getReplyIsNoSample(self) -> None:
        """
        A Get reply (a TAB before the product number) is not a sample.
        """
        self.assertEqual(_records(b"Interval\t4831\t379\t5.000\r\n"), [])

    def test_unknownCountRefused(self) -> None:
        """
        Values without names in a count that cannot be told apart are an
        error, not a guess.
        """
        self.assertRaises(
            InstrumentProtocolError,
            OptodeSample,
            b"4831\t379\t1.0\t2.0\t3.0\t4.0\r\n",
            driver_timestamp=1.0,
        )

    def test_unitsDeclared(self) -> None:
        """
        Every value of both streams has its units.
        """
        self.assertEqual(undeclared_fields(OptodeProtocol), [])
        streams = OptodeProtocol.stream_metadata()
        self.assertEqual(
            streams["dosta_sample"]["oxygen_concentration"]["units"], "umol L-1"
        )

    @settings(max_examples=60, deadline=None)
    @given(
        cuts=st.lists(st.integers(0, 400), max_size=8),
        junk=st.binary(max_size=12).filter(lambda b: b"\n" not in b),
    )
    def test_anyChunking(self, cuts: list[int], junk: bytes) -> None:
        """
        However the stream is cut and whatever junk comes between lines,
        exactly the whole sample lines are records, and a line cut short at
        the end is not.
        """
        stream = junk + b"\r\n" + REAL_PLAIN + b"%!" + REAL_TEXT + REAL_PLAIN[:30]
        chunker = Chunker(SIEVES)
        last = 0
        records = []
        for cut in [*sorted({min(c, len(stream)) for c in cuts}), len(stream)]:
            chunker.add_chunk(stream[last:cut], 1.0)
            records.extend(r.data for r in chunker.take_records())
            last = cut
        self.assertEqual(records, [REAL_PLAIN, REAL_TEXT])


def _records(data: bytes) -> list[bytes]:
    chunker = Chunker(SIEVES)
    chunker.add_chunk(data, 1.0)
    return [record.data for record in chunker.take_records()]


class DriverTests(SynchronousTestCase):
    """
    Every capability against the simulator.
    """

    def test_discoverPolled(self) -> None:
        """
        In polled mode the driver finds the sensor in COMMAND and has read
        its settings.
        """
        bench = bench_for(self, enable_polled_mode="yes")
        self.assertEqual(bench.state, "COMMAND")
        protocol = bench.driver.protocol
        assert protocol is not None
        self.assertIs(protocol.parameters.get("ENABLE_POLLED_MODE"), True)

    def test_discoverSampling(self) -> None:
        """
        Sampling from power-up, the sensor is found in AUTOSAMPLE, and its
        samples are published.
        """
        bench = bench_for(self, "AUTOSAMPLE", interval="2")
        bench.run(5)
        self.assertGreaterEqual(len(bench.particles("dosta_sample")), 2)

    def test_stoppedSensorIsCommand(self) -> None:
        """
        A sensor told to stop (no samples come) is found in COMMAND.
        """
        bench = bench_for(self, None, interval="2")
        bench.run(2)
        bench.instrument._stop_sampling()  # as after a Stop before the link
        bench.connect("COMMAND")

    def test_acquireSample(self) -> None:
        """
        C{acquire_sample} returns the values and publishes the particle.
        """
        bench = bench_for(self, enable_polled_mode="yes")
        bench.run(2)
        before = len(bench.particles("dosta_sample"))
        result = bench.result(bench.driver.execute_resource("acquire_sample"))
        self.assertTrue(150 < result["oxygen_concentration"] < 450)  # type: ignore[operator]
        [particle] = bench.particles("dosta_sample")[before:]
        self.assertEqual(values(particle), result)

    def test_acquireStatus(self) -> None:
        """
        C{acquire_status} returns the properties and publishes them.
        """
        bench = bench_for(self, enable_polled_mode="yes")
        before = len(bench.particles("dosta_status"))
        status = bench.result(bench.driver.execute_resource("acquire_status"))
        self.assertEqual(status["interval"], 5.0)
        self.assertEqual(status["phasecoef"], [0.0, 1.0, 0.0, 0.0])
        self.assertEqual(len(bench.particles("dosta_status")), before + 1)

    def test_startStop(self) -> None:
        """
        C{start_autosample} starts interval sampling, C{stop_autosample}
        ends it.
        """
        bench = bench_for(self, "AUTOSAMPLE", interval="2")
        bench.driver.execute_resource("stop_autosample")
        bench.run_until(lambda: bench.state == "COMMAND", 10)
        before = len(bench.particles("dosta_sample"))
        bench.run(6)
        self.assertEqual(len(bench.particles("dosta_sample")), before)
        bench.result(bench.driver.execute_resource("start_autosample"))
        self.assertEqual(bench.state, "AUTOSAMPLE")
        bench.run(4.5)
        self.assertGreaterEqual(len(bench.particles("dosta_sample")), before + 2)

    def test_setWithPasskey(self) -> None:
        """
        A set sends the passkey the values need, the Set, and Save; the
        value reads back and a config change is published.
        """
        bench = bench_for(self, enable_polled_mode="yes")
        bench.result(bench.driver.set_resource({"INTERVAL": 30.0}))
        self.assertIn(
            b"Set Passkey(1)\r\nSet Interval(30.0)\r\nSave\r\n", bench.sent_text()
        )
        self.assertEqual(bench.instrument.saved["Interval"], 30.0)
        self.assertTrue(bench.of_type(ConfigChangeEvent))
        bench.result(bench.driver.set_resource({"SALINITY": 35.0}))
        self.assertIn(b"Set Passkey(1000)\r\nSet Salinity(35.0)", bench.sent_text())
        self.assertEqual(bench.instrument.values["Salinity"], 35.0)

    def test_badValueRefusedBeforeSending(self) -> None:
        """
        A value out of range is refused by the driver, naming it.
        """
        bench = bench_for(self, enable_polled_mode="yes")
        sent = len(bench.connection.sent)
        d = bench.driver.set_resource({"INTERVAL": 0.5})
        failure = self.failureResultOf(bench.wait(d))
        self.assertIn("INTERVAL", str(failure.value))
        self.assertEqual(len(bench.connection.sent), sent)

    def test_instrumentRefusal(self) -> None:
        """
        A command the sensor refuses (C{Start} in polled mode) fails with
        its error line.
        """
        bench = bench_for(self, enable_polled_mode="yes")
        failure = self.failureResultOf(
            bench.wait(bench.driver.execute_resource("start_autosample"))
        )
        self.assertIn("*ERROR POLLED MODE ENABLED", str(failure.value))
        self.assertEqual(bench.state, "COMMAND")

    def test_wakesSleepingSensor(self) -> None:
        """
        A sensor asleep (its receiver timed out) is woken and the command
        goes through, even with its wake indicator off.
        """
        for indicator in ("yes", "no"):
            bench = bench_for(
                self, enable_polled_mode="yes", enable_comm_indicator=indicator
            )
            bench.run(61)
            self.assertFalse(bench.instrument.awake)
            status = bench.result(bench.driver.execute_resource("acquire_status"))
            self.assertEqual(status["serial_number"], 379.0)

    def test_asleepSoonerThanThought(self) -> None:
        """
        A sensor that fell asleep while the driver thought it awake loses
        the command that wakes it; the driver sends it again after a
        wake-up, and it goes through.
        """
        bench = bench_for(self, enable_polled_mode="yes", enable_comm_indicator="no")
        bench.instrument.fall_asleep()
        status = bench.result(bench.driver.execute_resource("acquire_status"))
        self.assertEqual(status["serial_number"], 379.0)
        self.assertEqual(bench.sent_text().count(b"Get All\r\n"), 3)

    def test_followsCommTimeout(self) -> None:
        """
        The driver learns the sensor's Comm TimeOut and wakes it before a
        command sent after that long idle.
        """
        bench = bench_for(self, enable_polled_mode="yes", comm_timeout="10 s")
        protocol = bench.driver.protocol
        assert protocol is not None
        self.assertEqual(protocol.engine.sleep_after, 8.0)
        bench.run(9)
        sent = len(bench.connection.sent)
        bench.result(bench.driver.execute_resource("acquire_status"))
        self.assertEqual(bench.connection.sent[sent], b"//\r\n")

    def test_directAccessRestores(self) -> None:
        """
        A setting changed in direct access is set back when it ends.
        """
        bench = bench_for(self, enable_polled_mode="yes", comm_timeout="Always On")
        bench.result(bench.driver.start_direct())
        for line in (b"Set Passkey(1)\r\n", b"Set Interval(99)\r\n", b"Save\r\n"):
            bench.result(bench.driver.execute_direct(line))
            bench.run(0.2)
        self.assertEqual(bench.instrument.values["Interval"], 99.0)
        bench.result(bench.driver.stop_direct())
        bench.run_until(lambda: bench.instrument.values["Interval"] == 5.0, 20)
        self.assertEqual(bench.state, "COMMAND")

    def test_droppedLinkRecovers(self) -> None:
        """
        After the line drops and comes back, the driver finds the sensor's
        state again by itself.
        """
        bench = bench_for(self, "AUTOSAMPLE", interval="2")
        bench.instrument.faults.drop_link()
        bench.run(1)
        bench.connection.plug_in()
        bench.run_until(lambda: bench.state == "AUTOSAMPLE", 20)

    def test_statusParticle(self) -> None:
        """
        The dump's values: booleans, floats, lists, text.
        """
        bench = bench_for(self, enable_polled_mode="yes")
        bench.result(bench.driver.execute_resource("acquire_status"))
        status = bench.particles("dosta_status")[-1]
        found = values(status)
        self.assertIs(found["enable_polled_mode"], True)
        self.assertEqual(found["mode"], "Smart Sensor Terminal")
        self.assertEqual(found["foilid"], "1207M")
        self.assertIsInstance(status, OptodeStatus)
