# -*- test-case-name: tests.test_station_api -*-
"""
The API's errors: the status for each driver error code, and
:class:`Refusal`, the JSON error a request is answered with.
"""

from __future__ import annotations

from collections.abc import Mapping

from twisted.logger import Logger
from twisted.python.failure import Failure

from instrumentd.driver.errors import (
    InstrumentCommandError,
    InstrumentConnectionError,
    InstrumentError,
    InstrumentParameterError,
    InstrumentProtocolError,
    InstrumentStateError,
    InstrumentTimeoutError,
)
from instrumentd.station.instrument import InstrumentBusyError, StationInstrument

__all__ = ["STATUS_BY_CODE", "Refusal", "refusal_for", "status_for"]

_log = Logger()

#: The HTTP status for each driver error code; other InstrumentErrors are
#: 500.
STATUS_BY_CODE: Mapping[str, int] = {
    InstrumentStateError.code: 409,
    InstrumentTimeoutError.code: 504,
    InstrumentParameterError.code: 400,
    InstrumentCommandError.code: 400,
    InstrumentConnectionError.code: 503,
    InstrumentBusyError.code: 503,
    # The instrument answered with something the driver could not use: the
    # fault is upstream of the station, as for a proxy's bad gateway.
    InstrumentProtocolError.code: 502,
}


def status_for(error: InstrumentError) -> int:
    """
    The HTTP status that reports a driver error.

    :param error: the error.
    :returns: its status from :data:`STATUS_BY_CODE`, else 500.
    """
    return STATUS_BY_CODE.get(error.code, 500)


class Refusal(Exception):
    """
    A request the API refuses: raised by a handler, answered as a JSON
    error.

    :param status: the HTTP status.
    :param code: the error's code, e.g. ``BAD_REQUEST``.
    :param message: what is wrong, for the person who will read it.
    :param headers: headers to answer with besides the JSON ones.
    :param details: more members of the error object.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: Mapping[bytes, bytes] | None = None,
        **details: object,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.details = details

    def body(self) -> dict[str, object]:
        """
        The JSON error: ``{"error": {"code", "message", ...details}}``.
        """
        return {"error": {"code": self.code, "message": self.message, **self.details}}


def refusal_for(reason: Failure, instrument: StationInstrument | str | None) -> Refusal:
    """
    Turn a failed request into the JSON error to answer with.

    :param reason: why the request failed.
    :param instrument: the instrument it was about (or its name), if any;
        a driver's error is said in the operator's terms by
        :meth:`StationInstrument.explain` (a link that is down is a 503
        saying why, never a refusal listing machine inputs).
    :returns: a :class:`Refusal`; an unexpected error is logged and is a
        500.
    """
    error = reason.value
    if isinstance(error, Refusal):
        return error
    if isinstance(instrument, StationInstrument):
        if isinstance(error, InstrumentError):
            error = instrument.explain(error)
        instrument = instrument.name
    if isinstance(error, InstrumentError):
        details = error.to_dict()
        details.pop("code", None)
        details.pop("message", None)
        if instrument is not None:
            details.setdefault("instrument", instrument)
        headers = (
            {b"retry-after": b"1"} if isinstance(error, InstrumentBusyError) else {}
        )
        return Refusal(status_for(error), error.code, error.message, headers, **details)
    _log.failure(
        "Unexpected error answering a request about {instrument}",
        reason,
        instrument=instrument,
    )
    return Refusal(
        500,
        "INTERNAL_ERROR",
        f"the station failed unexpectedly ({type(error).__name__}: {error}); "
        f"its log has the details",
    )
