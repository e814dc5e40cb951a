"""The Greengrass IPC v2 server: what awsiotsdk's ``GreengrassCoreIPCClientV2`` talks to over a
Unix socket (AWS event-stream RPC), serving pub/sub, IoT Core, configuration and lifecycle
operations under the components' ``accessControl`` policies."""

from __future__ import annotations
