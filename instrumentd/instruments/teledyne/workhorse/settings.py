# -*- test-case-name: tests.test_workhorse_simulator -*-
"""
The simulated Workhorse's settings: each command's value, how the
instrument prints it for ``XX?`` and what it accepts for ``XXvalue``.

Reply lines follow firmware 50.40 (``doc/specs/rdi-workhorse-adcp.md``):
C, E, P and S commands print ``XX = value ---- description``, T, W and D
commands ``XX value ---- description``, the description starting in column
27 or 25; values are zero-padded to a width per command, angles and
temperatures signed.  A value that is not a number is ``ERR 002:  NUMERAL
EXPECTED``, one out of range ``ERR 045: PARAMETER OUT OF BOUNDS``, and the
old value is kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = ["NUMERAL_EXPECTED", "OUT_OF_BOUNDS", "SETTINGS", "Setting", "Settings"]

NUMERAL_EXPECTED: Final = "ERR 002:  NUMERAL EXPECTED"
OUT_OF_BOUNDS: Final = "ERR 045: PARAMETER OUT OF BOUNDS"

_NUMBER: Final = re.compile(r"[+-]?\d+")
_TIME: Final = re.compile(r"(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d{1,2}))?")
_PING_TIME: Final = re.compile(r"(\d{1,2}):(\d{1,2})(?:\.(\d{1,2}))?")


@dataclass(frozen=True)
class Setting:
    """
    One setting.

    :ivar code: the two letters.
    :ivar default: the factory value, as printed.
    :ivar description: the text after the dashes.
    :ivar kind: ``"int"`` (a number), ``"digits"`` (a string of digits),
        ``"pair"`` (two numbers ``n,m``), ``"time"`` (``hh:mm:ss.ff``),
        ``"ping"`` (``mm:ss.ff``) or ``"text"`` (printed only).
    :ivar width: digits printed for numbers (each number of a pair).
    :ivar low: smallest number (or digit) accepted.
    :ivar high: largest.
    :ivar signed: printed with a sign.
    """

    code: str
    default: str
    description: str
    kind: str = "int"
    width: int = 3
    low: int = 0
    high: int = 255
    signed: bool = False

    def show(self, value: str) -> str:
        """
        :returns: the ``XX?`` reply line for ``value``.
        """
        if self.code[0] in "CEPS":
            head, column = f"{self.code} = {value} ", 27
        else:
            head, column = f"{self.code} {value} ", 25
        dashes = "-" * max(1, column - 1 - len(head))
        return f"{head}{dashes} {self.description}"

    def accept(self, text: str) -> str:
        """
        Read a set command's argument.

        :param text: what followed the two letters.
        :returns: the value as it will be printed.
        :raises ValueError: with the ``ERR`` line.
        """
        text = text.strip()
        if self.kind == "int":
            return self._number(text)
        if self.kind == "digits":
            if not text.isdigit():
                raise ValueError(NUMERAL_EXPECTED)
            if len(text) != self.width or any(
                not self.low <= int(digit) <= self.high for digit in text
            ):
                raise ValueError(OUT_OF_BOUNDS)
            return text
        if self.kind == "pair":
            parts = text.split(",")
            if len(parts) != 2:
                raise ValueError(NUMERAL_EXPECTED)
            return ",".join(self._number(part) for part in parts)
        if self.kind in ("time", "ping"):
            found = (_TIME if self.kind == "time" else _PING_TIME).fullmatch(text)
            if found is None:
                raise ValueError(NUMERAL_EXPECTED)
            numbers = [int(part or 0) for part in found.groups()]
            if any(part > 59 for part in numbers[1:-1]) or numbers[-1] > 99:
                raise ValueError(OUT_OF_BOUNDS)
            if self.kind == "time":
                return "{:02d}:{:02d}:{:02d}.{:02d}".format(*numbers)
            return "{:02d}:{:02d}.{:02d}".format(*numbers)
        raise ValueError(OUT_OF_BOUNDS)

    def _number(self, text: str) -> str:
        if _NUMBER.fullmatch(text) is None:
            raise ValueError(NUMERAL_EXPECTED)
        number = int(text)
        if not self.low <= number <= self.high:
            raise ValueError(OUT_OF_BOUNDS)
        if self.signed:
            return f"{'+' if number >= 0 else '-'}{abs(number):0{self.width}d}"
        return f"{number:0{self.width}d}"


def _s(code: str, default: str, description: str, **kind: object) -> Setting:
    return Setting(code, default, description, **kind)  # type: ignore[arg-type]


#: Every setting, factory values of the OOI 75 kHz units where known.
SETTINGS: Final[dict[str, Setting]] = {
    s.code: s
    for s in (
        _s("CB", "411", "Serial Port Control (Baud [4=9600]; Par; Stop)",
           kind="digits", width=3, low=0, high=8),
        _s("CF", "11110", "Flow Ctrl (EnsCyc;PngCyc;Binry;Ser;Rec)",
           kind="digits", width=5, low=0, high=1),
        _s("CH", "0", "Suppress Banner", width=1, high=1),
        _s("CI", "000", "Instrument ID (0-255)"),
        _s("CL", "0", "Sleep Enable (0 = Disable, 1 = Enable, 2 See Manual)",
           width=1, high=2),
        _s("CN", "1", "Save NVRAM to recorder (0 = ON, 1 = OFF)", width=1, high=1),
        _s("CP", "0", "PolledMode (1=ON, 0=OFF;  BREAK resets)", width=1, high=1),
        _s("CQ", "255", "Xmt Power (0=Low, 255=High)"),
        _s("CX", "0", "Trigger Enable (0 = OFF, 1 = ON)", width=1, high=1),
        _s("EA", "+00000", "Heading Alignment (1/100 deg)",
           width=5, low=-17999, high=18000, signed=True),
        _s("EB", "+00000", "Heading Bias (1/100 deg)",
           width=5, low=-17999, high=18000, signed=True),
        _s("EC", "1485", "Speed Of Sound (m/s)", width=4, low=1400, high=1600),
        _s("ED", "08000", "Transducer Depth (0 - 65535 dm)", width=5, high=65535),
        _s("EH", "00000", "Heading (1/100 deg)", width=5, high=35999),
        _s("EP", "+0000", "Tilt 1 Sensor (1/100 deg)",
           width=4, low=-6000, high=6000, signed=True),
        _s("ER", "+0000", "Tilt 2 Sensor (1/100 deg)",
           width=4, low=-6000, high=6000, signed=True),
        _s("ES", "35", "Salinity (0-40 pp thousand)", width=2, high=40),
        _s("ET", "+2500", "Temperature (1/100 deg Celsius)",
           width=4, low=-500, high=4000, signed=True),
        _s("EX", "00111", "Coord Transform (Xform:Type; Tilts; 3Bm; Map)",
           kind="digits", width=5, low=0, high=1),
        _s("EZ", "1111101", "Sensor Source (C;D;H;P;R;S;T)",
           kind="digits", width=7, low=0, high=2),
        _s("PD", "00", "Data Stream Select (0-18)", width=2, high=18),
        _s("TB", "00:00:00.00", "Time per Burst (hrs:min:sec.sec/100)", kind="time"),
        _s("TC", "00000", "Ensembles Per Burst (0-65535)", width=5, high=65535),
        _s("TE", "00:00:00.00", "Time per Ensemble (hrs:min:sec.sec/100)",
           kind="time"),
        _s("TF", "**/**/**,**:**:**",
           "Time of First Ping (yr/mon/day,hour:min:sec)", kind="text"),
        _s("TP", "00:01.00", "Time per Ping (min:sec.sec/100)", kind="ping"),
        _s("TX", "00:00:00", "Buffer Output Period: (hh:mm:ss)", kind="text"),
        _s("WA", "050,001", "False Target Threshold (Max)(0-255),[Start Bin]",
           kind="pair"),
        _s("WB", "0", "Bandwidth Control (0=Wid,1=Nar)", width=1, high=1),
        _s("WC", "064", "Correlation Threshold"),
        _s("WD", "111100000", "Data Out (Vel;Cor;Amp  PG;St;P0  P1;P2;P3)",
           kind="digits", width=9, low=0, high=1),
        _s("WE", "2000", "Error Velocity Threshold (0-5000 mm/s)",
           width=4, high=5000),
        _s("WF", "0704", "Blank After Transmit (cm)", width=4, high=9999),
        _s("WG", "000", "Percent Good Minimum (1-100%)", high=100),
        _s("WI", "0", "Clip Data Past Bottom (0=OFF,1=ON)", width=1, high=1),
        _s("WJ", "1", "Rcvr Gain Select (0=Low,1=High)", width=1, high=1),
        _s("WL", "001,005", "Water Reference Layer:  Begin Cell (0=OFF), End Cell",
           kind="pair"),
        _s("WM", "1", "Profiling Mode (1-15)", width=1, low=1, high=15),
        _s("WN", "030", "Number of depth cells (1-255)", low=1, high=255),
        _s("WP", "00001", "Pings per Ensemble (0-16384)", width=5, high=16384),
        _s("WQ", "0", "Sample Ambient Sound (0=OFF,1=ON)", width=1, high=1),
        _s("WS", "0800", "Depth Cell Size (cm)", width=4, low=40, high=3200),
        _s("WT", "0000", "Transmit Length (cm) [0 = Bin Length]",
           width=4, high=3200),
        _s("WU", "0", "Ping Weighting (0=Box,1=Triangle)", width=1, high=1),
        _s("WV", "175", "Mode 1 Ambiguity Vel (cm/s radial)", low=2, high=700),
    )
}  # fmt: skip


class Settings:
    """
    The instrument's settings in RAM, and the saved user defaults.
    """

    def __init__(self) -> None:
        self.ram = {code: s.default for code, s in SETTINGS.items()}
        self.saved = dict(self.ram)

    def __getitem__(self, code: str) -> str:
        return self.ram[code]

    def number(self, code: str) -> int:
        """
        :returns: a numeric setting as an int.
        """
        return int(self.ram[code])

    def seconds(self, code: str) -> float:
        """
        :returns: a time setting (``TE``, ``TP``, ``TB``) in seconds.
        """
        parts = [float(part) for part in self.ram[code].split(":")]
        total = 0.0
        for part in parts:
            total = total * 60 + part
        return total

    def query(self, code: str) -> str:
        """
        :returns: the ``XX?`` reply line.
        """
        return SETTINGS[code].show(self.ram[code])

    def set(self, code: str, text: str) -> None:
        """
        Set a value in RAM.

        :raises ValueError: with the ``ERR`` line; nothing changes.
        """
        self.ram[code] = SETTINGS[code].accept(text)

    def save(self) -> None:
        """
        ``CK``: RAM becomes the user defaults.
        """
        self.saved = dict(self.ram)

    def restore(self, factory: bool) -> None:
        """
        ``CR0`` (user defaults) or ``CR1`` (factory).
        """
        if factory:
            self.ram = {code: s.default for code, s in SETTINGS.items()}
        else:
            self.ram = dict(self.saved)
