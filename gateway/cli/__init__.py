"""The ``peppol-gateway`` command line: one module per command group, registered in ``main``."""

from gateway.cli.main import main

__all__ = ["main"]
