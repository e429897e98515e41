# -*- test-case-name: tests.test_driver_settings -*-
"""
Shorthands for the two common shapes of
:class:`~instrumentd.driver.parameters.Parameter`, so that a table of an
instrument's parameters reads as one:

- :func:`setting`: an operator's setting (read-write), a **startup**
  parameter exactly when it has a default (the driver sets it after
  connecting) and restored after direct access unless told otherwise;
- :func:`reading`: a value read from the instrument that nobody sets
  (read-only: a serial number, a calibration coefficient).

Both take any other :class:`~instrumentd.driver.parameters.Parameter`
field by keyword (``pattern=``, ``format=``, ``expiration=``...).

Example::

    PARAMETERS = (
        setting("INTERVAL", INT, "Seconds between samples.", default=15,
                range=(5, 32767), units="s", source="sample_interval"),
        setting("SYNCWAIT", INT, "Seconds to wait after a sync sample.",
                range=(0, 120), units="s"),  # no default: not startup
        reading("TCALDATE", STRING, "When the sensor was calibrated.",
                source="tcaldate"),
    )
"""

from __future__ import annotations

from typing import Any

from instrumentd.driver.parameters import Parameter, ParameterType, Visibility

__all__ = ["reading", "setting"]


def setting(
    name: str,
    type: ParameterType,
    description: str,
    *,
    default: object = None,
    range: tuple[float, float] | None = None,
    units: str | None = None,
    source: str | None = None,
    restore: bool = True,
    **more: Any,
) -> Parameter:
    """
    An operator's setting.

    :param name: the parameter's name.
    :param type: its type.
    :param description: what it does.
    :param default: the value the driver sets after connecting; a setting
        with one is a startup parameter (``startup=`` in ``more``
        overrides that).
    :param range: ``(minimum, maximum)``; or give ``minimum=`` or
        ``maximum=`` alone in ``more``.
    :param units: its units.
    :param source: the value id it is read from (for
        :meth:`~instrumentd.driver.parameters.ParameterDictionary.update_from`).
    :param restore: saved when direct access starts and restored when it
        ends.
    :param more: any other :class:`Parameter` field.
    :returns: the declaration.
    :raises ValueError: for a range that is not two numbers, low first,
        or a declaration :class:`Parameter` refuses.
    """
    if range is not None:
        more["minimum"], more["maximum"] = _range(name, range)
    return Parameter(
        name=name,
        type=type,
        description=description,
        default_value=default,
        units=units,
        source=source,
        direct_access=restore,
        **{"startup": default is not None, **more},
    )


def reading(
    name: str,
    type: ParameterType,
    description: str,
    *,
    source: str | None = None,
    units: str | None = None,
    **more: Any,
) -> Parameter:
    """
    A value read from the instrument that nobody sets (read-only).

    :param name: the parameter's name.
    :param type: its type.
    :param description: what it is.
    :param source: the value id it is read from.
    :param units: its units.
    :param more: any other :class:`Parameter` field.
    :returns: the declaration.
    """
    return Parameter(
        name=name,
        type=type,
        description=description,
        visibility=Visibility.READ_ONLY,
        source=source,
        units=units,
        **more,
    )


def _range(name: str, given: tuple[float, float]) -> tuple[float, float]:
    if (
        not isinstance(given, tuple)
        or len(given) != 2
        or not all(isinstance(end, int | float) for end in given)
        or given[0] > given[1]
    ):
        raise ValueError(f"parameter {name}: range {given!r} is not (minimum, maximum)")
    return given
