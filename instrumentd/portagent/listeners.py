# -*- test-case-name: tests.test_portagent_listeners -*-
"""
The protocols of a port agent's data, sniff and raw listeners.

- **data**: full packets out (instrument data, status, faults, config,
  heartbeats); whatever the client sends goes to the instrument and is
  recorded as DATA_FROM_DRIVER.  Any number of clients.
- **sniff**: every packet of every type as one text line; input ignored.
- **raw**: an operator's terminal: bare instrument bytes out, keystrokes in.
  Only one raw client or RFC 2217 session writes at a time, the first to
  connect; the others are told they are read-only and are told again when
  the writer leaves and the longest-waiting one is given the line (see
  :mod:`instrumentd.portagent.writers`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure

from instrumentd.portagent.outlet import ClientOutlet

if TYPE_CHECKING:
    from instrumentd.portagent.agent import PortAgent

__all__ = ["DataClient", "ListenerFactory", "RawClient", "SniffClient"]

READ_ONLY_NOTICE = (
    b"\r\n[instrumentd: another operator is typing on this raw port; you are "
    b"read-only until they leave]\r\n"
)
NOT_SENT_NOTICE = (
    b"\r\n[instrumentd: not sent: the instrument link is down or backed up]\r\n"
)
WRITER_NOTICE = b"\r\n[instrumentd: you now have the line; what you type goes to the instrument]\r\n"


def describe_peer(address: IAddress) -> str:
    """
    A short name for a client address, e.g. ``127.0.0.1:53422``.
    """
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if host is not None and port is not None:
        return f"{host}:{port}"
    name = getattr(address, "name", None)
    return str(name) if name else type(address).__name__


class _Client(Protocol):
    kind = "data"

    def __init__(self, agent: PortAgent) -> None:
        self.agent = agent
        self.outlet: ClientOutlet | None = None
        self.label = "?"

    def connectionMade(self) -> None:
        self.label = describe_peer(self.transport.getPeer())  # type: ignore[union-attr]
        self.outlet = self.agent.router.add_client(
            self.kind,
            self.transport,  # type: ignore[arg-type]
            self.label,
        )

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.outlet is not None:
            self.agent.router.remove_client(self.kind, self.outlet)


class DataClient(_Client):
    """
    A driver (or any OOI-compatible client) on the data port.
    """

    kind = "data"

    def dataReceived(self, data: bytes) -> None:
        self.agent.to_instrument(data, f"data client {self.label}")


class SniffClient(_Client):
    """
    A read-only monitor; what it sends is ignored.
    """

    kind = "sniff"

    def dataReceived(self, data: bytes) -> None:
        pass


class RawClient(_Client):
    """
    An operator's raw terminal session.
    """

    kind = "raw"
    #: A raw writer does not keep data clients off the line.
    exclusive = False

    def connectionMade(self) -> None:
        super().connectionMade()
        if not self.agent.writers.join(self) and self.outlet is not None:
            self.outlet.send(READ_ONLY_NOTICE)

    def became_writer(self) -> None:
        """
        The line is ours now: say so.
        """
        if self.outlet is not None:
            self.outlet.send(WRITER_NOTICE)

    def dataReceived(self, data: bytes) -> None:
        if (
            self.agent.writers.holder is self
            and not self.agent.to_instrument(
                data, f"raw client {self.label}", client=self
            )
            and self.outlet is not None
        ):
            # Faults go to data clients; an operator typing must be told too.
            self.outlet.send(NOT_SENT_NOTICE)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        super().connectionLost(reason)
        self.agent.writers.leave(self)


class ListenerFactory(Factory):
    """
    Builds the clients of one listener kind for an agent.
    """

    noisy = False

    def __init__(self, agent: PortAgent, client_class: type[_Client]) -> None:
        self.agent = agent
        self.client_class = client_class

    def buildProtocol(self, addr: IAddress | None) -> Protocol:
        return self.client_class(self.agent)
