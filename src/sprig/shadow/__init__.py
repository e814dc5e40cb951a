"""Device shadows: Greengrass's ``aws.greengrass.ShadowManager`` built into the core.

| module | what |
|---|---|
| ``document.py`` | AWS IoT Device Shadow semantics, pure (merge, delta, metadata, errors) |
| ``config.py`` | the ShadowManager configuration, validated |
| ``service.py`` | the local shadow service on ``state.db`` and the local bus |
| ``sync.py`` | synchronization with the broker over the AWS IoT shadow MQTT topics |
"""
