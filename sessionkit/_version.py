"""The version of sessionkit: the one place it is written. The package metadata reads it
when the package is built (hatchling's ``[tool.hatch.version]``), ``sessionkit.__version__``
imports it."""

__version__ = "0.1.0"
