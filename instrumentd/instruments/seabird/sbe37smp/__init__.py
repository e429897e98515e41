"""
The Sea-Bird SBE 37-SMP MicroCAT, a moored CTD.

:mod:`.simulator` is a faithful simulator of its serial dialogue
(``twistd instrumentd simulate sbe37``).
"""
