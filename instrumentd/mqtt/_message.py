# -*- test-case-name: tests.test_mqtt_client -*-
"""
An MQTT 5 message as callers see it, and its properties, kept apart from
paho's types so that the rest of instrumentd never imports paho.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from paho.mqtt.client import MQTTMessage
    from paho.mqtt.properties import Properties

__all__ = ["Message", "MessageProperties"]


@dataclass(frozen=True, slots=True)
class MessageProperties:
    """
    The MQTT 5 properties of a PUBLISH that instrumentd uses.

    :ivar response_topic: where a request wants its response.
    :ivar correlation_data: what a response carries back to tell which
        request it answers.
    :ivar message_expiry_interval: seconds after which the broker must not
        deliver the message; on a received message, what was left of it.
    :ivar content_type: the payload's media type.
    :ivar user_properties: name/value pairs.
    """

    response_topic: str | None = None
    correlation_data: bytes | None = None
    message_expiry_interval: int | None = None
    content_type: str | None = None
    user_properties: tuple[tuple[str, str], ...] = ()

    def to_paho(self) -> Properties:
        """
        :returns: paho's PUBLISH properties holding these.
        """
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        if self.response_topic is not None:
            properties.ResponseTopic = self.response_topic
        if self.correlation_data is not None:
            properties.CorrelationData = self.correlation_data
        if self.message_expiry_interval is not None:
            properties.MessageExpiryInterval = self.message_expiry_interval
        if self.content_type is not None:
            properties.ContentType = self.content_type
        if self.user_properties:
            properties.UserProperty = list(self.user_properties)
        return properties

    @classmethod
    def from_paho(cls, properties: Properties | None) -> MessageProperties:
        """
        :param properties: a received message's properties, or ``None``.
        :returns: the ones this class knows.
        """
        if properties is None:
            return cls()
        correlation = getattr(properties, "CorrelationData", None)
        users = getattr(properties, "UserProperty", None) or []
        return cls(
            response_topic=getattr(properties, "ResponseTopic", None),
            correlation_data=bytes(correlation) if correlation is not None else None,
            message_expiry_interval=getattr(properties, "MessageExpiryInterval", None),
            content_type=getattr(properties, "ContentType", None),
            user_properties=tuple((str(k), str(v)) for k, v in users),
        )


def _acknowledged() -> None:
    # Acknowledged on receipt (by paho) already.
    pass


@dataclass(frozen=True, slots=True)
class Message:
    """
    A message received from the broker.

    :ivar topic: its topic.
    :ivar payload: its bytes.
    :ivar qos: the QoS it was delivered with.
    :ivar retain: whether it is a retained message (sent because of a
        new subscription, not published just now).
    :ivar properties: its MQTT 5 properties.
    :ivar received: when it arrived, by the client's clock (seconds).
    :ivar ack: with :attr:`BrokerSettings.manual_ack
        <instrumentd.mqtt.BrokerSettings.manual_ack>`, acknowledges it to
        the broker (on the connection it came on; if that is gone, the
        broker sends it again on the next); otherwise it was acknowledged
        on receipt and this does nothing.
    """

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    properties: MessageProperties = field(default_factory=MessageProperties)
    received: float = 0.0
    ack: Callable[[], None] = field(default=_acknowledged, compare=False, repr=False)

    @classmethod
    def from_paho(
        cls,
        message: MQTTMessage,
        received: float,
        ack: Callable[[], None] | None = None,
    ) -> Message:
        """
        :param message: paho's message.
        :param received: when it arrived.
        :param ack: acknowledges it, when that is left to the receiver.
        :returns: ours.
        """
        return cls(
            topic=message.topic,
            payload=bytes(message.payload),
            qos=message.qos,
            retain=bool(message.retain),
            properties=MessageProperties.from_paho(message.properties),
            received=received,
            ack=ack if ack is not None else _acknowledged,
        )
