# -*- test-case-name: tests.test_collector_config -*-
"""
``twistd instrumentd collect [--config FILE] [--broker ADDRESS] [--data-dir
DIR] [--api ENDPOINT] [--check]``: the shore collector's options.

The configuration (the file's ``[collector]`` table, overridden by the
command line) is read and checked in full while the options are parsed;
a bad one ends the process with status 1 and every problem on standard
error.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

from twisted.python import usage

if TYPE_CHECKING:
    from instrumentd.station.config import CollectorConfig

__all__ = ["CollectOptions"]


class CollectOptions(usage.Options):
    """
    Options of ``twistd instrumentd collect``.

    :ivar collector_config: the checked configuration, after parsing.
    """

    synopsis = "[--config FILE] [--broker ADDRESS] [--data-dir DIR] [--api ENDPOINT]"
    longdesc = (
        "Collect stations' data and events from an MQTT broker into an "
        "archive, each message exactly once, and report gaps in the "
        "sequence numbers. See doc/multi-host.md."
    )

    optFlags = [
        ["check", None, "Check the configuration and exit, starting nothing."],
    ]

    optParameters = [
        ["config", "c", None, "A TOML file with a [collector] table."],
        [
            "broker",
            None,
            None,
            "The MQTT broker: mqtt://HOST[:PORT], mqtts://HOST[:PORT] or a "
            "Twisted client endpoint string (overrides collector.broker).",
        ],
        [
            "data-dir",
            None,
            None,
            "The archive's directory (overrides collector.data_dir); "
            "default ./instrumentd-archive.",
        ],
        [
            "api",
            None,
            None,
            "Server endpoint of the collector's HTTP API (overrides "
            "collector.api); default tcp:8710:interface=127.0.0.1.",
        ],
    ]

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.collector_config: CollectorConfig | None = None
        self.stdout: TextIO = sys.stdout
        self.stderr: TextIO = sys.stderr

    def postOptions(self) -> None:
        """
        Read and check the configuration.

        :raises SystemExit: 1 with every problem on :attr:`stderr`; 0 after
            ``--check`` of a good one.
        """
        from instrumentd.station.config import ConfigError, load_collector_config

        try:
            self.collector_config = load_collector_config(
                self["config"],
                broker=self["broker"],
                data_dir=self["data-dir"],
                api=self["api"],
            )
        except ConfigError as e:
            self.stderr.write(f"{e}\n")
            self.stderr.flush()
            raise SystemExit(1) from None
        if self["check"]:
            config = self.collector_config
            self.stdout.write(
                f"{config.source}: the collector configuration is good "
                f"(broker {config.broker}, archive {config.data_dir})\n"
            )
            self.stdout.flush()
            raise SystemExit(0)
