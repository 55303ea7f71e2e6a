"""Errors that the CLI reports as one clear line (no traceback): the user can act on them."""


class HeadlinerError(Exception):
    """Base class: a problem with the user's input or setup, not a bug."""


class SpecError(HeadlinerError):
    """A use-case spec file is missing or invalid."""


class DataSourceError(HeadlinerError):
    """Raw data cannot be read: missing or unreadable path, unknown format, empty file."""


class DataValidationError(HeadlinerError):
    """Raw data violates the spec in a way that cannot be repaired."""


class StackSetupError(HeadlinerError):
    """The active ZenML stack cannot run the requested pipeline."""


class QualityGateError(HeadlinerError):
    """A trained model misses a quality gate of the spec; nothing is registered."""


class ParityError(HeadlinerError):
    """The ONNX graph does not reproduce the scikit-learn model within the tolerance."""


class RunConfigError(HeadlinerError):
    """A ZenML run config file is missing or invalid."""


class DeploymentError(HeadlinerError):
    """A model version could not be deployed, or the deployed service does not answer as it should."""


class FeedbackError(HeadlinerError):
    """True labels that cannot be stored: a bad feedback file or an unknown class."""


class MonitoringError(HeadlinerError):
    """A monitoring window that cannot be judged: no log, too few rows, no such model version."""
