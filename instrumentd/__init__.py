"""
instrumentd: Twisted port agents, instrument drivers and a station service
for scientific instruments on serial lines and serial-to-Ethernet servers.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("instrumentd")
except PackageNotFoundError:  # running from a checkout that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
