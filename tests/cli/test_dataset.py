"""FeatureDataset / pad_collate over real extract outputs, read by DataLoader workers."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf
import torch
from support import invoke, tone
from torch.utils.data import DataLoader

from nnaudio_cli.featurefile.dataset import EPS_REL, FeatureDataset, pad_collate
from nnaudio_cli.featurefile.reader import open_features
from nnaudio_cli.featurefile.stats import BinStats

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
    """A merged file whose every ``/features/<name>/data`` is an HDF5 virtual dataset over
    ``parts`` (layout 2), offsets rebased, statistics combined."""
    srcs = [h5py.File(p, "r") for p in parts]
    try:
        with h5py.File(out, "w") as h5:
            h5.attrs.update(dict(srcs[0].attrs))
            for name in json.loads(srcs[0].attrs["features"]):
                groups = [s[f"features/{name}"] for s in srcs]
                data = [g["data"] for g in groups]
                rows = [d.shape[0] for d in data]
                layout = h5py.VirtualLayout(shape=(sum(rows),) + data[0].shape[1:],
                                            dtype=data[0].dtype)
                at, offsets = 0, [np.zeros(1, dtype=np.int64)]
                for p, d, n, g in zip(parts, data, rows, groups, strict=True):
                    layout[at : at + n] = h5py.VirtualSource(str(p), d.name, shape=d.shape)
                    offsets.append(g["offsets"][1:] + at)
                    at += n
                out_g = h5.create_group(f"features/{name}")
                out_g.attrs.update(dict(groups[0].attrs))
                out_g.create_virtual_dataset("data", layout)
                out_g["offsets"] = np.concatenate(offsets)
                out_g["frequencies"] = groups[0]["frequencies"][()]
                BinStats.combine(BinStats.read(g) for g in groups).write(out_g)
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
        assert h5["features/mel64_16k/data"].is_virtual
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
        assert h5["features/mel64_16k/data"].is_virtual
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


# -- layout 2: features, stored dtypes, normalisation ------------------------------------
@pytest.fixture(scope="module")
def variants(features) -> dict[str, Path]:
    """The inputs of ``features`` again: float16, bfloat16 in dB, and mel64_16k with mfcc."""
    src, root = features.parent / "audio", features.parent
    return {"float16": extract(src, root / "f16.h5", "--dtype", "float16"),
            "db_bf16": extract(src, root / "dbbf.h5", "--db", "--dtype", "bfloat16"),
            "two": extract(src, root / "two.h5", "-c", "mfcc")}


def _all_frames(ds: FeatureDataset) -> np.ndarray:
    """Every frame of every item, float64 ``(frames, n_bins)``."""
    return np.concatenate([ds[i][0].numpy().astype(np.float64) for i in range(len(ds))])


def test_float16_file_reads_as_float32_close_to_the_float32_file(features, variants):
    ds32, ds16 = FeatureDataset(features), FeatureDataset(variants["float16"])
    assert ds16.storage.dtype == "float16" and ds16.keys == ds32.keys
    with h5py.File(variants["float16"], "r") as h5:
        assert h5["features/mel64_16k/data"].dtype == np.float16
    for i in range(len(ds32)):
        x16, x32 = ds16[i][0], ds32[i][0]
        assert x16.dtype == torch.float32
        # float16 keeps 11 significant bits (rel 2^-11); below 2^-14 its spacing is 2^-24
        np.testing.assert_allclose(x16.numpy(), x32.numpy(), rtol=1e-3, atol=2.0**-25)


@pytest.mark.parametrize("which", ["float32", "float16", "db_bf16"])
def test_normalize_gives_zero_mean_unit_std_per_bin_over_all_frames(features, variants, which):
    path = features if which == "float32" else variants[which]
    ds = FeatureDataset(path, normalize=True)
    x = _all_frames(ds)
    assert ds[0][0].dtype == torch.float32 and x.shape[1] == 64
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(x.std(axis=0), 1.0, atol=1e-5)
    raw = _all_frames(FeatureDataset(path))  # the stored statistics are those of the frames
    np.testing.assert_allclose(ds.mean, raw.mean(axis=0), rtol=1e-9, atol=1e-12)
    if which == "db_bf16":  # dB values, normalised as stored (no second log)
        assert ds.storage.dtype == "bfloat16" and ds.storage.db is not None
        assert raw.min() < -10 < raw.max() < 60  # dB, where linear power is never < 0


def test_normalize_applies_before_the_crop_and_transform_and_uses_the_documented_eps(features):
    ds = FeatureDataset(features, crop_frames=CROP, normalize=True, transform=lambda x: 2 * x)
    raw = FeatureDataset(features, crop_frames=CROP)
    torch.manual_seed(4)
    x, key = ds[3]
    torch.manual_seed(4)
    y, _ = raw[3]
    var = ds.stats.var
    eps = EPS_REL * var.mean()
    expected = 2 * (y.numpy().astype(np.float64) - ds.stats.mean) / np.sqrt(var + eps)
    np.testing.assert_allclose(x.numpy(), expected, rtol=1e-6, atol=1e-6)
    custom = FeatureDataset(features, normalize=True, eps=1.0)
    np.testing.assert_allclose(custom.scale, 1 / np.sqrt(var + 1.0))


def test_normalize_without_stored_statistics_is_a_clear_error(features, tmp_path):
    bare = tmp_path / "bare.h5"
    shutil.copy(features, bare)
    with h5py.File(bare, "r+") as h5:
        del h5["features/mel64_16k/stats"]
    assert len(FeatureDataset(bare)) == len(SECONDS)  # reading without it is fine
    with pytest.raises(ValueError, match=r"bare.h5 \(feature mel64_16k\) has no stored "
                                         r"statistics.*normalize=True needs them"):
        FeatureDataset(bare, normalize=True)


def test_a_file_of_several_features_needs_the_feature_and_reads_it(variants):
    two = variants["two"]
    with pytest.raises(ValueError, match="holds 2 features .mel64_16k, mfcc."):
        FeatureDataset(two)
    ds = FeatureDataset(two, feature="mfcc", normalize=True)
    assert ds.feature == "mfcc" and ds.config["transform"] == "MFCC"
    with open_features(two, feature="mfcc") as ff:
        expected = {k: ff[k] for k in ff}
        stats = ff.stats
    raw = FeatureDataset(two, feature="mfcc")
    for i, key in enumerate(raw.keys):
        assert np.array_equal(raw[i][0].numpy(), expected[key])
    assert ds[0][0].shape[1:] == (20,)
    np.testing.assert_array_equal(ds.mean, stats.mean)
    mel = FeatureDataset(two, feature="mel64_16k")
    assert mel[0][0].shape[1:] == (64,)


def test_a_virtual_merged_file_normalizes_with_the_combined_statistics(features, tmp_path):
    src = tmp_path / "more"
    src.mkdir()
    sf.write(src / "loud.wav", tone(SR, 0.9, 300.0, amp=0.9), SR)
    merged = tmp_path / "merged.h5"
    _merge_virtual([features, extract(src, tmp_path / "more.h5")], merged)
    ds = FeatureDataset(merged, normalize=True)
    assert len(ds) == len(SECONDS) + 1 and ds.stats.count[0] == _all_frames(ds).shape[0]
    x = _all_frames(ds)
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(x.std(axis=0), 1.0, atol=1e-5)
