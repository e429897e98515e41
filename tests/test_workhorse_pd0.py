"""
Tests for L{instrumentd.instruments.teledyne.workhorse.pd0}: the real
ensembles of the spec decoded field by field, encoding that reproduces them
byte for byte, the header check, and the chunker's sieve under any
chunking, junk and cut ensembles.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from instrumentd.driver.chunker import Chunker
from instrumentd.instruments.teledyne.workhorse import pd0
from instrumentd.instruments.teledyne.workhorse.simulator import (
    BANNER,
    WorkhorseSimulator,
)
from instrumentd.simulator import SimulatorSettings
from tests.workhorse_samples import EXAMPLE_A, EXAMPLE_B, EXAMPLE_C


class DecodeTests(SynchronousTestCase):
    """
    The spec's worked examples.
    """

    def test_exampleA(self) -> None:
        """
        Example A (real, earth coordinates, 55 cells) as the spec decodes
        it.
        """
        ensemble = pd0.decode(EXAMPLE_A)
        fixed, variable = ensemble.fixed, ensemble.variable
        self.assertEqual(
            (fixed["firmware_version"], fixed["firmware_revision"]), (50, 40)
        )
        self.assertEqual(fixed["system_configuration"], 0x41C8)
        self.assertEqual(fixed["num_cells"], 55)
        self.assertEqual(fixed["pings_per_ensemble"], 32)
        self.assertEqual(fixed["depth_cell_length"], 1000)
        self.assertEqual(fixed["coordinate_transform"], 0x1F)
        self.assertEqual(fixed["serial_number"], 18352)
        self.assertEqual(fixed["bin_1_distance"], 1873)
        self.assertEqual(variable["ensemble_number"], 2)
        self.assertEqual(variable["y2k_rtc"], (20, 13, 7, 2, 2, 2, 50, 3))
        self.assertEqual(
            (variable["heading"], variable["pitch"], variable["roll"]),
            (6630, -4588, -4459),
        )
        self.assertEqual(variable["temperature"], 2551)
        self.assertEqual(variable["error_status_word"], 0x88000000)
        self.assertEqual(variable["pressure"], 241)
        self.assertEqual(ensemble.velocity[0], [383, 314, 459, 80])  # type: ignore[index]
        self.assertEqual(ensemble.velocity[54], [pd0.BAD_VELOCITY] * 4)  # type: ignore[index]
        self.assertEqual(ensemble.correlation[1], [70, 21, 45, 90])  # type: ignore[index]
        self.assertEqual(ensemble.echo_intensity[54], [44, 40, 45, 44])  # type: ignore[index]
        self.assertEqual(ensemble.percent_good[0], [53, 0, 12, 34])  # type: ignore[index]
        self.assertEqual(ensemble.reserved, b"\xaf\xda")

    def test_exampleBSignedPressure(self) -> None:
        """
        Example B (real, beam coordinates): pressure in air reads as a
        negative number of decapascals.
        """
        ensemble = pd0.decode(EXAMPLE_B)
        self.assertEqual(ensemble.variable["pressure"], -3503)
        self.assertEqual(ensemble.fixed["num_cells"], 100)
        self.assertEqual(ensemble.velocity[0], [19, -12, 179, 77])  # type: ignore[index]

    def test_exampleCBottomTrackSkipped(self) -> None:
        """
        Example C has a bottom-track block: found through its offset and
        left alone; the rest decodes.
        """
        ensemble = pd0.decode(EXAMPLE_C)
        self.assertEqual(ensemble.blocks[-1], 0x0600)
        self.assertEqual(ensemble.velocity, [[100, -50, 10, 3], [pd0.BAD_VELOCITY] * 4])
        self.assertEqual(ensemble.percent_good, [[0, 0, 0, 100], [0, 0, 100, 0]])

    def test_encodeReproducesRealBytes(self) -> None:
        """
        Encoding the decoded examples A and B gives their bytes back,
        checksum included.
        """
        for example in (EXAMPLE_A, EXAMPLE_B):
            ensemble = pd0.decode(example)
            ensemble.blocks = []
            self.assertEqual(pd0.encode(ensemble), example)

    def test_refused(self) -> None:
        """
        A changed byte, a short ensemble or a long one is a L{pd0.PD0Error}.
        """
        damaged = bytearray(EXAMPLE_A)
        damaged[300] ^= 1
        for bad in (bytes(damaged), EXAMPLE_A[:-1], EXAMPLE_A + b"\x00", b"\x7f\x7f"):
            self.assertRaises(pd0.PD0Error, pd0.decode, bad)


class HeaderTests(SynchronousTestCase):
    """
    L{pd0.check_header}.
    """

    def test_real(self) -> None:
        """
        Real headers are plausible, whole or cut after the offsets.
        """
        for example in (EXAMPLE_A, EXAMPLE_B, EXAMPLE_C):
            self.assertIs(pd0.check_header(example), True)
            self.assertIs(pd0.check_header(example[:40]), True)
            self.assertIsNone(pd0.check_header(example[:5]))

    def test_falseSyncs(self) -> None:
        """
        A huge length, no data types, offsets out of order or a first
        block that is not the fixed leader: not an ensemble.
        """
        head = bytearray(EXAMPLE_A[:40])
        for position, value in ((3, 0x90), (5, 0), (5, 40), (8, 0x05), (18, 1)):
            changed = bytearray(head)
            changed[position] = value
            self.assertIs(pd0.check_header(bytes(changed)), False, (position, value))


def simulated_ensembles(count: int, seed: int) -> list[bytes]:
    """
    C{count} ensembles from the simulator's own encoder.
    """
    clock = Clock()
    adcp = WorkhorseSimulator(SimulatorSettings(seed=seed), reactor=clock, awake=True)
    adcp.setup.set("WN", "12")
    out = []
    for number in range(count):
        adcp.ensemble_number = number + 1
        out.append(pd0.encode(adcp.build_ensemble(1.7e9 + number)))
    adcp.stop()
    return out


JUNK = st.sampled_from(
    [
        b"",
        b"\r\n>",
        b"\x7f\x7f",
        b"WN?\r\nWN 030 ----------------- Number of depth cells (1-255)\r\n>",
        b"\x7f\x7f\xff\x7f\x00\x06",
    ]
)


class SieveTests(SynchronousTestCase):
    """
    The chunker with L{pd0.ensemble_sieve}: exactly the whole, good
    ensembles, however the stream is cut.
    """

    @settings(max_examples=60, deadline=None)
    @given(
        st.integers(1, 4),
        st.integers(0, 1000),
        st.lists(JUNK, min_size=5, max_size=5),
        st.lists(st.integers(1, 900), max_size=12),
        st.lists(st.integers(0, 2), min_size=4, max_size=4),
    )
    def test_anyChunking(
        self,
        count: int,
        seed: int,
        junk: list[bytes],
        cuts: list[int],
        damage: list[int],
    ) -> None:
        """
        Good ensembles with junk, cut ensembles (then the banner, as after
        a break) and ensembles with a bad checksum between them, delivered
        in any chunks: the good ones come out, in order, and no other.
        """
        ensembles = simulated_ensembles(count + 1, seed)
        extra = ensembles.pop()
        stream = b""
        for index, ensemble in enumerate(ensembles):
            stream += junk[index]
            if damage[index] == 1:
                stream += extra[: 20 + seed % 300] + BANNER
            elif damage[index] == 2:
                broken = bytearray(extra)
                broken[100] ^= 0x55
                stream += bytes(broken)
            stream += ensemble
        stream += junk[-1]
        chunker = Chunker(pd0.ensemble_sieve())
        position = 0
        for size in [*cuts, len(stream)]:
            chunker.add_chunk(stream[position : position + size], 1.0)
            position += size
        self.assertEqual([r.data for r in chunker.take_records()], ensembles)
        self.assertTrue(chunker.counters.accounted(chunker.buffered))

    def test_cutNeverEmitted(self) -> None:
        """
        An ensemble cut in transit, with nothing after it, stays in the
        buffer; it is never handed out.
        """
        [ensemble] = simulated_ensembles(1, 0)
        chunker = Chunker(pd0.ensemble_sieve())
        chunker.add_chunk(ensemble[:-1], 1.0)
        self.assertEqual(chunker.take_records(), [])
        self.assertEqual(chunker.buffered, len(ensemble) - 1)
