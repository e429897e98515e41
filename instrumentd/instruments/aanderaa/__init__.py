"""
Aanderaa (AADI / Xylem) instruments.
"""
