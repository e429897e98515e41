# -*- test-case-name: tests.test_workhorse_simulator -*-
"""
A simulated Teledyne RDI Workhorse ADCP (firmware 50.40), faithful enough
to test drivers without hardware: ``twistd -n instrumentd simulate
workhorse``.

It behaves as ``doc/specs/rdi-workhorse-adcp.md`` describes:

- **command mode**: every character echoed; a line (ended by CR, LF or CR
  LF) answered, then the prompt ``>``; several commands in one write are
  answered in order.  ``XX?`` prints a setting in the firmware's layout,
  ``XXvalue`` sets it (``ERR 002``/``ERR 045`` for a bad value, old value
  kept), ``CK``/``CR0``/``CR1`` save and restore, ``TT`` reads and sets the
  clock, ``PS0``, ``PT2``, ``PT4``, ``PT200``, ``CY``, ``FD``, ``FC``, and
  ``ERR 010`` for anything else.  ``CZ`` powers down.
- **BREAK**: a serial break (on a pty, see
  :data:`~instrumentd.endpoints.serial.PTY_BREAK_MARK`) or, when
  ``soft_break`` is on, ``===`` in any state, stops whatever the instrument
  is doing (output not yet sent is lost: an ensemble on the wire is cut
  short) and prints the wake-up banner and the prompt.
- **pinging**: ``CS`` starts a deployment (no prompt after ``CS\\r\\n``):
  a PD0 ensemble every ``max(TE, WP x TP)``, never before the last one has
  left at the baud rate, built from the settings (WN cells, WS size, WD
  blocks, EX coordinates) and from :class:`~.physics.Ocean`; hex ASCII
  lines when the third CF digit is 0; one ensemble then the prompt when
  the first CF digit is 0.  Only a break gets its attention.
- **self-deploy**: after a break interrupted a deployment, ``self_deploy_after``
  seconds without a valid command print ``System will self-deploy in 1
  minute unless valid command entered!`` and, a minute later, pinging
  resumes (ensemble numbers continue).  Otherwise the same idle time puts
  it to sleep; only a break wakes it.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import ClassVar, Final

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from instrumentd.instruments.teledyne.workhorse import diagnostics, pd0
from instrumentd.instruments.teledyne.workhorse.physics import Ocean
from instrumentd.instruments.teledyne.workhorse.settings import (
    SETTINGS,
    Settings,
)
from instrumentd.simulator.base import BITS_PER_BYTE, SimulatedInstrument
from instrumentd.simulator.base import SimulatorSettings as LineSettings

__all__ = ["BANNER", "Mode", "WorkhorseSimulator"]

BANNER: Final = (
    b"\r\n[BREAK Wakeup A]\r\nWorkHorse Broadband ADCP Version 50.40\r\n"
    b"Teledyne RD Instruments (c) 1996-2010\r\nAll Rights Reserved.\r\n>"
)
SELF_DEPLOY_WARNING: Final = (
    b"\r\nSystem will self-deploy in 1 minute unless valid command entered!\r\n"
)
UNRECOGNIZED: Final = "ERR 010:  UNRECOGNIZED COMMAND"
_SET: Final = re.compile(r"([A-Za-z]{2})(.*)")
_CLOCK: Final = re.compile(
    r"(\d{2,4})/(\d{1,2})/(\d{1,2}),(\d{1,2}):(\d{1,2}):(\d{1,2})"
)
_SYSTEM_CONFIGURATION: Final = 0x41C8  # 75 kHz, convex, up, 20 degrees, 4 beams


def _yes(text: str | None, default: bool, name: str) -> bool:
    if text is None:
        return default
    if text.lower() in ("yes", "true", "1", "on"):
        return True
    if text.lower() in ("no", "false", "0", "off"):
        return False
    raise ValueError(f"option {name}={text!r} is not valid; valid: yes, no")


class Mode(Enum):
    """
    What the instrument is doing.
    """

    COMMAND = "command"
    PINGING = "pinging"
    ASLEEP = "asleep"


class WorkhorseSimulator(SimulatedInstrument):
    """
    The simulated ADCP.

    :ivar mode: what it is doing.
    :ivar settings: its settings (RAM and saved).
    :ivar ensemble_number: the last ensemble's number.
    :ivar ensembles_sent: ensembles started on the line.
    :ivar breaks: breaks it has answered.
    """

    model: ClassVar[str] = "workhorse"
    default_serial_number: ClassVar[int] = 18444
    option_help: ClassVar[Mapping[str, str]] = {
        "awake": "start in command mode (yes) or asleep until a break (no, the default)",
        "soft_break": "take === for a break (yes, the default, or no)",
        "self_deploy_after": "idle seconds in command mode before the self-deploy "
        "warning or sleep (default 300)",
    }

    def __init__(
        self,
        settings: LineSettings | None = None,
        *,
        reactor: IReactorTime | None = None,
        awake: bool = False,
        soft_break: bool = True,
        self_deploy_after: float = 300.0,
    ) -> None:
        """
        :param settings: the simulator settings (baud, time scale, seed).
        :param reactor: the reactor or ``Clock``.
        :param awake: start in command mode; otherwise asleep, woken only
            by a break.
        :param soft_break: take ``===`` for a break.
        :param self_deploy_after: idle seconds in command mode before the
            self-deploy warning (or sleep).
        """
        super().__init__(settings, reactor=reactor)
        options = self.settings.options
        awake = _yes(options.get("awake"), awake, "awake")
        soft_break = _yes(options.get("soft_break"), soft_break, "soft_break")
        if "self_deploy_after" in options:
            try:
                self_deploy_after = float(options["self_deploy_after"])
            except ValueError:
                raise ValueError(
                    f"option self_deploy_after={options['self_deploy_after']!r} "
                    "is not a number of seconds"
                ) from None
        self.serial_number = self.settings.serial_number or self.default_serial_number
        self.settings_ = Settings()
        self.soft_break = soft_break
        self.self_deploy_after = self_deploy_after
        self.mode = Mode.COMMAND if awake else Mode.ASLEEP
        self.ocean = Ocean(seed=self.settings.seed)
        self.rng = random.Random(self.settings.seed)
        self.ensemble_number = 0
        self.ensembles_sent = 0
        self.breaks = 0
        self._line = b""
        self._last_cr = False
        self._equals = 0
        self._interrupted = False
        self._ping_timer: IDelayedCall | None = None
        self._idle_timer: IDelayedCall | None = None
        if awake:
            self._restart_idle()

    @property
    def setup(self) -> Settings:
        """
        The instrument's settings.
        """
        return self.settings_

    def describe(self) -> str:
        """
        :returns: e.g. ``"Workhorse ADCP S/N 18444"``.
        """
        return f"Workhorse ADCP S/N {self.serial_number}"

    # Input.

    def break_received(self) -> None:
        """
        A break: stop everything, cut what is on the wire, print the banner.
        """
        self.breaks += 1
        self._interrupted = self.mode is Mode.PINGING or (
            self._interrupted and self.mode is Mode.COMMAND
        )
        self._cancel(self._ping_timer)
        self._ping_timer = None
        self.line.discard_output()
        self.mode = Mode.COMMAND
        self._line = b""
        self.send(BANNER)
        self._restart_idle()

    def data_received(self, data: bytes) -> None:
        """
        Bytes from the host: a soft break in any state; in command mode,
        echoed and answered line by line; otherwise ignored.
        """
        for byte in data:
            char = bytes([byte])
            if self.soft_break:
                self._equals = self._equals + 1 if char == b"=" else 0
                if self._equals == 3:
                    self._equals = 0
                    self.break_received()
                    continue
            if self.mode is not Mode.COMMAND:
                continue
            self._typed(char)

    def _typed(self, char: bytes) -> None:
        if char in (b"\r", b"\n"):
            if char == b"\n" and self._last_cr:
                self._last_cr = False
                return
            self._last_cr = char == b"\r"
            line, self._line = self._line, b""
            self.send(b"\r\n")
            self._command(line.decode("latin-1").strip().rstrip("="))
            return
        self._last_cr = False
        if char == b"=" and self.soft_break:
            # Part of a possible soft break: neither echoed nor kept.
            return
        self.send(char)
        self._line += char

    # Commands.

    def _command(self, line: str) -> None:
        if not line:
            self.send(b">")
            return
        upper = line.upper()
        handler = self._COMMANDS.get(upper)
        if handler is not None:
            self._restart_idle()
            handler(self)
            return
        found = _SET.fullmatch(line)
        if found is None:
            self._reply([UNRECOGNIZED])
            return
        code, argument = found.group(1).upper(), found.group(2).strip()
        if code == "TT":
            self._clock_command(argument)
            return
        if code not in SETTINGS or (SETTINGS[code].kind == "text" and argument != "?"):
            self._reply([UNRECOGNIZED])
            return
        self._restart_idle()
        if argument == "?":
            self._reply([self.settings_.query(code)])
            return
        try:
            self.settings_.set(code, argument)
        except ValueError as error:
            self._reply([str(error)])
            return
        self._reply([])

    def _reply(self, lines: list[str]) -> None:
        self.send("".join(f"{line}\r\n" for line in lines).encode("latin-1") + b">")

    def _clock_command(self, argument: str) -> None:
        if argument == "?":
            self._restart_idle()
            now = datetime.fromtimestamp(self.clock.now(), UTC)
            self._reply(
                [f"TT {now:%Y/%m/%d,%H:%M:%S} - Time Set (CCYY/MM/DD,hh:mm:ss)"]
            )
            return
        found = _CLOCK.fullmatch(argument)
        if found is None:
            self._reply(["ERR 002:  NUMERAL EXPECTED"])
            return
        year, month, day, hour, minute, second = (int(g) for g in found.groups())
        if year < 100:
            year += 2000
        try:
            when = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
        except ValueError:
            self._reply(["ERR 045: PARAMETER OUT OF BOUNDS"])
            return
        self._restart_idle()
        self.clock.set(when.timestamp())
        self._reply([])

    def _save(self) -> None:
        self.settings_.save()
        self._reply(["[Parameters saved as USER defaults]"])

    def _restore_user(self) -> None:
        self.settings_.restore(factory=False)
        self._reply(["", "[Parameters set to USER defaults]"])

    def _restore_factory(self) -> None:
        self.settings_.restore(factory=True)
        self._reply(["", "[Parameters set to FACTORY defaults]"])

    def _start(self) -> None:
        self._interrupted = False
        self.ensemble_number = 0
        self._deploy()

    def _power_down(self) -> None:
        self._cancel(self._idle_timer)
        self.send(b"\r\nPowering Down")
        self.mode = Mode.ASLEEP

    def _ps0(self) -> None:
        self.send(diagnostics.ps0(self.serial_number).encode("latin-1") + b">")

    def _pt2(self) -> None:
        text = diagnostics.pt2(self._temperature(), self.rng)
        self.send(text.encode("latin-1") + b">")

    def _pt4(self) -> None:
        self.send(diagnostics.pt4().encode("latin-1") + b">")

    def _pt200(self) -> None:
        # The tests take several seconds; the answer comes at the end.
        text = diagnostics.pt200(self._temperature(), self.rng)

        def done() -> None:
            if self.mode is Mode.COMMAND:
                self.send(text.encode("latin-1") + b">")

        self.clock.call_later(4.0, done)

    def _temperature(self) -> float:
        return self.ocean.attitude(self.clock.now()).temperature / 100

    def _clear_status(self) -> None:
        self._reply(["Error Status Word Cleared"])

    def _show_status(self) -> None:
        self._reply(["00000000"])

    def _fault_log(self) -> None:
        self._reply(
            [
                "Total Unique Faults   =     0",
                "Overflow Count        =     0",
                "Time of first fault:    ",
                "Time of last fault:     ",
                "",
                "Fault Log:",
                "End of fault log.",
            ]
        )

    def _clear_faults(self) -> None:
        self._reply([" Fault Log Cleared."])

    _COMMANDS: ClassVar[dict[str, Callable[[WorkhorseSimulator], None]]] = {
        "CK": _save,
        "CR0": _restore_user,
        "CR1": _restore_factory,
        "CS": _start,
        "CZ": _power_down,
        "PS0": _ps0,
        "PT2": _pt2,
        "PT4": _pt4,
        "PT200": _pt200,
        "CY0": _clear_status,
        "CY1": _show_status,
        "FD": _fault_log,
        "FC": _clear_faults,
    }

    # Idle time in command mode.

    def _restart_idle(self) -> None:
        self._cancel(self._idle_timer)
        self._idle_timer = self.clock.call_later(self.self_deploy_after, self._idle)

    def _idle(self) -> None:
        self._idle_timer = None
        if self.mode is not Mode.COMMAND:
            return
        if not self._interrupted:
            self.mode = Mode.ASLEEP
            return
        self.send(SELF_DEPLOY_WARNING)
        self._idle_timer = self.clock.call_later(60.0, self._self_deploy)

    def _self_deploy(self) -> None:
        self._idle_timer = None
        if self.mode is Mode.COMMAND:
            self._deploy()

    # Pinging.

    def _deploy(self) -> None:
        self._cancel(self._idle_timer)
        self._idle_timer = None
        self.mode = Mode.PINGING
        self._ping_timer = self.clock.call_later(self._interval(), self._ensemble)

    def _interval(self) -> float:
        setup = self.settings_
        pings = setup.number("WP") * setup.seconds("TP")
        return max(setup.seconds("TE"), pings, 0.2)

    def _ensemble(self) -> None:
        self._ping_timer = None
        if self.mode is not Mode.PINGING:
            return
        self.ensemble_number += 1
        self.ensembles_sent += 1
        data = pd0.encode(self.build_ensemble(self.clock.now()))
        if self.settings_["CF"][2] == "0":
            data = data.hex().upper().encode("ascii") + b"\r\n"
        self.send(data)
        if self.settings_["CF"][0] == "0":
            # One ensemble, then back to the prompt.
            self.mode = Mode.COMMAND
            self.send(b"\r\n>")
            self._restart_idle()
            return
        wire = len(data) * BITS_PER_BYTE / self.line.baud if self.line.baud else 0.0
        delay = max(self._interval(), wire * self.clock.scale)
        self._ping_timer = self.clock.call_later(delay, self._ensemble)

    def build_ensemble(self, when: float) -> pd0.Ensemble:
        """
        The ensemble the instrument would send at ``when``.

        :param when: POSIX seconds (the first ping's time).
        """
        setup = self.settings_
        cells, cell_cm, blank_cm = (
            setup.number("WN"),
            setup.number("WS"),
            setup.number("WF"),
        )
        attitude = self.ocean.attitude(when)
        earth = setup["EX"][:2] == "11"
        sensors = setup["EZ"]
        heading = attitude.heading if sensors[2] != "0" else setup.number("EH")
        profile = self.ocean.profile(
            when,
            cells=cells,
            cell_m=cell_cm / 100,
            first_m=(blank_cm + cell_cm) / 100,
            heading_deg=heading / 100,
            earth=earth,
        )
        ping = setup["TP"]
        minutes, rest = ping.split(":")
        seconds, hundredths = rest.split(".")
        threshold, _ = setup["WA"].split(",")
        layer_start, layer_end = setup["WL"].split(",")
        fixed: dict[str, object] = {
            "firmware_version": 50,
            "firmware_revision": 40,
            "system_configuration": _SYSTEM_CONFIGURATION,
            "simulated_data": 0,
            "lag_length": 13,
            "num_beams": 4,
            "num_cells": cells,
            "pings_per_ensemble": setup.number("WP"),
            "depth_cell_length": cell_cm,
            "blank_after_transmit": blank_cm,
            "profiling_mode": setup.number("WM"),
            "low_correlation_threshold": setup.number("WC"),
            "code_repetitions": 6,
            "percent_good_minimum": setup.number("WG"),
            "error_velocity_maximum": setup.number("WE"),
            "ping_minutes": int(minutes),
            "ping_seconds": int(seconds),
            "ping_hundredths": int(hundredths),
            "coordinate_transform": int(setup["EX"], 2),
            "heading_alignment": setup.number("EA"),
            "heading_bias": setup.number("EB"),
            "sensor_source": int("".join("0" if d == "0" else "1" for d in sensors), 2),
            "sensors_available": 0x3D,
            "bin_1_distance": blank_cm + cell_cm,
            "transmit_pulse_length": setup.number("WT") or cell_cm,
            "reference_layer_start": int(layer_start),
            "reference_layer_end": int(layer_end),
            "false_target_threshold": int(threshold),
            "spare_1": 0,
            "transmit_lag_distance": 195,
            "cpu_board_serial": diagnostics.CPU_BOARD_SERIAL,
            "system_bandwidth": setup.number("WB"),
            "system_power": setup.number("CQ"),
            "spare_2": 0,
            "serial_number": self.serial_number,
            "beam_angle": 20,
        }
        stamp = datetime.fromtimestamp(when, UTC)
        hundredth = stamp.microsecond // 10000
        clock = (stamp.year % 100, stamp.month, stamp.day, stamp.hour, stamp.minute,
                 stamp.second, hundredth)  # fmt: skip
        temperature = attitude.temperature if sensors[6] != "0" else setup.number("ET")
        sound = (
            round(1449.2 + 4.6 * temperature / 100)
            if sensors[0] != "0"
            else setup.number("EC")
        )
        variable: dict[str, object] = {
            "ensemble_number": self.ensemble_number & 0xFFFF,
            "rtc": clock,
            "ensemble_number_msb": (self.ensemble_number >> 16) & 0xFF,
            "bit_result": 0,
            "speed_of_sound": sound,
            "depth_of_transducer": setup.number("ED"),
            "heading": heading,
            "pitch": attitude.pitch if sensors[3] != "0" else setup.number("EP"),
            "roll": attitude.roll if sensors[4] != "0" else setup.number("ER"),
            "salinity": setup.number("ES"),
            "temperature": temperature,
            "pre_ping_wait": (0, 0, 5),
            "heading_stdev": 1,
            "pitch_stdev": 2,
            "roll_stdev": 2,
            "adc": (93, 164, 79, 79, 79, 79, 130, 159),
            "error_status_word": 0,
            "reserved": 0,
            "pressure": attitude.pressure,
            "pressure_variance": self.rng.randrange(0, 40),
            "spare": 0,
            "y2k_rtc": (stamp.year // 100, *clock),
        }
        selected = setup["WD"]
        return pd0.Ensemble(
            fixed=fixed,
            variable=variable,
            velocity=profile.velocity if selected[0] == "1" else None,
            correlation=profile.correlation if selected[1] == "1" else None,
            echo_intensity=profile.echo_intensity if selected[2] == "1" else None,
            percent_good=profile.percent_good if selected[3] == "1" else None,
        )

    @staticmethod
    def _cancel(call: IDelayedCall | None) -> None:
        if call is not None and call.active():
            call.cancel()
