# -*- test-case-name: tests.test_optode_simulator -*-
"""
A simulated Aanderaa 4831 oxygen optode in Smart Sensor Terminal mode
(firmware framework 3), faithful to ``doc/specs/aanderaa-4831-optode.md``.

Run it with ``twistd -n instrumentd simulate optode --listen tcp:4003`` (or
``--pty``), or in a test::

    optode = OptodeSimulator(SimulatorSettings(), reactor=clock)

What it does, in the spec's terms:

- It does not echo.  Commands are lines (CR LF; a bare LF is taken too),
  not case-sensitive except for ENUM values; ``#`` acknowledges, a line
  starting with ``*`` is an error; ``//`` and ``;`` lines are comments.
- Its serial receiver sleeps after ``Comm TimeOut`` without input (``%``
  first, if ``Enable Comm Indicator``), and the passkey level lapses then.
  While it sleeps, what arrives is lost; the first byte wakes it within
  :data:`WAKE_SECONDS`, and what arrives meanwhile is lost too; awake, it
  says ``!``.
- At power-up (and after ``Reset``) it prints ``StartupInfo`` when
  ``Enable Text`` is on, takes a sample, and, unless ``Enable Polled
  Mode``, samples every ``Interval`` seconds, as after ``Start``; ``Stop``
  ends that.  ``Do Sample`` measures for :data:`MEASURE_SECONDS` and
  prints the line.
- Sample lines carry the enabled fields, with names and units when
  ``Enable Text`` is on, in decimals or exponential form.

Choices where the spec is silent are on the constants below and in
``doc/simulators.md``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import ClassVar, Final

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from instrumentd.instruments.aanderaa.optode.oxygen import OptodeReading, OxygenWater
from instrumentd.instruments.aanderaa.optode.properties import (
    COMM_TIMEOUTS,
    PROPERTIES,
    Level,
    Property,
    PropertyError,
    Value,
    by_name,
)
from instrumentd.simulator.base import SimulatedInstrument, SimulatorSettings

__all__ = ["MEASURE_SECONDS", "WAKE_SECONDS", "OptodeSimulator"]

#: Serial number when none is given (the spec's OOI unit).
DEFAULT_SERIAL_NUMBER: Final = 379
#: Instrument seconds from the first byte to a sleeping sensor until it is
#: awake (the manual: normally under 100 ms).
WAKE_SECONDS: Final = 0.08
#: Instrument seconds a measurement takes (the spec: about 1 to 1.5 s).
MEASURE_SECONDS: Final = 1.2
#: Longest command line kept.
MAX_LINE: Final = 256

ACCEPTED: Final = "#"
_XON_XOFF: Final = (0x11, 0x13)
_SET: Final = re.compile(r"^set\s+(?P<name>[^(]+?)\s*\((?P<args>[^)]*)\)\s*$", re.I)

#: Output fields: (name printed with Enable Text, attribute of the reading,
#: decimals, the Enable property that turns it on or ``None``).
_FIELDS: Final = (
    ("O2Concentration[uM]", "o2", 3, None),
    ("AirSaturation[%]", "saturation", 3, "Enable AirSaturation"),
    ("Temperature[Deg.C]", "temperature", 3, "Enable Temperature"),
    ("CalPhase[Deg]", "cal_phase", 3, "Enable Rawdata"),
    ("TCPhase[Deg]", "tc_phase", 3, "Enable Rawdata"),
    ("C1RPh[Deg]", "c1_phase", 3, "Enable Rawdata"),
    ("C2RPh[Deg]", "c2_phase", 3, "Enable Rawdata"),
    ("C1Amp[mV]", "c1_amplitude", 1, "Enable Rawdata"),
    ("C2Amp[mV]", "c2_amplitude", 1, "Enable Rawdata"),
    ("RawTemp[mV]", "raw_temperature", 1, "Enable Rawdata"),
)

#: Simulator options (``--option NAME=VALUE``): property values stored at
#: power-up, by the property's name in lower case with ``_`` for spaces.
OPTIONS: Final = {
    name.lower().replace(" ", "_"): name
    for name in (
        "Interval",
        "Enable Polled Mode",
        "Enable Text",
        "Enable Decimalformat",
        "Enable Comm Indicator",
        "Enable AirSaturation",
        "Enable Temperature",
        "Enable Rawdata",
        "Comm TimeOut",
        "Product Number",
    )
}


class OptodeSimulator(SimulatedInstrument):
    """
    A simulated Aanderaa 4831 optode.

    :ivar values: the properties' values now (in RAM).
    :ivar saved: the values stored in flash (``Save``; loaded at power-up).
    :ivar awake: whether its serial receiver is on.
    :ivar sampling: whether it samples every ``Interval`` seconds.
    :ivar level: the passkey level reached.
    :ivar water: what it measures.
    """

    model: ClassVar[str] = "optode"
    option_help: ClassVar[Mapping[str, str]] = {
        key: f"{name} at power-up" for key, name in OPTIONS.items()
    }

    def __init__(
        self,
        settings: SimulatorSettings | None = None,
        *,
        reactor: IReactorTime | None = None,
    ) -> None:
        """
        :param settings: how to run; the defaults when ``None``.  Its
            options set properties at power-up (see :data:`OPTIONS`), e.g.
            ``{"enable_polled_mode": "yes", "interval": "2"}``.
        :param reactor: the reactor or ``Clock``; the global one if ``None``.
        :raises ValueError: naming a bad option value and the valid ones.
        """
        super().__init__(settings, reactor=reactor)
        self.values: dict[str, Value] = {p.name: p.default for p in PROPERTIES}
        self.values["Serial Number"] = (
            self.settings.serial_number or DEFAULT_SERIAL_NUMBER
        )
        for key, text in self.settings.options.items():
            self._option(key, text)
        self.saved = dict(self.values)
        self.water = OxygenWater(self.settings.seed)
        self.awake = False
        self.sampling = False
        self.level = Level.FREE
        self.last: OptodeReading | None = None
        self._waking = False
        self._line = bytearray()
        self._comm_timer: IDelayedCall | None = None
        self._sample_timer: IDelayedCall | None = None
        self.clock.call_later(0, self.power_up)

    def _option(self, key: str, text: str) -> None:
        name = OPTIONS[key]
        prop = by_name(name)
        assert prop is not None
        try:
            self.values[name] = (
                text if prop.read is None else prop.read(text.split(","))
            )
        except PropertyError:
            raise ValueError(
                f"optode option {key}={text!r} is not a valid {name}"
            ) from None

    def describe(self) -> str:
        """
        :returns: e.g. ``"Aanderaa 4831 optode S/N 379"``.
        """
        return (
            f"Aanderaa {self.values['Product Number']} optode "
            f"S/N {self.values['Serial Number']}"
        )

    def _flag(self, name: str) -> bool:
        return bool(self.values[name])

    # ----------------------------------------------------- power and sleep

    def power_up(self) -> None:
        """
        Start as after power-up: the stored settings, the start-up line,
        one sample, and sampling unless in polled mode.
        """
        self._stop_sampling()
        self.values = dict(self.saved)
        self.level = Level.FREE
        self._wake_up(indicate=False)
        if self._flag("Enable Text"):
            self._say(
                f"StartupInfo\t{self.values['Product Number']}\t"
                f"{self.values['Serial Number']}\tMode\t"
                "AADI Smart Sensor Terminal Protocol\tRS232\t"
                "Protocol Version\t3\tConfig Version\t12\r\n"
            )
        self.clock.call_later(MEASURE_SECONDS, self._print_sample)
        if not self._flag("Enable Polled Mode"):
            self._start_sampling()

    def _wake_up(self, *, indicate: bool = True) -> None:
        self._waking = False
        self.awake = True
        self._line.clear()
        if indicate and self._flag("Enable Comm Indicator"):
            self._say("!")
        self._touch()

    def _touch(self) -> None:
        if self._comm_timer is not None and self._comm_timer.active():
            self._comm_timer.cancel()
        timeout = COMM_TIMEOUTS[str(self.values["Comm TimeOut"])]
        self._comm_timer = (
            None
            if timeout is None
            else self.clock.call_later(timeout, self.fall_asleep)
        )

    def fall_asleep(self) -> None:
        """
        Turn the serial receiver off (``%`` first, if indicated); the passkey
        level lapses.  Sampling, if on, goes on.
        """
        if self._comm_timer is not None and self._comm_timer.active():
            self._comm_timer.cancel()
        self._comm_timer = None
        if self.awake and self._flag("Enable Comm Indicator"):
            self._say("%")
        self.awake = False
        self.level = Level.FREE
        self._line.clear()

    # -------------------------------------------------------------- input

    def data_received(self, data: bytes) -> None:
        """
        Bytes from the host: lost while asleep or waking, else lines.

        :param data: the bytes.
        """
        if not self.awake:
            if not self._waking:
                self._waking = True
                self.clock.call_later(WAKE_SECONDS, self._wake_up)
            return
        self._touch()
        for byte in data:
            if byte == 0x0A:
                line = self._line.decode("latin-1").strip()
                self._line.clear()
                self._execute(line)
            elif byte not in (0x0D, *_XON_XOFF) and len(self._line) < MAX_LINE:
                self._line.append(byte)

    def _say(self, text: str) -> None:
        self.send(text.encode("latin-1"))

    def _lines(self, *lines: str) -> None:
        self._say("".join(f"{line}\r\n" for line in lines))

    # ----------------------------------------------------------- commands

    def _execute(self, line: str) -> None:
        if not line or line.startswith(("//", ";")):
            return
        words = " ".join(line.split()).lower()
        simple = {
            "do sample": lambda: self.clock.call_later(
                MEASURE_SECONDS, self._print_sample
            ),
            "do output": self._output_last,
            "start": self._start,
            "stop": self._stop,
            "get all": self._get_all,
            "save": self._save,
            "load": self._load,
            "reset": self._reset,
            "help": self._help,
        }
        if words in simple:
            simple[words]()
        elif words.startswith("get "):
            self._get(line.split(None, 1)[1])
        elif words.startswith("set "):
            self._set(line)
        else:
            self._lines("*ERROR UNKNOWN COMMAND")

    def _property_line(self, prop: Property) -> str:
        columns = [
            prop.name,
            str(self.values["Product Number"]),
            str(self.values["Serial Number"]),
            *prop.format(self.values[prop.name]),
        ]
        return "\t".join(columns)

    def _get(self, name: str) -> None:
        prop = by_name(name)
        if prop is not None:
            self._lines(self._property_line(prop))
            return
        for label, attribute, decimals, _ in _FIELDS:
            if label.split("[")[0].lower() == name.strip().lower():
                value = getattr(self._measure(), attribute)
                self._lines(
                    f"{label}\t{self.values['Product Number']}\t"
                    f"{self.values['Serial Number']}\t{value:.{decimals}f}"
                )
                return
        self._lines("*ERROR UNKNOWN PROPERTY")

    def _get_all(self) -> None:
        self._lines(*(self._property_line(prop) for prop in PROPERTIES))

    def _set(self, line: str) -> None:
        found = _SET.match(line)
        if found is None:
            self._lines("*ERROR SYNTAX")
            return
        name = found.group("name")
        args = [arg.strip() for arg in found.group("args").split(",")]
        if " ".join(name.split()).lower() == "passkey":
            self._passkey(args)
            return
        prop = by_name(name)
        if prop is None:
            self._lines("*ERROR UNKNOWN PROPERTY")
        elif prop.read is None or prop.level is Level.READ_ONLY:
            self._lines("*ERROR READ ONLY PROPERTY")
        elif self.level < prop.level:
            # Sic: the error text of the Smart Sensor family's manuals.
            self._lines("*ERROR PROTECED PROPERTY")
        else:
            try:
                self.values[prop.name] = prop.read(args)
            except PropertyError as error:
                self._lines(f"*{error}")
                return
            self._lines(ACCEPTED)

    def _passkey(self, args: list[str]) -> None:
        levels = {"1": Level.LOW, "1000": Level.HIGH}
        if len(args) != 1 or args[0] not in levels:
            self._lines("*ERROR INVALID PASSKEY")
            return
        self.level = levels[args[0]]
        self._lines(ACCEPTED)

    def _save(self) -> None:
        self.saved = dict(self.values)
        self._lines(ACCEPTED)

    def _load(self) -> None:
        self.values = dict(self.saved)
        self._lines(ACCEPTED)

    def _reset(self) -> None:
        self._lines(ACCEPTED)
        self.awake = False
        self.clock.call_later(0.5, self.power_up)

    def _help(self) -> None:
        self._lines(
            "Available commands:",
            "Do Sample, Do Output, Start, Stop, Get <Property>, Get All,",
            "Set <Property>(<value>), Set Passkey(<n>), Save, Load, Reset, Help",
        )

    # ------------------------------------------------------------ sampling

    def _start(self) -> None:
        if self._flag("Enable Polled Mode"):
            # Choice: the spec does not say; refusing tells a driver the
            # truth, where a bare '#' would not.
            self._lines("*ERROR POLLED MODE ENABLED")
            return
        self._lines(ACCEPTED)
        self._start_sampling()

    def _stop(self) -> None:
        self._stop_sampling()
        self._lines(ACCEPTED)

    def _start_sampling(self) -> None:
        self._stop_sampling()
        self.sampling = True
        self._schedule_sample()

    def _stop_sampling(self) -> None:
        self.sampling = False
        if self._sample_timer is not None and self._sample_timer.active():
            self._sample_timer.cancel()
        self._sample_timer = None

    def _schedule_sample(self) -> None:
        interval = self.values["Interval"]
        assert isinstance(interval, float)
        self._sample_timer = self.clock.call_later(interval, self._interval_sample)

    def _interval_sample(self) -> None:
        self._print_sample()
        if self.sampling:
            self._schedule_sample()

    def _measure(self) -> OptodeReading:
        salinity = self.values["Salinity"]
        phase_coef = self.values["PhaseCoef"]
        assert isinstance(salinity, float) and isinstance(phase_coef, tuple)
        return self.water.measure(self.clock.now(), salinity, phase_coef)

    def _print_sample(self) -> None:
        self.last = self._measure()
        self._say(self.format_sample(self.last))

    def _output_last(self) -> None:
        if self.last is None:
            self.last = self._measure()
        self._say(self.format_sample(self.last))

    def format_sample(self, reading: OptodeReading) -> str:
        """
        A sample line as the settings now make it.

        :param reading: the measurement.
        :returns: the line, CR LF included.
        """
        text = self._flag("Enable Text")
        decimal = self._flag("Enable Decimalformat")
        columns = [
            str(self.values["Product Number"]),
            str(self.values["Serial Number"]),
        ]
        if text:
            columns.insert(0, "MEASUREMENT")
        for label, attribute, decimals, enable in _FIELDS:
            if enable is not None and not self._flag(enable):
                continue
            value: float = getattr(reading, attribute)
            printed = f"{value:.{decimals}f}" if decimal else f"{value:E}"
            columns.extend((label, printed) if text else (printed,))
        return "\t".join(columns) + "\r\n"
