"""
The port agent: one process per instrument that owns the instrument's link,
timestamps and frames every byte read, records all of it in a rotating
datalog, and shares the instrument with many clients.

What a driver needs from here: :class:`PortAgentClient` (the client of an
agent's data and command ports, and its errors) and
:func:`launch_port_agent` (start an agent as a child process).
"""

from instrumentd.portagent.client import (
    PortAgentClient,
    PortAgentCommandError,
    PortAgentCommandTimeout,
    PortAgentError,
    PortAgentNotConnected,
)
from instrumentd.portagent.launcher import (
    PortAgentLaunchError,
    PortAgentProcess,
    launch_port_agent,
)

__all__ = [
    "PortAgentClient",
    "PortAgentCommandError",
    "PortAgentCommandTimeout",
    "PortAgentError",
    "PortAgentLaunchError",
    "PortAgentNotConnected",
    "PortAgentProcess",
    "launch_port_agent",
]
