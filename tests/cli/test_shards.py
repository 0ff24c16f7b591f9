"""Shards: the assignment (pure function), ``--shard I/N``, the launchers' environment
(torchrun, Slurm arrays and tasks), a real ``torchrun --nproc-per-node 2`` run and a real Slurm
job array (slow; skipped with the daemon's own error where slurmctld/slurmd cannot start).

Every merged result is compared with a single-process run by ``assert_same``: same keys and
index rows, bit-identical features. That is the reproducibility contract (same settings,
device and thread count give the same bytes), and it holds because a shard is a run of whole
batches of the one batch plan. A virtual merge's statistics are the shards' combined (Chan),
so they equal the single run's within float64 round-off; ``--copy`` recomputes them from the
rows, bit for bit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from support import CMD, assert_same, make_inputs, run_extract

from nnaudio_cli.extract.batch import plan_batches
from nnaudio_cli.extract.shard import (
    Shard,
    from_environment,
    parse_shard,
    shard_batches,
    shard_path,
    split_contiguous,
)

ARGS = ["-c", "mel128", "--batch-seconds", "3", "--workers", "1", "--threads", "1", "-q"]
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
#: variables of the launchers, removed so the test's own environment cannot shard a run
LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "SLURM_ARRAY_TASK_ID",
               "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN", "SLURM_PROCID",
               "SLURM_NTASKS", "SLURM_LOCALID")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARS}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def extract(src: Path, out: Path, *extra: str, env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*CMD, str(src), str(out), *ARGS, *extra], capture_output=True,
                          text=True, timeout=timeout, env=env or clean_env())


def merge(*args: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nnaudio_cli", "merge", *map(str, args)],
                          capture_output=True, text=True, timeout=300, env=env or clean_env())


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """24 noise clips and one unreadable file (a failed row), and their single-process run."""
    root = tmp_path_factory.mktemp("shards")
    src = make_inputs(root / "in", n=24, seed=5)
    (src / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot audio at all")
    r = run_extract(src, root / "single.h5", *ARGS)
    assert r.returncode == 3, r.stderr  # the broken file is a failed row
    return src, root / "single.h5"


# --- the assignment ------------------------------------------------------------------------


def test_split_covers_every_unit_once_in_order_and_balances_by_weight():
    rng = np.random.default_rng(0)
    for trial in range(200):
        n_units = int(rng.integers(0, 60))
        weights = list(rng.exponential(10.0, n_units) * (rng.random(n_units) < 0.9))
        count = int(rng.integers(1, 9))
        runs = split_contiguous(weights, count)
        assert len(runs) == count
        assert runs[0][0] == 0 and runs[-1][1] == n_units
        assert all(a[1] == b[0] for a, b in zip(runs, runs[1:], strict=False))  # tiles, in order
        assert split_contiguous(weights, count) == runs  # deterministic
        total = sum(weights)
        if total > 0:
            for a, b in runs:  # within the largest unit of the ideal share
                assert abs(sum(weights[a:b]) - total / count) <= max(weights) + 1e-9, trial


def test_split_balances_duration_not_count():
    """One long unit and many short ones: the long one gets a shard to itself."""
    weights = [100.0] + [1.0] * 100
    runs = split_contiguous(weights, 2)
    assert runs == [(0, 1), (1, 101)]
    assert split_contiguous([0.0] * 6, 3) == [(0, 2), (2, 4), (4, 6)]  # no durations: count
    assert split_contiguous([5.0, 5.0], 4) == [(0, 0), (0, 1), (1, 1), (1, 2)]  # empty ones


def test_shard_batches_are_whole_batches_of_the_one_plan():
    rng = np.random.default_rng(1)
    costs = [int(c) for c in rng.integers(1000, 90000, 300)]
    plan = plan_batches(costs, 200000, 150000)
    for count in (1, 2, 3, 7):
        got = [shard_batches(plan, costs, i, count) for i in range(count)]
        assert [b for g in got for b in g] == plan  # every batch once, in order
        clips = [c for g in got for b in g for c in b.clips]
        assert clips == list(range(300))
        loads = [sum(costs[c] for b in g for c in b.clips) for g in got]
        biggest = max(sum(costs[c] for c in b.clips) for b in plan)
        assert max(loads) - min(loads) <= 2 * biggest, loads


def test_parse_shard_and_paths():
    assert parse_shard("2/8") == (2, 8) and parse_shard(" 0 / 1 ") == (0, 1)
    for bad in ("8/8", "1", "-1/3", "a/b", "1/0"):
        with pytest.raises(ValueError):
            parse_shard(bad)
    assert shard_path(Path("/x/feats.h5"), 2, 8) == Path("/x/feats.shard-2-of-8.h5")


def test_shard_counts_and_indices_are_bounded():
    """N in 1..1,000,000, 0 <= I < N, ASCII integers of at most 64 bits: `--shard 0/1000000000`
    once allocated 8 GB for the cut, and WORLD_SIZE=0 ran every rank unsharded into one file."""
    assert parse_shard("999999/1000000") == (999999, 1_000_000)
    for bad, why in (("0/1000000000", "above the limit of 1,000,000"),
                     ("0/1000001", "above the limit"), ("0/0", "at least 1"),
                     ("0/99999999999999999999", "at most 64 bits"),
                     ("99999999999999999999/2", "at most 64 bits"),
                     ("\u0663/4", "not I/N"), ("1_0/20", "not I/N")):
        with pytest.raises(ValueError, match=why):
            parse_shard(bad)
    assert from_environment({"RANK": "0", "WORLD_SIZE": "1"}) is None  # one process
    for env, why in (({"RANK": "0", "WORLD_SIZE": "0"}, "at least 1"),
                     ({"RANK": "0", "WORLD_SIZE": "-4"}, "at least 1"),
                     ({"RANK": "0", "WORLD_SIZE": "2000000"}, "above the limit"),
                     ({"RANK": "-1", "WORLD_SIZE": "2"}, "out of range"),
                     ({"RANK": "3", "WORLD_SIZE": "1"}, "out of range"),
                     ({"RANK": str(1 << 64), "WORLD_SIZE": "2"}, "at most 64 bits"),
                     ({"SLURM_PROCID": "0", "SLURM_NTASKS": "0"}, "SLURM_NTASKS"),
                     ({"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "0"},
                      "SLURM_ARRAY_TASK_COUNT"),
                     ({"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_MIN": "-5",
                       "SLURM_ARRAY_TASK_COUNT": "3"}, "out of range")):
        with pytest.raises(ValueError, match=why):
            from_environment(env)


@pytest.mark.parametrize("extra,env", [
    (["--shard", "0/2000000"], {}),
    ([], {"RANK": "0", "WORLD_SIZE": "0"}),
    ([], {"SLURM_PROCID": "0", "SLURM_NTASKS": "0"}),
    (["--shard", "0/2"], {"RANK": "0", "WORLD_SIZE": "-1"}),
])
def test_out_of_bounds_shards_are_one_line_exit_2(data, tmp_path, extra, env):
    src, _ = data
    r = extract(src, tmp_path / "o.h5", *extra, env=clean_env(**env), timeout=120)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nnaudio: error:"), r.stderr
    assert list(tmp_path.iterdir()) == []


def test_environment_torchrun_slurm_array_and_tasks():
    assert from_environment({}) is None
    assert from_environment({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1",
                             "LOCAL_WORLD_SIZE": "2"}) == Shard(1, 2, "torchrun", 1, 2)
    # arrays need not start at 0
    assert from_environment({"SLURM_ARRAY_TASK_ID": "12", "SLURM_ARRAY_TASK_MIN": "10",
                             "SLURM_ARRAY_TASK_COUNT": "4"}) == Shard(2, 4, "slurm array")
    assert from_environment({"SLURM_PROCID": "3", "SLURM_NTASKS": "4",
                             "SLURM_LOCALID": "1"}) == Shard(3, 4, "slurm tasks", 1)
    # torchrun inside a Slurm job: torchrun's rank wins
    assert from_environment({"RANK": "0", "WORLD_SIZE": "2", "SLURM_PROCID": "0",
                             "SLURM_NTASKS": "4"}).source == "torchrun"
    # a single task is no shard: a plain `nnaudio extract` inside sbatch is unchanged
    assert from_environment({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}) is None
    with pytest.raises(ValueError, match="consecutive"):  # --array=0-10:2
        from_environment({"SLURM_ARRAY_TASK_ID": "10", "SLURM_ARRAY_TASK_COUNT": "6"})
    with pytest.raises(ValueError, match="not an integer"):
        from_environment({"RANK": "x", "WORLD_SIZE": "2"})


# --- --shard and the environment, end to end ----------------------------------------------


def test_shard_flag_then_merge_equals_single_process(data, tmp_path):
    src, single = data
    out = tmp_path / "feats.h5"
    codes = [extract(src, out, "--shard", f"{i}/3").returncode for i in range(3)]
    assert sorted(codes) == [0, 0, 3]  # the broken file fails in exactly one shard
    assert not out.exists() and all(shard_path(out, i, 3).is_file() for i in range(3))
    assert not list(tmp_path.glob("*.parts"))
    with h5py.File(shard_path(out, 0, 3)) as h5:
        assert (int(h5.attrs["shard_index"]), int(h5.attrs["shard_count"])) == (0, 3)
        assert int(h5.attrs["n_inputs_total"]) == 25
    r = merge(*(shard_path(out, i, 3) for i in (2, 0, 1)), out)  # any order
    assert r.returncode == 0, r.stderr
    assert "1 failed row carried over" in r.stderr  # one row: singular
    assert_same(single, out, exact_stats=False)
    r = merge("--expect", 3, tmp_path / "copy.h5")  # finds nothing next to copy.h5
    assert r.returncode == 1 and "missing shards 0, 1, 2 of 3" in r.stderr
    r = merge(*(shard_path(out, i, 3) for i in range(3)), tmp_path / "copy.h5", "--copy")
    assert r.returncode == 0, r.stderr
    assert_same(single, tmp_path / "copy.h5")
    with h5py.File(tmp_path / "copy.h5") as h5:
        assert not h5["features/mel128/data"].is_virtual
        assert h5.attrs["digest"].startswith("crc32:")
    with h5py.File(out) as h5, h5py.File(single) as one:  # plain h5py reads the master
        assert h5["features/mel128/data"].is_virtual
        np.testing.assert_array_equal(h5["features/mel128/data"][()],
                                      one["features/mel128/data"][()])
        assert list(h5["index/status"].asstr()[()]) == list(one["index/status"].asstr()[()])
        assert int(h5.attrs["n_failed"]) == 1 and int(h5.attrs["n_inputs"]) == 25


def test_a_shard_resumes_on_its_own(data, tmp_path):
    """Each shard has its own work folder, lock and --resume."""
    src, _ = data
    out = tmp_path / "f.h5"
    r = extract(src, out, "--shard", "1/2")
    assert r.returncode in (0, 3), r.stderr
    r = extract(src, out, "--shard", "1/2")
    assert r.returncode == 2 and "f.shard-1-of-2.h5 exists" in r.stderr
    r = extract(src, out, "--shard", "1/2", "--resume", "--json")
    assert r.returncode in (0, 3), r.stderr
    assert '"computed_files": 0' in r.stdout


def test_slurm_array_variables_only(data, tmp_path):
    """A Slurm array 5-7 (SLURM_ARRAY_TASK_MIN=5), simulated by its variables, then
    `merge --expect 3`."""
    src, single = data
    out = tmp_path / "arr.h5"
    for task in (7, 5, 6):
        env = clean_env(SLURM_ARRAY_TASK_ID=str(task), SLURM_ARRAY_TASK_MIN="5",
                        SLURM_ARRAY_TASK_MAX="7", SLURM_ARRAY_TASK_COUNT="3")
        r = extract(src, out, env=env)
        assert r.returncode in (0, 3), r.stderr
        assert shard_path(out, task - 5, 3).is_file()
    r = merge("--expect", 3, out)
    assert r.returncode == 0, r.stderr
    assert_same(single, out, exact_stats=False)


def test_explicit_shard_wins_over_the_environment(data, tmp_path):
    src, _ = data
    out = tmp_path / "w.h5"
    env = clean_env(SLURM_ARRAY_TASK_ID="0", SLURM_ARRAY_TASK_COUNT="3")
    r = extract(src, out, "--shard", "1/2", env=env)
    assert r.returncode in (0, 3), r.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["w.shard-1-of-2.h5"]


def test_rank_variables_rank0_merges_and_reports_a_missing_rank(data, tmp_path):
    """RANK/WORLD_SIZE as torchrun sets them. Rank 0 alone waits --merge-timeout, then
    exits 1 naming the missing shard; once rank 1 has run, rank 0's --resume merges."""
    src, single = data
    out = tmp_path / "t.h5"
    env0 = clean_env(RANK="0", WORLD_SIZE="2", LOCAL_RANK="0", LOCAL_WORLD_SIZE="2")
    r = extract(src, out, "--merge-timeout", "1", env=env0)
    assert r.returncode == 1, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("nnaudio: error:")]
    assert len(lines) == 1 and "missing shards 1 of 2 (t.shard-1-of-2.h5)" in lines[0], r.stderr
    assert "--resume" in lines[0] and "nnaudio merge --expect 2" in lines[0]
    assert shard_path(out, 0, 2).is_file() and not out.exists()
    env1 = clean_env(RANK="1", WORLD_SIZE="2", LOCAL_RANK="1", LOCAL_WORLD_SIZE="2")
    r = extract(src, out, env=env1)
    assert r.returncode in (0, 3) and not out.exists(), r.stderr  # only rank 0 merges
    r = extract(src, out, "--resume", "--merge-timeout", "5", env=env0)
    assert r.returncode == 0, r.stderr  # failed inputs exit 0 under torchrun ...
    assert "nnaudio: failed: broken.wav: " in r.stderr  # ... and are listed by rank 0
    assert_same(single, out, exact_stats=False)
    r = extract(src, out, "--resume", "--merge-timeout", "5", "--strict", env=env0)
    assert r.returncode == 3, r.stderr  # --strict: the merged file has a failed row


def test_empty_shard_writes_an_empty_file(tmp_path):
    """More shards than batches: a shard with no inputs still writes its (empty) file."""
    src = make_inputs(tmp_path / "in", n=2, seed=1)
    one = tmp_path / "one.h5"
    assert run_extract(src, one, *ARGS).returncode == 0
    out = tmp_path / "e.h5"
    for i in range(3):
        r = extract(src, out, "--shard", f"{i}/3")
        assert r.returncode == 0, r.stderr
    sizes = []
    for i in range(3):
        with h5py.File(shard_path(out, i, 3)) as h5:
            sizes.append(len(h5["index/key"]))
    assert sorted(sizes) == [0, 1, 1]
    r = merge("--expect", 3, out)
    assert r.returncode == 0, r.stderr
    assert_same(one, out, exact_stats=False)


# --- torchrun ------------------------------------------------------------------------------


def test_torchrun_two_processes_on_cpu(data, tmp_path):
    """`torchrun --nproc-per-node 2 -m nnaudio_cli extract ...`: each rank writes its shard,
    rank 0 merges; equal to the single-process run."""
    src, single = data
    out = tmp_path / "tr.h5"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
           "2", "-m", "nnaudio_cli", "extract", str(src), str(out), *ARGS,
           "--merge-timeout", "120"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=clean_env())
    assert out.is_file(), r.stderr[-3000:]
    # failed inputs are no crash: every rank exits 0 (a non-zero rank would make torchrun
    # stop the others and print its ChildFailedError traceback); rank 0 lists them
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr and "ChildFailedError" not in r.stderr, r.stderr[-3000:]
    failed = [ln for ln in r.stderr.splitlines() if ln.startswith("nnaudio: failed:")]
    assert len(failed) == 1 and failed[0].startswith("nnaudio: failed: broken.wav: "), r.stderr
    assert "1 input failed" in r.stderr and "--strict" in r.stderr
    assert all(shard_path(out, i, 2).is_file() for i in range(2))
    assert_same(single, out, exact_stats=False)


@pytest.mark.slow
def test_torchrun_strict_exits_non_zero_on_failed_inputs(data, tmp_path):
    """--strict: rank 0 exits 3 after merging (torchrun reports it as 1); the merged file is
    complete all the same."""
    src, single = data
    out = tmp_path / "st.h5"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
           "2", "-m", "nnaudio_cli", "extract", str(src), str(out), *ARGS,
           "--merge-timeout", "120", "--strict"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=clean_env())
    assert r.returncode == 1, r.stderr[-3000:]
    assert_same(single, out, exact_stats=False)


# --- a real Slurm job array (slow) ---------------------------------------------------------


@pytest.mark.slow
def test_slurm_job_array(data, tmp_path):
    """`sbatch --array=0-2 --wait` on a single-node cluster started by slurm_cluster.sh
    (installs slurm-wlm and munge with apt-get, as root). Extract, then merge, then compare."""
    if os.geteuid() != 0:
        pytest.skip("the Slurm fixture starts daemons as root")
    src, single = data
    work = tmp_path / "slurm"
    work.mkdir()
    script = HERE / "slurm_cluster.sh"
    up = subprocess.run(["bash", str(script), "start", str(work)], capture_output=True,
                        text=True, timeout=900)
    if up.returncode != 0:
        lines = (up.stderr.strip() or up.stdout.strip() or "no output").splitlines()
        pytest.skip(f"Slurm cluster did not start: {lines[-1]}")
    conf = up.stdout.strip().splitlines()[-1].split("=", 1)[1]
    try:
        out = work / "arr.h5"
        job = work / "job.sh"
        pythonpath = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
        job.write_text(
            "#!/bin/bash\n"
            f"export PYTHONPATH={pythonpath}\n"
            f"exec {sys.executable} -m nnaudio_cli extract {src} {out} {' '.join(ARGS)}\n")
        r = subprocess.run(["sbatch", "--array=0-2", "--wait", "--output",
                            str(work / "task-%a.log"), str(job)], capture_output=True,
                           text=True, timeout=600, env=clean_env(SLURM_CONF=conf))
        logs = "".join(p.read_text() for p in sorted(work.glob("task-*.log")))
        assert all(shard_path(out, i, 3).is_file() for i in range(3)), (r.stderr, logs)
        r = merge("--expect", 3, out)
        assert r.returncode == 0, r.stderr
        assert_same(single, out, exact_stats=False)
    finally:
        subprocess.run(["bash", str(script), "stop", str(work)], capture_output=True,
                       timeout=120)
        shutil.rmtree(work, ignore_errors=True)
