"""
Tests for the simulated Workhorse ADCP
(L{instrumentd.instruments.teledyne.workhorse.simulator}): its dialogue,
break and banner, pinging, sleep and self-deploy, and ensembles that an
independent PD0 reader (C{trdi-adcp-readers}) accepts.  On a C{Clock},
through an in-memory line.
"""

from __future__ import annotations

from trdi_adcp_readers.readers import read_PD0_bytes
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from instrumentd.instruments.teledyne.workhorse import pd0
from instrumentd.instruments.teledyne.workhorse.simulator import (
    BANNER,
    SELF_DEPLOY_WARNING,
    Mode,
    WorkhorseSimulator,
)
from instrumentd.simulator import InProcessLink, SimulatorSettings, make_simulator


def advance(clock: Clock, seconds: float, step: float = 0.01) -> None:
    """
    Let time pass in steps: a C{Clock} runs calls scheduled during an
    C{advance} from its end, so one big step would skip timer chains.
    """
    for _ in range(round(seconds / step)):
        clock.advance(step)


def make(
    awake: bool = True, **settings: object
) -> tuple[WorkhorseSimulator, InProcessLink, Clock]:
    clock = Clock()
    clock.advance(1_700_000_000)
    adcp = WorkhorseSimulator(
        SimulatorSettings(**settings),  # type: ignore[arg-type]
        reactor=clock,
        awake=awake,
    )
    return adcp, InProcessLink(adcp), clock


class DialogueTests(SynchronousTestCase):
    """
    Command mode.
    """

    def test_queryLayouts(self) -> None:
        """
        C{XX?} answers in the firmware's two layouts, with the echo and the
        prompt; several commands in one write are answered in order.
        """
        _adcp, link, _clock = make()
        link.send(b"CB?\r\nWN?\rEA?\nTE?\r\n")
        self.assertEqual(
            link.take(),
            b"CB?\r\nCB = 411 ----------------- Serial Port Control (Baud [4=9600]; Par; Stop)\r\n>"
            b"WN?\r\nWN 030 ----------------- Number of depth cells (1-255)\r\n>"
            b"EA?\r\nEA = +00000 -------------- Heading Alignment (1/100 deg)\r\n>"
            b"TE?\r\nTE 00:00:00.00 --------- Time per Ensemble (hrs:min:sec.sec/100)\r\n>",
        )

    def test_setAndErrors(self) -> None:
        """
        A good value is taken (echo and prompt only); a non-number is ERR
        002, a number out of range ERR 045, an unknown command ERR 010; the
        old value stays.  Commands are case-insensitive.
        """
        adcp, link, _clock = make()
        link.send(b"wn45\r\nEA-1250\r\nWN300\r\nWNabc\r\nZZ\r\n")
        self.assertEqual(
            link.take(),
            b"wn45\r\n>EA-1250\r\n>WN300\r\nERR 045: PARAMETER OUT OF BOUNDS\r\n>"
            b"WNabc\r\nERR 002:  NUMERAL EXPECTED\r\n>"
            b"ZZ\r\nERR 010:  UNRECOGNIZED COMMAND\r\n>",
        )
        self.assertEqual((adcp.setup["WN"], adcp.setup["EA"]), ("045", "-01250"))

    def test_saveAndRestore(self) -> None:
        """
        C{CK} saves RAM as the user defaults; C{CR1} restores the factory
        settings and C{CR0} the saved ones.
        """
        adcp, link, _clock = make()
        link.send(b"WN50\r\nCK\r\nWN60\r\nCR0\r\n")
        self.assertIn(b"[Parameters saved as USER defaults]\r\n>", link.take())
        self.assertEqual(adcp.setup["WN"], "050")
        link.send(b"CR1\r\n")
        self.assertEqual(
            link.take(), b"CR1\r\n\r\n[Parameters set to FACTORY defaults]\r\n>"
        )
        self.assertEqual(adcp.setup["WN"], "030")

    def test_clock(self) -> None:
        """
        C{TT} sets the clock; C{TT?} reads it.
        """
        _adcp, link, _clock = make()
        link.send(b"TT2013/02/28,07:55:33\r\n")
        self.assertEqual(link.take(), b"TT2013/02/28,07:55:33\r\n>")
        link.send(b"TT?\r\n")
        self.assertIn(
            b"TT 2013/02/28,07:55:33 - Time Set (CCYY/MM/DD,hh:mm:ss)\r\n>", link.take()
        )

    def test_diagnostics(self) -> None:
        """
        C{PS0} prints the system configuration at once; C{PT200} takes a
        few seconds.
        """
        _adcp, link, clock = make()
        link.send(b"PS0\r\n")
        text = link.take()
        self.assertTrue(text.startswith(b"PS0\r\nInstrument S/N:  18444\r\n"))
        self.assertTrue(text.endswith(b"DSP727-2001-06H\r\n>"))
        link.send(b"PT200\r\n")
        self.assertEqual(link.take(), b"PT200\r\n")
        advance(clock, 4.1)
        text = link.take()
        self.assertTrue(text.startswith(b"Ambient  Temperature ="))
        self.assertTrue(text.endswith(b"result    PASS  PASS  PASS  PASS\r\n>"))

    def test_registered(self) -> None:
        """
        C{simulate workhorse} finds it.
        """
        adcp = make_simulator("workhorse", reactor=Clock())
        self.assertIsInstance(adcp, WorkhorseSimulator)


class BreakTests(SynchronousTestCase):
    """
    Breaks, soft breaks, sleep and self-deploy.
    """

    def test_asleepIgnoresBytes(self) -> None:
        """
        Asleep, bytes are ignored; a break wakes it with the banner.
        """
        adcp, link, _clock = make(awake=False)
        link.send(b"WN?\r\n")
        self.assertEqual(link.take(), b"")
        adcp.line.receive_break()
        self.assertEqual(link.take(), BANNER)
        self.assertIs(adcp.mode, Mode.COMMAND)

    def test_softBreak(self) -> None:
        """
        C{===} is a break in any state, unless turned off.
        """
        adcp, link, _clock = make(awake=False)
        link.send(b"=")
        link.send(b"==")
        self.assertEqual(link.take(), BANNER)
        adcp.soft_break = False
        adcp.mode = Mode.ASLEEP
        link.send(b"===")
        self.assertEqual(link.take(), b"")

    def test_breakCutsEnsemble(self) -> None:
        """
        At 9600 baud an ensemble takes seconds on the wire; a break half way
        cuts it, and the banner follows what was sent.
        """
        adcp, link, clock = make(baud=9600)
        link.send(b"WN100\r\nCS\r\n")
        advance(clock, 1.0)
        link.take()
        advance(clock, 1.0)
        partial = link.take()
        self.assertTrue(partial.startswith(b"\x7f\x7f"))
        adcp.line.receive_break()
        advance(clock, 1.0)
        after = link.take()
        self.assertEqual(after, BANNER)
        self.assertRaises(pd0.PD0Error, pd0.decode, partial)
        self.assertIs(adcp.mode, Mode.COMMAND)

    def test_sleepAfterIdle(self) -> None:
        """
        Idle in command mode without an interrupted deployment: asleep.
        """
        adcp, _link, clock = make()
        advance(clock, 301, 0.5)
        self.assertIs(adcp.mode, Mode.ASLEEP)

    def test_powerDown(self) -> None:
        """
        C{CZ}: Powering Down, then asleep.
        """
        adcp, link, _clock = make()
        link.send(b"CZ\r\n")
        self.assertEqual(link.take(), b"CZ\r\n\r\nPowering Down")
        self.assertIs(adcp.mode, Mode.ASLEEP)

    def test_selfDeploy(self) -> None:
        """
        A break interrupts pinging; five idle minutes later the warning,
        a minute after that pinging resumes with the next ensemble number.
        A valid command in between puts the warning off.
        """
        adcp, link, clock = make()
        link.send(b"TE00:00:10.00\r\nCS\r\n")
        advance(clock, 25)
        self.assertEqual(adcp.ensemble_number, 2)
        adcp.line.receive_break()
        link.take()
        advance(clock, 200, 0.5)
        link.send(b"WN?\r\n")
        advance(clock, 200, 0.5)
        self.assertNotIn(SELF_DEPLOY_WARNING, link.take())
        advance(clock, 101, 0.5)
        self.assertEqual(link.take(), SELF_DEPLOY_WARNING)
        advance(clock, 60, 0.5)
        self.assertIs(adcp.mode, Mode.PINGING)
        advance(clock, 10)
        self.assertEqual(pd0.decode(link.take()).variable["ensemble_number"], 3)


class PingingTests(SynchronousTestCase):
    """
    Pinging and the ensembles.
    """

    def test_interval(self) -> None:
        """
        C{CS}: no prompt; an ensemble every TE, numbered from 1; bytes are
        ignored meanwhile.
        """
        _adcp, link, clock = make()
        link.send(b"TE00:00:05.00\r\nCS\r\n")
        self.assertEqual(link.take(), b"TE00:00:05.00\r\n>CS\r\n")
        advance(clock, 4.9)
        self.assertEqual(link.take(), b"")
        link.send(b"WN?\r\n")
        advance(clock, 0.2)
        first = pd0.decode(link.take())
        advance(clock, 5.0)
        second = pd0.decode(link.take())
        self.assertEqual(
            (first.variable["ensemble_number"], second.variable["ensemble_number"]),
            (1, 2),
        )

    def test_paced(self) -> None:
        """
        At 9600 baud ensembles never overlap: with TE 0, the next starts
        when the last has left (a 30-cell ensemble of 754 bytes takes 0.79
        s).
        """
        _adcp, link, clock = make(baud=9600)
        link.send(b"CS\r\n")
        advance(clock, 10.0)
        data = link.take()
        chunks = data.split(b"\x7f\x7f\xf0\x02")
        self.assertGreaterEqual(len(chunks) - 1, 8)
        self.assertLessEqual(len(chunks) - 1, 11)

    def test_singleEnsemble(self) -> None:
        """
        With the first CF digit 0, one ensemble then the prompt.
        """
        adcp, link, clock = make()
        link.send(b"CF01110\r\nCS\r\n")
        link.take()
        advance(clock, 2.0)
        data = link.take()
        self.assertTrue(data.endswith(b"\r\n>"))
        pd0.decode(data[:-3])
        self.assertIs(adcp.mode, Mode.COMMAND)

    def test_hexAscii(self) -> None:
        """
        With the third CF digit 0, each ensemble as upper-case hex and CR
        LF.
        """
        _adcp, link, clock = make()
        link.send(b"CF11010\r\nCS\r\n")
        link.take()
        advance(clock, 1.5)
        line = link.take()
        self.assertTrue(line.endswith(b"\r\n"))
        pd0.decode(bytes.fromhex(line.decode("ascii")))

    def test_settingsShapeEnsemble(self) -> None:
        """
        WN sets the cells, WD the blocks, EX the coordinates.
        """
        _adcp, link, clock = make()
        link.send(b"WN40\r\nWD110000000\r\nEX11111\r\nCS\r\n")
        advance(clock, 1.5)
        ensemble = pd0.decode(link.take().split(b"CS\r\n")[1])
        self.assertEqual(ensemble.fixed["num_cells"], 40)
        self.assertEqual(ensemble.fixed["coordinate_transform"], 0x1F)
        self.assertEqual(ensemble.blocks, [0x0000, 0x0080, 0x0100, 0x0200])
        self.assertIsNone(ensemble.echo_intensity)

    def test_plausibleAndAcceptedByThirdParty(self) -> None:
        """
        trdi-adcp-readers accepts the ensembles (checksum and all); the
        values are plausible: currents under 1 m/s varying with time and
        depth, bad values past the range, attitude and temperature in
        reason.
        """
        _adcp, link, clock = make()
        link.send(b"WN100\r\nEX11111\r\nTE00:30:00.00\r\nCS\r\n")
        link.take()
        ensembles = []
        for _ in range(4):
            advance(clock, 1800, 1.0)
            raw = link.take()
            ensembles.append(read_PD0_bytes(bytearray(raw)))
        first = ensembles[0]
        self.assertEqual(first["fixed_leader"]["number_of_cells"], 100)
        east = [cell[0] for cell in first["velocity"]["data"]]
        good = [value for value in east if value != -32768]
        self.assertTrue(5 <= len(good) < 100)
        self.assertEqual(east[-1], -32768)
        self.assertTrue(all(abs(value) < 1000 for value in good))
        self.assertGreater(max(good) - min(good), 20)
        later = [cell[0] for cell in ensembles[3]["velocity"]["data"]]
        self.assertNotEqual(east[:10], later[:10])
        for each in ensembles:
            leader = each["variable_leader"]
            self.assertTrue(0 <= leader["heading"] < 36000)
            self.assertLess(abs(leader["pitch"]), 1000)
            self.assertTrue(500 < leader["temperature"] < 2000)


class OptionTests(SynchronousTestCase):
    """
    The model's own options (C{--option NAME=VALUE}).
    """

    def test_options(self) -> None:
        """
        C{awake}, C{soft_break} and C{self_deploy_after} set the start.
        """
        adcp = WorkhorseSimulator(
            SimulatorSettings(
                options={"awake": "yes", "soft_break": "no", "self_deploy_after": "5"}
            ),
            reactor=Clock(),
        )
        self.assertIs(adcp.mode, Mode.COMMAND)
        self.assertFalse(adcp.soft_break)
        self.assertEqual(adcp.self_deploy_after, 5.0)

    def test_badOption(self) -> None:
        """
        A bad value is refused naming the option and the valid values.
        """
        error = self.assertRaises(
            ValueError,
            WorkhorseSimulator,
            SimulatorSettings(options={"awake": "maybe"}),
            reactor=Clock(),
        )
        self.assertIn("awake='maybe'", str(error))
        self.assertIn("yes, no", str(error))
