"""
The contracts between the parts of instrumentd.

Each box of the architecture talks to the next only through one of these
``zope.interface`` interfaces, so a part can be replaced (a simulator for an
instrument, an in-process agent for a child process) without the others
noticing.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

__all__ = ["IBreakableTransport", "IDataLog"]


class IBreakableTransport(Interface):
    """
    A transport to an instrument that can send a serial break.

    Serial-line transports provide it; TCP links to device servers do not,
    and a port agent answers a ``break`` command on them with an error.
    """

    def send_break(duration_ms: int) -> Deferred[None]:
        """
        Hold the line in the break condition for ``duration_ms``
        milliseconds, without blocking the reactor.

        :param duration_ms: how long to hold the break, > 0.
        :returns: a Deferred that fires when the break has ended.
        """


class IDataLog(Interface):
    """
    The always-on binary record of every packet a port agent handles.
    """

    path = Attribute("The file currently written, as a str path.")
    size = Attribute("Bytes in the current file, including buffered bytes.")
    write_errors = Attribute("Operating-system errors met while recording.")
    bytes_dropped = Attribute("Bytes of packets that could not be recorded.")

    def open() -> None:
        """
        Open the first file; called when the agent starts, so the datalog
        exists whether or not any packet has arrived yet.
        """

    def write(packet: bytes) -> None:
        """
        Append one encoded packet.  Never blocks on clients; rotates first
        if the rotation policy says the packet belongs in a new file.
        """

    def rotate() -> str:
        """
        Close the current file into the archive now and start a new one.

        :returns: the path the closed file was archived as.
        """

    def flush() -> None:
        """
        Push buffered bytes to the operating system.
        """

    def close() -> None:
        """
        Flush and close; later writes are an error.
        """
