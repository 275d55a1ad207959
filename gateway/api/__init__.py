"""The HTTP surface of the gateway: one JSON envelope for every answer."""
