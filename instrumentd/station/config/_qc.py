# -*- test-case-name: tests.test_station_config_qc -*-
"""
An instrument's ``qc`` table: real-time QARTOD tests per stream and field,
checked with :func:`instrumentd.qc.parse_qc` against the streams and
fields the driver declares, starting from the shipped default ranges
(:data:`instrumentd.qc.DEFAULTS`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING

from instrumentd.station.config._table import Table

if TYPE_CHECKING:
    from instrumentd.interfaces import IInstrumentDriver
    from instrumentd.qc import StreamQCSpec


def driver_streams(driver: IInstrumentDriver) -> dict[str, Collection[str]] | None:
    """
    The streams a driver publishes and their fields, from its metadata.

    :returns: stream name to field names, or ``None`` when the driver does
        not say (then names are not checked).
    """
    streams = driver.get_config_metadata().get("streams")
    if not isinstance(streams, Mapping) or not streams:
        return None
    return {
        str(name): tuple(fields) if isinstance(fields, Mapping) else ()
        for name, fields in streams.items()
    }


def _qc(
    table: Table, given: object, streams: Mapping[str, Collection[str]] | None
) -> dict[str, StreamQCSpec]:
    """
    Check an instrument's ``qc`` table (already known to be a table or
    absent, ``None``), noting a problem under its key path.

    :param streams: the driver's streams and fields, or ``None`` when they
        are not known.
    :returns: stream name to its checked QC, the defaults included;
        ``{}`` after a problem.
    """
    from instrumentd.qc import QCConfigError, parse_qc

    try:
        return parse_qc({} if given is None else given, streams=streams)
    except QCConfigError as e:
        # parse_qc's messages start with the key path below the instrument
        # ("qc.ctdpf_sample.temperature.spike: ...").
        where, _, problem = str(e).partition(": ")
        table.bad(where, problem)
        return {}
