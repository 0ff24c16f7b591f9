"""Nothing a user owns is destroyed: ``extract --resume/--overwrite`` and ``merge --overwrite``
replace only a recognisable nnaudio feature file; ``plot -o``, ``benchmark --json/--plot``
and ``export`` need ``--overwrite`` for an existing output and replace a symlink instead of
writing through it; a refused run leaves nothing behind; a killed ``invert``'s temporary file
is removed by the next ``invert`` into that folder.

Every check compares the user's file byte for byte before and after.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf
from support import assert_same, invoke, tone

from nnaudio_cli.plumbing.outputs import foreign_reason, remove_stale, temp_path

SR = 16000
ROOT = Path(__file__).resolve().parents[2]
EXTRACT = ["-c", "stft_complex", "--workers", "0", "--threads", "1", "-q"]


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> tuple[Path, Path]:
    """Two tones and their complex STFT output (an nnaudio file)."""
    root = tmp_path_factory.mktemp("own")
    src = root / "in"
    src.mkdir()
    sf.write(src / "a.wav", tone(SR, 0.5, 440.0), SR)
    sf.write(src / "b.wav", tone(SR, 0.3, 1000.0), SR)
    ours = root / "ours.h5"
    r = invoke("extract", src, ours, *EXTRACT)
    assert r.exit_code == 0, r.output
    return src, ours


def _fake_layout(path: Path) -> None:
    with h5py.File(path, "w") as h5:
        h5.attrs["layout_version"] = 2


def _fake_attrs(path: Path) -> None:
    """Every root attribute a real output has, but no /index and no feature groups."""
    with h5py.File(path, "w") as h5:
        h5.attrs.update({"layout_version": 2, "package_version": "0.1", "config_hash": "x",
                         "features": '["stft"]'})


def _other_hdf5(path: Path) -> None:
    with h5py.File(path, "w") as h5:
        h5["weights"] = np.arange(10.0)


FOREIGN = {
    "other_hdf5": _other_hdf5,
    "text": lambda p: p.write_text("my thesis, chapter 3\n"),
    "fake_layout": _fake_layout,
    "fake_attrs": _fake_attrs,
}


def one_error_line(r, code: int = 2) -> str:
    assert r.exit_code == code, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nnaudio: error:"), r.stderr
    return lines[0]


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- what is recognisably ours ------------------------------------------------------------


def test_foreign_reason_knows_our_files_and_no_others(made, tmp_path):
    _, ours = made
    assert foreign_reason(ours) is None
    for name, make in FOREIGN.items():
        make(tmp_path / name)
        assert foreign_reason(tmp_path / name), name
    with h5py.File(tmp_path / "short_index", "w") as h5, h5py.File(ours) as src:
        for k, v in src.attrs.items():
            h5.attrs[k] = v
        src.copy("features", h5)
        h5["index/key"] = ["a.wav"]  # two inputs in the offsets, one row in the index
        h5["index/status"] = ["ok"]
    assert "disagree" in foreign_reason(tmp_path / "short_index")
    assert foreign_reason(tmp_path) == "not a regular file"


# --- extract ------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--resume", "--overwrite"])
@pytest.mark.parametrize("kind", sorted(FOREIGN))
def test_extract_never_replaces_a_file_it_did_not_write(made, tmp_path, kind, flag):
    src, _ = made
    out = tmp_path / "feats.h5"
    FOREIGN[kind](out)
    before = out.read_bytes()
    r = invoke("extract", src, out, *EXTRACT, flag)
    line = one_error_line(r, 2)
    assert f"{flag}: {out} is not an nnaudio output" in line
    assert "delete it yourself or choose another output" in line
    assert out.read_bytes() == before
    assert listing(tmp_path) == ["feats.h5"]  # no work folder, lock or partial file


def test_resume_recomputes_an_output_of_ours_whose_checksum_fails(made, tmp_path):
    src, ours = made
    out = tmp_path / "feats.h5"
    out.write_bytes(ours.read_bytes())
    with h5py.File(out, "r+") as h5:
        h5.attrs["digest"] = "crc32:00000000:0"  # ours, but damaged
    r = invoke("extract", src, out, *EXTRACT, "--resume")
    assert r.exit_code == 0, r.output
    assert "failed its checksum" in r.stderr
    assert_same(ours, out)  # computed again: the same bytes as the first run
    assert listing(tmp_path) == ["feats.h5"]


def test_overwrite_replaces_an_output_of_ours(made, tmp_path):
    src, ours = made
    out = tmp_path / "feats.h5"
    out.write_bytes(ours.read_bytes())
    r = invoke("extract", src, out, *EXTRACT, "--overwrite")
    assert r.exit_code == 0, r.output
    assert_same(ours, out)


def test_a_refused_resume_leaves_no_work_folder(made, tmp_path):
    """--resume with other settings than the finished output's is refused before the work
    folder (and its lock) is made."""
    src, ours = made
    out = tmp_path / "feats.h5"
    out.write_bytes(ours.read_bytes())
    before = out.read_bytes()
    r = invoke("extract", src, out, "-c", "mel128", "--workers", "0", "-q", "--resume")
    line = one_error_line(r, 1)
    assert "was made with different settings" in line
    assert out.read_bytes() == before
    assert listing(tmp_path) == ["feats.h5"]


def test_merge_overwrite_never_replaces_a_file_it_did_not_write(made, tmp_path):
    src, _ = made
    for i in range(2):
        r = invoke("extract", src, tmp_path / "s.h5", *EXTRACT, "--shard", f"{i}/2")
        assert r.exit_code == 0, r.output
    out = tmp_path / "s.h5"
    out.write_text("precious\n")
    r = invoke("merge", "--expect", 2, out, "--overwrite")
    assert f"{out} is not an nnaudio output" in one_error_line(r, 2)
    assert out.read_text() == "precious\n"
    out.unlink()
    assert invoke("merge", "--expect", 2, out).exit_code == 0
    assert invoke("merge", "--expect", 2, out, "--overwrite").exit_code == 0  # ours


# --- plot, benchmark, export: --overwrite and symlinks ------------------------------------


def test_plot_needs_overwrite_and_never_writes_through_a_symlink(made, tmp_path):
    pytest.importorskip("matplotlib")
    _, ours = made
    precious = tmp_path / "precious.txt"
    precious.write_text("do not touch\n")
    link = tmp_path / "a.png"
    link.symlink_to(precious)
    r = invoke("plot", ours, "a.wav", "-o", link)
    assert "a.png exists; pass --overwrite" in one_error_line(r, 2)
    r = invoke("plot", ours, "a.wav", "-o", link, "--overwrite")
    assert r.exit_code == 0, r.output
    assert precious.read_text() == "do not touch\n"
    assert not link.is_symlink() and link.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    before = link.read_bytes()
    r = invoke("plot", ours, "a.wav", "-o", link)  # a plain existing file: refused too
    assert "pass --overwrite" in one_error_line(r, 2)
    assert link.read_bytes() == before
    assert listing(tmp_path) == ["a.png", "precious.txt"]


def test_benchmark_json_needs_overwrite_and_never_writes_through_a_symlink(tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_text("do not touch\n")
    link = tmp_path / "b.json"
    link.symlink_to(precious)
    tiny = ["-t", "stft", "--clips", "2", "--samples", "4096", "--against", "none",
            "--repeat", "1", "--threads", "1", "--device", "cpu", "-q"]
    r = invoke("benchmark", *tiny, "--json", link)
    assert "(--json); pass --overwrite" in one_error_line(r, 2)
    assert link.is_symlink() and precious.read_text() == "do not touch\n"
    r = invoke("benchmark", *tiny, "--json", link, "--overwrite")
    assert r.exit_code == 0, r.output
    assert precious.read_text() == "do not touch\n"
    assert not link.is_symlink() and link.read_text().startswith("{")
    assert listing(tmp_path) == ["b.json", "precious.txt"]


def test_a_failed_export_keeps_the_existing_file(tmp_path, monkeypatch):
    """An export that fails its check leaves the file it would replace as it was (today's
    code removed it)."""
    from nnaudio_cli import export

    out = tmp_path / "m.pt"
    out.write_bytes(b"an older front end")
    monkeypatch.setattr(export, "TOLERANCE", -1.0)  # every check fails
    r = invoke("export", "--config", "stft_complex", "-o", out, "--overwrite", "-q")
    assert "differs from eager" in one_error_line(r, 1)
    assert out.read_bytes() == b"an older front end"
    assert listing(tmp_path) == ["m.pt"]


# --- a killed invert ----------------------------------------------------------------------

WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np
    from pathlib import Path
    from nnaudio_cli.invert import run

    def blocks():
        yield np.zeros((1600, 1), np.float32)
        print("writing", flush=True)
        time.sleep(600)
        yield np.zeros((1600, 1), np.float32)

    run._write_atomic(Path(sys.argv[1]), blocks(), 16000, "wav", 1)
""")


def test_a_killed_invert_leaves_no_partial_file_behind(made, tmp_path):
    """SIGKILL an invert's writer in the middle of a file: its temporary file stays (nothing
    can remove it then), and the next invert into that folder removes it."""
    _, ours = made
    out_dir = tmp_path / "audio"
    out_dir.mkdir()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT),
                                                       os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(out_dir / "a.wav")],
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "writing"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    left = [p for p in out_dir.iterdir() if p.name.endswith(".partial") or ".partial." in p.name]
    assert len(left) == 1 and left[0].name.startswith(".nnaudio-"), listing(out_dir)
    t0 = time.monotonic()
    r = invoke("invert", ours, out_dir, "-q")
    assert r.exit_code == 0, r.output
    assert listing(out_dir) == ["a.wav", "b.wav"]
    assert time.monotonic() - t0 < 120  # a hang detector only


def test_remove_stale_keeps_a_live_process_file(tmp_path):
    mine = temp_path(tmp_path / "x.wav")  # this (live) process's
    mine.write_bytes(b"being written")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    gone = tmp_path / f".nnaudio-{int(dead.stdout)}.partial.wav"
    gone.write_bytes(b"left by a killed run")
    old = tmp_path / f".nnaudio-invert-{int(dead.stdout)}.partial"  # earlier versions' name
    old.write_bytes(b"left by a killed run")
    (tmp_path / "user.partial").write_bytes(b"not ours")
    assert remove_stale(tmp_path) == 2
    assert listing(tmp_path) == sorted([mine.name, "user.partial"])
