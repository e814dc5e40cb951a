"""The Greengrass Core SDK v1 local HTTP IPC: what ``greengrasssdk`` and ``aws-greengrass-core-sdk``
call from inside a function (publish, invoke, get_secret_value)."""

from __future__ import annotations
