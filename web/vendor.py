#!/usr/bin/env python3
"""
Copy the station page's JavaScript and CSS libraries from the npm registry
into the Python package, pinned by ``web/package-lock.json``.

Run it from anywhere after changing ``web/package.json`` (then commit the
lock file, the copied files and their manifest)::

    python3 web/vendor.py

It runs ``npm ci`` (the versions and tarball checksums of the lock file,
no install scripts) in ``web/``, copies the files the page loads (and each
library's licence) to ``instrumentd/station/web/static/vendor/``, and writes
``vendor/manifest.json``: for each package its locked version and tarball
integrity, and the SHA-256 of each copied file.  ``tests.test_station_web``
checks the shipped files against that manifest and the manifest against
the lock file.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENDOR = HERE.parent / "instrumentd" / "station" / "web" / "static" / "vendor"

#: For each npm package, the files the page needs: path in the package ->
#: name under vendor/<package>/.
FILES: dict[str, dict[str, str]] = {
    "uplot": {
        "dist/uPlot.iife.min.js": "uPlot.iife.min.js",
        "dist/uPlot.min.css": "uPlot.min.css",
        "LICENSE": "LICENSE",
    },
    "@xterm/xterm": {
        "lib/xterm.js": "xterm.js",
        "css/xterm.css": "xterm.css",
        "LICENSE": "LICENSE",
    },
}


def main() -> None:
    """
    Install the locked packages and copy their files into the package.
    """
    subprocess.run(
        ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
        cwd=HERE,
        check=True,
    )
    lock = json.loads((HERE / "package-lock.json").read_text())["packages"]
    if VENDOR.exists():
        shutil.rmtree(VENDOR)
    manifest: dict[str, object] = {}
    for package, files in FILES.items():
        locked = lock[f"node_modules/{package}"]
        source = HERE / "node_modules" / package
        target = VENDOR / package
        target.mkdir(parents=True)
        hashes = {}
        for inside, name in files.items():
            data = (source / inside).read_bytes()
            (target / name).write_bytes(data)
            hashes[name] = hashlib.sha256(data).hexdigest()
        manifest[package] = {
            "version": locked["version"],
            "integrity": locked["integrity"],
            "files": hashes,
        }
    (VENDOR / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()
