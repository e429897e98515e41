# -*- test-case-name: tests.test_rfc2217_session -*-
"""
One RFC 2217 client of a port agent: a serial port over telnet.

The session negotiates BINARY, SUPPRESS-GO-AHEAD and COM-PORT-OPTION (and,
when a token is needed, NEW-ENVIRON, whose user variable TOKEN may carry
it; otherwise it is the first line of data) and refuses every other
option.  Data from the client goes to the instrument
(recorded as DATA_FROM_DRIVER, as from any client) while the session holds
the line; the instrument's bytes come back IAC-escaped through the
session's own bounded outlet.

Sharing, the one rule for every writer (raw-port operators and RFC 2217
sessions): the first to come holds the line; the others are read-only and
are told so, and when the holder leaves, the one that has waited longest
gets it.  While an RFC 2217 session holds the line, it has the instrument
to itself: bytes from data clients (a driver, in direct access or not) are
not sent, and the data clients are told with a fault, until the session
ends.  Only the holder changes the line's settings; when a session that
changed them ends, the line is put back as the agent opened it.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Final

from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from instrumentd.packet import PacketType
from instrumentd.portagent.access import MAX_TOKEN_LINE, REFUSED, TOKEN_TIMEOUT
from instrumentd.portagent.outlet import ClientOutlet
from instrumentd.portagent.rfc2217.comport import (
    FLOWCONTROL_RESUME,
    FLOWCONTROL_SUSPEND,
    SERVER,
    ComPort,
)
from instrumentd.portagent.rfc2217.environ import (
    NEW_ENVIRON,
    TOKEN_VARIABLE,
    parse_variables,
    send_request,
)
from instrumentd.portagent.rfc2217.line import (
    LineState,
    NominalLine,
    SerialLine,
    describe_state,
)
from instrumentd.portagent.rfc2217.telnet import (
    BINARY,
    COM_PORT_OPTION,
    SGA,
    OptionNegotiator,
    TelnetDecoder,
    escape,
    subnegotiation,
)

if TYPE_CHECKING:
    from twisted.internet.interfaces import IDelayedCall

    from instrumentd.portagent.agent import PortAgent
    from instrumentd.portagent.rfc2217.comport import LineBackend

__all__ = ["MODEM_POLL_INTERVAL", "RFC2217Factory", "RFC2217Session"]

#: Seconds between looks at the modem input lines while a session is open.
#: Linux offers no way to wait for a change without blocking a thread
#: (TIOCMIWAIT), so a timer reads them; only on devices that have them.
MODEM_POLL_INTERVAL: Final = 0.5

READ_ONLY_NOTICE: Final = (
    b"\r\n[instrumentd: another client has the instrument line; you are "
    b"read-only until they leave]\r\n"
)
WRITER_NOTICE: Final = (
    b"\r\n[instrumentd: you now have the line; what you send goes to the "
    b"instrument]\r\n"
)


class RFC2217Session(Protocol):
    """
    One RFC 2217 client connection.

    :ivar label: the client's address, for logs and records.
    :ivar exclusive: a holder of this kind keeps data clients off the line.
    :ivar authenticated: the token was given (or none is needed).
    :ivar comport: its COM-PORT-OPTION state.
    """

    exclusive = True
    log = Logger()

    def __init__(
        self,
        agent: PortAgent,
        line: LineBackend,
        token: bytes | None,
        clock: IReactorTime,
    ) -> None:
        self.agent = agent
        self.line = line
        self.label = "?"
        self.outlet: ClientOutlet | None = None
        self.authenticated = token is None
        self._token = token
        self._token_buffer = b""
        self._token_timer: IDelayedCall | None = None
        self._clock = clock
        self._suspended = False
        self._held: list[bytes] = []
        self._modem_poll: LoopingCall | None = None
        self._closed = False
        self._incoming = bytearray()
        self.decoder = TelnetDecoder(
            self._incoming.extend, self._negotiation, self._subnegotiation
        )
        # NEW-ENVIRON only when there is a token to ask for.
        accept_him = {BINARY, SGA, COM_PORT_OPTION}
        if token is not None:
            accept_him.add(NEW_ENVIRON)
        self.options = OptionNegotiator(
            self._send,
            accept_us={BINARY, SGA, COM_PORT_OPTION},
            accept_him=accept_him,
            on_change=self._option_changed,
        )
        self.comport = ComPort(
            line,
            signature=f"instrumentd {agent.version} {agent.config.name}".encode(),
            send=self._send,
            record=self._record,
            may_change=self._may_change,
            on_purge=self._purge,
            on_flow=self._flow,
        )

    # -- connection ------------------------------------------------------

    def connectionMade(self) -> None:
        from instrumentd.portagent.listeners import describe_peer

        self.label = describe_peer(self.transport.getPeer())  # type: ignore[union-attr]
        self.log.info("RFC 2217 client {client} connected", client=self.label)
        # Binary both ways, so that no byte is taken for NVT line-end
        # handling; the client asks for COM-PORT-OPTION itself.
        self.options.offer(BINARY)
        self.options.request(BINARY)
        self.options.offer(SGA)
        if self.authenticated:
            self._admitted()
        else:
            # A client that can send environment variables may give the
            # token as the user variable TOKEN; the others refuse and send
            # it as their first line of data.
            self.options.request(NEW_ENVIRON)
            self._token_timer = self._clock.callLater(
                TOKEN_TIMEOUT, self._refuse, "no token line in time"
            )

    def dataReceived(self, data: bytes) -> None:
        if not self._closed:
            self.decoder.feed(data)
            self._flush()

    def _flush(self) -> None:
        # The data of one read goes to the instrument in one write (one
        # DATA_FROM_DRIVER packet), however many IACs it held; before a
        # command is carried out, the data that came before it is sent.
        if self._incoming:
            data = bytes(self._incoming)
            self._incoming.clear()
            self._data(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._closed = True
        if self._token_timer is not None and self._token_timer.active():
            self._token_timer.cancel()
        if self._modem_poll is not None and self._modem_poll.running:
            self._modem_poll.stop()
        if self.outlet is not None:
            self.agent.router.remove_client("rfc2217", self.outlet)
        held = self.agent.writers.holder is self
        if held and self.comport.changed:
            try:
                state, note = self._restore()
            except Exception as e:  # the link went down: nothing to restore
                self._record(f"session ended; line not restored: {e}")
            else:
                self._record(
                    f"session ended; line restored to {describe_state(state)}: {note}"
                )
        self.agent.writers.leave(self)
        if held:
            self.agent.router.publish(
                PacketType.PORT_AGENT_FAULT,
                f"RFC 2217 client {self.label} released the instrument line".encode(),
            )
        self.log.info("RFC 2217 client {client} left", client=self.label)

    def _restore(self) -> tuple[LineState, str]:
        restore = getattr(self.line, "restore", None)
        if restore is None:
            return self.line.current(), "nothing to restore"
        result: tuple[LineState, str] = restore()
        return result

    # -- admission -------------------------------------------------------

    def _admitted(self) -> None:
        self.authenticated = True
        self.outlet = self.agent.router.add_client(
            "rfc2217",
            self.transport,  # type: ignore[arg-type]
            f"RFC 2217 client {self.label}",
        )
        if self.agent.writers.join(self):
            self.became_writer(first=True)
        else:
            self._send(READ_ONLY_NOTICE)
            self._send_flow(suspend=True)

    def _token_given(self, given: bytes) -> bool:
        """
        Compare a token, in constant time; refuse the client if it is wrong,
        admit it if it is right.

        :returns: whether it was right.
        """
        assert self._token is not None
        if not hmac.compare_digest(given, self._token):
            self._refuse("wrong token")
            return False
        if self._token_timer is not None and self._token_timer.active():
            self._token_timer.cancel()
        self._admitted()
        return True

    def _check_token(self, data: bytes) -> bytes | None:
        """
        Collect the token line; return what follows it once it is right.
        """
        assert self._token is not None
        self._token_buffer += data
        end = self._token_buffer.find(b"\n")
        if end < 0:
            if len(self._token_buffer) >= MAX_TOKEN_LINE:
                self._refuse("first line too long")
            return None
        line, rest = self._token_buffer[:end], self._token_buffer[end + 1 :]
        self._token_buffer = b""
        if line.endswith(b"\r"):
            line = line[:-1]
        return rest if self._token_given(line) else None

    def _refuse(self, why: str) -> None:
        if self._closed or self.transport is None:
            return
        self._closed = True
        self.log.warn(
            "rfc2217 client {client} refused: {why}", client=self.label, why=why
        )
        self.transport.write(escape(REFUSED))
        self.transport.loseConnection()

    # -- the line --------------------------------------------------------

    def became_writer(self, first: bool = False) -> None:
        """
        This session now holds the instrument line.
        """
        if not first:
            self._send(WRITER_NOTICE)
            self._send_flow(suspend=False)
        self._record(
            f"holds the instrument line ({describe_state(self.line.current())})"
        )
        self.agent.router.publish(
            PacketType.PORT_AGENT_FAULT,
            (
                f"RFC 2217 client {self.label} holds the instrument line; bytes "
                "from data clients are not sent until it leaves"
            ).encode(),
        )

    def _may_change(self) -> str | None:
        if not self.authenticated:
            return "the token has not been given"
        if self.agent.writers.holder is not self:
            return "another client has the instrument line"
        return None

    def _data(self, data: bytes) -> None:
        if self._closed:
            return
        if not self.authenticated:
            rest = self._check_token(data)
            if not rest:
                return
            data = rest
        if self.agent.writers.holder is self and not self.agent.to_instrument(
            data, f"RFC 2217 client {self.label}", client=self
        ):
            self._send(
                b"\r\n[instrumentd: not sent: the instrument link is down or "
                b"backed up]\r\n"
            )

    def _negotiation(self, verb: int, option: int) -> None:
        self._flush()
        self.options.received(verb, option)

    def _option_changed(self, side: str, option: int, on: bool) -> None:
        if option == NEW_ENVIRON and on and side == "him" and not self.authenticated:
            self._send(subnegotiation(NEW_ENVIRON, send_request()))
            return
        if option != COM_PORT_OPTION or not on or side != "him":
            return
        # The client speaks RFC 2217: tell it the modem lines now (pyserial
        # reads CTS, DSR, RI and CD only from these notifications), and on
        # every change if the device has modem lines to watch.
        self.comport.notify_modem(force=True)
        if self.line.modem_lines() is not None and self._modem_poll is None:
            self._modem_poll = LoopingCall(self.comport.notify_modem)
            self._modem_poll.clock = self._clock
            self._modem_poll.start(MODEM_POLL_INTERVAL, now=False)

    def _subnegotiation(self, option: int, payload: bytes) -> None:
        self._flush()
        if option == COM_PORT_OPTION:
            self.comport.handle(payload)
        elif option == NEW_ENVIRON and not self.authenticated and not self._closed:
            variables = parse_variables(payload) or {}
            given = variables.get(TOKEN_VARIABLE)
            if given is not None and self._token_given(given):
                # Data that came before, held as a possible token line, is
                # data after all.
                held, self._token_buffer = self._token_buffer, b""
                if held:
                    self._data(held)

    def _record(self, text: str) -> None:
        self.agent.router.publish(
            PacketType.PORT_AGENT_COMMAND,
            f"rfc2217 {self.label}: {text}".encode(),
        )

    # -- sending ---------------------------------------------------------

    def _send(self, data: bytes) -> None:
        """
        Telnet bytes of our own (negotiation, answers, notices), in order
        with the instrument's data.
        """
        if self.outlet is not None:
            self.outlet.send(data)
        elif self.transport is not None:
            self.transport.write(data)

    def _send_flow(self, suspend: bool) -> None:
        command = FLOWCONTROL_SUSPEND if suspend else FLOWCONTROL_RESUME
        self._send(subnegotiation(COM_PORT_OPTION, bytes([command + SERVER])))

    def _purge(self, which: int) -> None:
        # 1: our receive buffer, what the instrument sent that this client
        # has not been sent yet: dropped from this session's queue only;
        # every other client and the datalog keep it.  2: bytes from the
        # client are handed to the line as they arrive; none are waiting.
        if which in (1, 3) and self.outlet is not None:
            dropped = self.outlet.purge()
            if dropped:
                self._record(f"purged {dropped} bytes waiting to be sent to it")

    def _flow(self, resume: bool) -> None:
        if self.outlet is None:
            return
        if resume:
            self.outlet.release()
        else:
            self.outlet.hold()


class RFC2217Factory(Factory):
    """
    Builds RFC 2217 sessions for an agent; all share one line.
    """

    noisy = False

    def __init__(
        self, agent: PortAgent, token: bytes | None, clock: IReactorTime
    ) -> None:
        """
        :param agent: the agent.
        :param token: the token clients must send first, or ``None``.
        :param clock: for the token timeout and the modem-line watch.
        """
        self.agent = agent
        self.token = token
        self.clock = clock
        self.line = make_line(agent)

    def buildProtocol(self, addr: IAddress | None) -> Protocol:
        return RFC2217Session(self.agent, self.line, self.token, self.clock)


def make_line(agent: PortAgent) -> LineBackend:
    """
    The line RFC 2217 sessions change: the real one for a ``serial:``
    instrument, a nominal one otherwise.
    """
    from instrumentd.endpoints.serial import SerialSettings
    from instrumentd.interfaces import ISerialLineControl

    if agent.config.instrument.startswith("serial:"):

        def transport() -> ISerialLineControl | None:
            current = agent.link.transport
            return ISerialLineControl(current, None)

        return SerialLine(transport)
    return NominalLine(
        LineState(SerialSettings()),
        "the instrument link is not a serial line; a device server keeps its "
        "own settings",
    )
