# -*- test-case-name: tests.test_sbe37_simulator -*-
"""
A simulated Sea-Bird SBE 37-SMP MicroCAT, faithful to the project's spec
(``doc/specs/sbe37-smp.md``).

Run it with ``twistd -n instrumentd simulate sbe37 --listen tcp:4001`` (or
``--pty``), or in a test::

    clock = Clock()
    sbe37 = SBE37Simulator(SimulatorSettings(start_time=...), reactor=clock)
    link = InProcessLink(sbe37)

Where the spec is silent, choices are documented in ``doc/simulators.md``
and on the constants below.  In short: it starts asleep; a sleeping
instrument discards what wakes it and prompts ``S>`` after
:data:`WAKE_SECONDS`; a completed command ends with CR LF and the prompt;
samples take :data:`ACQUISITION_SECONDS`; all of these are instrument
seconds, so the time scale shortens them.

Its sensors and their equations are in :mod:`.calibration`, its sample
memory in :mod:`.memory`.  The water it measures is a :class:`~instrumentd.simulator.seawater.MooringWater`;
the sensors turn it into raw values through the factory calibration, and
the instrument turns raw values back into engineering units through the
calibration it holds now, so changing a coefficient with ``TA0=`` changes
what it prints, as on the real instrument.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, date, datetime, time
from enum import Enum
from typing import ClassVar, Final, TypeVar

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from instrumentd.instruments.seabird.sbe37smp.calibration import (
    Calibration,
    RawReading,
)
from instrumentd.instruments.seabird.sbe37smp.firmware import (
    FIRMWARES,
    Firmware,
    day,
)
from instrumentd.instruments.seabird.sbe37smp.memory import SampleMemory
from instrumentd.instruments.seabird.sbe37smp.setting_values import (
    BadValue,
    parse_cal_date,
    parse_date,
    parse_date_time,
    parse_integer,
    parse_time,
)
from instrumentd.simulator.base import SimulatedInstrument, SimulatorSettings
from instrumentd.simulator.seawater import MooringWater, salinity, sound_velocity

__all__ = [
    "ACQUISITION_SECONDS",
    "ALLOWED_WHILE_LOGGING",
    "CAPACITY",
    "IDLE_SLEEP_SECONDS",
    "WAKE_SECONDS",
    "Calibration",
    "Mode",
    "RawReading",
    "SBE37Simulator",
    "Setup",
]

#: Serial number when none is given: the one in the spec's examples.
DEFAULT_SERIAL_NUMBER: Final = 2165
#: Samples memory holds with firmware 2.6: the spec's example (1234
#: stored, 190128 free).
CAPACITY: Final = FIRMWARES["2.6"].capacity
#: Instrument seconds without input before it sleeps (the spec's "about 2
#: minutes").
IDLE_SLEEP_SECONDS: Final = 120.0
#: Instrument seconds from the first byte to a sleeping instrument until it
#: prompts; the spec allows up to about 1 s.
WAKE_SECONDS: Final = 0.5
#: Instrument seconds a measurement takes (pumping and sampling) before the
#: sample is printed.
ACQUISITION_SECONDS: Final = 1.0
#: Self-tests print one reading per this many instrument seconds.
SELF_TEST_PERIOD: Final = 1.0
SELF_TEST_READINGS: Final = 100
#: Longest command line kept; further characters are dropped (and echoed).
MAX_LINE: Final = 1024
#: Commands a logging instrument accepts (the spec's list).
ALLOWED_WHILE_LOGGING: Final = frozenset({"DS", "DC", "TS", "SL", "SLT", "QS", "STOP"})

PROMPT: Final = "S>"
BAD_COMMAND_PROMPT: Final = "?cmd S>"
NOT_ALLOWED: Final = "cmd not allowed while logging"

_CR: Final = 0x0D
_LF: Final = 0x0A
_BACKSPACES: Final = (0x08, 0x7F)


class Mode(Enum):
    """
    What the instrument is doing with its serial port.
    """

    ASLEEP = "asleep"
    WAKING = "waking"
    COMMAND = "command"
    BUSY = "busy"
    SELF_TEST = "self-test"


@dataclass
class Setup:
    """
    The user settings, as ``DS`` reports them.  Defaults: the spec's ``DS``
    example.
    """

    interval: int = 15
    txrealtime: bool = True
    outputsal: bool = True
    outputsv: bool = True
    storetime: bool = True
    navg: int = 1
    syncmode: bool = False
    syncwait: int = 0
    refpress: float = 0.0
    format: int = 1


_DD = re.compile(r"^DD\s*(\d+)\s*,\s*(\d+)$")


_T = TypeVar("_T")
_YES_NO: Final = {"yes": True, "no": False}


def _choice(
    options: Mapping[str, str], key: str, choices: Mapping[str, _T], default: str
) -> _T:
    # A simulator option's value, or a clear error naming it and the choices.
    text = options.get(key, default)
    if text not in choices:
        raise ValueError(
            f"sbe37 option {key}={text!r} is not one of: {', '.join(choices)}"
        )
    return choices[text]


class SBE37Simulator(SimulatedInstrument):
    """
    A simulated SBE 37-SMP MicroCAT.

    :ivar serial_number: its serial number.
    :ivar setup: the user settings.
    :ivar calibration: the calibration it holds now.
    :ivar factory_calibration: the sensors' true calibration, which turns
        the water into raw readings.
    :ivar water: what it measures.
    :ivar mode: what its serial port is doing.
    :ivar logging: whether it is logging (autosampling).
    :ivar low_battery: set to make ``DS`` warn of a low battery.
    :ivar pump_installed: what ``DS`` says of the pump.
    :ivar pressure_sensor: whether the optional pressure sensor is fitted.
    :ivar firmware: what it prints (:mod:`.firmware`).
    :ivar stop_reason: why logging last stopped: ``"stop"`` or ``"memory
        full"``.
    """

    model: ClassVar[str] = "sbe37"
    option_help: ClassVar[Mapping[str, str]] = {
        "firmware": "what the dumps and samples look like, and which command "
        "names it takes: " + " or ".join(FIRMWARES) + " (default 2.6, the spec's)",
        "pressure_sensor": "yes (default) or no: no pressure column, no "
        "pressure section in DC",
        "pump": "yes (default) or no: what DS says of the pump",
    }

    def __init__(
        self,
        settings: SimulatorSettings | None = None,
        *,
        reactor: IReactorTime | None = None,
        awake: bool = False,
        water: MooringWater | None = None,
    ) -> None:
        """
        :param settings: how to run; the defaults when ``None``.
        :param reactor: the reactor or ``Clock``; the global reactor when
            ``None``.
        :param awake: start awake at the prompt (as after power-up) rather
            than asleep (as a deployed instrument usually is).
        :param water: what it measures; a :class:`MooringWater` seeded with
            the settings' seed when ``None``.
        :raises ValueError: naming a bad option value and the valid ones.
        """
        super().__init__(settings, reactor=reactor)
        options = self.settings.options
        self.firmware: Firmware = _choice(options, "firmware", FIRMWARES, "2.6")
        self.pressure_sensor: bool = _choice(options, "pressure_sensor", _YES_NO, "yes")
        self.pump_installed: bool = _choice(options, "pump", _YES_NO, "yes")
        self.serial_number = self.settings.serial_number or DEFAULT_SERIAL_NUMBER
        self.setup = Setup()
        self.calibration = Calibration()
        self.factory_calibration = replace(self.calibration)
        self.water = water if water is not None else MooringWater(self.settings.seed)
        self.mode = Mode.ASLEEP
        self.logging = False
        self.low_battery = False
        self.stop_reason = "stop"
        self._memory = SampleMemory()
        self._last: RawReading | None = None
        self._line = bytearray()
        self._pending = bytearray()
        self._echo = bytearray()
        self._after_cr = False
        self._idle: IDelayedCall | None = None
        self._log_start = 0.0
        self._log_count = 0
        self._sample_timer: IDelayedCall | None = None
        self._start_date: date | None = None
        self._start_time: time | None = None
        self._start_at: float | None = None
        self._start_timer: IDelayedCall | None = None
        self._test_timer: IDelayedCall | None = None
        self._tests_done = 0
        if awake:
            self.mode = Mode.COMMAND
            self._touch()

    def describe(self) -> str:
        """
        :returns: ``"SBE 37-SMP S/N 2165"``.
        """
        return f"SBE 37-SMP S/N {self.serial_number}"

    @property
    def samplenum(self) -> int:
        """
        How many samples are stored (``SAMPLENUM``).
        """
        return len(self._memory)

    @property
    def waiting_to_start(self) -> float | None:
        """
        The instrument time a ``STARTLATER`` will start logging at, or
        ``None``.
        """
        return self._start_at

    def now(self) -> datetime:
        """
        :returns: the instrument's clock, as a UTC datetime.
        """
        return datetime.fromtimestamp(self.clock.now(), UTC)

    # ---------------------------------------------------------------- input

    def data_received(self, data: bytes) -> None:
        """
        Bytes from the host: wake, echo, edit the line, run commands.

        :param data: the bytes.
        """
        for byte in data:
            self._byte(byte)
        self._flush_echo()

    def _byte(self, byte: int) -> None:
        # CR LF is one line end: the LF after a CR is dropped in every mode,
        # so it neither wakes an instrument a QS just put to sleep nor stops
        # the self-test its CR just started.
        if byte == _LF and self._after_cr:
            self._after_cr = False
            return
        self._after_cr = byte == _CR
        if self.mode is Mode.ASLEEP:
            self._start_waking()
        elif self.mode is Mode.WAKING:
            pass
        elif self.mode is Mode.BUSY:
            self._pending.append(byte)
        elif self.mode is Mode.SELF_TEST:
            self._touch()
            self._end_self_test()
        else:
            self._touch()
            self._edit(byte)

    def _edit(self, byte: int) -> None:
        if byte in (_CR, _LF):
            self._echo_bytes(b"\r\n")
            line = self._line.decode("ascii", "replace")
            self._line.clear()
            self._flush_echo()
            self._execute(line.strip().upper())
        elif byte in _BACKSPACES:
            if self._line:
                del self._line[-1]
                self._echo_bytes(b"\b \b")
        elif len(self._line) < MAX_LINE:
            self._line.append(byte)
            self._echo_bytes(bytes((byte,)))

    def _echo_bytes(self, data: bytes) -> None:
        if self.settings.echo:
            self._echo += data

    def _flush_echo(self) -> None:
        if self._echo:
            echo, self._echo = bytes(self._echo), bytearray()
            self.send(echo)

    def _say(self, text: str) -> None:
        self._flush_echo()
        self.send(text.encode("ascii"))

    def _reply(self, *lines: str, prompt: str = PROMPT) -> None:
        """
        Lines, then CR LF and the prompt, which ends every command.
        """
        self.mode = Mode.COMMAND
        self._say("".join(f"{line}\r\n" for line in lines) + "\r\n" + prompt)

    # ---------------------------------------------------------- sleep, wake

    def _touch(self) -> None:
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self._idle = self.clock.call_later(IDLE_SLEEP_SECONDS, self._idle_timeout)

    def _idle_timeout(self) -> None:
        self._idle = None
        if self.mode is Mode.COMMAND:
            self.fall_asleep()

    def fall_asleep(self) -> None:
        """
        Go to sleep (quiescent), as ``QS`` or two idle minutes do; logging
        goes on.
        """
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self._idle = None
        self._line.clear()
        self.mode = Mode.ASLEEP

    def _start_waking(self) -> None:
        self.mode = Mode.WAKING
        self.clock.call_later(WAKE_SECONDS, self._woken)

    def _woken(self) -> None:
        self._line.clear()
        self._touch()
        self._reply()

    # ------------------------------------------------------------- commands

    def _execute(self, text: str) -> None:
        if not text:
            self._reply()
            return
        name, equals, value = text.partition("=")
        name = name.strip()
        if equals:
            setter = self._setters().get(name)
            if setter is None:
                self._unknown(name)
            elif self.logging:
                self._reply(NOT_ALLOWED)
            else:
                try:
                    setter(value.strip())
                except BadValue as e:
                    self._reply(str(e))
                else:
                    self._reply()
            return
        if name.startswith("DD"):
            if self.logging:
                self._reply(NOT_ALLOWED)
            else:
                self._display_stored(name)
            return
        command = self._commands().get(name)
        if command is None:
            self._unknown(name)
        elif self.logging and name not in ALLOWED_WHILE_LOGGING:
            self._reply(NOT_ALLOWED)
        else:
            command()

    def _unknown(self, name: str) -> None:
        # As this firmware answers a command it does not know.
        refusal = self.firmware.unknown_command(name)
        if refusal is None:
            self._reply(prompt=BAD_COMMAND_PROMPT)
        else:
            self._reply(refusal)

    def _commands(self) -> dict[str, Callable[[], None]]:
        return {
            "DS": self._display_status,
            "DC": self._display_calibration,
            "TS": self._take_sample,
            "TSR": self._take_raw_sample,
            "SL": self._show_last,
            "SLT": self._show_last_and_take,
            "STARTNOW": self._start_now,
            "STARTLATER": self._start_later,
            "STOP": self._stop,
            "QS": self.fall_asleep,
            "INITLOGGING": self._init_logging,
            "TC": lambda: self._self_test("conductivity"),
            "TT": lambda: self._self_test("temperature"),
            "TP": lambda: self._self_test("pressure"),
        }

    def _busy(self, seconds: float, then: Callable[[], None]) -> None:
        # While busy, input waits (it is handled, and echoed, afterwards).
        self.mode = Mode.BUSY
        self.clock.call_later(seconds, self._done, then)

    def _done(self, then: Callable[[], None]) -> None:
        then()
        self._touch()
        pending, self._pending = bytes(self._pending), bytearray()
        self.data_received(pending)

    # --------------------------------------------------------------- status

    def _display_status(self) -> None:
        self._reply(*self.firmware.status(self))

    def internal_temperature(self) -> float:
        """
        :returns: the housing's temperature, deg C: the water's, since the
            housing sits in it.
        """
        return self.water.at(self.clock.now()).temperature

    def _display_calibration(self) -> None:
        self._reply(
            *self.firmware.calibration(
                self.calibration, self.serial_number, self.pressure_sensor
            )
        )

    # -------------------------------------------------------------- samples

    def measure(self, when: float | None = None, navg: int | None = None) -> RawReading:
        """
        Measure the water, as the sensors report it.

        :param when: instrument time; now if ``None``.
        :param navg: readings averaged; ``NAVG`` if ``None``.
        :returns: the raw reading, with the time stored if ``STORETIME``.
        """
        when = self.clock.now() if when is None else when
        water = self.water.at(when, self.setup.navg if navg is None else navg)
        factory = self.factory_calibration
        return RawReading(
            time=when,
            temperature_counts=factory.temperature_counts(water.temperature),
            conductivity_hz=factory.conductivity_frequency(
                water.conductivity, water.temperature, water.pressure
            ),
            pressure_counts=factory.pressure_counts(water.pressure, water.temperature),
            with_time=self.setup.storetime,
        )

    def engineering(self, reading: RawReading) -> tuple[float, float, float]:
        """
        Convert a raw reading with the calibration held now.

        :param reading: the reading.
        :returns: temperature (ITS-90 deg C), conductivity (S/m) and
            pressure (dbar), rounded as printed.
        """
        cal = self.calibration
        t = cal.temperature(reading.temperature_counts)
        p = cal.pressure(reading.pressure_counts, t)
        c = cal.conductivity(reading.conductivity_hz, t, p)
        return round(t, 4), round(c, 5), round(p, 3)

    def format_sample(self, reading: RawReading, raw: bool | None = None) -> str:
        """
        A sample as the instrument prints it, without ``#`` and line end.

        Engineering units (``FORMAT=1``): ``T, C[, P][, S][, SV][, dd Mon
        yyyy, hh:mm:ss]``, laid out as :attr:`firmware` prints them; no
        pressure without a pressure sensor.  Raw (``FORMAT=0``, or ``raw=True``): see
        :meth:`format_raw`, then the date and time if stored.

        :param reading: the reading.
        :param raw: force raw (``True``) or engineering (``False``) output;
            ``FORMAT`` decides if ``None``.
        :returns: the text.
        """
        if raw is None:
            raw = self.setup.format == 0
        if raw:
            text = self.format_raw(reading)
        else:
            t, c, p = self.engineering(reading)
            if not self.pressure_sensor:
                # Salinity and sound velocity then use REFPRESS.
                p = self.setup.refpress
            # From the printed values, so that the columns agree.
            s = salinity(c, t, p)
            text = self.firmware.columns(
                t,
                c,
                p if self.pressure_sensor else None,
                s if self.setup.outputsal else None,
                sound_velocity(s, t, p) if self.setup.outputsv else None,
            )
        if reading.with_time:
            when = datetime.fromtimestamp(reading.time, UTC)
            text += f", {day(when)}, {when:%H:%M:%S}"
        return text

    def format_raw(self, reading: RawReading) -> str:
        """
        Raw output (``TSR``, ``FORMAT=0``): thermistor counts (integer),
        conductivity frequency (Hz, 3 decimals) and strain-gauge counts (3
        decimals), comma separated, e.g. ``" 64836025,  5467.212,   333.474"``;
        no strain-gauge counts without a pressure sensor (*choice*, as the
        SBE 39plus-IM manual's raw output sends its pressure counts "only
        if pressure sensor installed").

        :param reading: the reading.
        :returns: the text.
        """
        text = f"{round(reading.temperature_counts):9d},{reading.conductivity_hz:10.3f}"
        if self.pressure_sensor:
            text += f",{reading.pressure_counts:10.3f}"
        return text

    def _take_sample(self) -> None:
        reading = self.measure()
        self._busy(ACQUISITION_SECONDS, lambda: self._print_sample(reading))

    def _print_sample(self, reading: RawReading) -> None:
        self._last = reading
        self._reply(self.format_sample(reading))

    def _take_raw_sample(self) -> None:
        reading = self.measure()

        def done() -> None:
            self._last = reading
            self._reply(self.format_raw(reading))

        self._busy(ACQUISITION_SECONDS, done)

    def _last_reading(self) -> RawReading:
        # Before any sample has been taken, "the last sample" is the one the
        # instrument makes at once.
        if self._last is None:
            self._last = self.measure()
        return self._last

    def _show_last(self) -> None:
        self._reply(self.format_sample(self._last_reading()))

    def _show_last_and_take(self) -> None:
        self._say(self.format_sample(self._last_reading()) + "\r\n")
        reading = self.measure()

        def done() -> None:
            self._store(reading)
            self._reply()

        self._busy(ACQUISITION_SECONDS, done)

    def _store(self, reading: RawReading) -> bool:
        self._last = reading
        if self.samplenum >= self.firmware.capacity:
            return False
        self._memory.append(reading.time, self.setup.navg, reading.with_time)
        return True

    def stored(self, number: int) -> RawReading:
        """
        A stored sample, as ``DD`` shows it.

        :param number: 1 to :attr:`samplenum`.
        :returns: its reading.
        :raises IndexError: if there is no such sample.
        """
        if not 1 <= number <= self.samplenum:
            raise IndexError(f"no stored sample {number}")
        k = number - 1
        memory = self._memory
        reading = self.measure(memory.times[k], memory.navg[k])
        return replace(reading, with_time=bool(memory.with_time[k]))

    def _display_stored(self, text: str) -> None:
        match = _DD.match(text)
        if match is None:
            self._reply("***ERROR: DD needs first and last sample numbers: DDb,e***")
            return
        first, last = int(match.group(1)), int(match.group(2))
        if not 1 <= first <= last <= self.samplenum:
            self._reply(
                f"***ERROR: DD needs 1 <= b <= e <= {self.samplenum} (samplenumber)***"
            )
            return
        self._reply(
            *(self.format_sample(self.stored(n)) for n in range(first, last + 1))
        )

    # -------------------------------------------------------------- logging

    def _start_now(self) -> None:
        self._cancel_delayed_start()
        self._begin_logging(self.clock.now())
        self._reply("start now")

    def _begin_logging(self, first: float) -> None:
        self._start_at = None
        self._start_timer = None
        self.logging = True
        self._log_start = first
        self._log_count = 0
        self._schedule_sample()

    def _schedule_sample(self) -> None:
        # Each sample is due at start + k * INTERVAL on the instrument's
        # clock, so timer latency never accumulates into drift.
        due = self._log_start + self._log_count * self.setup.interval
        delay = due - self.clock.now() + ACQUISITION_SECONDS
        self._sample_timer = self.clock.call_later(delay, self._logged_sample, due)

    def _logged_sample(self, due: float) -> None:
        self._sample_timer = None
        reading = self.measure(due)
        if not self._store(reading):
            self._end_logging("memory full")
            return
        if self.setup.txrealtime:
            self._say(f"{self.firmware.realtime_mark}{self.format_sample(reading)}\r\n")
        self._log_count += 1
        self._schedule_sample()

    def _end_logging(self, reason: str) -> None:
        self.logging = False
        self.stop_reason = reason
        if self._sample_timer is not None and self._sample_timer.active():
            self._sample_timer.cancel()
        self._sample_timer = None

    def _start_later(self) -> None:
        if self._start_date is None or self._start_time is None:
            first = (
                "STARTDATETIME="
                if self.firmware.modern
                else "STARTMMDDYY= and STARTHHMMSS="
            )
            self._reply(f"***ERROR: set {first} before STARTLATER***")
            return
        start = datetime.combine(self._start_date, self._start_time, UTC)
        self._cancel_delayed_start()
        announcement = f"start time = {day(start)} {start:%H:%M:%S}"
        when = start.timestamp()
        if when <= self.clock.now():
            # A start time already past starts logging at once.
            self._begin_logging(self.clock.now())
        else:
            self._start_at = when
            self._schedule_delayed_start()
        self._reply(announcement)

    def _schedule_delayed_start(self) -> None:
        assert self._start_at is not None
        self._start_timer = self.clock.call_later(
            self._start_at - self.clock.now(), self._begin_logging, self._start_at
        )

    def _cancel_delayed_start(self) -> None:
        if self._start_timer is not None and self._start_timer.active():
            self._start_timer.cancel()
        self._start_timer = None
        self._start_at = None

    def _stop(self) -> None:
        self._cancel_delayed_start()
        if self.logging:
            self._end_logging("stop")
        self._reply()

    def _init_logging(self) -> None:
        self._memory = SampleMemory()
        self._reply()

    # ----------------------------------------------------------- self-tests

    def _self_test(self, sensor: str) -> None:
        self.mode = Mode.SELF_TEST
        self._tests_done = 0
        self._test_timer = self.clock.call_later(
            SELF_TEST_PERIOD, self._self_test_reading, sensor
        )

    def _self_test_reading(self, sensor: str) -> None:
        t, c, p = self.engineering(self.measure())
        text = {
            "temperature": f"{t:8.4f}",
            "conductivity": f"{c:9.5f}",
            "pressure": f"{p:9.3f}",
        }[sensor]
        self._say(text + "\r\n")
        self._tests_done += 1
        if self._tests_done >= SELF_TEST_READINGS:
            self._test_timer = None
            self._end_self_test()
            return
        self._test_timer = self.clock.call_later(
            SELF_TEST_PERIOD, self._self_test_reading, sensor
        )

    def _end_self_test(self) -> None:
        if self._test_timer is not None and self._test_timer.active():
            self._test_timer.cancel()
        self._test_timer = None
        self._touch()
        self._reply()

    # -------------------------------------------------------------- setters

    def _setters(self) -> dict[str, Callable[[str], None]]:
        # Each firmware's command names: 2.x's (the spec's), or from 3.0
        # the SBE 37-SM/SMP manuals' (DateTime=mmddyyyyhhmmss, no NAVG,
        # STORETIME or SYNCWAIT).
        if self.firmware.modern:
            setters: dict[str, Callable[[str], None]] = {
                "SAMPLEINTERVAL": self._integer("SAMPLEINTERVAL", 5, 32767, "interval"),
                "SAMPLENUMBER": self._set_samplenum,
                "REFERENCEPRESSURE": self._set_refpress,
                "OUTPUTFORMAT": self._set_format,
                "DATETIME": self._set_date_time,
                "STARTDATETIME": self._set_start_date_time,
            }
        else:
            setters = {
                "INTERVAL": self._integer("INTERVAL", 5, 32767, "interval"),
                "NAVG": self._integer("NAVG", 1, 32767, "navg"),
                "SYNCWAIT": self._integer("SYNCWAIT", 0, 120, "syncwait"),
                "STORETIME": self._flag("STORETIME", "storetime"),
                "SAMPLENUM": self._set_samplenum,
                "REFPRESS": self._set_refpress,
                "FORMAT": self._set_format,
                "MMDDYY": lambda v: self._set_date(v, "MMDDYY", month_first=True),
                "DDMMYY": lambda v: self._set_date(v, "DDMMYY", month_first=False),
                "HHMMSS": self._set_time,
                "STARTMMDDYY": lambda v: self._set_start_date(v, "STARTMMDDYY", True),
                "STARTDDMMYY": lambda v: self._set_start_date(v, "STARTDDMMYY", False),
                "STARTHHMMSS": self._set_start_time,
            }
        # The same words in both (commands are not case-sensitive).
        for name in ("TXREALTIME", "OUTPUTSAL", "OUTPUTSV", "SYNCMODE"):
            setters[name] = self._flag(name, name.lower())
        for field in fields(Calibration):
            name = field.name.upper()
            if field.name.endswith("caldate"):
                setters[name] = self._cal_date(name, field.name)
            elif field.type in ("float", float):
                setters[name] = self._coefficient(name, field.name)
        # DC prints PTCB0..2 as PTCSB0..2; either name sets them.
        for k in range(3):
            setters[f"PTCSB{k}"] = setters[f"PTCB{k}"]
        return setters

    def _integer(
        self, name: str, low: int, high: int, attribute: str
    ) -> Callable[[str], None]:
        def set_(value: str) -> None:
            setattr(self.setup, attribute, parse_integer(value, name, low, high))

        return set_

    def _flag(self, name: str, attribute: str) -> Callable[[str], None]:
        def set_(value: str) -> None:
            if value not in ("Y", "N"):
                raise BadValue(f"***ERROR: {name} must be Y or N***")
            setattr(self.setup, attribute, value == "Y")

        return set_

    def _set_samplenum(self, value: str) -> None:
        number = parse_integer(value, "SAMPLENUM", 0, self.firmware.capacity)
        self._memory.resize(
            number, self.clock.now(), self.setup.interval, self.setup.navg
        )

    def _set_refpress(self, value: str) -> None:
        try:
            pressure = float(value)
        except ValueError:
            pressure = math.nan
        if not 0 <= pressure <= 10_000:
            raise BadValue("***ERROR: REFPRESS must be 0..10000 db***")
        self.setup.refpress = pressure

    def _set_format(self, value: str) -> None:
        if value not in ("0", "1"):
            raise BadValue("***ERROR: FORMAT must be 0 or 1***")
        self.setup.format = int(value)

    def _set_clock(self, new: datetime) -> None:
        self.clock.set(new.timestamp())
        if self._start_at is not None:
            # The delayed start is a time on the clock just moved.
            if self._start_timer is not None and self._start_timer.active():
                self._start_timer.cancel()
            self._schedule_delayed_start()

    def _set_date(self, value: str, name: str, *, month_first: bool) -> None:
        day = parse_date(value, name, month_first)
        self._set_clock(datetime.combine(day, self.now().timetz()))

    def _set_time(self, value: str) -> None:
        clock_time = parse_time(value, "HHMMSS")
        self._set_clock(datetime.combine(self.now().date(), clock_time, UTC))

    def _set_date_time(self, value: str) -> None:
        self._set_clock(parse_date_time(value, "DATETIME"))

    def _set_start_date_time(self, value: str) -> None:
        start = parse_date_time(value, "STARTDATETIME")
        self._start_date, self._start_time = start.date(), start.time()

    def _set_start_date(self, value: str, name: str, month_first: bool) -> None:
        self._start_date = parse_date(value, name, month_first)

    def _set_start_time(self, value: str) -> None:
        self._start_time = parse_time(value, "STARTHHMMSS")

    def _coefficient(self, name: str, attribute: str) -> Callable[[str], None]:
        def set_(value: str) -> None:
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if not math.isfinite(number):
                raise BadValue(f"***ERROR: {name} must be a number***")
            setattr(self.calibration, attribute, number)

        return set_

    def _cal_date(self, name: str, attribute: str) -> Callable[[str], None]:
        def set_(value: str) -> None:
            setattr(self.calibration, attribute, parse_cal_date(value, name))

        return set_
