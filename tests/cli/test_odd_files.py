"""Odd inputs a dataset folder really holds: a file name that is not UTF-8, a path swapped
to a FIFO after it was checked, an input that runs the decoder out of memory."""

from __future__ import annotations

import json
import os
import signal
import stat
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from support import invoke, tone

from nnaudio_cli.errors import InputError
from nnaudio_cli.extract import audio, decode, discover, reasons
from nnaudio_cli.featurefile.dataset import FeatureDataset
from nnaudio_cli.featurefile.reader import open_features
from nnaudio_cli.plumbing.text import key_from_stored, stored_key
from nnaudio_core.features import build

LATIN1 = os.fsdecode(b"caf\xe9.wav")  # a Latin-1 name: byte 0xE9 is not UTF-8


def _features(x: np.ndarray, config: dict) -> np.ndarray:
    with torch.no_grad():
        return build(config)(torch.from_numpy(x[None])).numpy()[0].T


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS file systems require UTF-8 names")
def test_a_name_that_is_not_utf8_is_stored_under_a_key_that_round_trips(tmp_path: Path):
    src = tmp_path / "in"
    (src / "d").mkdir(parents=True)
    sf.write(src / "plain.wav", tone(16000, 0.5, 300.0), 16000)
    name = os.path.join(os.fsencode(src), b"d", os.fsencode(LATIN1))
    sf.write(name, tone(16000, 0.7, 500.0), 16000, subtype="FLOAT")
    x, _ = sf.read(name, dtype="float32")
    out = tmp_path / "o.h5"
    r = invoke("extract", src, out, "-c", "mel64_16k", "--json", "-q")
    assert r.exit_code == 0, r.output
    key = "d/" + LATIN1
    assert stored_key(key) == "'d/caf\\udce9.wav'" and key_from_stored(stored_key(key)) == key
    with open_features(out) as ff:
        assert list(ff) == ["'d/caf\\udce9.wav'", "plain.wav"]
        assert os.fsencode(key_from_stored(list(ff)[0])) == b"d/caf\xe9.wav"
        np.testing.assert_array_equal(ff[key], ff[stored_key(key)])  # either form finds it
        assert key in ff and ff.info(key)["status"] == "ok"
        assert ff.row(key) == ff.row(stored_key(key)) == 0
        with pytest.raises(KeyError):
            ff.row("d/cafe.wav")
        want = _features(x, ff.config)
        np.testing.assert_allclose(ff[key], want, rtol=0, atol=1e-5 * float(want.max()))
        stored = ff[key]
    # every reader takes the os.fsdecode form too: the Dataset, info --key, invert --only
    item, item_key = FeatureDataset(out, keys=[key])[0]
    assert item_key == key
    np.testing.assert_array_equal(item.numpy(), stored)
    r = invoke("info", out, "--key", key, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["key"] == stored_key(key)
    r = invoke("invert", out, tmp_path / "wav", "--only", key, "--iterations", "2", "--json",
               "-q")
    assert r.exit_code == 0, r.output
    written = json.loads(r.stdout)["files"]
    assert list(written) == [stored_key(key)]  # the name a run over every key gives it
    assert Path(written[stored_key(key)]).is_file()
    r = invoke("extract", src, out, "-c", "mel64_16k", "--resume", "--json", "-q")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["resumed_files"] == 2 and summary["computed_files"] == 0


def test_a_path_swapped_to_a_fifo_after_the_check_never_hangs(tmp_path: Path, monkeypatch):
    """The file was a regular file when it was stat'ed (simulated: os.stat answers for it
    with a regular file's stat), and is a FIFO with no writer when it is opened."""
    fifo = tmp_path / "swapped.wav"
    os.mkfifo(fifo)
    regular = tmp_path / "regular.wav"
    sf.write(regular, tone(16000, 0.2), 16000)
    real_stat = os.stat

    def stat_before_the_swap(path, *args, **kwargs):
        if os.fspath(path) == os.fspath(fifo):
            return real_stat(regular)
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat_before_the_swap)
    assert stat.S_ISREG(os.stat(fifo).st_mode)
    results: dict[str, object] = {}

    def decode_both() -> None:
        results["decode"] = audio.decode_task(str(fifo), "swapped.wav", 16000, True,
                                              sys.maxsize)
        results["header"] = discover.read_header(fifo)
        sound = audio.stream_rates(str(fifo), audio.SourceInfo("swapped.wav"), (16000,), True)
        try:
            next(sound)
        except InputError as e:
            results["stream"] = str(e)

    t = threading.Thread(target=decode_both, daemon=True)
    t.start()
    t.join(30)
    assert not t.is_alive(), "opening a FIFO blocked"
    r = results["decode"]
    assert r.status == "failed" and r.reason == "not a regular file"
    assert results["header"] == discover.Header()
    assert results["stream"] == "not a regular file"


def test_out_of_memory_is_a_failure_that_resume_retries(tmp_path: Path, monkeypatch):
    src = tmp_path / "in"
    src.mkdir()
    sf.write(src / "big.wav", tone(16000, 0.9, 250.0), 16000)
    sf.write(src / "small.wav", tone(16000, 0.4), 16000)
    real_read = audio._FdSoundFile.read

    def read(self, *args, **kwargs):
        if self.frames == int(16000 * 0.9):
            raise MemoryError()
        return real_read(self, *args, **kwargs)

    monkeypatch.setattr(audio._FdSoundFile, "read", read)
    out = tmp_path / "o.h5"
    r = invoke("extract", src, out, "-c", "mel64_16k", "-j", "0", "--json", "-q")
    assert r.exit_code == 3, r.output
    (failure,) = json.loads(r.stdout)["failures"]
    assert failure == {"key": "big.wav", "reason": "transient: out of memory while decoding "
                       "this file; --resume tries it again"}
    monkeypatch.setattr(audio._FdSoundFile, "read", real_read)  # memory is back
    r = invoke("extract", src, out, "-c", "mel64_16k", "-j", "0", "--resume", "--json", "-q")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert (summary["resumed_files"], summary["computed_files"], summary["failed"]) == (1, 1, 0)
    with open_features(out) as ff:
        assert sorted(ff) == ["big.wav", "small.wav"]


def test_a_decoder_killed_by_sigkill_fails_its_file_as_transient(tmp_path: Path):
    """The OOM killer's SIGKILL of a decoder process: the file it was reading fails with a
    transient reason (retried by --resume), a permanent one for any other death."""
    pool = decode.DecoderPool(1)
    try:
        for clip, sig in ((0, signal.SIGKILL), (1, signal.SIGTERM)):
            w = pool.workers[0]
            w.jobs.append(decode.Job(clip, str(tmp_path / "x.wav"), f"x{clip}.wav", 0))
            w.proc.send_signal(sig)
            deadline = time.monotonic() + 30
            while not pool.dead and time.monotonic() < deadline:
                time.sleep(0.05)
            assert pool.dead == [w]
            pool.dead.clear()
            pool._replace(w)
            reason = pool.done.pop(clip).reason
            if sig == signal.SIGKILL:
                assert reason == ("transient: the decoder process died (signal 9) while "
                                  "reading this file (out of memory?)")
                assert reasons.is_transient(reason)
            else:
                assert reason == "the decoder process died (signal 15) while reading this file"
    finally:
        pool.close()
