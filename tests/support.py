"""Plain helpers shared by the test modules (fixtures built on them live in ``conftest.py``).

* ``CMD`` / ``run_extract``: ``nnaudio extract`` as a real subprocess;
* ``invoke``: any ``nnaudio`` command in-process through Typer's ``CliRunner``;
* ``make_inputs``: a folder of seeded noise clips at three sample rates;
* ``decoded``: a file as the extractor sees it (downmixed, soxr HQ to a rate);
* ``tone``: a sine as float32 samples, ``(n,)`` or ``(n, channels)``;
* ``snr_db``: reconstruction SNR in dB, for numpy arrays or torch tensors;
* ``assert_same`` / ``wait_for_part``: compare two extract outputs exactly; wait until a
  running extract has committed a part;
* ``HANG_S`` / ``wait_ended`` / ``left_running``: hang checks for commands that must end
  promptly (a generous bound: the tests run on loaded machines, so they never time speed).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import soxr

CMD = [sys.executable, "-m", "nnaudio_cli", "extract"]
#: Seconds after which a command that should end promptly counts as hung. A hang check, not
#: a speed bound: under a load of 4 on 2 cores an idle-machine 0.3 s can take 5 s.
HANG_S = 30.0


def invoke(*args: object) -> Any:
    """Run ``nnaudio ARGS...`` in-process; returns the ``click.testing.Result``."""
    from typer.testing import CliRunner

    from nnaudio_cli.app import app

    return CliRunner().invoke(app, [str(a) for a in args])


def run_extract(src: Path, out: Path, *args: str,
                timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m nnaudio_cli extract SRC OUT ARGS...`` with captured text output."""
    return subprocess.run([*CMD, str(src), str(out), *args], capture_output=True, text=True,
                          timeout=timeout)


def make_inputs(root: Path, n: int = 40, seed: int = 0) -> Path:
    """``n`` clips of 0.3-2.5 s white noise (amplitude 0.1) at 22.05, 16 and 44.1 kHz."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        sr = (22050, 16000, 44100)[i % 3]
        x = 0.1 * rng.standard_normal(int(sr * rng.uniform(0.3, 2.5))).astype(np.float32)
        sf.write(root / f"clip{i:03d}.wav", x, sr)
    return root


def tone(sr: int, seconds: float, freq: float = 440.0, amp: float = 0.3,
         channels: int | None = None) -> np.ndarray:
    """``amp * sin(2π freq t)`` as float32, shape ``(n,)`` or ``(n, channels)``."""
    t = np.arange(int(sr * seconds)) / sr
    x = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return x if channels is None else np.repeat(x[:, None], channels, axis=1)


def snr_db(ref: Any, est: Any) -> float:
    """``10 log10(Σ ref² / Σ (ref - est)²)`` in float64; numpy arrays or torch tensors."""
    r = np.asarray(ref.detach().cpu() if hasattr(ref, "detach") else ref, dtype=np.float64)
    e = np.asarray(est.detach().cpu() if hasattr(est, "detach") else est, dtype=np.float64)
    return float(10 * np.log10(np.sum(r**2) / np.sum((r - e) ** 2)))


def assert_same(a_path: Path, b_path: Path, exact_stats: bool = True) -> None:
    """Same features, keys and index rows, bit-identical features and statistics.

    ``exact_stats=False`` (a virtual merge, whose statistics are the shards' combined):
    statistics equal within float64 round-off (1e-9 relative) instead of bit for bit."""
    import h5py

    from nnaudio_cli.featurefile.layout import feature_names
    from nnaudio_cli.featurefile.reader import open_features

    with h5py.File(a_path, "r") as ha, h5py.File(b_path, "r") as hb:
        names = feature_names(ha)
        assert names == feature_names(hb)
    for name in names:
        with open_features(a_path, name) as a, open_features(b_path, name) as b:
            assert list(a.index["key"]) == list(b.index["key"])
            for col in ("status", "reason", "sr", "samples", "size", "mtime", "frames"):
                assert list(a.index[col]) == list(b.index[col]), col
            np.testing.assert_array_equal(a.offsets, b.offsets)
            for key in a:
                assert np.array_equal(a[key], b[key]), key
            assert a.attrs["config_hash"] == b.attrs["config_hash"]
            sa, sb = a.stats, b.stats
            assert (sa is None) == (sb is None), name
            if sa is not None:
                for arr in ("count", "mean", "m2"):
                    x, y = getattr(sa, arr), getattr(sb, arr)
                    if exact_stats:
                        assert np.array_equal(x, y), (name, arr)
                    else:
                        np.testing.assert_allclose(y, x, rtol=1e-9, atol=1e-12 * np.abs(x).max(),
                                                   err_msg=f"{name} {arr}")


def wait_for_part(out: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    """Return once the extract writing ``out`` has committed a part; fail if it ends first."""
    from nnaudio_cli.extract.parts import parts_dir

    t0 = time.time()
    while time.time() - t0 < timeout:
        if parts_dir(out).exists() and any(parts_dir(out).glob("part-*.h5")):
            return
        if proc.poll() is not None:
            pytest.fail("extract ended before writing a part")
        time.sleep(0.05)
    pytest.fail("no part file appeared")


def wait_ended(proc: subprocess.Popen, what: str = "the command") -> tuple[str, str]:
    """``proc.communicate()`` within :data:`HANG_S`; a clear failure (not a
    ``TimeoutExpired`` traceback) when it hangs. Returns (stdout, stderr)."""
    try:
        return proc.communicate(timeout=HANG_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"{what} did not end within {HANG_S:.0f} s; stderr: {err!s:.2000}")


def left_running(session: int, timeout: float = HANG_S) -> list[str]:
    """PIDs still running in process session ``session`` (zombies excluded: once the parent
    is gone, reaping is init's job), after waiting up to ``timeout`` s for them to end."""
    deadline = time.monotonic() + timeout
    while True:
        ps = subprocess.run(["ps", "-o", "pid=,stat=", "-s", str(session)],
                            capture_output=True, text=True).stdout.splitlines()
        left = [ln.split()[0] for ln in ps if ln.strip() and "Z" not in ln.split()[1]]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def decoded(path: Path, sr: int) -> np.ndarray:
    """What the extractor sees: soundfile decode, soxr HQ to the preset's rate, (1, n)."""
    x, sr_in = sf.read(path, dtype="float32", always_2d=True)
    x = x.mean(axis=1, keepdims=True, dtype=np.float32)
    if sr_in != sr:
        x = soxr.resample(x, sr_in, sr, quality="HQ")
    return np.ascontiguousarray(x.T, dtype=np.float32)
