# -*- test-case-name: tests.test_mqtt_client -*-
"""
What goes wrong talking to a broker, as exceptions a caller can tell apart.
"""

from __future__ import annotations

__all__ = [
    "BrokerRefusedError",
    "MQTTError",
    "NotConnectedError",
    "PublishRefusedError",
]


class MQTTError(Exception):
    """
    The base of this package's errors.
    """


class NotConnectedError(MQTTError):
    """
    There is no connection to the broker now: the message was not sent.
    """


class BrokerRefusedError(MQTTError):
    """
    The broker refused the connection (its CONNACK carried a failure
    reason: bad user name or password, not authorised, ...).

    :ivar reason: the broker's reason, as MQTT 5 names it.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"the broker refused the connection: {reason}")
        self.reason = reason


class PublishRefusedError(MQTTError):
    """
    The broker answered a QoS 1 publication with a failure reason (for
    example "Not authorized" when an ACL forbids the topic).

    :ivar topic: the message's topic.
    :ivar reason: the broker's reason.
    """

    def __init__(self, topic: str, reason: str) -> None:
        super().__init__(f"the broker refused the message to {topic}: {reason}")
        self.topic = topic
        self.reason = reason
