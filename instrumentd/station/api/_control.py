# -*- test-case-name: tests.test_station_api -*-
"""
Reading and changing an instrument: its parameters, its commands, and
discovering its state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.web.resource import Resource
from twisted.web.server import Request

from instrumentd.station.api._answer import write_json
from instrumentd.station.api._operations import (
    discover,
    read_parameters,
    run_command,
    set_parameters,
)
from instrumentd.station.api._resource import InstrumentPart
from instrumentd.station.instrument import StationInstrument

if TYPE_CHECKING:
    from instrumentd.station.api._root import StationAPI

__all__ = ["Command", "Commands", "Discover", "Parameters"]


def _names(request: Request) -> list[str]:
    names: list[str] = []
    for value in (request.args or {}).get(b"names", []):
        names.extend(
            name.strip() for name in value.decode("utf-8", "replace").split(",")
        )
    return [name for name in names if name]


class Parameters(InstrumentPart):
    """
    ``/api/instruments/{name}/parameters``.
    """

    methods = ("GET", "PATCH")

    def render_GET(self, request: Request) -> int:
        read = read_parameters(self.instrument, _names(request))
        return self.later(request, read.addCallback(lambda body: (200, body)))

    def render_PATCH(self, request: Request) -> int:
        values = self.api.read_object(request, "parameters and their new values")
        change = set_parameters(self.instrument, values)
        return self.later(request, change.addCallback(lambda body: (200, body)))


class Commands(InstrumentPart):
    """
    ``/api/instruments/{name}/commands``: the commands, and below it each
    one.
    """

    methods = ("GET",)

    def getChild(self, path: bytes, request: Request) -> Resource:
        if path == b"" and not request.postpath:
            return self
        return Command(self.api, self.instrument, path.decode("utf-8", "replace"))

    def render_GET(self, request: Request) -> bytes:
        driver = self.instrument.driver
        metadata = driver.get_config_metadata()
        return write_json(
            request,
            200,
            {
                "instrument": self.instrument.name,
                "state": self.instrument.state,
                "available": driver.get_resource_capabilities().get("commands", []),
                "commands": metadata.get("commands", {}),
            },
        )


class Command(InstrumentPart):
    """
    ``/api/instruments/{name}/commands/{command}``.

    :param api: the API's root.
    :param instrument: the instrument.
    :param command: the command's name.
    """

    methods = ("POST",)

    def __init__(
        self, api: StationAPI, instrument: StationInstrument, command: str
    ) -> None:
        super().__init__(api, instrument)
        self.command = command

    def render_POST(self, request: Request) -> int:
        arguments = self.api.read_object(
            request, "the command's arguments", required=False
        )
        ran = run_command(self.instrument, self.command, arguments)
        return self.later(request, ran.addCallback(lambda body: (200, body)))


class Discover(InstrumentPart):
    """
    ``/api/instruments/{name}/discover``.
    """

    methods = ("POST",)

    def render_POST(self, request: Request) -> int:
        self.api.read_object(request, "nothing", required=False)
        found = discover(self.instrument)
        return self.later(request, found.addCallback(lambda body: (200, body)))
