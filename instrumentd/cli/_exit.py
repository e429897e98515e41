# -*- test-case-name: tests.test_instrumentctl -*-
"""
How ``instrumentctl`` ends: its exit statuses, and the errors that lead to
them.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["APIError", "Exit", "ExitCode"]


class ExitCode(IntEnum):
    """
    The exit statuses, for scripts.
    """

    #: Done.
    OK = 0
    #: The station refused the request or it failed there (the message is
    #: the station's); or the instrument reported an error.
    API_ERROR = 1
    #: The command line was wrong (argparse uses 2 too).
    USAGE = 2
    #: The station could not be reached, or did not answer in time, or
    #: closed an event stream.
    UNREACHABLE = 3
    #: The station wants a token, or not the one given.
    AUTH = 4
    #: Interrupted (Ctrl-C) before the request finished; ``watch`` exits
    #: with OK instead.
    INTERRUPTED = 130


class Exit(Exception):
    """
    Leave with this status (raised instead of ``sys.exit`` so that the
    tool can run inside a reactor, and in tests).
    """

    def __init__(self, code: int, message: str | None = None) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message


class APIError(Exception):
    """
    The station answered with an error.
    """

    def __init__(self, status: int, message: str, body: object) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.body = body
