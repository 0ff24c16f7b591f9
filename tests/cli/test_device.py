"""The extract compute stage on accelerators (skipped without one) and its out-of-memory
fallback (runs everywhere: the splitting logic does not depend on the device).

Across devices, features agree within 1e-4 of each clip's peak (cuFFT/MPS kernels and
pocketfft round differently); on one device and thread count they are byte-identical.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from support import invoke

from nnaudio_cli.extract.compute import DeviceRunner, Engine
from nnaudio_cli.featurefile.reader import open_features

MEL = {"transform": "MelSpectrogram", "params": {"sr": 22050, "n_fft": 1024,
                                                 "hop_length": 256, "n_mels": 64}}


def _accelerators() -> list[str]:
    out = []
    if torch.cuda.is_available():
        out.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    return out


def test_out_of_memory_halves_rows_and_gives_the_same_values(monkeypatch):
    eng = Engine(MEL, torch.device("cpu"))
    notes: list[str] = []
    runner = DeviceRunner(eng, notes.append)
    x = np.random.default_rng(0).standard_normal((13, 1024 + 7 * 256)).astype(np.float32)
    want = runner.submit(x).result()
    real = eng.forward_chunks
    sizes: list[int] = []

    def limited(t: torch.Tensor) -> torch.Tensor:
        sizes.append(t.shape[0])
        if t.shape[0] > 4:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(t)

    monkeypatch.setattr(eng, "forward_chunks", limited)
    got = runner.submit(x).result()
    assert runner.max_rows == 3 and len(notes) == 2  # 13 -> 6 -> 3 rows per call
    assert all("out of memory" in n and "\n" not in n for n in notes)
    assert max(sizes[-5:]) <= 4
    scale = float(np.abs(want).max())
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * scale)
    got2 = runner.submit(x).result()  # later batches are split from the start
    assert len(notes) == 2 and got2.shape == want.shape


@pytest.mark.device
@pytest.mark.parametrize("device", _accelerators() or [
    pytest.param("none", marks=pytest.mark.skip(reason="no CUDA or MPS device here"))])
@pytest.mark.parametrize("preset", ["mel128", "cqt84", "stft_complex", "mfcc"])
def test_extract_on_device_matches_cpu(tmp_path: Path, device: str, preset: str):
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(2)
    for i in range(12):
        n = int(22050 * rng.uniform(0.4, 3.0))
        sf.write(src / f"c{i:02d}.wav", 0.2 * rng.standard_normal(n).astype(np.float32), 22050)
    outs = {}
    for dev in ("cpu", device):
        outs[dev] = tmp_path / f"{dev}.h5"
        r = invoke(*["extract", str(src), str(outs[dev]), "-c", preset,
                                     "--device", dev, "--batch-seconds", "5", "-q"])
        assert r.exit_code == 0, r.stderr
    with open_features(outs["cpu"]) as a, open_features(outs[device]) as b:
        assert list(a) == list(b)
        for key in a:
            x, y = a[key], b[key]
            peak = float(np.abs(x).max()) or 1.0
            assert float(np.abs(x - y).max()) <= 1e-4 * peak, key
