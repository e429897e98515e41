# -*- test-case-name: tests.test_reactor -*-
"""
instrumentd's reactor: Twisted's epoll reactor, with a plain read or
write dispatched straight to the connection.

Twisted's epoll reactor hands every event to its connection inside the
context of its old logging system (``callWithLogger``): it asks the
connection for its log prefix, copies that system's context dictionary
into a new one for this thread, and pops it again afterwards.  For a port agent, which relays
every read of its instrument as it comes, that wrapping is a third of the
time between the kernel waking the process and the read reaching the
agent (measured through a real agent process at 1,000 messages/s: about
32 µs with it, 22 µs without; see ``bench/README.md``).

:class:`InstrumentdReactor` dispatches an event that is only "readable" (the
common case: data, or the end of a stream) or only "writable" (a station's
HTTP and event-stream clients: Twisted writes a connection's buffer when
the socket says it can take more) to the reactor's own ``_doReadOrWrite``
without that context; everything else (hang-ups, errors) goes the usual
way.  The connection's read or write, its error handling and its
disconnection are Twisted's, unchanged.  The only difference a user can
see: a message logged through Twisted's old logging API (which the project
does not use) while a read or write is handled carries the system ``-``
instead of the connection's log prefix.  instrumentd logs
through :class:`twisted.logger.Logger`, whose lines name their module
either way.

``twistd instrumentd port-agent`` and the station (``twistd instrumentd``)
install it unless twistd was given a reactor (``--reactor``), and only
where epoll exists (Linux).  A station with in-process agents reads every
instrument's bytes itself, a read a sample for most instruments.
"""

from __future__ import annotations

import errno
import select
import sys
from typing import Any, Final

__all__ = ["InstrumentdReactor", "install", "install_if_unchosen"]

#: The reactor module Twisted's ``from twisted.internet import reactor``
#: loads; present in ``sys.modules`` once any reactor is installed.
_REACTOR_MODULE: Final = "twisted.internet.reactor"

try:
    from twisted.internet.epollreactor import EPollReactor
except ImportError:  # pragma: no cover - not Linux
    EPollReactor = None  # type: ignore[assignment, misc]

if EPollReactor is not None:
    from twisted.logger import Logger

    # Twisted's own dispatch of the other events: EPollReactor calls it
    # from the module it imports, so this reactor does the same.
    from twisted.python import log

    _log = Logger()

    from twisted.internet.posixbase import _NO_FILEDESC

    #: A plain "readable" event, with no error or hang-up beside it.
    _READABLE: Final = select.EPOLLIN
    #: A plain "writable" one.
    _WRITABLE: Final = select.EPOLLOUT

    class InstrumentdReactor(EPollReactor):
        """
        :class:`~twisted.internet.epollreactor.EPollReactor` whose plain
        read and write events skip the legacy log context (see the module).
        """

        def doPoll(self, timeout: float | None) -> None:
            if timeout is None:
                timeout = -1
            selectables = self._selectables
            try:
                events = self._poller.poll(timeout, len(selectables))
            except OSError as err:
                if err.errno == errno.EINTR:
                    return
                raise
            dispatch = self._doReadOrWrite
            for fd, event in events:
                selectable = selectables.get(fd)
                if selectable is None:
                    continue
                if event == _READABLE:
                    # _doReadOrWrite's steps for a plain read, written out
                    # (a port agent's every message comes so): a lost
                    # descriptor, the read, an error from it logged, and
                    # what ends the connection handed on as Twisted does.
                    in_read = False
                    why: object
                    try:
                        if selectable.fileno() == -1:
                            why = _NO_FILEDESC
                        else:
                            why = selectable.doRead()
                            in_read = True
                    except BaseException:
                        why = sys.exc_info()[1]
                        log.err()
                    if why:
                        try:
                            self._disconnectSelectable(  # type: ignore[no-untyped-call]
                                selectable, why, in_read
                            )
                        except BaseException:
                            # Logged as callWithLogger would log it; the
                            # next event is dispatched as usual.
                            _log.failure("Unhandled error dispatching a read")
                elif event == _WRITABLE:
                    try:
                        dispatch(selectable, fd, event)  # type: ignore[no-untyped-call]
                    except BaseException:
                        _log.failure("Unhandled error dispatching a write")
                else:
                    log.callWithLogger(selectable, dispatch, selectable, fd, event)

        doIteration = doPoll

else:  # pragma: no cover - not Linux
    InstrumentdReactor = None  # type: ignore[assignment, misc]


def install() -> Any:
    """
    Install :class:`InstrumentdReactor` as the global reactor.

    :returns: the reactor.
    :raises RuntimeError: where epoll does not exist.
    :raises twisted.internet.error.ReactorAlreadyInstalledError: if a
        reactor is installed already.
    """
    if InstrumentdReactor is None:  # pragma: no cover - not Linux
        raise RuntimeError("instrumentd's reactor needs epoll (Linux)")
    from twisted.internet.main import installReactor

    reactor = InstrumentdReactor()  # type: ignore[no-untyped-call]
    installReactor(reactor)
    return reactor


def install_if_unchosen() -> bool:
    """
    Install :class:`InstrumentdReactor` unless a reactor is installed already
    (twistd's ``--reactor``, or an import of the default one), and only
    where epoll exists.

    :returns: whether it was installed.
    """
    if InstrumentdReactor is None or _REACTOR_MODULE in sys.modules:
        return False
    install()
    return True
