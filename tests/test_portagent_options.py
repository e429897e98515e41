"""
Tests for L{instrumentd.portagent.options}: bad input names the option and
the value; good input becomes a L{PortAgentConfig}.
"""

from __future__ import annotations

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from instrumentd.portagent.options import (
    DEFAULT_LISTENER,
    PortAgentOptions,
    demo_recording,
    parse_size,
)

BASE = [
    "--name",
    "CE01ISSM-MFD37-03-CTDBPC000",
    "--instrument",
    "tcp:host=127.0.0.1:port=4001",
]


def parse(*extra: str) -> PortAgentOptions:
    options = PortAgentOptions()
    options.parseOptions([*BASE, *extra])
    return options


class OptionsTests(SynchronousTestCase):
    """
    Options of C{twistd instrumentd port-agent}.
    """

    def assertUsageError(self, args: list[str], *fragments: str) -> None:
        options = PortAgentOptions()
        e = self.assertRaises(usage.UsageError, options.parseOptions, args)
        for fragment in fragments:
            self.assertIn(fragment, str(e))

    def test_defaults(self) -> None:
        """
        Every listener defaults to an ephemeral loopback port; intervals and
        sizes have their documented defaults.
        """
        config = parse().config()
        self.assertEqual(config.name, "CE01ISSM-MFD37-03-CTDBPC000")
        for kind in ("data", "command", "sniff", "raw"):
            self.assertEqual(config.listeners[kind], (DEFAULT_LISTENER,))
        self.assertEqual(DEFAULT_LISTENER, "tcp:0:interface=127.0.0.1")
        self.assertEqual(config.heartbeat, 10.0)
        self.assertEqual(config.disconnect_grace, 10.0)
        self.assertEqual(config.max_reconnect_delay, 60.0)
        self.assertEqual(config.rotate, "daily")
        self.assertEqual(config.client_buffer, 64 << 20)
        self.assertEqual(config.client_memory, 256 << 20)
        self.assertEqual(config.client_stall_timeout, 30.0)
        self.assertEqual(config.datalog_dir, "datalog")

    def test_repeatedListenersAndNone(self) -> None:
        """
        Listener options repeat; C{none} turns a listener off.
        """
        config = parse(
            "--data-port",
            "tcp:4001:interface=127.0.0.1",
            "--data-port",
            "tcp:4002:interface=127.0.0.1",
            "--raw-port",
            "none",
        ).config()
        self.assertEqual(
            config.listeners["data"],
            ("tcp:4001:interface=127.0.0.1", "tcp:4002:interface=127.0.0.1"),
        )
        self.assertEqual(config.listeners["raw"], ())

    def test_required(self) -> None:
        """
        --name and --instrument are required, and the error says what they are.
        """
        self.assertUsageError(["--instrument", "demo"], "--name is required")
        self.assertUsageError(["--name", "X"], "--instrument is required")

    def test_badName(self) -> None:
        """
        A name that cannot be a file name is refused.
        """
        self.assertUsageError(
            ["--name", "../etc", "--instrument", "demo"], "--name", "'../etc'"
        )

    def test_unknownEndpointType(self) -> None:
        """
        An unknown endpoint type names the option and the type.
        """
        self.assertUsageError(
            ["--name", "X", "--instrument", "bogus:thing"],
            "--instrument",
            "unknown endpoint type 'bogus'",
        )
        self.assertUsageError(
            [*BASE, "--data-port", "nonsense:1"], "--data-port", "'nonsense:1'"
        )

    def test_badNumbers(self) -> None:
        """
        Negative or non-numeric intervals name the option and the value.
        """
        self.assertUsageError([*BASE, "--heartbeat", "-1"], "--heartbeat", "'-1'")
        self.assertUsageError([*BASE, "--heartbeat", "often"], "--heartbeat", "'often'")
        self.assertUsageError(
            [*BASE, "--disconnect-grace", "nan"], "--disconnect-grace"
        )
        self.assertUsageError(
            [*BASE, "--max-reconnect-delay", "0"],
            "--max-reconnect-delay: '0' is out of range; valid: 0.1 to 86400 seconds",
        )

    def test_numbersBounded(self) -> None:
        """
        Every numeric option has bounds; a value outside them is refused
        with the value and the valid range, and the bounds themselves are
        accepted.
        """
        cases = [
            ("--heartbeat", "1e-9", "0 (off), or 0.1 to 86400 seconds"),
            ("--heartbeat", "1e9", "0 (off), or 0.1 to 86400 seconds"),
            ("--heartbeat", "1e999", "0 (off), or 0.1 to 86400 seconds"),
            ("--disconnect-grace", "86401", "0 to 86400 seconds"),
            ("--max-reconnect-delay", "1e-3", "0.1 to 86400 seconds"),
            ("--max-reconnect-delay", "1e7", "0.1 to 86400 seconds"),
            ("--rotate-size", "1k", "0 (off), or 1048576 to 1099511627776 bytes"),
            ("--rotate-size", "2048G", "0 (off), or 1048576 to 1099511627776 bytes"),
            ("--client-buffer", "2G", "262144 to 1073741824 bytes"),
            ("--client-buffer", "9" * 40, "is not a size"),
            ("--parent-pid", "99999999999999999999", "1 to 4194304"),
            ("--client-memory", "100k", "262144 to 68719476736 bytes"),
            ("--client-memory", "1M", "at least the client buffer"),
            ("--client-stall-timeout", "0.5", "1 to 3600 seconds"),
        ]
        for option, value, valid in cases:
            self.assertUsageError([*BASE, option, value], f"{option}: {value!r}", valid)
        config = parse(
            "--heartbeat",
            "0.1",
            "--disconnect-grace",
            "86400",
            "--max-reconnect-delay",
            "0.1",
            "--rotate-size",
            "1MiB",
            "--client-buffer",
            "1GiB",
            "--client-memory",
            "1GiB",
            "--parent-pid",
            str(1 << 22),
        ).config()
        self.assertEqual(
            (config.heartbeat, config.disconnect_grace, config.max_reconnect_delay),
            (0.1, 86400, 0.1),
        )
        self.assertEqual((config.rotate_size, config.client_buffer), (1 << 20, 1 << 30))
        self.assertEqual(
            parse("--heartbeat", "0", "--rotate-size", "0").config().heartbeat, 0
        )

    def test_rotate(self) -> None:
        """
        --rotate takes daily, hourly or none and lists them when wrong.
        """
        self.assertEqual(parse("--rotate", "hourly").config().rotate, "hourly")
        self.assertUsageError(
            [*BASE, "--rotate", "weekly"], "--rotate", "'weekly'", "daily, hourly, none"
        )

    def test_sizes(self) -> None:
        """
        Sizes take binary units; nonsense and too-small buffers are refused.
        """
        config = parse("--rotate-size", "100MiB", "--client-buffer", "512k").config()
        self.assertEqual(config.rotate_size, 100 << 20)
        self.assertEqual(config.client_buffer, 512 << 10)
        self.assertUsageError(
            [*BASE, "--client-buffer", "lots"], "--client-buffer", "'lots'"
        )
        self.assertUsageError(
            [*BASE, "--client-buffer", "10"], "--client-buffer", "out of range"
        )

    def test_parentPid(self) -> None:
        """
        --parent-pid must be a positive whole number.
        """
        self.assertEqual(parse("--parent-pid", "42").config().parent_pid, 42)
        self.assertUsageError([*BASE, "--parent-pid", "x"], "--parent-pid", "'x'")
        self.assertUsageError([*BASE, "--parent-pid", "-3"], "--parent-pid")

    def test_parseSize(self) -> None:
        """
        L{parse_size} reads plain and suffixed sizes.
        """
        self.assertEqual(parse_size("4096"), 4096)
        self.assertEqual(parse_size("4MiB"), 4 << 20)
        self.assertEqual(parse_size("1G"), 1 << 30)
        self.assertRaises(ValueError, parse_size, "4 potatoes")

    def test_publicConfigMasksSecrets(self) -> None:
        """
        get_config never shows credentials that appear in endpoint strings.
        """
        options = PortAgentOptions()
        options.parseOptions(["--name", "X", "--instrument", "tcp:host=h:port=1"])
        config = options.config()
        from dataclasses import replace

        secret = replace(
            config, instrument="tls:h:443:privateKey=/k.pem:password=hunter2"
        )
        public = secret.public()
        self.assertNotIn("hunter2", str(public))
        self.assertNotIn("/k.pem", str(public))

    def test_demoRecordingShipped(self) -> None:
        """
        C{--instrument demo} is accepted and its recording ships with the
        package.
        """
        options = PortAgentOptions()
        options.parseOptions(["--name", "DEMO01", "--instrument", "demo"])
        self.assertTrue(demo_recording().is_file())

    def test_demoRecordingMissing(self) -> None:
        """
        If the built-in recording is missing, C{demo} is refused with a
        message saying so, not a traceback later.
        """
        from instrumentd.portagent import options as module

        missing = module.Path(self.mktemp())
        self.patch(module, "demo_recording", lambda: missing)
        self.assertUsageError(
            ["--name", "X", "--instrument", "demo"],
            "--instrument",
            "recording is missing",
        )

    def test_statusFileDirectory(self) -> None:
        """
        A --status-file in a directory that does not exist is refused when
        options are parsed, not after start-up.
        """
        self.assertUsageError(
            [*BASE, "--status-file", "/nonexistent/dir/status.json"],
            "--status-file",
            "/nonexistent/dir",
        )

    def test_version(self) -> None:
        """
        --version prints instrumentd's version, not Twisted's.
        """
        import io
        from contextlib import redirect_stdout

        out = io.StringIO()
        with redirect_stdout(out):
            self.assertRaises(
                SystemExit, PortAgentOptions().parseOptions, ["--version"]
            )
        self.assertTrue(out.getvalue().startswith("instrumentd "))
