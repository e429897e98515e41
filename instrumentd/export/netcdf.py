# -*- test-case-name: tests.test_export_netcdf -*-
"""
The netCDF export: a CF 1.11 discrete sampling geometry ``timeSeries``
(one station, one instrument, one stream per file) with ACDD 1.3
discovery attributes.

- ``time(time)``: seconds since 1970-01-01 UTC, strictly increasing; the
  ``time`` dimension is unlimited and the file is written a chunk at a
  time, so memory does not grow with the time range.
- ``station``: the series' id (``cf_role = "timeseries_id"``);
  ``latitude``, ``longitude`` (and ``depth``) scalars from the station's
  configured position.
- One variable per field, with ``units``, ``standard_name`` and
  ``long_name`` from the driver's metadata; an array field (an ADCP's
  per-cell velocities) is ``(time, cell)``, with ``cell(cell)`` numbering
  the cells and, where the records give the first cell's distance and the
  cell length, ``cell_distance(cell)`` in metres from the transducer.
- QC flags as ancillary variables ``FIELD_qc_TEST`` (byte) with
  ``flag_values = 1, 2, 3, 4, 9`` and ``flag_meanings`` (QARTOD), and the
  QARTOD standard names where CF has them.

Needs the ``netcdf`` extra (netCDF4, which brings numpy); without it
:func:`require_netcdf4` raises :class:`ExportError` saying how to install it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from instrumentd import __version__
from instrumentd.export.archive import ExportError, InstrumentInfo, Series
from instrumentd.export.csvfile import qc_columns
from instrumentd.export.reading import FieldInfo, Row, Survey, iso_time

if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["FLAG_MEANINGS", "FLAG_VALUES", "require_netcdf4", "write_netcdf"]

#: The QARTOD flags and their names, as ``flag_values``/``flag_meanings``.
FLAG_VALUES: Final = (1, 2, 3, 4, 9)
FLAG_MEANINGS: Final = "pass not_evaluated suspect fail missing"

#: CF standard names of the QARTOD tests' flags (standard name table 77 on).
_FLAG_STANDARD_NAMES: Final = {
    "aggregate": "aggregate_quality_flag",
    "gross_range": "gross_range_test_quality_flag",
    "climatology": "climatology_test_quality_flag",
    "spike": "spike_test_quality_flag",
    "rate_of_change": "rate_of_change_test_quality_flag",
    "flat_line": "flat_line_test_quality_flag",
    "location": "location_test_quality_flag",
}

#: Names the file's own variables and dimensions take.
_RESERVED: Final = frozenset(
    {"time", "station", "latitude", "longitude", "depth", "cell", "cell_distance",
     "name_strlen", "quality_flag", "instrument"}
)  # fmt: skip

#: Units of a temperature on a scale, which CF 1.11 asks to say so of
#: (``units_metadata``), as against a temperature difference.
_TEMPERATURE_UNITS: Final = frozenset(
    {"degree_Celsius", "degree_C", "degC", "celsius", "Celsius", "K", "kelvin", "degF"}
)

#: The direction of the vertical standard names, which CF requires a
#: variable of them to state.
_POSITIVE: Final = {"depth": "down", "height": "up", "altitude": "up"}

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


def _micros(row: Row) -> int:
    """
    A record's time in integer microseconds since 1970, from its ISO text
    (exactly as the CSV shows it; its NTP seconds can be a microsecond
    off).
    """
    try:
        return (datetime.fromisoformat(row.iso) - _EPOCH) // _MICROSECOND
    except (ValueError, TypeError):
        return round(row.time * 1e6)


#: Bytes of chunk cache per variable: a few of its chunks (each 32 KiB at
#: most).
_CHUNK_CACHE: Final = 256 * 1024

#: Rows per HDF5 chunk along time.
_TIME_CHUNK: Final = 4096

_NAME: Final = re.compile(r"[^A-Za-z0-9_]")


def require_netcdf4() -> ModuleType:
    """
    :returns: the netCDF4 module.
    :raises ExportError: if it is not installed, saying how to install it.
    """
    try:
        import netCDF4
    except ImportError:
        raise ExportError(
            "netCDF export needs the netCDF4 package, which is not installed; "
            "install it with: pip install 'instrumentd[netcdf]' (or use --format csv)"
        ) from None
    return netCDF4


def variable_name(field: str) -> str:
    """
    The netCDF variable that holds a field: its name, with characters other
    than letters, digits and ``_`` as ``_``, starting with a letter, and
    not one of the file's own names.

    :param field: the field's name in the records.
    """
    name = _NAME.sub("_", field)
    if not name or not name[0].isalpha():
        name = "v_" + name
    if name in _RESERVED:
        name += "_value"
    return name


def _duration(seconds: float) -> str:
    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"P{days}DT{hours}H{minutes}M{secs}S"


def global_attributes(
    series: Series,
    info: InstrumentInfo,
    summary: Survey,
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """
    The ACDD 1.3 and CF global attributes a file gets from what is known.

    :param series: the series exported.
    :param info: what is known of its instrument.
    :param summary: its survey.
    :param now: the time of writing (for ``date_created``).
    """
    now = now or datetime.now(UTC)
    station = info.station or series.station
    where = f" at {station}" if station else ""
    created = now.replace(microsecond=0).isoformat().replace("+00:00", "Z")
    identity = info.model or "instrument"
    if info.serial_number:
        identity += f" S/N {info.serial_number}"
    standard_names = sorted(
        {
            f.standard_name
            for f in summary.fields.values()
            if f.standard_name and f.kinds
        }
    )
    attributes: dict[str, Any] = {
        "Conventions": "CF-1.11, ACDD-1.3",
        "featureType": "timeSeries",
        "cdm_data_type": "Station",
        "cdm_timeseries_variables": "station,latitude,longitude",
        "title": f"{series.instrument} {series.stream}{where}",
        "summary": (
            f"Records of stream {series.stream} from instrument "
            f"{series.instrument} ({identity}){where}, exported from the "
            "instrumentd archive"
            + (" with real-time QARTOD quality flags" if summary.qc else "")
            + "."
        ),
        "keywords": ", ".join(standard_names) or series.stream,
        "keywords_vocabulary": "CF Standard Name Table",
        "standard_name_vocabulary": "CF Standard Name Table v93",
        "id": "_".join(p for p in (station, series.instrument, series.stream) if p),
        "history": f"{created} written by instrumentd-export {__version__}",
        "source": f"{identity}, read by instrumentd driver "
        f"{info.driver or 'unknown'} {info.driver_version or ''}".rstrip(),
        "processing_level": (
            "real-time data with automated QARTOD quality flags"
            if summary.qc
            else "real-time data, no quality control applied"
        ),
        "date_created": created,
        "date_modified": created,
        "date_metadata_modified": created,
        "instrument": identity,
        "product_version": __version__,
    }
    if station:
        attributes["platform"] = station
    if summary.first is not None and summary.last is not None:
        attributes["time_coverage_start"] = iso_time(summary.first)
        attributes["time_coverage_end"] = iso_time(summary.last)
        attributes["time_coverage_duration"] = _duration(summary.last - summary.first)
    if summary.resolution is not None:
        attributes["time_coverage_resolution"] = f"PT{summary.resolution:g}S"
    position = info.position
    if position is not None:
        attributes.update(
            geospatial_lat_min=position.latitude,
            geospatial_lat_max=position.latitude,
            geospatial_lon_min=position.longitude,
            geospatial_lon_max=position.longitude,
            geospatial_lat_units="degrees_north",
            geospatial_lon_units="degrees_east",
            geospatial_bounds=f"POINT ({position.latitude} {position.longitude})",
            geospatial_bounds_crs="EPSG:4326",
        )
        if position.depth is not None:
            attributes.update(
                geospatial_vertical_min=position.depth,
                geospatial_vertical_max=position.depth,
                geospatial_vertical_units="m",
                geospatial_vertical_positive="down",
                geospatial_bounds_vertical_crs="EPSG:5831",
            )
    if info.model:
        attributes["instrument_model"] = info.model
    if info.serial_number:
        attributes["instrument_serial_number"] = info.serial_number
    if info.firmware_version:
        attributes["instrument_firmware_version"] = info.firmware_version
    for sensor, when in sorted(info.calibration_dates.items()):
        attributes[f"instrument_calibration_date_{variable_name(sensor)}"] = when
    if info.driver:
        attributes["instrument_driver"] = info.driver
    if info.driver_version:
        attributes["instrument_driver_version"] = info.driver_version
    return attributes


def _instrument_attributes(series: Series, info: InstrumentInfo) -> dict[str, str]:
    attributes = {
        "long_name": f"instrument {series.instrument}",
        "coverage_content_type": "referenceInformation",
    }
    if info.model:
        attributes["make_model"] = info.model
    if info.serial_number:
        attributes["serial_number"] = info.serial_number
    if info.firmware_version:
        attributes["firmware_version"] = info.firmware_version
    if info.calibration_dates:
        attributes["calibration_date"] = ", ".join(
            f"{sensor}: {when}"
            for sensor, when in sorted(info.calibration_dates.items())
        )
    if info.driver:
        attributes["driver"] = f"{info.driver} {info.driver_version or ''}".rstrip()
    return attributes


class _Column:
    """
    One field's variable, and how to turn a chunk's values into its data.
    """

    def __init__(self, info: FieldInfo, variable: Any, fill: Any, kind: str) -> None:
        self.name = info.name
        self.length = info.length
        self.variable = variable
        self.fill = fill
        self.kind = kind

    def convert(self, value: object) -> Any:
        if value is None:
            return self.fill
        if self.kind == "text":
            if isinstance(value, str):
                return value
            import json

            return json.dumps(value, separators=(",", ":"))
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int | float):
            if self.kind == "float":
                return float(value)
            return value
        return self.fill


def write_netcdf(
    path: str,
    series: Series,
    info: InstrumentInfo,
    summary: Survey,
    chunks: Iterable[list[Row]],
    *,
    attributes: Mapping[str, str] | None = None,
    progress: Callable[[int], None] | None = None,
    now: datetime | None = None,
) -> int:
    """
    Write a series as a CF timeSeries netCDF-4 file.

    :param path: the file to write (replaced).
    :param series: the series.
    :param info: what is known of its instrument.
    :param summary: its survey.
    :param chunks: its records, as :func:`~instrumentd.export.reading.read_chunks`
        gives them.
    :param attributes: global attributes to add or override (``creator_name``,
        ``license``...).
    :param progress: called with the records of each chunk written.
    :param now: the time of writing.
    :returns: the records written.
    :raises ExportError: if netCDF4 is missing or the file cannot be written.
    """
    netCDF4 = require_netcdf4()
    import numpy as np

    try:
        dataset = netCDF4.Dataset(path, "w", format="NETCDF4")
    except OSError as error:
        raise ExportError(f"{path}: cannot write it: {error}") from None
    try:
        return _write(
            np,
            netCDF4,
            dataset,
            series=series,
            info=info,
            summary=summary,
            chunks=chunks,
            extra=attributes,
            progress=progress,
            now=now,
        )
    finally:
        dataset.close()


def _write(
    np: Any,
    netCDF4: Any,
    ds: Any,
    *,
    series: Series,
    info: InstrumentInfo,
    summary: Survey,
    chunks: Iterable[list[Row]],
    extra: Mapping[str, str] | None,
    progress: Callable[[int], None] | None,
    now: datetime | None,
) -> int:
    ds.setncatts(global_attributes(series, info, summary, now=now))
    if extra:
        ds.setncatts(dict(extra))
    ds.createDimension("time", None)
    # Seconds as a double, as ERDDAP and most readers expect time; at
    # today's dates a double resolves about 0.2 microseconds, below the
    # records' resolution.
    time = ds.createVariable(
        "time", "f8", ("time",), chunksizes=(_TIME_CHUNK,), zlib=True, complevel=1
    )
    time.setncatts(
        {
            "standard_name": "time",
            "long_name": "time of the sample",
            "units": "seconds since 1970-01-01T00:00:00Z",
            "calendar": "standard",
            # Unix time, as the station's clock counts it: no leap seconds.
            "units_metadata": "leap_seconds: none",
            "axis": "T",
            "coverage_content_type": "coordinate",
        }
    )
    station_id = (
        "_".join(p for p in (info.station or series.station, series.instrument) if p)
        or series.instrument
    )
    ds.createDimension("name_strlen", len(station_id.encode("utf-8")))
    station = ds.createVariable("station", "S1", ("name_strlen",))
    station.setncatts(
        {"cf_role": "timeseries_id", "long_name": "station and instrument"}
    )
    station[:] = netCDF4.stringtochar(np.array([station_id], dtype="S"))[0]
    coordinates = ["time", "latitude", "longitude"]
    position = info.position
    latitude = ds.createVariable("latitude", "f8", (), fill_value=np.nan)
    latitude.setncatts(
        {
            "standard_name": "latitude",
            "long_name": "station latitude",
            "units": "degrees_north",
            "axis": "Y",
            "coverage_content_type": "coordinate",
        }
    )
    longitude = ds.createVariable("longitude", "f8", (), fill_value=np.nan)
    longitude.setncatts(
        {
            "standard_name": "longitude",
            "long_name": "station longitude",
            "units": "degrees_east",
            "axis": "X",
            "coverage_content_type": "coordinate",
        }
    )
    if position is not None:
        latitude.assignValue(position.latitude)
        longitude.assignValue(position.longitude)
    else:
        latitude.comment = "the station's position was not configured"
        longitude.comment = "the station's position was not configured"
    if position is not None and position.depth is not None:
        depth = ds.createVariable("depth", "f8", ())
        depth.setncatts(
            {
                "standard_name": "depth",
                "long_name": "instrument depth",
                "units": "m",
                "positive": "down",
                "axis": "Z",
                "coverage_content_type": "coordinate",
            }
        )
        depth.assignValue(position.depth)
        coordinates.append("depth")
    coordinates.append("station")
    # The instrument as a container variable (the IOOS metadata profile's
    # way): its identity in attributes, named by each data variable's
    # ``instrument`` attribute.
    instrument = ds.createVariable("instrument", "i4", ())
    instrument.setncatts(_instrument_attributes(series, info))

    lengths = sorted({f.length for f in summary.fields.values() if f.length})
    cell_dims: dict[int, str] = {}
    for n, length in enumerate(lengths):
        dim = "cell" if n == 0 else f"cell_{length}"
        cell_dims[length] = dim
        ds.createDimension(dim, length)
        cell = ds.createVariable(dim, "i4", (dim,))
        cell.setncatts(
            {
                "long_name": "cell number, 1 nearest the instrument",
                "units": "1",
                "coverage_content_type": "coordinate",
            }
        )
        cell[:] = np.arange(1, length + 1, dtype="i4")
    distance = None
    distance_known = (
        "cell" in cell_dims.values()
        and "bin_1_distance" in summary.fields
        and "cell_length" in summary.fields
    )
    if distance_known:
        distance = ds.createVariable(
            "cell_distance", "f8", ("cell",), fill_value=np.nan
        )
        distance.setncatts(
            {
                "long_name": "distance from the transducer to the middle of the "
                "cell, as set up at the start of the file",
                "units": "m",
                "coverage_content_type": "coordinate",
            }
        )
    # Each cell's depth, where the transducer's depth and which way the
    # beams face are known: depth below the surface, per ensemble.  The
    # profiles then make the file a timeSeriesProfile.
    depths = None
    if (
        distance is not None
        and info.beams_facing in ("up", "down")
        and "transducer_depth" in summary.fields
    ):
        depths = ds.createVariable(
            "cell_depth",
            "f8",
            ("time", "cell"),
            fill_value=np.nan,
            chunksizes=(
                max(1, _TIME_CHUNK // len(ds.dimensions["cell"])),
                len(ds.dimensions["cell"]),
            ),
            zlib=True,
            complevel=1,
        )
        ds.setncatts(
            {
                "featureType": "timeSeriesProfile",
                "cdm_data_type": "TimeSeriesProfile",
                "cdm_profile_variables": "time",
            }
        )
        if extra:
            ds.setncatts(dict(extra))
        depths.setncatts(
            {
                "long_name": "depth of the middle of the cell: the transducer's "
                f"depth {'less' if info.beams_facing == 'up' else 'plus'} the "
                "cell's distance (beams facing " + info.beams_facing + ")",
                "standard_name": "depth",
                "units": "m",
                "positive": "down",
                "coverage_content_type": "coordinate",
            }
        )

    columns: list[_Column] = []
    flags: list[tuple[str, str, Any]] = []
    ancillary: dict[str, list[str]] = {}
    for name, test in qc_columns(summary):
        var_name = f"{variable_name(name)}_qc_{variable_name(test)}"
        variable = ds.createVariable(
            var_name,
            "i1",
            ("time",),
            fill_value=np.int8(-127),
            chunksizes=(_TIME_CHUNK,),
            zlib=True,
            complevel=1,
        )
        variable.setncatts(
            {
                "long_name": f"{name} QARTOD {test.replace('_', ' ')} flag",
                "standard_name": _FLAG_STANDARD_NAMES.get(test, "quality_flag"),
                "flag_values": np.array(FLAG_VALUES, dtype="i1"),
                "flag_meanings": FLAG_MEANINGS,
                "valid_min": np.int8(1),
                "valid_max": np.int8(9),
                "references": "https://ioos.noaa.gov/project/qartod/",
                "coverage_content_type": "qualityInformation",
                "coordinates": " ".join(coordinates),
            }
        )
        flags.append((name, test, variable))
        ancillary.setdefault(name, []).append(var_name)

    for field in summary.fields.values():
        if not field.kinds:
            # No value in the whole range (a sensor not fitted): a variable
            # of fill values would say nothing.
            continue
        kind = field.kind
        dims: tuple[str, ...] = ("time",)
        chunks_of: tuple[int, ...] = (_TIME_CHUNK,)
        if field.length:
            dims = ("time", cell_dims[field.length])
            chunks_of = (max(1, _TIME_CHUNK // field.length), field.length)
        attributes: dict[str, Any] = {}
        if kind == "text":
            variable = ds.createVariable(variable_name(field.name), str, dims)
            fill: Any = ""
        else:
            nc_type, fill = {
                "float": ("f8", np.nan),
                "int": ("i8", netCDF4.default_fillvals["i8"]),
                "bool": ("i1", np.int8(-127)),
            }[kind]
            variable = ds.createVariable(
                variable_name(field.name),
                nc_type,
                dims,
                fill_value=fill,
                chunksizes=chunks_of,
                zlib=True,
                complevel=1,
            )
            if kind == "bool":
                attributes["flag_values"] = np.array([0, 1], dtype="i1")
                attributes["flag_meanings"] = "false true"
        attributes["long_name"] = field.long_name or field.name.replace("_", " ")
        if field.standard_name:
            attributes["standard_name"] = field.standard_name
        if field.units == "" and kind in ("int", "float"):
            # A number the driver declares without units (a serial number,
            # a count): CF's dimensionless "1".
            attributes["units"] = "1"
        elif field.units and kind != "text":
            attributes["units"] = field.units
            if field.units in _TEMPERATURE_UNITS:
                attributes["units_metadata"] = "temperature: on_scale"
        if field.standard_name in _POSITIVE:
            # A vertical coordinate's direction (an ADCP's transducer depth).
            attributes["positive"] = _POSITIVE[field.standard_name]
        physical = kind != "text" and (
            field.standard_name is not None or field.units not in (None, "", "1")
        )
        attributes["coverage_content_type"] = (
            "physicalMeasurement" if physical else "auxiliaryInformation"
        )
        attributes["instrument"] = "instrument"
        coords = list(coordinates)
        if field.length and distance is not None and dims[1] == "cell":
            coords.append("cell_distance")
            if depths is not None:
                coords.append("cell_depth")
        attributes["coordinates"] = " ".join(coords)
        if field.name in ancillary:
            attributes["ancillary_variables"] = " ".join(ancillary[field.name])
        calibrated = info.calibration_dates.get(field.name)
        if calibrated:
            attributes["calibration_date"] = calibrated
        variable.setncatts(attributes)
        columns.append(_Column(field, variable, fill, kind))

    quality = None
    if summary.quality_flags:
        quality = ds.createVariable("quality_flag", str, ("time",))
        quality.setncatts(
            {
                "long_name": "the driver's quality flag of the record",
                "coverage_content_type": "qualityInformation",
                "coordinates": " ".join(coordinates),
            }
        )

    # The library gives each variable a chunk cache of up to 16 MiB by
    # default, which fills as the file grows: tens of variables would hold
    # hundreds of MiB.  Written once, in order, a chunk needs caching only
    # while it fills.
    for variable in ds.variables.values():
        if variable.dimensions[:1] == ("time",):
            variable.set_var_chunk_cache(size=_CHUNK_CACHE, nelems=61, preemption=1.0)

    written = 0
    for chunk in chunks:
        n = len(chunk)
        if not n:
            continue
        rows = slice(written, written + n)
        time[rows] = np.fromiter(
            (_micros(row) / 1e6 for row in chunk), dtype="f8", count=n
        )
        if distance is not None and written == 0:
            first = chunk[0].values
            bin_1, step = first.get("bin_1_distance"), first.get("cell_length")
            if isinstance(bin_1, int | float) and isinstance(step, int | float):
                length = distance.shape[0]
                # The Workhorse gives both in centimetres.
                distance[:] = (float(bin_1) + np.arange(length) * float(step)) / 100
        if depths is not None:
            depths[rows, :] = _cell_depths(
                np, chunk, depths.shape[1], info.beams_facing == "up"
            )
        for column in columns:
            _fill(np, column, chunk, rows)
        for name, test, variable in flags:
            data = np.full(n, -127, dtype="i1")
            for i, row in enumerate(chunk):
                if row.qc is not None:
                    flag = row.qc.get(name, {}).get(test)
                    if isinstance(flag, int):
                        data[i] = flag
            variable[rows] = data
        if quality is not None:
            quality[rows] = np.array(
                [row.quality_flag or "" for row in chunk], dtype=object
            )
        written += n
        if progress is not None:
            progress(n)
    return written


def _cell_depths(np: Any, chunk: list[Row], cells: int, up: bool) -> Any:
    """
    Each ensemble's cells' depths (metres, positive down): the transducer's
    depth, less (beams up) or plus (beams down) the distance to the middle
    of each cell, which the Workhorse gives in centimetres along the
    vertical.
    """
    data = np.full((len(chunk), cells), np.nan)
    offsets = np.arange(cells)
    sign = -1.0 if up else 1.0
    for i, row in enumerate(chunk):
        values = row.values
        depth = values.get("transducer_depth")
        bin_1 = values.get("bin_1_distance")
        step = values.get("cell_length")
        if all(isinstance(v, int | float) for v in (depth, bin_1, step)):
            assert isinstance(depth, int | float)
            assert isinstance(bin_1, int | float) and isinstance(step, int | float)
            data[i] = depth + sign * (bin_1 + offsets * step) / 100
    return data


def _fill(np: Any, column: _Column, chunk: list[Row], rows: slice) -> None:
    name = column.name
    convert = column.convert
    n = len(chunk)
    if column.length is None:
        if column.kind == "text":
            data = np.array(
                [convert(row.values.get(name)) for row in chunk], dtype=object
            )
        else:
            data = np.array(
                [convert(row.values.get(name)) for row in chunk],
                dtype=column.variable.dtype,
            )
        column.variable[rows] = data
        return
    length = column.length
    if column.kind == "text":
        data = np.full((n, length), "", dtype=object)
    else:
        data = np.full((n, length), column.fill, dtype=column.variable.dtype)
    for i, row in enumerate(chunk):
        value = row.values.get(name)
        if isinstance(value, list):
            items = [convert(v) for v in value[:length]]
            if items:
                data[i, : len(items)] = items
    column.variable[rows] = data
