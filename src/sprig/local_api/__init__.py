"""The local APIs of the core: the Lambda Invoke REST API (SigV4, loopback) and management."""

from __future__ import annotations
