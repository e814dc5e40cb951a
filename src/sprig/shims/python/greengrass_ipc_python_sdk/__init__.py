"""Sprig's runtime-side ``greengrass_ipc_python_sdk``: a client of Sprig's V1 HTTP IPC."""

from __future__ import annotations
