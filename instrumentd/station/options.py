# -*- test-case-name: tests.test_station_service -*-
"""
The station's command-line options: ``twistd instrumentd`` with no
subcommand runs the station.

``--config FILE`` names the station's TOML configuration (without it, the
built-in demo station runs); ``--api``, ``--token-file``, ``--data-dir``,
``--api-open`` and ``--access-log`` override the file's ``api.listen``,
``api.token_file``, ``station.data_dir``, ``api.open`` and
``api.access_log``.  The configuration is read and checked in full while
the options are parsed, so ``twistd`` refuses a bad configuration before
it starts anything.  ``--check`` checks it and exits.

A bad configuration ends the process with status 1 and every problem on
standard error, and nothing else: raised as a usage error, twistd would
print its whole usage text first, and the problems would scroll away
behind it.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, TextIO

from twisted.python import usage

if TYPE_CHECKING:
    from instrumentd.station.config import StationConfig

__all__ = ["STATION_OPTIONS", "StationOptions"]

#: The station's own options (the subcommands refuse them).
STATION_OPTIONS = ("config", "api", "token-file", "data-dir")

#: The station's own flags (the subcommands refuse them too).
STATION_FLAGS = ("check", "api-open", "access-log")


class StationOptions(usage.Options):
    """
    Options of the station: ``twistd instrumentd [--config FILE] [--api
    ENDPOINT] [--token-file FILE] [--data-dir DIR] [--check]``.

    After parsing (:meth:`load_station`), :attr:`station_config` holds the
    checked configuration and :attr:`demo` says whether it is the built-in
    demo.

    :ivar stdout: where ``--check`` says the configuration is good.
    :ivar stderr: where the problems of a bad configuration go.
    """

    optFlags = [
        [
            "check",
            None,
            "Check the configuration (drivers, parameters, endpoints, token "
            "file) and exit, starting nothing: status 0 when it is good, 1 "
            "with every problem otherwise.",
        ],
        [
            "api-open",
            None,
            "Let the API listen beyond loopback without a token (the config's "
            "api.open); without it, such a station refuses to start.",
        ],
        [
            "access-log",
            None,
            "Log every API request (the config's api.access_log).",
        ],
    ]

    optParameters = [
        [
            "config",
            "c",
            None,
            "The station's TOML configuration file; without it, a demo "
            "station runs (a simulated SBE 37-SMP).",
        ],
        [
            "api",
            None,
            None,
            "Server endpoint of the HTTP API (overrides the config's "
            "api.listen); default tcp:8700:interface=127.0.0.1.",
        ],
        [
            "token-file",
            None,
            None,
            "File holding the API token that changes must carry (overrides "
            "the config's api.token_file).",
        ],
        [
            "data-dir",
            None,
            None,
            "Default home of datalogs, sample files and spools (overrides the "
            "config's station.data_dir); default ./instrumentd-data.",
        ],
    ]

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.station_config: StationConfig | None = None
        self.demo = False
        self.stdout: TextIO = sys.stdout
        self.stderr: TextIO = sys.stderr

    def station_options_given(self) -> list[str]:
        """
        :returns: the station options given on the command line.
        """
        given = [f"--{name}" for name in STATION_OPTIONS if self[name] is not None]
        return given + [f"--{name}" for name in STATION_FLAGS if self[name]]

    def load_station(self) -> None:
        """
        Read and check the station's configuration (the file, or the
        demo's), keeping it in :attr:`station_config`.  With ``--check``,
        say that it is good and exit 0.

        :raises SystemExit: 1, after writing every problem (each naming
            the file, the key and what is wrong) to :attr:`stderr`; 0 after
            ``--check`` of a good configuration.
        """
        from instrumentd.station.config import ConfigError, load_config
        from instrumentd.station.demo import demo_config

        overrides: dict[str, Any] = {
            "api": self["api"],
            "token_file": self["token-file"],
            "data_dir": self["data-dir"],
            "api_open": True if self["api-open"] else None,
            "access_log": True if self["access-log"] else None,
        }
        try:
            if self["config"] is None:
                self.station_config = demo_config(**overrides)
                self.demo = True
            else:
                self.station_config = load_config(self["config"], **overrides)
        except ConfigError as e:
            self.stderr.write(f"{e}\n")
            self.stderr.flush()
            raise SystemExit(1) from None
        if self["check"]:
            config = self.station_config
            names = ", ".join(spec.name for spec in config.instruments)
            count = len(config.instruments)
            self.stdout.write(
                f"{config.source}: the station configuration is good: "
                f"{count} instrument{'s' if count != 1 else ''} ({names}), "
                f"{len(config.sinks)} sink{'s' if len(config.sinks) != 1 else ''}, "
                f"API on {config.api}; nothing was started\n"
            )
            self.stdout.flush()
            raise SystemExit(0)
