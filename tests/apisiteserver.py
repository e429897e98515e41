"""
A station API in a child process, for tests that need a process of its own
(a low limit on open files): ``python -m tests.apisiteserver [--nofile N]
[--max-connections N] [--plain]`` serves the API of one fake instrument on
a loopback port and prints ``listening PORT``.

``--plain`` serves it with ``twisted.web``'s own ``Site``, as the station
did before :class:`~instrumentd.station.apisite.APISite`, to show what the
tests guard against.
"""

from __future__ import annotations

import argparse
import resource
import sys


def main() -> None:
    """
    Serve until killed.
    """
    parser = argparse.ArgumentParser()
    parser.add_argument("--nofile", type=int, default=None)
    parser.add_argument("--max-connections", type=int, default=50)
    parser.add_argument("--plain", action="store_true")
    options = parser.parse_args()
    if options.nofile is not None:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (options.nofile, hard))

    from twisted.internet import reactor
    from twisted.web.server import Site

    from instrumentd.station.api import StationAPI
    from instrumentd.station.apisite import APISite
    from instrumentd.station.instrument import Station, StationInstrument
    from tests.apisupport import FakeDriver

    driver = FakeDriver(state="COMMAND")
    station = Station([StationInstrument("fake", driver, clock=reactor)], clock=reactor)
    api = StationAPI(station, clock=reactor)
    site = (
        Site(api)
        if options.plain
        else APISite(
            api,
            authorize=api.authorize,
            max_connections=options.max_connections,
            reactor=reactor,
        )
    )
    port = reactor.listenTCP(0, site, interface="127.0.0.1")  # type: ignore[attr-defined]
    sys.stdout.write(f"listening {port.getHost().port}\n")
    sys.stdout.flush()
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
