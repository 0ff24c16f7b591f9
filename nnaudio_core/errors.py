"""The one exception type of nnaudio_core."""


class ParameterError(ValueError):
    """Raised when a transform is given impossible or unsupported parameters or input.

    It subclasses :class:`ValueError`, so ``except ValueError`` catches it too.
    """
