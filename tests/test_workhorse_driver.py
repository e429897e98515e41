"""
Tests for the Workhorse driver
(L{instrumentd.instruments.teledyne.workhorse.driver}), deterministic: the
driver and the simulator on one C{Clock} (L{tests.workhorse_bench}).  The
real parts (a port agent process, TCP and a pty) are in
L{tests.test_workhorse_e2e}.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from trdi_adcp_readers.readers import read_PD0_bytes
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from instrumentd.driver.errors import (
    InstrumentParameterError,
    InstrumentProtocolError,
    InstrumentStateError,
)
from instrumentd.driver.events import DirectAccessEvent, EventBus, SampleEvent
from instrumentd.instruments.teledyne.workhorse import pd0
from instrumentd.instruments.teledyne.workhorse.driver import WorkhorseProtocol
from instrumentd.instruments.teledyne.workhorse.particles import (
    VelocityBeamParticle,
    VelocityEarthParticle,
)
from instrumentd.instruments.teledyne.workhorse.simulator import BANNER, Mode
from instrumentd.testing import undeclared_fields
from tests.test_workhorse_pd0 import simulated_ensembles
from tests.workhorse_bench import Bench, values
from tests.workhorse_samples import EXAMPLE_A, EXAMPLE_B

COMMAND_CAPABILITIES = [
    "acquire_sample",
    "acquire_status",
    "apply_startup",
    "clock_sync",
    "get",
    "run_test_200",
    "save_setup",
    "set",
    "start_autosample",
    "start_direct",
]


def result(bench: Bench, command: str, limit: float = 60.0, **arguments: Any) -> Any:
    """
    Run a driver command to its end and return its result.
    """
    d = bench.wait(bench.driver.execute_resource(command, **arguments), limit)
    return d.result


class DiscoveryTests(SynchronousTestCase):
    """
    Finding out what the instrument is doing.
    """

    def test_asleepWokenByBreak(self) -> None:
        """
        Asleep: the bare CR gets nothing, a break wakes it (banner), the
        startup values are applied, COMMAND.
        """
        bench = Bench()
        bench.connect()
        self.assertEqual(bench.connection.sent[0], b"\r")
        self.assertEqual(bench.connection.breaks, [300])
        self.assertEqual(bench.protocol.engine.breaks_sent, 1)
        self.assertEqual(bench.adcp.setup["WN"], "100")
        self.assertEqual(bench.protocol.get_capabilities(), COMMAND_CAPABILITIES)

    def test_atThePromptNoBreak(self) -> None:
        """
        Awake at the prompt: the CR's prompt answers; no break is sent.
        """
        bench = Bench(awake=True)
        bench.connect()
        self.assertEqual(bench.adcp.breaks, 0)
        self.assertEqual(bench.connection.sent[0], b"\r")

    def test_pingingLeftPinging(self) -> None:
        """
        Pinging: an ensemble answers; AUTOSAMPLE without a break, and the
        deployment goes on.
        """
        bench = Bench(awake=True)
        bench.adcp.data_received(b"CS\r")
        bench.connect(until="AUTOSAMPLE")
        self.assertEqual(bench.adcp.breaks, 0)
        self.assertIs(bench.adcp.mode, Mode.PINGING)
        before = len(bench.particles("adcp_velocity_beam"))
        bench.run(3.0)
        self.assertGreater(len(bench.particles("adcp_velocity_beam")), before)

    def test_softBreakOverTcp(self) -> None:
        """
        Where the agent refuses a break (a TCP link), the driver sends
        C{===} instead.
        """
        bench = Bench()
        bench.connection.can_break = False
        bench.connect()
        self.assertIn(b"===", bench.connection.sent)
        self.assertTrue(bench.protocol.engine.break_refused)


class CommandTests(SynchronousTestCase):
    """
    The capabilities in command mode and while pinging.
    """

    def setUp(self) -> None:
        self.bench = Bench()
        self.bench.connect()

    def test_acquireSample(self) -> None:
        """
        One ensemble with ensemble cycling off; its values are returned and
        published; the flow control is put back.
        """
        bench = self.bench
        sample = result(bench, "acquire_sample")
        [particle] = bench.particles("adcp_velocity_beam")
        self.assertEqual(values(particle), sample)
        self.assertEqual(sample["num_cells"], 100)
        self.assertEqual(len(sample["beam_1_velocity"]), 100)
        self.assertEqual(bench.adcp.setup["CF"], "11110")
        self.assertIs(bench.adcp.mode, Mode.COMMAND)
        self.assertEqual(len(bench.particles("adcp_config")), 1)
        self.assertEqual(len(bench.particles("adcp_engineering")), 1)

    def test_status(self) -> None:
        """
        PS0 values, and the particle.
        """
        status = result(self.bench, "acquire_status")
        self.assertEqual(status["serial_number"], 18444)
        self.assertEqual(status["frequency"], 76800)
        [particle] = self.bench.particles("adcp_system_configuration")
        self.assertEqual(values(particle), status)

    def test_pt200(self) -> None:
        """
        PT200: the test results after several seconds, and the particle.
        """
        tests = result(self.bench, "run_test_200")
        self.assertEqual(tests["transmit_test"], "0 ... PASS")
        self.assertEqual(tests["rssi_results"], ["PASS"] * 4)
        self.assertEqual(len(self.bench.particles("adcp_test_results")), 1)

    def test_autosample(self) -> None:
        """
        Start: ensembles every TE; a clock sync while pinging breaks, sets
        the clock and starts again; stop: a break, COMMAND.
        """
        bench = self.bench
        bench.wait(bench.driver.set_resource({"TE": "00:00:02.00"}))
        result(bench, "start_autosample")
        self.assertEqual(bench.state, "AUTOSAMPLE")
        # A Clock runs a timer's successor from the end of the step it
        # fired in, so each ensemble comes up to a step late here.
        bench.run(6.3)
        self.assertEqual(len(bench.particles("adcp_velocity_beam")), 3)
        numbers = [
            values(p)["ensemble_number"] for p in bench.particles("adcp_velocity_beam")
        ]
        self.assertEqual(numbers, [1, 2, 3])
        synced = result(bench, "clock_sync")
        self.assertTrue(synced.endswith("+00:00"))
        self.assertLess(abs(bench.adcp.clock.now() - bench.clock.seconds()), 1.0)
        self.assertIs(bench.adcp.mode, Mode.PINGING)
        self.assertEqual(bench.state, "AUTOSAMPLE")
        result(bench, "stop_autosample")
        self.assertEqual(bench.state, "COMMAND")
        self.assertIs(bench.adcp.mode, Mode.COMMAND)
        self.assertRaises(
            InstrumentStateError,
            lambda: self.failureResultOf(
                bench.driver.execute_resource("stop_autosample")
            ).raiseException(),
        )

    def test_clockSync(self) -> None:
        """
        In command mode, TT with the next whole second.
        """
        bench = self.bench
        synced = result(bench, "clock_sync")
        self.assertIn(b"TT", b"".join(bench.connection.sent[-1:]))
        self.assertLess(abs(bench.adcp.clock.now() - bench.clock.seconds()), 0.2)
        self.assertTrue(synced.startswith("2023-11-14T22:1"))

    def test_saveSetup(self) -> None:
        """
        CK saves the settings on the instrument.
        """
        bench = self.bench
        bench.wait(bench.driver.set_resource({"WN": 42}))
        result(bench, "save_setup")
        self.assertEqual(bench.adcp.setup.saved["WN"], "042")


class ParameterTests(SynchronousTestCase):
    """
    Get and set.
    """

    def setUp(self) -> None:
        self.bench = Bench()
        self.bench.connect()

    def test_getAll(self) -> None:
        """
        Every parameter, read in one batch of queries.
        """
        everything = self.bench.wait(self.bench.driver.get_resource("ALL")).result
        self.assertEqual(everything["EA"], 0)
        self.assertEqual(everything["EX"], "00111")
        self.assertEqual(everything["WA"], "050,001")
        self.assertEqual(everything["TP"], "00:01.00")
        self.assertEqual(len(everything), 28)

    def test_set(self) -> None:
        """
        Values of each kind reach the instrument and are read back.
        """
        bench = self.bench
        wanted = {
            "WN": 30,
            "EA": -1250,
            "EX": "11111",
            "TE": "00:10:00.00",
            "WA": "255,001",
        }
        changes = bench.wait(bench.driver.set_resource(wanted)).result
        self.assertEqual(changes, wanted)
        self.assertEqual(
            [bench.adcp.setup[code] for code in wanted],
            ["030", "-01250", "11111", "00:10:00.00", "255,001"],
        )

    def test_validation(self) -> None:
        """
        Out of range or of the wrong form: refused before anything is sent,
        naming the parameter, value and rule.
        """
        bench = self.bench
        sent = len(bench.connection.sent)
        for bad, words in (
            ({"WN": 300}, "above the maximum 255"),
            ({"EX": "0011"}, "[01]{5}"),
            ({"TE": "1:00"}, "does not have the form"),
            ({"XX": 1}, "XX"),
        ):
            failure = self.failureResultOf(bench.driver.set_resource(bad))
            failure.trap(InstrumentParameterError)
            self.assertIn(words, str(failure.value))
        self.assertEqual(len(bench.connection.sent), sent)

    def test_instrumentRefuses(self) -> None:
        """
        A value the instrument refuses (ERR 045) fails the set quoting it.
        """
        bench = self.bench
        original = bench.adcp.setup.set

        def refuse(code: str, text: str) -> None:
            # An instrument whose range is narrower than the manual's.
            if code == "WN" and int(text) > 128:
                raise ValueError("ERR 045: PARAMETER OUT OF BOUNDS")
            original(code, text)

        self.patch(bench.adcp.setup, "set", refuse)
        d = bench.driver.set_resource({"WN": 200})
        bench.wait(d)
        failure = self.failureResultOf(d)
        failure.trap(InstrumentProtocolError)
        self.assertEqual(
            str(failure.value),
            "the instrument refused WN200: ERR 045: PARAMETER OUT OF BOUNDS",
        )
        self.assertEqual(bench.adcp.setup["WN"], "100")

    def test_startupValues(self) -> None:
        """
        Startup values from the init config replace the defaults, and are
        applied again on request.
        """
        bench = Bench(init_config={"parameters": {"WN": 55, "TE": "00:00:10.00"}})
        bench.connect()
        self.assertEqual(
            (bench.adcp.setup["WN"], bench.adcp.setup["TE"]), ("055", "00:00:10.00")
        )
        bench.adcp.setup.set("WN", "20")
        bench.wait(bench.driver.apply_startup_params())
        self.assertEqual(bench.adcp.setup["WN"], "055")

    def test_directAccessRestores(self) -> None:
        """
        An operator's WN in direct access reaches the instrument (its echo
        and prompt come back); leaving restores WN.
        """
        bench = self.bench
        bench.wait(bench.driver.start_direct())
        bench.wait(bench.driver.execute_direct(b"WN33\r\n"))
        bench.run(0.2)
        echoed = b"".join(
            e.data for e in bench.seen if isinstance(e, DirectAccessEvent)
        )
        self.assertIn(b"WN33\r\n>", echoed)
        self.assertEqual(bench.adcp.setup["WN"], "033")
        self.assertEqual(bench.wait(bench.driver.stop_direct()).result, "COMMAND")
        self.assertEqual(bench.adcp.setup["WN"], "100")


class ParticleTests(SynchronousTestCase):
    """
    Ensembles into particles.
    """

    def test_agreesWithThirdPartyReader(self) -> None:
        """
        For beam and earth ensembles, trdi-adcp-readers' decoding and the
        driver's particle agree field by field.
        """
        for ex, kind in (
            ("00111", VelocityBeamParticle),
            ("11111", VelocityEarthParticle),
        ):
            bench = Bench()
            bench.connect()
            bench.wait(bench.driver.set_resource({"EX": ex, "WN": 40}))
            result(bench, "acquire_sample")
            [particle] = bench.particles(kind.stream_name)
            theirs = read_PD0_bytes(bytearray(particle.raw))
            ours = values(particle)
            leader, fixed = theirs["variable_leader"], theirs["fixed_leader"]
            self.assertEqual(ours["ensemble_number"], leader["ensemble_number"])
            self.assertEqual(ours["serial_number"], fixed["serial_number"])
            self.assertEqual(ours["num_cells"], fixed["number_of_cells"])
            self.assertEqual(ours["cell_length"], fixed["depth_cell_length"])
            self.assertEqual(ours["bin_1_distance"], fixed["bin_1_distance"])
            self.assertEqual(ours["heading"], leader["heading"] / 100)
            self.assertEqual(ours["pitch"], leader["pitch"] / 100)
            self.assertEqual(ours["roll"], leader["roll"] / 100)
            self.assertEqual(ours["temperature"], leader["temperature"] / 100)
            self.assertEqual(ours["salinity"], leader["salinity"])
            self.assertEqual(ours["speed_of_sound"], leader["speed_of_sound"])
            self.assertEqual(
                ours["transducer_depth"], leader["depth_of_transducer"] / 10
            )
            self.assertEqual(ours["pressure"], leader["pressure"] / 1000)
            self.assertAlmostEqual(
                particle.internal_timestamp - 2208988800, _their_time(leader), 6
            )
            for beam in range(4):
                velocity = [cell[beam] for cell in theirs["velocity"]["data"]]
                self.assertEqual(
                    ours[kind.velocity_names[beam]],
                    [None if v == pd0.BAD_VELOCITY else v for v in velocity],
                )
                for name, block in (
                    (f"correlation_magnitude_beam{beam + 1}", "correlation"),
                    (f"echo_intensity_beam{beam + 1}", "echo_intensity"),
                ):
                    self.assertEqual(
                        ours[name], [cell[beam] for cell in theirs[block]["data"]]
                    )
                self.assertEqual(
                    ours[kind.percent_good_names[beam]],
                    [cell[beam] for cell in theirs["percent_good"]["data"]],
                )

    def test_realEnsemblesAgree(self) -> None:
        """
        The spec's real ensembles (earth and beam coordinates): the
        driver's particles and trdi-adcp-readers agree on every per-cell
        array and on the attitude.
        """
        for raw, kind in (
            (EXAMPLE_A, VelocityEarthParticle),
            (EXAMPLE_B, VelocityBeamParticle),
        ):
            self.assertTrue(kind.matches(raw))
            ours = values(kind(raw, driver_timestamp=0.0))
            theirs = read_PD0_bytes(bytearray(raw))
            for beam in range(4):
                self.assertEqual(
                    ours[kind.velocity_names[beam]],
                    [
                        None if cell[beam] == pd0.BAD_VELOCITY else cell[beam]
                        for cell in theirs["velocity"]["data"]
                    ],
                )
                self.assertEqual(
                    ours[f"echo_intensity_beam{beam + 1}"],
                    [cell[beam] for cell in theirs["echo_intensity"]["data"]],
                )
            self.assertEqual(ours["pitch"], theirs["variable_leader"]["pitch"] / 100)

    def test_badAndCutCountedNeverEmitted(self) -> None:
        """
        While pinging, an ensemble with a bad checksum and one cut short by
        a break (the banner after it) are counted and never published; the
        good ones around them are.
        """
        bench = Bench()
        bench.connect()
        bench.wait(bench.driver.set_resource({"TE": "00:00:02.00"}))
        result(bench, "start_autosample")
        bench.run(2.1)
        protocol = bench.protocol
        good = pd0.encode(bench.adcp.build_ensemble(bench.adcp.clock.now()))
        broken = bytearray(good)
        broken[200] ^= 0x40
        bench.adcp.send(bytes(broken))
        bench.adcp.send(good[:700] + BANNER)
        bench.run(4.1)
        self.assertEqual(protocol.bad_ensembles, 2)
        published = bench.particles("adcp_velocity_beam")
        self.assertEqual(len(published), 3)
        self.assertNotIn(bytes(broken), [p.raw for p in published])
        self.assertEqual(protocol.ensembles, 3)

    def test_everyFieldDescribed(self) -> None:
        """
        Every value of every stream has units; the metadata carries them.
        """
        self.assertEqual(undeclared_fields(WorkhorseProtocol), [])
        streams = Bench().driver.get_config_metadata()["streams"]
        self.assertEqual(
            streams["adcp_velocity_earth"]["eastward_velocity"]["standard_name"],
            "eastward_sea_water_velocity",
        )
        self.assertEqual(streams["adcp_velocity_beam"]["pressure"]["units"], "dbar")


def _their_time(leader: dict[str, int]) -> float:
    from datetime import UTC, datetime

    when = datetime(
        leader["rtc_y2k_century"] * 100 + leader["rtc_y2k_year"],
        leader["rtc_y2k_month"],
        leader["rtc_y2k_day"],
        leader["rtc_y2k_hour"],
        leader["rtc_y2k_minute"],
        leader["rtc_y2k_seconds"],
        tzinfo=UTC,
    )
    return when.timestamp() + leader["rtc_y2k_hundredths"] / 100


class LinkTests(SynchronousTestCase):
    """
    A dropped link.
    """

    def test_dropWhilePinging(self) -> None:
        """
        The link drops while pinging: INSTRUMENT_DISCONNECTED; back, the new
        protocol finds ensembles arriving and is in AUTOSAMPLE without a
        break.
        """
        bench = Bench()
        bench.connect()
        bench.wait(bench.driver.set_resource({"TE": "00:00:01.00"}))
        result(bench, "start_autosample")
        bench.adcp.faults.drop_link()
        bench.run(0.5)
        self.assertEqual(bench.state, "INSTRUMENT_DISCONNECTED")
        breaks = bench.adcp.breaks
        bench.connection.plug_in()
        bench.run_until(lambda: bench.state == "AUTOSAMPLE", 20)
        self.assertEqual(bench.adcp.breaks, breaks)


class ChunkingTests(SynchronousTestCase):
    """
    The protocol's record handling under any chunking (hypothesis).
    """

    @settings(max_examples=40, deadline=None)
    @given(
        st.integers(0, 1000),
        st.lists(st.sampled_from(["good", "junk", "cut", "corrupt"]), max_size=8),
        st.lists(st.integers(1, 700), max_size=20),
    )
    def test_anyChunking(self, seed: int, plan: list[str], cuts: list[int]) -> None:
        """
        Whatever comes between good ensembles (prompts and text, ensembles
        cut by a break, ensembles with a bad checksum) and however the
        stream is cut: each good ensemble is published once, in order, no
        damaged one is, and each damaged one is counted.
        """
        ensembles = simulated_ensembles(len(plan) + 2, seed)
        stream, good, damaged = b"", [], 0
        for index, kind in enumerate(plan):
            ensemble = ensembles[index]
            if kind == "junk":
                stream += b"WN?\r\nWN 012 ----------------- Number of depth cells\r\n>\x7f\x7f"
            elif kind == "cut":
                stream += ensemble[: 30 + seed % (len(ensemble) - 40)] + BANNER
                damaged += 1
            elif kind == "corrupt":
                broken = bytearray(ensemble)
                broken[150] ^= 0x21
                stream += bytes(broken)
                damaged += 1
            else:
                stream += ensemble
                good.append(ensemble)
        # A good ensemble last, so that nothing damaged is left waiting.
        stream += ensembles[-1]
        good.append(ensembles[-1])
        clock = Clock()
        events = EventBus(clock)
        seen: list[Any] = []
        events.subscribe(seen.append)
        protocol = WorkhorseProtocol(lambda data: None, events, clock=clock)
        position = 0
        for size in [*cuts, len(stream)]:
            protocol.got_data(stream[position : position + size], 3.9e9)
            position += size
        published = [
            event.particle.raw
            for event in seen
            if isinstance(event, SampleEvent)
            and event.particle.stream_name == "adcp_velocity_beam"
        ]
        self.assertEqual(published, good)
        self.assertEqual(protocol.bad_ensembles, damaged)


class SelfDeployTests(SynchronousTestCase):
    """
    The instrument pinging again by itself.
    """

    def test_selfDeployFollowed(self) -> None:
        """
        Stopped with a break and left idle, the instrument self-deploys six
        minutes later; its ensembles put the driver in AUTOSAMPLE.
        """
        bench = Bench()
        bench.connect()
        bench.wait(bench.driver.set_resource({"TE": "00:00:05.00"}))
        result(bench, "start_autosample")
        bench.run(6.0)
        result(bench, "stop_autosample")
        self.assertEqual(bench.state, "COMMAND")
        bench.run(370.0, step=0.5)
        self.assertIs(bench.adcp.mode, Mode.PINGING)
        self.assertEqual(bench.state, "AUTOSAMPLE")
        result(bench, "stop_autosample")
        self.assertIs(bench.adcp.mode, Mode.COMMAND)

    def test_acquireSampleStaysInCommand(self) -> None:
        """
        The ensemble of acquire_sample does not count as pinging.
        """
        bench = Bench()
        bench.connect()
        result(bench, "acquire_sample")
        self.assertEqual(bench.state, "COMMAND")
