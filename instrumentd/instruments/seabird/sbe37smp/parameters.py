# -*- test-case-name: tests.test_sbe37_driver -*-
"""
The SBE 37-SMP's parameters: what the driver reads from ``DS`` and ``DC``
and what it may set.

The user settings (:data:`SETTINGS`) are read from the status dump (each
names the status value it is, its ``source``) and set with the
instrument's own ``NAME=value`` commands, named as its firmware names them
(:data:`SETTERS`).  The calibration
(:data:`CALIBRATION`) is read from the calibration dump and is read-only:
coefficients come from a calibration lab, not from an operator's console.

Ranges are the instrument's (the spec's): INTERVAL 5..32767, NAVG
1..32767, SYNCWAIT 0..120.  The spec gives none for REFPRESS; the driver
takes 0..10000 dbar (the ocean's deepest), and SAMPLENUM is only kept
non-negative, since the memory's size depends on the instrument (it refuses
what it cannot hold, and the driver reports that refusal).
"""

from __future__ import annotations

from typing import Final

from instrumentd.driver.parameters import Parameter, ParameterDictionary, ParameterType
from instrumentd.driver.setcommands import SetCommands
from instrumentd.driver.settings import reading, setting
from instrumentd.instruments.seabird.sbe37smp.particles import (
    CALIBRATION_IDS,
    CALIBRATION_TEXT,
)

__all__ = [
    "CALIBRATION",
    "DIRECT_ACCESS",
    "GENERATIONS",
    "SETTERS",
    "SETTINGS",
    "STARTUP",
    "declare_parameters",
]

#: The firmware generations whose commands differ: 2.x and 3.0 on.
GENERATIONS: Final = ("2.x", "3.0 on")
#: Each setting's command by firmware generation: 2.x's (the spec's), and
#: 3.0 on's (the SBE 37-SM/SMP manuals' command summaries: ``SampleInterval=``,
#: ``TxRealTime=``...).  ``None``: that firmware has no such setting (3.0h's
#: and 5's status dumps and command lists have no averaging, store-time or
#: sync-wait setting).  Yes and no are ``Y`` and ``N``; a float has three
#: decimals.
SETTERS: Final = SetCommands(
    GENERATIONS,
    {
        "INTERVAL": ("INTERVAL", "SampleInterval"),
        "NAVG": ("NAVG", None),
        "SAMPLENUM": ("SAMPLENUM", "SampleNumber"),
        "TXREALTIME": ("TXREALTIME", "TxRealTime"),
        "OUTPUTSAL": ("OUTPUTSAL", "OutputSal"),
        "OUTPUTSV": ("OUTPUTSV", "OutputSV"),
        "STORETIME": ("STORETIME", None),
        "SYNCMODE": ("SYNCMODE", "SyncMode"),
        "SYNCWAIT": ("SYNCWAIT", None),
        "REFPRESS": ("REFPRESS", "ReferencePressure"),
    },
    decimals=3,
)


_INT, _BOOL, _FLOAT = ParameterType.INT, ParameterType.BOOL, ParameterType.FLOAT
_YN: Final = "Y or N on the instrument; true or false here"

#: The user settings, read from ``DS`` (each its status value, ``source``).
#: Those with a default are startup parameters; all but SAMPLENUM are
#: restored after direct access.
_SETTINGS: Final = (
    setting("INTERVAL", _INT, "Seconds between samples while logging (autosample).",
            source="sample_interval", default=15, range=(5, 32767), units="s",
            display_name="Sample interval"),
    setting("NAVG", _INT, "Measurements averaged into each sample.",
            source="number_of_samples_to_average", default=1, range=(1, 32767),
            display_name="Samples to average"),
    # It counts samples while the instrument logs, so a get in command mode
    # always reads it afresh.
    setting("SAMPLENUM", _INT, "Samples stored in memory. Setting it lower forgets "
            "the later samples; it grows by itself while logging.",
            source="sample_number", minimum=0, display_name="Sample number",
            expiration=0, restore=False),
    setting("TXREALTIME", _BOOL, "Print each sample while logging; without it "
            "autosample makes no particles.", source="tx_realtime", default=True,
            value_description=_YN),
    setting("OUTPUTSAL", _BOOL, "Add salinity (psu) to each sample.",
            source="output_salinity", default=True, value_description=_YN),
    setting("OUTPUTSV", _BOOL, "Add sound velocity (m/s) to each sample.",
            source="output_sound_velocity", default=True, value_description=_YN),
    setting("STORETIME", _BOOL, "Add the instrument's date and time to each sample "
            "(its internal timestamp).", source="store_time", default=True,
            value_description=_YN),
    setting("SYNCMODE", _BOOL, "Take a sample whenever a byte wakes the instrument; "
            "off by default, since the driver's wake-up would then take samples.",
            source="serial_sync_mode", default=False, display_name="Serial sync mode",
            value_description=_YN),
    setting("SYNCWAIT", _INT, "Seconds the instrument waits after a serial sync "
            "sample.", source="serial_sync_wait", range=(0, 120), units="s",
            display_name="Serial sync wait"),
    setting("REFPRESS", _FLOAT, "Pressure used for salinity and sound velocity when "
            "the instrument has no pressure sensor.", source="reference_pressure",
            range=(0.0, 10000.0), units="dbar", display_name="Reference pressure"),
)  # fmt: skip


#: What each calibration value is of, by its first letter.
_SENSOR: Final = {
    "t": "Temperature",
    "c": "Conductivity",
    "w": "Conductivity",
    "p": "Pressure",
    "r": "Real-time clock",
}


def _calibration(source: str) -> Parameter:
    # A calibration date (text) or coefficient (a float), read-only.
    what, name = _SENSOR[source[0]], source.upper()
    if source.endswith("caldate"):
        return reading(
            name, ParameterType.STRING,
            f"When the {what.lower()} sensor was calibrated (dd-mon-yy).",
            source=source, display_name=f"{what} calibration date",
        )  # fmt: skip
    return reading(
        name, _FLOAT, f"{what} calibration coefficient {name}.",
        source=source, display_name=f"{what} coefficient {name}",
    )  # fmt: skip


#: One read-only parameter per date and coefficient the calibration dump
#: may hold (its particle's values less the identifiers).
_CALIBRATION: Final = tuple(
    _calibration(source)
    for source in CALIBRATION_IDS
    if source not in CALIBRATION_TEXT or source.endswith("caldate")
)


#: Every parameter, in the order declared.
_ALL: Final = (*_SETTINGS, *_CALIBRATION)

#: The user settings, read from ``DS``, in the order the driver sets them.
SETTINGS: Final[tuple[str, ...]] = tuple(p.name for p in _SETTINGS)
#: The calibration, read from ``DC``; read-only.
CALIBRATION: Final[tuple[str, ...]] = tuple(p.name for p in _CALIBRATION)
#: Set from the startup configuration (or their defaults) after connecting.
STARTUP: Final[tuple[str, ...]] = tuple(p.name for p in _SETTINGS if p.startup)
#: Restored when direct access ends, if an operator changed them.
DIRECT_ACCESS: Final[tuple[str, ...]] = tuple(
    p.name for p in _SETTINGS if p.direct_access
)


def declare_parameters(parameters: ParameterDictionary) -> None:
    """
    Declare every SBE 37-SMP parameter.

    :param parameters: the protocol's dictionary.
    """
    parameters.add_all(_ALL)
