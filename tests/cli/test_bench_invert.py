"""``nnaudio benchmark --invert``: the JSON report's schema (not its timings)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import invoke


def test_invert_benchmark_json_schema(tmp_path: Path) -> None:
    out = tmp_path / "inv.json"
    r = invoke(*["benchmark", "--invert", "--clips", "2", "--samples", "22050",
                                 "--sr", "22050", "--device", "cpu", "--json", str(out), "-q",
                                 "-n", "2"])
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
                         "cqt84_complex (1 iteration)", "cqt_invertible (1 iteration)",
                         "cqt84_complex (librosa)", "cqt_invertible (librosa)",
                         "mel128 (librosa)"}
    assert report["workload"]["repeat"] == 2
    assert rows["cqt84_complex (1 iteration)"]["iterations"] == 1
    assert rows["cqt84_complex"]["iterations"] is None  # the default (16)
    names = ("stft_complex", "cqt84_complex", "cqt_invertible", "mel128",
             "cqt_invertible (librosa)", "mel128 (librosa)")
    assert [rows[n]["method"] for n in names] == [
        "istft", "icqt", "icqt", "griffin-lim", "librosa.icqt",
        "librosa mel_to_stft + griffinlim"]
    assert report["workload"]["busy_neighbours"] == 0
    assert not any("slowdown" in row for row in rows.values())
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
    # both Griffin-Lims bring back the stored mel to within a few tens of per cent (2 clips
    # from random phases: which one is closer varies; over 8 clips 0.21 ours, 0.19 librosa)
    ours, theirs = rows["mel128"], rows["mel128 (librosa)"]
    assert 0 < ours["feature_convergence"] < 0.4 and 0 < theirs["feature_convergence"] < 0.4
    assert theirs["iterations"] == 32
    for name, peer in (("cqt84_complex", "cqt84_complex"),
                       ("cqt84_complex (1 iteration)", "cqt84_complex"),
                       ("cqt_invertible", "cqt_invertible"), ("mel128", "mel128")):
        peer_row = rows[f"{peer} (librosa)"]
        assert rows[name]["librosa_speedup"] == pytest.approx(
            peer_row["wall_seconds"] / rows[name]["wall_seconds"], rel=0.05, abs=0.02)


def test_invert_benchmark_busy_times_every_row_again(tmp_path: Path) -> None:
    """``--busy 1``: each row has its busy wall time, x real time and slowdown; the
    neighbour ran (CPU seconds > 0) and is gone afterwards."""
    import os

    out = tmp_path / "inv.json"
    r = invoke("benchmark", "--invert", "--clips", "1", "--samples", "11025", "--sr",
               "22050", "--device", "cpu", "--busy", "1", "--json", str(out), "-q", "-n", "1")
    assert r.exit_code == 0, r.stderr
    assert "slowdown" in r.stdout and "1 busy" in r.stdout
    report = json.loads(out.read_text())
    assert report["workload"]["busy_neighbours"] == 1
    rows = report["results"]
    assert len(rows) == 9
    for row in rows:
        assert row["busy_wall_seconds"] > 0 and row["busy_neighbour_cpu_seconds"] > 0
        # (the JSON's seconds are rounded to 1 ms: a few per cent on the fastest rows)
        assert row["slowdown"] == pytest.approx(
            row["busy_wall_seconds"] / row["wall_seconds"], rel=0.15)
        assert row["busy_x_real_time"] == pytest.approx(0.5 / row["busy_wall_seconds"],
                                                        rel=0.15)
    ours = {row["name"]: row for row in rows}["mel128"]
    assert "busy_librosa_speedup" in ours
    # the neighbours are stopped: no spinning child of this process is left
    assert not _spinning_children(os.getpid())


def _spinning_children(pid: int) -> list[int]:
    """Children of ``pid`` running the busy neighbours' loop (read from /proc)."""
    from nnaudio_cli.bench.busy import SPIN

    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd = (proc / "cmdline").read_bytes().decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid and SPIN in cmd:
            found.append(int(proc.name))
    return found


@pytest.mark.slow
def test_invert_benchmark_on_recorded_speech(tmp_path: Path) -> None:
    """``--input``: espeak-ng speech (skipped without it); the cqt_invertible preset gives
    >= 25 dB in its band on every clip (its docs/speed.md figure is the median over more clips)."""
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
