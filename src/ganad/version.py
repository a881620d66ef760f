"""ganad's version: its one home (the package metadata, ``ganad --version``, saved models and run
records read it here, so no module imports it back from the package root)."""

__version__ = "0.1.0"
