"""nnaudio plot: real PNGs from extract outputs, their axes, scales and one-line errors."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from support import invoke, tone

from nnaudio_cli.errors import CliError
from nnaudio_cli.featurefile.reader import open_features

mpl_image = pytest.importorskip("matplotlib.image")
from nnaudio_cli.plot import draw, freq_ticks, load, plot_features, value_scale  # noqa: E402

SR = 16000


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """mel64_16k (power) and stft_complex outputs of a 1 s 1 kHz tone, a 0.5 s noise clip
    and an empty file (a failed row)."""
    root = tmp_path_factory.mktemp("plot")
    src = root / "audio"
    src.mkdir()
    sf.write(src / "tone.wav", tone(SR, 1.0, freq=1000.0), SR)
    rng = np.random.default_rng(0)
    sf.write(src / "noise.wav", (0.1 * rng.standard_normal(SR // 2)).astype(np.float32), SR)
    (src / "broken.wav").write_bytes(b"")
    out = {}
    for preset in ("mel64_16k", "stft_complex"):
        out[preset] = root / f"{preset}.h5"
        r = invoke("extract", src, out[preset], "--config", preset, "--workers", "0", "-q")
        assert r.exit_code == 3, r.output  # the empty file
    return out


def _image(path: Path) -> np.ndarray:
    img = mpl_image.imread(path)
    assert img.ndim == 3
    return img[..., :3]


@pytest.mark.parametrize("scale", ["--db", "--linear"])
def test_plot_writes_a_png_of_the_asked_size_that_is_not_blank(files, tmp_path, scale):
    out = tmp_path / "tone.png"
    r = invoke("plot", files["mel64_16k"], "tone.wav", "-o", out, scale,
               "--width", 640, "--height", 300)
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith(f"{out}: tone.wav (mel64_16k), 101 frames x 64 bins, "
                               f"{'dB' if scale == '--db' else 'linear'}")
    img = _image(out)
    assert img.shape == (300, 640, 3)
    assert img.std() > 0.05  # not one colour
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 50  # a colour map, not just text


def test_db_and_linear_images_differ_and_default_is_db_for_power(files, tmp_path):
    paths = {}
    for flag in ("--db", "--linear", None):
        paths[flag] = tmp_path / f"{flag}.png"
        args = ["plot", files["mel64_16k"], "noise.wav", "-o", paths[flag], "-q"]
        r = invoke(*args, *([flag] if flag else []))
        # -q: no warnings, only the final result line
        assert r.exit_code == 0 and r.stdout.startswith(f"{paths[flag]}: noise.wav"), r.output
        assert len(r.stdout.splitlines()) == 1, r.output
    assert np.array_equal(_image(paths[None]), _image(paths["--db"]))
    assert not np.array_equal(_image(paths["--db"]), _image(paths["--linear"]))


def test_axes_are_seconds_and_hz_with_a_db_colour_bar_and_a_titled_key(files):
    feats = load(files["mel64_16k"], "tone.wav")
    fig, summary = draw(feats)
    ax, cbar = fig.axes[0], fig.axes[-1]
    frames = feats.values.shape[0]  # 1 s at hop 160 / 16 kHz, centred frames: 101
    assert frames == 101
    assert ax.get_xlim() == pytest.approx((-0.005, 1.005))
    assert ax.get_xlabel() == "time (s)" and ax.get_ylabel() == "frequency (Hz)"
    assert cbar.get_ylabel() == "power (dB)"
    assert "tone.wav" in fig._suptitle.get_text() and "MelSpectrogram" in fig._suptitle.get_text()
    # power: 10 log10, colours span the 80 dB below the peak
    with open_features(files["mel64_16k"]) as ff:
        peak = float(ff["tone.wav"].max())
    assert summary["vmax"] == pytest.approx(10 * np.log10(peak), abs=1e-9)
    assert summary["vmax"] - summary["vmin"] == pytest.approx(80.0)
    # the tone's row sits at the tick position of 1 kHz
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert "1k" in labels
    one_k = ax.get_yticks()[labels.index("1k")]
    loudest = int(np.argmax(feats.values[50, 0]))
    assert abs(loudest - one_k) <= 1.0
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_mel_ticks_sit_at_their_frequency_on_the_bin_grid():
    mel = np.geomspace(30, 8000, 64)  # any increasing, uneven grid
    pos, labels = freq_ticks(mel)
    hz = [float(s[:-1]) * 1000 if s.endswith("k") else float(s) for s in labels]
    assert np.allclose(np.interp(pos, np.arange(64), mel), hz)
    assert len(labels) >= 4 and np.all(np.diff(pos) >= 64 / 16)
    pos, labels = freq_ticks(np.linspace(0, 8000, 513))
    assert labels[0] == "0" and labels[-1] == "8k"


def test_complex_stft_is_drawn_as_magnitude_in_20_log10(files, tmp_path):
    out = tmp_path / "c.png"
    done = plot_features(files["stft_complex"], "tone.wav", out)
    with open_features(files["stft_complex"]) as ff:
        z = ff["tone.wav"]
    assert z.shape[-1] == 2
    mag = np.hypot(z[..., 0].astype(np.float64), z[..., 1])
    assert done["bins"] == 513 and done["scale"] == "dB"
    assert done["vmax"] == pytest.approx(20 * np.log10(mag.max()), abs=1e-9)
    assert _image(out).shape == (400, 1000, 3)


def test_unknown_key_is_one_line_with_did_you_mean(files, tmp_path):
    r = invoke("plot", files["mel64_16k"], "tone.wv", "-o", tmp_path / "x.png")
    assert r.exit_code == 2
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and "no input tone.wv in" in lines[0]
    assert "; did you mean 'tone.wav'" in lines[0]
    assert not (tmp_path / "x.png").exists()


def test_failed_key_and_db_on_coefficients_are_one_line_errors(files, tmp_path):
    r = invoke("plot", files["mel64_16k"], "broken.wav", "-o", tmp_path / "x.png")
    assert r.exit_code == 1
    assert r.stderr.startswith("nnaudio: error: broken.wav: extraction failed (")
    assert len(r.stderr.splitlines()) == 1
    feats = load(files["mel64_16k"], "tone.wav")
    feats.config = {"transform": "MFCC", "params": {"n_mfcc": 64}}
    with pytest.raises(CliError, match="dB does not apply") as e:
        draw(feats, db=True)
    assert e.value.usage


def test_value_scale_reads_power_and_output_format():
    def scale(name, **params):
        return value_scale({"transform": name, "params": params})

    assert scale("MelSpectrogram", power=2.0).db_factor == 10
    assert scale("MelSpectrogram", power=1.0).db_factor == 20
    assert scale("Gammatonegram", power=2.0).label == "power"
    assert scale("STFT", output_format="Magnitude").db_factor == 20
    assert scale("CQT1992v2", output_format="Complex").db_factor == 20
    assert scale("STFT", output_format="Phase").db_factor is None
    assert scale("MFCC", n_mfcc=20).db_factor is None
    assert scale("CFP").db_factor is None


def test_missing_matplotlib_is_one_line_exit_1(files, tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    r = invoke("plot", files["mel64_16k"], "tone.wav", "-o", tmp_path / "x.png")
    assert r.exit_code == 1
    assert r.stderr == ("nnaudio: error: nnaudio plot needs matplotlib: "
                        "pip install 'nnaudio-cli[plot]'\n")


def test_keep_channels_draws_one_panel_per_channel_under_one_colour_bar(tmp_path):
    src = tmp_path / "audio"
    src.mkdir()
    sf.write(src / "st.wav", tone(SR, 0.5, channels=2), SR)
    h5 = tmp_path / "ch.h5"
    r = invoke("extract", src, h5, "--config", "mel64_16k", "--keep-channels", "--workers", "0",
               "-q")
    assert r.exit_code == 0, r.output
    fig, summary = draw(load(h5, "st.wav"))
    assert summary["channels"] == 2 and len(fig.axes) == 3  # two panels and the colour bar
    assert [ax.get_title(loc="right") for ax in fig.axes[:2]] == ["channel 0", "channel 1"]
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_several_features_need_feature_and_draw_the_one_named(files, tmp_path):
    src = next(iter(files.values())).parent / "audio"
    two = tmp_path / "two.h5"
    r = invoke("extract", src, two, "-c", "mel64_16k", "-c", "mfcc", "--workers", "0", "-q")
    assert r.exit_code == 3, r.output
    out = tmp_path / "x.png"
    r = invoke("plot", two, "tone.wav", "-o", out)
    assert r.exit_code == 2 and not out.exists()
    assert r.stderr.splitlines() == [f"nnaudio: error: {two} holds 2 features; choose one with "
                                     "--feature NAME: mel64_16k, mfcc"]
    r = invoke("plot", two, "tone.wav", "-o", out, "--feature", "mel", "-q")
    assert r.exit_code == 2 and "has no feature 'mel'" in r.stderr and not out.exists()
    r = invoke("plot", two, "tone.wav", "-o", out, "--feature", "mfcc")
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith(f"{out}: tone.wav (mfcc), ") and "x 20 bins, linear" in r.stdout
    assert _image(out).shape == (400, 1000, 3)
    # the same mel drawing as from the single-feature file
    mel, single = load(two, "tone.wav", "mel64_16k"), load(files["mel64_16k"], "tone.wav")
    assert np.array_equal(mel.values, single.values) and mel.feature == "mel64_16k"
    fig, summary = draw(mel)
    assert summary["feature"] == "mel64_16k"
    assert "mel64_16k: MelSpectrogram" in fig._suptitle.get_text()
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_features_stored_in_db_are_not_logged_twice(files, tmp_path):
    src = next(iter(files.values())).parent / "audio"
    db = tmp_path / "db.h5"
    r = invoke("extract", src, db, "-c", "mel64_16k", "--db", "--db-no-top-db", "--dtype",
               "float16", "--workers", "0", "-q")
    assert r.exit_code == 3, r.output
    stored = load(db, "tone.wav")
    assert stored.stored_db is not None and stored.stored_db.kind == "power"
    with open_features(db) as ff:
        peak_db = float(ff["tone.wav"].max())  # decoded float32, in dB
    fig, summary = draw(stored)
    assert summary["scale"] == "dB" and summary["vmax"] == pytest.approx(peak_db)
    assert fig.axes[-1].get_ylabel() == "power (dB)"
    # the linear file's dB view agrees within float16's resolution of the dB values
    _, lin = draw(load(files["mel64_16k"], "tone.wav"))
    assert summary["vmax"] == pytest.approx(lin["vmax"], abs=0.05)
    _, back = draw(stored, db=False)  # --linear undoes the stored dB
    assert back["scale"] == "linear"
    assert back["vmax"] == pytest.approx(10 ** (lin["vmax"] / 10), rel=0.02)
    import matplotlib.pyplot as plt

    plt.close("all")
