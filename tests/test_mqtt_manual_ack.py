"""
Tests for L{instrumentd.mqtt}'s manual acknowledgement
(C{BrokerSettings.manual_ack}, C{Message.ack}) against a real Mosquitto: a
message its receiver has not acknowledged is delivered again on the
session's next connection; one it has acknowledged is not.
"""

from __future__ import annotations

import os

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from instrumentd.mqtt import BrokerSettings, MQTTClient
from tests.brokersupport import Broker
from tests.test_mqtt_client import Inbox


class ManualAckTests(TestCase):
    """
    A persistent session whose messages are acknowledged by hand.
    """

    timeout = 120

    async def receiver(self, broker: Broker) -> tuple[MQTTClient, Inbox]:
        client = MQTTClient(
            BrokerSettings(
                broker.url,
                client_id="receiver",
                clean_start=False,
                session_expiry=600,
                manual_ack=True,
            ),
            reactor=reactor,
        )
        inbox = Inbox()
        client.on_message(inbox)
        client.subscribe("t/#", 1)
        client.startService()
        await client.when_connected()
        return client, inbox

    async def test_redelivered_until_acknowledged(self) -> None:
        """
        Unacknowledged, a message comes again on the next connection;
        acknowledged, it does not (the marker published after it comes
        alone).
        """
        broker = Broker(os.path.abspath(self.mktemp()))
        await broker.start()
        self.addCleanup(broker.stop)
        sender = MQTTClient(
            BrokerSettings(broker.url, client_id="sender"), reactor=reactor
        )
        sender.startService()
        self.addCleanup(sender.stopService)
        await sender.when_connected()

        client, inbox = await self.receiver(broker)
        await sender.publish("t/a", b"first")
        await inbox.wait(lambda messages: len(messages) == 1)
        await client.stopService()

        client, inbox = await self.receiver(broker)
        await inbox.wait(lambda messages: len(messages) == 1)
        [again] = inbox.messages
        self.assertEqual(again.payload, b"first")
        again.ack()
        await client.stopService()

        client, inbox = await self.receiver(broker)
        await sender.publish("t/b", b"marker")
        await inbox.wait(lambda messages: any(m.payload == b"marker" for m in messages))
        self.assertEqual([m.payload for m in inbox.messages], [b"marker"])
        inbox.messages[0].ack()
        await client.stopService()
