"""
The station's web page: ``static/index.html``, its script and style, and
the JavaScript and CSS libraries it uses under ``static/vendor/`` (copied
from the npm registry by ``web/vendor.py``, pinned by
``web/package-lock.json``; ``vendor/manifest.json`` records what was
copied).  The API serves them (:mod:`instrumentd.station.api._page`); the
page needs no network beyond the station.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

__all__ = ["STATIC"]

#: The directory of the page's files.
STATIC: Final = Path(__file__).resolve().parent / "static"
