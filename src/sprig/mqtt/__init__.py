"""The bridge between the local bus and a real MQTT broker (AWS IoT Core, Mosquitto, EMQX...)."""

from __future__ import annotations
