"""
Tests for L{instrumentd.station.config} and L{instrumentd.station.demo}: the
station's TOML configuration is checked in full before anything starts, and
every problem names the file, the key path and what is wrong.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from instrumentd.interfaces import IInstrumentDriver
from instrumentd.station.config import (
    DEFAULT_API,
    SECTIONS,
    ConfigError,
    StationConfig,
    load_config,
    parse_config,
    parse_toml,
    reference,
)
from instrumentd.station.config.schema import Section
from instrumentd.station.demo import DEMO_CONFIG, DEMO_SOURCE, demo_config


def all_sections() -> list[Section]:
    """
    Every declared section of the configuration.
    """
    return list(SECTIONS)


EXAMPLE = Path(__file__).resolve().parent.parent / "doc" / "examples" / "station.toml"
STATION_DOC = Path(__file__).resolve().parent.parent / "doc" / "station.md"

TOY = "tests.toyinstrument:ToyProtocol"

#: One valid instrument, for tests to add one wrong key to.
GOOD = f"""
[[instruments]]
name = "toy1"
driver = "{TOY}"
connection = {{ type = "tcp", host = "127.0.0.1", port = 4001 }}
"""


@implementer(IInstrumentDriver)
class CommandlessDriver:
    """
    A driver class (not a protocol) offering no start_autosample command.
    """

    def __init__(self, connection: object, *, events: object, clock: object) -> None:
        self.connection = connection

    def set_init_params(self, config: object) -> None:
        """
        Accept any startup configuration.
        """

    def get_config_metadata(self) -> dict[str, object]:
        """
        One command, and not start_autosample.
        """
        return {"commands": {"acquire_sample": {}}, "parameters": {}}


@implementer(IInstrumentDriver)
class PositionalOnlyDriver:
    """
    A driver class the station cannot build: it takes no events or clock.
    """

    def __init__(self, connection: object) -> None:
        self.connection = connection


class ConfigCheckTests(SynchronousTestCase):
    """
    Helpers: write a config to a file, load it, and look at the problems.
    """

    def write(self, text: str) -> str:
        """
        Write C{text} to a new file.

        :returns: its path.
        """
        path = self.mktemp() + ".toml"
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def load(self, text: str, **overrides: Any) -> StationConfig:
        """
        Load C{text} as a config file.
        """
        return load_config(self.write(text), **overrides)

    def problems(self, text: str, **overrides: Any) -> dict[str, str]:
        """
        Load C{text}, which must be refused.

        :returns: key path → problem.
        """
        path = self.write(text)
        error = self.assertRaises(ConfigError, load_config, path, **overrides)
        self.assertEqual(error.source, path)
        for line in str(error).splitlines()[1 if len(error.problems) > 1 else 0 :]:
            self.assertTrue(line.startswith(f"{path}: "), line)
        return dict(error.problems)

    def assertProblem(self, text: str, key: str, *fragments: str) -> str:
        """
        C{text} is refused with a problem at C{key} whose message holds
        every fragment.

        :returns: the message.
        """
        found = self.problems(text)
        self.assertIn(key, found, f"no problem at {key}; problems: {found}")
        for fragment in fragments:
            self.assertIn(fragment, found[key])
        return found[key]


class FileTests(ConfigCheckTests):
    """
    The file itself: readable, UTF-8, TOML.
    """

    def test_missingFile(self) -> None:
        """
        A file that cannot be read is named, with the reason.
        """
        path = self.mktemp()
        error = self.assertRaises(ConfigError, load_config, path)
        self.assertEqual(
            error.problems, [("(file)", "cannot read it: No such file or directory")]
        )
        self.assertTrue(str(error).startswith(path + ": "))

    def test_notUTF8(self) -> None:
        """
        A file that is not UTF-8 text is refused.
        """
        path = self.mktemp()
        Path(path).write_bytes(b"name = '\xff'\n")
        error = self.assertRaises(ConfigError, load_config, path)
        self.assertIn("not UTF-8", str(error))

    def test_notTOML(self) -> None:
        """
        TOML syntax errors give the line and column.
        """
        found = self.problems("[[instruments]\nname = 1\n")
        self.assertIn("not valid TOML", found["(file)"])
        self.assertIn("line 1", found["(file)"])

    def test_everyProblemAtOnce(self) -> None:
        """
        Every problem is listed, each on its own line naming the file, and
        the heading says nothing was started.
        """
        path = self.write(
            GOOD.replace("port = 4001", "port = 0")
            + '\n[api]\nlisten = "tcp:notaport"\n[station]\ndata_dir = 5\n'
        )
        error = self.assertRaises(ConfigError, load_config, path)
        keys = [key for key, _ in error.problems]
        self.assertEqual(
            sorted(keys),
            ["api.listen", "instruments[0].connection.port", "station.data_dir"],
        )
        lines = str(error).splitlines()
        self.assertIn("3 problems; nothing was started", lines[0])
        self.assertEqual(len(lines), 4)


class TopLevelTests(ConfigCheckTests):
    """
    The top-level tables: station, api, instruments, unknown keys.
    """

    def test_noInstruments(self) -> None:
        """
        A station needs at least one instrument.
        """
        self.assertProblem("[station]\n", "instruments", "at least one")
        self.assertProblem("instruments = []\n", "instruments", "at least one")
        self.assertProblem("instruments = 3\n", "instruments", "array of tables")

    def test_instrumentNotATable(self) -> None:
        """
        Each entry of instruments must be a table.
        """
        self.assertProblem("instruments = [1]\n", "instruments[0]", "must be a table")

    def test_unknownKey(self) -> None:
        """
        An unknown key is named with the valid ones, and a close match is
        suggested.
        """
        message = self.assertProblem(
            GOOD + "[apii]\nlisten = 'tcp:0'\n",
            "apii",
            "unknown key",
            "did you mean 'api'?",
            "station, api, sinks, instruments",
        )
        self.assertNotIn("apii", message.split(";")[1])

    def test_unknownNestedKey(self) -> None:
        """
        Unknown keys inside an instrument name their full path.
        """
        self.assertProblem(
            GOOD.replace("driver =", 'drvier = "x"\ndriver ='),
            "instruments[0].drvier",
            "did you mean 'driver'?",
        )

    def test_wrongTypes(self) -> None:
        """
        A value of the wrong type is refused with the type expected and the
        one given.
        """
        self.assertProblem(
            GOOD + "[station]\ndata_dir = 5\n",
            "station.data_dir",
            "must be a string, not an integer",
        )
        self.assertProblem(
            "station = 'x'\n" + GOOD, "station", "must be a table, not a string"
        )

    def test_badAPIEndpoint(self) -> None:
        """
        The API's endpoint string is parsed now; an unknown type lists the
        known ones.
        """
        self.assertProblem(
            GOOD + "[api]\nlisten = 'tpc:8700'\n",
            "api.listen",
            "unknown endpoint type 'tpc'",
            "tcp",
        )

    def test_badAPIOverride(self) -> None:
        """
        A bad --api is named as such.
        """
        found = self.problems(GOOD, api="nonsense:1")
        self.assertIn("api.--api", found)

    def test_defaults(self) -> None:
        """
        Without station and api tables: the API on loopback port 8700, data
        under ./instrumentd-data, no token, and one JSON-lines sink under
        the data directory that every instrument uses.
        """
        config = self.load(GOOD)
        self.assertEqual(config.api, DEFAULT_API)
        self.assertEqual(config.api, "tcp:8700:interface=127.0.0.1")
        self.assertEqual(config.data_dir, "instrumentd-data")
        self.assertIsNone(config.token)
        self.assertEqual(list(config.sinks), ["files"])
        self.assertEqual(config.sinks["files"].type, "jsonlines")
        self.assertEqual(
            config.sinks["files"].directory,
            os.path.join("instrumentd-data", "samples"),
        )
        [instrument] = config.instruments
        self.assertEqual(instrument.sinks, ("files",))
        assert instrument.port_agent is not None
        self.assertEqual(instrument.port_agent.mode, "child")
        self.assertEqual(
            instrument.port_agent.datalog_dir,
            os.path.join("instrumentd-data", "datalog"),
        )

    def test_overrides(self) -> None:
        """
        --api and --data-dir override the file, and the data directory's
        defaults follow --data-dir.
        """
        config = self.load(
            GOOD + "[api]\nlisten = 'tcp:9000'\n",
            api="tcp:0:interface=127.0.0.1",
            data_dir="/srv/data",
        )
        self.assertEqual(config.api, "tcp:0:interface=127.0.0.1")
        self.assertEqual(config.data_dir, "/srv/data")
        self.assertEqual(config.sinks["files"].directory, "/srv/data/samples")
        port_agent = config.instruments[0].port_agent
        assert port_agent is not None
        self.assertEqual(port_agent.datalog_dir, "/srv/data/datalog")
        self.assertEqual(port_agent.log_file, "/srv/data/logs/port-agent-toy1.log")


class TokenTests(ConfigCheckTests):
    """
    The API token file.
    """

    def test_tokenRead(self) -> None:
        """
        The token is the file's text without surrounding white space.
        """
        token_file = self.write("  s3cret-token\n")
        config = self.load(GOOD + f"[api]\ntoken_file = '{token_file}'\n")
        self.assertEqual(config.token, "s3cret-token")
        self.assertEqual(config.token_file, token_file)

    def test_tokenFileOverride(self) -> None:
        """
        --token-file overrides the config's.
        """
        token_file = self.write("other\n")
        config = self.load(
            GOOD + "[api]\ntoken_file = '/nonexistent'\n", token_file=token_file
        )
        self.assertEqual(config.token, "other")

    def test_tokenFileMissing(self) -> None:
        """
        A token file that cannot be read is refused, with the reason.
        """
        self.assertProblem(
            GOOD + "[api]\ntoken_file = '/nonexistent/token'\n",
            "api.token_file",
            "cannot read the token file '/nonexistent/token'",
            "No such file",
        )

    def test_tokenFileEmpty(self) -> None:
        """
        An empty token file is refused.
        """
        token_file = self.write("\n \n")
        self.assertProblem(
            GOOD + f"[api]\ntoken_file = '{token_file}'\n", "api.token_file", "empty"
        )

    def test_tokenWithSpaces(self) -> None:
        """
        A token with white space inside cannot go in a header; refused.
        """
        token_file = self.write("two words\n")
        self.assertProblem(
            GOOD + f"[api]\ntoken_file = '{token_file}'\n",
            "api.token_file",
            "white space",
        )


class SinkTests(ConfigCheckTests):
    """
    The sinks table and the instruments' sinks lists.
    """

    def test_sinks(self) -> None:
        """
        Sinks of both kinds, with their settings; an instrument sends to
        the sinks it lists.
        """
        config = self.load(
            GOOD.replace("connection", 'sinks = ["ingest"]\nconnection')
            + """
[sinks.files]
type = "jsonlines"
directory = "/srv/samples"
flush_interval = 0.5
max_open_files = 8
[sinks.ingest]
type = "http"
url = "https://ingest.example.org/p"
batch_size = 10
headers = { Authorization = "Bearer x" }
"""
        )
        files, ingest = config.sinks["files"], config.sinks["ingest"]
        self.assertEqual(
            (files.directory, files.flush_interval, files.max_open_files),
            ("/srv/samples", 0.5, 8),
        )
        self.assertEqual(ingest.url, "https://ingest.example.org/p")
        self.assertEqual(ingest.batch_size, 10)
        self.assertEqual(
            ingest.spool_dir, os.path.join("instrumentd-data", "spool", "ingest")
        )
        self.assertEqual(dict(ingest.headers), {"Authorization": "Bearer x"})
        self.assertEqual(config.instruments[0].sinks, ("ingest",))

    def test_startup(self) -> None:
        """
        The start-up window and timeout default, are read, and are checked.
        """
        config = self.load(GOOD)
        self.assertEqual((config.startup_window, config.startup_timeout), (200, 30.0))
        config = self.load(
            "[station]\nstartup_window = 5\nstartup_timeout = 2\n" + GOOD
        )
        self.assertEqual((config.startup_window, config.startup_timeout), (5, 2.0))
        self.assertProblem(
            "[station]\nstartup_window = 0\n" + GOOD, "station.startup_window", "0"
        )

    def test_openFilesFitInstruments(self) -> None:
        """
        Unless configured, a JSON-lines sink keeps open one file per
        instrument writing to it and 64 more, within the bound; its idle
        close is configurable, in range.
        """
        config = self.load(GOOD + '[sinks.files]\ntype = "jsonlines"\n')
        files = config.sinks["files"]
        self.assertIsNone(files.max_open_files)
        self.assertEqual(files.idle_close, 60.0)
        self.assertEqual(files.open_files_for(1), 65)
        self.assertEqual(files.open_files_for(5000), 5064)
        self.assertEqual(files.open_files_for(100_000), 16384)
        config = self.load(
            GOOD + '[sinks.files]\ntype = "jsonlines"\nmax_open_files = 8\n'
            "idle_close = 2.5\n"
        )
        self.assertEqual(config.sinks["files"].open_files_for(5000), 8)
        self.assertEqual(config.sinks["files"].idle_close, 2.5)
        self.assertProblem(
            GOOD + '[sinks.files]\ntype = "jsonlines"\nmax_open_files = 20000\n',
            "sinks.files.max_open_files",
            "20000",
            "16384",
        )
        self.assertProblem(
            GOOD + '[sinks.files]\ntype = "jsonlines"\nidle_close = 0\n',
            "sinks.files.idle_close",
            "0",
        )

    def test_noSinks(self) -> None:
        """
        An instrument may send to no sink at all.
        """
        config = self.load(GOOD.replace("connection", "sinks = []\nconnection"))
        self.assertEqual(config.instruments[0].sinks, ())

    def test_sinkType(self) -> None:
        """
        A sink needs a type, one of the valid ones.
        """
        self.assertProblem(
            GOOD + "[sinks.x]\n", "sinks.x.type", "missing", "jsonlines, http"
        )
        self.assertProblem(
            GOOD + "[sinks.x]\ntype = 'kafka'\n",
            "sinks.x.type",
            "'kafka' is not valid; valid choices: jsonlines, http",
        )

    def test_httpSink(self) -> None:
        """
        An HTTP sink needs an http(s) URL; header values are strings.
        """
        self.assertProblem(
            GOOD + "[sinks.x]\ntype = 'http'\n", "sinks.x.url", "missing"
        )
        self.assertProblem(
            GOOD + "[sinks.x]\ntype = 'http'\nurl = 'ftp://host/'\n",
            "sinks.x.url",
            "not an http:// or https:// URL",
        )
        self.assertProblem(
            GOOD + "[sinks.x]\ntype = 'http'\nurl = 'http://h/'\nheaders = { A = 1 }\n",
            "sinks.x.headers.A",
            "must be a string",
        )
        self.assertProblem(
            GOOD + "[sinks.x]\ntype = 'http'\nurl = 'http://h/'\nbatch_size = 0\n",
            "sinks.x.batch_size",
            "0 is out of range; valid: 1 to 10000",
        )

    def test_spoolBound(self) -> None:
        """
        An HTTP sink's spool is bounded at 1 GiB unless C{max_bytes} says
        otherwise, as bytes or a size; a bound under 64 KiB is refused.
        """
        http = GOOD + "[sinks.x]\ntype = 'http'\nurl = 'http://h/'\n"
        self.assertEqual(self.load(http).sinks["x"].max_bytes, 1 << 30)
        self.assertEqual(
            self.load(http + "max_bytes = '20GiB'\n").sinks["x"].max_bytes, 20 << 30
        )
        self.assertEqual(
            self.load(http + "max_bytes = 1000000\n").sinks["x"].max_bytes, 1000000
        )
        self.assertProblem(
            http + "max_bytes = '1k'\n", "sinks.x.max_bytes", "out of range"
        )

    def test_sharedSpool(self) -> None:
        """
        Two HTTP sinks cannot share a spool directory.
        """
        self.assertProblem(
            GOOD
            + "[sinks.a]\ntype = 'http'\nurl = 'http://h/'\nspool_dir = '/s'\n"
            + "[sinks.b]\ntype = 'http'\nurl = 'http://i/'\nspool_dir = '/s'\n",
            "sinks.b.spool_dir",
            "also the spool of sink 'a'",
        )

    def test_unknownSink(self) -> None:
        """
        An instrument naming a sink that is not defined is told the
        defined ones.
        """
        self.assertProblem(
            GOOD.replace("connection", 'sinks = ["files", "nope"]\nconnection'),
            "instruments[0].sinks",
            "no sink named 'nope'; defined sinks: files",
        )
        self.assertProblem(
            GOOD.replace("connection", 'sinks = "files"\nconnection'),
            "instruments[0].sinks",
            "array of sink names",
        )

    def test_badSinkName(self) -> None:
        """
        Sink names follow the rule of instrument names.
        """
        self.assertProblem(
            GOOD + "[sinks.'a b']\ntype = 'jsonlines'\n",
            "sinks.a b",
            "not a valid name",
        )


class InstrumentTests(ConfigCheckTests):
    """
    Names, drivers, startup parameters, schedules and autosample.
    """

    def test_name(self) -> None:
        """
        A name is required, usable in file names and URLs, and unique.
        """
        self.assertProblem(
            GOOD.replace('name = "toy1"\n', ""), "instruments[0].name", "missing"
        )
        self.assertProblem(
            GOOD.replace("toy1", "toy/1"),
            "instruments[0].name",
            "'toy/1' is not a valid name",
            "letters, digits",
        )
        self.assertProblem(
            GOOD + GOOD,
            "instruments[1].name",
            "'toy1' is already the name of instruments[0]",
        )

    def test_driverRequired(self) -> None:
        """
        A driver is required.
        """
        self.assertProblem(
            GOOD.replace(f'driver = "{TOY}"\n', ""),
            "instruments[0].driver",
            "missing",
            "import path",
        )

    def test_driverNotImportable(self) -> None:
        """
        A driver whose module cannot be imported is refused with the
        import error.
        """
        self.assertProblem(
            GOOD.replace(TOY, "no_such_package.driver:Driver"),
            "instruments[0].driver",
            "cannot import module 'no_such_package.driver'",
        )

    def test_driverMissing(self) -> None:
        """
        A module without the named class is refused.
        """
        self.assertProblem(
            GOOD.replace(TOY, "tests.toyinstrument:NoSuchProtocol"),
            "instruments[0].driver",
            "module 'tests.toyinstrument' has no 'NoSuchProtocol'",
        )

    def test_driverDottedPath(self) -> None:
        """
        A dotted path works as well as module:Class.
        """
        config = self.load(GOOD.replace(TOY, "tests.toyinstrument.ToyProtocol"))
        self.assertEqual(
            config.instruments[0].driver, "tests.toyinstrument.ToyProtocol"
        )

    def test_notADriver(self) -> None:
        """
        Something that is neither a protocol nor a driver class is refused,
        saying what is wanted.
        """
        self.assertProblem(
            GOOD.replace(TOY, "tests.toyinstrument:ToyInstrument"),
            "instruments[0].driver",
            "the class tests.toyinstrument.ToyInstrument, not a driver class",
            "InstrumentProtocol subclass",
        )
        self.assertProblem(
            GOOD.replace(TOY, "tests.toyinstrument:PROMPT"),
            "instruments[0].driver",
            "a bytes, not a driver class",
        )

    def test_driverClass(self) -> None:
        """
        A class implementing IInstrumentDriver is built with the connection,
        events and clock.
        """
        config = self.load(
            GOOD.replace(TOY, "tests.test_station_config:CommandlessDriver")
        )
        spec = config.instruments[0]
        driver = spec.make_driver("connection", "events", "clock")  # type: ignore[arg-type]
        self.assertIsInstance(driver, CommandlessDriver)

    def test_driverClassSignature(self) -> None:
        """
        A driver class that cannot take events and clock is refused.
        """
        self.assertProblem(
            GOOD.replace(TOY, "tests.test_station_config:PositionalOnlyDriver"),
            "instruments[0].driver",
            "cannot be built as Driver(connection, events=..., clock=...)",
        )

    def test_checkedOnce(self) -> None:
        """
        Instruments with the same driver and startup configuration have it
        tried once (a station of thousands starts in seconds); a bad one is
        still reported for each instrument that has it.
        """
        from instrumentd.station.config import _instruments

        tried: list[str] = []
        check = _instruments._check_startup

        def counting(table: Any, path: str, *args: Any, **kwargs: Any) -> Any:
            tried.append(table.path)
            return check(table, path, *args, **kwargs)

        self.patch(_instruments, "_check_startup", counting)
        many = "".join(
            GOOD.replace("toy1", f"toy{n}").replace(
                "connection", "parameters = { INTERVAL = 5 }\nconnection"
            )
            for n in range(5)
        )
        config = self.load(many + GOOD.replace("toy1", "toy9"))
        self.assertEqual(len(config.instruments), 6)
        self.assertEqual(tried, ["instruments[0]", "instruments[5]"])
        bad = GOOD.replace("connection", "parameters = { INTERVAL = 0 }\nconnection")
        found = self.problems(bad + bad.replace("toy1", "toy2"))
        self.assertIn("instruments[0].parameters.INTERVAL", found)
        self.assertIn("instruments[1].parameters.INTERVAL", found)

    def test_parameters(self) -> None:
        """
        Startup parameters are checked against the driver's parameter
        dictionary: unknown names list the known ones; values out of range
        say so.
        """
        self.assertProblem(
            GOOD.replace("connection", "parameters = { INTERVL = 5 }\nconnection"),
            "instruments[0].parameters.INTERVL",
            "unknown parameter; known: INTERVAL",
        )
        self.assertProblem(
            GOOD.replace("connection", "parameters = { INTERVAL = 0 }\nconnection"),
            "instruments[0].parameters.INTERVAL",
            "below the minimum 1",
        )
        self.assertProblem(
            GOOD.replace("connection", "parameters = 5\nconnection"),
            "instruments[0].parameters",
            "must be a table",
        )

    def test_schedules(self) -> None:
        """
        Schedules are checked against the jobs the driver offers.
        """
        self.assertProblem(
            GOOD.replace(
                "connection",
                "schedules = { clock_sync = { interval = 5 } }\nconnection",
            ),
            "instruments[0].schedules.clock_sync",
            "no such job; offered: acquire_status",
        )
        self.assertProblem(
            GOOD.replace(
                "connection",
                "schedules = { acquire_status = { interval = -1 } }\nconnection",
            ),
            "instruments[0].schedules.acquire_status.interval",
            "-1 is out of range; valid: 1 to 31622400 seconds",
        )

    def test_startupConfig(self) -> None:
        """
        The checked parameters and schedules become the driver's startup
        configuration.
        """
        config = self.load(
            GOOD.replace(
                "connection",
                "autosample = true\nparameters = { INTERVAL = 3 }\n"
                "schedules = { acquire_status = { cron = '0 * * * *' } }\nconnection",
            )
        )
        spec = config.instruments[0]
        self.assertTrue(spec.autosample)
        self.assertEqual(
            spec.init_params(),
            {
                "parameters": {"INTERVAL": 3},
                "scheduler": {"acquire_status": {"cron": "0 * * * *"}},
            },
        )

    def test_autosampleNeedsTheCommand(self) -> None:
        """
        autosample needs a driver with a start_autosample command.
        """
        self.assertProblem(
            GOOD.replace(TOY, "tests.test_station_config:CommandlessDriver").replace(
                "connection", "autosample = true\nconnection"
            ),
            "instruments[0].autosample",
            "no start_autosample command; its commands: acquire_sample",
        )
        self.assertProblem(
            GOOD.replace("connection", "autosample = 'yes'\nconnection"),
            "instruments[0].autosample",
            "must be true or false",
        )


class ConnectionTests(ConfigCheckTests):
    """
    The connection table of each type.
    """

    def connection(self, text: str) -> str:
        """
        The good instrument with C{text} as its connection table.
        """
        return (
            GOOD.replace(
                'connection = { type = "tcp", host = "127.0.0.1", port = 4001 }\n', ""
            )
            + f"[instruments.connection]\n{text}\n"
        )

    def test_missing(self) -> None:
        """
        A connection is required; its type is one of the valid ones.
        """
        self.assertProblem(
            self.connection("").replace("[instruments.connection]\n", ""),
            "instruments[0].connection",
            "missing",
            "tcp, serial, simulator, endpoint, port_agent",
        )
        self.assertProblem(
            self.connection("type = 'usb'"),
            "instruments[0].connection.type",
            "'usb' is not valid; valid choices: tcp, serial, simulator, endpoint, "
            "port_agent",
        )

    def test_tcp(self) -> None:
        """
        A tcp connection needs a host and a port in range; the agent's
        instrument endpoint is built from them.
        """
        self.assertProblem(
            self.connection("type = 'tcp'\nport = 4001"),
            "instruments[0].connection.host",
            "missing",
        )
        self.assertProblem(
            self.connection("type = 'tcp'\nhost = 'h'\nport = 70000"),
            "instruments[0].connection.port",
            "70000 is out of range; valid: 1 to 65535",
        )
        self.assertProblem(
            self.connection("type = 'tcp'\nhost = 'h'\nport = '4001'"),
            "instruments[0].connection.port",
            "must be an integer (1 to 65535), not a string ('4001')",
        )
        config = self.load(self.connection("type = 'tcp'\nhost = '::1'\nport = 4001"))
        self.assertEqual(
            config.instruments[0].connection.endpoint, "tcp:host=\\:\\:1:port=4001"
        )

    def test_serial(self) -> None:
        """
        A serial connection is checked with the driver side's rules and
        becomes a serial: endpoint.
        """
        self.assertProblem(
            self.connection(
                "type = 'serial'\ndevice = '/dev/ttyUSB0'\nbaudrate = 9601"
            ),
            "instruments[0].connection.baudrate",
            "9601 is not valid; valid choices: 50, 75,",
        )
        self.assertProblem(
            self.connection("type = 'serial'\nbaudrate = 9600"),
            "instruments[0].connection.device",
            "missing",
        )
        self.assertProblem(
            self.connection(
                "type = 'serial'\ndevice = '/dev/x'\nbaudrate = 9600\nparity = 'maybe'"
            ),
            "instruments[0].connection.parity",
            "none, even, odd",
        )
        self.assertProblem(
            self.connection("type = 'serial'\ndevice = '/dev/x'\nbaud = 9600"),
            "instruments[0].connection.baud",
            "unknown key",
        )
        config = self.load(
            self.connection(
                "type = 'serial'\ndevice = '/dev/ttyUSB0'\nbaudrate = 19200\n"
                "parity = 'even'\nflow = 'rtscts'"
            )
        )
        self.assertEqual(
            config.instruments[0].connection.endpoint,
            "serial:/dev/ttyUSB0:baudrate=19200:bytesize=8:parity=E:stopbits=1"
            ":rtscts=1:xonxoff=0",
        )

    def test_simulator(self) -> None:
        """
        A simulator connection names a known model and valid settings.
        """
        self.assertProblem(
            self.connection("type = 'simulator'\nmodel = 'sbe99'"),
            "instruments[0].connection.model",
            "'sbe99' is not a simulator; valid choices: ",
            "sbe37",
        )
        self.assertProblem(
            self.connection("type = 'simulator'\nmodel = 'sbe37'\ntime_scale = 0"),
            "instruments[0].connection.time_scale",
            "0 is out of range; valid: 0.001 to 1000",
        )
        self.assertProblem(
            self.connection("type = 'simulator'\nmodel = 'sbe37'\nlisten = 'bogus:1'"),
            "instruments[0].connection.listen",
            "unknown endpoint type 'bogus'",
        )
        config = self.load(
            self.connection(
                "type = 'simulator'\nmodel = 'sbe37'\ntime_scale = 20\nseed = 3\n"
                "serial_number = 42\nbaud = 0\necho = false"
            )
        )
        simulator = config.instruments[0].connection.simulator
        assert simulator is not None
        self.assertEqual(simulator.model, "sbe37")
        self.assertEqual(
            (
                simulator.settings.time_scale,
                simulator.settings.seed,
                simulator.settings.serial_number,
                simulator.settings.echo,
            ),
            (20.0, 3, 42, False),
        )
        self.assertEqual(simulator.listen, "tcp:0:interface=127.0.0.1")

    def test_simulatorOptions(self) -> None:
        """
        A simulator's own options choose the variant to simulate; TOML
        booleans become yes/no; an option the model does not have, or a
        value it cannot take, is a problem naming it.
        """
        config = self.load(
            self.connection(
                "type = 'simulator'\nmodel = 'optode'\n"
                "options = { enable_polled_mode = true, Interval = 2 }"
            )
        )
        simulator = config.instruments[0].connection.simulator
        assert simulator is not None
        self.assertEqual(
            simulator.settings.options, {"enable_polled_mode": "yes", "interval": "2"}
        )
        self.assertProblem(
            self.connection(
                "type = 'simulator'\nmodel = 'optode'\noptions = { colour = 'red' }"
            ),
            "instruments[0].connection.options",
            "optode has no option 'colour'; options: ",
        )
        self.assertProblem(
            self.connection(
                "type = 'simulator'\nmodel = 'optode'\noptions = { interval = 0 }"
            ),
            "instruments[0].connection.options",
            "interval='0' is not a valid Interval",
        )

    def test_endpoint(self) -> None:
        """
        An endpoint connection's string is parsed now.
        """
        self.assertProblem(
            self.connection("type = 'endpoint'\nendpoint = 'tcp:host=h'"),
            "instruments[0].connection.endpoint",
            "not a client endpoint string",
        )
        config = self.load(self.connection("type = 'endpoint'\nendpoint = 'demo'"))
        self.assertEqual(config.instruments[0].connection.endpoint, "demo")

    def test_existingPortAgent(self) -> None:
        """
        An existing port agent needs its ports; the station runs no agent
        for it, so port_agent options are refused.
        """
        self.assertProblem(
            self.connection("type = 'port_agent'\ndata_port = 4001"),
            "instruments[0].connection.command_port",
            "missing",
        )
        self.assertProblem(
            self.connection(
                "type = 'port_agent'\ndata_port = 4001\ncommand_port = 4002"
            ).replace(
                "[instruments.connection]", "port_agent = {}\n[instruments.connection]"
            ),
            "instruments[0].port_agent",
            "does not apply",
        )
        config = self.load(
            self.connection(
                "type = 'port_agent'\ndata_port = 4001\ncommand_port = 4002"
            )
        )
        spec = config.instruments[0]
        self.assertIsNone(spec.port_agent)
        assert spec.connection.existing_agent is not None
        self.assertEqual(
            (
                spec.connection.existing_agent.host,
                spec.connection.existing_agent.data_port,
                spec.connection.existing_agent.command_port,
            ),
            ("127.0.0.1", 4001, 4002),
        )
        self.assertIsNone(spec.connection.existing_agent.token_file)
        config = self.load(
            self.connection(
                "type = 'port_agent'\ndata_port = 4001\ncommand_port = 4002\n"
                "token_file = '/etc/instrumentd/CTD01.token'\ntokenless_data = true"
            )
        )
        existing = config.instruments[0].connection.existing_agent
        assert existing is not None
        self.assertEqual(
            (existing.token_file, existing.tokenless_data),
            ("/etc/instrumentd/CTD01.token", True),
        )


class PortAgentTests(ConfigCheckTests):
    """
    The port_agent table.
    """

    def agent(self, text: str) -> str:
        """
        The good instrument with C{text} as its port_agent table.
        """
        return GOOD + f"[instruments.port_agent]\n{text}\n"

    def test_inProcessListenersOff(self) -> None:
        """
        An in-process agent's driver is joined to it directly: every one of
        its listeners may be off, and none need be TCP.
        """
        config = self.load(
            self.agent(
                "mode = 'in-process'\n[instruments.port_agent.listeners]\n"
                "data = 'none'\ncommand = 'unix:/tmp/c.sock'\nsniff = 'none'\n"
                "raw = 'none'"
            )
        )
        agent = config.instruments[0].port_agent
        assert agent is not None
        self.assertEqual(agent.listeners["data"], ())
        self.assertEqual(agent.listeners["command"], ("unix:/tmp/c.sock",))
        self.assertEqual(agent.listeners["sniff"], ())

    def test_mode(self) -> None:
        """
        The mode is child or in-process.
        """
        self.assertProblem(
            self.agent("mode = 'thread'"),
            "instruments[0].port_agent.mode",
            "valid choices: child, in-process",
        )
        config = self.load(self.agent("mode = 'in-process'"))
        agent = config.instruments[0].port_agent
        assert agent is not None
        self.assertEqual(agent.mode, "in-process")

    def test_accessAndRFC2217(self) -> None:
        """
        The token file, tokenless listeners, allow_insecure and the RFC 2217
        listener reach the agent's configuration; a listener beyond loopback
        with neither TLS nor a token is refused unless allow_insecure.
        """
        token_file = self.mktemp()
        with open(token_file, "w") as f:
            f.write("station-token-0123456789\n")
        config = self.load(
            self.agent(
                f"token_file = '{token_file}'\ntokenless = ['data']\n"
                "listeners = { rfc2217 = 'tcp:4105', raw = 'tcp:4104' }"
            )
        )
        agent = config.instruments[0].port_agent
        assert agent is not None
        self.assertEqual(agent.listeners["rfc2217"], ("tcp:4105",))
        built = agent.agent_config("toy1", "tcp:host=h:port=1")
        self.assertTrue(built.gated("rfc2217"))
        self.assertFalse(built.gated("data"))
        self.assertEqual(built.token_file, token_file)
        default = self.load(GOOD).instruments[0].port_agent
        assert default is not None
        self.assertEqual(default.listeners["rfc2217"], ())
        self.assertProblem(
            self.agent("listeners = { sniff = 'tcp:4103' }"),
            "instruments[0].port_agent.listeners.sniff",
            "listens beyond loopback (0.0.0.0:4103)",
            "allow_insecure = true",
        )
        self.load(
            self.agent("allow_insecure = true\nlisteners = { sniff = 'tcp:4103' }")
        )
        self.assertProblem(
            self.agent("tokenless = ['raw']"),
            "instruments[0].port_agent.tokenless",
            "'data' and 'sniff'",
        )
        self.assertProblem(
            self.agent("token_file = '/nonexistent/token'"),
            "instruments[0].port_agent.token_file",
            "cannot read the token file",
        )

    def test_settings(self) -> None:
        """
        Sizes take units; numbers have their ranges; rotation its choices.
        """
        config = self.load(
            self.agent(
                "rotate = 'hourly'\nrotate_size = '100MiB'\nclient_buffer = 1048576\n"
                "heartbeat = 0\ndisconnect_grace = 2.5\nmax_reconnect_delay = 5\n"
                "launch_timeout = 9\ndatalog_dir = '/d'\nlog_file = '/l.log'"
            )
        )
        agent = config.instruments[0].port_agent
        assert agent is not None
        self.assertEqual(
            (
                agent.rotate,
                agent.rotate_size,
                agent.client_buffer,
                agent.heartbeat,
                agent.disconnect_grace,
                agent.max_reconnect_delay,
                agent.launch_timeout,
                agent.datalog_dir,
                agent.log_file,
            ),
            ("hourly", 100 << 20, 1 << 20, 0.0, 2.5, 5.0, 9.0, "/d", "/l.log"),
        )
        agent_config = agent.agent_config("toy1", "tcp:host=h:port=1")
        self.assertEqual(agent_config.rotate_size, 100 << 20)
        self.assertEqual(agent_config.instrument, "tcp:host=h:port=1")

    def test_clientPolicy(self) -> None:
        """
        The agent's client policy is the station's to set: the shared
        memory budget and the stall timeout reach an in-process agent's
        configuration; a budget below one client's buffer, or a timeout out
        of range, is refused naming the key.
        """
        config = self.load(
            self.agent(
                "client_buffer = '1MiB'\nclient_memory = '32MiB'\n"
                "client_stall_timeout = 5"
            )
        )
        agent = config.instruments[0].port_agent
        assert agent is not None
        agent_config = agent.agent_config("toy1", "tcp:host=h:port=1")
        self.assertEqual(
            (agent_config.client_memory, agent_config.client_stall_timeout),
            (32 << 20, 5.0),
        )
        found = self.problems(
            self.agent("client_buffer = '64MiB'\nclient_memory = '1MiB'")
        )
        self.assertIn(
            "less than client_buffer", found["instruments[0].port_agent.client_memory"]
        )
        found = self.problems(self.agent("client_stall_timeout = 0"))
        self.assertIn(
            "0 is out of range; valid: 1 to 3600",
            found["instruments[0].port_agent.client_stall_timeout"],
        )

    def test_badSettings(self) -> None:
        """
        Each bad setting is named.
        """
        found = self.problems(
            self.agent(
                "rotate = 'weekly'\nrotate_size = '3 parsecs'\nclient_buffer = '1KiB'\n"
                "heartbeat = -1\nmax_reconnect_delay = 0\nheartbaet = 3"
            )
        )
        prefix = "instruments[0].port_agent."
        self.assertIn("valid choices: daily, hourly, none", found[prefix + "rotate"])
        self.assertIn("not a size", found[prefix + "rotate_size"])
        self.assertIn(
            "'1KiB' is out of range; valid: 256 KiB to 1 GiB",
            found[prefix + "client_buffer"],
        )
        self.assertEqual(
            found[prefix + "heartbeat"],
            "-1 is out of range; valid: 0 (off) or 0.1 to 86400 seconds",
        )
        self.assertEqual(
            found[prefix + "max_reconnect_delay"],
            "0 is out of range; valid: 0.1 to 86400 seconds",
        )
        self.assertEqual(len(found), 6, found)
        self.assertIn("did you mean 'heartbeat'?", found[prefix + "heartbaet"])

    def test_inProcessLogFile(self) -> None:
        """
        An in-process agent logs to the station's log; a log_file is refused.
        """
        self.assertProblem(
            self.agent("mode = 'in-process'\nlog_file = '/x.log'"),
            "instruments[0].port_agent.log_file",
            "does not apply to an in-process agent",
        )

    def test_listeners(self) -> None:
        """
        Listeners are endpoint strings, arrays of them, or none; the data
        and command listeners must be on, and TCP first.
        """
        config = self.load(
            self.agent(
                "[instruments.port_agent.listeners]\n"
                "data = 'tcp:4101:interface=127.0.0.1'\n"
                "sniff = 'none'\n"
                "raw = ['tcp:0:interface=127.0.0.1', 'unix:/tmp/raw.sock']"
            )
        )
        agent = config.instruments[0].port_agent
        assert agent is not None
        self.assertEqual(agent.listeners["data"], ("tcp:4101:interface=127.0.0.1",))
        self.assertEqual(agent.listeners["command"], ("tcp:0:interface=127.0.0.1",))
        self.assertEqual(agent.listeners["sniff"], ())
        self.assertEqual(len(agent.listeners["raw"]), 2)
        listeners = "[instruments.port_agent.listeners]\n"
        self.assertProblem(
            self.agent(listeners + "data = 'none'"),
            "instruments[0].port_agent.listeners.data",
            '"none": the data listener of a child-process agent cannot be off',
            'with mode = "in-process" the driver is joined directly',
        )
        self.assertProblem(
            self.agent(listeners + "command = 'unix:/tmp/c.sock'"),
            "instruments[0].port_agent.listeners.command",
            "must be TCP",
        )
        self.assertProblem(
            self.agent(listeners + "sniff = 'tcpp:0'"),
            "instruments[0].port_agent.listeners.sniff",
            "unknown endpoint type 'tcpp'",
        )
        self.assertProblem(
            self.agent(listeners + "raw = 5"),
            "instruments[0].port_agent.listeners.raw",
            "server endpoint string, an array of them, or 'none'",
        )
        self.assertProblem(
            self.agent(listeners + "spy = 'none'"),
            "instruments[0].port_agent.listeners.spy",
            "valid keys here: data, command, sniff, raw",
        )


class OnePassTests(ConfigCheckTests):
    """
    One check reports every problem: none is hidden behind another, so
    fixing what was reported brings no new ones.
    """

    def test_everyBadParameter(self) -> None:
        """
        Every bad startup parameter of every instrument is reported, not
        only the first of each.
        """
        found = self.problems(
            GOOD.replace(
                "connection",
                "parameters = { INTERVAL = 0, NOPE = 1, UNITS = 'K', ECHO = 'maybe' }"
                "\nconnection",
            )
            + GOOD.replace("toy1", "toy2").replace(
                "connection", "parameters = { INTERVAL = 9999 }\nconnection"
            )
        )
        self.assertEqual(
            sorted(found),
            [
                "instruments[0].parameters.ECHO",
                "instruments[0].parameters.INTERVAL",
                "instruments[0].parameters.NOPE",
                "instruments[0].parameters.UNITS",
                "instruments[1].parameters.INTERVAL",
            ],
        )
        self.assertIn(
            "not a startup parameter", found["instruments[0].parameters.UNITS"]
        )
        self.assertIn(
            "'maybe' is not a yes/no value", found["instruments[0].parameters.ECHO"]
        )

    def test_everyBadSchedule(self) -> None:
        """
        Every bad schedule is reported, and parameters are checked even
        when the schedules table is refused.
        """
        found = self.problems(
            GOOD.replace(
                "connection",
                "schedules = { clock_sync = { interval = 5 }, "
                "acquire_status = { interval = -1 } }\nconnection",
            )
            + GOOD.replace("toy1", "toy2").replace(
                "connection", "schedules = 5\nparameters = { INTERVAL = 0 }\nconnection"
            )
        )
        self.assertEqual(
            sorted(found),
            [
                "instruments[0].schedules.acquire_status.interval",
                "instruments[0].schedules.clock_sync",
                "instruments[1].parameters.INTERVAL",
                "instruments[1].schedules",
            ],
        )

    def test_connectionWithoutAType(self) -> None:
        """
        A connection whose type is wrong still has its other keys checked
        against every type's declarations.
        """
        found = self.problems(
            GOOD.replace(
                'connection = { type = "tcp", host = "127.0.0.1", port = 4001 }',
                "connection = { type = 'tcpp', host = 5, port = 70000, prot = 1 }",
            )
        )
        prefix = "instruments[0].connection."
        self.assertEqual(
            sorted(found),
            [prefix + "host", prefix + "port", prefix + "prot", prefix + "type"],
        )
        self.assertIn("did you mean 'port'?", found[prefix + "prot"])

    def test_sinkWithoutAType(self) -> None:
        """
        A sink whose type is missing still has its other keys checked; an
        instrument naming it is not told it does not exist.
        """
        found = self.problems(
            GOOD.replace("connection", "sinks = ['out']\nconnection")
            + "[sinks.out]\nbatch_size = 0\nurl = 'ftp://x/'\n"
        )
        self.assertEqual(
            sorted(found), ["sinks.out.batch_size", "sinks.out.type", "sinks.out.url"]
        )

    def test_spoolClashWithoutURL(self) -> None:
        """
        Two HTTP sinks on one spool are refused even while a URL is missing.
        """
        found = self.problems(
            GOOD
            + "[sinks.a]\ntype = 'http'\nspool_dir = '/s'\n"
            + "[sinks.b]\ntype = 'http'\nurl = 'http://i/'\nspool_dir = '/s'\n"
        )
        self.assertEqual(sorted(found), ["sinks.a.url", "sinks.b.spool_dir"])

    def test_everySerialProblem(self) -> None:
        """
        Every bad serial setting is reported, not the first.
        """
        found = self.problems(
            GOOD.replace(
                'connection = { type = "tcp", host = "127.0.0.1", port = 4001 }',
                "connection = { type = 'serial', baudrate = 9601, parity = 'Q', "
                "stopbits = 3, bytesize = 9, flow = 'xon' }",
            )
        )
        prefix = "instruments[0].connection."
        self.assertEqual(
            sorted(found),
            [
                prefix + key
                for key in (
                    "baudrate",
                    "bytesize",
                    "device",
                    "flow",
                    "parity",
                    "stopbits",
                )
            ],
        )

    def test_everything(self) -> None:
        """
        A file with problems in every section gets them all in one report.
        """
        path = self.write(
            """
[station]
data_dir = 5
[api]
listen = "tpc:1"
[sinks.a]
type = "kafka"
batch_size = 0
[sinks.A]
type = "jsonlines"
[[instruments]]
name = "x"
driver = "tests.toyinstrument:ToyProtocol"
parameters = { INTERVAL = 0, NOPE = 1 }
connection = { type = "tcpp", port = 70000 }
port_agent = { heartbeat = 1e-9, listeners = { data = "none", raw = 5 } }
[[instruments]]
name = "X"
driver = "nosuch.mod:D"
connection = { type = "serial", device = "/dev/x", baudrate = 9601, parity = "Q" }
[[instruments]]
name = "s"
driver = "tests.toyinstrument:ToyProtocol"
connection = { type = "simulator", model = "sbe99", time_scale = 1e308 }
"""
        )
        error = self.assertRaises(ConfigError, load_config, path)
        self.assertEqual(
            [key for key, _ in error.problems],
            [
                "station.data_dir",
                "api.listen",
                "sinks.a.type",
                "sinks.a.batch_size",
                "sinks.A",
                "instruments[0].connection.type",
                "instruments[0].connection.port",
                "instruments[0].port_agent.heartbeat",
                "instruments[0].port_agent.listeners.raw",
                "instruments[0].port_agent.listeners.data",
                "instruments[0].parameters.INTERVAL",
                "instruments[0].parameters.NOPE",
                "instruments[1].driver",
                "instruments[1].connection.baudrate",
                "instruments[1].connection.parity",
                "instruments[1].name",
                "instruments[2].connection.model",
                "instruments[2].connection.time_scale",
            ],
        )
        self.assertIn("18 problems; nothing was started", str(error).splitlines()[0])


class MessageTests(ConfigCheckTests):
    """
    A message says what is wrong with the value and lists the valid ones;
    it never contradicts itself.
    """

    def serial(self, settings: str) -> str:
        """
        The good instrument on a serial line with C{settings}.
        """
        return GOOD.replace(
            'connection = { type = "tcp", host = "127.0.0.1", port = 4001 }',
            "connection = { type = 'serial', device = '/dev/x', baudrate = 9600, "
            f"{settings} }}",
        )

    def test_notAStandardRate(self) -> None:
        """
        An integer that is not a standard rate is not called the wrong
        type; the valid rates are listed.
        """
        message = self.assertProblem(
            self.serial("baudrate = 9601").replace("baudrate = 9600, ", ""),
            "instruments[0].connection.baudrate",
        )
        self.assertTrue(message.startswith("9601 is not valid; valid choices: 50, 75,"))
        self.assertIn(", 9600, 19200,", message)
        self.assertTrue(message.endswith(", 4000000"), message)
        self.assertNotIn("must be", message)

    def test_notAParity(self) -> None:
        """
        A string that is not a parity is not called the wrong type.
        """
        self.assertEqual(
            self.assertProblem(
                self.serial("parity = 'Q'"), "instruments[0].connection.parity"
            ),
            "'Q' is not valid; valid choices: none, even, odd, mark, space, N, E, O, M, S",
        )

    def test_parityAnyCase(self) -> None:
        """
        Parity names and letters are taken in any case.
        """
        config = self.load(self.serial("parity = 'Even'"))
        self.assertIn(":parity=E:", str(config.instruments[0].connection.endpoint))

    def test_wrongType(self) -> None:
        """
        A value of the wrong type is told the type and range it must have.
        """
        self.assertEqual(
            self.assertProblem(
                self.serial("bytesize = '8'"), "instruments[0].connection.bytesize"
            ),
            "must be an integer (one of 5, 6, 7, 8), not a string ('8')",
        )

    def test_noChoiceMessageSaysWrongType(self) -> None:
        """
        For every declared key with choices, a value of the right type
        that is not a choice is told so, with the choices, and never that
        it has the wrong type.
        """
        for section in all_sections():
            for key in section.keys:
                if key.choices is None:
                    continue
                wrong = "no-such-choice" if isinstance(key.choices[0], str) else 12345
                verdict = key.check_value(wrong)
                assert verdict.problem is not None
                self.assertEqual(
                    verdict.problem,
                    f"{wrong!r} is not valid; valid choices: {key.valid()}",
                    f"{section.title} {key.name}",
                )


class BoundsTests(ConfigCheckTests):
    """
    Every number in the configuration has sensible bounds.
    """

    def test_everyNumberBounded(self) -> None:
        """
        Every declared integer, number and size has choices or a lower and
        an upper bound.
        """
        for section in all_sections():
            for key in section.keys:
                if key.kind not in ("integer", "number", "size") or key.choices:
                    continue
                self.assertTrue(
                    (key.minimum is not None or key.above is not None)
                    and key.maximum is not None,
                    f"{section.title} {key.name} is not bounded",
                )

    def test_scheduleIntervals(self) -> None:
        """
        A job's interval is bounded, in either form; a misspelt key of a
        job is named with a likely meant one.
        """
        found = self.problems(
            GOOD.replace(
                "connection",
                "schedules = { acquire_status = { interval = 1e-9 } }\nconnection",
            )
            + GOOD.replace("toy1", "toy2").replace(
                "connection",
                "schedules = { acquire_status = { trigger = { type = 'interval', "
                "weeks = 100 } } }\nconnection",
            )
            + GOOD.replace("toy1", "toy3").replace(
                "connection",
                "schedules = { acquire_status = { intervl = 60 } }\nconnection",
            )
        )
        self.assertEqual(
            found["instruments[0].schedules.acquire_status.interval"],
            "1e-09 is out of range; valid: 1 to 31622400 seconds",
        )
        self.assertEqual(
            found["instruments[1].schedules.acquire_status.trigger"],
            "an interval of 60480000 is out of range; valid: 1 to 31622400 seconds",
        )
        self.assertIn(
            "did you mean 'interval'?",
            found["instruments[2].schedules.acquire_status.intervl"],
        )

    def test_heartbeatTooFast(self) -> None:
        """
        A heartbeat every nanosecond is refused; 0 (off) is not.
        """
        self.assertProblem(
            GOOD + "[instruments.port_agent]\nheartbeat = 1e-9\n",
            "instruments[0].port_agent.heartbeat",
            "1e-09 is out of range; valid: 0 (off) or 0.1 to 86400 seconds",
        )
        config = self.load(GOOD + "[instruments.port_agent]\nheartbeat = 0\n")
        agent = config.instruments[0].port_agent
        assert agent is not None
        self.assertEqual(agent.heartbeat, 0)

    def test_timeScale(self) -> None:
        """
        A simulator cannot run a googol times faster than real time, nor at
        an infinite scale.
        """
        sim = GOOD.replace(
            'connection = { type = "tcp", host = "127.0.0.1", port = 4001 }',
            "connection = { type = 'simulator', model = 'sbe37', time_scale = SCALE }",
        )
        self.assertProblem(
            sim.replace("SCALE", "1e308"),
            "instruments[0].connection.time_scale",
            "1e+308 is out of range; valid: 0.001 to 1000",
        )
        self.assertProblem(
            sim.replace("SCALE", "inf"),
            "instruments[0].connection.time_scale",
            "inf is not a finite number; valid: 0.001 to 1000",
        )

    def test_sinkNumbers(self) -> None:
        """
        Sink numbers have upper bounds too.
        """
        found = self.problems(
            GOOD
            + "[sinks.s]\ntype = 'http'\nurl = 'http://h/'\nbatch_size = 1000000\n"
            + "batch_interval = 1e9\ntimeout = 0\n"
        )
        self.assertEqual(
            found,
            {
                "sinks.s.batch_size": "1000000 is out of range; valid: 1 to 10000",
                "sinks.s.batch_interval": (
                    "1000000000 is out of range; valid: 0.01 to 3600 seconds"
                ),
                "sinks.s.timeout": "0 is out of range; valid: 0.1 to 3600 seconds",
            },
        )

    def test_namesDifferingInCase(self) -> None:
        """
        Instrument names, and sink names, that differ only in case are
        refused: they collide on case-insensitive file systems.
        """
        message = self.assertProblem(
            GOOD + GOOD.replace("toy1", "TOY1"),
            "instruments[1].name",
            "'TOY1' differs from 'toy1' (instruments[0]) only in case",
        )
        self.assertIn("file systems", message)
        self.assertProblem(
            GOOD + "[sinks.out]\ntype = 'jsonlines'\n[sinks.Out]\ntype = 'jsonlines'\n",
            "sinks.Out",
            "'Out' differs from 'out' (sinks.out) only in case",
        )


class ReferenceTests(SynchronousTestCase):
    """
    The key reference in doc/station.md is generated from the declarations.
    """

    def test_docIsCurrent(self) -> None:
        """
        doc/station.md holds the reference exactly as the declarations
        write it; run C{python -m instrumentd.station.config.reference
        doc/station.md} after changing a key.
        """
        text = STATION_DOC.read_text(encoding="utf-8")
        self.assertEqual(
            reference.update(text),
            text,
            "doc/station.md is out of date: run python -m "
            "instrumentd.station.config.reference doc/station.md",
        )

    def test_everyKeyDocumented(self) -> None:
        """
        Every declared key has a row in the reference, with its meaning,
        default and bounds.
        """
        text = reference.render()
        for section in all_sections():
            for key in section.keys:
                if key.name == "type" and " type = " in section.title:
                    continue
                self.assertIn(f"| `{key.name}` |", text)
                self.assertIn(key.doc, text)
                self.assertIn(key.bounds(), text)

    def test_update(self) -> None:
        """
        update replaces only what lies between the markers, and refuses a
        document without them.
        """
        text = f"before\n{reference.BEGIN}\nSTALE-TEXT\n{reference.END}\nafter\n"
        updated = reference.update(text)
        self.assertTrue(updated.startswith(f"before\n{reference.BEGIN}\n"))
        self.assertTrue(updated.endswith(f"\n{reference.END}\nafter\n"))
        self.assertNotIn("STALE-TEXT", updated)
        self.assertIn("### `[station]`", updated)
        self.assertRaises(ValueError, reference.update, "no markers\n")

    def test_mainLeavesDocumentWithoutMarkers(self) -> None:
        """
        The command refuses a document without the markers and leaves it
        as it was (it once emptied it).
        """
        path = self.mktemp()
        with open(path, "w", encoding="utf-8") as f:
            f.write("no markers\n")
        self.assertRaises(ValueError, reference.main, [path])
        with open(path, encoding="utf-8") as f:
            self.assertEqual(f.read(), "no markers\n")


class ExampleAndDemoTests(ConfigCheckTests):
    """
    The shipped configurations are valid.
    """

    def test_example(self) -> None:
        """
        doc/examples/station.toml is valid and shows every connection type
        but the endpoint one, both agent modes, and both kinds of sink.
        """
        config = load_config(str(EXAMPLE))
        self.assertEqual(config.source, str(EXAMPLE))
        types = {spec.connection.type for spec in config.instruments}
        self.assertEqual(types, {"tcp", "serial", "simulator", "port_agent"})
        modes = {
            spec.port_agent.mode
            for spec in config.instruments
            if spec.port_agent is not None
        }
        self.assertEqual(modes, {"child", "in-process"})
        self.assertEqual(
            {sink.type for sink in config.sinks.values()}, {"jsonlines", "http"}
        )

    def test_demo(self) -> None:
        """
        The demo: a small mooring of simulated instruments (an SBE 37, an
        optode and an ADCP), each with a child port agent, autosampling, samples as JSON
        lines under ./instrumentd-data, the API on loopback port 8700.
        """
        config = demo_config()
        self.assertEqual(config.source, DEMO_SOURCE)
        self.assertEqual(config.api, "tcp:8700:interface=127.0.0.1")
        self.assertEqual(
            [spec.name for spec in config.instruments],
            ["SBE37-DEMO", "OPTODE-DEMO", "ADCP-DEMO"],
        )
        for spec in config.instruments:
            self.assertEqual(spec.connection.type, "simulator")
            self.assertTrue(spec.autosample)
            assert spec.port_agent is not None
            self.assertEqual(spec.port_agent.mode, "child")
        self.assertEqual(
            config.sinks["files"].directory, os.path.join("instrumentd-data", "samples")
        )

    def test_demoOverrides(self) -> None:
        """
        The demo takes --api and --data-dir, and refuses a bad --api naming
        the demo.
        """
        config = demo_config(api="tcp:0:interface=127.0.0.1", data_dir="/x")
        self.assertEqual(config.api, "tcp:0:interface=127.0.0.1")
        self.assertEqual(config.sinks["files"].directory, "/x/samples")
        error = self.assertRaises(ConfigError, demo_config, api="nope:1")
        self.assertEqual(error.source, DEMO_SOURCE)

    def test_parseConfig(self) -> None:
        """
        parse_config checks an already parsed document, naming the source
        given.
        """
        document = parse_toml(DEMO_CONFIG, "<x>")
        self.assertEqual(parse_config(document, "<x>").source, "<x>")
        error = self.assertRaises(ConfigError, parse_config, {}, "<x>")
        self.assertEqual(error.source, "<x>")
