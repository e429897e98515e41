# -*- test-case-name: tests.test_instrumentctl -*-
"""
The station's HTTP JSON API as ``instrumentctl`` uses it, through treq.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import quote, urlsplit

from twisted.internet.defer import CancelledError
from twisted.internet.error import ConnectError, ConnectionRefusedError, DNSLookupError
from twisted.python.failure import Failure
from twisted.web.client import ResponseFailed

from instrumentd.cli._exit import APIError, Exit, ExitCode

if TYPE_CHECKING:
    from treq.client import HTTPClient
    from treq.response import _Response

__all__ = ["StationClient", "instrument_path"]


class StationClient:
    """
    The station's API, through treq.
    """

    def __init__(
        self,
        reactor: Any,
        http: HTTPClient,
        url: str,
        token: str | None,
        timeout: float,
    ) -> None:
        self.reactor = reactor
        self.http = http
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def _headers(self) -> dict[bytes | str, bytes | str]:
        headers: dict[bytes | str, bytes | str] = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def unreachable(self, reason: Failure) -> NoReturn:
        """
        Explain why the station could not be reached, and exit.
        """
        where = f"the station at {self.url}"
        # treq's timeout cancels the request; a cancelled request in flight
        # fails as ResponseFailed holding the CancelledError.
        inner = getattr(reason.value, "reasons", None) or []
        if reason.check(CancelledError) or any(
            isinstance(each, Failure) and each.check(CancelledError) for each in inner
        ):
            raise Exit(
                ExitCode.UNREACHABLE,
                f"no answer from {where} within {self.timeout:g} s (a change "
                f"may still be carried out); --timeout waits longer",
            )
        if reason.check(DNSLookupError):
            host = urlsplit(self.url).hostname
            raise Exit(
                ExitCode.UNREACHABLE,
                f"cannot reach {where}: cannot resolve the host name {host!r}",
            )
        if reason.check(ConnectError):
            error = reason.value
            what = (
                "connection refused"
                if isinstance(error, ConnectionRefusedError)
                else str(error).strip() or type(error).__name__
            )
            raise Exit(
                ExitCode.UNREACHABLE,
                f"cannot reach {where}: {what} — is `twistd -n instrumentd` running?",
            )
        if reason.check(ResponseFailed):
            raise Exit(
                ExitCode.UNREACHABLE,
                f"{where} closed the connection before answering",
            )
        reason.raiseException()
        raise AssertionError("unreachable")  # for mypy: raiseException raises

    async def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, object] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """
        Make a request and return the JSON answer.

        :raises APIError: for an error answer.
        :raises Exit: when the station cannot be reached.
        """
        kwargs: dict[str, Any] = {}
        if body is not None:
            kwargs["json"] = dict(body)
        try:
            response = await self.http.request(
                method,
                self.url + path,
                params=dict(params or {}),
                headers=self._headers(),
                allow_redirects=False,
                timeout=self.timeout,
                reactor=self.reactor,
                **kwargs,
            )
            content = await response.content()
        except Exception:
            self.unreachable(Failure())
        try:
            decoded = json.loads(content)
        except ValueError:
            raise APIError(
                response.code,
                f"the station at {self.url} answered {response.code} with "
                f"something that is not JSON",
                None,
            ) from None
        if response.code >= 400:
            error = decoded.get("error") if isinstance(decoded, dict) else None
            message = (
                error.get("message") if isinstance(error, dict) else None
            ) or f"the station answered {response.code}"
            raise APIError(response.code, str(message), decoded)
        return decoded

    async def stream(self, path: str) -> _Response:
        """
        Open an event stream.

        :returns: the response, whose body is the stream.
        """
        try:
            response = await self.http.request(
                "GET",
                self.url + path,
                headers={**self._headers(), "Accept": "text/event-stream"},
                allow_redirects=False,
                timeout=self.timeout,
                reactor=self.reactor,
                # Unbuffered: treq would otherwise keep the whole stream in
                # memory for as long as it lasts.
                unbuffered=True,
            )
        except Exception:
            self.unreachable(Failure())
        if response.code >= 400:
            content = await response.content()
            try:
                decoded = json.loads(content)
                message = decoded["error"]["message"]
            except (ValueError, KeyError, TypeError):
                decoded, message = None, f"the station answered {response.code}"
            raise APIError(response.code, str(message), decoded)
        return response


def instrument_path(name: str) -> str:
    return "/api/instruments/" + quote(name, safe="")
