"""Shared pytest fixtures: seeded, generated test signals (see ``tests/signals.py``)."""

from __future__ import annotations

import numpy as np
import pytest
import signals


@pytest.fixture(params=signals.SIGNAL_KINDS)
def core_audio(request, tmp_path) -> tuple[np.ndarray, int]:
    """``(float32 samples, sr)`` for every signal kind; the espeak one is skipped when no
    espeak is installed."""
    try:
        return signals.make(request.param, tmp_path)
    except LookupError as exc:
        pytest.skip(str(exc))


@pytest.fixture
def speech_synth() -> tuple[np.ndarray, int]:
    """The always-available speech-like signal, ``(float32 samples, 16000)``."""
    return signals.make("speech_synth")
