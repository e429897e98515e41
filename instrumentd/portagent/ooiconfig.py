# -*- test-case-name: tests.test_portagent_ooi -*-
"""
The keys OOI's port agent put in its ``get_config`` reply, made from ours.

OOI's Python port agent answered ``get_config`` with its whole configuration:
``refdes``, ``type`` (``tcp``, ``rsn``, ``botpt``...), the instrument's
``instaddr`` and ``instport``, the ``host`` clients reach it at, and the
bound ``ports`` by name (``data``, ``command``, ``sniff``, and ``da`` for
direct access: raw bytes both ways, no packet header).  OOI drivers read
these from the ``PORT_AGENT_CONFIG`` packet to offer direct access: they
connect an operator to ``host``:``ports["da"]``.  Our raw port is that
direct-access port, so :func:`ooi_fields` names it ``da`` as well.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Mapping, Sequence
from typing import Final

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.endpoints import _parse  # the endpoint-string grammar
from twisted.internet.interfaces import IListeningPort

__all__ = ["WILDCARD_HOSTS", "ooi_fields"]

#: Bound addresses that mean "every interface": no one can connect to them,
#: so the machine's host name is given instead.
WILDCARD_HOSTS: Final = frozenset({"", "0.0.0.0", "::"})

# Endpoint types whose positional parts (or host=/port= options) name a host
# and a TCP port.
_HOST_PORT_TYPES: Final = frozenset({"tcp", "tcp6", "ssl", "tls", "rfc2217"})


def _split(description: str) -> tuple[list[str], dict[str, str]]:
    """
    The positional and keyword parts of an endpoint string, as Twisted's
    grammar reads them.

    Twisted's parser reads a character at a time (a hundred microseconds
    for a TCP endpoint); a string with no backslash escape, every one an
    agent of the station is given, splits the same way with ``str``
    methods: parts at each colon, and a part with an ``=`` is a keyword
    whose value runs from its first ``=``.
    """
    if "\\" in description:
        args, kwargs = _parse(description)
        return [str(a) for a in args], {str(k): str(v) for k, v in kwargs.items()}
    args, kwargs = [], {}
    for part in description.split(":"):
        key, equals, value = part.partition("=")
        if equals:
            kwargs[key] = value
        else:
            args.append(part)
    return args, kwargs


@functools.lru_cache(maxsize=1024)
def _link_address(description: str) -> tuple[str, str | None, int | None]:
    """
    The link type, and the instrument's address and port as OOI named them
    (``instaddr``, ``instport``), from a client endpoint string.

    Kept for the last thousand strings: an agent's configuration is asked
    for when it starts and when each driver joins it.
    """
    try:
        args, kwargs = _split(description)
    except Exception:
        return description.partition(":")[0], None, None
    kind = str(args[0]) if args else ""
    rest = [str(a) for a in args[1:]]
    if kind in _HOST_PORT_TYPES:
        host = kwargs.get("host", rest[0] if rest else None)
        port = kwargs.get("port", rest[1] if len(rest) > 1 else None)
        try:
            number = int(port) if port is not None else None
        except ValueError:
            number = None
        return kind, host, number
    # serial: the device; datalog: the files; unix: the socket path.
    return kind, (rest[0] if rest else kwargs.get("path")), None


def _reachable_host(ports: Sequence[IListeningPort]) -> str | None:
    for port in ports:
        address = port.getHost()
        if isinstance(address, IPv4Address | IPv6Address):
            if address.host in WILDCARD_HOSTS:
                return socket.gethostname()
            return address.host
    return None


def ooi_fields(
    name: str,
    instrument: str,
    numbers: Mapping[str, int | str | None],
    listening: Mapping[str, Sequence[IListeningPort]],
) -> dict[str, object]:
    """
    The keys of OOI's ``get_config`` that ours does not have.

    :param name: the agent's name: OOI's ``refdes``.
    :param instrument: the instrument's client endpoint string, with
        shorthands (``demo``) resolved.
    :param numbers: the first bound address of each listener kind, as
        :meth:`~instrumentd.portagent.agent.PortAgent.port_numbers` gives
        them; the raw port is also given as ``da``.
    :param listening: the bound listeners by kind, to find the host.
    :returns: ``refdes``, ``type``, ``instaddr``, ``instport``, ``host``
        (where the direct-access listener, else the data listener, can be
        reached: its interface, or this machine's host name if it listens on
        every interface; ``None`` before the listeners are bound or for
        UNIX sockets), and ``ports`` with ``da`` added (a TCP port number, or
        ``None`` when the raw listener is off or not TCP).
    """
    kind, address, port = _link_address(instrument)
    raw = numbers.get("raw")
    return {
        "refdes": name,
        "type": kind,
        "instaddr": address,
        "instport": port,
        "host": _reachable_host(
            [*listening.get("raw", ()), *listening.get("data", ())]
        ),
        "ports": {**numbers, "da": raw if isinstance(raw, int) else None},
    }
