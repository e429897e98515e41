"""
Package discovery only; the metadata lives in pyproject.toml.

``package_dir={"": "."}`` makes editable installs use a plain ``.pth`` file,
so ``twisted.plugins`` in this checkout is found by ``twistd``.
``twisted.plugins`` has no ``__init__.py`` (it must never have one: it would
overwrite Twisted's own), so it is listed by hand.
"""

from setuptools import find_packages, setup

setup(
    package_dir={"": "."},
    packages=[
        *find_packages(include=["instrumentd", "instrumentd.*"]),
        "twisted.plugins",
    ],
)
