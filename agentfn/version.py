"""The package version, which is also the version of the rendered Lua library."""

__version__ = "3.0.0"
