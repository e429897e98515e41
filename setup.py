"""
Package discovery only; the metadata lives in pyproject.toml.

``package_dir={"": "."}`` makes editable installs use a plain ``.pth`` file,
so ``twisted.plugins`` in this checkout is found by ``twistd``.
``twisted.plugins`` has no ``__init__.py`` (it must never have one: it would
overwrite Twisted's own), so it is listed by hand.

``instrumentd._xorfold`` is the packet checksum in C.  It is optional: where
it cannot be built (no C compiler), installing goes on without it and
``instrumentd.packet`` uses its pure-Python fold.  ``instrumentd._framing``
(a packet encoded, and its NTP time taken, in one call each) is optional
the same way.  Both take the checksum's fold from ``instrumentd/_xorfold.h``.
"""

from setuptools import Extension, find_packages, setup

setup(
    package_dir={"": "."},
    ext_modules=[
        Extension(
            "instrumentd._xorfold",
            ["instrumentd/_xorfold.c"],
            depends=["instrumentd/_xorfold.h"],
            optional=True,
        ),
        Extension(
            "instrumentd._framing",
            ["instrumentd/_framing.c"],
            depends=["instrumentd/_xorfold.h"],
            optional=True,
        ),
    ],
    packages=[
        *find_packages(include=["instrumentd", "instrumentd.*"]),
        "twisted.plugins",
    ],
)
