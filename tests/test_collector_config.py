"""
Tests for the collector's configuration (L{instrumentd.station.config}'s
C{[collector]}) and its options (L{instrumentd.collector.options}).
"""

from __future__ import annotations

import io
import os

from twisted.trial.unittest import SynchronousTestCase

from instrumentd.collector.options import CollectOptions
from instrumentd.station.config import (
    ConfigError,
    load_collector_config,
    parse_collector_config,
    parse_toml,
)
from instrumentd.tap import Options


class CollectorConfigTests(SynchronousTestCase):
    """
    C{[collector]} is checked key by key; the command line overrides it.
    """

    def test_defaults(self) -> None:
        """
        Only the broker is needed; the rest has defaults, and the
        subscriptions are every station's data and events, not shared.
        """
        config = parse_collector_config(
            {"collector": {"broker": "mqtt://127.0.0.1:1883"}}, "c.toml"
        )
        self.assertEqual(config.broker, "mqtt://127.0.0.1:1883")
        self.assertEqual(config.data_dir, "instrumentd-archive")
        self.assertEqual(config.api, "tcp:8710:interface=127.0.0.1")
        self.assertTrue(config.client_id.startswith("instrumentd-collector-"))
        self.assertEqual(
            config.topic_filters(),
            [
                "instrumentd/+/+/data/+",
                "instrumentd/+/+/events/+",
            ],
        )

    def test_stations_and_group(self) -> None:
        """
        C{stations} and C{group} make the filters; C{events = false} leaves
        events out; the meta filters are plain ones.
        """
        config = parse_collector_config(
            {
                "collector": {
                    "broker": "mqtt://h",
                    "stations": ["buoy-1", "buoy-2"],
                    "group": "shore",
                    "events": False,
                }
            },
            "c.toml",
        )
        self.assertEqual(
            config.topic_filters(),
            [
                "$share/shore/instrumentd/buoy-1/+/data/+",
                "$share/shore/instrumentd/buoy-2/+/data/+",
            ],
        )
        # Retained meta is never sent to a shared subscription.
        self.assertEqual(
            config.meta_filters(),
            ["instrumentd/buoy-1/+/meta", "instrumentd/buoy-2/+/meta"],
        )

    def test_every_problem(self) -> None:
        """
        Every bad key is named with its value and what is valid, in one
        error.
        """
        with self.assertRaises(ConfigError) as caught:
            parse_collector_config(
                {
                    "collector": {
                        "broker": "http://h",
                        "stations": [],
                        "group": "a/b",
                        "keepalive": 1,
                        "fsinc": True,
                        "password_file": "/nonexistent/password",
                    },
                    "station": {},
                },
                "c.toml",
            )
        text = str(caught.exception)
        for expected in (
            "collector.broker",
            "mqtt or mqtts",
            "collector.stations",
            "collector.group",
            "collector.keepalive",
            "collector.fsinc: unknown key (did you mean 'fsync'?)",
            "collector.password_file: cannot read the file",
            "station: unknown key",
        ):
            self.assertIn(expected, text)

    def test_broker_required(self) -> None:
        """
        Without a broker in the file or on the command line, the error says
        both ways to give one.
        """
        with self.assertRaises(ConfigError) as caught:
            parse_collector_config({}, "c.toml")
        self.assertIn("collector.broker: missing", str(caught.exception))
        self.assertIn("--broker", str(caught.exception))

    def test_overrides(self) -> None:
        """
        C{--broker}, C{--data-dir} and C{--api} override the file; a bad
        one is named by its option.
        """
        path = self.mktemp()
        with open(path, "w") as f:
            f.write('[collector]\nbroker = "mqtt://a"\ndata_dir = "x"\n')
        config = load_collector_config(
            path, broker="mqtt://b:1884", data_dir="y", api="tcp:0"
        )
        self.assertEqual(
            (config.broker, config.data_dir, config.api),
            ("mqtt://b:1884", "y", "tcp:0"),
        )
        with self.assertRaises(ConfigError) as caught:
            load_collector_config(path, broker="ftp://b")
        self.assertIn("--broker", str(caught.exception))


class ExampleTests(SynchronousTestCase):
    """
    doc/examples/collector.toml is a good configuration.
    """

    def test_example(self) -> None:
        """
        The example passes the checks (its password file made here).
        """
        example = os.path.join(
            os.path.dirname(__file__), "..", "doc", "examples", "collector.toml"
        )
        with open(example) as f:
            text = f.read()
        password = self.mktemp()
        with open(password, "w") as f:
            f.write("secret\n")
        text = text.replace("/etc/instrumentd/collector-mqtt-password", password)
        config = parse_collector_config(parse_toml(text, example), example)
        self.assertEqual(config.broker, "mqtts://shore.example.org")
        self.assertEqual(config.client_id, "collector-shore-1")


class CollectOptionsTests(SynchronousTestCase):
    """
    C{twistd instrumentd collect} parses and checks its configuration.
    """

    def test_subcommand(self) -> None:
        """
        C{collect} is a subcommand of C{twistd instrumentd}.
        """
        options = Options()
        options.parseOptions(
            ["collect", "--broker", "mqtt://127.0.0.1:1", "--data-dir", "d"]
        )
        sub = options.subOptions
        assert isinstance(sub, CollectOptions)
        assert sub.collector_config is not None
        self.assertEqual(sub.collector_config.data_dir, "d")

    def test_bad(self) -> None:
        """
        A bad configuration exits 1 with the problem on standard error.
        """
        options = CollectOptions()
        options.stderr = io.StringIO()
        with self.assertRaises(SystemExit) as caught:
            options.parseOptions(["--broker", "nope://x"])
        self.assertEqual(caught.exception.code, 1)
        self.assertIn("--broker", options.stderr.getvalue())

    def test_check(self) -> None:
        """
        C{--check} says a good configuration is good and exits 0.
        """
        options = CollectOptions()
        options.stdout = io.StringIO()
        with self.assertRaises(SystemExit) as caught:
            options.parseOptions(["--broker", "mqtt://h", "--check"])
        self.assertEqual(caught.exception.code, 0)
        self.assertIn("is good", options.stdout.getvalue())
