# -*- test-case-name: tests.test_station_web -*-
"""
The web page at ``/`` and its files under ``/static/``.

The page is a static HTML file whose script reads the API like any other
client (the JSON endpoints and the event streams); the server's only part
is to hand out the files, with a policy that keeps the page from loading
anything from elsewhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.web.resource import Resource
from twisted.web.server import Request
from twisted.web.static import File

from instrumentd.station.api._resource import JSONResource, NotFound
from instrumentd.station.web import STATIC

if TYPE_CHECKING:
    from instrumentd.station.api._root import StationAPI

__all__ = ["CONTENT_SECURITY_POLICY", "Page", "static_files"]

#: Everything the page loads comes from the station itself.  Styles may be
#: inline because uPlot and xterm.js size their elements with ``style``.
CONTENT_SECURITY_POLICY: bytes = (
    b"default-src 'self'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    b"frame-ancestors 'none'"
)


def _page_headers(request: Request) -> None:
    request.setHeader(b"content-security-policy", CONTENT_SECURITY_POLICY)
    request.setHeader(b"x-content-type-options", b"nosniff")


class Page(JSONResource):
    """
    ``/``: the page (``static/index.html``), read once.
    """

    methods = ("GET",)

    def __init__(self, api: StationAPI) -> None:
        super().__init__(api)
        self._html = (STATIC / "index.html").read_bytes()

    def render_GET(self, request: Request) -> bytes:
        _page_headers(request)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        # The page is small and changes with the station's version: always
        # revalidated, so an upgrade is never half old, half new.
        request.setHeader(b"cache-control", b"no-cache")
        request.setHeader(b"content-length", b"%d" % len(self._html))
        if request.method == b"HEAD":
            return b""
        return self._html


class _StaticFile(File):
    """
    A file of the page: no directory listings, the API's JSON 404 for what
    is not there, and the page's security headers.
    """

    api: StationAPI

    def directoryListing(self) -> Resource:
        return NotFound(self.api)

    def createSimilarFile(self, path: str) -> File:
        similar: Any = super().createSimilarFile(path)  # type: ignore[no-untyped-call]
        similar.api = self.api
        similar.childNotFound = NotFound(self.api)
        return similar  # type: ignore[no-any-return]

    def render_GET(self, request: Request) -> Any:
        _page_headers(request)
        request.setHeader(b"cache-control", b"no-cache")
        return super().render_GET(request)  # type: ignore[no-untyped-call]


def static_files(api: StationAPI) -> Resource:
    """
    ``/static/``: the page's script, style and vendored libraries.

    :param api: the API's root, for its JSON 404.
    :returns: the resource.
    """
    files = _StaticFile(str(STATIC))
    files.api = api
    files.childNotFound = NotFound(api)  # type: ignore[assignment]
    return files
