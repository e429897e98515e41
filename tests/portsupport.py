"""
A loopback TCP port that refuses every connection, for as long as a test
runs.

Listening on port 0 and closing again frees the port for anyone: under
``trial -j2`` another test's simulator or agent may take it a moment later,
and the "refused" instrument then connects and samples.  A socket bound but
never listening keeps the port reserved while the kernel answers every
connection to it with a reset (connection refused).
"""

from __future__ import annotations

import socket

from twisted.trial.unittest import SynchronousTestCase


def refusing_port(test: SynchronousTestCase) -> int:
    """
    Reserve a loopback port that refuses connections until C{test} ends.

    :param test: the test; the socket is closed in its cleanup.
    :returns: the port number.
    """
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    test.addCleanup(holder.close)
    holder.bind(("127.0.0.1", 0))
    port: int = holder.getsockname()[1]
    return port
