"""
The station: the service operators run, which starts port agents and
drivers from a config file, serves the HTTP API and sends data to sinks.

- :mod:`instrumentd.station.sinks`: where particles go: JSON-lines files,
  an HTTP ingest endpoint, memory.
- :mod:`instrumentd.station.spool`: the disk queue behind the HTTP sink.
"""
