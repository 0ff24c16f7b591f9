"""What a benchmark runs on: the clips (synthetic or cut from a folder), their batches and
the fixed parameters of every workload.

Transform benchmark (the nnAudio paper's protocol): 1,770 clips (``--full``; by default
:data:`QUICK_CLIPS`, a short run) x 80,000 samples at 44.1 kHz, synthesised from a seed
(:func:`piano_clips`) or cut from a folder's files (:func:`clips_from_folder`); n_fft 2048,
hop 512, 128 mels, 20 MFCCs, 84 CQT bins from C1 (32.70 Hz), Hann window, centred with
reflect padding. ``--matrix`` runs
:data:`WORKLOADS`, ``--pipeline`` the :data:`PRESETS`, ``--invert`` the
:data:`INVERT_CASES`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nnaudio_cli.errors import CliError
from nnaudio_cli.plumbing.text import count

#: the ``schema_version`` of every benchmark report (JSON)
SCHEMA_VERSION = 1
SR = 44100
N_CLIPS = 1770
#: clips of a run without ``--clips``/``--full`` (transform and pipeline benchmarks)
QUICK_CLIPS = 16
N_SAMPLES = 80000
OFFSET = 20000  # --input: clips are samples OFFSET .. OFFSET + samples of each file
N_FFT = 2048
HOP = 512
N_MELS = 128
N_MFCC = 20
N_BINS = 84
FMIN = 32.70  # C1
BINS_PER_OCTAVE = 12
VQT_GAMMA = 20.0
SEED = 0


#: (label, sr, samples per clip, batch size, default clip count)
WORKLOADS: list[tuple[str, float, int, int, int]] = [
    ("16 kHz x 1 s", 16000.0, 16000, 32, 64),
    ("22.05 kHz x 40,000", 22050.0, 40000, 32, 64),
    ("44.1 kHz x 80,000", 44100.0, 80000, 32, 64),
    ("22.05 kHz x 60 s", 22050.0, 60 * 22050, 4, 8),
]


MATRIX_TRANSFORMS = ("stft", "mel", "mfcc", "cqt1992v2", "cqt2010v2", "vqt")


PRESETS = ("mel128", "cqt84", "stft", "mfcc")


INVERT_CLIPS = 51


#: name -> (extract arguments, expected method, invert iterations or None for the default)
INVERT_CASES: dict[str, tuple[list[str], str, int | None]] = {
    "stft_complex": (["-c", "stft_complex"], "istft", None),
    "cqt84_complex": (["-c", "cqt84", "--set", 'output_format="Complex"'], "icqt", None),
    # the preset meant for inversion, with the iterations `invert --help` recommends
    "cqt_invertible": (["-c", "cqt_invertible"], "icqt", 4),
    "mel128": (["-c", "mel128"], "griffin-lim", None),
}


class PipelineError(CliError, RuntimeError):
    """The pipeline benchmark cannot run as asked (one line)."""


class BenchmarkError(CliError, RuntimeError):
    """A problem that stops the benchmark; ``usage`` selects exit code 2 over 1."""


def piano_clips(
    n_clips: int, n_samples: int, sr: float = SR, seed: int = SEED
) -> np.ndarray:
    """Deterministic piano-like clips: decaying harmonic notes plus a little noise.

    Returns
    -------
    np.ndarray, shape (n_clips, n_samples), float32, peak about 0.5
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples, dtype=np.float64) / sr
    out = np.empty((n_clips, n_samples), dtype=np.float32)
    for i in range(n_clips):
        midi = rng.integers(21, 100)
        f0 = 440.0 * 2.0 ** ((midi - 69) / 12.0)
        y = np.zeros(n_samples)
        for h in range(1, 9):
            if h * f0 >= sr / 2:
                break
            y += (0.6**h) * np.sin(2 * np.pi * h * f0 * t + rng.uniform(0, 2 * np.pi))
        y *= np.exp(-t * rng.uniform(1.0, 4.0))
        y += 0.01 * rng.standard_normal(n_samples)
        out[i] = 0.5 * y / max(float(np.max(np.abs(y))), 1e-12)
    return out


def clips_from_folder(
    root: Path, n_clips: int | None, n_samples: int, sr: float, offset: int = OFFSET
) -> tuple[np.ndarray, dict[str, Any]]:
    """Samples ``offset .. offset + n_samples`` of each audio file under ``root`` (sorted),
    decoded, mixed to mono and resampled to ``sr`` as ``nnaudio extract`` does.

    Files that cannot be decoded or are too short are skipped (counted in the info).
    """
    from nnaudio_cli.extract.audio import open_sound
    from nnaudio_cli.extract.discover import find_audio
    from nnaudio_cli.extract.resample import prepare

    keys = find_audio(root)
    rows: list[np.ndarray] = []
    short = failed = 0
    for key in keys:
        if n_clips is not None and len(rows) >= n_clips:
            break
        try:
            f, _ = open_sound(Path(root) / key)  # libsndfile or FFmpeg, as extract decodes
            if f is None:
                raise ValueError(key)
            with f:
                x, sr_in = f.read(dtype="float32", always_2d=True), f.samplerate
        except Exception:  # noqa: BLE001 - not audio after all
            failed += 1
            continue
        y = prepare(x, sr_in, sr, mono=True)[0]
        if y.shape[0] < offset + n_samples:
            short += 1
            continue
        rows.append(y[offset : offset + n_samples])
    if not rows:
        raise BenchmarkError(
            f"no usable audio under {root}: {count(len(keys), 'audio file name')}, {failed} "
            f"undecodable, {short} shorter than {offset + n_samples} samples at {sr:g} Hz"
        )
    info = {"files_found": len(keys), "files_used": len(rows), "files_too_short": short,
            "files_undecodable": failed}
    return np.ascontiguousarray(np.stack(rows)), info


def cqt_pad_mode(samples: int, sr: float) -> str:
    """``reflect`` when a clip is longer than the longest CQT kernel, else ``constant``
    (zeros, librosa.cqt's default): reflect padding needs ``samples > kernel // 2``."""
    q = 1.0 / (2.0 ** (1.0 / BINS_PER_OCTAVE) - 1.0)
    longest = 2 ** math.ceil(math.log2(q * sr / FMIN))
    return "reflect" if samples > longest else "constant"


@dataclass
class Workload:
    clips: np.ndarray  # (n_clips, n_samples) float32
    sr: float
    batch_size: int
    repeat: int
    device: Any
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def audio_seconds(self) -> float:
        return self.clips.shape[0] * self.clips.shape[1] / self.sr


def stage(w: Workload) -> dict[str, list[Any]]:
    """The clips as batches: numpy (CPU) for librosa, tensors on the device for torch."""
    import torch

    np_batches = [np.ascontiguousarray(w.clips[i : i + w.batch_size])
                  for i in range(0, w.clips.shape[0], w.batch_size)]
    t_batches = [torch.from_numpy(b).to(w.device) for b in np_batches]
    return {"numpy": np_batches, "torch": t_batches}


def write_wavs(clips: np.ndarray, sr: float, folder: Path) -> None:
    """The synthetic clips as 16-bit WAV files ``clip_00000.wav`` ... in ``folder``."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    for i, y in enumerate(clips):
        sf.write(folder / f"clip_{i:05d}.wav", y, int(round(sr)), subtype="PCM_16")
