"""
Tests for :mod:`instrumentd.mqtt.topics`.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from instrumentd.mqtt.topics import (
    TopicParts,
    command_topic,
    data_topic,
    events_topic,
    meta_topic,
    parse_topic,
    station_command_topic,
    status_topic,
)


class TopicTests(SynchronousTestCase):
    """
    The layout of CONTRACTS §2, built and parsed back.
    """

    def test_round_trip(self) -> None:
        """
        Every topic built parses back to what it was built from.
        """
        cases = [
            (
                data_topic("buoy1", "CTD01", "ctd_sample"),
                TopicParts("data", "buoy1", "CTD01", "ctd_sample"),
            ),
            (
                events_topic("buoy1", "CTD01", "STATE_CHANGE"),
                TopicParts("events", "buoy1", "CTD01", "STATE_CHANGE"),
            ),
            (meta_topic("buoy1", "CTD01"), TopicParts("meta", "buoy1", "CTD01")),
            (command_topic("buoy1", "CTD01"), TopicParts("cmd", "buoy1", "CTD01")),
            (status_topic("buoy1"), TopicParts("status", "buoy1")),
            (station_command_topic("buoy1"), TopicParts("cmd", "buoy1")),
        ]
        self.assertEqual(cases[0][0], "instrumentd/buoy1/CTD01/data/ctd_sample")
        self.assertEqual(cases[4][0], "instrumentd/buoy1/status")
        for topic, parts in cases:
            self.assertEqual(parse_topic(topic), parts)

    def test_not_ours(self) -> None:
        """
        Topics outside the layout are ``None``.
        """
        for topic in (
            "other/buoy1/status",
            "instrumentd/buoy1",
            "instrumentd/buoy1/CTD01",
            "instrumentd/buoy1/CTD01/data",
            "instrumentd/buoy1/CTD01/meta/x",
            "instrumentd//status",
            "instrumentd/buoy1/CTD01/replies/x",
        ):
            self.assertIsNone(parse_topic(topic), topic)
