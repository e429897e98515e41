"""
The ``datalog:`` endpoint-string prefix for ``clientFromString``: replay a
recorded instrument from port-agent datalog files.

Kept import-light: every ``getPlugins`` scan imports this module, so
:mod:`instrumentd.endpoints.datalog` is imported only when a ``datalog:``
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
class _DatalogEndpointParser:
    """
    Hands ``datalog:`` strings to
    :func:`instrumentd.endpoints.datalog.parse_datalog_endpoint`.
    """

    prefix = "datalog"

    def parseStreamClient(
        self, reactor: object, *args: object, **kwargs: object
    ) -> IStreamClientEndpoint:
        """
        :param reactor: the reactor given to ``clientFromString``.
        :param args: the positional parts after ``datalog:``.
        :param kwargs: the ``key=value`` parts.
        :returns: a :class:`~instrumentd.endpoints.datalog.DatalogEndpoint`.
        :raises ValueError: naming the missing file, the bad value, or the
            unknown option and the valid ones.
        """
        from instrumentd.endpoints.datalog import parse_datalog_endpoint

        return parse_datalog_endpoint(reactor, *args, **kwargs)


datalog_endpoint_parser = _DatalogEndpointParser()
