"""
Tests for the framework's own reading of a
:class:`~instrumentd.driver.particles.RegexDataParticle` (the record decoded
once and matched as text, values kept as ids and values until someone asks
for the dicts): it must read every record exactly as the general reading
through ``_build_values`` does, which a subclass overriding
``_build_values`` still gets.
"""

from __future__ import annotations

import contextlib
import re
from datetime import UTC, datetime
from typing import Any, ClassVar

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from instrumentd.driver.errors import InstrumentProtocolError
from instrumentd.driver.particles import (
    ParticleField,
    RegexDataParticle,
)
from instrumentd.driver.record_reader import record_reader
from instrumentd.instruments.seabird.sbe37smp.particles import (
    SBE37DrySampleParticle,
    SBE37SampleParticle,
)


class _Words(RegexDataParticle):
    # A str pattern, an unnamed group, case folding, a converter that can
    # fail, and a Unix-seconds internal time.
    stream_name: ClassVar[str] = "words"
    pattern = re.compile(
        r"(?i)(x+)?(?P<word>\w+)[ \t]+(?P<count>\d+)(?: t=(?P<when>\d+))?\s*$"
    )
    converters = {"count": int, "when": int}
    internal_time_value = "when"
    fields = {"count": ParticleField("1"), "word": ParticleField("")}


class _Bytes(RegexDataParticle):
    # A bytes pattern with DOTALL and IGNORECASE, groups out of order of
    # their names, a converter of its own.
    stream_name: ClassVar[str] = "bytes"
    pattern = re.compile(
        rb"(?si)<(?P<b>[a-z\xe9]+)>(?P<a>.*?)(?:\|(?P<c>-?\d+\.\d+))?\r\n"
    )
    converters = {"a": str.upper, "c": float}


def _general(particle: type[RegexDataParticle]) -> type[RegexDataParticle]:
    # The same particle read through _build_values, as before.
    def _build_values(self: RegexDataParticle, raw: bytes) -> list[dict[str, object]]:
        return RegexDataParticle._build_values(self, raw)

    return type(
        f"General{particle.__name__}", (particle,), {"_build_values": _build_values}
    )


_KINDS = (SBE37SampleParticle, SBE37DrySampleParticle, _Words, _Bytes)
_GENERAL = {kind: _general(kind) for kind in _KINDS}


def _outcome(particle: type[RegexDataParticle], raw: bytes) -> object:
    matched = particle.matches(raw)
    try:
        made = particle(raw, port_timestamp=3.9e9, driver_timestamp=3.9e9 + 1)
    except (InstrumentProtocolError, KeyError) as error:
        return matched, type(error), str(error)
    ids = [entry["value_id"] for entry in made.values]
    as_dict = made.to_dict()
    return (
        matched,
        made.values,
        made.value_items(),
        [made.value(str(name)) for name in ids],
        as_dict,
        made.internal_timestamp,
        made.preferred_timestamp,
    )


def _lazy_outcome(particle: type[RegexDataParticle], raw: bytes) -> object:
    # to_dict and value_items before the dicts are made, then the rest.
    matched = particle.matches(raw)
    try:
        made = particle(raw, port_timestamp=3.9e9, driver_timestamp=3.9e9 + 1)
    except (InstrumentProtocolError, KeyError) as error:
        return matched, type(error), str(error)
    as_dict = made.to_dict()
    items = made.value_items()
    ids = [name for name, _value in items]
    return (
        matched,
        made.values,
        items,
        [made.value(name) for name in ids],
        as_dict,
        made.internal_timestamp,
        made.preferred_timestamp,
    )


_SAMPLE = st.builds(
    lambda t, c, p, s, v, when, n, lead: (
        f"{lead}{t:8.4f},{c}, {p:8.3f}"
        + (f", {s:8.4f}" if s is not None else "")
        + (f", {v:8.3f}" if v is not None else "")
        + (f", {when:%d %b %Y, %H:%M:%S}" if when is not None else "")
        + (f", {n}" if n is not None else "")
        + "\r\n"
    ).encode("latin-1"),
    st.floats(-5, 40),
    st.sampled_from(["3.51234", "35.1234", "35123.4", "3.5", "3.512"]),
    st.floats(-1, 7000),
    st.none() | st.floats(0, 42),
    st.none() | st.floats(1400, 1600),
    st.none() | st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31)),
    st.none() | st.integers(0, 10**6),
    st.sampled_from(["#", "# ", "", "S>", "\n"]),
)


def _damaged(data: st.DataObject, line: bytes) -> bytes:
    # Cut, spliced with junk, or a byte changed: near misses.
    junk = data.draw(st.binary(max_size=6))
    where = data.draw(st.integers(0, len(line)))
    how = data.draw(st.sampled_from(["keep", "cut", "insert", "replace"]))
    if how == "cut":
        return line[:where]
    if how == "insert":
        return line[:where] + junk + line[where:]
    if how == "replace":
        return line[:where] + junk + line[where + len(junk) :]
    return line


class FrameworkReadingTests(SynchronousTestCase):
    """
    The framework's reading equals the general reading.
    """

    def check(self, raw: bytes) -> None:
        for kind in _KINDS:
            expected = _outcome(_GENERAL[kind], raw)
            self.assertEqual(_outcome(kind, raw), expected, (kind, raw))
            self.assertEqual(_lazy_outcome(kind, raw), expected, (kind, raw))

    @settings(max_examples=400, deadline=None)
    @given(st.data(), _SAMPLE)
    def test_samples(self, data: st.DataObject, line: bytes) -> None:
        """
        SBE 37 sample lines, whole and damaged, read the same.
        """
        self.check(_damaged(data, line))

    @settings(max_examples=400, deadline=None)
    @given(
        st.binary(max_size=40)
        | st.text(alphabet="xXaé \t09|.<>-\r\n", max_size=30).map(
            lambda text: text.encode("latin-1")
        )
        | st.builds(
            lambda a, b, c: f"<{a}>{b}|{c}\r\n".encode("latin-1"),
            st.text(alphabet="abcÉé", max_size=4),
            st.text(alphabet="a\nb\xff ", max_size=4),
            st.sampled_from(["1.5", "-2.25", "x", "1e5"]),
        )
        | st.builds(
            lambda w, n, when: f"{w}\t{n}{when}\n".encode("latin-1"),
            st.text(alphabet="xXwé_9", min_size=1, max_size=5),
            st.integers(0, 99).map(str) | st.just("\xb2"),
            st.sampled_from(["", " t=1700000000", " t=x"]),
        )
    )
    def test_anything(self, raw: bytes) -> None:
        """
        Arbitrary bytes, text with non-ASCII Latin-1 letters and digits, and
        near misses of each pattern read the same: a match, the same values
        and timestamps, or the same error.
        """
        self.check(raw)

    def test_sample(self) -> None:
        """
        A whole sample with every column reads its values and internal time,
        and the lazily made dicts are those of the general reading.
        """
        raw = (
            b"# 10.1234, 3.51234, 10.100, 33.9000, 1497.000, 05 Feb 2013, 19:16:59\r\n"
        )
        made = SBE37SampleParticle(raw, port_timestamp=3.9e9, driver_timestamp=1.0)
        self.assertEqual(made.value("conductivity"), 3.51234)
        self.assertEqual(
            made.value("instrument_time"), datetime(2013, 2, 5, 19, 16, 59, tzinfo=UTC)
        )
        self.assertEqual(made.internal_timestamp, 1360091819.0 + 2208988800)
        self.assertEqual(
            _outcome(SBE37SampleParticle, raw),
            _outcome(_GENERAL[SBE37SampleParticle], raw),
        )

    def test_valuesReplaced(self) -> None:
        """
        Values a consumer changes in :attr:`values` are what ``to_dict``,
        ``value`` and ``value_items`` give afterwards.
        """
        raw = b"#10.1234, 3.51234, 10.100\r\n"
        made = SBE37SampleParticle(raw, driver_timestamp=1.0)
        made.values[0]["value"] = 99.0
        self.assertEqual(made.value("temperature"), 99.0)
        self.assertEqual(made.value_items()[0], ("temperature", 99.0))
        self.assertEqual(made.to_dict()["values"][0]["value"], 99.0)  # type: ignore[index]
        made.values = [{"value_id": "x", "value": 1}]
        self.assertEqual(made.value_items(), [("x", 1)])
        self.assertRaises(KeyError, made.value, "temperature")


def _made(particle: type[RegexDataParticle], raw: bytes) -> object:
    # matches() then the constructor, as a protocol's got_record did.
    clock = Clock()
    clock.advance(1.7e9)
    if not particle.matches(raw):
        return None
    try:
        made = particle(raw, port_timestamp=3.9e9, clock=clock)
    except (InstrumentProtocolError, KeyError) as error:
        return type(error), str(error)
    return type(made), vars(made), made.to_dict()


def _read(particle: type[RegexDataParticle], raw: bytes) -> object:
    # The same through the class's record reader.
    clock = Clock()
    clock.advance(1.7e9)
    read = record_reader(particle)
    assert read is not None, particle
    try:
        made = read(raw, 3.9e9, clock)
    except (InstrumentProtocolError, KeyError) as error:
        return type(error), str(error)
    if made is None:
        return None
    return type(made), vars(made), made.to_dict()


class _OwnInit(_Words):
    # A constructor of its own: no reader.
    def __init__(self, raw: bytes, **kwargs: Any) -> None:
        super().__init__(raw, **kwargs)
        self.extra = True


class _OwnMatches(_Words):
    # Its own idea of which records are its own: no reader.
    @classmethod
    def matches(cls, raw: bytes) -> bool:
        return raw.startswith(b"x")


class RecordReaderTests(SynchronousTestCase):
    """
    A class's record reader (what a protocol's ``got_record`` uses) gives
    what ``matches`` and the constructor give: no particle, the same
    particle, or the same error.
    """

    def setUp(self) -> None:
        # A class's reader exists once a particle of it has been made the
        # usual way (which checks its stream name).
        for kind in _KINDS:
            with contextlib.suppress(InstrumentProtocolError):
                kind(b"#1.0, 3.5, 1.000\r\n", driver_timestamp=1.0)

    def check(self, raw: bytes) -> None:
        for kind in _KINDS:
            self.assertEqual(_read(kind, raw), _made(kind, raw), (kind, raw))

    @settings(max_examples=300, deadline=None)
    @given(st.data(), _SAMPLE)
    def test_samples(self, data: st.DataObject, line: bytes) -> None:
        """
        SBE 37 sample lines, whole and damaged.
        """
        self.check(_damaged(data, line))

    @settings(max_examples=300, deadline=None)
    @given(
        st.binary(max_size=40)
        | st.builds(
            lambda w, n, when: f"{w}\t{n}{when}\n".encode("latin-1"),
            st.text(alphabet="xXwé_9", min_size=1, max_size=5),
            st.integers(0, 99).map(str) | st.just("\xb2"),
            st.sampled_from(["", " t=1700000000", " t=x"]),
        )
    )
    def test_anything(self, raw: bytes) -> None:
        """
        Arbitrary bytes and near misses, with converters that fail.
        """
        self.check(raw)

    def test_ownWays(self) -> None:
        """
        A class with its own constructor, ``matches`` or reading of values
        has no reader; a class whose stream name no particle has checked
        yet has none until one has.
        """
        _OwnInit(b"w 1", driver_timestamp=1.0)
        _OwnMatches(b"w 1", driver_timestamp=1.0)
        self.assertIsNone(record_reader(_OwnInit))
        self.assertIsNone(record_reader(_OwnMatches))
        self.assertIsNone(record_reader(_GENERAL[_Words]))

        class Fresh(_Words):
            pass

        self.assertIsNone(record_reader(Fresh))
        Fresh(b"w 1", driver_timestamp=1.0)
        self.assertIsNotNone(record_reader(Fresh))

    def test_patternReplaced(self) -> None:
        """
        A reader follows a class's pattern when it is replaced.
        """

        class Changing(_Words):
            pass

        Changing(b"w 1", driver_timestamp=1.0)
        read = record_reader(Changing)
        assert read is not None
        self.assertIsNotNone(read(b"w 1", 3.9e9, Clock()))
        Changing.pattern = re.compile(r"(?P<word>z+)(?: t=(?P<when>\d+))?")
        read = record_reader(Changing)
        assert read is not None
        self.assertIsNone(read(b"w 1", 3.9e9, Clock()))
        made = read(b"zz", 3.9e9, Clock())
        assert made is not None
        self.assertEqual(made.value_items(), [("word", "zz"), ("when", None)])
