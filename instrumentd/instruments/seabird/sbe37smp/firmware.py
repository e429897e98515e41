# -*- test-case-name: tests.test_sbe37_variants -*-
"""
What the simulated SBE 37 prints, by firmware generation: the status dump
(``DS``), the calibration dump (``DC``) and the columns of a sample.

The simulator's ``firmware`` option picks one of :data:`FIRMWARES`; its
``pressure_sensor`` and ``pump`` options say which sensors are fitted, and
the dumps and samples change with them as a real instrument's do.  Each
layout comes from a source, cited on the class; what no source showed is a
choice, marked *choice* where it is made.

- :class:`Firmware26`, ``2.6`` (the default): the project's spec
  (``doc/specs/sbe37-smp.md``), which is also OOI's captured
  ``SBE37-SMP V 2.6`` dumps (``ooici/marine-integrations``,
  ``mi/instrument/seabird/sbe37smb/ooicore/test/sample_data.py``).  A real
  ``SBE37-SM V 2.6b`` upload header (``petejan/raw2netCDF``,
  ``data/SBE37-1777-1000m.asc``) prints the pump line without "is"
  (``internal pump not installed``): that wording is used for no pump.
- :class:`Firmware30`, ``3.0h``: a real ``SBE37SM-RS232 3.0h`` session
  (``DS``, ``DC`` and ``DD``) quoted in ``petejan/raw2netCDF``,
  ``python/sbeASC2netCDF.py``: a battery line, the memory line before the
  logging line (``not logging, stop command``), ``data format = converted
  engineering``, ``transmit real-time = no``, ``sync mode = no``, ``pump
  installed = no``; the ``DC`` header ``SBE37SM-RS232 V 3.0h  6962``,
  capitalised months in dates (``15-May-09``), ``range = 508 psia  04-May-09``
  (no colon), ``PTCB0..2`` (not ``PTCSB``), ``PTEMPA0..2`` and no ``rtc``
  section; stored samples ``" 13.4082, 0.00004,   -0.119, 22 Sep 2009,
  00:00:01"`` (conductivity 8 wide, not 9); 262098 + 297142 = 559240
  samples of memory.  A 3.1 ``DC`` copied from a calibration certificate
  into a public script (``SBE37SM-RS232 V 3.1 15895``, its indentation
  lost) has the same sections: ``PTCB``, ``PTEMPA``, no ``rtc``.

Which sensors are fitted (Sea-Bird's manuals for firmware 5, e.g. the SBE
37-SM manual revision 041, pages 30, 35 and 46): without the optional
pressure sensor a sample has no pressure column, and the status dump has a
``reference pressure`` line "only ... if pressure sensor not installed"
(firmware 3.0h here; the 2.6 spec prints it always, as OOI's capture does).
Without it ``DC`` has no pressure section (*choice*: the manuals' ``GetCD``
asks "optional pressure sensor installed?", and the IMOS toolbox's
``Parser/SBE3x.m`` reads the pressure section as optional; no capture
without one was found).

Firmware 3.0h *choices*, where the capture shows nothing: the model is
``SBE37SMP-RS232`` (the SMP's device type in SeatermV2 file names and
``DeviceType``; the capture is an SM's); a logging instrument says
``logging data`` (the firmware-5 manual lists "logging data" among the
states), one waiting for ``STARTLATER`` ``not logging, waiting to start at
...``; ``FORMAT=0`` prints ``data format = raw decimal``; the reference
pressure line keeps the 2.6 wording; salinity and sound velocity are not in
the status dump (the capture had them off); samples are printed while
logging without ``#`` (as the firmware-5 manual's real-time example), with
salinity ``,%9.4f`` and sound velocity ``,%9.3f`` as 2.6; no low-battery
line (the battery voltage drops instead).

Command names (:attr:`Firmware.modern`): 2.x takes the spec's
(``INTERVAL=``, ``NAVG=``, ``STORETIME=``, ``SYNCWAIT=``, ``REFPRESS=``,
``SAMPLENUM=``, ``FORMAT=``, ``MMDDYY=``/``DDMMYY=`` and ``HHMMSS=``,
``STARTMMDDYY=``...); 3.0h takes those of the generation that began with
it, as Sea-Bird's SBE 37-SM/SMP manuals list them (firmware 5's, rev. 041,
pages 26, 42 and 76; the SMP-ODO reference sheet): ``SampleInterval=``,
``SampleNumber=``, ``ReferencePressure=``, ``OutputFormat=``,
``DateTime=mmddyyyyhhmmss``, ``StartDateTime=``, with ``TxRealTime=``,
``OutputSal=``, ``OutputSV=`` and ``SyncMode=`` spelled as before (commands
are not case-sensitive).  It has no averaging, store-time or sync-wait
setting (neither the 3.0h capture's status dump nor the firmware-5
manual's status list has one).  Each answers a command it does not know
its own way: 2.x with ``?cmd S>``, 3.0h with an ``<ERROR .../>`` line
(*choice*: the wording).

Firmware 5 is not simulated: of its status dump only the first four lines
are known (the manual's page 35 example), too little to print one.  The
driver reads what is known of it (see ``doc/instruments/sbe37smp.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar, Final

from instrumentd.instruments.seabird.sbe37smp.calibration import Calibration

if TYPE_CHECKING:
    from instrumentd.instruments.seabird.sbe37smp.simulator import SBE37Simulator

__all__ = ["FIRMWARES", "MONTHS", "Firmware", "Firmware26", "Firmware30", "day"]

MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")  # fmt: skip


def day(when: datetime) -> str:
    """
    :returns: the date as the instrument prints it, ``05 Feb 2013``.
    """
    return f"{when.day:02d} {MONTHS[when.month - 1]} {when.year}"


def _coefficients(cal: Calibration, *names: str) -> list[str]:
    # Printed name, then the attribute where they differ ("G=cg").
    lines = []
    for name in names:
        printed, _, attribute = name.partition("=")
        value = getattr(cal, attribute or printed.lower())
        lines.append(f"    {printed} = {value:e}")
    return lines


_CONDUCTIVITY: Final = ("G=cg", "H=ch", "I=ci", "J=cj", "CPCOR", "CTCOR", "WBOTC")


class Firmware:
    """
    What one firmware generation prints; this base prints 2.6's (the
    spec's).

    :cvar version: the ``firmware`` option's value, as the dumps print it.
    :cvar capacity: samples the memory holds.
    :cvar realtime_mark: what starts a sample printed while logging.
    :cvar stopped: why logging stopped (``"stop"``, ``"memory full"``) to
        the status dump's words.
    """

    version: ClassVar[str] = "2.6"
    capacity: ClassVar[int] = 191_362
    realtime_mark: ClassVar[str] = "#"
    #: Whether it takes 3.0 on's command names (``SampleInterval=``,
    #: ``DateTime=``...) rather than 2.x's (``INTERVAL=``, ``MMDDYY=``...).
    modern: ClassVar[bool] = False
    stopped: ClassVar[Mapping[str, str]] = {
        "stop": "received stop command",
        "memory full": "memory full",
    }

    def unknown_command(self, name: str) -> str | None:
        """
        How it refuses a command it does not know.

        :param name: the command, upper case.
        :returns: the line it prints before the prompt, or ``None`` for
            2.x's ``?cmd S>`` prompt alone.
        """
        return None

    def logging_line(self, sbe37: SBE37Simulator) -> str:
        """
        :returns: what the status dump says of logging.
        """
        if sbe37.logging:
            return "logging data"
        if sbe37.waiting_to_start is not None:
            start = datetime.fromtimestamp(sbe37.waiting_to_start, UTC)
            return f"not logging: waiting to start at {day(start)} {start:%H:%M:%S}"
        return f"not logging: {self.stopped[sbe37.stop_reason]}"

    def status(self, sbe37: SBE37Simulator) -> list[str]:
        """
        :returns: the status dump's lines.
        """
        setup, now = sbe37.setup, sbe37.now()

        def do(flag: bool, text: str) -> str:
            return text if flag else f"do not {text}"

        lines = [
            f"SBE37-SMP V {self.version} SERIAL NO. {sbe37.serial_number}   "
            f"{day(now)}  {now:%H:%M:%S}",
            self.logging_line(sbe37),
            f"sample interval = {setup.interval} seconds",
            f"samplenumber = {sbe37.samplenum}, "
            f"free = {self.capacity - sbe37.samplenum}",
            do(setup.txrealtime, "transmit real-time data"),
            do(setup.outputsal, "output salinity with each sample"),
            do(setup.outputsv, "output sound velocity with each sample"),
            do(setup.storetime, "store time with each sample"),
            f"number of samples to average = {setup.navg}",
            f"reference pressure = {setup.refpress:.1f} db",
            f"serial sync mode {'enabled' if setup.syncmode else 'disabled'}",
            f"wait time after serial sync sampling = {setup.syncwait} seconds",
            "internal pump is installed"
            if sbe37.pump_installed
            else "internal pump not installed",
            f"temperature = {sbe37.internal_temperature():.2f} deg C",
        ]
        if sbe37.low_battery:
            lines.append("WARNING: LOW BATTERY VOLTAGE!!")
        return lines

    def calibration(
        self, cal: Calibration, serial_number: int, pressure_sensor: bool
    ) -> list[str]:
        """
        :returns: the calibration dump's lines.
        """
        pressure = [
            f"pressure S/N {cal.pressure_serial}, range = {cal.pressure_range} "
            f"psia:  {cal.pcaldate}",
            *_coefficients(cal, "PA0", "PA1", "PA2", "PTCA0", "PTCA1", "PTCA2"),
            *_coefficients(cal, "PTCSB0=ptcb0", "PTCSB1=ptcb1", "PTCSB2=ptcb2"),
            *_coefficients(cal, "POFFSET"),
        ]
        return [
            f"SBE37-SM V {self.version}b  {serial_number}",
            f"temperature:  {cal.tcaldate}",
            *_coefficients(cal, "TA0", "TA1", "TA2", "TA3"),
            f"conductivity:  {cal.ccaldate}",
            *_coefficients(cal, *_CONDUCTIVITY),
            *(pressure if pressure_sensor else []),
            f"rtc:  {cal.rcaldate}",
            *_coefficients(cal, "RTCA0", "RTCA1", "RTCA2"),
        ]

    def columns(
        self,
        t: float,
        c: float,
        p: float | None,
        s: float | None,
        sv: float | None,
    ) -> str:
        """
        A sample's values (``FORMAT=1``), before any date and time: those
        that are ``None`` are not printed.

        :returns: the text.
        """
        text = f"{t:8.4f},{c:9.5f}"
        return text + self._rest(p, s, sv)

    @staticmethod
    def _rest(p: float | None, s: float | None, sv: float | None) -> str:
        return "".join(
            f",{value:9.{decimals}f}"
            for value, decimals in ((p, 3), (s, 4), (sv, 3))
            if value is not None
        )


class Firmware26(Firmware):
    """
    Firmware 2.6, the spec's (the base's layouts).
    """


class Firmware30(Firmware):
    """
    Firmware 3.0h (a real SM's session; SMP details are choices, see the
    module's description).
    """

    version: ClassVar[str] = "3.0h"
    capacity: ClassVar[int] = 559_240
    realtime_mark: ClassVar[str] = ""
    modern: ClassVar[bool] = True
    stopped: ClassVar[Mapping[str, str]] = {
        "stop": "stop command",
        "memory full": "memory full",
    }
    #: Battery voltages, main and lithium (*choice*: a fresh pack; the
    #: capture's SM read 7.02 and 3.26).
    volts: ClassVar[tuple[float, float]] = (13.59, 3.16)
    #: The main pack's voltage when the battery is low (*choice*).
    low_volts: ClassVar[float] = 6.5

    def unknown_command(self, name: str) -> str | None:
        """
        An XML error line, as this generation's replies are XML-tagged
        (*choice*: its wording; no capture of one was found).

        :param name: the command.
        :returns: the line.
        """
        return "<ERROR type='INVALID COMMAND' msg='command not recognized'/>"

    def logging_line(self, sbe37: SBE37Simulator) -> str:
        """
        :returns: what the status dump says of logging.
        """
        return super().logging_line(sbe37).replace("not logging:", "not logging,")

    def status(self, sbe37: SBE37Simulator) -> list[str]:
        """
        :returns: the status dump's lines.
        """
        setup, now = sbe37.setup, sbe37.now()
        main, lithium = self.volts
        if sbe37.low_battery:
            main = self.low_volts

        def yes(flag: bool) -> str:
            return "yes" if flag else "no"

        formats = {0: "raw decimal", 1: "converted engineering"}
        return [
            f"SBE37SMP-RS232 {self.version}  SERIAL NO. {sbe37.serial_number}  "
            f"{day(now)} {now:%H:%M:%S}",
            f"vMain = {main:5.2f}, vLith = {lithium:5.2f}",
            f"samplenumber = {sbe37.samplenum}, "
            f"free = {self.capacity - sbe37.samplenum}",
            self.logging_line(sbe37),
            f"sample interval = {setup.interval} seconds",
            f"data format = {formats[setup.format]}",
            *(
                []
                if sbe37.pressure_sensor
                else [f"reference pressure = {setup.refpress:.1f} db"]
            ),
            f"transmit real-time = {yes(setup.txrealtime)}",
            f"sync mode = {yes(setup.syncmode)}",
            f"pump installed = {yes(sbe37.pump_installed)}",
        ]

    def calibration(
        self, cal: Calibration, serial_number: int, pressure_sensor: bool
    ) -> list[str]:
        """
        :returns: the calibration dump's lines.
        """

        def date(text: str) -> str:
            # Stored as 08-nov-05, printed as 08-Nov-05.
            return text[:3] + text[3:].capitalize()

        pressure = [
            f"pressure S/N {cal.pressure_serial}, "
            f"range = {float(cal.pressure_range):.0f} psia  {date(cal.pcaldate)}",
            *_coefficients(cal, "PA0", "PA1", "PA2", "PTCA0", "PTCA1", "PTCA2"),
            *_coefficients(cal, "PTCB0", "PTCB1", "PTCB2"),
            *_coefficients(cal, "PTEMPA0", "PTEMPA1", "PTEMPA2", "POFFSET"),
        ]
        return [
            f"SBE37SMP-RS232 V {self.version}  {serial_number}",
            f"temperature:  {date(cal.tcaldate)}",
            *_coefficients(cal, "TA0", "TA1", "TA2", "TA3"),
            f"conductivity:  {date(cal.ccaldate)}",
            *_coefficients(cal, *_CONDUCTIVITY),
            *(pressure if pressure_sensor else []),
        ]

    def columns(
        self,
        t: float,
        c: float,
        p: float | None,
        s: float | None,
        sv: float | None,
    ) -> str:
        """
        A sample's values: conductivity 8 wide, as the capture's.

        :returns: the text.
        """
        return f"{t:8.4f},{c:8.5f}" + self._rest(p, s, sv)


#: The ``firmware`` option's values.
FIRMWARES: Final[Mapping[str, Firmware]] = {
    firmware.version: firmware for firmware in (Firmware26(), Firmware30())
}
