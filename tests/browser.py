"""
What the browser tests and ``bench/web_page.py`` share: a station (or
simulator) in a child process whose log lines can be waited for, and
headless Chromium driven through WebDriver (selenium, with Debian's
``chromium`` and ``chromium-driver``).

The processes are plain ``subprocess`` children read by a thread, not
reactor processes, so that one station and one browser can serve every
test of a module (trial's reactor must be clean after each test).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from twisted.trial.unittest import SkipTest

#: twistd has no __main__; run its entry point with this interpreter.
TWISTD = (
    "import sys; sys.argv[0] = 'twistd'; from twisted.scripts.twistd import run; run()"
)
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

#: Chromium as root in a closed network: no sandbox, no GPU, and none of
#: its own connections to the outside (they are refused here, and slow it).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


class LoggedProcess:
    """
    A child process whose output (stdout and stderr) is read line by line
    by a thread, so a test can wait for a line.

    :param argv: the command.
    :param cwd: its working directory.
    """

    def __init__(self, argv: list[str], cwd: str) -> None:
        self.output: list[str] = []
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            argv,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.output.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float = 90.0) -> re.Match[str]:
        """
        Wait until a line matches ``pattern`` (or one already has).

        :raises AssertionError: if the process ends or ``timeout`` passes
            first, with its output.
        """
        compiled = re.compile(pattern)
        seen = 0

        def found() -> re.Match[str] | None:
            nonlocal seen
            while seen < len(self.output):
                match = compiled.search(self.output[seen])
                seen += 1
                if match is not None:
                    return match
            return None

        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                match = found()
                remaining = deadline - time.monotonic()
                if match is not None or not self._reader.is_alive() or remaining <= 0:
                    break
                self._changed.wait(remaining)
        if match is None:
            raise AssertionError(
                f"no line matched {pattern!r}; output:\n{''.join(self.output)[-6000:]}"
            )
        return match

    def stop(self, kill: bool = False) -> None:
        """
        End the process (TERM, or KILL) and wait for it.
        """
        if self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(10)


def twistd(*arguments: str, cwd: str) -> LoggedProcess:
    """
    ``twistd -n --pidfile= instrumentd ...`` with this interpreter.
    """
    argv = [sys.executable, "-u", "-c", TWISTD, "-n", "--pidfile=", "instrumentd"]
    return LoggedProcess([*argv, *arguments], cwd)


def require_browser() -> None:
    """
    Make sure Chromium, its WebDriver and selenium are here: without them
    the browser tests are skipped on a developer's machine, and fail in CI
    (``CI`` set), which must run them.

    :raises SkipTest: outside CI.
    :raises AssertionError: in CI.
    """
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(path)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package (pip install -e '.[test]')")
    if not missing:
        return
    message = (
        f"the browser tests need {', '.join(missing)} "
        "(apt-get install chromium chromium-driver)"
    )
    if os.environ.get("CI"):
        raise AssertionError(message)
    raise SkipTest(message)


def start_browser(width: int = 1280, height: int = 1000) -> Any:
    """
    Headless Chromium with a fresh profile, its console kept.

    :returns: a selenium ``WebDriver``; ``quit()`` it.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    profile = tempfile.mkdtemp(prefix="instrumentd-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    quit_driver = driver.quit

    def quit() -> None:
        try:
            quit_driver()
        finally:
            shutil.rmtree(profile, ignore_errors=True)

    driver.quit = quit
    return driver
