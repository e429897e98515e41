"""
The value types shared by parameters and command arguments, and the checks
a value must pass: one set of rules, so a parameter and a command argument
of the same type accept the same values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from enum import Enum, StrEnum

from instrumentd.driver.errors import ParameterRule

__all__ = [
    "ParameterType",
    "ValueRefused",
    "check_value",
    "coerce_value",
    "read_text",
    "value_range",
]


class ParameterType(StrEnum):
    """
    The type of a parameter's or command argument's value.
    """

    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    STRING = "str"
    #: One of the declared ``allowed_values``.
    ENUM = "enum"
    #: A :class:`datetime.datetime`.
    DATETIME = "datetime"
    #: A list of values.
    LIST = "list"


class ValueRefused(ValueError):
    """
    A value broke a rule; the caller turns this into its own error kind.

    :ivar rule: the :class:`ParameterRule` broken.
    :ivar detail: what was wrong, for a person.
    """

    def __init__(self, rule: ParameterRule, detail: str) -> None:
        super().__init__(detail)
        self.rule = rule
        self.detail = detail


_TRUE = frozenset({"y", "yes", "true", "t", "1", "on", "enable", "enabled"})
_FALSE = frozenset({"n", "no", "false", "f", "0", "off", "disable", "disabled"})


def value_range(
    allowed_values: Iterable[object] | None,
    minimum: object | None,
    maximum: object | None,
) -> object:
    """
    The ``range`` of a value's metadata: its allowed values, or
    ``[minimum, maximum]``, or ``None`` when it has neither.
    """
    if allowed_values is not None:
        return list(allowed_values)
    if minimum is not None or maximum is not None:
        return [minimum, maximum]
    return None


def _read_bool(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(f"{text!r} is not a yes/no value")


def _read_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


_READERS: dict[ParameterType, Callable[[str], object]] = {
    ParameterType.INT: lambda text: int(text.strip()),
    ParameterType.FLOAT: lambda text: float(text.strip()),
    ParameterType.BOOL: _read_bool,
    ParameterType.STRING: str.strip,
    ParameterType.ENUM: str.strip,
    ParameterType.DATETIME: lambda text: datetime.fromisoformat(text.strip()),
    ParameterType.LIST: _read_list,
}


def read_text(kind: ParameterType, text: str) -> object:
    """
    Read a value of type ``kind`` from instrument text: ``int``,
    ``float``, yes/no words for a bool, ISO 8601 for a datetime,
    comma-separated items for a list.

    :param kind: the type.
    :param text: the text.
    :returns: the value.
    :raises ValueError: if the text is not such a value.
    """
    return _READERS[kind](text)


def coerce_value(
    kind: ParameterType, value: object, allowed_values: Sequence[object] | None = None
) -> object:
    """
    Bring ``value`` to type ``kind``, accepting unambiguous forms (``"10"``
    or ``10.0`` for an int, ``"yes"`` for a bool, ISO 8601 text for a
    datetime, a tuple for a list), never a bool for a number.

    :param kind: the type.
    :param value: the value given.
    :param allowed_values: for :attr:`ParameterType.ENUM`, the members;
        if they are :class:`~enum.Enum` members, a member's value or name
        stands for it.
    :returns: the value in type ``kind``.
    :raises ValueError: with the reason, if it cannot be.
    """
    if kind is ParameterType.INT:
        if isinstance(value, bool):
            raise ValueError(f"{value!r} is a bool, not an int")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            return int(value.strip())
    elif kind is ParameterType.FLOAT:
        if isinstance(value, bool):
            raise ValueError(f"{value!r} is a bool, not a number")
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            return float(value.strip())
    elif kind is ParameterType.BOOL:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str):
            return _read_bool(value)
    elif kind is ParameterType.STRING:
        if isinstance(value, str):
            return value
    elif kind is ParameterType.ENUM:
        return _enum_member(allowed_values or (), value)
    elif kind is ParameterType.DATETIME:
        if isinstance(value, datetime):
            return value
        if isinstance(value, str):
            return datetime.fromisoformat(value.strip())
    elif kind is ParameterType.LIST and isinstance(value, list | tuple):
        return list(value)
    raise ValueError(f"{value!r} is not a {kind.value}")


def _enum_member(allowed: Sequence[object], value: object) -> object:
    for member in allowed:
        if member == value:
            return member
    for member in allowed:
        if isinstance(member, Enum) and value in (member.value, member.name):
            return member
    raise ValueError(f"{value!r} is not one of {show_values(allowed)}")


def show_values(values: Iterable[object]) -> str:
    """
    List values for a message, enum members by their value.

    :param values: the values.
    :returns: e.g. ``"'raw', 'converted'"``.
    """
    return ", ".join(
        repr(value.value if isinstance(value, Enum) else value) for value in values
    )


#: The largest magnitude of an integer value (64-bit signed).
_LARGEST_INT = 2**63 - 1


def check_value(
    kind: ParameterType,
    value: object,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    allowed_values: Sequence[object] | None = None,
    units: str | None = None,
) -> object:
    """
    Coerce ``value`` (see :func:`coerce_value`) and check it against a
    range and allowed values.

    :param kind: the type.
    :param value: the value given.
    :param minimum: the smallest number allowed, or ``None``.
    :param maximum: the largest number allowed, or ``None``.
    :param allowed_values: the only values allowed, or ``None``.
    :param units: units to show with the bounds in messages.
    :returns: the coerced value.
    :raises ValueRefused: naming the rule broken.
    """
    try:
        value = coerce_value(kind, value, allowed_values)
    except ValueError as error:
        if kind is ParameterType.ENUM:
            raise ValueRefused(ParameterRule.ALLOWED_VALUES, str(error)) from None
        raise ValueRefused(
            ParameterRule.TYPE, f"expected type {kind.value}: {error}"
        ) from None
    if (
        allowed_values is not None
        and kind is not ParameterType.ENUM
        and value not in allowed_values
    ):
        raise ValueRefused(
            ParameterRule.ALLOWED_VALUES,
            f"{value!r} is not one of {show_values(allowed_values)}",
        )
    unit_text = f" {units}" if units else ""
    if isinstance(value, float) and not math.isfinite(value):
        # NaN compares false with every bound, so it would pass any range.
        raise ValueRefused(ParameterRule.RANGE, f"{value!r} is not a finite number")
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and abs(value) > _LARGEST_INT
    ):
        # No instrument takes more than 64 bits; a value with no declared
        # bound (1e300 given for an int) would otherwise be sent as is.
        shown = str(value) if len(str(value)) <= 24 else f"{str(value)[:12]}..."
        raise ValueRefused(
            ParameterRule.RANGE,
            f"{shown} is beyond 64 bits; valid: -{_LARGEST_INT} to {_LARGEST_INT}",
        )
    if isinstance(value, int | float) and not isinstance(value, bool):
        if minimum is not None and value < minimum:
            raise ValueRefused(
                ParameterRule.RANGE,
                f"{value!r} is below the minimum {minimum!r}{unit_text}",
            )
        if maximum is not None and value > maximum:
            raise ValueRefused(
                ParameterRule.RANGE,
                f"{value!r} is above the maximum {maximum!r}{unit_text}",
            )
    return value
