# -*- test-case-name: tests.test_driver_metadata_shared -*-
"""
Making a driver's metadata document cheaply: what is the same for every
protocol of a class is described once, and each caller is handed its own
copy.

A protocol's document is assembled from descriptions shared by every
protocol of its class (each declaration's, each particle class's); only
the copy handed out is new.  A deep copy of a document of a few hundred
entries costs more than everything else, so :class:`DocumentCopies` keeps
each class's latest document pickled, and a document made of the very same
descriptions is copied by unpickling it (the C unpickler builds the dicts
and lists several times faster than Python code can).
"""

from __future__ import annotations

import functools
import inspect
import pickle
from collections.abc import Callable
from typing import cast

from instrumentd.driver._json import copy_jsonable
from instrumentd.driver.commands import CommandSpec

__all__ = ["DocumentCopies", "signature", "undeclared_command"]


@functools.cache
def signature(declared: Callable[..., object]) -> inspect.Signature:
    """
    An input's signature, read once (a Signature is immutable).

    :param declared: the input, as its inputs ``Protocol`` declares it.
    :returns: its signature.
    """
    return inspect.signature(declared)


_UNDECLARED: dict[tuple[type[object], str], dict[str, object]] = {}


def undeclared_command(inputs: type[object], name: str) -> dict[str, object]:
    """
    The metadata of a command no declaration describes, from its input's
    docstring and signature: made once per inputs class and shared (read
    it, never change it).

    :param inputs: the inputs ``Protocol``.
    :param name: the input.
    :returns: the command's metadata.
    """
    made = _UNDECLARED.get((inputs, name))
    if made is None:
        declared = getattr(inputs, name)
        made = CommandSpec(
            name=name,
            display_name=name.replace("_", " ").capitalize(),
            description=inspect.getdoc(declared) or "",
        ).metadata()
        made["arguments"] = {
            argument: {}
            for argument in signature(declared).parameters
            if argument != "self"
        }
        _UNDECLARED[inputs, name] = made
    return made


def _parts(document: dict[str, object]) -> tuple[list[int], list[object]]:
    # What a document is made of: every key and value two levels down
    # (three in streams), and how many there are at each place, so that two
    # documents with the same parts, in the same places, are the same.
    sizes: list[int] = []
    parts: list[object] = []
    for section, content in document.items():
        parts.append(section)
        entries = cast("dict[str, object]", content)
        sizes.append(len(entries))
        for key, value in entries.items():
            parts.append(key)
            if section == "streams":
                fields = cast("dict[str, object]", value)
                sizes.append(len(fields))
                for field, described in fields.items():
                    parts.append(field)
                    parts.append(described)
            elif type(value) is list:
                # The driver's states: new lists of the same names.
                sizes.append(len(value))
                parts.extend(value)
            else:
                parts.append(value)
    return sizes, parts


class DocumentCopies:
    """
    Copies of metadata documents, one remembered per protocol class.

    A document given to :meth:`copy` must be a dict of sections
    (``driver``, ``commands``, ``parameters``, ``streams``), each a dict
    whose values are either descriptions shared and never changed
    (compared by identity), text, or lists of text; ``streams`` one level
    deeper.
    """

    def __init__(self) -> None:
        self._latest: dict[type[object], tuple[list[int], list[object], bytes]] = {}

    def copy(self, cls: type[object], document: dict[str, object]) -> dict[str, object]:
        """
        A deep copy of ``document``, by unpickling when ``cls``'s latest
        document was made of the very same parts.

        :param cls: the protocol class.
        :param document: the document, of shared parts.
        :returns: a copy that shares no dict or list with ``document`` (nor
            with any copy handed out before).
        """
        sizes, parts = _parts(document)
        latest = self._latest.get(cls)
        if (
            latest is not None
            and latest[0] == sizes
            and all(a is b for a, b in zip(latest[1], parts, strict=True))
        ):
            return cast("dict[str, object]", pickle.loads(latest[2]))
        try:
            pickled = pickle.dumps(document, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError):
            # A value pickle cannot name (an enum defined in a function):
            # copied the slower way, each time.
            self._latest.pop(cls, None)
        else:
            # The parts are kept with it, so none of them is freed and its
            # id given to another while they are compared by identity.
            self._latest[cls] = (sizes, parts, pickled)
        return cast("dict[str, object]", copy_jsonable(document))
