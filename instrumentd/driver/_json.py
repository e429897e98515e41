"""
Turning driver values into JSON-ready data.

Events, particles and metadata all end up in JSON (sinks, the HTTP API), and
they carry values of many kinds: enums, datetimes, bytes, particles.  One
conversion keeps their encodings the same everywhere.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import date, datetime, time
from enum import Enum
from typing import cast

__all__ = ["DescribedOnce", "copy_jsonable", "dumps", "to_jsonable"]

#: The exact types returned as they are (subclasses, such as a StrEnum's
#: members, take the general path below).
_SCALARS = frozenset({str, int, float, bool, type(None)})


def to_jsonable(value: object) -> object:
    """
    Convert ``value`` to data :func:`json.dumps` accepts.

    Enums become their value, dates and times ISO 8601 text, bytes base64
    text, mappings dicts with ``str`` keys, other collections lists, and
    objects with a ``to_dict()`` method (particles, errors) that dict.
    Anything else becomes its ``repr``, so an odd value in a command result
    is still shown instead of failing the whole event.

    :param value: any value.
    :returns: a JSON-ready equivalent.
    """
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is dict:
        # The common containers first (the same results as the Mapping and
        # list branches below, without the ABC checks).
        return {str(key): to_jsonable(item) for key, item in value.items()}  # type: ignore[attr-defined]
    if kind is list or kind is tuple:
        return [to_jsonable(item) for item in value]  # type: ignore[attr-defined]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Enum):
        return to_jsonable(value.value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [to_jsonable(item) for item in items]
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_jsonable(to_dict())
    return repr(value)


def copy_jsonable(value: object) -> object:
    """
    A deep copy of JSON-ready data (what :func:`to_jsonable` returns): new
    dicts and lists, the same scalars.  Metadata computed once for a class
    is handed out this way, so that a caller changing its copy changes
    nobody else's.

    :param value: JSON-ready data.
    :returns: an equal copy sharing no dict or list with ``value``.
    """
    kind = type(value)
    if kind is dict:
        return {key: copy_jsonable(item) for key, item in value.items()}  # type: ignore[attr-defined]
    if kind is list:
        return [copy_jsonable(item) for item in value]  # type: ignore[attr-defined]
    return value


def dumps(value: object) -> str:
    """
    Encode ``value`` as compact JSON text after :func:`to_jsonable`.

    :param value: any value.
    :returns: JSON text.
    """
    return json.dumps(to_jsonable(value), separators=(",", ":"))


class DescribedOnce:
    """
    A frozen declaration (a parameter, a command, a command's argument)
    whose JSON-ready metadata is made once and shared: every protocol of a
    driver class asks for the same declarations' metadata.  Subclasses say
    what it is in :meth:`_describe`.
    """

    def _describe(self) -> dict[str, object]:
        """
        :returns: the metadata, before :func:`to_jsonable`.
        """
        raise NotImplementedError

    def metadata(self) -> dict[str, object]:
        """
        :returns: the metadata (the caller's own copy).
        """
        return cast("dict[str, object]", copy_jsonable(self.shared_metadata()))

    def shared_metadata(self) -> dict[str, object]:
        """
        :meth:`metadata` made once for this declaration and shared by every
        caller: read it, never change it.

        :returns: the dict.
        """
        made = self.__dict__.get("_metadata")
        if made is None:
            made = to_jsonable(self._describe())
            # Not a dataclass field: equality, hashing and replace() ignore
            # it; object.__setattr__ because the declarations are frozen.
            object.__setattr__(self, "_metadata", made)
        return cast("dict[str, object]", made)
