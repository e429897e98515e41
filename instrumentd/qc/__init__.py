"""
Real-time QARTOD quality control: each sample flagged as it arrives.

The tests (gross range, climatology, spike, rate of change, flat line, and
the location and time sanity tests) follow the QARTOD manuals and agree
with the reference implementation, ioos_qc, flag for flag; each keeps only
the history it needs.  :func:`parse_qc` turns a station's ``qc`` table into
per-stream evaluators (:class:`StreamQC`); :data:`DEFAULTS` holds the
instruments' sensor ranges.  See ``doc/qc.md``.
"""

from instrumentd.qc.config import QCConfigError, StreamQCSpec, parse_qc
from instrumentd.qc.defaults import DEFAULTS
from instrumentd.qc.flags import QartodFlag, aggregate
from instrumentd.qc.stream import FieldQC, FieldResult, FieldStep, StreamQC, StreamStep

__all__ = [
    "DEFAULTS",
    "FieldQC",
    "FieldResult",
    "FieldStep",
    "QCConfigError",
    "QartodFlag",
    "StreamQC",
    "StreamQCSpec",
    "StreamStep",
    "aggregate",
    "parse_qc",
]
