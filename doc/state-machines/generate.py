"""
Write the driver framework's state machine diagrams (graphviz ``.dot``)
next to this file, from the machines' own definitions.

Run it after changing a machine::

    python doc/state-machines/generate.py

``tests/test_connection_machine.py`` fails while a committed diagram
differs from what this writes.  Render one with ``dot -Tsvg connection.dot``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from automat import TypeMachine

from instrumentd.driver.connection_machine import ConnectionMachine
from instrumentd.driver.machine import dot_source
from instrumentd.driver.protocol import StandardProtocolMachine
from instrumentd.instruments.aanderaa.optode.driver import OptodeMachine
from instrumentd.instruments.seabird.sbe37smp.driver import SBE37Machine
from instrumentd.instruments.teledyne.workhorse.driver import WorkhorseMachine

HERE = Path(__file__).resolve().parent

#: File name → the machine drawn in it.
DIAGRAMS: dict[str, TypeMachine[Any, Any]] = {
    "connection.dot": ConnectionMachine,
    "protocol.dot": StandardProtocolMachine,
    "sbe37smp.dot": SBE37Machine,
    "optode.dot": OptodeMachine,
    "workhorse.dot": WorkhorseMachine,
}


def diagrams() -> dict[str, str]:
    """
    :returns: file name → the ``dot`` source it should hold.
    """
    return {name: dot_source(machine) for name, machine in DIAGRAMS.items()}


def main(directory: Path = HERE) -> int:
    """
    Write every diagram into ``directory``.

    :returns: the exit status, 0.
    """
    for name, source in diagrams().items():
        (directory / name).write_text(source, encoding="utf-8")
        print(f"wrote {directory / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
