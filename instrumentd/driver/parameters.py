# -*- test-case-name: tests.test_parameters -*-
"""
Instrument parameters: what they are, how to read them out of the
instrument's output, how to set them, and what a caller may change.

A driver declares each of its instrument's settings once as a
:class:`Parameter` in a :class:`ParameterDictionary`: its type, who may set
it and when, its range, how to find its value in a status dump, how to
write it in a set command, and how long a value read from the instrument
stays fresh.  The dictionary then

- reads values out of instrument text (:meth:`ParameterDictionary.update`),
  remembering when each was read, so a get can refresh stale ones
  (:meth:`ParameterDictionary.is_stale`);
- checks a set before anything is sent
  (:meth:`ParameterDictionary.validate_set`), raising an
  :class:`~instrumentd.driver.errors.InstrumentParameterError` that names
  the parameter and the rule broken;
- records accepted values and says which really changed
  (:meth:`ParameterDictionary.apply`), so the caller publishes a
  ``CONFIG_CHANGE`` event only for a real change;
- keeps the startup configuration and the direct-access snapshot;
- exports JSON-ready metadata for user interfaces.

The dictionary holds values only; talking to the instrument is the
protocol's job.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import TYPE_CHECKING, Protocol, cast

from twisted.logger import Logger

from instrumentd.driver._declarations import Declarations
from instrumentd.driver._json import DescribedOnce, copy_jsonable
from instrumentd.driver._values import (
    ParameterType,
    ValueRefused,
    check_value,
    coerce_value,
    read_text,
    value_range,
)
from instrumentd.driver.errors import InstrumentParameterError, ParameterRule

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

__all__ = [
    "Parameter",
    "ParameterDictionary",
    "ParameterType",
    "Visibility",
]

_log = Logger()


class Visibility(StrEnum):
    """
    Who may set a parameter, and when.
    """

    #: Operators and the driver may set it at any time.
    READ_WRITE = "READ_WRITE"
    #: Nobody sets it; it is read from the instrument only.
    READ_ONLY = "READ_ONLY"
    #: Set only while applying the startup configuration.
    IMMUTABLE = "IMMUTABLE"


@dataclass(frozen=True, kw_only=True)
class Parameter(DescribedOnce):
    """
    The declaration of one instrument parameter.

    :ivar name: the key, usually the instrument's own name (``INTERVAL``).
    :ivar type: the value's :class:`ParameterType`.
    :ivar visibility: who may set it and when.
    :ivar startup: applied when the driver starts (from the init value,
        else the default); an error if it has neither.
    :ivar direct_access: saved when direct access starts and restored when
        it ends, since an operator at the console may change it.
    :ivar default_value: the driver's startup value, or ``None``.
    :ivar units: the units of the value (``"s"``, ``"dbar"``), or ``None``.
    :ivar minimum: the smallest value allowed, or ``None``.
    :ivar maximum: the largest value allowed, or ``None``.
    :ivar allowed_values: the only values allowed, or ``None``; required
        for :attr:`ParameterType.ENUM`.  If they are :class:`~enum.Enum`
        members, a member's value or name is accepted for it.
    :ivar form: for a :attr:`ParameterType.STRING`, a regex (text or
        compiled) the whole value must match, such as ``[01]{5}`` for a
        string of five binary digits; ``None`` for any text.
    :ivar display_name: a name for people; defaults to :attr:`name`.
    :ivar description: what it does.
    :ivar value_description: what the value means (e.g. "seconds between
        samples").
    :ivar pattern: a regex (text or compiled) whose first group finds the
        value in instrument output, or ``None`` if it is not read that way.
    :ivar converter: turns the group's text into the value; by default the
        type's reader (``int``, ``float``, yes/no words for bool, ISO 8601
        for datetime, comma-separated for list).
    :ivar format: how to write the value in a set command: a format string
        with ``{value}`` and ``{name}`` (``"INTERVAL={value}"``) or a
        callable taking the value; by default ``{name}={value}``.
    :ivar expiration: seconds a value read from the instrument stays
        fresh; ``None`` for ever, ``0`` for never.
    :ivar source: the id of the value it is read from when the driver reads
        a dump into values (:mod:`instrumentd.driver.dumps`), for
        :meth:`ParameterDictionary.update_from`; ``None`` if it is not read
        that way.
    :ivar get_timeout: seconds a client should allow for a get (metadata).
    :ivar set_timeout: seconds a client should allow for a set (metadata).
    """

    name: str
    type: ParameterType
    visibility: Visibility = Visibility.READ_WRITE
    startup: bool = False
    direct_access: bool = False
    default_value: object = None
    units: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    allowed_values: Sequence[object] | None = None
    form: re.Pattern[str] | str | None = None
    display_name: str = ""
    description: str = ""
    value_description: str = ""
    pattern: re.Pattern[str] | str | None = None
    converter: Callable[[str], object] | None = None
    format: str | Callable[[object], str] | None = None
    expiration: float | None = None
    source: str | None = None
    get_timeout: float = 10.0
    set_timeout: float = 10.0

    def __post_init__(self) -> None:
        # Frozen: normalise through object.__setattr__ once, at declaration.
        if not self.display_name:
            object.__setattr__(self, "display_name", self.name)
        if isinstance(self.pattern, str):
            object.__setattr__(self, "pattern", re.compile(self.pattern))
        if isinstance(self.form, str):
            object.__setattr__(self, "form", re.compile(self.form))
        if self.pattern is not None and self.compiled_pattern.groups < 1:
            raise ValueError(f"parameter {self.name}: pattern needs a group")
        if self.allowed_values is not None:
            object.__setattr__(self, "allowed_values", tuple(self.allowed_values))
        if self.type is ParameterType.ENUM and not self.allowed_values:
            raise ValueError(f"parameter {self.name}: an enum needs allowed_values")
        if self.startup and self.visibility is Visibility.READ_ONLY:
            raise ValueError(f"parameter {self.name}: read-only cannot be startup")
        if self.default_value is not None:
            _check(self, self.default_value)

    @property
    def compiled_pattern(self) -> re.Pattern[str]:
        """
        :attr:`pattern`, compiled.

        :raises ValueError: if the parameter has no pattern.
        """
        if not isinstance(self.pattern, re.Pattern):
            raise ValueError(f"parameter {self.name} has no pattern")
        return self.pattern

    def read(self, text: str) -> object:
        """
        Convert the text a pattern captured into a value of this type.

        :param text: the captured text.
        :returns: the value.
        :raises ValueError: if the text is not a value of this type.
        """
        value = (
            read_text(self.type, text)
            if self.converter is None
            else self.converter(text)
        )
        return coerce_value(self.type, value, self.allowed_values)

    def format_value(self, value: object) -> str:
        """
        Write ``value`` as it appears in a set command.

        :param value: the value (already validated).
        :returns: the text, e.g. ``"INTERVAL=10"``.
        """
        if callable(self.format):
            return self.format(value)
        template = "{name}={value}" if self.format is None else self.format
        if isinstance(value, Enum):
            value = value.value
        return template.format(name=self.name, value=value)

    def metadata(self) -> dict[str, object]:
        """
        The declaration in a JSON-ready form, with the key names of OOI
        parameter metadata.

        :returns: a dict (the caller's own: a declaration is described
            once, and each call gets a copy).
        """
        return super().metadata()

    def _describe(self) -> dict[str, object]:
        allowed = value_range(self.allowed_values, self.minimum, self.maximum)
        return {
            "display_name": self.display_name,
            "description": self.description,
            "visibility": self.visibility,
            "startup": self.startup,
            "direct_access": self.direct_access,
            "get_timeout": self.get_timeout,
            "set_timeout": self.set_timeout,
            "expiration": self.expiration,
            "range": allowed,
            "value": {
                "type": self.type,
                "default": self.default_value,
                "units": self.units,
                "description": self.value_description,
            },
        }


def _check(parameter: Parameter, value: object) -> object:
    """
    Coerce ``value`` and check it against the parameter's type, range and
    allowed values.

    :returns: the coerced value.
    :raises InstrumentParameterError: naming the rule broken.
    """
    try:
        value = check_value(
            parameter.type,
            value,
            minimum=parameter.minimum,
            maximum=parameter.maximum,
            allowed_values=parameter.allowed_values,
            units=parameter.units,
        )
    except ValueRefused as refused:
        raise InstrumentParameterError(
            parameter.name, refused.rule, refused.detail
        ) from None
    form = parameter.form
    if (
        isinstance(form, re.Pattern)
        and isinstance(value, str)
        and form.fullmatch(value) is None
    ):
        raise InstrumentParameterError(
            parameter.name,
            ParameterRule.ALLOWED_VALUES,
            f"{value!r} does not have the form {form.pattern}",
        )
    return value


#: The types whose values coerce_value returns unchanged, by parameter
#: type (exactly these classes: a bool is no int here).
_EXACT: dict[ParameterType, type] = {
    ParameterType.INT: int,
    ParameterType.FLOAT: float,
    ParameterType.BOOL: bool,
    ParameterType.STRING: str,
}


class _Clock(Protocol):
    def seconds(self) -> float: ...


@dataclass
class _Reading:
    value: object = None
    time: float | None = None


class ParameterDictionary(Declarations[Parameter]):
    """
    An instrument's parameters: declarations, current values and when each
    was read, init values, and the rules for setting them.

    :param clock: where read times come from: an object with ``seconds()``
        (a reactor, a :class:`twisted.internet.task.Clock`); ``None`` for
        the global reactor, imported when first needed.
    """

    kind = "parameter"

    def __init__(self, clock: IReactorTime | _Clock | None = None) -> None:
        super().__init__()
        self._clock = clock
        self._readings: dict[str, _Reading] = {}
        self._init_values: dict[str, object] = {}
        self._unsupported: dict[str, str] = {}

    def _now(self) -> float:
        if self._clock is None:
            from twisted.internet import reactor

            self._clock = cast("IReactorTime", reactor)
        return self._clock.seconds()

    # Declarations

    def add(self, parameter: Parameter) -> Parameter:
        """
        Declare a parameter.

        :param parameter: the declaration.
        :returns: ``parameter``.
        :raises ValueError: if a parameter of that name exists.
        """
        self._declare(parameter)
        self._readings[parameter.name] = _Reading()
        return parameter

    def add_all(self, parameters: Iterable[Parameter]) -> None:
        """
        Declare several parameters, in order: what :meth:`add` does for
        each, in one call (a driver declares dozens for every instrument
        it drives).

        :param parameters: the declarations.
        :raises ValueError: if a parameter of that name exists; those
            before it are declared.
        """
        declared = self._declared
        readings = self._readings
        for parameter in parameters:
            name = parameter.name
            if name in declared:
                raise ValueError(f"{self.kind} {name} is declared twice")
            declared[name] = parameter
            readings[name] = _Reading()

    def parameter(self, name: str) -> Parameter:
        """
        One parameter's declaration.

        :param name: its name.
        :returns: the declaration.
        :raises InstrumentParameterError: ``unknown``, listing the known
            parameters.
        """
        try:
            return self._declared[name]
        except KeyError:
            raise InstrumentParameterError(
                name,
                ParameterRule.UNKNOWN,
                f"unknown parameter; known: {', '.join(self._declared) or 'none'}",
            ) from None

    def _expand(self, names: Iterable[str] | None) -> list[str]:
        if names is None:
            return self.names()
        names = list(names)
        for name in names:
            self.parameter(name)
        return names

    # Values

    def get(self, name: str) -> object:
        """
        The current value, however old.

        :param name: the parameter.
        :returns: its value, or ``None`` if never read or set.
        :raises InstrumentParameterError: for an unknown name.
        """
        self.parameter(name)
        return self._readings[name].value

    def get_values(self, names: Iterable[str] | None = None) -> dict[str, object]:
        """
        Current values, however old (the cached configuration).

        :param names: which; ``None`` for all.
        :returns: name to value.
        :raises InstrumentParameterError: for an unknown name; nothing is
            returned then.
        """
        return {name: self._readings[name].value for name in self._expand(names)}

    def read_time(self, name: str) -> float | None:
        """
        When the value was last read or set.

        :param name: the parameter.
        :returns: Unix seconds by the dictionary's clock, or ``None``.
        :raises InstrumentParameterError: for an unknown name.
        """
        self.parameter(name)
        return self._readings[name].time

    def is_stale(self, name: str) -> bool:
        """
        Whether a get should read the value from the instrument again: it
        was never read, or it is older than the parameter's expiration
        (``0``: always; ``None``: once read, never).

        :param name: the parameter.
        :returns: ``True`` if stale.
        :raises InstrumentParameterError: for an unknown name.
        """
        parameter = self.parameter(name)
        read = self._readings[name].time
        if read is None:
            return True
        if parameter.expiration is None:
            return False
        return self._now() - read >= parameter.expiration

    def stale(self, names: Iterable[str] | None = None) -> list[str]:
        """
        The stale parameters among ``names``.

        :param names: which; ``None`` for all.
        :returns: the names of the stale ones, in the order given.
        :raises InstrumentParameterError: for an unknown name.
        """
        return [name for name in self._expand(names) if self.is_stale(name)]

    def update(
        self, text: str, names: Iterable[str] | None = None
    ) -> dict[str, object]:
        """
        Read the values of parameters out of instrument output (a status or
        configuration dump, a reply), recording the time each was read.

        Every parameter with a pattern is tried (or only ``names``); each
        whose pattern is found takes the converted first group.  A value
        that cannot be converted is logged as a warning and the old value
        kept, so one odd field does not hide the rest of a dump.

        :param text: the instrument output.
        :param names: which parameters to try; ``None`` for all.
        :returns: the parameters whose value really changed, with their new
            values (a first reading counts as a change).
        :raises InstrumentParameterError: for an unknown name.
        """
        now = self._now()
        changes: dict[str, object] = {}
        for name in self._expand(names):
            parameter = self._declared[name]
            if parameter.pattern is None:
                continue
            match = parameter.compiled_pattern.search(text)
            if match is None:
                continue
            captured = match.group(1)
            try:
                value = parameter.read(captured)
            except (ValueError, TypeError, ArithmeticError) as error:
                _log.warn(
                    "Parameter {parameter}: cannot read {text!r}: {error}",
                    parameter=name,
                    text=captured,
                    error=str(error),
                )
                continue
            self._record(name, value, now, changes)
        return changes

    def update_from(
        self, values: Mapping[str, object], names: Iterable[str] | None = None
    ) -> dict[str, object]:
        """
        Take the values of parameters from values the driver has read (a
        dump read by a :class:`~instrumentd.driver.dumps.DumpReader`, a
        particle's values): each parameter whose :attr:`~Parameter.source`
        is there, and not ``None``, takes that value, and the time is
        recorded as with :meth:`update`.

        :param values: value id to value.
        :param names: which parameters to take; ``None`` for all.
        :returns: the parameters whose value really changed, with their new
            values.
        :raises InstrumentParameterError: for an unknown name.
        """
        now = self._now()
        changes: dict[str, object] = {}
        declared = self._declared
        readings = self._readings
        for name in self._expand(names):
            parameter = declared[name]
            source = parameter.source
            if source is None:
                continue
            value = values.get(source)
            if value is None:
                continue
            # A value of the parameter's own type as it is (what a dump's
            # reader gives, as a rule) is what coerce_value would return.
            if value.__class__ is not _EXACT.get(parameter.type):
                try:
                    value = coerce_value(
                        parameter.type, value, parameter.allowed_values
                    )
                except (ValueError, TypeError) as error:
                    _log.warn(
                        "Parameter {parameter}: cannot take {value!r}: {error}",
                        parameter=name,
                        value=value,
                        error=str(error),
                    )
                    continue
            # _record's work, written out (dozens of values a dump).
            reading = readings[name]
            if reading.time is None or reading.value != value:
                changes[name] = value
            reading.value = value
            reading.time = now
        return changes

    def set_unsupported(self, reasons: Mapping[str, str]) -> None:
        """
        Say which parameters this instrument lacks (its firmware or fit has
        no such setting), replacing what was said before.  A set of one
        fails (rule ``unsupported``, with the reason), and it is left out
        of the startup values and direct-access snapshots.

        :param reasons: name to why, e.g. ``"firmware 3.0h has no such
            setting"``.
        :raises InstrumentParameterError: for an unknown name.
        """
        self._expand(reasons)
        self._unsupported = dict(reasons)

    def unsupported(self) -> dict[str, str]:
        """
        :returns: the parameters this instrument lacks, and why.
        """
        return dict(self._unsupported)

    def _record(
        self, name: str, value: object, now: float, changes: dict[str, object]
    ) -> None:
        reading = self._readings[name]
        if reading.time is None or reading.value != value:
            changes[name] = value
        reading.value = value
        reading.time = now

    def validate_set(
        self, values: Mapping[str, object], startup: bool = False
    ) -> dict[str, object]:
        """
        Check a set before anything is sent to the instrument.

        Each parameter must exist and be settable now (never
        ``READ_ONLY``; ``IMMUTABLE`` only when ``startup``); each value must
        be of the parameter's type (unambiguous text such as ``"10"`` is
        converted), within its range and among its allowed values.

        :param values: name to requested value.
        :param startup: whether the startup configuration is being applied.
        :returns: name to value, converted to each parameter's type.
        :raises InstrumentParameterError: for the first parameter that
            breaks a rule, naming it and the rule.
        """
        checked: dict[str, object] = {}
        for name, value in values.items():
            parameter = self.parameter(name)
            if parameter.visibility is Visibility.READ_ONLY:
                raise InstrumentParameterError(
                    name, ParameterRule.READ_ONLY, "is read-only"
                )
            if name in self._unsupported:
                raise InstrumentParameterError(
                    name,
                    ParameterRule.UNSUPPORTED,
                    f"is not supported by this instrument: {self._unsupported[name]}",
                )
            if parameter.visibility is Visibility.IMMUTABLE and not startup:
                raise InstrumentParameterError(
                    name,
                    ParameterRule.IMMUTABLE,
                    "is immutable: it can be set only in the startup configuration",
                )
            checked[name] = _check(parameter, value)
        return checked

    def settable(self, startup: bool = False) -> list[str]:
        """
        The parameters a set may change now.

        :param startup: whether the startup configuration is being applied.
        :returns: their names.
        """
        allowed = {Visibility.READ_WRITE} | (
            {Visibility.IMMUTABLE} if startup else set()
        )
        return [p.name for p in self._declared.values() if p.visibility in allowed]

    def apply(self, values: Mapping[str, object]) -> dict[str, object]:
        """
        Record values the instrument has accepted (or reported), now.

        :param values: name to value, as :meth:`validate_set` returned them.
        :returns: the parameters whose value really changed, with their new
            values; publish a ``CONFIG_CHANGE`` event if it is not empty.
        :raises InstrumentParameterError: for an unknown name; nothing is
            recorded then.
        """
        self._expand(values)
        now = self._now()
        changes: dict[str, object] = {}
        for name, value in values.items():
            self._record(name, value, now, changes)
        return changes

    def differences(self, values: Mapping[str, object]) -> dict[str, object]:
        """
        The part of ``values`` that differs from the current values; e.g.
        what must be set again to restore a direct-access snapshot.

        :param values: name to value.
        :returns: name to value, for those that differ.
        :raises InstrumentParameterError: for an unknown name.
        """
        self._expand(values)
        return {
            name: value
            for name, value in values.items()
            if self._readings[name].value != value
        }

    def format_value(self, name: str, value: object) -> str:
        """
        Write a value as the parameter's set command wants it.

        :param name: the parameter.
        :param value: the value (from :meth:`validate_set`).
        :returns: the text.
        :raises InstrumentParameterError: for an unknown name.
        """
        return self.parameter(name).format_value(value)

    # Startup configuration and direct access

    def set_init_values(self, config: Mapping[str, object]) -> None:
        """
        Keep the operator's startup values (the ``parameters`` block of a
        driver's startup configuration), replacing any kept before.

        :param config: name to value; each must be a startup parameter and
            a valid value for it.
        :raises InstrumentParameterError: naming the first bad entry; the
            previous init values are kept then.
        """
        checked: dict[str, object] = {}
        for name, value in config.items():
            parameter = self.parameter(name)
            if not parameter.startup:
                raise InstrumentParameterError(
                    name,
                    ParameterRule.NOT_STARTUP,
                    "is not a startup parameter, so a startup value would "
                    "be ignored; startup parameters: "
                    + (", ".join(self.startup_names()) or "none"),
                )
            checked[name] = _check(parameter, value)
        self._init_values = checked

    def init_values(self) -> dict[str, object]:
        """
        :returns: the startup values kept by :meth:`set_init_values`.
        """
        return dict(self._init_values)

    def startup_names(self) -> list[str]:
        """
        :returns: the names of the startup parameters.
        """
        return [
            p.name
            for p in self._declared.values()
            if p.startup and p.name not in self._unsupported
        ]

    def startup_values(self) -> dict[str, object]:
        """
        What to set when the driver starts: for each startup parameter its
        init value, else its default.

        :returns: name to value; apply with ``validate_set(..., startup=True)``.
        :raises InstrumentParameterError: ``required``, for a startup
            parameter with neither.
        """
        values: dict[str, object] = {}
        for name in self.startup_names():
            if name in self._init_values:
                values[name] = self._init_values[name]
            elif self._declared[name].default_value is not None:
                values[name] = self._declared[name].default_value
            else:
                raise InstrumentParameterError(
                    name,
                    ParameterRule.REQUIRED,
                    "is a startup parameter with no init or default value; "
                    "give it one in the startup configuration",
                )
        return values

    def snapshot_direct_access(self) -> dict[str, object]:
        """
        The current values of the direct-access parameters, to take when
        direct access starts.  When it ends, refresh the values from the
        instrument and set ``differences(snapshot)`` again.

        :returns: name to value.
        """
        return {
            p.name: self._readings[p.name].value
            for p in self._declared.values()
            if p.direct_access and p.name not in self._unsupported
        }

    # Metadata

    def metadata(self) -> dict[str, dict[str, object]]:
        """
        Every parameter's declaration, JSON-ready, for the ``parameters``
        block of a driver's configuration metadata.

        :returns: name to :meth:`Parameter.metadata`.
        """
        return cast(
            "dict[str, dict[str, object]]",
            copy_jsonable(self.shared_metadata()),
        )

    def shared_metadata(self) -> dict[str, dict[str, object]]:
        """
        :meth:`metadata` built from each declaration's
        :meth:`Parameter.shared_metadata`: a new dict whose values are
        shared; read it, never change them.

        :returns: name to the declaration's metadata.
        """
        return {name: p.shared_metadata() for name, p in self._declared.items()}
