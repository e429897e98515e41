"""
Tests for L{instrumentd.collector.core}, L{instrumentd.collector.message},
L{instrumentd.collector.archive} and L{instrumentd.collector.checkpoint}:
the archive's layout and lines, acknowledgement only after the write,
duplicates dropped across restarts, malformed messages refused, a failed
write acknowledging nothing.
"""

from __future__ import annotations

import json
import os
from typing import Any

from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from instrumentd.collector.archive import scan
from instrumentd.collector.core import Collector
from instrumentd.collector.message import MessageError, parse_message


def record(
    seq: int, stream: str = "ctd_sample", instrument: str = "CTD"
) -> dict[str, Any]:
    """
    A record version 2 whose time is seq seconds after 2026-12-07T08:00.
    """
    return {
        "record": "instrumentd.sample",
        "version": 2,
        "instrument": instrument,
        "stream": stream,
        "time": f"2026-12-07T08:{seq // 60 % 60:02d}:{seq % 60:02d}.000000Z",
        "ntp_time": 3974284800.0 + seq,
        "values": {"temperature": 10.0 + seq},
    }


def data(
    seq: int, station: str = "A", instrument: str = "CTD", stream: str = "ctd_sample"
) -> tuple[str, bytes]:
    """
    A data message: topic and payload.
    """
    payload = {
        "station": station,
        "instrument": instrument,
        "seq": seq,
        "record": record(seq, stream, instrument),
    }
    return (
        f"instrumentd/{station}/{instrument}/data/{stream}",
        json.dumps(payload).encode(),
    )


def read_archive(directory: str) -> dict[str, list[dict[str, Any]]]:
    """
    Every archive file's records, by relative path.
    """
    found: dict[str, list[dict[str, Any]]] = {}
    for root, dirs, files in os.walk(directory):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            path = os.path.join(root, name)
            with open(path, encoding="utf-8") as f:
                found[os.path.relpath(path, directory)] = [
                    json.loads(line) for line in f if line.strip()
                ]
    return found


class MessageTests(SynchronousTestCase):
    """
    L{parse_message} checks topic and payload and builds the archive line.
    """

    def test_data(self) -> None:
        """
        A data message's line is its record with C{station} and C{seq}
        added; its day and time come from the record.
        """
        message = parse_message(*data(7))
        self.assertEqual(
            (message.station, message.instrument, message.seq, message.stream),
            ("A", "CTD", 7, "ctd_sample"),
        )
        self.assertEqual(message.day, "2026-12-07")
        self.assertEqual(
            json.loads(message.line), {**record(7), "station": "A", "seq": 7}
        )
        self.assertTrue(message.line.endswith(b"\n"))

    def test_event(self) -> None:
        """
        An event goes to the instrument's C{_events}, dated by its time.
        """
        payload = {
            "station": "A",
            "instrument": "CTD",
            "seq": 3,
            "event": {"type": "STATE_CHANGE", "time": 1_800_000_000.0, "state": "X"},
        }
        message = parse_message(
            "instrumentd/A/CTD/events/STATE_CHANGE", json.dumps(payload).encode()
        )
        self.assertEqual((message.stream, message.day), ("_events", "2027-01-15"))
        line = json.loads(message.line)
        self.assertEqual(
            (line["station"], line["instrument"], line["seq"]), ("A", "CTD", 3)
        )

    def test_old_record_converted(self) -> None:
        """
        A record in the layout before version 2 (a particle's
        C{to_dict()}) is archived as version 2.
        """
        old = {
            "pkt_format_id": "JSON_Data",
            "pkt_version": 1,
            "stream_name": "ctd_sample",
            "preferred_timestamp": "driver_timestamp",
            "driver_timestamp": 3974284800.5,
            "values": [{"value_id": "temperature", "value": 10.5}],
        }
        payload = {"station": "A", "instrument": "CTD", "seq": 1, "record": old}
        message = parse_message(
            "instrumentd/A/CTD/data/ctd_sample", json.dumps(payload).encode()
        )
        line = json.loads(message.line)
        self.assertEqual((line["version"], line["values"]), (2, {"temperature": 10.5}))
        self.assertEqual(message.day, "2025-12-09")

    def test_refused(self) -> None:
        """
        Each malformed message is refused, naming what is wrong.
        """
        topic, payload = data(1)
        body = json.loads(payload)
        cases = [
            ("instrumentd/A/CTD/meta", payload, "is not instrumentd/"),
            (topic, b"{nope", "not JSON"),
            (topic, b"[1]", "not a JSON object"),
            (topic, json.dumps({**body, "station": "B"}).encode(), "'station' is 'B'"),
            (topic, json.dumps({**body, "seq": 0}).encode(), "not a positive integer"),
            (
                topic,
                json.dumps({**body, "seq": True}).encode(),
                "not a positive integer",
            ),
            (topic, json.dumps({**body, "record": [1]}).encode(), "'record' is list"),
            (
                topic,
                json.dumps({**body, "record": {"record": "x"}}).encode(),
                "not a sample record",
            ),
        ]
        for topic_, payload_, expected in cases:
            with self.assertRaises(MessageError) as caught:
                parse_message(topic_, payload_)
            self.assertIn(expected, str(caught.exception))


class CollectorTests(SynchronousTestCase):
    """
    L{Collector} writes, then acknowledges; drops duplicates, also after a
    restart; refuses malformed messages.
    """

    def setUp(self) -> None:
        self.directory = self.mktemp()
        self.clock = Clock()
        self.clock.advance(1_800_000_000)
        self.acked: list[object] = []
        self.failures: list[OSError] = []

    def collector(self, **kwargs: Any) -> Collector:
        collector = Collector(
            self.directory,
            self.clock,
            on_write_failure=self.failures.append,
            **kwargs,
        )
        collector.start()
        return collector

    def receive(
        self, collector: Collector, topic: str, payload: bytes, tag: object
    ) -> None:
        collector.receive(topic, payload, lambda: self.acked.append(tag))

    def test_layout_and_ack_after_write(self) -> None:
        """
        Messages go to C{station/instrument/stream/day.jsonl}, in order; none
        is acknowledged before its batch is written, at the end of the
        reactor's turn.
        """
        collector = self.collector()
        for seq in (1, 2, 3):
            self.receive(collector, *data(seq), seq)
        self.receive(
            collector, *data(1, station="B", instrument="ADCP", stream="pd0"), "B1"
        )
        self.assertEqual(self.acked, [])
        self.assertEqual(sum(map(len, read_archive(self.directory).values())), 0)
        self.clock.advance(0)
        self.assertEqual(self.acked, [1, 2, 3, "B1"])
        archive = read_archive(self.directory)
        self.assertEqual(
            sorted(archive),
            [
                os.path.join("A", "CTD", "ctd_sample", "2026-12-07.jsonl"),
                os.path.join("B", "ADCP", "pd0", "2026-12-07.jsonl"),
            ],
        )
        lines = archive[os.path.join("A", "CTD", "ctd_sample", "2026-12-07.jsonl")]
        self.assertEqual(
            lines, [{**record(s), "station": "A", "seq": s} for s in (1, 2, 3)]
        )
        self.assertEqual(collector.archived, 4)

    def test_duplicates(self) -> None:
        """
        A duplicate, in the same batch or a later one, is acknowledged and
        not written again.
        """
        collector = self.collector()
        for seq in (1, 2, 2):
            self.receive(collector, *data(seq), seq)
        self.clock.advance(0)
        self.receive(collector, *data(1), "again")
        self.clock.advance(0)
        self.assertEqual(sorted(map(str, self.acked)), ["1", "2", "2", "again"])
        [lines] = read_archive(self.directory).values()
        self.assertEqual([line["seq"] for line in lines], [1, 2])
        self.assertEqual(collector.duplicates, 2)

    def test_refused_acknowledged(self) -> None:
        """
        A malformed message is acknowledged (no redelivery would mend it),
        counted and logged, and writes nothing.
        """
        collector = self.collector()
        with capturedLogs() as events:
            self.receive(collector, "instrumentd/A/CTD/data/s", b"junk", "junk")
        self.assertEqual(self.acked, ["junk"])
        self.assertEqual(collector.rejected, 1)
        self.assertIn("not JSON", str(events[0].get("error")))
        self.clock.advance(0)
        self.assertEqual(read_archive(self.directory), {})

    def test_restart_from_checkpoint(self) -> None:
        """
        A restarted collector drops what it archived before: what its
        checkpoint holds and what was written after the checkpoint.
        """
        collector = self.collector(checkpoint_interval=5)
        for seq in (1, 2):
            self.receive(collector, *data(seq), seq)
        self.clock.advance(0)
        self.clock.advance(5)
        self.assertTrue(os.path.exists(collector.checkpoint_path))
        for seq in (3, 5):
            self.receive(collector, *data(seq), seq)
        self.clock.advance(0)
        # A crash: no checkpoint of 3 and 5, files closed by the kernel.
        collector.archive.close()
        again = self.collector()
        self.assertEqual(again.recovered, 2)
        self.acked.clear()
        for seq in (1, 2, 3, 4, 5, 6):
            self.receive(again, *data(seq), seq)
        self.clock.advance(0)
        self.assertEqual(sorted(self.acked), [1, 2, 3, 4, 5, 6])
        [lines] = read_archive(self.directory).values()
        self.assertEqual([line["seq"] for line in lines], [1, 2, 3, 5, 4, 6])
        self.assertEqual(again.duplicates, 4)
        [closed] = again.ledger.closed
        self.assertEqual((closed.first, closed.last), (4, 4))

    def test_rebuild_without_checkpoint(self) -> None:
        """
        With its checkpoint gone, the collector reads the whole archive.
        """
        collector = self.collector()
        for seq in (1, 2, 3):
            self.receive(collector, *data(seq), seq)
        collector.stop()
        os.remove(collector.checkpoint_path)
        again = self.collector()
        self.assertEqual(again.recovered, 3)
        self.assertTrue(again.ledger.is_duplicate("A", "CTD", 2))

    def test_torn_line(self) -> None:
        """
        A line torn by a crash is left as one bad line; the next record
        starts on its own line, and the scan skips the torn one.
        """
        collector = self.collector()
        self.receive(collector, *data(1), 1)
        collector.stop()
        [path] = read_archive(self.directory)
        with open(os.path.join(self.directory, path), "ab") as f:
            f.write(b'{"record":"instrumentd.sample","seq":2,"sta')
        os.remove(collector.checkpoint_path)
        again = self.collector()
        self.receive(again, *data(2), 2)
        again.stop()
        with open(os.path.join(self.directory, path), "rb") as f:
            lines = f.read().split(b"\n")
        self.assertEqual(len(lines), 4)
        self.assertEqual([line.seq for line in scan(self.directory)], [1, 2])

    def test_write_failure(self) -> None:
        """
        A batch that cannot be written is not acknowledged, the failure is
        reported, and the messages are taken again later.
        """
        collector = self.collector()
        self.receive(collector, *data(1), 1)
        self.clock.advance(0)
        [file] = collector.archive._files.values()
        os.close(file.fd)
        # A descriptor that refuses writes, like a full disk would.
        file.fd = os.open(os.devnull, os.O_RDONLY)
        with capturedLogs() as events:
            self.receive(collector, *data(2), 2)
            self.clock.advance(0)
        self.assertEqual(self.acked, [1])
        self.assertEqual(len(self.failures), 1)
        self.assertEqual(collector.write_errors, 1)
        self.assertIn("not acknowledged", str(events[0].get("error")))
        self.receive(collector, *data(2), "again")
        self.clock.advance(0)
        self.assertEqual(self.acked, [1, "again"])
        self.assertIsNone(collector.last_error())
