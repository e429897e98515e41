"""
The station: the service operators run, which starts port agents and
drivers from a config file, serves the HTTP API and sends data to sinks.

- :mod:`instrumentd.station.config`: the TOML configuration, checked
  whole before anything starts.
- :mod:`instrumentd.station.service`: the station service: the sinks, a
  supervisor for each instrument, and the API.
- :mod:`instrumentd.station.supervisor`: one instrument brought up and
  kept up: its simulator, port agent and driver.
- :mod:`instrumentd.station.instrument`: what the API sees of one
  instrument, and the station registry.
- :mod:`instrumentd.station.api`: the HTTP JSON API, with
  :mod:`~instrumentd.station.sse` (event streams) and
  :mod:`~instrumentd.station.metrics` (Prometheus text).
- :mod:`instrumentd.station.sinks`: where particles go: JSON-lines files,
  an HTTP ingest endpoint, memory.
- :mod:`instrumentd.station.spool`: the disk queue behind the HTTP sink.
"""
