"""
The port agent's RFC 2217 serial port server: instrument makers' software
reaches the instrument through a virtual COM port (or pyserial's
``rfc2217://``) while the agent records every byte.

- :mod:`~instrumentd.portagent.rfc2217.telnet`: the telnet codec and option
  negotiation;
- :mod:`~instrumentd.portagent.rfc2217.comport`: COM-PORT-OPTION commands
  and their answers;
- :mod:`~instrumentd.portagent.rfc2217.line`: the line they change, real or
  nominal;
- :mod:`~instrumentd.portagent.rfc2217.environ`: NEW-ENVIRON, for a token
  given as a telnet variable;
- :mod:`~instrumentd.portagent.rfc2217.session`: one client, and who holds
  the line.
"""

from instrumentd.portagent.rfc2217.session import RFC2217Factory, RFC2217Session

__all__ = ["RFC2217Factory", "RFC2217Session"]
