# -*- test-case-name: tests.test_workhorse_pd0 -*-
"""
RDI PD0 ensembles: encoding (for the simulator) and decoding (for the
driver), and the chunker's sieve for them.

An ensemble is ``7f 7f``, the byte count (little-endian, everything but the
2-byte checksum), a spare byte, the number of data types N, N block
offsets, the blocks (fixed leader ``00 00``, variable leader ``80 00``,
velocity ``00 01``, correlation ``00 02``, echo intensity ``00 03``, percent
good ``00 04``), 2 reserved bytes and the 16-bit sum of all the bytes
before it.  Blocks are found through the offsets and their IDs only, never
by position: their sizes differ between firmware versions.  Field layouts
are those of ``doc/specs/rdi-workhorse-adcp.md`` (firmware 50.40).
"""

from __future__ import annotations

import itertools
import re
import struct
from dataclasses import dataclass, field
from typing import Any, Final

from instrumentd.driver.chunker import SieveFunction, additive_checksum, length_sieve

__all__ = [
    "BAD_VELOCITY",
    "MAX_ENSEMBLE",
    "Ensemble",
    "PD0Error",
    "check_header",
    "decode",
    "encode",
    "ensemble_sieve",
]

SYNC: Final = b"\x7f\x7f"
FIXED_LEADER: Final = 0x0000
VARIABLE_LEADER: Final = 0x0080
VELOCITY: Final = 0x0100
CORRELATION: Final = 0x0200
ECHO_INTENSITY: Final = 0x0300
PERCENT_GOOD: Final = 0x0400

#: The velocity that means "no data".
BAD_VELOCITY: Final = -32768

#: The longest ensemble a Workhorse sends: 255 cells of 4 beams with every
#: profile block is about 5.2 kB; anything claiming more is a false sync.
MAX_ENSEMBLE: Final = 8192
_MAX_TYPES: Final = 16

#: The fixed leader (59 bytes): names and struct codes, in order.
_FIXED: Final = (
    ("id", "H"),
    ("firmware_version", "B"),
    ("firmware_revision", "B"),
    ("system_configuration", "H"),
    ("simulated_data", "B"),
    ("lag_length", "B"),
    ("num_beams", "B"),
    ("num_cells", "B"),
    ("pings_per_ensemble", "H"),
    ("depth_cell_length", "H"),
    ("blank_after_transmit", "H"),
    ("profiling_mode", "B"),
    ("low_correlation_threshold", "B"),
    ("code_repetitions", "B"),
    ("percent_good_minimum", "B"),
    ("error_velocity_maximum", "H"),
    ("ping_minutes", "B"),
    ("ping_seconds", "B"),
    ("ping_hundredths", "B"),
    ("coordinate_transform", "B"),
    ("heading_alignment", "h"),
    ("heading_bias", "h"),
    ("sensor_source", "B"),
    ("sensors_available", "B"),
    ("bin_1_distance", "H"),
    ("transmit_pulse_length", "H"),
    ("reference_layer_start", "B"),
    ("reference_layer_end", "B"),
    ("false_target_threshold", "B"),
    ("spare_1", "B"),
    ("transmit_lag_distance", "H"),
    ("cpu_board_serial", "8s"),
    ("system_bandwidth", "H"),
    ("system_power", "B"),
    ("spare_2", "B"),
    ("serial_number", "I"),
    ("beam_angle", "B"),
)

#: The variable leader (65 bytes); ``rtc`` and ``y2k_rtc`` are groups of
#: bytes, ``adc`` the eight ADC channels.
_VARIABLE: Final = (
    ("id", "H"),
    ("ensemble_number", "H"),
    ("rtc", "7B"),
    ("ensemble_number_msb", "B"),
    ("bit_result", "H"),
    ("speed_of_sound", "H"),
    ("depth_of_transducer", "H"),
    ("heading", "H"),
    ("pitch", "h"),
    ("roll", "h"),
    ("salinity", "H"),
    ("temperature", "h"),
    ("pre_ping_wait", "3B"),
    ("heading_stdev", "B"),
    ("pitch_stdev", "B"),
    ("roll_stdev", "B"),
    ("adc", "8B"),
    ("error_status_word", "I"),
    ("reserved", "H"),
    ("pressure", "i"),
    ("pressure_variance", "I"),
    ("spare", "B"),
    ("y2k_rtc", "8B"),
)


def _layout(fields: tuple[tuple[str, str], ...]) -> tuple[struct.Struct, list[int]]:
    # How many struct items each field takes (``7B`` takes seven).
    counts = [
        int(code[:-1]) if code[:-1].isdigit() and code[-1] != "s" else 1
        for _, code in fields
    ]
    return struct.Struct("<" + "".join(code for _, code in fields)), counts


_FIXED_STRUCT, _FIXED_COUNTS = _layout(_FIXED)

#: The fixed leader's field names, in order.
FIXED_FIELDS: Final = tuple(name for name, _ in _FIXED)
_VARIABLE_STRUCT, _VARIABLE_COUNTS = _layout(_VARIABLE)


class PD0Error(ValueError):
    """
    Bytes that are not a whole, good PD0 ensemble.
    """


@dataclass
class Ensemble:
    """
    One PD0 ensemble, decoded.

    :ivar fixed: fixed-leader fields by name (see ``_FIXED``); the CPU
        board serial is ``bytes``.
    :ivar variable: variable-leader fields by name; ``rtc`` (7 values),
        ``pre_ping_wait`` (3), ``adc`` (8) and ``y2k_rtc`` (8) are tuples.
    :ivar velocity: mm/s, ``[cell][beam]``; :data:`BAD_VELOCITY` for none.
    :ivar correlation: counts 0-255, ``[cell][beam]``.
    :ivar echo_intensity: counts, ``[cell][beam]``.
    :ivar percent_good: %, ``[cell][beam]``.
    :ivar reserved: the 2 bytes before the checksum.
    """

    fixed: dict[str, Any]
    variable: dict[str, Any]
    velocity: list[list[int]] | None = None
    correlation: list[list[int]] | None = None
    echo_intensity: list[list[int]] | None = None
    percent_good: list[list[int]] | None = None
    reserved: bytes = b"\x00\x00"
    blocks: list[int] = field(default_factory=list)
    #: The profile blocks as decoded, cell-major, by block name.
    flat: dict[str, tuple[int, ...]] = field(default_factory=dict, repr=False)

    def column(self, name: str, beam: int) -> list[int]:
        """
        One beam's values of a profile block, cell by cell.

        :param name: ``"velocity"``, ``"correlation"``, ``"echo_intensity"``
            or ``"percent_good"``.
        :param beam: 0 to beams - 1.
        :returns: the values; empty if the ensemble has no such block.
        """
        if name in self.flat:
            return list(self.flat[name][beam :: int(self.fixed["num_beams"])])
        cells: list[list[int]] | None = getattr(self, name)
        return [] if cells is None else [cell[beam] for cell in cells]


def _pack(
    layout: struct.Struct,
    fields: tuple[tuple[str, str], ...],
    counts: list[int],
    values: dict[str, Any],
) -> bytes:
    flat: list[object] = []
    for (name, _), count in zip(fields, counts, strict=True):
        value = values[name]
        if count > 1:
            flat.extend(value)
        else:
            flat.append(value)
    return layout.pack(*flat)


def _unpack(
    layout: struct.Struct,
    fields: tuple[tuple[str, str], ...],
    counts: list[int],
    data: bytes,
    offset: int,
) -> dict[str, Any]:
    flat = layout.unpack_from(data, offset)
    result: dict[str, Any] = {}
    index = 0
    for (name, _), count in zip(fields, counts, strict=True):
        result[name] = flat[index] if count == 1 else flat[index : index + count]
        index += count
    return result


def _cells(values: tuple[int, ...], beams: int) -> list[list[int]]:
    return list(map(list, zip(*[iter(values)] * beams, strict=True)))


_PROFILES: Final = (
    (VELOCITY, "velocity", "h"),
    (CORRELATION, "correlation", "B"),
    (ECHO_INTENSITY, "echo_intensity", "B"),
    (PERCENT_GOOD, "percent_good", "B"),
)


def encode(ensemble: Ensemble) -> bytes:
    """
    Write an ensemble as PD0 bytes, checksum included.

    :param ensemble: the leaders and whichever profile blocks are not
        ``None``; the fixed leader's ``id`` and the variable leader's are
        set here.
    :returns: the bytes, from ``7f 7f`` to the checksum.
    """
    fixed = {**ensemble.fixed, "id": FIXED_LEADER}
    variable = {**ensemble.variable, "id": VARIABLE_LEADER}
    blocks = [
        _pack(_FIXED_STRUCT, _FIXED, _FIXED_COUNTS, fixed),
        _pack(_VARIABLE_STRUCT, _VARIABLE, _VARIABLE_COUNTS, variable),
    ]
    for block_id, name, code in _PROFILES:
        cells = getattr(ensemble, name)
        if cells is None:
            continue
        flat = [value for cell in cells for value in cell]
        blocks.append(
            struct.pack(f"<H{len(flat)}{code}", block_id, *flat),
        )
    header_size = 6 + 2 * len(blocks)
    offsets = []
    position = header_size
    for block in blocks:
        offsets.append(position)
        position += len(block)
    nbytes = position + 2
    header = struct.pack(
        f"<2sHBB{len(blocks)}H", SYNC, nbytes, 0, len(blocks), *offsets
    )
    body = header + b"".join(blocks) + ensemble.reserved
    return body + struct.pack("<H", sum(body) & 0xFFFF)


_verify = additive_checksum()


def decode(data: bytes) -> Ensemble:
    """
    Read one whole ensemble.

    :param data: the bytes, from ``7f 7f`` to the checksum.
    :returns: the ensemble.
    :raises PD0Error: if the bytes are short, the header is implausible, the
        checksum does not verify, or a block does not fit.
    """
    if check_header(data) is not True:
        raise PD0Error(f"not a PD0 ensemble header: {data[:16].hex()}")
    nbytes = int.from_bytes(data[2:4], "little")
    if len(data) != nbytes + 2:
        raise PD0Error(f"ensemble of {nbytes + 2} bytes given as {len(data)}")
    if not _verify(data):
        raise PD0Error("ensemble checksum does not verify")
    count = data[5]
    offsets = struct.unpack_from(f"<{count}H", data, 6)
    ends = [*offsets[1:], nbytes - 2]
    fixed: dict[str, Any] | None = None
    variable: dict[str, Any] | None = None
    profiles: dict[str, list[list[int]]] = {}
    flat: dict[str, tuple[int, ...]] = {}
    blocks: list[int] = []
    for start, end in zip(offsets, ends, strict=True):
        block_id = int.from_bytes(data[start : start + 2], "little")
        blocks.append(block_id)
        try:
            if block_id == FIXED_LEADER:
                fixed = _unpack(_FIXED_STRUCT, _FIXED, _FIXED_COUNTS, data, start)
            elif block_id == VARIABLE_LEADER:
                variable = _unpack(
                    _VARIABLE_STRUCT, _VARIABLE, _VARIABLE_COUNTS, data, start
                )
            else:
                for known, name, code in _PROFILES:
                    if block_id != known or fixed is None:
                        continue
                    beams = int(fixed["num_beams"])
                    cells = int(fixed["num_cells"])
                    size = beams * cells
                    if start + 2 + size * struct.calcsize(code) > end:
                        raise PD0Error(f"block {block_id:#06x} does not fit")
                    values = struct.unpack_from(f"<{size}{code}", data, start + 2)
                    profiles[name] = _cells(values, beams)
                    flat[name] = values
        except struct.error as error:
            raise PD0Error(f"block {block_id:#06x} is cut short: {error}") from None
    if fixed is None or variable is None:
        raise PD0Error("ensemble without its fixed and variable leaders")
    return Ensemble(
        fixed=fixed,
        variable=variable,
        reserved=data[nbytes - 2 : nbytes],
        blocks=blocks,
        flat=flat,
        **profiles,
    )


def check_header(candidate: bytes) -> bool | None:
    """
    Whether bytes starting ``7f 7f`` can be an ensemble's start, judged
    from its header alone (see :func:`~instrumentd.driver.chunker.length_sieve`):
    a length a Workhorse can send, 1 to 16 data types, offsets that
    increase from just after the header and fall inside the length, and
    the fixed leader's ID at the first offset.

    :param candidate: the bytes from the sync on, as many as have arrived.
    :returns: ``False`` if it cannot be, ``None`` if more bytes are needed
        to tell, ``True`` if it is plausible.
    """
    if len(candidate) < 6:
        return None
    nbytes = int.from_bytes(candidate[2:4], "little")
    count = candidate[5]
    if candidate[4] != 0 or not 1 <= count <= _MAX_TYPES:
        return False
    header = 6 + 2 * count
    if nbytes < header + 2 + 59 or nbytes + 2 > MAX_ENSEMBLE:
        return False
    if len(candidate) < header + 2:
        return None
    offsets = struct.unpack_from(f"<{count}H", candidate, 6)
    if offsets[0] != header:
        return False
    if any(b <= a for a, b in itertools.pairwise(offsets)):
        return False
    if offsets[-1] >= nbytes - 2:
        return False
    return candidate[header : header + 2] == b"\x00\x00"


#: What the instrument prints when a break cuts an ensemble short.
BANNER_START: Final = re.compile(rb"\[(?:BREAK|ALARM) Wakeup")


def ensemble_sieve() -> SieveFunction:
    """
    The chunker's sieve for PD0 ensembles: sync, length, header check,
    checksum, and the wake-up banner as proof of a cut ensemble.

    :returns: the sieve.
    """
    return length_sieve(
        SYNC,
        length_offset=2,
        byteorder="little",
        length_adjust=2,
        min_length=8 + 59,
        max_length=MAX_ENSEMBLE,
        verify=_verify,
        check_header=check_header,
        cut_by=BANNER_START,
    )
