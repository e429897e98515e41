"""
Client endpoints for instrument links that Twisted does not ship.

Each module here backs one endpoint-string prefix (``serial:`` and others),
registered with :func:`twisted.internet.endpoints.clientFromString` through a
small plugin module in ``twisted/plugins/``.
"""

from twisted.internet.error import ConnectionDone

__all__ = ["LinkEnded"]


class LinkEnded(ConnectionDone):
    """
    The connection closed and will never come back: connecting again would
    not help (a recording that has been played to its end).  A transport
    gives it as the reason to ``connectionLost``; whoever keeps the link up
    (:class:`instrumentd.portagent.link.InstrumentLink`) stops reconnecting
    and reports the link as ended.
    """

    def __str__(self) -> str:
        return " ".join(str(a) for a in self.args) or "the link has ended for good"
