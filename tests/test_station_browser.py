"""
The station's web page in a real browser: headless Chromium, driven over
WebDriver, against a real station process.

One station and one browser serve every test here (starting them is most
of the time these tests take): the station has the demo's two instruments
(a sample every 5 seconds from the SBE 37) and
``CTD-LINK``, an SBE 37 reached over TCP whose simulator, a process of its
own, the link test kills.  The station requires a token for changes.

Waits are on what the page shows (selenium's ``WebDriverWait``, with
generous timeouts) and on the lines the station logs.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from typing import Any, ClassVar

from twisted.trial.unittest import SynchronousTestCase

from tests.browser import LoggedProcess, require_browser, start_browser, twistd

TOKEN = "browser-token"
DRIVER = "instrumentd.instruments.seabird.sbe37smp.driver:SBE37Protocol"
#: Generous: the machine may be busy.
WAIT = 60.0


def station_config(directory: str, simulator_port: int) -> str:
    """
    The test station's configuration.
    """
    return f"""
[station]
data_dir = "{directory}/data"

[api]
token_file = "{directory}/token"

[[instruments]]
name = "SBE37-DEMO"
driver = "{DRIVER}"
autosample = true
parameters = {{ INTERVAL = 5 }}
connection = {{ type = "simulator", model = "sbe37" }}
port_agent = {{ mode = "child" }}

[[instruments]]
name = "OPTODE-DEMO"
driver = "instrumentd.instruments.aanderaa.optode.driver:OptodeProtocol"
autosample = true
connection = {{ type = "simulator", model = "optode" }}
port_agent = {{ mode = "child" }}

[[instruments]]
name = "CTD-LINK"
driver = "{DRIVER}"
connection = {{ type = "tcp", host = "127.0.0.1", port = {simulator_port} }}
port_agent = {{ mode = "child", disconnect_grace = 0.5, max_reconnect_delay = 1 }}
"""


class _Shared:
    """
    The station, the CTD-LINK simulator and the browser, started for the
    first test and stopped after the last (or when the process exits).
    """

    def __init__(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="instrumentd-browser-")
        self.processes: list[LoggedProcess] = []
        self.driver: Any = None
        atexit.register(self.close)
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        with open(os.path.join(self.directory, "token"), "w") as f:
            f.write(TOKEN + "\n")
        self.simulator = twistd(
            "simulate",
            "sbe37",
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--baud",
            "0",
            cwd=self.directory,
        )
        self.processes.append(self.simulator)
        port = int(self.simulator.wait_for(r"listening on 127\.0\.0\.1:(\d+)").group(1))
        config = os.path.join(self.directory, "station.toml")
        with open(config, "w") as f:
            f.write(station_config(self.directory, port))
        self.station = twistd(
            "--config",
            config,
            "--api",
            "tcp:0:interface=127.0.0.1",
            cwd=self.directory,
        )
        self.processes.append(self.station)
        self.url = self.station.wait_for(r"API listening on (http://\S+)/api").group(1)
        self.driver = start_browser()
        for line in [
            "SBE37-DEMO: running, AUTOSAMPLE",
            "OPTODE-DEMO: running, AUTOSAMPLE",
            "CTD-LINK: running, COMMAND",
        ]:
            self.station.wait_for(line)

    def close(self) -> None:
        if self.driver is not None:
            self.driver.quit()
            self.driver = None
        for process in reversed(self.processes):
            process.stop()
        self.processes = []
        shutil.rmtree(self.directory, ignore_errors=True)


class BrowserTests(SynchronousTestCase):
    """
    The page against a real station, in headless Chromium.
    """

    shared: ClassVar[_Shared | None] = None
    remaining: ClassVar[set[str]] = set()

    def setUp(self) -> None:
        require_browser()
        cls = type(self)
        if cls.shared is None:
            cls.remaining = {name for name in dir(cls) if name.startswith("test_")}
            cls.shared = _Shared()
        self.addCleanup(self._done)
        self.station = cls.shared
        self.driver = cls.shared.driver
        self.url = cls.shared.url

    def _done(self) -> None:
        cls = type(self)
        cls.remaining.discard(self._testMethodName)
        if not cls.remaining and cls.shared is not None:
            cls.shared.close()
            cls.shared = None

    # Helpers.

    def until(self, condition: Any, message: Any = "") -> Any:
        """
        Wait until ``condition(driver)`` is true; on a timeout, fail with
        ``message()`` and the browser's console.
        """
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait

        try:
            return WebDriverWait(self.driver, WAIT).until(condition)
        except TimeoutException:
            said = message() if callable(message) else message
            console = self.driver.get_log("browser")
            self.fail(f"{said}; the browser's console: {console}")

    def open_page(self, *, token: bool) -> None:
        """
        Load the page afresh for SBE37-DEMO, with the token already given
        this session or not, and wait until it has read the station.
        """
        self.driver.get(self.url + "/static/style.css")
        self.driver.execute_script(
            "sessionStorage.clear();"
            + (
                f"sessionStorage.setItem('instrumentd.token', '{TOKEN}');"
                if token
                else ""
            )
        )
        self.driver.get_log("browser")
        self.driver.get(self.url + "/#SBE37-DEMO")
        self.until(
            lambda d: d.execute_script("return document.body.dataset.ready === 'true'"),
            "the page did not start",
        )
        self.wait_cell("SBE37-DEMO", "state", lambda text: text not in ("", "—"))

    def cell(self, instrument: str, column: str) -> str:
        text: str = self.driver.execute_script(
            "const row = document.querySelector(`tr[data-instrument='${arguments[0]}']`);"
            "return row ? row.querySelector('.col-' + arguments[1]).textContent : '';",
            instrument,
            column,
        )
        return text

    def wait_cell(self, instrument: str, column: str, test: Any) -> str:
        """
        Wait until the table's cell passes ``test``; its text.
        """
        self.until(
            lambda d: test(self.cell(instrument, column)),
            lambda: f"{instrument}'s {column} stayed {self.cell(instrument, column)!r}",
        )
        return self.cell(instrument, column)

    def text_of(self, selector: str) -> str:
        text: str = self.driver.execute_script(
            "const node = document.querySelector(arguments[0]);"
            "return node && !node.hidden ? node.textContent : '';",
            selector,
        )
        return text

    def wait_text(self, selector: str, test: Any) -> str:
        self.until(
            lambda d: test(self.text_of(selector)),
            lambda: f"{selector} stayed {self.text_of(selector)!r}",
        )
        return self.text_of(selector)

    def click(self, selector: str) -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions

        self.until(
            expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, selector)),
            f"nothing to click at {selector}",
        ).click()

    def command(self, name: str) -> str:
        """
        Click a command's button; the result line once it has one.
        """
        self.click(f"button[data-command='{name}']")
        return self.wait_text(
            "#command-result", lambda text: text and not text.endswith("running…")
        )

    def dialog_open(self) -> bool:
        return bool(
            self.driver.execute_script(
                "return document.getElementById('token-dialog').open"
            )
        )

    def api_error(
        self, method: str, path: str, body: object, token: str | None = TOKEN
    ) -> dict[str, Any]:
        """
        What the API itself answers to a request that fails.
        """
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Bearer {token}"} if token else {},
        )
        try:
            urllib.request.urlopen(request, timeout=WAIT)
        except urllib.error.HTTPError as error:
            answer: dict[str, Any] = json.loads(error.read())["error"]
            return answer
        raise AssertionError(f"{method} {path} {body} was accepted")

    def to_command_mode(self) -> None:
        self.command("stop_autosample")
        self.wait_cell("SBE37-DEMO", "state", lambda text: text == "COMMAND")

    def back_to_autosample(self) -> None:
        """
        Put SBE37-DEMO back in AUTOSAMPLE through the API, whatever a
        failed test left it in, so the next test finds it as the demo is.
        """
        api = "/api/instruments/SBE37-DEMO"
        for method, path in [
            ("DELETE", api + "/direct-access"),
            ("POST", api + "/commands/start_autosample"),
        ]:
            request = urllib.request.Request(
                self.url + path,
                method=method,
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            try:
                urllib.request.urlopen(request, timeout=WAIT).close()
            except urllib.error.HTTPError as error:
                error.close()  # not in that state: nothing to undo
        self.wait_cell("SBE37-DEMO", "state", lambda text: text == "AUTOSAMPLE")

    # The behaviours.

    def test_loads(self) -> None:
        """
        The page loads with no console errors, everything it loads comes
        from the station, and the table shows each instrument, the SBE 37
        in AUTOSAMPLE with its link up and its port agent's counters.
        """
        self.open_page(token=False)
        self.wait_cell("SBE37-DEMO", "state", lambda text: text == "AUTOSAMPLE")
        self.assertEqual(self.cell("SBE37-DEMO", "link"), "up")
        self.wait_cell("SBE37-DEMO", "bytes", lambda text: text[:1].isdigit())
        self.wait_cell("SBE37-DEMO", "sample", lambda text: text.startswith("20"))
        self.wait_cell("OPTODE-DEMO", "state", lambda text: text == "AUTOSAMPLE")
        errors = [
            entry
            for entry in self.driver.get_log("browser")
            if entry["level"] == "SEVERE"
        ]
        self.assertEqual(errors, [])
        loaded = self.driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        )
        self.assertTrue(loaded)
        for name in loaded:
            self.assertTrue(name.startswith(self.url + "/"), name)

    def test_plotGainsPoints(self) -> None:
        """
        The SBE 37's temperature plot, with its units, gains points as
        samples arrive, and the latest record shows the sample.
        """
        self.open_page(token=False)
        plot = ".plot[data-stream='ctdpf_sample'][data-field='temperature']"
        points = self.driver.execute_script

        def count() -> int:
            return int(
                points(
                    "const n = document.querySelector(arguments[0]);"
                    "return n ? Number(n.dataset.points) : 0;",
                    plot,
                )
            )

        self.until(lambda d: count() >= 1, "the plot has no point")
        first = count()
        self.until(lambda d: count() > first, lambda: f"the plot stayed at {count()}")
        self.assertIn("degree_Celsius", self.text_of(plot + " .u-title"))
        latest = self.wait_text("#latest", lambda text: "temperature" in text)
        self.assertIn("ctdpf_sample", latest)

    def test_linkDown(self) -> None:
        """
        When CTD-LINK's simulator stops, the table shows its link down,
        with the port agent's reason, within seconds, with no reload.
        """
        self.open_page(token=False)
        self.assertEqual(self.wait_cell("CTD-LINK", "link", bool), "up")
        self.station.simulator.stop(kill=True)
        link = self.wait_cell("CTD-LINK", "link", lambda text: "refused" in text)
        self.assertRegex(
            link,
            r"^down: the instrument link is down since "
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: connection refused$",
        )
        self.assertIn(
            "link down", self.wait_cell("CTD-LINK", "error", lambda t: t != "—")
        )

    def test_commandNeedsToken(self) -> None:
        """
        A command button asks for the token: refused without it with the
        API's own message, run with it; the token is kept for the session,
        so the next command does not ask again.
        """
        self.open_page(token=False)
        without = self.api_error(
            "POST", "/api/instruments/SBE37-DEMO/commands/acquire_status", {}, None
        )
        self.click("button[data-command='acquire_status']")
        self.wait_text("#token-reason", bool)
        self.assertTrue(self.dialog_open())
        self.click("#token-cancel")
        refused = self.wait_text("#command-result", lambda text: "token" in text)
        # The API's own words, as any client gets them without a token.
        self.assertEqual(without["code"], "UNAUTHORIZED")
        self.assertEqual(refused, "acquire_status: " + without["message"])

        self.click("button[data-command='acquire_status']")
        self.wait_text("#token-reason", bool)
        self.driver.find_element("id", "token-input").send_keys(TOKEN)
        self.click("#token-ok")
        done = self.wait_text("#command-result", lambda text: "state" in text)
        self.assertRegex(
            done, r"^acquire_status: \{.*\"serial_number\".*\(state AUTOSAMPLE\)$"
        )
        self.assertEqual(self.text_of("#token-status"), "token given for this session")

        self.driver.execute_script(
            "document.getElementById('command-result').textContent = ''"
        )
        again = self.command("acquire_status")
        self.assertFalse(self.dialog_open())
        self.assertIn("(state AUTOSAMPLE)", again)

    def test_badParameter(self) -> None:
        """
        A parameter value the API refuses shows the API's message.
        """
        self.open_page(token=True)
        self.to_command_mode()
        try:
            expected = self.api_error(
                "PATCH", "/api/instruments/SBE37-DEMO/parameters", {"INTERVAL": 1}
            )
            from selenium.webdriver.support.ui import Select

            self.wait_text("#parameters", lambda text: "INTERVAL" in text)
            Select(self.driver.find_element("id", "parameter-name")).select_by_value(
                "INTERVAL"
            )
            field = self.driver.find_element("id", "parameter-value")
            field.clear()
            field.send_keys("1")
            self.click("#parameter-form button[type='submit']")
            shown = self.wait_text("#parameter-error", bool)
            self.assertEqual(shown, expected["message"])
            self.assertEqual(shown, "parameter INTERVAL: 1 is below the minimum 5 s")
        finally:
            self.back_to_autosample()

    def test_terminal(self) -> None:
        """
        In direct access, typing C{DS} and Enter in the page's terminal
        sends it, and the instrument's status dump shows in the terminal.
        """
        self.open_page(token=True)
        self.to_command_mode()
        try:
            self.click("#da-enter")
            self.wait_cell("SBE37-DEMO", "state", lambda text: text == "DIRECT_ACCESS")
            self.until(
                lambda d: d.find_elements("css selector", ".xterm-helper-textarea"),
                "no terminal",
            )
            keys = self.driver.find_element("css selector", ".xterm-helper-textarea")
            keys.send_keys("DS\n")
            shown = self.wait_text(
                "#terminal .xterm-rows", lambda text: "SERIAL NO." in text
            )
            self.assertIn("sample interval = 5 seconds", shown)
            self.click("#da-leave")
            self.wait_cell("SBE37-DEMO", "state", lambda text: text == "COMMAND")
        finally:
            self.back_to_autosample()
