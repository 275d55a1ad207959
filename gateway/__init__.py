"""The gateway service: configuration, storage, the AS4 endpoint, queues, API and CLI."""

from gateway.core.version import __version__

__all__ = ["__version__"]
