# -*- test-case-name: tests.test_workhorse_simulator -*-
"""
The simulated Workhorse's diagnostic texts: ``PS0`` (system
configuration), ``PT2`` (ancillary sensors), ``PT4`` (transmit path) and
``PT200`` (all the tests), laid out as firmware 50.40 prints them (the real
captures are in ``doc/specs/rdi-workhorse-adcp.md``).  Lines end CR LF;
the prompt is added by the caller.
"""

from __future__ import annotations

import random

__all__ = ["ps0", "pt2", "pt4", "pt200"]

_BOARDS = (
    "   72  00 00 06 FE BC D8  09 HPA727-3009-00B ",
    "   81  00 00 06 F5 CD 9E  09 REC727-1004-06A",
    "   A5  00 00 06 FF 1C 79  09 HPI727-3007-00A",
    "   82  00 00 06 FF 23 E5  09 CPU727-2011-00E",
    "   07  00 00 06 F6 05 15  09 TUN727-1005-06A",
    "   DB  00 00 06 F5 CB 5D  09 DSP727-2001-06H",
)

#: The CPU board's serial number bytes, as the fixed leader carries them.
CPU_BOARD_SERIAL = bytes.fromhex("82000006ff23e509")


def _lines(lines: list[str]) -> str:
    return "".join(f"{line}\r\n" for line in lines)


def ps0(serial_number: int, frequency_hz: int = 76800) -> str:
    """
    The system configuration.

    :param serial_number: the instrument's serial number.
    :param frequency_hz: its frequency.
    """
    return _lines(
        [
            f"Instrument S/N:  {serial_number}",
            f"       Frequency:  {frequency_hz} HZ",
            "   Configuration:  4 BEAM, JANUS",
            "     Match Layer:  10",
            "      Beam Angle:  20 DEGREES",
            "    Beam Pattern:  CONVEX",
            "     Orientation:  UP",
            "       Sensor(s):  HEADING  TILT 1  TILT 2  DEPTH  TEMPERATURE  PRESSURE",
            "Pressure Sens Coefficients:",
            "              c3 = -1.927850E-11",
            "              c2 = +1.281892E-06",
            "              c1 = +1.375793E+00",
            "          Offset = +1.338634E+01",
            "",
            "Temp Sens Offset:  -0.01 degrees C",
            "",
            "    CPU Firmware:  50.40 [0]",
            "   Boot Code Ver:  Required:  1.16   Actual:  1.16",
            "    DEMOD #1 Ver:  ad48, Type:  1f",
            "    DEMOD #2 Ver:  ad48, Type:  1f",
            "    PWRTIMG  Ver:  85d3, Type:   7",
            "",
            "Board Serial Number Data:",
            *_BOARDS,
        ]
    )


def pt2(temperature_c: float, rng: random.Random) -> str:
    """
    The ancillary sensors.

    :param temperature_c: the water temperature.
    :param rng: for the attitude sensor's own temperature.
    """
    attitude = temperature_c + 3.0 + rng.uniform(-0.2, 0.2)
    return _lines(
        [
            f"Ambient  Temperature = {temperature_c:8.2f} Degrees C",
            f"  Attitude Temperature = {attitude:8.2f} Degrees C",
            "  Internal Moisture    = 8F26h",
        ]
    )


def pt4() -> str:
    """
    The transmit path test, passing.
    """
    return _lines(
        [
            "IXMT    =      5.4 Amps rms  [Data=7bh]",
            "VXMT    =    387.2 Volts rms [Data=b9h]",
            "   Z    =     71.8 Ohms",
            "Transmit Test Results = $0 ... PASS",
        ]
    )


def pt200(temperature_c: float, rng: random.Random) -> str:
    """
    PT2, PT3, PT4, PT5, PT6 and PT7 in a row, all passing (the instrument
    is in water).

    :param temperature_c: the water temperature.
    :param rng: for the per-beam figures.
    """
    lag = [
        "               Lag  Bm1  Bm2  Bm3  Bm4",
        *(
            f"{row:18d}" + "".join(f"{max(0, value):5d}" for value in values)
            for row, values in enumerate(
                [[255] * 4]
                + [
                    [round(255 * 0.6**lag + rng.uniform(-8, 8)) for _ in range(4)]
                    for lag in range(1, 8)
                ]
            )
        ),
    ]
    rssi = [
        f"{ms:6d}" + "".join(f"{round(45 * (1 - 0.8**ms)):6d}" for _ in range(4))
        for ms in range(1, 11)
    ]
    return (
        pt2(temperature_c, rng)
        + _lines(
            [
                "",
                "Correlation Magnitude: Narrow Bandwidth",
                "",
                *lag,
                "",
                "  High Gain RSSI:    63   58   74   73",
                "   Low Gain RSSI:     6    7   10    8",
                "",
                "  SIN Duty Cycle:    49   49   50   49",
                "  COS Duty Cycle:    50   48   50   49",
                "",
                "Receive Test Results = $00000000 ... PASS",
                "",
            ]
        )
        + pt4()
        + _lines(
            [
                "",
                *(["    0    0    0    0"] * 3),
                "   12   12   12   12",
                "  255  255  255  255",
                "Electronics Test Results = $00000000",
                "Receive Bandwidth:",
                "    Sample      bw    bw    bw    bw    bw",
                "      rate  expect   Bm1   Bm2   Bm3   Bm4",
                "        19       7     7     6     7     7 Khz",
                "   results          PASS  PASS  PASS  PASS",
                "RSSI Time Constant:",
                "",
                "RSSI Filter Strobe 1 =   38400 Hz",
                "  time   Bm1   Bm2   Bm3   Bm4",
                "  msec  cnts  cnts  cnts  cnts",
                *rssi,
                "   nom    45    45    45    45",
                "result    PASS  PASS  PASS  PASS",
            ]
        )
    )
