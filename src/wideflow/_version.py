"""The package version (single source: pyproject.toml's metadata when installed)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("wideflow")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0+unknown"
