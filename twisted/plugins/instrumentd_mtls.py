"""
The ``mtls:`` endpoint-string prefix for ``serverFromString``: TLS that
requires a client certificate signed by a given authority.

Kept import-light: every ``getPlugins`` scan imports this module.  There is
deliberately no ``__init__.py`` in ``twisted/`` or ``twisted/plugins/``.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import (
    IStreamServerEndpoint,
    IStreamServerEndpointStringParser,
)
from twisted.plugin import IPlugin
from zope.interface import implementer


@implementer(IPlugin, IStreamServerEndpointStringParser)
class _MutualTLSEndpointParser:
    """
    Hands ``mtls:`` strings to
    :func:`instrumentd.endpoints.mtls.parse_mtls_endpoint`.
    """

    prefix = "mtls"

    def parseStreamServer(
        self, reactor: Any, *args: str, **kwargs: str
    ) -> IStreamServerEndpoint:
        """
        :param reactor: the reactor given to ``serverFromString``.
        :param args: the port.
        :param kwargs: the ``key=value`` parts.
        :returns: a TLS server endpoint that requires client certificates.
        :raises ValueError: naming the bad option.
        """
        from instrumentd.endpoints.mtls import parse_mtls_endpoint

        return parse_mtls_endpoint(reactor, *args, **kwargs)


mtls_endpoint_parser = _MutualTLSEndpointParser()
