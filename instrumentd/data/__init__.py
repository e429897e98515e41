"""
Data files shipped with instrumentd: the built-in SBE 37-SMP demo recording.
"""
