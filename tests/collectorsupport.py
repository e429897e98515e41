"""
The shore collector for the tests: a real ``twistd -n instrumentd collect``
process (started, stopped in order, killed with SIGKILL, started again on
the same archive), its HTTP API read with treq, its archive read back; and
a publisher of hand-made station messages.

Readiness is an event (the collector's log lines); a condition on the
collector's state is waited for by asking its API again until it holds,
within a generous deadline.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.web.client import Agent, HTTPConnectionPool

from tests.test_station_e2e import _TWISTD, StationProcess

#: Generous: the machine is shared and may be loaded.
DEADLINE = 90.0

#: The log line of a collector whose session with the broker is up.
CONNECTED = r"Connected to the MQTT broker"


class CollectorProcess:
    """
    A collector run as a child process, restartable on the same archive and
    client id (so on the same broker session).

    :param directory: where its configuration and archive go.
    :param broker: the broker's address.
    :param client_id: its MQTT client id.
    :param config: more lines of its ``[collector]`` table.
    """

    def __init__(
        self,
        directory: str,
        broker: str,
        *,
        client_id: str = "shore-1",
        config: str = "",
    ) -> None:
        self.directory = directory
        self.archive = os.path.join(directory, "archive")
        self.broker = broker
        self.client_id = client_id
        self.config = config
        self.runs: list[StationProcess] = []
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.http = HTTPClient(Agent(reactor, pool=pool))
        self.url: str | None = None

    @property
    def process(self) -> StationProcess:
        """
        The current run.
        """
        return self.runs[-1]

    @property
    def output(self) -> str:
        """
        Every run's log.
        """
        return "\n".join(run.output for run in self.runs)

    async def start(self) -> None:
        """
        Start a run; return once its API listens and its session is up.
        """
        os.makedirs(self.directory, exist_ok=True)
        path = os.path.join(self.directory, "collector.toml")
        with open(path, "w") as f:
            f.write(
                f'[collector]\nclient_id = "{self.client_id}"\n'
                f"checkpoint_interval = 0.5\n{self.config}\n"
            )
        run = StationProcess()
        self.runs.append(run)
        argv = [
            sys.executable,
            "-u",
            "-c",
            _TWISTD,
            "-n",
            "--pidfile=",
            "instrumentd",
            "collect",
            "--config",
            path,
            "--broker",
            self.broker,
            "--data-dir",
            self.archive,
            "--api",
            "tcp:0:interface=127.0.0.1",
        ]
        reactor.spawnProcess(  # type: ignore[attr-defined]
            run, sys.executable, argv, env=dict(os.environ), path=self.directory
        )
        self.url = await run.url
        await run.wait_for(CONNECTED)

    async def stop(self) -> None:
        """
        Stop the current run in order (SIGTERM), if it is running.
        """
        run = self.process
        if run.exit_code is None:
            run.transport.signalProcess("TERM")  # type: ignore[union-attr]
            await run.ended

    async def kill(self) -> None:
        """
        Kill the current run (SIGKILL).
        """
        run = self.process
        if run.exit_code is None:
            run.transport.signalProcess("KILL")  # type: ignore[union-attr]
            await run.ended

    async def get(self, path: str = "") -> Any:
        """
        :returns: the JSON of ``GET /api{path}``.
        """
        assert self.url is not None
        response = await self.http.get(self.url + "/api" + path)
        return json.loads(await response.text())

    async def metrics(self) -> str:
        """
        :returns: ``GET /metrics``.
        """
        assert self.url is not None
        response = await self.http.get(self.url + "/metrics")
        text: str = await response.text()
        return text

    async def until(
        self, condition: Callable[[Any], bool], path: str = "", what: str = ""
    ) -> Any:
        """
        Ask ``GET /api{path}`` until ``condition`` holds for its answer.

        :returns: that answer.
        :raises AssertionError: after :data:`DEADLINE` seconds, with the
            last answer and the collector's log.
        """
        start = reactor.seconds()  # type: ignore[attr-defined]
        while True:
            answer = await self.get(path)
            if condition(answer):
                return answer
            if reactor.seconds() - start > DEADLINE:  # type: ignore[attr-defined]
                raise AssertionError(
                    f"the collector never had {what or 'it'}; last answer "
                    f"{json.dumps(answer)[:3000]}\nits log:\n{self.output[-6000:]}"
                )
            await deferLater(reactor, 0.1, lambda: None)

    async def archived(self, count: int) -> Any:
        """
        Wait until ``count`` messages are archived in all (by this run).
        """
        return await self.until(
            lambda status: _archived(status) >= count,
            what=f"{count} messages archived",
        )


def _archived(status: Any) -> int:
    return sum(
        int(each["received"])
        for instruments in status.get("stations", {}).values()
        for each in instruments.values()
    )


def read_archive(directory: str) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """
    The archive's lines by (station, instrument), file by file in name
    order (days in order), events included.

    :raises AssertionError: for a line that is not JSON.
    """
    found: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.endswith(".jsonl"):
                continue
            with open(os.path.join(root, name), encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        record = json.loads(line)
                        key = (record["station"], record["instrument"])
                        found.setdefault(key, []).append(record)
    return found


def message(
    seq: int, station: str = "A", instrument: str = "CTD", stream: str = "ctd_sample"
) -> tuple[str, str]:
    """
    A data message as a station sends it: its topic and JSON text.
    """
    record = {
        "record": "instrumentd.sample",
        "version": 2,
        "instrument": instrument,
        "stream": stream,
        "time": f"2026-12-07T08:{seq // 60 % 60:02d}:{seq % 60:02d}.000000Z",
        "ntp_time": 3974284800.0 + seq,
        "time_source": "driver_timestamp",
        "values": {"count": seq},
    }
    body = {"station": station, "instrument": instrument, "seq": seq, "record": record}
    return f"instrumentd/{station}/{instrument}/data/{stream}", json.dumps(body)


async def publish(port: int, topic: str, payloads: Iterable[str]) -> None:
    """
    Publish each payload to ``topic`` with QoS 1, in order, as a station
    would (one message at a time); return once the broker has acknowledged
    them all.
    """
    from instrumentd.mqtt import BrokerSettings, MQTTClient

    client = MQTTClient(
        BrokerSettings(
            f"mqtt://127.0.0.1:{port}", client_id=f"publisher-{os.getpid()}"
        ),
        reactor=reactor,
    )
    client.startService()
    try:
        await client.when_connected()
        for payload in payloads:
            await client.publish(topic, payload.encode(), qos=1)
    finally:
        await client.stopService()


async def publish_messages(
    port: int, numbers: Iterable[int], station: str = "A", instrument: str = "CTD"
) -> None:
    """
    Publish data messages with these sequence numbers, in this order.
    """
    pairs = [message(n, station, instrument) for n in numbers]
    if pairs:
        await publish(port, pairs[0][0], [text for _, text in pairs])


def seqs(lines: Iterable[dict[str, Any]]) -> list[int]:
    """
    :returns: the sequence numbers of archived lines, in their order.
    """
    return [int(line["seq"]) for line in lines]


def exactly_once(
    testcase: Any, lines: Sequence[dict[str, Any]], expected: Iterable[int]
) -> None:
    """
    Assert that the archive holds each expected number once, and no other.
    """
    numbers = seqs(lines)
    duplicates = sorted(n for n, count in Counter(numbers).items() if count > 1)
    testcase.assertEqual(duplicates, [], "duplicates in the archive")
    testcase.assertEqual(sorted(numbers), sorted(expected))
