"""
Command-line tools that talk to a running station: see
:mod:`instrumentd.cli.instrumentctl`.
"""
