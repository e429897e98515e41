"""
End-to-end tests of the shore collector: a real Mosquitto broker, a real
``twistd -n instrumentd collect`` process, and hand-made station messages
published by a test client: gaps reported in the API, the metrics and
the log, and closed by late deliveries; every message archived exactly
once across orderly and SIGKILL restarts of the collector, with messages
published while it is down; a message the archive could not take is not
acknowledged, and is archived once the archive can take it.

The stations' own MQTT sink, real station processes, a bridge and the
broker's restarts are in ``tests.test_mqtt_pipeline``.
"""

from __future__ import annotations

import os

from twisted.trial.unittest import TestCase

from tests.brokersupport import Broker
from tests.collectorsupport import (
    CollectorProcess,
    exactly_once,
    publish_messages,
    read_archive,
    seqs,
)


class CollectorEndToEndTests(TestCase):
    """
    One broker, one collector process.
    """

    timeout = 240

    async def start(self, **kwargs: object) -> tuple[Broker, CollectorProcess]:
        directory = os.path.abspath(self.mktemp())
        broker = Broker(os.path.join(directory, "broker"), persistence=True)
        await broker.start()
        self.addCleanup(broker.stop)
        collector = CollectorProcess(
            os.path.join(directory, "collector"),
            broker.url,
            **kwargs,  # type: ignore[arg-type]
        )
        await collector.start()
        self.addCleanup(collector.stop)
        return broker, collector

    async def test_gap_reported_and_closed(self) -> None:
        """
        Messages 1, 2, 6 open a gap 3..5 with the times on either side, in
        the API, the metrics and the log; 5, 3, 4 arriving late close it,
        and the archive holds 1 to 6 once each.
        """
        broker, collector = await self.start()
        await publish_messages(broker.port, [1, 2, 6])
        gaps = await collector.until(
            lambda g: len(g["open"]) == 1, "/gaps", "an open gap"
        )
        [gap] = gaps["open"]
        self.assertEqual(
            (
                gap["station"],
                gap["instrument"],
                gap["first"],
                gap["last"],
                gap["missing"],
            ),
            ("A", "CTD", 3, 5, 3),
        )
        self.assertEqual(gap["after"], "2026-12-07T08:00:02.000000Z")
        self.assertEqual(gap["before"], "2026-12-07T08:00:06.000000Z")
        metrics = await collector.metrics()
        self.assertIn(
            'instrumentd_collector_missing{station="A",instrument="CTD"} 3',
            metrics.splitlines(),
        )
        await collector.process.wait_for(r"gap opened: A/CTD seq 3\.\.5")
        await publish_messages(broker.port, [5, 3, 4])
        gaps = await collector.until(
            lambda g: not g["open"] and g["closed"], "/gaps", "the gap closed"
        )
        [closed] = gaps["closed"]
        self.assertEqual(
            (closed["first"], closed["last"], closed["missing"]), (3, 5, 0)
        )
        self.assertIsNotNone(closed["closed"])
        await collector.process.wait_for(r"gap closed: A/CTD seq 3\.\.5")
        await collector.stop()
        [lines] = read_archive(collector.archive).values()
        self.assertEqual(seqs(lines), [1, 2, 6, 5, 3, 4])

    async def test_exactly_once_across_restarts(self) -> None:
        """
        Messages sent again after an orderly stop and after a SIGKILL are
        dropped; messages published while the collector is down are kept
        by the broker for its session and archived when it comes back;
        its gap report survives the restart.
        """
        broker, collector = await self.start()
        await publish_messages(broker.port, range(1, 51))
        await publish_messages(broker.port, [1, 2], instrument="ADCP")
        await publish_messages(broker.port, [4], instrument="ADCP")
        await collector.archived(53)
        await collector.stop()
        # While it is down: the broker keeps these for its session.
        await publish_messages(broker.port, range(40, 81))
        await collector.start()
        status = await collector.archived(80 + 3)
        self.assertEqual(status["duplicates"], 11)
        await collector.kill()
        await publish_messages(broker.port, range(1, 101))
        await collector.start()
        await collector.archived(100 + 3)
        gaps = await collector.get("/gaps")
        self.assertEqual(
            [(g["instrument"], g["first"], g["last"]) for g in gaps["open"]],
            [("ADCP", 3, 3)],
        )
        await collector.stop()
        archive = read_archive(collector.archive)
        exactly_once(self, archive[("A", "CTD")], range(1, 101))
        exactly_once(self, archive[("A", "ADCP")], [1, 2, 4])

    async def test_unwritten_not_acknowledged(self) -> None:
        """
        A message the archive cannot take (its folder is a file) is not
        acknowledged: the broker delivers it again, and once the archive
        can take it, it is there, once.
        """
        broker, collector = await self.start()
        await publish_messages(broker.port, [1])
        await collector.archived(1)
        blocked = os.path.join(collector.archive, "A", "ADCP")
        with open(blocked, "w") as f:
            f.write("not a folder\n")
        await publish_messages(broker.port, [1, 2, 3], instrument="ADCP")
        await collector.process.wait_for(r"cannot write the archive")
        status = await collector.get()
        self.assertNotIn("ADCP", status["stations"]["A"])
        os.remove(blocked)
        await collector.archived(4)
        await collector.stop()
        archive = read_archive(collector.archive)
        exactly_once(self, archive[("A", "ADCP")], [1, 2, 3])
