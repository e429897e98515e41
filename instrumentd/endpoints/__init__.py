"""
Client endpoints for instrument links that Twisted does not ship.

Each module here backs one endpoint-string prefix (``serial:`` and others),
registered with :func:`twisted.internet.endpoints.clientFromString` through a
small plugin module in ``twisted/plugins/``.
"""
