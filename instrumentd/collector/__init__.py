"""
The shore collector: stations' MQTT messages into one archive, each
exactly once, with the gaps in their sequence numbers reported.

- :mod:`~instrumentd.collector.message`: a message's topic and payload,
  checked, and its archive line;
- :mod:`~instrumentd.collector.ledger`: the sequence numbers seen and the
  gaps, per (station, instrument);
- :mod:`~instrumentd.collector.archive`: the archive's files;
- :mod:`~instrumentd.collector.checkpoint`: the ledger saved, and rebuilt
  from the archive on start;
- :mod:`~instrumentd.collector.core`: write, then acknowledge;
- :mod:`~instrumentd.collector.api`: the HTTP API and metrics;
- :mod:`~instrumentd.collector.service`, :mod:`~instrumentd.collector.options`:
  ``twistd instrumentd collect``.

See ``doc/multi-host.md``.
"""
