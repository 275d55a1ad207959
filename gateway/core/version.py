"""The installed version of the gateway."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("peppol-gateway")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0"
