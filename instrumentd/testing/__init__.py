# -*- test-case-name: tests.test_testing -*-
"""
Helpers for testing drivers, shipped with instrumentd the way
``treq.testing`` ships with treq.

For a driver against its simulator, deterministically (one process, a
:class:`~twisted.internet.task.Clock`, no sockets):

- :class:`DriverBench`: a driver and a simulated instrument on one clock,
  with the driver's events collected; :meth:`DriverBench.wait` lets
  simulated time pass until a Deferred has fired.
- :class:`SimulatorConnection`: the
  :class:`~instrumentd.interfaces.IInstrumentConnection` under the bench:
  it stamps what the instrument sends as a port agent would, and reports
  the instrument link down when the simulator drops its line
  (:meth:`SimulatorConnection.plug_in` brings it back).
- :func:`undeclared_fields`: the particle values a protocol publishes
  without units, for a test that asserts there are none.

Around the port agent:

- :class:`FakePortAgent`: an in-memory port agent.  It delivers the bytes
  you choose, with the timestamps you choose, to a
  :class:`~instrumentd.portagent.client.PortAgentClient` (or anything else
  that connects to its endpoints), answers the command port, and can vanish,
  hang and come back.
- :func:`port_agent_for`: launch a real port agent process in front of an
  instrument (a simulator, a device server, a test server) for one test,
  and stop it when the test ends.
- :func:`tcp_instrument_for`: a TCP server on loopback that plays the
  instrument in integration tests.
- :func:`client_for`: a connected client of a launched agent, disconnected
  when the test ends.
"""

from instrumentd.testing._bench import (
    DriverBench,
    SimulatorConnection,
    undeclared_fields,
)
from instrumentd.testing._portagent import (
    FakePortAgent,
    TCPInstrument,
    client_for,
    port_agent_for,
    tcp_instrument_for,
)

__all__ = [
    "DriverBench",
    "FakePortAgent",
    "SimulatorConnection",
    "TCPInstrument",
    "client_for",
    "port_agent_for",
    "tcp_instrument_for",
    "undeclared_fields",
]
