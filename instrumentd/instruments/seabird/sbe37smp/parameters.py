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

from instrumentd.driver.parameters import (
    Parameter,
    ParameterDictionary,
    ParameterType,
    Visibility,
)
from instrumentd.driver.setcommands import SetCommands
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


def _setting(
    name: str, kind: ParameterType, source: str, description: str, **more: object
) -> Parameter:
    return Parameter(
        name=name,
        type=kind,
        source=source,
        description=description,
        value_description="Y or N on the instrument; true or false here"
        if kind is ParameterType.BOOL
        else "",
        **more,  # type: ignore[arg-type]
    )


def _settings() -> tuple[Parameter, ...]:
    int_, bool_ = ParameterType.INT, ParameterType.BOOL
    restored: dict[str, object] = {"direct_access": True}
    startup = {"startup": True, **restored}
    return (
        _setting(
            "INTERVAL", int_, "sample_interval",
            "Seconds between samples while logging (autosample).",
            default_value=15, minimum=5, maximum=32767, units="s",
            display_name="Sample interval", **startup,
        ),
        _setting(
            "NAVG", int_, "number_of_samples_to_average",
            "Measurements averaged into each sample.",
            default_value=1, minimum=1, maximum=32767,
            display_name="Samples to average", **startup,
        ),
        _setting(
            "SAMPLENUM", int_, "sample_number",
            "Samples stored in memory. Setting it lower forgets the later "
            "samples; it grows by itself while logging.",
            # It counts samples while the instrument logs, so a get in
            # command mode always reads it afresh.
            minimum=0, display_name="Sample number", expiration=0,
        ),
        _setting(
            "TXREALTIME", bool_, "tx_realtime",
            "Print each sample while logging; without it autosample makes no "
            "particles.",
            default_value=True, **startup,
        ),
        _setting(
            "OUTPUTSAL", bool_, "output_salinity",
            "Add salinity (psu) to each sample.", default_value=True, **startup,
        ),
        _setting(
            "OUTPUTSV", bool_, "output_sound_velocity",
            "Add sound velocity (m/s) to each sample.", default_value=True,
            **startup,
        ),
        _setting(
            "STORETIME", bool_, "store_time",
            "Add the instrument's date and time to each sample (its internal "
            "timestamp).",
            default_value=True, **startup,
        ),
        _setting(
            "SYNCMODE", bool_, "serial_sync_mode",
            "Take a sample whenever a byte wakes the instrument; off by "
            "default, since the driver's wake-up would then take samples.",
            default_value=False, display_name="Serial sync mode", **startup,
        ),
        _setting(
            "SYNCWAIT", int_, "serial_sync_wait",
            "Seconds the instrument waits after a serial sync sample.",
            minimum=0, maximum=120, units="s", display_name="Serial sync wait",
            **restored,
        ),
        _setting(
            "REFPRESS", ParameterType.FLOAT, "reference_pressure",
            "Pressure used for salinity and sound velocity when the "
            "instrument has no pressure sensor.",
            minimum=0.0, maximum=10000.0, units="dbar",
            display_name="Reference pressure", **restored,
        ),
    )  # fmt: skip


#: What each calibration value is of, by its first letter.
_SENSOR: Final = {
    "t": "Temperature",
    "c": "Conductivity",
    "w": "Conductivity",
    "p": "Pressure",
    "r": "Real-time clock",
}


def _calibration() -> tuple[Parameter, ...]:
    # One read-only parameter per date and coefficient the calibration dump
    # may hold (its particle's values less the identifiers).
    declared = []
    for source in CALIBRATION_IDS:
        if source in CALIBRATION_TEXT and not source.endswith("caldate"):
            continue
        what, date = _SENSOR[source[0]], source.endswith("caldate")
        declared.append(
            Parameter(
                name=source.upper(),
                type=ParameterType.STRING if date else ParameterType.FLOAT,
                visibility=Visibility.READ_ONLY,
                source=source,
                display_name=f"{what} calibration date"
                if date
                else f"{what} coefficient {source.upper()}",
                description=f"When the {what.lower()} sensor was calibrated "
                "(dd-mon-yy)."
                if date
                else f"{what} calibration coefficient {source.upper()}.",
            )
        )
    return tuple(declared)


_SETTINGS: Final = _settings()
_CALIBRATION: Final = _calibration()

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
    for parameter in (*_SETTINGS, *_CALIBRATION):
        parameters.add(parameter)
