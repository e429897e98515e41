"""
Sea-Bird Scientific instruments.
"""
