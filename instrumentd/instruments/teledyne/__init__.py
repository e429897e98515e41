"""
Teledyne RD Instruments (TRDI) instruments.
"""
