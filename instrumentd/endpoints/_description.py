"""
What the ``serial:`` and ``datalog:`` endpoint parsers share: reading the
pieces of an endpoint string the same way and refusing bad ones alike.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Final


def text(prefix: str, value: object) -> str:
    """
    One piece of an endpoint description as text.

    ``clientFromString`` passes on whatever type its description was; the
    pieces here are file names, so bytes decode as the file system does.

    :raises TypeError: for anything but str or bytes.
    """
    if isinstance(value, bytes):
        return os.fsdecode(value)
    if isinstance(value, str):
        return value
    raise TypeError(f"{prefix}: expected str or bytes, got {value!r}")


def one_path_and_options(
    prefix: str,
    args: Sequence[object],
    kwargs: Mapping[str, object],
    *,
    what: str,
    example: str,
    valid_options: Sequence[str],
    missing: str | None = None,
) -> tuple[str, dict[str, str]]:
    """
    Check an endpoint description that takes one path and named options.

    :param prefix: the endpoint type, for messages (``serial``).
    :param args: the positional pieces.
    :param kwargs: the named options.
    :param what: what the positional piece is (``device path``).
    :param example: an example description, shown when the path is missing.
    :param valid_options: the option names this endpoint takes.
    :param missing: what to call the piece when it is missing, if not
        ``what``.
    :returns: the path and the options, as text.
    :raises ValueError: for a missing or extra path, or an unknown option
        (listing the valid ones).
    """
    parts = [text(prefix, arg) for arg in args]
    if not parts or parts == [""]:
        raise ValueError(f"{prefix}: missing {missing or what}, as in {example}")
    if len(parts) > 1:
        raise ValueError(
            f"{prefix}: expected one {what}, got "
            + ", ".join(repr(part) for part in parts)
            + r"; escape a colon inside a path as \:"
        )
    unknown = sorted(set(kwargs) - set(valid_options))
    if unknown:
        raise ValueError(
            f"{prefix}: unknown option {', '.join(map(repr, unknown))}; "
            f"valid options: {', '.join(valid_options)}"
        )
    return parts[0], {key: text(prefix, value) for key, value in kwargs.items()}


_FLAGS: Final[Mapping[str, bool]] = {
    "0": False,
    "false": False,
    "no": False,
    "1": True,
    "true": True,
    "yes": True,
}


def flag(prefix: str, name: str, value: str) -> bool:
    """
    A yes/no option: ``0``, ``1``, ``false``, ``true``, ``no``, ``yes``, in
    any case.

    :param prefix: the endpoint type, for messages (``datalog``).
    :param name: the option's name, for messages.
    :param value: its text.
    :raises ValueError: naming the option and the value, and listing the
        valid values.
    """
    try:
        return _FLAGS[value.strip().lower()]
    except KeyError:
        raise ValueError(
            f"{prefix}: {name}={value!r} is not valid; valid: 0, 1 (or false, "
            "true, no, yes; any case)"
        ) from None
