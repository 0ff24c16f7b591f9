"""The exception types of nnaudio_core: one policy for every module.

Every bad argument or input (a parameter out of range, an unknown choice, a tensor of the
wrong shape or kind) raises :class:`ParameterError`, a :class:`ValueError` subclass, with a
one-line message naming what was wrong. The one refinement is :class:`NonInvertibleError`:
inverting an STFT whose frequency grid cannot be inverted exactly keeps nnAudio2's
``RuntimeError`` while still being a :class:`ParameterError`.
"""


class ParameterError(ValueError):
    """Raised when a transform is given impossible or unsupported parameters or input.

    It subclasses :class:`ValueError`, so ``except ValueError`` catches it too.
    """


class NonInvertibleError(ParameterError, RuntimeError):
    """Raised when an inverse is asked of a transform it cannot invert exactly (an STFT
    with ``freq_scale`` other than ``'no'``, or without all ``n_fft // 2 + 1`` bins).

    Both a :class:`ParameterError` and, as in nnAudio2, a :class:`RuntimeError`.
    """
