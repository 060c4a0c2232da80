"""Helpers for the course "How batch size changes what a CNN computes"."""

__version__ = "0.1.0"
