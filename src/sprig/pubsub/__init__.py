"""The local publish/subscribe bus: MQTT topic semantics, bounded per-subscriber queues, and the
``accessControl`` authorization policies Greengrass components use for IPC."""

from __future__ import annotations
