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
from instrumentd.station.api._errors import Refusal
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
        names = _names(request)
        name = self.instrument.name
        read = self.instrument.driver.get_resource(names or "ALL")
        return self.later(
            request,
            read.addCallback(
                lambda values: (200, {"instrument": name, "parameters": values})
            ),
        )

    def render_PATCH(self, request: Request) -> int:
        values = self.api.read_object(request, "parameters and their new values")
        if not values:
            raise Refusal(
                400,
                "BAD_REQUEST",
                'give at least one parameter to set, e.g. {"INTERVAL": 10}',
            )
        instrument = self.instrument

        def answer(changed: dict[str, object]) -> tuple[int, object]:
            return 200, {
                "instrument": instrument.name,
                "changed": changed,
                "parameters": instrument.driver.get_cached_config(),
            }

        return self.changing(
            request, lambda: instrument.driver.set_resource(values), answer
        )


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
        if "command" in arguments:
            # execute_resource(command, **arguments) takes the command's
            # name as "command": no command can have an argument so named.
            raise Refusal(
                400,
                "BAD_REQUEST",
                "no command takes an argument named 'command'; the command's "
                "name is in the path",
            )
        instrument = self.instrument
        command = self.command

        def answer(result: object) -> tuple[int, object]:
            return 200, {
                "instrument": instrument.name,
                "command": command,
                "result": result,
                "state": instrument.state,
            }

        return self.changing(
            request,
            lambda: instrument.driver.execute_resource(command, **arguments),
            answer,
        )


class Discover(InstrumentPart):
    """
    ``/api/instruments/{name}/discover``.
    """

    methods = ("POST",)

    def render_POST(self, request: Request) -> int:
        self.api.read_object(request, "nothing", required=False)
        instrument = self.instrument
        return self.changing(
            request,
            instrument.driver.discover_state,
            lambda state: (200, {"instrument": instrument.name, "state": state}),
        )
