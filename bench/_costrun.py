"""
What the cost benchmarks share: a measured run in a child process, with
this version or an older ``instrumentd`` tree first on ``PYTHONPATH``, under
``valgrind --tool=callgrind`` (instructions) or timed (CPU), and the
versions' figures side by side.

Instruction counts are taken at two sizes of a run and reported as the
difference over the difference in units, so that start-up and shut-down
cancel out; they do not move with the machine's load.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

T = TypeVar("T")

#: A version to run: its name in the tables, and the tree put first on
#: ``PYTHONPATH`` (``None``: the ``instrumentd`` this interpreter imports).
Side = tuple[str, "str | None"]


def add_instruction_options(
    parser: argparse.ArgumentParser, small: int, large: int
) -> None:
    """
    The options of :func:`instructions_table`'s runs: ``--instructions``,
    the two sizes (``--small``, ``--large``) and an older tree to compare
    with (``--against``).
    """
    parser.add_argument("--instructions", action="store_true")
    parser.add_argument("--small", type=int, default=small)
    parser.add_argument("--large", type=int, default=large)
    parser.add_argument("--against", help="an older instrumentd's directory")


def sides(against: Iterable[str], this: str | None = None) -> list[Side]:
    """
    This version (``this``: its tree, or ``None``) and each older tree of
    ``against``, named by its directory's name.
    """
    return [("this", this)] + [
        (os.path.basename(tree.rstrip("/")), tree) for tree in against
    ]


def child_argv(script: str, **options: object) -> list[str]:
    """
    The command that runs ``script`` as a measured child with ``options``
    (``warmup=50``: ``--warmup=50``).
    """
    flags = [f"--{name.replace('_', '-')}={value}" for name, value in options.items()]
    return [sys.executable, os.path.abspath(script), "--child", *flags]


def side_env(tree: str | None, **extra: str) -> dict[str, str]:
    """
    This process's environment with ``tree`` first on ``PYTHONPATH`` (as it
    is where ``tree`` is ``None``), and ``extra`` set.
    """
    env = dict(os.environ, **extra)
    if tree:
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (os.path.abspath(tree), env.get("PYTHONPATH", "")) if p
        )
    return env


def install_tree_reactor() -> None:
    """
    Install the reactor ``twistd instrumentd`` installs, wherever the
    imported version keeps it (an older tree may have none of its own: then
    Twisted's default, as its processes had).
    """
    for module in ("instrumentd.reactor", "instrumentd.portagent.reactor"):
        with contextlib.suppress(ImportError):
            __import__(module, fromlist=["install_if_unchosen"]).install_if_unchosen()
            return


def callgrind(argv: Sequence[str], env: dict[str, str], toggle: str = "") -> int:
    """
    Instructions ``argv`` runs under ``valgrind --tool=callgrind``.

    :param toggle: count only inside calls of this function (callgrind's
        ``--toggle-collect``); by default, the whole run.
    """
    counting = ["--collect-atstart=no", f"--toggle-collect={toggle}"] if toggle else []
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                *counting,
                f"--callgrind-out-file={out}",
                *argv,
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        with open(out) as f:
            for line in f:
                if line.startswith(("summary:", "totals:")):
                    return int(line.split()[1])
    raise SystemExit("no callgrind summary")


def instructions_table(
    unit: str,
    versions: Sequence[Side],
    count: Callable[[int, str | None], int],
    small: int,
    large: int,
) -> None:
    """
    Print each version's instructions per ``unit``: ``count(n, tree)`` is
    the instructions of a run of ``n`` units, taken at ``small`` and
    ``large``.
    """
    print(f"| version | instructions per {unit} |")
    print("|---|---|")
    for name, tree in versions:
        few = count(small, tree)
        many = count(large, tree)
        print(f"| {name} | {(many - few) / (large - small):,.0f} |")


def alternate(
    versions: Sequence[Side], repeats: int, run: Callable[[str | None], T]
) -> dict[str, list[T]]:
    """
    ``run(tree)`` for each version in turn, ``repeats`` times over (so that
    the machine's load falls on them alike); each version's results.
    """
    results: dict[str, list[T]] = {name: [] for name, _ in versions}
    for _ in range(repeats):
        for name, tree in versions:
            results[name].append(run(tree))
    return results


def child_output(argv: Sequence[str], tree: str | None) -> str:
    """
    What ``argv`` prints, run with ``tree`` first on ``PYTHONPATH``.
    """
    return subprocess.run(
        argv, env=side_env(tree), check=True, capture_output=True, text=True
    ).stdout


def cpu_table(
    unit: str, versions: Sequence[Side], argv: Sequence[str], repeats: int
) -> None:
    """
    Print each version's figures of ``repeats`` runs of ``argv``, which
    prints CPU µs per ``unit``.
    """
    print(f"| version | CPU µs per {unit}, each repeat |")
    print("|---|---|")
    runs = alternate(versions, repeats, lambda tree: child_output(argv, tree).strip())
    for name, values in runs.items():
        print(f"| {name} | {' '.join(values)} |")


def json_runs(
    argv: Sequence[str], versions: Sequence[Side], repeats: int
) -> dict[str, list[dict[str, float]]]:
    """
    Each version's figures of ``repeats`` runs of ``argv``, which prints
    them as JSON on its last line.
    """

    def once(tree: str | None) -> dict[str, float]:
        result: dict[str, float] = json.loads(
            child_output(argv, tree).strip().splitlines()[-1]
        )
        return result

    return alternate(versions, repeats, once)


def spread_table(
    runs: dict[str, list[dict[str, float]]],
    measures: Sequence[tuple[str, str]],
    width: int,
) -> None:
    """
    Print min, median and max of each measure (``(key, title)``) of each
    version's runs, titles ``width`` wide.
    """
    print(f"{'version':<14} {'measure':<{width}} {'min':>8} {'median':>8} {'max':>8}")
    for name, results in runs.items():
        for key, title in measures:
            values = [r[key] for r in results]
            print(
                f"{name:<14} {title:<{width}} {min(values):8.2f} "
                f"{statistics.median(values):8.2f} {max(values):8.2f}"
            )
