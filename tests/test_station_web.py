"""
Tests for the station's web page as the server hands it out
(L{instrumentd.station.api._page}) and for its vendored libraries
(C{instrumentd/station/web/static/vendor/}, pinned by
C{web/package-lock.json}).  The page itself is tested in a real browser:
L{tests.test_station_browser}.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import treq.client
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from instrumentd.station.apisite import APISite
from instrumentd.station.web import STATIC
from tests.apisupport import ToyStation

_ROOT = Path(__file__).resolve().parent.parent
_VENDOR = STATIC / "vendor"


class PageServedTests(TestCase):
    """
    C{/} is the page, C{/static/} its files; the JSON index is C{/api}.
    Over a real loopback socket: static files are sent by a producer.
    """

    async def setUp(self) -> None:
        site = APISite(ToyStation().api)
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(site)
        self.addCleanup(port.stopListening)
        self.base = f"http://127.0.0.1:{port.getHost().port}"
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.http = treq.client.HTTPClient(Agent(reactor, pool=pool))
        self.addCleanup(pool.closeCachedConnections)

    async def fetch(
        self,
        path: str,
        method: str = "GET",
        headers: dict[bytes, list[bytes]] | None = None,
    ) -> tuple[int, dict[bytes, list[bytes]], bytes]:
        response = await self.http.request(method, self.base + path, headers=headers)
        body = await response.content()
        return response.code, dict(response.headers.getAllRawHeaders()), body

    async def test_page(self) -> None:
        """
        C{GET /} is the HTML page, with a policy that lets it load only
        from the station.
        """
        code, headers, body = await self.fetch("/")
        self.assertEqual(code, 200)
        self.assertEqual(headers[b"Content-Type"], [b"text/html; charset=utf-8"])
        self.assertIn(b"default-src 'self'", headers[b"Content-Security-Policy"][0])
        self.assertEqual(body, (STATIC / "index.html").read_bytes())

    async def test_pageLoadsOnlyFromTheStation(self) -> None:
        """
        Every script and style the page names is a path on the station, and
        the files are there: nothing comes from a CDN.
        """
        html = (STATIC / "index.html").read_text()
        script = (STATIC / "app.js").read_text()
        named = re.findall(r'(?:src|href)="([^"]+)"', html)
        named += re.findall(r'(?:src|href): "([^"]+)"', script)
        self.assertIn("/static/vendor/uplot/uPlot.iife.min.js", named)
        self.assertIn("/static/vendor/@xterm/xterm/xterm.js", named)
        for each in named:
            if each.startswith("data:"):
                continue
            self.assertTrue(each.startswith("/static/"), each)
            code, _, _ = await self.fetch(each)
            self.assertEqual(code, 200, each)
        self.assertNotRegex(html + script, r"https?://")

    async def test_staticFile(self) -> None:
        """
        C{/static/...} serves the page's files with their types, compressed
        and sizes.
        """
        code, headers, body = await self.fetch("/static/app.js")
        self.assertEqual(code, 200)
        self.assertIn(b"javascript", headers[b"Content-Type"][0])
        self.assertEqual(body, (STATIC / "app.js").read_bytes())
        code, headers, body = await self.fetch("/static/style.css")
        self.assertEqual(code, 200)
        self.assertEqual(headers[b"Content-Type"], [b"text/css"])

    async def test_staticMissing(self) -> None:
        """
        A file that is not there, or a directory, is the API's JSON 404: no
        listing of the package's files.
        """
        for path in ["/static/nothing.js", "/static/vendor/", "/static/vendor"]:
            code, _headers, body = await self.fetch(path)
            self.assertEqual(code, 404, path)
            self.assertEqual(json.loads(body)["error"]["code"], "NOT_FOUND", path)

    async def test_pageMethods(self) -> None:
        """
        The page is read-only: another method is the API's 405.
        """
        status, _, body = await self.fetch("/", "POST")
        self.assertEqual(status, 405)
        self.assertEqual(json.loads(body)["error"]["code"], "METHOD_NOT_ALLOWED")

    async def test_indexStaysAtAPI(self) -> None:
        """
        The JSON index is at C{/api}.
        """
        status, _headers, body = await self.fetch("/api")
        self.assertEqual(status, 200)
        self.assertIn("GET /metrics", json.loads(body)["endpoints"])


class VendoredFilesTests(SynchronousTestCase):
    """
    The shipped libraries are the ones the lock file pins, unchanged.
    """

    def setUp(self) -> None:
        self.manifest = json.loads((_VENDOR / "manifest.json").read_text())
        self.lock = json.loads((_ROOT / "web" / "package-lock.json").read_text())

    def test_manifestMatchesLock(self) -> None:
        """
        Each vendored package is at the version and tarball integrity that
        C{web/package-lock.json} pins, and C{web/package.json} pins an
        exact version.
        """
        wanted = json.loads((_ROOT / "web" / "package.json").read_text())
        self.assertEqual(sorted(self.manifest), sorted(wanted["dependencies"]))
        for package, shipped in self.manifest.items():
            locked = self.lock["packages"][f"node_modules/{package}"]
            self.assertEqual(shipped["version"], locked["version"], package)
            self.assertEqual(shipped["integrity"], locked["integrity"], package)
            self.assertEqual(wanted["dependencies"][package], locked["version"])

    def test_filesMatchManifest(self) -> None:
        """
        Every shipped file is in the manifest with its SHA-256, and every
        file in the manifest is shipped as it was copied.
        """
        listed = set()
        for package, shipped in self.manifest.items():
            for name, digest in shipped["files"].items():
                path = _VENDOR / package / name
                listed.add(path)
                self.assertEqual(
                    hashlib.sha256(path.read_bytes()).hexdigest(), digest, str(path)
                )
        present = {
            path
            for path in _VENDOR.rglob("*")
            if path.is_file() and path.name != "manifest.json"
        }
        self.assertEqual(present, listed)
