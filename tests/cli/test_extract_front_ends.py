"""The model front-end presets through ``nnaudio extract``: all eight in one pass over
clips at 8-44.1 kHz, a long file streamed in segments and one shorter than a window. Every
stored row equals the core transform applied to the whole decoded clip, so segmenting a long
file changes nothing (Whisper's clip-wide floor included, through the clip writer); AST cuts
or pads to 1024 frames; ``nnaudio export`` gives a Whisper front end that onnxruntime runs
equal to eager."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from support import decoded, invoke

from nnaudio_cli.featurefile.reader import open_features
from nnaudio_core.features import WhisperLogMel, build

PRESETS = {  # preset: (transform, sample rate, columns, log-valued)
    "fbank80": ("KaldiFbank", 16000, 80, True),
    "fbank80_kaldi_energy": ("KaldiFbank", 16000, 81, True),
    "mfcc13_kaldi": ("KaldiMFCC", 16000, 13, False),
    "whisper80": ("WhisperLogMel", 16000, 80, True),
    "whisper128": ("WhisperLogMel", 16000, 128, True),
    "ast128": ("ASTFbank", 16000, 128, True),
    "vggish64": ("VGGishLogMel", 16000, 64, True),
    "panns64": ("PANNsLogMel", 32000, 64, True),
}
CLIPS = [("a16k.wav", 16000, 2.3), ("b44k.wav", 44100, 1.1), ("c8k.wav", 8000, 1.7),
         ("long48k.wav", 48000, 14.0)]


def clip(sr: int, seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    y = sum(np.sin(2 * np.pi * k * 180.0 * (seed + 1) * t) / k for k in range(1, 5))
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * t)
    return (0.2 * env * y + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, object]:
    root = tmp_path_factory.mktemp("frontends")
    for seed, (name, sr, sec) in enumerate(CLIPS):
        sf.write(root / name, clip(sr, sec, seed), sr, subtype="FLOAT")
    sf.write(root / "short.wav", clip(16000, 0.01, 9), 16000, subtype="FLOAT")
    out = root.parent / "frontends.h5"
    args = [a for p in PRESETS for a in ("-c", p)]
    r = invoke("extract", root, out, *args, "--batch-seconds", "2", "--segment-seconds", "4",
               "-q")
    return root, out, r


def test_short_clip_fails_and_the_others_are_stored(extracted):
    _, out, r = extracted
    assert r.exit_code == 3, r.output
    assert "short.wav" in r.output and "too short" in r.output
    with open_features(out, feature="fbank80") as ff:
        assert sorted(ff) == sorted(name for name, *_ in CLIPS)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_stored_rows_equal_the_transform_on_the_whole_clip(extracted, preset):
    root, out, _ = extracted
    transform, sr, columns, log_valued = PRESETS[preset]
    with open_features(out, feature=preset) as ff:
        config = ff.config
        assert config["transform"] == transform
        module = build(config).eval()
        assert float(ff.attrs["sr"]) == sr and int(ff.attrs["n_bins"]) == columns
        np.testing.assert_allclose(np.asarray(ff.attrs["frequencies"]), module.frequencies())
        for name, *_ in CLIPS:
            audio = decoded(root / name, sr)
            with torch.no_grad():
                want = module(torch.from_numpy(audio))[0].T.numpy()  # (frames, columns)
            got = np.asarray(ff[name])
            assert got.shape == want.shape and got.shape[1] == columns, name
            if transform == "ASTFbank":
                assert got.shape[0] == 1024
            if transform == "WhisperLogMel":
                assert got.shape[0] == audio.shape[1] // 160  # the last frame dropped
            atol = 1e-3 if log_valued else 1e-4 * float(np.abs(want).max())
            np.testing.assert_allclose(got, want, rtol=0, atol=atol, err_msg=name)


def test_whisper_floor_is_taken_over_the_whole_long_file(extracted):
    """The long file is computed in several segments; its floor is max - 8 of the whole."""
    root, out, _ = extracted
    with open_features(out, feature="whisper80") as ff:
        got = np.asarray(ff["long48k.wav"])
    assert got.shape[0] > 4 * 16000 // 160  # longer than one segment
    assert abs(float(got.min()) - (float(got.max()) - 2.0)) < 1e-5  # floor = peak - 8 / 4


def test_whisper80_onnx_front_end_equals_eager(tmp_path: Path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    path = tmp_path / "fe.onnx"
    r = invoke("export", "--config", "whisper80", "-o", path)
    assert r.exit_code == 0, r.output
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name
    eager = WhisperLogMel(n_mels=80).eval()
    for n, batch in ((16000 * 3 + 17, 2), (16000 * 7, 1)):
        x = torch.from_numpy(np.stack([clip(16000, n / 16000, s)[:n] for s in range(batch)]))
        with torch.no_grad():
            want = eager(x).numpy()
        got = session.run(None, {feed: x.numpy()})[0]
        assert got.shape == want.shape == (batch, 80, n // 160)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-3)
