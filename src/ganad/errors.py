"""ganad's own exception types.

Every failure a user can cause (bad data, a bad config, a bad checkpoint) is
raised as one of these at the boundary where it is detected, with a message
that names the file, field or shape at fault. The CLI prints the message and
exits with status 2 instead of showing a traceback.
"""

from __future__ import annotations


class GanadError(Exception):
    """Base class: anything ganad raises on purpose for a user to read."""


class DataError(GanadError, ValueError):
    """A data set, file, folder, array or split is missing or malformed.

    Also a ValueError, which is what scikit-learn's estimator contract (and code written
    against it) expects from ``fit`` and ``predict`` on bad input.
    """


class ConfigError(GanadError, ValueError):
    """A configuration value (CLI flag, YAML field, constructor argument) is invalid (a ValueError too)."""


class CheckpointError(GanadError):
    """A saved model or run folder cannot be loaded, or does not match what is asked."""


class TrainingError(GanadError):
    """Training cannot go on (e.g. a loss became NaN or inf)."""


class RunExistsError(GanadError):
    """A run folder already exists and neither overwrite nor resume was asked for."""


class ResourceError(GanadError):
    """The machine cannot hold what was asked (out of memory on the CPU or the GPU)."""
