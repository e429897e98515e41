# -*- test-case-name: tests.test_station_api -*-
"""
Direct access: an operator's bytes straight to the instrument.
"""

from __future__ import annotations

import base64
import binascii

from twisted.web.resource import Resource
from twisted.web.server import Request

from instrumentd.station.api._errors import Refusal
from instrumentd.station.api._resource import InstrumentPart

__all__ = ["DirectAccess", "DirectInput"]


class DirectAccess(InstrumentPart):
    """
    ``/api/instruments/{name}/direct-access``: enter (POST) and leave
    (DELETE); ``.../input`` sends bytes.
    """

    methods = ("POST", "DELETE")

    def getChild(self, path: bytes, request: Request) -> Resource:
        if path == b"input":
            return DirectInput(self.api, self.instrument)
        return super().getChild(path, request)

    def render_POST(self, request: Request) -> int:
        self.api.read_object(request, "nothing", required=False)
        instrument = self.instrument
        return self.changing(
            request,
            instrument.driver.start_direct,
            lambda _: (200, {"instrument": instrument.name, "state": instrument.state}),
        )

    def render_DELETE(self, request: Request) -> int:
        instrument = self.instrument
        return self.changing(
            request,
            instrument.driver.stop_direct,
            lambda state: (200, {"instrument": instrument.name, "state": state}),
        )


class DirectInput(InstrumentPart):
    """
    ``/api/instruments/{name}/direct-access/input``: bytes for the
    instrument, as ``{"text": "..."}`` (sent as UTF-8) or
    ``{"data": "<base64>"}``.  What the instrument answers arrives on the
    event stream as ``DIRECT_ACCESS`` events.
    """

    methods = ("POST",)

    def render_POST(self, request: Request) -> int:
        body = self.api.read_object(request, '{"text": ...} or {"data": base64}')
        text, encoded = body.get("text"), body.get("data")
        if isinstance(text, str) and encoded is None:
            data = text.encode("utf-8")
        elif isinstance(encoded, str) and text is None:
            try:
                data = base64.b64decode(encoded, validate=True)
            except binascii.Error as error:
                raise Refusal(
                    400, "BAD_REQUEST", f"data is not valid base64: {error}"
                ) from None
        else:
            raise Refusal(
                400,
                "BAD_REQUEST",
                'give the bytes for the instrument as {"text": "..."} or '
                '{"data": "<base64>"}',
            )
        instrument = self.instrument
        return self.changing(
            request,
            lambda: instrument.driver.execute_direct(data),
            lambda _: (200, {"instrument": instrument.name, "sent": len(data)}),
        )
