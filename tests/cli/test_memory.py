"""Bounded memory: a 1-hour 44.1 kHz file and 20,000 short files, peak RSS < 2 GiB.

Peak RSS is measured two ways for the extract subprocess and all its descendants (decoder
workers, forkserver): ``/proc`` polled every 0.1 s, **summed** over the process tree (an
upper bound: shared pages count once per process), and ``ru_maxrss`` of a wrapper's
``RUSAGE_CHILDREN`` (the largest single process). Both must stay under 2 GiB.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

from nnaudio_cli.featurefile.reader import open_features
from nnaudio_core.features import build

LIMIT = 2 * 1024**3
WRAPPER = (
    "import resource, subprocess, sys\n"
    "r = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE)\n"
    "sys.stderr.write('MAXRSS %d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.stdout.write(r.stdout.decode())\n"
    "sys.exit(r.returncode)\n"
)


def _tree_rss(root: int) -> int:
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(d))
            rss[int(d)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    total, stack = 0, [root]
    while stack:
        p = stack.pop()
        total += rss.get(p, 0)
        stack += children.get(p, [])
    return total


def measure(args: list[str]) -> tuple[subprocess.CompletedProcess, int, int, float]:
    """Run ``nnaudio extract ARGS``; return (result, peak tree RSS sum, max single RSS, s)."""
    cmd = [sys.executable, "-c", WRAPPER, sys.executable, "-m", "nnaudio_cli", "extract", *args]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss(proc.pid))
        time.sleep(0.1)
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    maxrss = int(err.rsplit("MAXRSS ", 1)[1].split()[0]) * 1024
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err), peak, maxrss, wall


@pytest.mark.slow
def test_one_hour_file_bounded_and_equal_to_one_piece(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    sr, seconds, block = 44100, 3600, 44100 * 60
    rng = np.random.default_rng(0)
    with sf.SoundFile(src / "hour.wav", "w", sr, 1, subtype="PCM_16") as f:
        for i in range(seconds * sr // block):
            t = (np.arange(block) + i * block) / sr
            x = 0.3 * np.sin(2 * np.pi * (200 + i) * t) + 0.01 * rng.standard_normal(block)
            f.write(x.astype(np.float32))
    out = tmp_path / "o.h5"
    r, peak, maxrss, wall = measure([str(src), str(out), "-c", "mel128", "-q", "--json"])
    assert r.returncode == 0, r.stderr
    print(f"1 h file: tree RSS {peak / 2**20:.0f} MiB, max process {maxrss / 2**20:.0f} MiB, "
          f"{wall:.1f} s")
    assert json.loads(r.stdout)["streamed_files"] == 1
    assert peak < LIMIT and maxrss < LIMIT
    # reference: the transform on the resampled signal in one piece. A single 1-hour call
    # needs several GB in the test process, so it is checked on stretches: the start and
    # the end with the configured (centred) transform on a prefix/suffix, and the middle
    # with its center=False twin on the exact samples of those frames (frame t of the clip
    # reads samples [t*hop - n_fft/2, t*hop + n_fft/2)).
    x, _ = sf.read(src / "hour.wav", dtype="float32", always_2d=True)
    y = np.ascontiguousarray(soxr.resample(x, sr, 22050, quality="HQ")[:, 0])
    del x
    with open_features(out) as ff:
        feats = ff["hour.wav"]
        config = ff.config
    centred = build(config)
    flat = build(dict(config, params=dict(config["params"], center=False)))
    hop, n_fft, n = 512, 2048, 4000
    total = feats.shape[0]
    assert total == 1 + len(y) // hop

    def close(got: np.ndarray, want: np.ndarray) -> None:
        scale = float(np.abs(want).max())
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * scale)

    with torch.no_grad():
        head = centred(torch.from_numpy(y[: (n + 8) * hop])).numpy()[0].T
        close(feats[:n], head[:n])
        s0 = (len(y) - (n + 8) * hop) // hop * hop  # frame-aligned suffix start
        tail = centred(torch.from_numpy(y[s0:])).numpy()[0].T
        close(feats[-n:], tail[-n:])
        for t in (total // 3, total // 2 + 12345):
            seg = y[t * hop - n_fft // 2 : (t + n - 1) * hop + n_fft // 2]
            mid = flat(torch.from_numpy(np.ascontiguousarray(seg))).numpy()[0].T
            close(feats[t : t + n], mid)


@pytest.mark.slow
def test_twenty_thousand_short_files_bounded(tmp_path):
    src = tmp_path / "in"
    rng = np.random.default_rng(1)
    n = 20000
    for d in range(20):
        (src / f"d{d:02d}").mkdir(parents=True)
    for i in range(n):
        x = (0.1 * rng.standard_normal(int(16000 * rng.uniform(0.08, 0.2)))).astype(np.float32)
        sf.write(src / f"d{i % 20:02d}" / f"c{i:05d}.wav", x, 16000, subtype="PCM_16")
    out = tmp_path / "o.h5"
    r, peak, maxrss, wall = measure([str(src), str(out), "-c", "mel64_16k", "-q", "--json"])
    assert r.returncode == 0, r.stderr[-2000:]
    print(f"20k files: tree RSS {peak / 2**20:.0f} MiB, max process {maxrss / 2**20:.0f} MiB, "
          f"{wall:.1f} s")
    assert peak < LIMIT and maxrss < LIMIT
    with open_features(out) as ff:
        assert len(ff) == n and not ff.failed
