"""FeatureDataset / pad_collate over real extract outputs, read by DataLoader workers."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf
import torch
from support import invoke, tone
from torch.utils.data import DataLoader

from nnaudio_cli.dataset import FeatureDataset, pad_collate
from nnaudio_cli.store import open_features

SR = 16000  # mel64_16k: hop 160, so 0.1 s = 10 frames
SECONDS = {"a_short.wav": 0.25, "b.wav": 0.6, "c.wav": 1.0, "d.wav": 1.3, "e.wav": 2.1}
CROP = 40


def extract(src: Path, out: Path, *extra: str) -> Path:
    r = invoke("extract", src, out, "--config", "mel64_16k", "--workers", "0", "-q", *extra)
    assert r.exit_code in (0, 3), r.output
    return out


@pytest.fixture(scope="module")
def features(tmp_path_factory) -> Path:
    """Five noise clips of 0.25-2.1 s (26-211 frames, no two frames alike, so a crop's place
    is unique) and one unreadable file (a failed row)."""
    root = tmp_path_factory.mktemp("ds")
    src = root / "audio"
    src.mkdir()
    rng = np.random.default_rng(0)
    for name, sec in SECONDS.items():
        sf.write(src / name, 0.1 * rng.standard_normal(int(SR * sec)).astype(np.float32), SR)
    (src / "broken.wav").write_bytes(b"")
    return extract(src, root / "feats.h5")


def test_two_workers_give_every_ok_key_once_per_epoch_equal_to_the_reader(features):
    ds = FeatureDataset(features)
    assert sorted(ds.keys) == sorted(SECONDS)  # the failed input is no item
    ds[0]  # the parent opens its handle first: the forked workers must not use it
    with open_features(features) as ff:
        expected = {k: ff[k] for k in ff}
    loader = DataLoader(ds, batch_size=None, shuffle=True, num_workers=2,
                        generator=torch.Generator().manual_seed(0))
    for _epoch in range(2):
        seen = []
        for x, key in loader:
            assert x.dtype == torch.float32
            assert np.array_equal(x.numpy(), expected[key]), key
            seen.append(key)
        assert sorted(seen) == sorted(SECONDS)
    assert ds._pid == os.getpid()  # the parent's handle is still its own and usable
    assert np.array_equal(ds[1][0].numpy(), expected[ds.keys[1]])
    ds.close()


def _crop_start(full: np.ndarray, crop: np.ndarray) -> int:
    """Where ``crop`` lies in ``full`` (frames), or -1."""
    n = crop.shape[0]
    for s in range(full.shape[0] - n + 1):
        if np.array_equal(full[s : s + n], crop):
            return s
    return -1


def test_crops_have_the_length_lie_inside_the_clip_and_pad_short_clips_with_zeros(features):
    ds = FeatureDataset(features, crop_frames=CROP)
    with open_features(features) as ff:
        full = {k: ff[k] for k in ff}
    assert full["a_short.wav"].shape[0] < CROP < full["e.wav"].shape[0]
    loader = DataLoader(ds, batch_size=3, shuffle=True, num_workers=2, collate_fn=ds.collate,
                        generator=torch.Generator().manual_seed(1))
    starts: dict[str, set[int]] = {k: set() for k in full}
    for _epoch in range(4):
        for x, lengths, keys in loader:
            assert x.shape[1:] == (CROP, 64), x.shape
            for b, key in enumerate(keys):
                n = min(CROP, full[key].shape[0])
                assert int(lengths[b]) == n
                s = _crop_start(full[key], x[b, :n].numpy())
                assert 0 <= s <= full[key].shape[0] - n, key
                assert torch.count_nonzero(x[b, n:]) == 0
                starts[key].add(s)
    assert starts["a_short.wav"] == {0}
    assert len(starts["e.wav"]) > 1  # 172 possible windows: random, not fixed


def test_crops_repeat_with_the_same_generator_seed(features):
    ds = FeatureDataset(features, crop_frames=CROP)

    def crops(seed: int) -> list[np.ndarray]:
        loader = DataLoader(ds, batch_size=None, num_workers=2,
                            generator=torch.Generator().manual_seed(seed))
        return [x.numpy() for x, _ in loader]

    first, again, other = crops(5), crops(5), crops(6)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))
    torch.manual_seed(3)
    no_workers = [ds[i][0] for i in range(len(ds))]
    torch.manual_seed(3)
    assert all(torch.equal(a, ds[i][0]) for i, a in enumerate(no_workers))


def test_short_skip_leaves_out_clips_shorter_than_the_crop(features):
    ds = FeatureDataset(features, crop_frames=CROP, short="skip")
    assert "a_short.wav" not in ds.keys and len(ds) == len(SECONDS) - 1
    assert all(ds[i][0].shape[0] == CROP for i in range(len(ds)))


def test_pad_collate_pads_to_the_longest_with_zeros_and_returns_true_lengths():
    a, b = torch.ones(3, 4, 2), 2 * torch.ones(5, 4, 2)
    x, lengths, keys = pad_collate([(a, "a"), (b, "b")])
    assert x.shape == (2, 5, 4, 2) and lengths.tolist() == [3, 5] and keys == ["a", "b"]
    assert torch.equal(x[0, :3], a) and torch.count_nonzero(x[0, 3:]) == 0
    assert torch.equal(x[1], b)
    assert pad_collate([(a, "a")], frames=8)[0].shape == (1, 8, 4, 2)
    with pytest.raises(ValueError, match="beyond the time axis"):
        pad_collate([(a, "a"), (torch.ones(3, 5, 2), "c")])


def test_keys_choose_and_order_items_and_name_failed_or_unknown_keys(features):
    ds = FeatureDataset(features, keys=["d.wav", "b.wav"], transform=lambda x: x.T)
    assert [k for _, k in (ds[0], ds[1])] == ["d.wav", "b.wav"]
    with open_features(features) as ff:
        assert torch.equal(ds[1][0], torch.from_numpy(ff["b.wav"]).T)
    assert ds[-1][1] == "b.wav"
    with pytest.raises(IndexError):
        ds[2]
    with pytest.raises(KeyError, match="broken.wav: extraction failed"):
        FeatureDataset(features, keys=["broken.wav"])
    with pytest.raises(KeyError, match="nope.wav: not in"):
        FeatureDataset(features, keys=["nope.wav"])
    with pytest.raises(ValueError, match="crop_frames"):
        FeatureDataset(features, crop_frames=0)


def test_a_pickled_dataset_carries_no_handle(features):
    ds = FeatureDataset(features)
    x, key = ds[2]
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._h5 is None
    assert key == clone[2][1] and torch.equal(x, clone[2][0])


def test_keep_channels_items_are_frames_channels_bins_and_crop_in_time(tmp_path):
    src = tmp_path / "audio"
    src.mkdir()
    stereo = np.stack([tone(SR, 1.0, 440.0), tone(SR, 1.0, 880.0)], axis=1)
    sf.write(src / "st.wav", stereo, SR)
    sf.write(src / "mono.wav", tone(SR, 0.5), SR)
    out = extract(src, tmp_path / "ch.h5", "--keep-channels")
    ds = FeatureDataset(out, crop_frames=CROP)
    with open_features(out) as ff:
        full = ff["st.wav"]
    assert full.shape[1:] == (2, 64)
    x, _ = ds[ds.keys.index("st.wav")]
    assert x.shape == (CROP, 2, 64)
    assert 0 <= _crop_start(full, x.numpy()) <= full.shape[0] - CROP
    assert ds[ds.keys.index("mono.wav")][0].shape[1:] == (1, 64)


def _merge_virtual(parts: list[Path], out: Path) -> None:
    """A merged file whose /features/data is an HDF5 virtual dataset over ``parts``."""
    srcs = [h5py.File(p, "r") for p in parts]
    try:
        data = [s["features/data"] for s in srcs]
        rows = [d.shape[0] for d in data]
        layout = h5py.VirtualLayout(shape=(sum(rows),) + data[0].shape[1:], dtype=data[0].dtype)
        at, offsets = 0, [np.zeros(1, dtype=np.int64)]
        for p, d, n, s in zip(parts, data, rows, srcs, strict=True):
            layout[at : at + n] = h5py.VirtualSource(str(p), "features/data", shape=d.shape)
            offsets.append(s["features/offsets"][1:] + at)
            at += n
        with h5py.File(out, "w") as h5:
            h5.attrs.update(dict(srcs[0].attrs))
            h5.create_virtual_dataset("features/data", layout)
            h5["features/offsets"] = np.concatenate(offsets)
            h5["features/frequencies"] = srcs[0]["features/frequencies"][()]
            for col in srcs[0]["index"]:
                h5[f"index/{col}"] = np.concatenate([s["index"][col][()] for s in srcs])
    finally:
        for s in srcs:
            s.close()


def test_a_virtual_merged_file_reads_the_same_features(features, tmp_path):
    src = tmp_path / "more"
    src.mkdir()
    sf.write(src / "z1.wav", tone(SR, 0.7, 500.0), SR)
    sf.write(src / "z2.wav", tone(SR, 1.1, 700.0), SR)
    second = extract(src, tmp_path / "more.h5")
    merged = tmp_path / "merged.h5"
    _merge_virtual([features, second], merged)
    with h5py.File(merged, "r") as h5:
        assert h5["features/data"].is_virtual
    expected = {}
    for part in (features, second):
        with open_features(part) as ff:
            expected.update({k: ff[k] for k in ff})
    ds = FeatureDataset(merged)
    assert sorted(ds.keys) == sorted(expected)
    loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=pad_collate)
    seen = []
    for x, lengths, keys in loader:
        for b, key in enumerate(keys):
            assert np.array_equal(x[b, : lengths[b]].numpy(), expected[key]), key
            seen.append(key)
    assert sorted(seen) == sorted(expected)


def test_the_readme_training_loop_runs(features, capsys):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1]
    code = quick.split("```python\n", 1)[1].split("```", 1)[0]
    assert len(code.strip().splitlines()) <= 16
    torch.manual_seed(0)
    exec(code.replace('"example/features.h5"', repr(str(features))), {})
    losses = [float(ln.rsplit(" ", 1)[1]) for ln in capsys.readouterr().out.splitlines()]
    assert len(losses) == 3 and all(np.isfinite(losses))


def test_an_nnaudio_merge_master_reads_the_same_as_its_shards(features, tmp_path):
    src = features.parent / "audio"
    out = tmp_path / "m.h5"
    for i in range(2):
        extract(src, out, "--shard", f"{i}/2")
    r = invoke("merge", "--expect", 2, out, "-q")
    assert r.exit_code in (0, 3), r.output
    with h5py.File(out, "r") as h5:
        assert h5["features/data"].is_virtual
    ds = FeatureDataset(out, crop_frames=CROP)
    assert sorted(ds.keys) == sorted(SECONDS)
    with open_features(features) as ff:  # the unsharded run of the same inputs
        full = {k: ff[k] for k in ff}
    loader = DataLoader(ds, batch_size=2, shuffle=True, num_workers=2, collate_fn=ds.collate,
                        generator=torch.Generator().manual_seed(2))
    seen = []
    for x, lengths, keys in loader:
        for b, key in enumerate(keys):
            n = int(lengths[b])
            assert 0 <= _crop_start(full[key], x[b, :n].numpy()), key
            seen.append(key)
    assert sorted(seen) == sorted(SECONDS)
