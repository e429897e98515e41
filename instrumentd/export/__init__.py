"""
Export: the station's (or a collector's) archive of sample records, as CSV
and CF netCDF files for the people and archives that use the data.

- :mod:`instrumentd.export.archive` finds what an archive holds (stations,
  instruments, streams, day files, ``metadata.json``) and checks a
  selection against it.
- :mod:`instrumentd.export.reading` reads one series (a station's
  instrument's stream) in time order, in chunks, after a survey pass that
  learns its fields, units, QC tests and size.
- :mod:`instrumentd.export.csvfile` and :mod:`instrumentd.export.netcdf`
  write them; the netCDF writer needs the ``netcdf`` extra.
- :mod:`instrumentd.export.cli` is ``instrumentd-export``.

See ``doc/data.md`` ("Export").
"""

from instrumentd.export.archive import Archive, ExportError, Series, parse_time

__all__ = ["Archive", "ExportError", "Series", "parse_time"]
