"""Seeded test signals, all generated on the fly (nothing is downloaded).

* :func:`chirp_with_noise` - a logarithmic sweep plus white noise;
* :func:`harmonic_tone` - a decaying harmonic tone with random partial phases;
* :func:`speech_like` - a glottal pulse train with jittered, gliding pitch through formant
  resonators, one vowel per syllable, with a syllable-rate amplitude envelope and aspiration
  noise (always available);
* :func:`espeak_speech` - real synthesised speech from ``espeak-ng``/``espeak`` when one is
  installed (``None`` otherwise);
* :func:`sine` - a pure tone.

Every generator returns a float32 numpy array peaking at about 0.5.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import scipy.signal

# (F1, F2, F3, F4) in Hz and their bandwidths, rough adult-male vowel formants
VOWELS = {
    "a": ((730.0, 1090.0, 2440.0, 3400.0), (80.0, 90.0, 120.0, 150.0)),
    "i": ((270.0, 2290.0, 3010.0, 3700.0), (60.0, 100.0, 120.0, 150.0)),
    "u": ((300.0, 870.0, 2240.0, 3300.0), (60.0, 90.0, 120.0, 150.0)),
    "e": ((530.0, 1840.0, 2480.0, 3500.0), (70.0, 100.0, 120.0, 150.0)),
    "o": ((570.0, 840.0, 2410.0, 3300.0), (70.0, 90.0, 120.0, 150.0)),
}


def _normalise(y: np.ndarray, peak: float = 0.5) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    return (peak * y / np.max(np.abs(y))).astype(np.float32)


def sine(freq: float, sr: int, duration: float = 1.0, phase: float = 0.0) -> np.ndarray:
    """A pure tone of ``freq`` Hz."""
    t = np.arange(int(round(sr * duration))) / sr
    return (0.5 * np.sin(2.0 * np.pi * freq * t + phase)).astype(np.float32)


def chirp_with_noise(
    sr: int = 16000, duration: float = 1.0, seed: int = 0, snr_db: float = 20.0
) -> np.ndarray:
    """Logarithmic sweep from 60 Hz to 0.9 * Nyquist plus white noise at ``snr_db``."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(sr * duration))) / sr
    sweep = scipy.signal.chirp(t, f0=60.0, t1=duration, f1=0.45 * sr, method="logarithmic")
    noise = rng.standard_normal(t.shape[0])
    noise *= np.sqrt(np.mean(sweep**2) / np.mean(noise**2)) * 10 ** (-snr_db / 20.0)
    return _normalise(sweep + noise)


def harmonic_tone(
    sr: int = 22050, duration: float = 1.0, f0: float = 220.0, n_harmonics: int = 12, seed: int = 1
) -> np.ndarray:
    """Sum of harmonics ``k * f0`` (below Nyquist) with ``1/k`` amplitudes and random phases,
    under a gentle exponential decay."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(sr * duration))) / sr
    y = np.zeros_like(t)
    for k in range(1, n_harmonics + 1):
        if k * f0 >= sr / 2:
            break
        y += np.sin(2.0 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) / k
    return _normalise(y * np.exp(-1.5 * t))


def _resonator(freq: float, bandwidth: float, sr: int) -> tuple[np.ndarray, np.ndarray]:
    r = np.exp(-np.pi * bandwidth / sr)
    theta = 2.0 * np.pi * freq / sr
    a = np.array([1.0, -2.0 * r * np.cos(theta), r * r])
    return np.array([a.sum()]), a  # unit gain at DC


def speech_like(sr: int = 16000, duration: float = 1.0, seed: int = 2) -> np.ndarray:
    """Speech-like signal: glottal pulses through formant filters, amplitude-modulated.

    A pulse train with gliding, jittered pitch (about 100-150 Hz) is shaped by a glottal
    low-pass (-12 dB/oct) and lip radiation (+6 dB/oct), then, syllable by syllable
    (about 5 per second), filtered by a cascade of four formant resonators of a random vowel
    and multiplied by a raised-cosine syllable envelope; aspiration noise is added.
    """
    rng = np.random.default_rng(seed)
    n = int(round(sr * duration))
    t = np.arange(n) / sr
    f0 = 120.0 + 20.0 * np.sin(2 * np.pi * 1.3 * t + rng.uniform(0, 2 * np.pi))
    f0 *= 1.0 + 0.01 * rng.standard_normal(n).cumsum() / np.sqrt(n)  # slow jitter
    phase = np.cumsum(f0 / sr)
    pulses = np.diff(np.floor(phase), prepend=0.0)
    glottal = scipy.signal.lfilter([1.0], [1.0, -0.97], pulses)
    glottal = scipy.signal.lfilter([1.0], [1.0, -0.97], glottal)
    source = np.diff(glottal, prepend=0.0) + 0.02 * rng.standard_normal(n)

    out = np.zeros(n)
    syllable = int(0.2 * sr)
    names = sorted(VOWELS)
    for start in range(0, n, syllable):
        stop = min(n, start + syllable)
        formants, bandwidths = VOWELS[names[rng.integers(len(names))]]
        seg = source[start:stop]
        for f, bw in zip(formants, bandwidths, strict=True):
            if f < sr / 2:
                b, a = _resonator(f, bw, sr)
                seg = scipy.signal.lfilter(b, a, seg)
        env = np.sin(np.pi * np.arange(stop - start) / syllable) ** 2
        out[start:stop] = seg * (0.3 + 0.7 * env)
    return _normalise(out)


def espeak_executable() -> str | None:
    """Path of ``espeak-ng`` or ``espeak``, or None when neither is installed."""
    return shutil.which("espeak-ng") or shutil.which("espeak")


def espeak_speech(
    directory: Path,
    text: str = "The quick brown fox jumps over the lazy dog.",
    max_seconds: float = 2.0,
) -> tuple[np.ndarray, int] | None:
    """Speak ``text`` with espeak into ``directory`` and read it back as float32 mono.

    Returns ``(samples, sr)``, or None when no espeak is installed.
    """
    exe = espeak_executable()
    if exe is None:
        return None
    import soundfile

    path = Path(directory) / "espeak.wav"
    subprocess.run([exe, "-w", str(path), text], check=True, capture_output=True, timeout=60)
    y, sr = soundfile.read(str(path), dtype="float32", always_2d=True)
    y = y.mean(axis=1)[: int(max_seconds * sr)]
    return _normalise(y), int(sr)


def make(kind: str, directory: Path | None = None) -> tuple[np.ndarray, int]:
    """``(samples, sr)`` of a named signal: 'chirp', 'harmonic', 'speech_synth' or 'espeak'.

    'espeak' raises ``LookupError`` when espeak is not installed.
    """
    if kind == "chirp":
        return chirp_with_noise(16000), 16000
    if kind == "harmonic":
        return harmonic_tone(22050), 22050
    if kind == "speech_synth":
        return speech_like(16000), 16000
    if kind == "espeak":
        if directory is None:
            raise ValueError("the espeak signal needs a directory to write its wav into")
        got = espeak_speech(directory)
        if got is None:
            raise LookupError("neither espeak-ng nor espeak is installed")
        return got
    raise ValueError(f"unknown signal kind {kind!r}")


SIGNAL_KINDS = ("chirp", "harmonic", "speech_synth", "espeak")
