"""
Tests for the MQTT sink's configuration keys: checked at ``--check`` with
messages naming the key, the value and what would do; the password file's
content is never read into the configuration.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from instrumentd.station.config import ConfigError, parse_config


class MqttSinkConfigTests(SynchronousTestCase):
    """
    ``[sinks.NAME] type = "mqtt"``.
    """

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.password_file = os.path.join(self.directory, "pw")
        with open(self.password_file, "w") as f:
            f.write("very-secret\n")

    def parse(self, sink: dict[str, Any], name: str | None = "buoy1") -> Any:
        station: dict[str, Any] = {"data_dir": self.directory}
        if name is not None:
            station["name"] = name
        instrument = {
            "name": "CTD1",
            "driver": "instrumentd.instruments.seabird.sbe37smp.driver:SBE37Protocol",
            "connection": {"type": "simulator", "model": "sbe37"},
        }
        return parse_config(
            {
                "station": station,
                "sinks": {"shore": {"type": "mqtt", **sink}},
                "instruments": [instrument],
            },
            "<t>",
        )

    def problems(self, sink: dict[str, Any], name: str | None = "buoy1") -> list[str]:
        error = self.assertRaises(ConfigError, self.parse, sink, name)
        return [f"{key}: {problem}" for key, problem in error.problems]

    def test_defaults(self) -> None:
        """
        A broker is enough; the spool is under the data directory, the
        registry is on, commands are off.
        """
        spec = self.parse({"broker": "mqtt://127.0.0.1"}).sinks["shore"]
        self.assertEqual(spec.type, "mqtt")
        self.assertEqual(spec.spool_dir, os.path.join(self.directory, "spool", "shore"))
        self.assertEqual(
            (spec.registry, spec.remote_commands, spec.keepalive, spec.window),
            (True, False, 30, 100),
        )

    def test_password_file_not_read(self) -> None:
        """
        The configuration holds the password file's name, not the password.
        """
        config = self.parse(
            {
                "broker": "mqtts://shore.example.org",
                "username": "buoy1",
                "password_file": self.password_file,
                "ca_file": self.password_file,
            }
        )
        self.assertNotIn("very-secret", repr(config))
        self.assertEqual(config.sinks["shore"].password_file, self.password_file)

    def test_needs_station_name(self) -> None:
        """
        Without [station] name: a problem naming the key to set.
        """
        self.assertEqual(
            self.problems({"broker": "mqtt://h"}, name=None),
            [
                "sinks.shore: an MQTT sink needs the station's name, [station] "
                'name = "..." (its topics are instrumentd/<station>/...)'
            ],
        )

    def test_everything_at_once(self) -> None:
        """
        The missing station name is reported beside the sink's own
        problems, so one --check says all.
        """
        found = self.problems({"broker": "http://h"}, name=None)
        self.assertEqual(len(found), 2)
        self.assertIn("needs the station's name", "\n".join(found))

    def test_bad_keys(self) -> None:
        """
        A bad address, files that are not there, a password without a user,
        TLS files for a plain broker, a key without its certificate: each
        a problem naming the key.
        """
        missing = os.path.join(self.directory, "nope")
        found = self.problems(
            {
                "broker": "http://h",
                "password_file": missing,
                "key_file": self.password_file,
                "keepalive": 1,
                "remote_commands": "yes",
            }
        )
        text = "\n".join(found)
        self.assertIn("sinks.shore.broker: 'http://h' is not a broker address", text)
        self.assertIn("mqtt://HOST[:PORT]", text)
        self.assertIn("sinks.shore.password_file: is set but username is not", text)
        self.assertIn(f"sinks.shore.password_file: {missing!r} does not exist", text)
        self.assertIn("sinks.shore.key_file: is set but cert_file is not", text)
        self.assertIn("sinks.shore.keepalive:", text)
        self.assertIn("sinks.shore.remote_commands:", text)
        found = self.problems({"broker": "mqtt://h", "ca_file": self.password_file})
        self.assertEqual(
            found,
            ["sinks.shore.ca_file: is for TLS, but broker 'mqtt://h' is not mqtts://"],
        )

    def test_missing_broker(self) -> None:
        """
        The broker is required.
        """
        self.assertIn("sinks.shore.broker", "\n".join(self.problems({})))
