"""One-line messages and usage errors of the command line (issue 12, section 4)."""

from __future__ import annotations

import ast
import io
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from support import invoke

import nnaudio_cli.config
from nnaudio_cli.plumbing.progress import PlainReporter
from nnaudio_cli.plumbing.text import shown_key

run = invoke


def lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "in"
    d.mkdir()
    t = np.arange(22050) / 22050
    sf.write(d / "tone.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 22050)
    return d


def test_mel_fmax_above_nyquist_is_one_line_exit_1(folder, tmp_path):
    r = run("extract", folder, tmp_path / "o.h5", "--config", "mel128", "--set", "fmax=30000",
            "--workers", 0)
    assert r.exit_code == 1, r.output
    err = lines(r.stderr)
    assert len(err) == 1, err
    assert err[0].startswith("nnaudio: error: ") and "Nyquist" in err[0] and "30000" in err[0]
    assert not (tmp_path / "o.h5").exists()


def test_huge_n_fft_is_refused_at_once_one_line_exit_1(folder, tmp_path):
    r = run("extract", folder, tmp_path / "o.h5", "--config", "mel128", "--set",
            f"n_fft={2**24}", "--workers", 0)
    assert r.exit_code == 1, r.output
    err = lines(r.stderr)
    assert len(err) == 1 and "n_fft=16777216 must be between 1 and 1048576" in err[0], err


def test_binary_config_file_is_one_line_exit_1(folder, tmp_path):
    preset = tmp_path / "binary.toml"
    preset.write_bytes(bytes(range(128, 256)) * 8)
    r = run("extract", folder, tmp_path / "o.h5", "--config", preset, "--workers", 0)
    assert r.exit_code == 1, r.output
    err = lines(r.stderr)
    assert len(err) == 1 and "Traceback" not in r.output, r.output
    assert err[0].startswith("nnaudio: error: ") and "not UTF-8" in err[0], err


BAD_FLAGS = [
    ("--sr", "-5"), ("--sr", "0"), ("--sr", "nan"), ("--sr", "inf"), ("--sr", "abc"),
    ("--batch-seconds", "0"), ("--batch-seconds", "inf"), ("--batch-seconds", "nan"),
    ("--segment-seconds", "-1"), ("--segment-seconds", "nan"),
    ("--workers", "-1"), ("--workers", "100000"), ("--workers", "two"),
    ("--threads", "0"), ("--threads", "5000"), ("--threads", "1.5"),
]


@pytest.mark.parametrize(("flag", "value"), BAD_FLAGS, ids=[f"{f}={v}" for f, v in BAD_FLAGS])
def test_malformed_or_out_of_range_flag_is_usage_error(folder, tmp_path, flag, value):
    r = run("extract", folder, tmp_path / "o.h5", "-t", "mel", flag, value)
    assert r.exit_code == 2, r.output
    err = lines(r.stderr)
    assert len(err) == 1, err
    assert err[0].startswith(f"nnaudio: error: Invalid value for '{flag}'"), err[0]
    assert not (tmp_path / "o.h5").exists()


def test_benchmark_sample_rate_nan_is_usage_error():
    r = run("benchmark", "--sr", "nan")
    assert r.exit_code == 2, r.output
    assert lines(r.stderr)[0].startswith("nnaudio: error: Invalid value for '--sr'")


def test_version_prints_package_and_torch_versions():
    import torch

    import nnaudio_core

    r = run("--version")
    assert r.exit_code == 0, r.output
    assert re.fullmatch(r"nnaudio \S+ \(torch \S+, python \S+\)\n", r.stdout), r.stdout
    assert nnaudio_core.__version__ in r.stdout
    assert torch.__version__.split("+")[0] in r.stdout


def test_plain_progress_has_no_nan_eta_before_the_first_file():
    rep = PlainReporter(stream=io.StringIO(), interval=0.0)
    rep.start(4)
    first = rep._line()
    assert "nan" not in first and first.endswith("ETA --"), first
    rep.advance(1.0)
    assert re.search(r"ETA \d+ s$", rep._line()), rep._line()
    rep.finish()
    assert "nan" not in rep.stream.getvalue()


def test_shown_key_escapes_only_unprintable_keys():
    assert shown_key("a/naïve café ♪.wav") == "a/naïve café ♪.wav"
    for key in ("bad\nname.wav", "tab\there.wav", "esc\x1b[31mred.wav", "cr\r.wav"):
        shown = shown_key(key)
        assert shown.isprintable() and "\n" not in shown
        assert ast.literal_eval(shown) == key


def test_key_with_newline_does_not_split_stderr_lines(folder, tmp_path):
    (folder / "bad\nname.wav").write_text("not audio\n")
    out = tmp_path / "o.h5"
    r = run("extract", folder, out, "-t", "mel", "--workers", 0)
    assert r.exit_code == 3, r.output
    err = lines(r.stderr)
    assert all(ln.startswith(("nnaudio: ", "extract: ")) for ln in err), err
    assert any(ln.startswith("nnaudio: failed: 'bad\\nname.wav': not an audio file")
               for ln in err), err
    r = run("info", out)
    assert r.exit_code == 0, r.output
    assert "  'bad\\nname.wav': not an audio file" in r.stdout, r.stdout


def _warning_resolve(real):
    def resolve(*args, **kwargs):
        warnings.warn("n_fft is odd; frames are shifted", UserWarning, stacklevel=1)
        # same text, another site
        warnings.warn("n_fft is odd;\nframes are shifted", UserWarning, stacklevel=1)
        warnings.warn("another library warning", UserWarning, stacklevel=1)
        return real(*args, **kwargs)

    return resolve


def test_library_warnings_are_one_line_once_and_quiet_silences_them(
    folder, tmp_path, monkeypatch
):
    monkeypatch.setattr(nnaudio_cli.config, "resolve", _warning_resolve(nnaudio_cli.config.resolve))
    before = warnings.showwarning
    r = run("extract", folder, tmp_path / "a.h5", "-t", "mel", "--workers", 0)
    assert r.exit_code == 0, r.output
    warned = [ln for ln in lines(r.stderr) if ln.startswith("nnaudio: warning")]
    assert warned == [
        "nnaudio: warning: n_fft is odd; frames are shifted",
        "nnaudio: warning: another library warning",
    ], r.stderr
    assert warnings.showwarning is before  # the hook is removed after the invocation

    r = run("extract", folder, tmp_path / "b.h5", "-t", "mel", "--workers", 0, "-q")
    assert r.exit_code == 0, r.output
    assert "nnaudio: warning" not in r.stderr, r.stderr


@pytest.mark.parametrize("quiet", [False, True])
def test_invert_quiet_silences_library_warnings_too(tmp_path, monkeypatch, quiet):
    import nnaudio_cli.invert

    def invert_file(*args, **kwargs):
        warnings.warn("iCQT: hop_length=512 undersamples 40 of 84 bins", UserWarning,
                      stacklevel=1)
        raise nnaudio_cli.invert.InvertError("stop here")

    monkeypatch.setattr(nnaudio_cli.invert, "invert_file", invert_file)
    features = tmp_path / "f.h5"
    features.write_bytes(b"")
    r = run("invert", features, tmp_path / "out", *(["-q"] if quiet else []))
    assert r.exit_code == 1, r.output
    shown = "nnaudio: warning: iCQT: hop_length=512 undersamples 40 of 84 bins" in r.stderr
    assert shown is not quiet, r.stderr


def _one_line(r, code: int) -> str:
    assert r.exit_code == code, r.output
    err = lines(r.stderr)
    assert len(err) == 1, err
    assert err[0].startswith("nnaudio: error: ") and "Traceback" not in r.output
    return err[0]


def test_missing_input_folder_is_one_line_usage_error(tmp_path):
    missing = tmp_path / "no_such_dir"
    msg = _one_line(run("extract", missing, tmp_path / "o.h5", "-c", "mel128"), 2)
    assert "'input_dir'" in msg and "does not exist" in msg and str(missing) in msg
    msg = _one_line(run("benchmark", "--input", missing, "--clips", 1), 2)
    assert "'--input'" in msg and "does not exist" in msg


def test_missing_feature_file_is_one_line_usage_error(tmp_path):
    for command in (("info",), ("invert",)):
        args = [*command, tmp_path / "none.h5"] + ([tmp_path / "out"] if command == ("invert",)
                                                   else [])
        msg = _one_line(run(*args), 2)
        assert "none.h5" in msg and "does not exist" in msg


def _features(folder: Path, tmp_path: Path) -> Path:
    out = tmp_path / "f.h5"
    r = run("extract", folder, out, "-c", "stft_complex", "--workers", 0, "-q")
    assert r.exit_code == 0, r.output
    return out


def test_output_in_a_missing_folder_is_one_line_exit_1_for_every_command(folder, tmp_path):
    """One rule everywhere: a command creates at most the last level of an output path."""
    gone = tmp_path / "missing" / "deeper"
    expected = f"nnaudio: error: cannot write {gone / 'x'}: folder {gone} does not exist"
    r = run("extract", folder, gone / "x", "-c", "mel128", "--workers", 0)
    assert _one_line(r, 1) == expected
    assert not gone.parent.exists()
    feats = _features(folder, tmp_path)
    assert _one_line(run("invert", feats, gone / "x"), 1) == expected
    for flag in ("--json", "--plot"):
        r = run("benchmark", "--clips", 1, "--samples", 4096, flag, gone / "x")
        assert _one_line(r, 1) == f"{expected} ({flag})"
    assert not gone.parent.exists()


def test_output_folder_itself_is_created_by_invert(folder, tmp_path):
    feats = _features(folder, tmp_path)
    r = run("invert", feats, tmp_path / "new_out", "-q")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "new_out").iterdir()) == ["tone.wav"]
