"""
The driver framework: what someone adding an instrument builds on.

A driver is a small declarative description of its instrument (its
parameters, commands, data particles and how its byte stream splits into
records) plus a few handlers.  The framework supplies the rest, event-driven
throughout: no sleeps, no polling, no threads.

- :mod:`instrumentd.driver.errors`: one hierarchy of errors, each with a
  stable code.
- :mod:`instrumentd.driver.events`: typed events and the bus that delivers
  them.
- :mod:`instrumentd.driver.chunker`: splitting the byte stream into
  complete, timestamped records.
- :mod:`instrumentd.driver.commands`: the command dictionary: commands,
  their arguments and metadata.
- :mod:`instrumentd.driver.parameters`: the parameter dictionary: types,
  visibility, ranges, reading values out of instrument text, staleness.
- :mod:`instrumentd.driver.particles`: data particles, the published form of
  each sample.
- :mod:`instrumentd.driver.engine`: the command/response engine: declared
  commands, prompts or regexes, timeouts, wake-up.
- :mod:`instrumentd.driver.protocol`: the instrument protocol base and its
  standard states (UNKNOWN, COMMAND, AUTOSAMPLE, DIRECT_ACCESS).
- :mod:`instrumentd.driver.connection_machine`: the connection lifecycle.
- :mod:`instrumentd.driver.driver`: the driver API.
- :mod:`instrumentd.driver.scheduler`: periodic jobs from the startup config.

Ready-made declarations, so that a driver says what its instrument prints
and accepts rather than how to parse it:

- :mod:`instrumentd.driver.columns`: sample lines as a table of columns.
- :mod:`instrumentd.driver.dumps`: status and calibration dumps as a table
  of line kinds.
- :mod:`instrumentd.driver.readers`: readers of printed values (times with
  English month names, numbers whose decimals say their unit, yes/no
  sentences).
- :mod:`instrumentd.driver.textcommands`: line commands and commands whose
  reply holds a record.
- :mod:`instrumentd.driver.settings`: the common parameter shapes.
- :mod:`instrumentd.driver.setcommands`: set commands by firmware
  generation.
- :mod:`instrumentd.driver.routines`: waiting for the next UTC second,
  pausing sampling around work.
"""

from instrumentd.driver.chunker import (
    Chunker,
    ChunkerCounters,
    Record,
    Sieve,
    SieveFunction,
    additive_checksum,
    length_sieve,
    regex_sieve,
)
from instrumentd.driver.commands import (
    CommandArgument,
    CommandDictionary,
    CommandSpec,
)
from instrumentd.driver.driver import InstrumentDriver
from instrumentd.driver.engine import (
    Command,
    CommandEngine,
    Reply,
    Wakeup,
    keep_reply,
    text_command,
)
from instrumentd.driver.errors import (
    InstrumentCommandError,
    InstrumentConnectionError,
    InstrumentError,
    InstrumentParameterError,
    InstrumentProtocolError,
    InstrumentStateError,
    InstrumentTimeoutError,
    ParameterRule,
)
from instrumentd.driver.events import (
    ConfigChangeEvent,
    ConnectionEvent,
    DirectAccessEvent,
    DriverEvent,
    ErrorEvent,
    EventBus,
    EventListener,
    EventType,
    IDriverEventListener,
    ResultEvent,
    SampleEvent,
    StateChangeEvent,
)
from instrumentd.driver.parameters import (
    Parameter,
    ParameterDictionary,
    ParameterType,
    Visibility,
)
from instrumentd.driver.particles import (
    DataParticle,
    QualityFlag,
    RawDataParticle,
    RegexDataParticle,
    TimestampName,
)
from instrumentd.driver.protocol import (
    InstrumentProtocol,
    ProtocolState,
    standard_states,
)
from instrumentd.driver.scheduler import ScheduledJob, Scheduler, parse_jobs

__all__ = [
    "Chunker",
    "ChunkerCounters",
    "Command",
    "CommandArgument",
    "CommandDictionary",
    "CommandEngine",
    "CommandSpec",
    "ConfigChangeEvent",
    "ConnectionEvent",
    "DataParticle",
    "DirectAccessEvent",
    "DriverEvent",
    "ErrorEvent",
    "EventBus",
    "EventListener",
    "EventType",
    "IDriverEventListener",
    "InstrumentCommandError",
    "InstrumentConnectionError",
    "InstrumentDriver",
    "InstrumentError",
    "InstrumentParameterError",
    "InstrumentProtocol",
    "InstrumentProtocolError",
    "InstrumentStateError",
    "InstrumentTimeoutError",
    "Parameter",
    "ParameterDictionary",
    "ParameterRule",
    "ParameterType",
    "ProtocolState",
    "QualityFlag",
    "RawDataParticle",
    "Record",
    "RegexDataParticle",
    "Reply",
    "ResultEvent",
    "SampleEvent",
    "ScheduledJob",
    "Scheduler",
    "Sieve",
    "SieveFunction",
    "StateChangeEvent",
    "TimestampName",
    "Visibility",
    "Wakeup",
    "additive_checksum",
    "keep_reply",
    "length_sieve",
    "parse_jobs",
    "regex_sieve",
    "standard_states",
    "text_command",
]
