# -*- test-case-name: tests.test_station_api -*-
"""
The station's HTTP JSON API, as a tree of ``twisted.web`` resources.

:class:`StationAPI` is the root resource; the station service serves it
with ``twisted.web.server.Site`` on its API endpoint (loopback by default)::

    GET    /                                     the web page (its files
                                                 under /static/)
    GET    /api                                  the endpoints
    GET    /api/health                           the station's health
    GET    /api/instruments                      every instrument, with its state
    GET    /api/instruments/{name}               state, capabilities, metadata, parameters
    GET    /api/instruments/{name}/parameters    read parameters (?names=A,B)
    PATCH  /api/instruments/{name}/parameters    set parameters ({"NAME": value, ...})
    GET    /api/instruments/{name}/commands      the commands and those valid now
    POST   /api/instruments/{name}/commands/{c}  run a command ({"arg": value, ...})
    POST   /api/instruments/{name}/discover      discover the instrument's state
    POST   /api/instruments/{name}/direct-access enter direct access
    POST   /api/instruments/{name}/direct-access/input  send bytes in direct access
    DELETE /api/instruments/{name}/direct-access leave direct access
    GET    /api/instruments/{name}/events        Server-Sent Events (?types=SAMPLE,...)
    GET    /api/instruments/{name}/port-agent    its port agent: ports, pid, counters
    GET    /api/events                           Server-Sent Events of every instrument
                                                 (?instrument=A&type=SAMPLE, repeatable)
    GET    /metrics                              Prometheus text format

Every answer but ``/metrics`` and the event stream is JSON.  An error is
``{"error": {"code": ..., "message": ..., ...details}}`` with a status that
says what kind of error it is (see :data:`STATUS_BY_CODE`); the message is
written for the person who will read it.

When a token is configured, every request that can change something
(``POST``, ``PATCH``, ``PUT``, ``DELETE``) must carry it as
``Authorization: Bearer <token>``.  Requests that change one instrument are
applied one at a time, in arrival order
(:meth:`~instrumentd.station.instrument.StationInstrument.exclusive`).  A
request whose client goes away before the answer is ready is still carried
out; only its answer is dropped.  See ``doc/api.md``.

The modules behind it, one concept each: ``_root`` (:class:`StationAPI`),
``_station`` (index, health, metrics, the instrument list),
``_instrument`` (one instrument, its events and port agent), ``_events``
(event streams: the station's, and what the instrument's shares), ``_page``
(the web page and its files), ``_control``
(parameters, commands, discover), ``_direct`` (direct access),
``_resource`` (the resources' bases), ``_answer`` (writing JSON answers),
``_errors`` (statuses and refusals), ``_auth`` (the token) and ``_body``
(reading a JSON body).
"""

from instrumentd.station.api._auth import MUTATING_METHODS
from instrumentd.station.api._errors import STATUS_BY_CODE, status_for
from instrumentd.station.api._root import StationAPI

__all__ = ["MUTATING_METHODS", "STATUS_BY_CODE", "StationAPI", "status_for"]
