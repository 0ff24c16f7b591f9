"""nnaudio info --key: one input's index row, as a table and as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf
from support import invoke, tone

from nnaudio_cli.featurefile.reader import open_features

SR = 16000


@pytest.fixture(scope="module")
def feats(tmp_path_factory) -> Path:
    """mel64_16k, --keep-channels: a 0.5 s mono tone, a 1 s stereo tone, an empty file."""
    root = tmp_path_factory.mktemp("infokey")
    src = root / "audio"
    (src / "sub").mkdir(parents=True)
    sf.write(src / "a.wav", tone(SR, 0.5), SR)
    sf.write(src / "sub" / "st.wav", tone(SR, 1.0, channels=2), SR)
    (src / "empty.wav").write_bytes(b"")
    out = root / "f.h5"
    r = invoke("extract", src, out, "--config", "mel64_16k", "--keep-channels", "--workers", "0",
               "-q")
    assert r.exit_code == 3, r.output
    return out


def test_json_row_matches_the_file(feats):
    r = invoke("info", feats, "--key", "sub/st.wav", "--json")
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout)
    assert list(row)[:3] == ["path", "key", "status"]
    assert row["status"] == "ok" and row["reason"] == ""
    assert row["sr"] == SR and row["samples"] == SR and row["duration"] == pytest.approx(1.0)
    assert row["channels"] == 2 and row["stored_channels"] == 2
    with open_features(feats) as ff:
        x = ff["sub/st.wav"]
        i = list(ff.index["key"]).index("sub/st.wav")
        assert row["offset"] == ff.offsets[i] and row["rows"] == ff.offsets[i + 1] - ff.offsets[i]
    assert row["shape"] == list(x.shape) == [101, 2, 64] and row["frames"] == 101
    assert row["features"] == [{"name": "mel64_16k", "frames": 101,
                                "dataset": "/features/mel64_16k/data", "offset": row["offset"],
                                "rows": row["rows"], "shape": row["shape"]}]
    src = feats.parent / "audio" / "sub" / "st.wav"
    assert row["size"] == src.stat().st_size
    assert row["mtime"] == pytest.approx(src.stat().st_mtime)
    assert row["mtime_utc"].endswith("+00:00")


def test_table_shows_a_failed_row_with_its_reason(feats):
    r = invoke("info", feats, "--key", "empty.wav")
    assert r.exit_code == 0, r.output
    text = " ".join(r.stdout.split())
    assert "status failed (empty file)" in text
    assert "frames 0" in text and "shape -" in text
    row = json.loads(invoke("info", feats, "-k", "empty.wav", "--json").stdout)
    assert row["status"] == "failed" and row["reason"] == "empty file"
    assert row["shape"] is None and row["rows"] == 0 and row["samples"] == 0


def test_ok_row_table(feats):
    r = invoke("info", feats, "--key", "a.wav")
    assert r.exit_code == 0, r.output
    text = " ".join(r.stdout.split())
    for part in ("status ok", "sample rate 16000 Hz", "samples 8000 per channel",
                 "duration 0.500 s", "channels 1 (1 stored)",
                 "mel64_16k frames 51, shape (51, 1, 64), rows 0..51 of /features/mel64_16k/data"):
        assert part in text, part


def test_unknown_key_is_one_usage_line_with_did_you_mean(feats):
    r = invoke("info", feats, "--key", "sub/st.wv")
    assert r.exit_code == 2
    assert r.stderr.splitlines() == [
        f"nnaudio: error: no input sub/st.wv in {feats}; did you mean 'sub/st.wav'?"
    ]


def test_several_features_show_one_line_each_or_the_one_asked(tmp_path):
    src = tmp_path / "audio"
    src.mkdir()
    sf.write(src / "a.wav", tone(22050, 0.5), 22050)
    out = tmp_path / "three.h5"
    r = invoke("extract", src, out, "-c", "mel128", "-c", "cqt84", "-c", "mfcc",
               "--workers", "0", "-q")
    assert r.exit_code == 0, r.output
    row = json.loads(invoke("info", out, "--key", "a.wav", "--json").stdout)
    assert [f["name"] for f in row["features"]] == ["mel128", "cqt84", "mfcc"]
    assert [f["shape"] for f in row["features"]] == [[22, 128], [22, 84], [22, 20]]
    assert "shape" not in row  # several features: no top-level copy
    text = " ".join(invoke("info", out, "--key", "a.wav").stdout.split())
    for name, bins in (("mel128", 128), ("cqt84", 84), ("mfcc", 20)):
        assert f"{name} frames 22, shape (22, {bins}), rows 0..22 of /features/{name}/data" \
            in text
    one = json.loads(invoke("info", out, "-k", "a.wav", "--feature", "cqt84", "--json").stdout)
    assert [f["name"] for f in one["features"]] == ["cqt84"] and one["shape"] == [22, 84]
    r = invoke("info", out, "-k", "a.wav", "--feature", "cqt85")
    assert r.exit_code == 2
    assert r.stderr.splitlines() == [f"nnaudio: error: {out} has no feature 'cqt85'; choose "
                                     "--feature from: mel128, cqt84, mfcc"]
