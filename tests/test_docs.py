"""
The documentation says what happens: links in C{doc/} lead somewhere in the
repository, the systemd examples agree on where instrumentd is installed,
and C{doc/port-agent.md}'s example command session and C{get_stats} field
table match what a real port agent (a C{twistd} child running the demo)
answers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase, TestCase

from instrumentd import __version__
from tests.agentsupport import LineClient, connect, run, start_agent

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "doc"

#: Where the examples install instrumentd: a virtual environment, whose
#: programs are under its bin/.
VENV_BIN = "/opt/instrumentd/venv/bin/"


def documents() -> list[Path]:
    """
    The Markdown documents of the repository.
    """
    return [ROOT / "README.md", *sorted(DOC.rglob("*.md"))]


def without_code(text: str) -> str:
    """
    Markdown text without its fenced code blocks.
    """
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


class ReferenceTests(SynchronousTestCase):
    """
    What the documents point at is in the repository.
    """

    def test_linksResolve(self) -> None:
        """
        Every relative link names a file or directory that exists.
        """
        missing = []
        for path in documents():
            for target in re.findall(
                r"\]\(([^)\s]+)\)", without_code(path.read_text())
            ):
                if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                    continue
                if not (path.parent / target.split("#")[0]).exists():
                    missing.append(f"{path.relative_to(ROOT)}: {target}")
        self.assertEqual(missing, [])

    def test_nothingOutsideTheRepository(self) -> None:
        """
        No document sends the reader to a file outside the repository (the
        project's working notes in C{shared/}).
        """
        outside = [
            f"{path.relative_to(ROOT)}: {line.strip()}"
            for path in documents()
            for line in path.read_text().splitlines()
            if re.search(r"(?<![\w/])shared/(spec|reference)/", line)
        ]
        self.assertEqual(outside, [])


class VersionTests(SynchronousTestCase):
    """
    The version the documents show the station printing is this one.
    """

    def test_stationStartLine(self) -> None:
        """
        C{doc/station.md}'s start-up line names the version the station
        logs (C{instrumentd.__version__}).
        """
        text = (DOC / "station.md").read_text()
        shown = re.findall(r"\] instrumentd (\S+) station: ", text)
        self.assertEqual(shown, [__version__])


class SystemdTests(SynchronousTestCase):
    """
    The systemd examples, in C{doc/examples/} and in the documents, install
    and run instrumentd from the same virtual environment.
    """

    def test_sameVirtualEnvironment(self) -> None:
        """
        Every C{/opt/instrumentd/...} program they name is in
        C{/opt/instrumentd/venv/bin/}, and the two unit files say so.
        """
        sources = [*documents(), *sorted((DOC / "examples").glob("*.service"))]
        elsewhere = [
            f"{path.relative_to(ROOT)}: {found}"
            for path in sources
            for found in re.findall(r"/opt/instrumentd/\S*bin/\S+", path.read_text())
            if not found.startswith(VENV_BIN)
        ]
        self.assertEqual(elsewhere, [])
        for unit in ("instrumentd-port-agent@.service", "instrumentd-station.service"):
            text = (DOC / "examples" / unit).read_text()
            [exec_start] = re.findall(r"^ExecStart=(\S+)", text, flags=re.M)
            self.assertEqual(exec_start, VENV_BIN + "twistd", unit)


def example_session() -> list[tuple[str, str]]:
    """
    The commands and replies of C{doc/port-agent.md}'s example session.
    """
    text = (DOC / "port-agent.md").read_text()
    section = text.split("### An example session", 1)[1]
    block = section.split("```", 2)[1]
    pairs: list[tuple[str, str]] = []
    command: str | None = None
    for line in block.splitlines():
        if line == ">" or line.startswith("> "):
            command = line[2:]
        elif line.startswith("< "):
            assert command is not None, line
            pairs.append((command, line[2:]))
            command = None
    return pairs


def shape(value: Any) -> Any:
    """
    The structure of a JSON value: objects as their keys (each with its
    value's shape), anything else a leaf; per-type counts are one leaf, as
    which types have been seen depends on timing.
    """
    if isinstance(value, dict):
        return {
            k: "counts" if k == "packets_by_type" else shape(v)
            for k, v in value.items()
        }
    return "value"


def normal(text: str) -> str:
    """
    A text reply with what varies from run to run (numbers: ports, times,
    sizes, the version) made the same.
    """
    return re.sub(r"\d+", "N", text)


class ExampleSessionTests(TestCase):
    """
    C{doc/port-agent.md}'s example session is what the demo agent answers.
    """

    def test_exampleSession(self) -> Deferred[None]:
        """
        Each command of the session gets the documented reply: JSON with
        the same keys, text the same but for numbers.
        """

        async def go() -> None:
            pairs = example_session()
            self.assertGreater(len(pairs), 10)
            datalog = self.mktemp()
            agent = await start_agent(self, "demo", name="DEMO01", datalog_dir=datalog)
            command = await connect(self, agent.ports["command"], LineClient())
            for sent, documented in pairs:
                reply = await command.ask(sent)
                if documented.startswith("{"):
                    self.assertEqual(
                        shape(json.loads(reply)), shape(json.loads(documented)), sent
                    )
                else:
                    reply = reply.replace(f"rotated {datalog}/", "rotated datalog/")
                    self.assertEqual(normal(reply), normal(documented), sent)

        return run(go())

    def test_statsFieldsDocumented(self) -> Deferred[None]:
        """
        Every field C{get_stats} answers is in the field table (a nested
        field by its dotted name, unless the table describes its parent as a
        whole), and every field the table lists is answered.
        """

        async def go() -> None:
            agent = await start_agent(self, "demo", name="DEMO01")
            command = await connect(self, agent.ports["command"], LineClient())
            stats = json.loads(await command.ask("get_stats"))
            text = (DOC / "port-agent.md").read_text()
            table = text.split("### `get_stats` fields", 1)[1].split("\n## ", 1)[0]
            rows = [row for row in table.splitlines() if row.startswith("| `")]
            listed = {
                name
                for row in rows
                for name in re.findall(r"`([a-z_.]+)`", row.split(" | ")[0])
            }
            mentioned = set(re.findall(r"`([a-z_.]+)`", "\n".join(rows)))
            answered = set()
            for key, value in stats.items():
                if isinstance(value, dict) and key not in listed:
                    answered |= {f"{key}.{sub}" for sub in value}
                else:
                    answered.add(key)
            self.assertEqual(sorted(answered - mentioned), [])
            self.assertEqual(sorted(listed - answered), [])

        return run(go())
