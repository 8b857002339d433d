"""The package version: one place, read by the package, its build and its cache keys."""
__version__ = "0.1.0"
