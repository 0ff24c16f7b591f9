"""``nnaudio benchmark --invert``: the JSON report's schema (not its timings)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import invoke


def test_invert_benchmark_json_schema(tmp_path: Path) -> None:
    out = tmp_path / "inv.json"
    r = invoke(*["benchmark", "--invert", "--clips", "2", "--samples", "22050",
                                 "--sr", "22050", "--device", "cpu", "--json", str(out), "-q"])
    assert r.exit_code == 0, r.stderr
    report = json.loads(out.read_text())
    assert report["schema_version"] == 1 and report["mode"] == "invert"
    assert report["workload"]["clips"] == 2 and report["workload"]["audio_seconds_in"] == 2.0
    assert {"cpu_model", "cores", "torch"} <= set(report["machine"])
    load = report["load_average"]
    assert set(load) == {"start", "end"}
    assert all(v is None or v >= 0 for v in load.values())
    rows = {r["name"]: r for r in report["results"]}
    assert set(rows) == {"stft_complex", "cqt84_complex", "cqt_invertible", "mel128",
                         "cqt84_complex (librosa)", "cqt_invertible (librosa)"}
    names = ("stft_complex", "cqt84_complex", "cqt_invertible", "mel128",
             "cqt_invertible (librosa)")
    assert [rows[n]["method"] for n in names] == [
        "istft", "icqt", "icqt", "griffin-lim", "librosa.icqt"]
    assert rows["cqt_invertible"]["iterations"] == 4
    assert rows["cqt_invertible"]["band_hz"] == pytest.approx([32.7, 9955.1], rel=1e-4)
    for row in rows.values():
        assert row["snr_db_min"] <= row["snr_db_median"]
        assert row["x_real_time_cpu"] > 0
    # the preset meant for inversion comes back in its band; cqt84's hop 512 does not
    assert rows["cqt_invertible"]["snr_in_band_db_median"] >= 25
    assert rows["cqt84_complex"]["snr_in_band_db_median"] < 20
    assert rows["stft_complex"]["band_hz"] is None
    for row in (rows[n] for n in ("stft_complex", "cqt84_complex", "cqt_invertible", "mel128")):
        assert row["written"] == 2 and row["failed"] == 0
        assert row["audio_seconds"] == 2.0
        assert row["wall_seconds"] > 0 and row["x_real_time"] > 0
        assert isinstance(row["snr_db"], float)
    assert rows["stft_complex"]["snr_db"] > 60  # exact inverse
    assert 0 < rows["mel128"]["spectral_convergence"] < 1
    assert rows["stft_complex"]["spectral_convergence"] is None


@pytest.mark.slow
def test_invert_benchmark_on_recorded_speech(tmp_path: Path) -> None:
    """``--input``: espeak-ng speech (skipped without it); the cqt_invertible preset gives
    >= 25 dB in its band on every clip (its README figure is the median over more clips)."""
    import signals

    speech = tmp_path / "speech"
    speech.mkdir()
    for i, text in enumerate(("The quick brown fox jumps over the lazy dog, twice.",
                              "Please call Stella and ask her to bring these things.")):
        if signals.espeak_speech(speech, text=text, max_seconds=10) is None:
            pytest.skip("espeak-ng is not installed")
        (speech / "espeak.wav").rename(speech / f"s{i}.wav")
    out = tmp_path / "inv.json"
    r = invoke("benchmark", "--invert", "--input", str(speech), "--samples", "22050",
               "--sr", "22050", "--device", "cpu", "--json", str(out), "-q")
    assert r.exit_code == 0, r.stderr
    report = json.loads(out.read_text())
    assert report["workload"]["source"]["kind"] == "folder"
    assert report["workload"]["source"]["files_used"] == 2
    rows = {r["name"]: r for r in report["results"]}
    assert rows["cqt_invertible"]["snr_in_band_db_min"] >= 25
