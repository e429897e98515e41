# -*- test-case-name: tests.test_station_service -*-
"""
The station's command-line options: ``twistd instrumentd`` with no
subcommand runs the station.

``--config FILE`` names the station's TOML configuration (without it, the
built-in demo station runs); ``--api``, ``--token-file`` and ``--data-dir``
override the file's ``api.listen``, ``api.token_file`` and
``station.data_dir``.  The configuration is read and checked in full while
the options are parsed, so ``twistd`` refuses a bad configuration before
it starts anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.python import usage

if TYPE_CHECKING:
    from instrumentd.station.config import StationConfig

__all__ = ["STATION_OPTIONS", "StationOptions"]

#: The station's own options (the subcommands refuse them).
STATION_OPTIONS = ("config", "api", "token-file", "data-dir")


class StationOptions(usage.Options):
    """
    Options of the station: ``twistd instrumentd [--config FILE] [--api
    ENDPOINT] [--token-file FILE] [--data-dir DIR]``.

    After parsing (:meth:`load_station`), :attr:`station_config` holds the
    checked configuration and :attr:`demo` says whether it is the built-in
    demo.
    """

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

    def station_options_given(self) -> list[str]:
        """
        :returns: the station options given on the command line.
        """
        return [f"--{name}" for name in STATION_OPTIONS if self[name] is not None]

    def load_station(self) -> None:
        """
        Read and check the station's configuration (the file, or the
        demo's), keeping it in :attr:`station_config`.

        :raises usage.UsageError: naming the file, the key and the problem
            of everything wrong with it.
        """
        from instrumentd.station.config import ConfigError, load_config
        from instrumentd.station.demo import demo_config

        overrides = {
            "api": self["api"],
            "token_file": self["token-file"],
            "data_dir": self["data-dir"],
        }
        try:
            if self["config"] is None:
                self.station_config = demo_config(**overrides)
                self.demo = True
            else:
                self.station_config = load_config(self["config"], **overrides)
        except ConfigError as e:
            raise usage.UsageError(str(e)) from None
