"""
A driver's metadata is described once per declaration and shared
(L{instrumentd.driver.protocol.InstrumentProtocol.metadata},
L{instrumentd.driver.parameters.Parameter.metadata},
L{instrumentd.driver.commands.CommandSpec.metadata},
L{instrumentd.driver.particles.DataParticle.field_metadata}): the documents
are the same as when each call described everything afresh, and each
caller gets its own copy.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from instrumentd.driver._json import copy_jsonable, to_jsonable
from instrumentd.driver._values import value_range
from instrumentd.driver.commands import (
    CommandArgument,
    CommandDictionary,
    CommandSpec,
)
from instrumentd.driver.events import EventBus
from instrumentd.driver.parameters import Parameter, ParameterType
from instrumentd.driver.particles import ParticleField
from instrumentd.driver.protocol import InstrumentProtocol
from instrumentd.instruments.aanderaa.optode.driver import OptodeProtocol
from instrumentd.instruments.seabird.sbe37smp.driver import (
    SBE37Inputs,
    SBE37Protocol,
)
from instrumentd.instruments.teledyne.workhorse.driver import WorkhorseProtocol
from tests.toyinstrument import ToyProtocol, ToySample

PROTOCOLS: tuple[type[InstrumentProtocol[Any]], ...] = (
    SBE37Protocol,
    OptodeProtocol,
    WorkhorseProtocol,
    ToyProtocol,
)


def make(protocol_class: type[InstrumentProtocol[Any]]) -> InstrumentProtocol[Any]:
    clock = Clock()
    return protocol_class(lambda data: None, EventBus(clock), clock=clock)


# Each part described afresh, as before the descriptions were shared.


def _parameter(p: Parameter) -> object:
    return to_jsonable(
        {
            "display_name": p.display_name,
            "description": p.description,
            "visibility": p.visibility,
            "startup": p.startup,
            "direct_access": p.direct_access,
            "get_timeout": p.get_timeout,
            "set_timeout": p.set_timeout,
            "expiration": p.expiration,
            "range": value_range(p.allowed_values, p.minimum, p.maximum),
            "value": {
                "type": p.type,
                "default": p.default_value,
                "units": p.units,
                "description": p.value_description,
            },
        }
    )


def _argument(a: CommandArgument) -> object:
    return to_jsonable(
        {
            "required": a.required,
            "display_name": a.display_name,
            "description": a.description,
            "range": value_range(a.allowed_values, a.minimum, a.maximum),
            "value": {"type": a.type, "units": a.units, "default": a.default},
        }
    )


def _command(c: CommandSpec) -> dict[str, Any]:
    made = to_jsonable(
        {
            "display_name": c.display_name,
            "description": c.description,
            "timeout": c.timeout,
            "arguments": {a.name: _argument(a) for a in c.arguments},
            "return": {
                "type": c.return_type,
                "units": c.return_units,
                "description": c.return_description,
            },
        }
    )
    assert isinstance(made, dict)
    return made


def afresh(protocol: InstrumentProtocol[Any]) -> dict[str, object]:
    commands: dict[str, object] = {}
    names: set[str] = set()
    for state in protocol.table.states:
        names.update(protocol.table.valid_inputs(state))
    for name in sorted(names - {"status"}):
        if name in protocol.commands:
            commands[name] = _command(protocol.commands.command(name))
            continue
        declared = getattr(protocol.inputs, name)
        described = _command(
            CommandSpec(
                name=name,
                display_name=name.replace("_", " ").capitalize(),
                description=inspect.getdoc(declared) or "",
            )
        )
        described["arguments"] = {
            argument: {}
            for argument in inspect.signature(declared).parameters
            if argument != "self"
        }
        commands[name] = described
    streams: dict[str, dict[str, object]] = {}
    cls = type(protocol)
    for particle_class in (*cls.particles, *cls.published_particles):
        streams.setdefault(particle_class.stream_name, {}).update(
            {name: f.metadata() for name, f in particle_class.fields.items()}
        )
    return {
        "driver": {
            "name": protocol.driver_name,
            "version": protocol.driver_version,
            "states": protocol.table.states,
        },
        "commands": commands,
        "parameters": {
            name: _parameter(protocol.parameters.parameter(name))
            for name in protocol.parameters.names()
        },
        "streams": streams,
    }


class SameDocumentTests(SynchronousTestCase):
    """
    The shared descriptions make the same documents, to the byte.
    """

    def test_protocols(self) -> None:
        """
        Every instrument's metadata is the JSON it was when described
        afresh, key order and number types included, on the first call and
        on later ones, from one protocol and from another of its class.
        """
        for protocol_class in PROTOCOLS:
            first, second = make(protocol_class), make(protocol_class)
            expected = json.dumps(afresh(first))
            for protocol in (first, first, second):
                self.assertEqual(
                    json.dumps(protocol.metadata()), expected, protocol_class
                )
            self.assertEqual(
                json.dumps(protocol_class.stream_metadata()),
                json.dumps(afresh(first)["streams"]),
            )

    def test_described_commands(self) -> None:
        """
        C{describe} gives the same declaration for the same description (so
        it is described once), and another for a timeout that differs in
        type only, which describes differently in JSON.
        """
        one, two = CommandDictionary(), CommandDictionary()
        a = one.describe(SBE37Inputs, "acquire_status", "Acquire status", 15.0)
        b = two.describe(SBE37Inputs, "acquire_status", "Acquire status", 15.0)
        self.assertIs(a, b)
        c = CommandDictionary().describe(
            SBE37Inputs, "acquire_status", "Acquire status", 15
        )
        self.assertEqual(c.metadata()["timeout"], 15)
        self.assertEqual(json.dumps(c.metadata()["timeout"]), "15")
        self.assertEqual(json.dumps(a.metadata()["timeout"]), "15.0")

    def test_argument_types(self) -> None:
        """
        Declarations equal as Python values but not as JSON (C{True} and
        C{1}) keep their own descriptions.
        """
        flag = CommandArgument(name="x", type=ParameterType.INT, default=True)
        number = CommandArgument(name="x", type=ParameterType.INT, default=1)
        self.assertEqual(flag, number)
        self.assertEqual(json.dumps(flag.metadata()), json.dumps(_argument(flag)))
        self.assertEqual(json.dumps(number.metadata()), json.dumps(_argument(number)))
        self.assertNotEqual(json.dumps(flag.metadata()), json.dumps(number.metadata()))


class OwnCopyTests(SynchronousTestCase):
    """
    Each caller gets a copy: changing it changes nobody else's.
    """

    def test_protocol_metadata(self) -> None:
        """
        Changing every dict and list of one protocol's metadata leaves the
        next call's, and another protocol's, as they were.
        """
        protocol = make(SBE37Protocol)
        expected = json.dumps(protocol.metadata())
        spoilt = protocol.metadata()
        _spoil(spoilt)
        self.assertNotEqual(json.dumps(spoilt), expected)
        self.assertEqual(json.dumps(protocol.metadata()), expected)
        self.assertEqual(json.dumps(make(SBE37Protocol).metadata()), expected)

    def test_parts(self) -> None:
        """
        The parts' own C{metadata} methods hand out copies too.
        """
        protocol = make(ToyProtocol)
        for get in (
            protocol.parameters.metadata,
            protocol.commands.metadata,
            ToySample.field_metadata,
            ToyProtocol.stream_metadata,
        ):
            expected = json.dumps(get())
            _spoil(get())
            self.assertEqual(json.dumps(get()), expected, get)

    def test_fields_replaced(self) -> None:
        """
        A particle class whose C{fields} is replaced describes the new
        fields.
        """

        class Particle(ToySample):
            fields = {"a": ParticleField("1")}

        self.assertEqual(Particle.field_metadata(), {"a": {"units": "1"}})
        Particle.fields = {"b": ParticleField("m")}
        self.assertEqual(Particle.field_metadata(), {"b": {"units": "m"}})

    def test_copy_jsonable(self) -> None:
        """
        C{copy_jsonable} copies dicts and lists, not scalars.
        """
        data: dict[str, object] = {"a": [1, {"b": None}], "c": "d"}
        copied = copy_jsonable(data)
        self.assertEqual(copied, data)
        assert isinstance(copied, dict)
        self.assertIsNot(copied["a"], data["a"])
        self.assertIsNot(copied["a"][1], data["a"][1])  # type: ignore[index]


def _spoil(value: object) -> None:
    # Change every dict and list in place.
    if isinstance(value, dict):
        for item in value.values():
            _spoil(item)
        value["spoilt"] = True
    elif isinstance(value, list):
        for item in value:
            _spoil(item)
        value.append("spoilt")


class DocumentCopiesTests(SynchronousTestCase):
    """
    A class's latest document is copied by unpickling only while a
    protocol's document is made of the very same descriptions.
    """

    def test_declarationsDiffer(self) -> None:
        """
        Protocols of one class whose declarations differ (in the same
        places) each get their own document, in any order of asking.
        """
        from instrumentd.driver.parameters import ParameterDictionary

        metres = Parameter(name="DEPTH", type=ParameterType.INT, units="m")
        feet = Parameter(name="DEPTH", type=ParameterType.INT, units="ft")

        class Varied(ToyProtocol):
            depth = metres

            def declare_parameters(self, parameters: ParameterDictionary) -> None:
                super().declare_parameters(parameters)
                parameters.add(self.depth)

        plain = make(Varied)
        Varied.depth = feet
        extra = make(Varied)
        expected = {p: json.dumps(afresh(p)) for p in (plain, extra)}
        self.assertNotEqual(expected[plain], expected[extra])
        for protocol in (plain, plain, extra, extra, plain, extra):
            self.assertEqual(json.dumps(protocol.metadata()), expected[protocol])

    def test_unpicklable(self) -> None:
        """
        A document holding a value pickle cannot name (a member of an enum
        defined in a function) is still copied, each time.
        """
        from enum import StrEnum

        from instrumentd.driver.parameters import ParameterDictionary

        class Local(StrEnum):
            A = "a"

        class Odd(ToyProtocol):
            def declare_parameters(self, parameters: ParameterDictionary) -> None:
                super().declare_parameters(parameters)
                parameters.add(
                    Parameter(
                        name="ODD",
                        type=ParameterType.ENUM,
                        allowed_values=(Local.A,),
                        default_value=Local.A,
                    )
                )

        protocol = make(Odd)
        expected = json.dumps(afresh(protocol))
        for _ in range(3):
            got = protocol.metadata()
            self.assertEqual(json.dumps(got), expected)
            _spoil(got)
