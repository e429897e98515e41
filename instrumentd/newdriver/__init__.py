# -*- test-case-name: tests.test_newdriver -*-
"""
``instrumentd-new-driver``: start a driver for a new instrument from a
template that passes its own tests against its own simulator from the
first minute.

::

    instrumentd-new-driver acme_ctd9 --title "Acme CTD-9" --dir ~/drivers
    cd ~/drivers && python -m twisted.trial acme_ctd9

It writes a package, ``acme_ctd9/``, with a driver protocol
(``driver.py``), a simulator of a small line instrument (``simulator.py``)
and tests of one against the other (``test/test_driver.py``).  Change the
simulator into your instrument, then the driver to match, keeping the tests
passing; ``doc/writing-a-driver.md`` explains each declaration.  Nothing is
overwritten: an existing package is refused.
"""

from __future__ import annotations

import argparse
import keyword
import re
import sys
from importlib import resources
from pathlib import Path

__all__ = ["main", "write_skeleton"]

#: Template file → where it goes in the package.
_FILES = {
    "__init__.py.tmpl": "__init__.py",
    "driver.py.tmpl": "driver.py",
    "simulator.py.tmpl": "simulator.py",
    "test_driver.py.tmpl": "test/test_driver.py",
}
_PACKAGE = re.compile(r"^[a-z][a-z0-9_]*$")


def _class_name(package: str) -> str:
    return "".join(part.capitalize() for part in package.split("_") if part)


def write_skeleton(package: str, directory: Path, title: str | None = None) -> Path:
    """
    Write a new driver package from the template.

    :param package: the package's name, a lower-case Python identifier
        (``acme_ctd9``).
    :param directory: where the package goes.
    :param title: the instrument's name for people; from the package's name
        if ``None``.
    :returns: the package's directory.
    :raises ValueError: if the name is not a valid package name or the
        package exists.
    """
    if not _PACKAGE.match(package) or keyword.iskeyword(package):
        raise ValueError(
            f"package name {package!r} is not valid: use lower-case letters, "
            "digits and _, starting with a letter (e.g. acme_ctd9)"
        )
    target = directory / package
    if target.exists():
        raise ValueError(f"{target} exists; choose another name or directory")
    names = {
        "@package@": package,
        "@Class@": _class_name(package),
        "@Title@": title or package.replace("_", " ").title(),
    }
    skeleton = resources.files("instrumentd.newdriver") / "skeleton"
    for source, destination in _FILES.items():
        text = (skeleton / source).read_text(encoding="utf-8")
        for placeholder, value in names.items():
            text = text.replace(placeholder, value)
        path = target / destination
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    (target / "test" / "__init__.py").write_text("", encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    """
    The ``instrumentd-new-driver`` command.

    :returns: the exit status: 0, or 2 for a bad name or an existing package.
    """
    parser = argparse.ArgumentParser(
        prog="instrumentd-new-driver",
        description="Start a driver for a new instrument: a driver, a "
        "simulator and tests that pass, from instrumentd's template.",
    )
    parser.add_argument("package", help="the new package's name, e.g. acme_ctd9")
    parser.add_argument("--title", help="the instrument's name, e.g. 'Acme CTD-9'")
    parser.add_argument(
        "--dir", default=".", help="where to write the package (default: here)"
    )
    options = parser.parse_args(argv)
    try:
        target = write_skeleton(options.package, Path(options.dir), options.title)
    except ValueError as e:
        print(f"instrumentd-new-driver: {e}", file=sys.stderr)
        return 2
    print(f"wrote {target}")
    print(
        f"run its tests: cd {Path(options.dir)} && python -m twisted.trial "
        f"{options.package}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
