"""``nnaudio benchmark`` through the real Typer app on tiny workloads (no timing assertions)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from support import invoke

from nnaudio_cli.bench import machine, matrix, peers, transforms, workload

TINY = ["--clips", "4", "--samples", "8000", "--repeat", "1", "--quiet", "--device", "cpu"]
RESULT_KEYS = {
    "transform", "impl", "detail", "device", "build_seconds", "warmup_seconds", "seconds",
    "seconds_all", "clips_per_second", "audio_seconds_per_second", "peak_rss_mb",
    "rss_delta_mb", "device_peak_mb", "ours_seconds", "speedup_vs_ours",
}
MACHINE_KEYS = {
    "cpu_model", "cores", "gpu", "torch", "numpy", "librosa", "nnaudio2", "python",
    "platform", "git_commit", "threads",
}


def run(args: list) -> object:
    return invoke("benchmark", *args)


def one_line_error(r, code: int, *needles: str) -> None:
    assert r.exit_code == code, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nnaudio: error:"), r.stderr
    for n in needles:
        assert n in lines[0]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    r = run([*TINY, "--repeat", "3", "--transform", "stft,mel,cqt1992v2", "--json", out])
    assert r.exit_code == 0, r.stderr
    assert "speedup" in r.stdout  # the table
    return json.loads(out.read_text())


def test_json_schema(report):
    assert report["schema_version"] == workload.SCHEMA_VERSION
    assert MACHINE_KEYS <= set(report["machine"])
    assert report["machine"]["threads"]["torch_intraop"] >= 1
    wl = report["workload"]
    assert (wl["clips"], wl["samples"], wl["sr"], wl["repeat"]) == (4, 8000, 44100.0, 3)
    assert (wl["n_fft"], wl["hop_length"], wl["n_mels"], wl["n_bins"]) == (2048, 512, 128, 84)
    assert wl["source"] == "synthetic" and wl["memory_method"]
    assert "peer seconds / nnaudio seconds" in report["speedup_definition"]
    assert report["pipeline"] is None
    for row in report["results"]:
        assert RESULT_KEYS <= set(row), RESULT_KEYS - set(row)
        assert len(row["seconds_all"]) == 3  # the last --repeat wins
        assert row["seconds"] == sorted(row["seconds_all"])[1]  # the median of three
        assert row["clips_per_second"] == pytest.approx(4 / row["seconds"])
        audio_rate = wl["audio_seconds"] / row["seconds"]
        assert row["audio_seconds_per_second"] == pytest.approx(audio_rate)
    impls = {(r["transform"], r["impl"]) for r in report["results"]}
    for t in ("stft", "mel", "cqt1992v2"):
        assert (t, "nnaudio") in impls
    assert ("stft", "torch.stft") in impls and ("mel", "torch.stft") in impls
    # torch has no CQT: listed as skipped, without an install hint
    assert {"transform": "cqt1992v2", "impl": "torch.stft",
            "reason": "no plain torch equivalent", "install": None} in report["skipped"]


def test_ratios_come_from_the_same_run(report):
    rows = report["results"]
    for t in {r["transform"] for r in rows}:
        ours = [r for r in rows if r["transform"] == t and r["impl"] == "nnaudio"]
        assert len(ours) == 1
        for r in (r for r in rows if r["transform"] == t):
            assert r["ours_seconds"] == ours[0]["seconds"]
            assert r["speedup_vs_ours"] == pytest.approx(r["seconds"] / ours[0]["seconds"])
    installed = [p for p in ("librosa", "nnaudio2") if peers.peer_missing(p) is None]
    for p in installed:
        assert any(r["impl"] == peers.PEER_LABELS[p] for r in rows)


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--transform", "stft,bogus"], ["unknown transform", "'bogus'", "stft"]),
        (["--against", "essentia"], ["unknown peer", "'essentia'", "librosa"]),
        (["--input", "/no/such/dir"], ["--input", "/no/such/dir"]),
        (["--device", "tpu"], ["--device", "tpu"]),
    ],
)
def test_usage_errors_are_one_line_exit_2(args, needles):
    one_line_error(run([*TINY, *args]), 2, *needles)


def test_missing_peer_is_skipped_with_install_hint(tmp_path, monkeypatch):
    real = peers.peer_missing
    monkeypatch.setattr(
        peers, "peer_missing", lambda p: "nnAudio2 is not installed" if p == "nnaudio2" else real(p)
    )
    out = tmp_path / "b.json"
    r = run([*TINY, "--transform", "stft", "--against", "nnaudio2,torch", "--json", out])
    assert r.exit_code == 0, r.stderr
    rep = json.loads(out.read_text())
    skip = [s for s in rep["skipped"] if s["impl"] == "nnAudio2"]
    assert len(skip) == 1 and "not installed" in skip[0]["reason"]
    assert "pip install 'nnaudio-cli[bench]'" in skip[0]["install"]
    assert {r["impl"] for r in rep["results"]} == {"nnaudio", "torch.stft"}
    assert "nnaudio-cli[bench]" in r.stdout  # also on the terminal


def _folder(root: Path, n: int = 3, short: bool = True) -> Path:
    root.mkdir()
    rng = np.random.default_rng(1)
    for i in range(n):
        y = 0.3 * np.sin(2 * np.pi * 220 * (i + 1) * np.arange(30000) / 22050)
        y = y + 0.01 * rng.standard_normal(30000)
        sf.write(root / f"f{i}.wav", y.astype(np.float32), 22050)
    if short:  # too short for a clip: skipped
        sf.write(root / "short.wav", np.zeros(100, np.float32), 22050)
    (root / "readme.txt").write_text("not audio")
    return root


def test_input_folder(tmp_path):
    folder = _folder(tmp_path / "audio")
    out = tmp_path / "b.json"
    r = run([*TINY, "--input", folder, "--transform", "stft", "--against", "none",
             "--json", out])
    assert r.exit_code == 0, r.stderr
    wl = json.loads(out.read_text())["workload"]
    assert wl["source"] == "folder" and wl["offset"] == workload.OFFSET
    assert (wl["clips"], wl["files_used"], wl["files_too_short"]) == (3, 3, 1)


def test_pipeline_on_a_folder(tmp_path):
    folder = _folder(tmp_path / "audio", short=False)
    out = tmp_path / "p.json"
    r = run([*TINY, "--pipeline", "--input", folder, "--presets", "mel128,stft", "--workers",
             "1", "--json", out])
    assert r.exit_code == 0, r.stderr
    p = json.loads(out.read_text())["pipeline"]
    assert (p["files"], p["workers"]) == (3, 1) and p["threads"] >= 1
    assert [row["preset"] for row in p["results"]] == ["mel128", "stft"]
    for row in p["results"]:
        for col in ("decode_seconds", "transform_seconds", "extract_seconds",
                    "command_seconds", "librosa_loop_seconds"):
            assert row[col] > 0, col
        assert row["command_seconds"] > row["extract_seconds"]  # start-up is outside
        parts = max(row["decode_seconds"] / 1, row["transform_seconds"])
        assert row["own_over_parts"] == pytest.approx(row["extract_seconds"] / parts)
        assert row["librosa_over_own"] == pytest.approx(
            row["librosa_loop_seconds"] / row["extract_seconds"])
        assert row["fixed_cost_seconds"] == pytest.approx(
            row["command_seconds"] - row["extract_seconds"])
        assert row["torch_import_seconds"] > 0
        assert row["start_over_import_seconds"] == pytest.approx(
            row["fixed_cost_seconds"] - row["torch_import_seconds"])
    assert "librosa loop" in r.stdout and "own/parts" in r.stdout
    r = run([*TINY, "--pipeline", "--presets", "mel128,nope"])
    assert r.exit_code == 2 and "unknown preset 'nope'" in r.stderr


def test_pipeline_one_pass_against_separate_runs(tmp_path):
    # three features in one extract pass vs one run each, and the decode time (no timings
    # asserted: only that every figure is there, positive and consistent)
    out = tmp_path / "one.json"
    r = run(["--clips", "3", "--samples", "6000", "--repeat", "1", "--device", "cpu",
             "--quiet", "--pipeline", "-c", "mel128", "-c", "cqt84", "-c", "mfcc",
             "--workers", "1", "--json", out])
    assert r.exit_code == 0, r.stderr
    p = json.loads(out.read_text())["pipeline"]
    assert p["results"] == [] and p["files"] == 3 and p["workers"] == 1
    o = p["one_pass"]
    assert o["features"] == o["one_pass_features"] == ["mel128", "cqt84", "mfcc"]
    assert o["rates"] == [22050.0] and o["decodes_skipped"] == 2
    for key in ("decode_seconds", "one_pass_seconds", "one_pass_command_seconds",
                "separate_sum_seconds", "separate_sum_command_seconds", "ratio",
                "ratio_command"):
        assert o[key] > 0, key
    assert list(o["separate_seconds"]) == ["mel128", "cqt84", "mfcc"]
    assert all(v > 0 for v in o["separate_seconds"].values())
    assert o["separate_sum_seconds"] == pytest.approx(sum(o["separate_seconds"].values()))
    assert o["ratio"] == pytest.approx(o["separate_sum_seconds"] / o["one_pass_seconds"])
    assert o["saved_seconds"] == pytest.approx(
        o["separate_sum_seconds"] - o["one_pass_seconds"])
    assert o["saved_ge_decode"] == (o["saved_seconds"] >= o["decode_seconds"])
    assert o["saved_ge_skipped_decodes"] == (o["saved_seconds"] >= 2 * o["decode_seconds"])
    for key in ("decode_cpu_seconds", "one_pass_cpu_seconds", "separate_sum_cpu_seconds"):
        assert o[key] > 0, key
    assert o["separate_sum_cpu_seconds"] == pytest.approx(sum(o["separate_cpu_seconds"].values()))
    assert o["saved_cpu_seconds"] == pytest.approx(
        o["separate_sum_cpu_seconds"] - o["one_pass_cpu_seconds"])
    text = " ".join(r.stdout.split())
    assert "separate / one pass:" in text and "decode-only" in text and "saved" in text
    assert "one pass (mel128, cqt84, mfcc)" in text


@pytest.mark.parametrize(
    "args, needles",
    [
        (["-c", "mel128", "-c", "cqt84"], ["--config", "--pipeline"]),
        (["--pipeline", "-c", "mel128", "-c", "cqt84", "--presets", "stft"],
         ["--presets", "--config"]),
        (["--pipeline", "-c", "mel128", "-c", "nope"], ["nope"]),
        (["--pipeline", "-c", "mel128", "-c", "mel128"], ["mel128", "twice"]),
    ],
)
def test_config_usage_errors(args, needles):
    one_line_error(run([*TINY, *args]), 2, *needles)


def test_one_config_is_the_per_preset_pipeline():
    # one -c runs the per-preset measurement, as --presets with that preset did
    from nnaudio_cli.commands.benchmark import _pipeline_presets

    assert _pipeline_presets(True, None, ["cqt84"]) == (["cqt84"], False)
    assert _pipeline_presets(True, "mel128,stft", []) == (["mel128", "stft"], False)
    assert _pipeline_presets(True, None, []) == (list(workload.PRESETS), False)
    assert _pipeline_presets(True, None, ["mel128", "mfcc"]) == (["mel128", "mfcc"], True)


def test_pipeline_generates_wavs(tmp_path):
    written = tmp_path / "w"
    workload.write_wavs(workload.piano_clips(2, 1000, seed=3), 44100, written)
    got = sorted(written.iterdir())
    assert [p.name for p in got] == ["clip_00000.wav", "clip_00001.wav"]
    assert sf.info(str(got[0])).frames == 1000
    clips = workload.piano_clips(2, 1000, seed=3)
    for path, clip in zip(got, clips, strict=True):  # within one 16-bit step
        back, sr = sf.read(str(path), dtype="float32")
        assert sr == 44100
        np.testing.assert_allclose(back, clip, rtol=0, atol=1.0 / 32768)


@pytest.mark.skipif(find_spec("matplotlib") is None, reason="matplotlib not installed")
def test_plot(tmp_path, report):
    png = tmp_path / "b.png"
    transforms.plot(report, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = run([*TINY, "--transform", "stft", "--against", "torch", "--plot", png])
    one_line_error(r, 2, "b.png exists (--plot); pass --overwrite")  # an existing file
    r = run([*TINY, "--transform", "stft", "--against", "torch", "--plot", png, "--overwrite"])
    assert r.exit_code == 0, r.stderr
    assert png.stat().st_size > 0


# --- --matrix ------------------------------------------------------------------------------


def test_matrix_runs_every_cell_and_reports_builds(tmp_path, monkeypatch):
    # two tiny workloads stand in for the four real ones (same code path, seconds not minutes)
    monkeypatch.setattr(workload, "WORKLOADS", [("tiny 16k", 16000.0, 8000, 2, 2),
                                          ("tiny 22k", 22050.0, 6000, 1, 2)])
    out = tmp_path / "matrix.json"
    r = run(["--matrix", "--against", "torch", "--repeat", "1", "--quiet", "--json", out])
    assert r.exit_code == 0, r.stderr
    rep = json.loads(out.read_text())
    cells = rep["matrix"]["cells"]
    assert len(cells) == 2 * len(workload.MATRIX_TRANSFORMS)
    for cell in cells:
        impls = {row["impl"] for row in cell["rows"]}
        assert peers.OURS in impls
        assert ("torch.stft" in impls) == (cell["transform"] in ("stft", "mel"))
        for row in cell["rows"]:
            assert row["seconds"] > 0 and row["speedup_vs_ours"] > 0
    presets = {b["preset"] for b in rep["matrix"]["preset_builds"]}
    assert {"cqt84", "vqt", "stft", "mel128", "mfcc"} <= presets
    assert rep["summary"]["cells"] == len(cells)
    assert "| workload | transform | ours |" in r.stdout


def test_preset_kernel_builds_end():
    """Every preset's kernels build (a hang check: well under 1 s each on an idle machine;
    the figures are the benchmark's to report, not a test's to bound)."""
    for b in matrix.preset_build_times(repeat=3):
        assert 0 < b["build_seconds"] < 30.0, b


def test_pipeline_formats_decode_throughput(tmp_path):
    pytest.importorskip("av")
    out = tmp_path / "f.json"
    r = run([*TINY, "--pipeline", "--presets", "stft", "--against", "none", "--workers", "1",
             "--formats", "flac,mp3,m4a,opus,webm", "--json", out])
    assert r.exit_code == 0, r.stderr
    section = json.loads(out.read_text())["pipeline"]["formats"]
    rows = {row["format"]: row for row in section["results"]}
    assert list(rows) == ["flac", "mp3", "m4a", "opus", "webm"]
    decoders = {f: row["decoder"] for f, row in rows.items()}
    assert decoders == {"flac": "libsndfile", "mp3": "libsndfile", "m4a": "ffmpeg (PyAV)",
                        "opus": "libsndfile", "webm": "ffmpeg (PyAV)"}
    for row in rows.values():
        assert row["files"] == 4 and row["bytes"] > 0 and row["cpu_seconds"] > 0
        # the same 4 x 8000 samples at 44.1 kHz, give or take the codec's delay/padding
        assert row["audio_seconds"] == pytest.approx(4 * 8000 / 44100, rel=0.1)
        assert row["audio_seconds_per_cpu_second"] == pytest.approx(
            row["audio_seconds"] / row["cpu_seconds"], rel=1e-3)  # audio_seconds is rounded
    assert rows["flac"]["vs_first"] == 1.0
    assert "decode throughput per format" in r.stdout and "audio s / CPU s" in r.stdout


@pytest.mark.parametrize(("args", "needle"), [
    (["--formats", "flac"], "--pipeline"),
    (["--pipeline", "--formats", "flac,nope"], "'nope'"),
])
def test_formats_flag_errors(args, needle):
    r = run([*TINY, *args])
    assert r.exit_code == 2 and needle in r.output, r.output

# --- defaults, interrupts, a busy machine, a missing librosa ---------------------------------

QUICK = ["--repeat", "1", "--quiet", "--device", "cpu", "--against", "none"]


def test_without_clips_the_run_is_short_and_full_is_the_paper_protocol(tmp_path, monkeypatch):
    out = tmp_path / "b.json"
    r = run([*QUICK, "--transform", "stft", "--json", out])  # no --clips
    assert r.exit_code == 0, r.stderr
    wl = json.loads(out.read_text())["workload"]
    assert (wl["clips"], wl["samples"], wl["sr"]) == (workload.QUICK_CLIPS, 80000, 44100.0)
    assert workload.QUICK_CLIPS == 16
    asked = {}
    monkeypatch.setattr(transforms, "transforms_report",
                        lambda *a, **k: asked.setdefault("clips", a[3]))
    assert run([*QUICK, "--full"]).exit_code == 0
    assert asked["clips"] == workload.N_CLIPS == 1770
    asked.clear()
    assert run([*QUICK, "--pipeline"]).exit_code == 0
    assert asked["clips"] == workload.QUICK_CLIPS


@pytest.mark.parametrize("args, needle", [
    (["--full", "--clips", "8"], "give --full or --clips"),
    (["--full", "--matrix"], "cannot be combined"),
    (["--full", "--invert"], "cannot be combined"),
])
def test_full_with_a_count_of_its_own_is_a_usage_error(args, needle):
    one_line_error(run([*QUICK, *args]), 2, needle)


def _with_site(tmp_path: Path, code: str) -> dict:
    """The environment of a subprocess that runs ``code`` at start-up (a sitecustomize)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(code)
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(site), *filter(None, [os.environ.get("PYTHONPATH")])])}


# the second measurement (mel) waits, so that the signal surely lands in it
SLOW_MEL = """
import time
import nnaudio_cli.bench.measure as m
_measure = m.measure
def measure(c, w, staged):
    if c.transform == "mel":
        time.sleep(120)
    return _measure(c, w, staged)
m.measure = measure
"""


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["INT", "TERM"])
def test_a_signal_prints_the_finished_rows_and_exits_130_or_143(tmp_path, signum, code):
    out = tmp_path / "b.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "nnaudio_cli", "benchmark", "-t", "stft,mel", "--against",
         "none", "--clips", "2", "--samples", "8000", "--repeat", "1", "--device", "cpu",
         "--json", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=_with_site(tmp_path, SLOW_MEL))
    seen = []
    for line in proc.stderr:  # the stft row is finished once mel starts
        seen.append(line)
        if "mel nnaudio: building" in line:
            break
    else:
        pytest.fail("".join(seen))
    proc.send_signal(signum)
    stdout, rest = proc.communicate(timeout=60)
    err = "".join(seen) + rest
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert err.splitlines()[-1] == ("nnaudio: error: interrupted after 1 measurement(s): the "
                                    "table above shows them (no JSON written)")
    rows = [[c.strip() for c in ln.split("│")[1:4]] for ln in stdout.splitlines()
            if "(ours)" in ln]
    assert len(rows) == 1 and rows[0][:2] == ["stft", "nnaudio"], stdout
    assert "2 clips x 8000 samples" in stdout
    assert not out.exists()


@pytest.mark.parametrize("load, warned", [(99.0, True), (0.5, False)])
def test_a_load_above_the_cores_is_one_warning_line(monkeypatch, load, warned):
    monkeypatch.setattr(machine.os, "getloadavg", lambda: (load, load, load))
    r = run(["--clips", "2", "--samples", "8000", "--repeat", "1", "--device", "cpu",
             "--transform", "stft", "--against", "none"])
    assert r.exit_code == 0, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("nnaudio: warning:")]
    cores = machine.usable_cores()
    assert lines == ([f"nnaudio: warning: load average 99.0 is above the {cores} usable "
                      "core(s): other processes compete for the CPU, so the times are slower "
                      "and noisier than on an idle machine"] if warned else [])
    quiet = run(["--clips", "2", "--samples", "8000", "--repeat", "1", "--device", "cpu",
                 "--transform", "stft", "--against", "none", "-q"])
    assert "warning" not in quiet.stderr


def test_pipeline_without_librosa_skips_the_librosa_loop(tmp_path):
    # librosa not importable, as where it is not installed
    env = _with_site(tmp_path, "import sys\nsys.modules['librosa'] = None\n")
    out = tmp_path / "p.json"
    r = subprocess.run(
        [sys.executable, "-m", "nnaudio_cli", "benchmark", "--pipeline", "--clips", "2",
         "--samples", "8000", "--repeat", "1", "--presets", "mel128", "--workers", "0",
         "--device", "cpu", "--json", str(out)],
        capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    notes = [ln for ln in r.stderr.splitlines() if "skipping" in ln or "Error" in ln]
    assert notes == ["benchmark: skipping librosa: librosa is not installed (pip install "
                     "'nnaudio-cli[bench]'  # or: pip install librosa==0.11.0)"], r.stderr
    row = json.loads(out.read_text())["pipeline"]["results"][0]
    assert row["preset"] == "mel128" and row["extract_seconds"] > 0
    assert row["librosa_loop_seconds"] is None and row["librosa_over_own"] is None


def _gone(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_busy_reports_idle_and_busy_and_stops_the_neighbours(tmp_path):
    out = tmp_path / "busy.json"
    r = run([*TINY, "--transform", "stft", "--against", "torch", "--busy", "2",
             "--json", out])
    assert r.exit_code == 0, r.stderr
    assert "idle vs 2 busy neighbour(s)" in r.stdout
    busy = json.loads(out.read_text())["busy"]
    assert busy["neighbours"] == 2 and len(busy["neighbour_pids"]) == 2
    assert busy["neighbour_cpu_seconds"] > 0  # they ran
    assert all(_gone(pid) for pid in busy["neighbour_pids"])  # and are gone
    rows = {(row["transform"], row["impl"]): row for row in busy["side_by_side"]}
    assert set(rows) == {("stft", peers.OURS), ("stft", "torch.stft")}
    for row in rows.values():
        assert row["idle_seconds"] > 0 and row["busy_seconds"] > 0
        assert row["slowdown"] == pytest.approx(row["busy_seconds"] / row["idle_seconds"])
    ours = rows[("stft", peers.OURS)]["busy_seconds"]
    torch_row = rows[("stft", "torch.stft")]
    assert torch_row["busy_speedup_vs_ours"] == pytest.approx(torch_row["busy_seconds"] / ours)


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_busy_neighbours_stop_on_error_and_interrupt(error):
    from nnaudio_cli.bench import busy

    with pytest.raises(error):
        with busy.neighbours(2, settle=0.05) as nb:
            pids = list(nb.pids)
            assert not any(_gone(pid) for pid in pids)
            raise error()
    assert all(_gone(pid) for pid in pids)


@pytest.mark.parametrize("mode", ["--pipeline", "--matrix", "--frontends"])
def test_busy_is_for_the_transform_and_invert_benchmarks(mode):
    one_line_error(run([*TINY, "--busy", "1", mode]), 2, "--busy", mode)
