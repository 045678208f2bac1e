"""The package version, which is also the version of the rendered Lua library."""

__version__ = "0.1.0"
