"""
The ``serial:`` endpoint-string prefix for ``clientFromString``.

Kept import-light: every ``getPlugins`` scan imports this module, so pyserial
and :mod:`instrumentd.endpoints.serial` are imported only when a ``serial:``
string is parsed. There is deliberately no ``__init__.py`` in ``twisted/``
or ``twisted/plugins/``.
"""

from __future__ import annotations

from twisted.internet.interfaces import (
    IStreamClientEndpoint,
    IStreamClientEndpointStringParserWithReactor,
)
from twisted.plugin import IPlugin
from zope.interface import implementer


@implementer(IPlugin, IStreamClientEndpointStringParserWithReactor)
class _SerialEndpointParser:
    """
    Hands ``serial:`` strings to
    :func:`instrumentd.endpoints.serial.parse_serial_endpoint`.
    """

    prefix = "serial"

    def parseStreamClient(
        self, reactor: object, *args: object, **kwargs: object
    ) -> IStreamClientEndpoint:
        """
        :param reactor: the reactor given to ``clientFromString``.
        :param args: the positional parts after ``serial:``.
        :param kwargs: the ``key=value`` parts.
        :returns: a :class:`~instrumentd.endpoints.serial.SerialEndpoint`.
        :raises ValueError: naming the bad option, value and valid choices.
        """
        from instrumentd.endpoints.serial import parse_serial_endpoint

        return parse_serial_endpoint(reactor, *args, **kwargs)


serial_endpoint_parser = _SerialEndpointParser()
