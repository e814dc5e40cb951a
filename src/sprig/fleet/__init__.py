"""Fleets: many devices over an MQTT broker and an S3-compatible bucket, with no Sprig server
(the device agent in the core, the operator's ``sprig fleet`` commands; see README.md here and
``docs/fleet.md`` for the protocol)."""
