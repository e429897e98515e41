"""
The station's web page: its size, time to first paint, and CPU (the
browser's and the station's) while it follows the demo station live.

Starts the demo station (``twistd -n instrumentd``, its API on a free
loopback port, data in a temporary directory) and headless Chromium
(Debian's ``chromium`` and ``chromium-driver``, through selenium), loads
the page a few times with the CPU as it is and slowed down by Chromium's
CPU throttling (a rough stand-in for a low-power controller), then keeps it
open for a while and reads the processes' CPU time from ``/proc``.  Prints
tables.

With ``--screenshots DIR`` it also saves the screenshots that
``doc/web.md`` shows (the main view, the terminal in direct access).

    python bench/web_page.py [--loads 5] [--watch 60] [--screenshots doc/images]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import urllib.request
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from instrumentd.station.web import STATIC
from tests.browser import start_browser, twistd

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """
    User and system CPU seconds of ``pid`` and its children that are
    still running (from /proc).
    """
    total = 0.0
    for each in [pid, *descendants(pid)]:
        try:
            with open(f"/proc/{each}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / _TICKS
    return total


def descendants(pid: int) -> list[int]:
    """
    Every process below ``pid``.
    """
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    found: list[int] = []
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, up in parents.items() if up == parent]
        found.extend(children)
        frontier.extend(children)
    return found


def load(driver: Any, url: str) -> dict[str, float]:
    """
    Load the page once (cache off) and wait until it has read the station;
    its paint and load times and bytes.
    """
    driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
    driver.get("about:blank")
    driver.get(url)
    deadline = time.monotonic() + 60
    while not driver.execute_script("return document.body.dataset.ready === 'true'"):
        if time.monotonic() > deadline:
            raise RuntimeError("the page did not start")
        time.sleep(0.05)
    timing: dict[str, float] = driver.execute_script(
        """
        const paint = {};
        for (const e of performance.getEntriesByType('paint')) paint[e.name] = e.startTime;
        const nav = performance.getEntriesByType('navigation')[0];
        const bytes = performance.getEntriesByType('resource')
          .filter(e => !e.name.includes('/api/'))
          .reduce((a, e) => a + e.encodedBodySize, nav.encodedBodySize);
        return {
          first_paint: paint['first-paint'],
          first_contentful_paint: paint['first-contentful-paint'],
          load: nav.loadEventEnd,
          bytes: bytes,
        };
        """
    )
    return timing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loads", type=int, default=5, help="page loads per row")
    parser.add_argument("--watch", type=float, default=60.0, help="seconds to follow")
    parser.add_argument("--screenshots", help="save doc/web.md's screenshots here")
    options = parser.parse_args()

    print("Files of the page (bytes, uncompressed)")
    print(f"{'file':<45} {'bytes':>9}")
    initial = [
        "index.html",
        "app.js",
        "style.css",
        "vendor/uplot/uPlot.iife.min.js",
        "vendor/uplot/uPlot.min.css",
    ]
    lazy = ["vendor/@xterm/xterm/xterm.js", "vendor/@xterm/xterm/xterm.css"]
    for name in initial + lazy:
        print(f"{name:<45} {(STATIC / name).stat().st_size:>9}")
    first = sum((STATIC / name).stat().st_size for name in initial)
    terminal = sum((STATIC / name).stat().st_size for name in lazy)
    print(f"{'the page as it opens':<45} {first:>9}")
    print(f"{'added when the terminal is first opened':<45} {terminal:>9}")
    print()

    directory = tempfile.mkdtemp(prefix="instrumentd-bench-web-")
    station = twistd(
        "--api",
        "tcp:0:interface=127.0.0.1",
        "--data-dir",
        directory + "/data",
        cwd=directory,
    )
    driver = None
    try:
        url = station.wait_for(r"API listening on (http://\S+)/api").group(1) + "/"
        station.wait_for("SBE37-DEMO: running, AUTOSAMPLE")
        station.wait_for("OPTODE-DEMO: running, AUTOSAMPLE")
        driver = start_browser()
        browser_pid = driver.service.process.pid

        print(
            f"Loading {url} ({options.loads} loads each, cache off; ms from navigation start)"
        )
        print(
            f"{'CPU':<14} {'first paint':>12} {'first contentful':>17} {'load event':>11} {'bytes':>8}"
        )
        for rate in (1, 4):
            driver.execute_cdp_cmd("Emulation.setCPUThrottlingRate", {"rate": rate})
            runs = [load(driver, url) for _ in range(options.loads)]
            runs.sort(key=lambda run: run["first_contentful_paint"])
            median = runs[len(runs) // 2]
            label = "as is" if rate == 1 else f"{rate}x slower"
            print(
                f"{label:<14} {median['first_paint']:>12.0f} {median['first_contentful_paint']:>17.0f} "
                f"{median['load']:>11.0f} {median['bytes']:>8.0f}"
            )
        driver.execute_cdp_cmd("Emulation.setCPUThrottlingRate", {"rate": 1})
        print()

        load(driver, url + "#SBE37-DEMO")
        station_before = cpu_seconds(station.process.pid)
        browser_before = cpu_seconds(browser_pid)
        start = time.monotonic()
        time.sleep(options.watch)
        elapsed = time.monotonic() - start
        station_used = cpu_seconds(station.process.pid) - station_before
        browser_used = cpu_seconds(browser_pid) - browser_before
        print(
            f"Following the demo live for {elapsed:.0f} s (SBE 37 every 5 s, optode, plots of the SBE 37)"
        )
        print(f"{'process':<40} {'CPU s':>7} {'CPU %':>6}")
        print(
            f"{'Chromium (every process of it)':<40} {browser_used:>7.2f} {100 * browser_used / elapsed:>6.1f}"
        )
        print(
            f"{'the station with its port agents':<40} {station_used:>7.2f} {100 * station_used / elapsed:>6.1f}"
        )
        driver.get("about:blank")
        before = cpu_seconds(station.process.pid)
        start = time.monotonic()
        time.sleep(options.watch)
        used = cpu_seconds(station.process.pid) - before
        elapsed = time.monotonic() - start
        print(
            f"{'the station, no page open':<40} {used:>7.2f} {100 * used / elapsed:>6.1f}"
        )

        if options.screenshots:
            screenshots(driver, url, options.screenshots)
    finally:
        if driver is not None:
            driver.quit()
        station.stop()


def screenshots(driver: Any, url: str, where: str) -> None:
    """
    The screenshots of doc/web.md: the page after a minute of samples, and
    the terminal in direct access after ``DS``.
    """
    os.makedirs(where, exist_ok=True)
    driver.set_window_size(1280, 1400)
    load(driver, url + "#SBE37-DEMO")
    time.sleep(60)
    driver.save_screenshot(os.path.join(where, "web-station.png"))
    token_free = urllib.request.Request(
        url + "api/instruments/SBE37-DEMO/commands/stop_autosample", method="POST"
    )
    urllib.request.urlopen(token_free, timeout=60).close()
    driver.find_element("id", "da-enter").click()
    deadline = time.monotonic() + 60
    while not driver.find_elements("css selector", ".xterm-helper-textarea"):
        if time.monotonic() > deadline:
            raise RuntimeError("no terminal")
        time.sleep(0.1)
    time.sleep(1)
    driver.find_element("css selector", ".xterm-helper-textarea").send_keys("DS\n")
    time.sleep(3)
    element = driver.find_element("css selector", "#detail .columns")
    element.screenshot(os.path.join(where, "web-direct-access.png"))
    driver.find_element("id", "da-leave").click()
    time.sleep(5)
    start_again = urllib.request.Request(
        url + "api/instruments/SBE37-DEMO/commands/start_autosample", method="POST"
    )
    urllib.request.urlopen(start_again, timeout=60).close()
    print(f"screenshots in {where}")


if __name__ == "__main__":
    main()
