# -*- test-case-name: tests.test_instrumentctl -*-
"""
``instrumentctl``: see and steer a station's instruments from a shell.

It speaks the station's HTTP JSON API (``doc/api.md``) with treq, or,
with ``--broker``, the stations' MQTT requests through a broker
(:mod:`instrumentd.cli._broker`)::

    instrumentctl list
    instrumentctl status ctd1
    instrumentctl get ctd1 INTERVAL
    instrumentctl set ctd1 INTERVAL=10 OUTPUT_SAL=true
    instrumentctl run ctd1 acquire_sample
    instrumentctl watch ctd1
    instrumentctl watch             (every instrument, on one connection)
    instrumentctl --broker mqtt://shore:1883 list     (every station's)
    instrumentctl --broker mqtt://shore:1883 get buoy-1/ctd1 INTERVAL

The output is aligned tables for people, or the API's JSON with ``--json``
for scripts.  The exit status is an :class:`ExitCode`.  See ``doc/cli.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from typing import IO, Any, NoReturn
from urllib.parse import urlsplit

from twisted.internet.defer import Deferred

from instrumentd import __version__
from instrumentd.cli._client import StationClient
from instrumentd.cli._commands import COMMANDS, parse_assignments, parse_value
from instrumentd.cli._exit import APIError, Exit, ExitCode
from instrumentd.cli._format import Output, format_table
from instrumentd.cli._watch import watch

__all__ = [
    "DEFAULT_URL",
    "ExitCode",
    "format_table",
    "main",
    "parse_assignments",
    "parse_value",
    "run",
]

#: Where the station's API listens unless told otherwise.
DEFAULT_URL = "http://127.0.0.1:8700"


class _ArgumentParser(argparse.ArgumentParser):
    """
    An argparse parser that writes to the given streams and raises
    :class:`Exit` rather than exiting.
    """

    def __init__(self, *args: Any, out: IO[str], err: IO[str], **kwargs: Any) -> None:
        """
        :param out: where help goes.
        :param err: where usage errors go.
        """
        super().__init__(*args, **kwargs)
        self.out = out
        self.err = err

    def _print_message(self, message: str, file: Any = None) -> None:
        if message:
            (self.err if file is sys.stderr else self.out).write(message)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            self.err.write(message)
        raise Exit(status)

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(ExitCode.USAGE, f"{self.prog}: error: {message}\n")


_EPILOG = """\
exit status: 0 ok; 1 the station or instrument refused or failed (its message
is shown); 2 bad command line; 3 station unreachable, no answer in time, or
event stream closed; 4 a token is needed or was wrong; 130 interrupted.
"""


def build_parser(out: IO[str], err: IO[str]) -> argparse.ArgumentParser:
    """
    The command line's parser.

    :param out: where help goes.
    :param err: where usage errors go.
    :returns: the parser; its ``parse_args`` raises ``Exit`` instead of
        exiting.
    """

    # The common options are accepted before or after the subcommand;
    # SUPPRESS keeps a subcommand's default from hiding a value given
    # before it.
    def common(suppress: bool) -> _ArgumentParser:
        parent = _ArgumentParser(add_help=False, out=out, err=err)
        default: dict[str, Any] = (
            {"default": argparse.SUPPRESS} if suppress else {"default": None}
        )
        parent.add_argument(
            "--url",
            help=f"the station's API (default: $INSTRUMENTD_URL or {DEFAULT_URL})",
            **default,
        )
        tokens = parent.add_mutually_exclusive_group()
        tokens.add_argument(
            "--token",
            help="the station's API token (default: $INSTRUMENTD_TOKEN)",
            **default,
        )
        tokens.add_argument(
            "--token-file", metavar="PATH", help="read the token from PATH", **default
        )
        broker = parent.add_argument_group(
            "through an MQTT broker (instruments named STATION/INSTRUMENT)"
        )
        broker.add_argument(
            "--broker",
            metavar="ADDRESS",
            help="reach the stations through this MQTT broker instead of one "
            "station's API: mqtt://HOST[:PORT], mqtts://HOST[:PORT] (TLS) "
            "(default: $INSTRUMENTD_BROKER)",
            **default,
        )
        broker.add_argument(
            "--broker-username", metavar="NAME", help="the MQTT user name", **default
        )
        broker.add_argument(
            "--broker-password-file",
            metavar="PATH",
            help="read the MQTT password from PATH (never on the command line)",
            **default,
        )
        broker.add_argument(
            "--broker-ca",
            metavar="PATH",
            help="PEM certificates the broker's must chain to (mqtts://)",
            **default,
        )
        broker.add_argument(
            "--broker-cert",
            metavar="PATH",
            help="a PEM client certificate, for brokers that ask for one",
            **default,
        )
        broker.add_argument(
            "--broker-key", metavar="PATH", help="its PEM private key", **default
        )
        parent.add_argument(
            "--json",
            action="store_true",
            help="print the API's JSON instead of tables",
            **({"default": argparse.SUPPRESS} if suppress else {"default": False}),
        )
        parent.add_argument(
            "--timeout",
            type=float,
            metavar="SECONDS",
            help="how long to wait for an answer (default: 60)",
            **({"default": argparse.SUPPRESS} if suppress else {"default": 60.0}),
        )
        return parent

    parser = _ArgumentParser(
        out=out,
        err=err,
        prog="instrumentctl",
        description="See and steer the instruments of a running instrumentd station.",
        epilog=_EPILOG,
        parents=[common(False)],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_ArgumentParser
    )
    parents = [common(True)]

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name, help=help, description=help, parents=parents, out=out, err=err
        )

    command("list", "list the instruments and their states")
    status = command("status", "show one instrument: state, commands, parameters")
    status.add_argument("name", metavar="NAME")
    get = command("get", "read parameters from the instrument (all, or those named)")
    get.add_argument("name", metavar="NAME")
    get.add_argument("parameters", metavar="PARAM", nargs="*")
    set_ = command("set", "set parameters (values are JSON when they parse as JSON)")
    set_.add_argument("name", metavar="NAME")
    set_.add_argument("assignments", metavar="PARAM=VALUE", nargs="+")
    run_ = command("run", "run a command, with arguments ARG=VALUE")
    run_.add_argument("name", metavar="NAME")
    # Optional, so that ``run NAME`` alone can list the commands.
    run_.add_argument("instrument_command", metavar="COMMAND", nargs="?")
    run_.add_argument("assignments", metavar="ARG=VALUE", nargs="*")
    watch = command(
        "watch",
        "show live samples, state changes and errors "
        "(of the instruments named, or of every instrument)",
    )
    watch.add_argument("names", metavar="NAME", nargs="*")
    return parser


def _token(options: argparse.Namespace, environ: Mapping[str, str]) -> str | None:
    if options.token:
        return str(options.token)
    if options.token_file:
        try:
            with open(options.token_file, encoding="utf-8") as file:
                return file.read().strip()
        except OSError as error:
            raise Exit(
                ExitCode.USAGE,
                f"cannot read the token file {options.token_file}: {error.strerror}",
            ) from None
    return environ.get("INSTRUMENTD_TOKEN") or None


def parse(argv: Sequence[str], out: IO[str], err: IO[str]) -> argparse.Namespace:
    """
    Parse the command line.

    :raises Exit: for ``--help``, ``--version`` and usage errors.
    """
    return build_parser(out, err).parse_args(list(argv))


async def execute(
    reactor: Any,
    options: argparse.Namespace,
    *,
    stdout: IO[str],
    stderr: IO[str],
    environ: Mapping[str, str],
    interrupted: Deferred[None] | None = None,
) -> int:
    """
    Carry out a parsed command line.

    :param reactor: the reactor treq uses.
    :param options: from :func:`parse`.
    :param stdout: where results go.
    :param stderr: where messages go.
    :param environ: the environment (``INSTRUMENTD_URL``,
        ``INSTRUMENTD_TOKEN``).
    :param interrupted: fires to stop ``watch`` (Ctrl-C).
    :returns: the exit status.
    """
    from treq.client import HTTPClient
    from twisted.web.client import Agent, HTTPConnectionPool

    out = Output(stdout, stderr, options.json)
    broker_address = options.broker or environ.get("INSTRUMENTD_BROKER")
    if broker_address:
        return await _through_broker(reactor, options, out, broker_address, interrupted)
    try:
        url = options.url or environ.get("INSTRUMENTD_URL") or DEFAULT_URL
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
            raise Exit(
                ExitCode.USAGE, f"--url must be an http:// or https:// URL, not {url!r}"
            )
        # One connection per request: a command makes only a few, and none
        # is left open when it ends.
        pool = HTTPConnectionPool(reactor, persistent=False)
        http = HTTPClient(Agent(reactor, pool=pool))
        station = StationClient(
            reactor, http, url, _token(options, environ), options.timeout
        )
        if options.command == "watch":
            return await watch(
                station,
                options,
                out,
                interrupted if interrupted is not None else Deferred(),
            )
        return int(await COMMANDS[options.command](station, options, out))
    except Exit as leaving:
        if leaving.message:
            out.note(f"instrumentctl: {leaving.message}")
        return leaving.code
    except APIError as error:
        if out.as_json and error.body is not None:
            out.json(error.body)
        out.note(f"error: {error.message}")
        return ExitCode.AUTH if error.status == 401 else ExitCode.API_ERROR


def _broker_settings(options: argparse.Namespace, address: str) -> Any:
    from instrumentd.mqtt import BrokerSettings, address_problem

    problem = address_problem(address)
    if problem is not None:
        raise Exit(ExitCode.USAGE, f"--broker: {problem}")
    if options.url:
        raise Exit(
            ExitCode.USAGE,
            "--url and --broker: one or the other (a station's API, or every "
            "station through a broker)",
        )
    for flag, path in (
        ("--broker-password-file", options.broker_password_file),
        ("--broker-ca", options.broker_ca),
        ("--broker-cert", options.broker_cert),
        ("--broker-key", options.broker_key),
    ):
        if path is not None and not os.access(path, os.R_OK):
            raise Exit(ExitCode.USAGE, f"{flag}: cannot read the file {path!r}")
    return BrokerSettings(
        address=address,
        client_id=f"instrumentctl-{os.urandom(6).hex()}",
        username=options.broker_username,
        password_file=options.broker_password_file,
        ca_file=options.broker_ca,
        cert_file=options.broker_cert,
        key_file=options.broker_key,
        clean_start=True,
        session_expiry=0,
    )


async def _through_broker(
    reactor: Any,
    options: argparse.Namespace,
    out: Output,
    address: str,
    interrupted: Deferred[None] | None,
) -> int:
    from instrumentd.cli._broker import BrokerClient, BrokerStation, broker_watch
    from instrumentd.mqtt import MQTTClient

    broker: BrokerClient | None = None
    try:
        settings = _broker_settings(options, address)
        client = MQTTClient(settings, reactor=reactor)
        broker = BrokerClient(reactor, client, options.timeout)
        await broker.connect()
        if options.command == "watch":
            return await broker_watch(
                broker,
                options,
                out,
                interrupted if interrupted is not None else Deferred(),
            )
        station: Any = BrokerStation(broker)
        return int(await COMMANDS[options.command](station, options, out))
    except Exit as leaving:
        if leaving.message:
            out.note(f"instrumentctl: {leaving.message}")
        return leaving.code
    except APIError as error:
        if out.as_json and error.body is not None:
            out.json(error.body)
        out.note(f"error: {error.message}")
        return ExitCode.AUTH if error.status == 401 else ExitCode.API_ERROR
    finally:
        if broker is not None:
            await broker.close()


async def run(
    reactor: Any,
    argv: Sequence[str],
    *,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
    environ: Mapping[str, str] | None = None,
    interrupted: Deferred[None] | None = None,
) -> int:
    """
    Run ``instrumentctl`` in a running reactor: what :func:`main` does,
    without exiting.

    :param reactor: the reactor.
    :param argv: the arguments (without the program name).
    :param stdout: where results go (default ``sys.stdout``).
    :param stderr: where messages go (default ``sys.stderr``).
    :param environ: the environment (default ``os.environ``).
    :param interrupted: fires to stop ``watch``.
    :returns: the exit status (:class:`ExitCode`).
    """
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    try:
        options = parse(argv, out, err)
    except Exit as leaving:
        return leaving.code
    return await execute(
        reactor,
        options,
        stdout=out,
        stderr=err,
        environ=os.environ if environ is None else environ,
        interrupted=interrupted,
    )


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """
    The ``instrumentctl`` console script: parse, run the reactor until the
    command is done, exit with its status.

    :param argv: the arguments (default ``sys.argv[1:]``).
    """
    from twisted.internet import task

    arguments = sys.argv[1:] if argv is None else list(argv)
    try:
        options = parse(arguments, sys.stdout, sys.stderr)
    except Exit as leaving:
        sys.exit(leaving.code)

    async def react_main(reactor: Any) -> None:
        interrupted: Deferred[None] = Deferred()
        outcome: Deferred[int] = Deferred()

        def stopping() -> None:
            # Ctrl-C: the reactor is stopping before the command is done.
            if not outcome.called:
                interrupted.callback(None)
                if not outcome.called:
                    if options.command == "watch":
                        outcome.callback(ExitCode.OK)
                    else:
                        sys.stderr.write(
                            "instrumentctl: interrupted before the station "
                            "answered; the request may still be carried out\n"
                        )
                        outcome.callback(ExitCode.INTERRUPTED)

        reactor.addSystemEventTrigger("before", "shutdown", stopping)
        work = Deferred.fromCoroutine(
            execute(
                reactor,
                options,
                stdout=sys.stdout,
                stderr=sys.stderr,
                environ=os.environ,
                interrupted=interrupted,
            )
        )
        work.addBoth(
            lambda result: None if outcome.called else outcome.callback(result)
        )
        code = await outcome
        raise SystemExit(code)

    task.react(react_main)
