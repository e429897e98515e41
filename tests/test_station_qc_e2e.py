"""
Real-time QC in a real station process: a simulated SBE 37 whose ``qc``
table makes every temperature fail its gross range and gives pressure a
spike test (so each record waits for the next sample).  The flags are in
the JSON-lines files, ``GET`` API, the event stream, ``/metrics``, and
``instrumentctl watch`` shows them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from tests import test_station_e2e as e2e

QC = """
[instruments.qc.ctdpf_sample.temperature]
gross_range = { fail_span = [0, 5] }
[instruments.qc.ctdpf_sample.pressure]
spike = { suspect_threshold = 0.001, fail_threshold = 100 }
"""


class _Watch(ProcessProtocol):
    """
    ``instrumentctl watch`` as a process: its output, and a Deferred that
    fires once a line matches.
    """

    def __init__(self, pattern: str) -> None:
        self.pattern = re.compile(pattern)
        self.output = ""
        self.seen: Deferred[str] = Deferred()
        self.ended: Deferred[None] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output += data.decode("utf-8", "replace")
        lines = self.output.split("\n")[:-1]
        if not self.seen.called:
            for line in lines:
                if self.pattern.search(line):
                    self.seen.callback(line)
                    break

    def errReceived(self, data: bytes) -> None:
        self.output += data.decode("utf-8", "replace")

    def processEnded(self, reason: Failure) -> None:
        if not self.seen.called:
            self.seen.errback(
                RuntimeError(
                    f"watch ended before {self.pattern.pattern!r}:\n{self.output}"
                )
            )
        self.ended.callback(None)


class StationQCTests(TestCase):
    """
    A station with QC configured, for real.
    """

    # The end-to-end tests' helpers (not their tests: those run there).
    _base = e2e.StationEndToEndTests
    setUp = _base.setUp
    start_station = _base.start_station
    request = _base.request
    samples = _base.samples

    async def test_flags_everywhere(self) -> None:
        station = self.start_station(
            e2e.simulated("ctd1", autosample=True, heartbeat=0) + QC
        )
        url = await station.url
        api = url + "/api/instruments/ctd1"

        def enough(events: list[dict[str, Any]]) -> bool:
            return len(_samples(events)) >= 4

        events = await self.samples(url, "ctd1", 1, until=enough)
        records = _samples(events)
        for record in records:
            qc = record["qc"]
            self.assertEqual(
                qc["temperature"], {"gross_range": 4, "aggregate": 4}, record
            )
            self.assertEqual(qc["conductivity"]["gross_range"], 1)
            self.assertIn(qc["pressure"]["spike"], (1, 2, 3), record)
        # Held for the next sample: the spike flags are final, evaluated
        # for every sample but the stream's first.
        self.assertTrue(
            all(r["qc"]["pressure"]["spike"] in (1, 3) for r in records[1:]), records
        )
        # A stream with no QC has no qc key.
        for event in events:
            if event["record"]["stream"] != "ctdpf_sample":
                self.assertNotIn("qc", event["record"])

        status = await self.request("GET", api)
        latest = status["latest_sample"]["record"]
        self.assertEqual(latest["qc"]["temperature"]["aggregate"], 4)

        response = await self.http.get(url + "/metrics")
        metrics = await response.text()
        self.assertRegex(
            metrics,
            r'instrumentd_qc_samples_total\{instrument="ctd1",stream="ctdpf_sample",'
            r'field="temperature",flag="fail"\} [1-9]',
        )
        self.assertRegex(
            metrics,
            r'instrumentd_qc_samples_total\{instrument="ctd1",stream="ctdpf_sample",'
            r'field="conductivity",flag="pass"\} [1-9]',
        )

        watch = _Watch(r"FAIL temperature")
        reactor.spawnProcess(  # type: ignore[attr-defined]
            watch,
            sys.executable,
            [
                sys.executable,
                "-u",
                "-c",
                e2e._INSTRUMENTCTL,
                "--url",
                url,
                "watch",
                "ctd1",
            ],
            env=dict(os.environ),
            path=self.directory,
        )
        line = await watch.seen
        self.assertRegex(line, r"Z .* FAIL temperature( SUSPECT pressure)?$")
        self.assertRegex(watch.output, r"TIME +TEMPERATURE .* QC\n")
        os.kill(watch.transport.pid, signal.SIGINT)  # type: ignore[union-attr]
        await watch.ended

        # The files: stopping the station flushes them (and the record
        # still held goes on first).
        station.transport.signalProcess("TERM")  # type: ignore[union-attr]
        await station.ended
        files = list(Path(self.directory, "data").rglob("ctd1/ctdpf_sample/*.jsonl"))
        self.assertTrue(files)
        written = [
            json.loads(line) for path in files for line in path.read_text().splitlines()
        ]
        self.assertGreaterEqual(len(written), len(records))
        for record in written:
            self.assertEqual(record["qc"]["temperature"]["aggregate"], 4)
        self.assertTrue(
            all(r["qc"]["pressure"]["spike"] in (1, 3) for r in written[1:-1])
        )


def _samples(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["record"] for e in events if e["record"]["stream"] == "ctdpf_sample"]
