"""``nnaudio benchmark --invert``: the JSON report's schema (not its timings)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from nnaudio_cli.app import app


def test_invert_benchmark_json_schema(tmp_path: Path) -> None:
    out = tmp_path / "inv.json"
    r = CliRunner().invoke(app, ["benchmark", "--invert", "--clips", "2", "--samples", "22050",
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
    assert set(rows) == {"stft_complex", "cqt84_complex", "mel128"}
    assert [rows[n]["method"] for n in ("stft_complex", "cqt84_complex", "mel128")] == [
        "istft", "icqt", "griffin-lim"]
    for row in rows.values():
        assert row["written"] == 2 and row["failed"] == 0
        assert row["audio_seconds"] == 2.0
        assert row["wall_seconds"] > 0 and row["x_real_time"] > 0
        assert isinstance(row["snr_db"], float)
    assert rows["stft_complex"]["snr_db"] > 60  # exact inverse
    assert 0 < rows["mel128"]["spectral_convergence"] < 1
    assert rows["stft_complex"]["spectral_convergence"] is None
