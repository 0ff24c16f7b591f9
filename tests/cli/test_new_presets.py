"""``nnaudio extract`` with the gammatone and cfp presets: every stored row equals the
transform applied to the decoded clip directly (1e-5 of the peak), through the chunked
``center=False`` twin both transforms declare their frame geometry for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from support import decoded, invoke

from nnaudio_cli.config import ConfigError, resolve
from nnaudio_cli.featurefile.reader import open_features
from nnaudio_core.features import build

# name, sample rate, seconds: one clip at each preset's rate, one resampled, one long enough
# to be cut into several chunks, one shorter than a CFP frame (8000 samples)
CLIPS = [("a22k.wav", 22050, 1.3), ("b16k.wav", 16000, 2.1), ("c44k.wav", 44100, 0.7),
         ("long22k.wav", 22050, 9.0), ("short16k.wav", 16000, 0.2)]


def clip(sr: int, seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    f0 = 110.0 * (seed + 1)
    y = sum(np.sin(2 * np.pi * k * f0 * t + k) / k for k in range(1, 6))
    return (0.2 * y + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("presets")
    for seed, (name, sr, sec) in enumerate(CLIPS):
        sf.write(root / name, clip(sr, sec, seed), sr, subtype="FLOAT")
    return root


@pytest.mark.parametrize(("preset", "transform", "sr", "n_bins"),
                         [("gammatone", "Gammatonegram", 22050, 64), ("cfp", "CFP", 16000, 174)])
def test_stored_rows_equal_the_transform(folder: Path, tmp_path: Path, preset, transform, sr,
                                         n_bins):
    out = tmp_path / f"{preset}.h5"
    r = invoke("extract", folder, out, "--config", preset, "--batch-seconds", "3", "-q")
    assert r.exit_code == 0, r.output
    with open_features(out) as ff:
        config = ff.config
        assert config["transform"] == transform
        assert config["params"]["center"] is True  # the configured value, not the twin's
        assert float(ff.attrs["sr"]) == sr and int(ff.attrs["n_bins"]) == n_bins
        module = build(config)
        np.testing.assert_allclose(np.asarray(ff.attrs["frequencies"]), module.frequencies())
        assert sorted(ff) == sorted(name for name, *_ in CLIPS)
        for name, *_ in CLIPS:
            audio = decoded(folder / name, sr)
            with torch.no_grad():
                want = module(torch.from_numpy(audio))[0].T.numpy()  # (frames, bins)
            got = np.asarray(ff[name])
            assert got.shape == want.shape == (1 + audio.shape[1] // module.hop_length, n_bins)
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * float(np.abs(want).max()))


def test_cfp_sample_rate_flags_set_fs():
    assert resolve("cfp").params["fs"] == 16000
    assert resolve("cfp", sr=22050).params["fs"] == 22050
    assert resolve("cfp", overrides=["fs=8000"]).sr == 8000
    assert resolve(transform="cfp").params["fs"] == 16000  # the class default
    with pytest.raises(ConfigError, match="'sr'.*fs"):
        resolve("cfp", overrides=["sr=8000"])


def test_combined_frequency_periodicity_is_not_extractable():
    with pytest.raises(ConfigError, match="unknown transform"):
        resolve(transform="Combined_Frequency_Periodicity")
