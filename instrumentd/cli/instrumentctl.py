# -*- test-case-name: tests.test_instrumentctl -*-
"""
``instrumentctl``: see and steer a station's instruments from a shell.

It speaks the station's HTTP JSON API (``doc/api.md``) with treq::

    instrumentctl list
    instrumentctl status ctd1
    instrumentctl get ctd1 INTERVAL
    instrumentctl set ctd1 INTERVAL=10 OUTPUT_SAL=true
    instrumentctl run ctd1 acquire_sample
    instrumentctl watch ctd1

The output is aligned tables for people, or the API's JSON with ``--json``
for scripts.  The exit status is an :class:`ExitCode`.  See ``doc/cli.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from enum import IntEnum
from typing import IO, TYPE_CHECKING, Any, NoReturn, cast
from urllib.parse import quote, urlsplit

from twisted.internet.defer import CancelledError, Deferred, race
from twisted.internet.error import ConnectError, ConnectionRefusedError, DNSLookupError
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import ResponseFailed

from instrumentd import __version__
from instrumentd.station.sse import EventStreamParser, ServerSentEvent

if TYPE_CHECKING:
    from treq.client import HTTPClient
    from treq.response import _Response

__all__ = ["DEFAULT_URL", "ExitCode", "format_table", "main", "run"]

#: Where the station's API listens unless told otherwise.
DEFAULT_URL = "http://127.0.0.1:8700"


class ExitCode(IntEnum):
    """
    The exit statuses, for scripts.
    """

    #: Done.
    OK = 0
    #: The station refused the request or it failed there (the message is
    #: the station's); or the instrument reported an error.
    API_ERROR = 1
    #: The command line was wrong (argparse uses 2 too).
    USAGE = 2
    #: The station could not be reached, or did not answer in time, or
    #: closed an event stream.
    UNREACHABLE = 3
    #: The station wants a token, or not the one given.
    AUTH = 4
    #: Interrupted (Ctrl-C) before the request finished; ``watch`` exits
    #: with OK instead.
    INTERRUPTED = 130


class _Exit(Exception):
    """
    Leave with this status (raised instead of ``sys.exit`` so that the
    tool can run inside a reactor, and in tests).
    """

    def __init__(self, code: int, message: str | None = None) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message


class _ArgumentParser(argparse.ArgumentParser):
    """
    An argparse parser that writes to the given streams and raises
    :class:`_Exit` rather than exiting.
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
        raise _Exit(status)

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
    :returns: the parser; its ``parse_args`` raises ``_Exit`` instead of
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
    run_.add_argument("instrument_command", metavar="COMMAND")
    run_.add_argument("assignments", metavar="ARG=VALUE", nargs="*")
    watch = command("watch", "show live samples, state changes and errors")
    watch.add_argument("name", metavar="NAME")
    return parser


def parse_value(text: str) -> object:
    """
    A value from the command line: JSON if it parses as JSON (``10``,
    ``true``, ``"10"``, ``[1, 2]``), else the text itself.

    :param text: the text after ``=``.
    :returns: the value.
    """
    try:
        return cast(object, json.loads(text))
    except ValueError:
        return text


def parse_assignments(items: Sequence[str]) -> dict[str, object]:
    """
    ``NAME=VALUE`` items as a dict.

    :param items: the items.
    :returns: name → value (see :func:`parse_value`).
    :raises _Exit: USAGE, naming an item without ``=`` or a name.
    """
    values: dict[str, object] = {}
    for item in items:
        name, equals, text = item.partition("=")
        if not equals or not name:
            raise _Exit(ExitCode.USAGE, f"expected NAME=VALUE, not {item!r}")
        values[name] = parse_value(text)
    return values


def _cell(value: object) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """
    An aligned table: columns padded to their widest cell, two spaces
    apart, no trailing spaces.

    :param headers: the column titles.
    :param rows: the rows; non-text values are shown as JSON.
    :returns: the lines, each ending in a newline.
    """
    cells = [list(headers), *([_cell(value) for value in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "".join(
        "  ".join(
            cell.ljust(width) for cell, width in zip(row, widths, strict=True)
        ).rstrip()
        + "\n"
        for row in cells
    )


def _time(value: object) -> str:
    if not isinstance(value, int | float):
        return "-"
    moment = datetime.fromtimestamp(value, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class _APIError(Exception):
    """
    The station answered with an error.
    """

    def __init__(self, status: int, message: str, body: object) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.body = body


class _Station:
    """
    The station's API, through treq.
    """

    def __init__(
        self,
        reactor: Any,
        http: HTTPClient,
        url: str,
        token: str | None,
        timeout: float,
    ) -> None:
        self.reactor = reactor
        self.http = http
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def _headers(self) -> dict[bytes | str, bytes | str]:
        headers: dict[bytes | str, bytes | str] = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def unreachable(self, reason: Failure) -> NoReturn:
        """
        Explain why the station could not be reached, and exit.
        """
        where = f"the station at {self.url}"
        # treq's timeout cancels the request; a cancelled request in flight
        # fails as ResponseFailed holding the CancelledError.
        inner = getattr(reason.value, "reasons", None) or []
        if reason.check(CancelledError) or any(
            isinstance(each, Failure) and each.check(CancelledError) for each in inner
        ):
            raise _Exit(
                ExitCode.UNREACHABLE,
                f"no answer from {where} within {self.timeout:g} s (a change "
                f"may still be carried out); --timeout waits longer",
            )
        if reason.check(DNSLookupError):
            host = urlsplit(self.url).hostname
            raise _Exit(
                ExitCode.UNREACHABLE,
                f"cannot reach {where}: cannot resolve the host name {host!r}",
            )
        if reason.check(ConnectError):
            error = reason.value
            what = (
                "connection refused"
                if isinstance(error, ConnectionRefusedError)
                else str(error).strip() or type(error).__name__
            )
            raise _Exit(
                ExitCode.UNREACHABLE,
                f"cannot reach {where}: {what} — is `twistd -n instrumentd` running?",
            )
        if reason.check(ResponseFailed):
            raise _Exit(
                ExitCode.UNREACHABLE,
                f"{where} closed the connection before answering",
            )
        reason.raiseException()
        raise AssertionError("unreachable")  # for mypy: raiseException raises

    async def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, object] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """
        Make a request and return the JSON answer.

        :raises _APIError: for an error answer.
        :raises _Exit: when the station cannot be reached.
        """
        kwargs: dict[str, Any] = {}
        if body is not None:
            kwargs["json"] = dict(body)
        try:
            response = await self.http.request(
                method,
                self.url + path,
                params=dict(params or {}),
                headers=self._headers(),
                allow_redirects=False,
                timeout=self.timeout,
                reactor=self.reactor,
                **kwargs,
            )
            content = await response.content()
        except Exception:
            self.unreachable(Failure())
        try:
            decoded = json.loads(content)
        except ValueError:
            raise _APIError(
                response.code,
                f"the station at {self.url} answered {response.code} with "
                f"something that is not JSON",
                None,
            ) from None
        if response.code >= 400:
            error = decoded.get("error") if isinstance(decoded, dict) else None
            message = (
                error.get("message") if isinstance(error, dict) else None
            ) or f"the station answered {response.code}"
            raise _APIError(response.code, str(message), decoded)
        return decoded

    async def stream(self, path: str) -> _Response:
        """
        Open an event stream.

        :returns: the response, whose body is the stream.
        """
        try:
            response = await self.http.request(
                "GET",
                self.url + path,
                headers={**self._headers(), "Accept": "text/event-stream"},
                allow_redirects=False,
                timeout=self.timeout,
                reactor=self.reactor,
                # Unbuffered: treq would otherwise keep the whole stream in
                # memory for as long as it lasts.
                unbuffered=True,
            )
        except Exception:
            self.unreachable(Failure())
        if response.code >= 400:
            content = await response.content()
            try:
                decoded = json.loads(content)
                message = decoded["error"]["message"]
            except (ValueError, KeyError, TypeError):
                decoded, message = None, f"the station answered {response.code}"
            raise _APIError(response.code, str(message), decoded)
        return response


def _instrument_path(name: str) -> str:
    return "/api/instruments/" + quote(name, safe="")


class _Output:
    """
    Where results go.
    """

    def __init__(self, out: IO[str], err: IO[str], as_json: bool) -> None:
        self.out = out
        self.err = err
        self.as_json = as_json

    def write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def json(self, value: object) -> None:
        self.write(json.dumps(value, indent=2) + "\n")

    def note(self, text: str) -> None:
        self.err.write(text + "\n")
        self.err.flush()


async def _list(station: _Station, options: argparse.Namespace, out: _Output) -> int:
    body = await station.request("GET", "/api/instruments")
    if out.as_json:
        out.json(body)
        return ExitCode.OK
    instruments = body.get("instruments", [])
    if not instruments:
        out.write("no instruments\n")
        return ExitCode.OK
    out.write(
        format_table(
            ["NAME", "STATE", "CONNECTED", "SAMPLES", "LATEST SAMPLE"],
            [
                [
                    each.get("name"),
                    each.get("state"),
                    "yes" if each.get("connected") else "no",
                    each.get("samples", 0),
                    _time(each.get("latest_sample_time")),
                ]
                for each in instruments
            ],
        )
    )
    return ExitCode.OK


def _sample_values(sample: Mapping[str, Any] | None) -> list[tuple[str, object]]:
    if not sample:
        return []
    particle = sample.get("particle") or {}
    values = particle.get("values") if isinstance(particle, Mapping) else None
    if not isinstance(values, list):
        return []
    return [
        (str(each.get("value_id")), each.get("value"))
        for each in values
        if isinstance(each, Mapping)
    ]


async def _status(station: _Station, options: argparse.Namespace, out: _Output) -> int:
    body = await station.request("GET", _instrument_path(options.name))
    if out.as_json:
        out.json(body)
        return ExitCode.OK
    driver = (body.get("metadata") or {}).get("driver") or {}
    capabilities = body.get("capabilities") or {}
    counters = body.get("counters") or {}
    port_agent = body.get("port_agent")
    lines = [
        f"{body.get('name')}: {body.get('state')}"
        + ("" if body.get("connected") else " (not connected)"),
    ]
    if driver:
        lines.append(
            f"driver:     {driver.get('name', '?')} {driver.get('version', '')}"
        )
    lines.append(
        f"commands:   {', '.join(capabilities.get('commands') or []) or 'none now'}"
    )
    lines.append(
        f"samples:    {counters.get('samples', 0)}, errors: {counters.get('errors', 0)}"
    )
    latest = body.get("latest_sample")
    if latest:
        values = ", ".join(f"{k}={_cell(v)}" for k, v in _sample_values(latest))
        lines.append(f"latest:     {_time(latest.get('time'))} {values}")
    error = body.get("latest_error")
    if error:
        lines.append(f"last error: {_time(error.get('time'))} {error.get('message')}")
    if isinstance(port_agent, Mapping):
        parts = [f"pid {port_agent['pid']}"] if "pid" in port_agent else []
        ports = port_agent.get("ports")
        if isinstance(ports, Mapping):
            parts.extend(f"{kind} {_cell(port)}" for kind, port in ports.items())
        lines.append(f"port agent: {', '.join(parts) or _cell(port_agent)}")
    out.write("\n".join(lines) + "\n")
    parameters = body.get("parameters") or {}
    if parameters:
        out.write(
            "\n" + format_table(["PARAMETER", "VALUE"], sorted(parameters.items()))
        )
    return ExitCode.OK


async def _get(station: _Station, options: argparse.Namespace, out: _Output) -> int:
    params = {"names": ",".join(options.parameters)} if options.parameters else None
    body = await station.request(
        "GET", _instrument_path(options.name) + "/parameters", params=params
    )
    if out.as_json:
        out.json(body)
        return ExitCode.OK
    out.write(format_table(["PARAMETER", "VALUE"], list(body["parameters"].items())))
    return ExitCode.OK


async def _set(station: _Station, options: argparse.Namespace, out: _Output) -> int:
    values = parse_assignments(options.assignments)
    body = await station.request(
        "PATCH", _instrument_path(options.name) + "/parameters", values
    )
    if out.as_json:
        out.json(body)
        return ExitCode.OK
    changed = body.get("changed") or {}
    if not changed:
        out.write("nothing changed: the instrument already had these values\n")
    else:
        out.write(format_table(["CHANGED", "VALUE"], list(changed.items())))
    return ExitCode.OK


def _result_text(result: object) -> str:
    if result is None:
        return ""
    if isinstance(result, Mapping) and all(
        not isinstance(v, Mapping | list) for v in result.values()
    ):
        return format_table(["NAME", "VALUE"], list(result.items()))
    if (
        isinstance(result, list)
        and result
        and all(isinstance(row, Mapping) for row in result)
    ):
        headers = list(dict.fromkeys(key for row in result for key in row))
        return format_table(
            headers, [[row.get(h, "") for h in headers] for row in result]
        )
    if isinstance(result, str):
        return result.rstrip("\n") + "\n"
    return json.dumps(result, indent=2) + "\n"


async def _run(station: _Station, options: argparse.Namespace, out: _Output) -> int:
    arguments = parse_assignments(options.assignments)
    path = (
        _instrument_path(options.name)
        + "/commands/"
        + quote(options.instrument_command, safe="")
    )
    body = await station.request("POST", path, arguments)
    if out.as_json:
        out.json(body)
        return ExitCode.OK
    out.write(f"{body.get('command')}: done; state now {body.get('state')}\n")
    out.write(_result_text(body.get("result")))
    return ExitCode.OK


class _StreamReader(Protocol):
    """
    Feeds an event stream's body to a parser; :meth:`stop` hangs up.
    """

    def __init__(self, parser: EventStreamParser) -> None:
        self.parser = parser
        self.ended: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.parser.feed(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if not self.ended.called:
            self.ended.callback(None)

    def stop(self) -> None:
        transport = self.transport
        if transport is not None:
            # The response body's transport: stopProducing closes the
            # connection.
            transport.stopProducing()  # type: ignore[attr-defined]


class _SampleTable:
    """
    Prints a stream's events: samples as rows of a table whose columns are
    the first sample's values, other events as lines between them.
    """

    def __init__(self, out: _Output) -> None:
        self.out = out
        self.columns: list[str] | None = None
        self.widths: list[int] = []

    def event(self, message: ServerSentEvent) -> None:
        try:
            data = json.loads(message.data)
        except ValueError:
            return
        if self.out.as_json:
            # The station's own compact JSON, one event a line.
            self.out.write(message.data + "\n")
            return
        when = _time(data.get("time"))
        if message.event == "SAMPLE":
            self.sample(when, dict(_sample_values(data)))
        elif message.event == "STATE_CHANGE":
            self.out.write(
                f"-- {when} state {data.get('previous')} -> {data.get('state')}\n"
            )
        elif message.event == "CONFIG_CHANGE":
            changes = ", ".join(
                f"{k}={_cell(v)}" for k, v in (data.get("changes") or {}).items()
            )
            self.out.write(f"-- {when} parameters changed: {changes}\n")
        elif message.event == "ERROR":
            self.out.write(
                f"-- {when} error {data.get('error_code')}: {data.get('message')}\n"
            )

    def sample(self, when: str, values: Mapping[str, object]) -> None:
        if self.columns is None:
            self.columns = list(values)
            headers = ["TIME", *(name.upper() for name in self.columns)]
            first = [when, *(_cell(values.get(name, "")) for name in self.columns)]
            # Room for values a little wider than the first ones, so the
            # columns stay aligned as numbers change.
            self.widths = [
                max(len(h), len(c) + 2) for h, c in zip(headers, first, strict=True)
            ]
            self.widths[0] = len(first[0])
            self.row(headers)
        cells = [when, *(_cell(values.get(name, "")) for name in self.columns)]
        self.row(cells)

    def row(self, cells: Sequence[str]) -> None:
        self.out.write(
            "  ".join(
                cell.ljust(width)
                for cell, width in zip(cells, self.widths, strict=True)
            ).rstrip()
            + "\n"
        )


async def _watch(
    station: _Station,
    options: argparse.Namespace,
    out: _Output,
    interrupted: Deferred[None],
) -> int:
    path = _instrument_path(options.name)
    response = await station.stream(
        path + "/events?types=SAMPLE,STATE_CHANGE,CONFIG_CHANGE,ERROR"
    )
    table = _SampleTable(out)
    reader = _StreamReader(EventStreamParser(table.event))
    response.deliverBody(reader)
    # Said once the stream is open, so that what follows is not missed.
    out.note(f"watching {options.name}; Ctrl-C to stop")
    which, _ = await race([reader.ended, interrupted])
    if which == 1:
        reader.stop()
        return ExitCode.OK
    out.note(f"the station at {station.url} closed the event stream")
    return ExitCode.UNREACHABLE


def _token(options: argparse.Namespace, environ: Mapping[str, str]) -> str | None:
    if options.token:
        return str(options.token)
    if options.token_file:
        try:
            with open(options.token_file, encoding="utf-8") as file:
                return file.read().strip()
        except OSError as error:
            raise _Exit(
                ExitCode.USAGE,
                f"cannot read the token file {options.token_file}: {error.strerror}",
            ) from None
    return environ.get("INSTRUMENTD_TOKEN") or None


_COMMANDS: dict[str, Callable[[_Station, argparse.Namespace, _Output], Any]] = {
    "list": _list,
    "status": _status,
    "get": _get,
    "set": _set,
    "run": _run,
}


def parse(argv: Sequence[str], out: IO[str], err: IO[str]) -> argparse.Namespace:
    """
    Parse the command line.

    :raises _Exit: for ``--help``, ``--version`` and usage errors.
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

    out = _Output(stdout, stderr, options.json)
    try:
        url = options.url or environ.get("INSTRUMENTD_URL") or DEFAULT_URL
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
            raise _Exit(
                ExitCode.USAGE, f"--url must be an http:// or https:// URL, not {url!r}"
            )
        # One connection per request: a command makes only a few, and none
        # is left open when it ends.
        pool = HTTPConnectionPool(reactor, persistent=False)
        http = HTTPClient(Agent(reactor, pool=pool))
        station = _Station(
            reactor, http, url, _token(options, environ), options.timeout
        )
        if options.command == "watch":
            return await _watch(
                station,
                options,
                out,
                interrupted if interrupted is not None else Deferred(),
            )
        return int(await _COMMANDS[options.command](station, options, out))
    except _Exit as leaving:
        if leaving.message:
            out.note(f"instrumentctl: {leaving.message}")
        return leaving.code
    except _APIError as error:
        if out.as_json and error.body is not None:
            out.json(error.body)
        out.note(f"error: {error.message}")
        return ExitCode.AUTH if error.status == 401 else ExitCode.API_ERROR


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
    except _Exit as leaving:
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
    except _Exit as leaving:
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
