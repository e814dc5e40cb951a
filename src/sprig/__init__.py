"""Sprig: run AWS Lambda functions on your own Linux devices, the Greengrass V2 way."""

from __future__ import annotations

__version__ = "0.1.0"
