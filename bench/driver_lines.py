"""
How much a driver writer writes: lines of driver code per instrument
(declarations and handlers), not counting docstrings, comments and blank
lines.  The simulator is not driver code and is not counted.

Run: python bench/driver_lines.py
"""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "instrumentd" / "instruments"

#: Driver modules per instrument, relative to instrumentd/instruments.
DRIVERS = {
    "Sea-Bird SBE 37-SMP": "seabird/sbe37smp",
    "Aanderaa 4831 optode": "aanderaa/optode",
    "Teledyne RDI Workhorse": "teledyne/workhorse",
}
#: Simulator modules (the Workhorse's simulator is split along its seams:
#: its settings table, its water, its diagnostic texts).  ``pd0.py`` is
#: shared: the driver decodes with it, the simulator encodes.  The SBE 37's
#: simulator keeps its sensors in ``calibration.py``, its sample memory in
#: ``memory.py``, what each firmware prints in ``firmware.py`` and how it
#: reads its setting commands' values in ``setting_values.py``.
NOT_DRIVER = {
    "calibration.py",
    "memory.py",
    "firmware.py",
    "simulator.py",
    "setting_values.py",
    "properties.py",
    "oxygen.py",
    "__init__.py",
    "settings.py",
    "physics.py",
    "diagnostics.py",
}


def code_lines(path: Path) -> int:
    """
    Lines holding code: docstrings, comments and blank lines left out.
    """
    source = path.read_text()
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body:
            first = body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                docstrings.update(range(first.lineno, (first.end_lineno or 0) + 1))
    lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in (
            tokenize.COMMENT,
            tokenize.NL,
            tokenize.NEWLINE,
            tokenize.INDENT,
            tokenize.DEDENT,
            tokenize.ENDMARKER,
        ):
            continue
        for line in range(token.start[0], token.end[0] + 1):
            if line not in docstrings:
                lines.add(line)
    return len(lines)


def main() -> None:
    print(f"{'instrument':<26} {'module':<34} {'lines':>6}")
    for name, folder in DRIVERS.items():
        directory = ROOT / folder
        if not directory.is_dir():
            continue
        total = 0
        for path in sorted(directory.glob("*.py")):
            if path.name in NOT_DRIVER or path.name.startswith("_sim"):
                continue
            count = code_lines(path)
            total += count
            print(f"{name:<26} {folder + '/' + path.name:<34} {count:>6}")
        print(f"{name:<26} {'total':<34} {total:>6}")


if __name__ == "__main__":
    main()
