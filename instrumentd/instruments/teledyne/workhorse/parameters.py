# -*- test-case-name: tests.test_workhorse_driver -*-
"""
The Workhorse's deployment parameters, as the driver declares them.

Each is the instrument's own two-letter command.  Its value is read from
the ``XX?`` reply (``XX = value ---- description`` or ``XX value ----
description``) and set with ``XXvalue``; numbers are in the instrument's
units (``EA`` in hundredths of a degree, ``WS`` in centimetres), digit
strings (``EX00111``) and times (``TE00:00:05.00``) are text checked
against their form.  The startup values are what the OOI 75 kHz moorings
used.
"""

from __future__ import annotations

import re
from typing import Any, Final

from instrumentd.driver.parameters import (
    Parameter,
    ParameterDictionary,
    ParameterType,
)

__all__ = ["CODES", "declare_parameters"]

_INT = ParameterType.INT
_TEXT = ParameterType.STRING

#: code, type, startup default (None: not a startup parameter), min, max or
#: form, units, description.
_TABLE: Final[tuple[tuple[Any, ...], ...]] = (
    ("CF", _TEXT, "11110", r"[01]{5}", None, None, "Flow control: ensemble cycling; ping cycling; binary; serial; recorder"),
    ("CH", _INT, None, 0, 1, None, "Suppress the wake-up banner"),
    ("CI", _INT, None, 0, 255, None, "Instrument ID"),
    ("CL", _INT, None, 0, 2, None, "Sleep between pings"),
    ("CQ", _INT, 255, 0, 255, None, "Transmit power (0 low, 255 high)"),
    ("EA", _INT, 0, -17999, 18000, "0.01 degree", "Heading alignment"),
    ("EB", _INT, 0, -17999, 18000, "0.01 degree", "Heading bias (magnetic variation)"),
    ("EC", _INT, 1485, 1400, 1600, "m s-1", "Speed of sound"),
    ("ED", _INT, 8000, 0, 65535, "dm", "Transducer depth"),
    ("ES", _INT, 35, 0, 40, "1e-3", "Salinity"),
    ("EX", _TEXT, "00111", r"[01]{5}", None, None, "Coordinate transformation: type (2 digits), tilts, 3-beam, bin mapping"),
    ("EZ", _TEXT, "1111101", r"[012]{7}", None, None, "Sensor source: C;D;H;P;R;S;T"),
    ("TE", _TEXT, "00:00:00.00", r"\d\d:[0-5]\d:[0-5]\d\.\d\d", None, None, "Time per ensemble (hh:mm:ss.ff)"),
    ("TP", _TEXT, "00:01.00", r"[0-5]\d:[0-5]\d\.\d\d", None, None, "Time between pings (mm:ss.ff)"),
    ("WA", _TEXT, "050,001", r"\d{3},\d{3}", None, None, "False target threshold, start bin"),
    ("WB", _INT, 0, 0, 1, None, "Bandwidth (0 wide, 1 narrow)"),
    ("WC", _INT, 64, 0, 255, None, "Correlation threshold"),
    ("WD", _TEXT, "111100000", r"[01]{9}", None, None, "Data out: Vel;Cor;Amp PG;St;P0 P1;P2;P3"),
    ("WE", _INT, 2000, 0, 5000, "mm s-1", "Error velocity threshold"),
    ("WF", _INT, 704, 0, 9999, "cm", "Blank after transmit"),
    ("WG", _INT, None, 0, 100, "percent", "Percent good minimum"),
    ("WL", _TEXT, None, r"\d{3},\d{3}", None, None, "Water reference layer: begin cell, end cell"),
    ("WM", _INT, None, 1, 15, None, "Profiling mode"),
    ("WN", _INT, 100, 1, 255, None, "Number of depth cells"),
    ("WP", _INT, 1, 0, 16384, None, "Pings per ensemble"),
    ("WS", _INT, 800, 40, 3200, "cm", "Depth cell size"),
    ("WT", _INT, None, 0, 3200, "cm", "Transmit length (0: the cell size)"),
    ("WV", _INT, 175, 2, 700, "cm s-1", "Mode 1 ambiguity velocity"),
)  # fmt: skip

#: Every parameter's code, in the order the driver queries them.
CODES: Final = tuple(row[0] for row in _TABLE)


def _reply(code: str) -> re.Pattern[str]:
    # The ``XX?`` reply: ``CF = 11110 ----`` or ``WN 030 ----``; the value
    # may hold single spaces (``CD = 000 000 000``).
    return re.compile(rf"^{code}(?: =)? +(\S+(?: \S+)*?) -+ ", re.MULTILINE)


def declare_parameters(parameters: ParameterDictionary) -> None:
    """
    Declare the deployment parameters.

    :param parameters: the protocol's dictionary.
    """
    for code, kind, default, low, high, units, description in _TABLE:
        parameters.add(
            Parameter(
                name=code,
                type=kind,
                startup=default is not None,
                direct_access=True,
                default_value=default,
                minimum=None if isinstance(low, str) else low,
                maximum=high,
                form=low if isinstance(low, str) else None,
                units=units,
                display_name=description.split(":")[0].split(" (")[0],
                description=description,
                pattern=_reply(code),
                format=code + "{value}",
            )
        )
