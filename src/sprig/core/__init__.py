"""The core: the kernel that runs components, their states and the lifecycle policy."""

from __future__ import annotations
