# -*- test-case-name: tests.test_station_config -*-
"""
An instrument's driver: importing its class and trying its startup
parameters, schedules and autosample on a driver that is never connected.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from instrumentd.driver.events import EventBus
    from instrumentd.interfaces import IInstrumentConnection, IInstrumentDriver

from instrumentd.station.config._specs import (
    DriverFactory,
)
from instrumentd.station.config._table import Table


def _import(path: str) -> object:
    """
    Import ``module:attribute`` or ``module.attribute``.

    :raises ValueError: saying what could not be found.
    """
    if ":" in path:
        module_name, _, attribute = path.partition(":")
    else:
        module_name, _, attribute = path.rpartition(".")
    if not module_name or not attribute:
        raise ValueError(
            f"{path!r} is not an import path; write 'package.module:ClassName'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"cannot import module {module_name!r}: {e}") from None
    except Exception as e:
        raise ValueError(
            f"importing module {module_name!r} failed: {type(e).__name__}: {e}"
        ) from None
    found: object = module
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise ValueError(f"module {module_name!r} has no {attribute!r}") from None
    return found


def _driver_factory(table: Table, path: str) -> DriverFactory | None:
    from instrumentd.driver.driver import InstrumentDriver
    from instrumentd.driver.protocol import InstrumentProtocol
    from instrumentd.interfaces import IInstrumentDriver

    try:
        found = _import(path)
    except ValueError as e:
        table.bad(
            "driver",
            f"{e} (its parameters and schedules are checked once it imports)",
        )
        return None
    if isinstance(found, type) and issubclass(found, InstrumentProtocol):
        protocol_class = found

        def wrap(
            connection: IInstrumentConnection, events: EventBus, clock: IReactorTime
        ) -> IInstrumentDriver:
            return InstrumentDriver(
                connection, protocol_class, events=events, clock=clock
            )

        return wrap
    if isinstance(found, type) and IInstrumentDriver.implementedBy(found):
        driver_class = found
        try:
            inspect.signature(driver_class).bind(None, events=None, clock=None)
        except TypeError:
            table.bad(
                "driver",
                f"{path!r} cannot be built as Driver(connection, events=..., "
                "clock=...), which the station needs",
            )
            return None
        except ValueError:
            # No signature to inspect (a C type): try it when building.
            pass

        def build(
            connection: IInstrumentConnection, events: EventBus, clock: IReactorTime
        ) -> IInstrumentDriver:
            # implementedBy says what it provides, not how it is built;
            # the signature was checked above.
            make: Callable[..., IInstrumentDriver] = driver_class
            return make(connection, events=events, clock=clock)

        return build
    table.bad(
        "driver",
        f"{path!r} is {_describe_object(found)}, not a driver class: give an "
        "InstrumentProtocol subclass (the station wraps it in an "
        "InstrumentDriver) or a class implementing IInstrumentDriver",
    )
    return None


def _describe_object(found: object) -> str:
    if isinstance(found, type):
        return f"the class {found.__module__}.{found.__qualname__}"
    return f"a {type(found).__name__}"


def _check_startup(
    table: Table,
    driver_path: str,
    make_driver: DriverFactory,
    parameters: Mapping[str, object],
    schedules: Mapping[str, object],
    *,
    autosample: bool,
) -> IInstrumentDriver | None:
    """
    Try the startup parameters, schedules and autosample against a driver
    that is built and never connected, so a typo fails now rather than
    when the instrument comes up.  A driver names only the first bad
    entry of a startup configuration, so each parameter and each schedule
    is tried on its own: every bad one is reported.

    :returns: the driver (for further checks of what it declares), or
        ``None`` if it could not be built.
    """
    from twisted.internet.testing import MemoryReactorClock

    from instrumentd.connection import PortAgentConnection
    from instrumentd.driver.events import EventBus

    clock = MemoryReactorClock()
    try:
        driver = make_driver(PortAgentConnection(reactor=clock), EventBus(clock), clock)
    except Exception as e:
        table.bad(
            "driver",
            f"building {driver_path!r} failed: {type(e).__name__}: {e}",
        )
        return None
    before = len(table.problems)
    for name, value in parameters.items():
        _try(table, driver, {"parameters": {name: value}, "scheduler": {}})
    for name, job in schedules.items():
        _try(table, driver, {"parameters": {}, "scheduler": {name: job}})
    if len(table.problems) == before:
        # Each entry is good on its own; the whole may still break a rule
        # that spans entries.
        _try(table, driver, {"parameters": parameters, "scheduler": schedules})
    if autosample:
        metadata = driver.get_config_metadata()
        commands = metadata.get("commands")
        if isinstance(commands, Mapping) and "start_autosample" not in commands:
            table.bad(
                "autosample",
                f"the driver {driver_path!r} has no start_autosample command; "
                f"its commands: {', '.join(sorted(commands))}",
            )
    return driver


def _try(table: Table, driver: IInstrumentDriver, config: Mapping[str, object]) -> None:
    from instrumentd.driver.errors import InstrumentError, InstrumentParameterError

    try:
        driver.set_init_params(config)
    except InstrumentParameterError as e:
        where = e.parameter
        if where.startswith("scheduler."):
            key = "schedules." + where.removeprefix("scheduler.")
        elif where in ("parameters", "scheduler"):
            key = "parameters"
        else:
            key = f"parameters.{where}"
        message = e.message.removeprefix(f"parameter {where}: ")
        table.bad(key, message)
    except InstrumentError as e:
        table.bad("parameters", e.message)
