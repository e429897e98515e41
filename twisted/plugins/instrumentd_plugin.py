"""
The ``twistd instrumentd`` plugin.

Kept import-light: ``twistd --help`` imports every plugin module, so the real
work lives in :mod:`instrumentd.tap`, imported only when the plugin is used.
There is deliberately no ``__init__.py`` in ``twisted/`` or
``twisted/plugins/``.
"""

from twisted.application.service import ServiceMaker

instrumentd = ServiceMaker(
    "instrumentd",
    "instrumentd.tap",
    "Port agents, instrument drivers and the instrumentd station",
    "instrumentd",
)
