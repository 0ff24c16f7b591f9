"""Crash safety and ``--resume``: SIGKILL at random moments, Ctrl-C, full/read-only disks.

Every test runs ``nnaudio extract`` as a real subprocess and compares the final file with a
clean run array by array (``np.array_equal``: the batch plan is fixed by the inputs and
the settings, so every input is computed in the same batch in every run, see
``nnaudio_cli/extract/batch.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from support import CMD, assert_same, make_inputs, run_extract, wait_ended, wait_for_part

from nnaudio_cli.extract.parts import parts_dir
from nnaudio_cli.plumbing.outputs import partial_path

ARGS = ["-c", "mel128", "--batch-seconds", "4", "--workers", "1", "-q"]


def extract(src: Path, out: Path, *extra: str, timeout: float = 300):
    return run_extract(src, out, *ARGS, *extra, timeout=timeout)


def check_intact(out: Path, clean: Path) -> None:
    """After a kill, OUTPUT is either absent or a complete file equal to the clean one."""
    if out.exists():
        assert_same(clean, out)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, float]:
    """Inputs, a clean run's output and its wall time."""
    root = tmp_path_factory.mktemp("resume")
    src = make_inputs(root / "in")
    t0 = time.perf_counter()
    r = extract(src, root / "clean.h5")
    assert r.returncode == 0, r.stderr
    return src, root / "clean.h5", time.perf_counter() - t0


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume_equals_clean_run(data, tmp_path):
    src, clean, wall = data
    out = tmp_path / "out.h5"
    rng = random.Random(1234)
    kills: list[float] = []
    finished = 0
    resume = False
    while len(kills) < 10:
        args = [*CMD, str(src), str(out), *ARGS, "--json"]
        args += ["--resume"] if resume else ["--overwrite"]
        # output to files, not pipes: processes the killed run leaves behind (the
        # multiprocessing forkserver) would hold a pipe open and block communicate()
        log_out, log_err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
        with open(log_out, "w") as fo, open(log_err, "w") as fe:
            proc = subprocess.Popen(args, stdout=fo, stderr=fe, start_new_session=True)
            delay = rng.uniform(0.2, max(0.5, 0.8 * wall))
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)  # the main process only, as a kill -9
            proc.wait(timeout=60)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # then whatever it left in its session
        err = log_err.read_text()
        if proc.returncode == -signal.SIGKILL:
            kills.append(round(delay, 2))
            check_intact(out, clean)
            resume = True
        else:  # finished before the kill: check it, then start a fresh run
            assert proc.returncode == 0, err
            assert_same(clean, out)
            finished += 1
            resume = False
    r = extract(src, out, "--resume", "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["resumed_files"] + summary["computed_files"] == summary["files"]
    assert_same(clean, out)
    assert not parts_dir(out).exists() and not partial_path(out).exists()
    print(f"kill points (s): {kills}; runs that finished first: {finished}")


def test_resume_skips_done_inputs_and_recomputes_changed(data, tmp_path):
    src0, clean, _ = data
    src = make_inputs(tmp_path / "in", n=12, seed=5)
    out = tmp_path / "o.h5"
    r = extract(src, out, "--json")
    assert r.returncode == 0
    # nothing to do: a finished output with --resume takes every input from it
    r = extract(src, out, "--resume", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["computed_files"] == 0
    # change one input (size and mtime), add one: only those two are computed
    x = np.zeros(30000, np.float32)
    x[::50] = 0.5
    sf.write(src / "clip003.wav", x, 22050)
    sf.write(src / "zz_new.wav", x, 16000)
    r = extract(src, out, "--resume", "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["computed_files"] == 2 and s["resumed_files"] == 11, s
    fresh = tmp_path / "fresh.h5"
    assert extract(src, fresh).returncode == 0
    assert_same(fresh, out)


def test_existing_output_and_leftover_parts_refused(data, tmp_path):
    src, clean, _ = data
    r = extract(src, clean)
    assert r.returncode == 2 and "--overwrite" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = extract(src, clean, "--resume", "--overwrite")
    assert r.returncode == 2
    out = tmp_path / "o.h5"
    parts_dir(out).mkdir()
    (parts_dir(out) / "manifest.json").write_text('{"format": "nnaudio-parts"}')
    r = extract(src, out)
    assert r.returncode == 2 and "--resume" in r.stderr and "--overwrite" in r.stderr
    r = extract(src, out, "--resume")
    assert r.returncode == 1 and "different settings" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_resume_with_other_settings_refused(tmp_path):
    src = make_inputs(tmp_path / "in", n=20)
    out = tmp_path / "o.h5"
    proc = subprocess.Popen([*CMD, str(src), str(out), *ARGS], stderr=subprocess.PIPE)
    wait_for_part(out, proc)
    proc.kill()
    proc.wait()
    r = extract(src, out, "--resume", "--set", "n_mels=64")
    assert r.returncode == 1 and "different settings" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert parts_dir(out).exists()  # nothing was thrown away


def test_sigint_stops_keeps_progress(data, tmp_path):
    src, clean, _ = data
    out = tmp_path / "o.h5"
    proc = subprocess.Popen([*CMD, str(src), str(out), *ARGS], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    wait_for_part(out, proc)
    proc.send_signal(signal.SIGINT)
    _, err = wait_ended(proc, "extract after SIGINT")  # a hang check, not a speed bound
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "rerun with --resume" in lines[0], err
    assert "Traceback" not in err
    kept = int(lines[0].split("interrupted; ")[1].split(" of ")[0])
    assert kept >= 1
    assert not out.exists()
    r = extract(src, out, "--resume", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["resumed_files"] >= kept
    assert_same(clean, out)


@pytest.fixture
def tmpfs(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()})")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_disk_full_then_resume(data, tmpfs):
    src, clean, _ = data
    out = tmpfs / "o.h5"
    r = extract(src, out, "--compression", "none")
    # 40 clips of mel128 take ~1.5 MB: the 1 MiB tmpfs fills up part-way
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "no space left on device" in lines[0], r.stderr
    assert "--resume" in lines[0] and "Traceback" not in r.stderr
    kept = int(lines[0].split("; ")[1].split(" of ")[0])
    assert kept > 0 and not out.exists()
    subprocess.run(["mount", "-o", "remount,size=64m", str(tmpfs)], check=True)
    r = extract(src, out, "--compression", "none", "--resume", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["resumed_files"] >= kept
    assert_same(clean, out)


def test_read_only_mid_run_then_resume(data, tmpfs):
    src, clean, _ = data
    subprocess.run(["mount", "-o", "remount,size=64m", str(tmpfs)], check=True)
    out = tmpfs / "o.h5"
    proc = subprocess.Popen([*CMD, str(src), str(out), *ARGS], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    wait_for_part(out, proc)
    for _ in range(100):  # EBUSY while a file is open for writing: retry briefly
        if subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)],
                          capture_output=True).returncode == 0:
            break
        time.sleep(0.02)
    else:
        proc.kill()
        proc.wait()
        pytest.skip("could not remount the tmpfs read-only while the run wrote to it")
    _, err = proc.communicate(timeout=120)
    n_parts = len(list(parts_dir(out).glob("part-*.h5")))
    assert proc.returncode == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "read-only file system" in lines[0], err
    assert n_parts >= 1 and "Traceback" not in err
    subprocess.run(["mount", "-o", "remount,rw", str(tmpfs)], check=True)
    r = extract(src, out, "--resume", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["resumed_files"] >= 1
    assert_same(clean, out)


def test_unwritable_output_folder_is_one_line(data, tmp_path):
    src, _, _ = data
    r = extract(src, tmp_path / "missing" / "o.h5")
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1
    assert os.path.exists(src)
