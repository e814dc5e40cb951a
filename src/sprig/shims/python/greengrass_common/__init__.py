"""Sprig's runtime-side ``greengrass_common`` (what ``greengrasssdk`` imports).

Written for Sprig from the protocol description; it reads the environment Sprig gives a function.
"""

from __future__ import annotations
