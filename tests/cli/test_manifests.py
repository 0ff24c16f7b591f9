"""``nnaudio extract --files LIST``: lists of paths and of segments.

Keys, list formats and relative paths; a segment's features equal those of the same span
cut out and extracted as its own file; span reads seek instead of decoding what comes
before; impossible values are usage errors naming the row, spans past a file's end failed
rows; SIGKILL + ``--resume`` on a 200-row segment list equals a clean run byte for byte, a
resume refuses a list whose rows changed, and shards of a list merge into the clean run.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf
from support import CMD, assert_same, invoke, wait_for_part

from nnaudio_cli.errors import InputError
from nnaudio_cli.extract import audio
from nnaudio_cli.extract.listing import number_text, segment_key
from nnaudio_cli.extract.shard import shard_path
from nnaudio_cli.featurefile.reader import open_features

FAST = ["-c", "mel128", "--workers", "0", "-q"]
SEG_ARGS = ["-c", "mel128", "--batch-seconds", "1", "--workers", "1", "-q"]
SR = 44100


def signal_at(sr: int, seconds: float) -> np.ndarray:
    """``0.3 sin(2π 300 t) + 0.2 sin(2π 1234.5 t) · t/T``: a closed form whose every span
    differs from the others (the second partial grows)."""
    t = np.arange(int(sr * seconds)) / sr
    x = 0.3 * np.sin(2 * np.pi * 300 * t) + 0.2 * np.sin(2 * np.pi * 1234.5 * t) * t / seconds
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lists") / "audio"
    root.mkdir()
    sf.write(root / "sig.wav", signal_at(SR, 4.0), SR, subtype="FLOAT")
    sf.write(root / "b.flac", signal_at(16000, 3.0), 16000)
    return root


def write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["path", "key", "start", "end"])
        w.writeheader()
        for row in rows:
            w.writerow(row)
    return path


def keys_of(path: Path) -> list[str]:
    with h5py.File(path) as h5:
        return list(h5["index/key"].asstr()[()])


def one_error(r) -> str:
    err = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("nnaudio: error: "), r.stderr
    return err[0].removeprefix("nnaudio: error: ")


# --- keys, formats, relative paths -------------------------------------------------------

def test_number_text_and_segment_keys():
    assert [number_text(x) for x in (2.0, 0.5, 1e-4, 1 / 3, 12.25, 0.0)] == [
        "2", "0.5", "0.0001", "0.3333333333333333", "12.25", "0"]
    assert segment_key("a/b.wav", 1.5, 3.0) == "a/b.wav@1.5-3"
    assert segment_key("a.wav", None, 0.25) == "a.wav@0-0.25"
    assert segment_key("a.wav", 30.0, None) == "a.wav@30-"


def test_csv_and_jsonl_rows_keys_and_spans(folder, tmp_path):
    rows = [{"path": "sig.wav", "start": "0.5", "end": "2.0"},
            {"path": "sig.wav", "start": "1", "end": ""},
            {"path": "sig.wav", "start": "", "end": "0.25"},
            {"path": "./b.flac", "key": "mine", "start": "0.1", "end": "0.2"},
            {"path": "b.flac"}]
    want = ["b.flac", "mine", "sig.wav@0-0.25", "sig.wav@0.5-2", "sig.wav@1-"]
    lst = write_csv(folder / "rows.csv", rows)
    out = tmp_path / "csv.h5"
    r = invoke("extract", "--files", lst, out, *FAST)
    assert r.exit_code == 0, r.output
    assert keys_of(out) == want
    with open_features(out) as ff:
        info = {k: ff.info(k) for k in want}
    assert info["sig.wav@0.5-2"]["samples"] == round(2.0 * SR) - round(0.5 * SR)
    assert info["sig.wav@0.5-2"]["duration"] == 1.5
    assert info["sig.wav@1-"]["samples"] == 3 * SR and info["b.flac"]["samples"] == 48000
    assert info["mine"]["samples"] == 1600 and info["sig.wav@0-0.25"]["samples"] == 11025
    jsonl = folder / "rows.jsonl"
    jsonl.write_text("\n".join(json.dumps({k: (float(v) if k in ("start", "end") else v)
                                           for k, v in row.items() if v != ""})
                               for row in rows) + "\n")
    r = invoke("extract", "--files", jsonl, tmp_path / "jsonl.h5", *FAST)
    assert r.exit_code == 0, r.output
    assert_same(out, tmp_path / "jsonl.h5")


def test_text_list_relative_to_its_folder_and_stdin_relative_to_cwd(folder, tmp_path):
    lists = folder.parent / "lists"
    lists.mkdir(exist_ok=True)
    lst = lists / "files.txt"
    lst.write_text("# made by hand\n../audio/sig.wav\n\n../audio/b.flac\n")
    out = tmp_path / "text.h5"
    r = invoke("extract", "--files", lst, out, *FAST)
    assert r.exit_code == 0, r.output
    assert keys_of(out) == ["../audio/b.flac", "../audio/sig.wav"]
    # find ... | nnaudio extract --files - OUT: paths relative to the current folder
    data = b"sig.wav\nb.flac\n"
    r = subprocess.run([*CMD, "--files", "-", str(tmp_path / "stdin.h5"), *FAST, "--json"],
                       input=data, capture_output=True, cwd=folder, timeout=300,
                       env=dict(os.environ, PYTHONPATH=str(Path(audio.__file__).parents[1])))
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["input_list"] == {"name": "-", "sha256": hashlib.sha256(data).hexdigest()}
    assert keys_of(tmp_path / "stdin.h5") == ["b.flac", "sig.wav"]
    with h5py.File(tmp_path / "stdin.h5") as h5:
        assert h5.attrs["input_list"] == "-"
        assert h5.attrs["input_list_sha256"] == hashlib.sha256(data).hexdigest()
    with open_features(out) as a, open_features(tmp_path / "stdin.h5") as b:
        for k in ("b.flac", "sig.wav"):
            assert np.array_equal(a["../audio/" + k], b[k])


# --- segments ------------------------------------------------------------------------------

@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
def test_segment_equals_the_span_cut_out_as_its_own_file(folder, tmp_path, streamed):
    """Tolerance: 1e-5 of the clip's peak (the two may sit in different batches; the
    values are float32 sums). ``streamed``: segments longer than --segment-seconds go
    block by block through the streaming reader, seek included."""
    spans = [("sig.wav", 0.5, 2.0), ("sig.wav", 1.25, 3.75), ("b.flac", 0.25, 2.5)]
    rows, cuts = [], {}
    for path, start, end in spans:
        x, sr = sf.read(folder / path, dtype="float32")
        cut = tmp_path / f"cut_{Path(path).stem}_{start}_{end}.wav"
        sf.write(cut, x[round(start * sr):round(end * sr)], sr, subtype="FLOAT")
        rows.append({"path": str(folder / path), "start": start, "end": end})
        rows.append({"path": str(cut)})
        cuts[segment_key(str(folder / path), start, end)] = str(cut)
    lst = write_csv(tmp_path / "rows.csv", rows)
    out = tmp_path / "o.h5"
    extra = ["--segment-seconds", "0.5", "--batch-seconds", "1"] if streamed else []
    r = invoke("extract", "--files", lst, out, *FAST, *extra, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout[r.stdout.index("{"):])["streamed_files"] == (6 if streamed else 0)
    with open_features(out) as ff:
        for seg, cut in cuts.items():
            a, b = ff[seg], ff[cut]
            assert a.shape == b.shape and a.shape[0] > 40, seg
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-5 * float(np.abs(b).max()),
                                       err_msg=seg)
        whole = ff[cuts[segment_key(str(folder / "sig.wav"), 0.5, 2.0)]]
        other = ff[cuts[segment_key(str(folder / "sig.wav"), 1.25, 3.75)]]
        assert np.abs(whole[:40] - other[:40]).max() > 1e-3 * np.abs(whole).max()


class _Recorder:
    """Wraps ``sf.SoundFile.read`` to record ``(position before, frames asked)``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[int, int]] = []
        real = sf.SoundFile.read

        def read(f: sf.SoundFile, frames: int = -1, *args, **kwargs):
            self.calls.append((f.tell(), frames))
            return real(f, frames, *args, **kwargs)

        monkeypatch.setattr(sf.SoundFile, "read", read)


def test_span_read_seeks_and_reads_only_the_span(folder, monkeypatch):
    path = str(folder / "sig.wav")
    whole = sf.read(path, dtype="float32")[0]
    rec = _Recorder(monkeypatch)
    res = audio.decode_task(path, "k", SR, True, sys.maxsize, "reject", (1.0, 1.5))
    assert res.status == "ok", res.reason
    assert rec.calls == [(SR, SR // 2)]  # positioned by a seek, nothing else decoded
    assert res.extra["span"] == (SR, SR + SR // 2) and res.info.samples == SR // 2
    np.testing.assert_array_equal(res.audio[0], whole[SR:SR + SR // 2])
    rec.calls.clear()
    info = audio.SourceInfo("k")
    blocks = list(audio.stream_rates(path, info, (22050.0,), True, block=4096, start=SR,
                                     stop=SR + SR // 2))
    assert rec.calls[0] == (SR, 4096) and sum(n for _, n in rec.calls) == SR // 2
    assert [last for _, last in blocks] == [False] * (len(blocks) - 1) + [True]
    assert info.samples == SR // 2
    streamed = np.concatenate([b[22050.0] for b, _ in blocks], axis=1)
    one_shot = audio.decode_task(path, "k", 22050.0, True, sys.maxsize, "reject", (1.0, 1.5))
    np.testing.assert_allclose(streamed, one_shot.audio, rtol=0, atol=1e-6)


def test_skip_frames_reads_and_drops_where_the_format_cannot_seek():
    class Unseekable:
        def __init__(self) -> None:
            self.pos = 0

        def seekable(self) -> bool:
            return False

        def read(self, n: int, **kwargs) -> np.ndarray:
            got = max(0, min(n, 1000 - self.pos))
            self.pos += got
            return np.zeros((got, 1), np.float32)

    f = Unseekable()
    audio.skip_frames(f, 700)  # type: ignore[arg-type]
    assert f.pos == 700
    with pytest.raises(InputError, match="stream ended before frame 2000"):
        audio.skip_frames(Unseekable(), 2000)  # type: ignore[arg-type]


def test_spans_past_the_end_are_failed_rows_naming_the_span(folder, tmp_path):
    lst = write_csv(tmp_path / "rows.csv", [
        {"path": str(folder / "sig.wav"), "start": 3.5, "end": 5},
        {"path": str(folder / "sig.wav"), "start": 4, "end": ""},
        {"path": str(folder / "sig.wav"), "start": 3.5, "end": ""}])
    out = tmp_path / "o.h5"
    r = invoke("extract", "--files", lst, out, *FAST)
    assert r.exit_code == 3, r.output
    p = str(folder / "sig.wav")
    with open_features(out) as ff:
        assert ff.failed == {
            f"{p}@3.5-5": "span ends at 5 s, past the end of the file (4 s; leave end empty "
                          "to read to the end)",
            f"{p}@4-": "span starts at 4 s, not before the end of the file (4 s)"}
        assert ff.info(f"{p}@3.5-")["samples"] == SR // 2


@pytest.mark.parametrize("text, name, message", [
    ("path,start,end\nsig.wav,2,1\n", "l.csv", "l.csv line 2: start 2 s is not before end 1 s"),
    ("path,start,end\nsig.wav,1,1\n", "l.csv", "l.csv line 2: start 1 s is not before end 1 s"),
    ("path,start,end\nsig.wav,-0.5,1\n", "l.csv", "l.csv line 2: start '-0.5' is negative"),
    ("path,start,end\nsig.wav,nan,\n", "l.csv",
     "l.csv line 2: start 'nan' is not a finite number of seconds"),
    ("path,start,end\nsig.wav,1,two\n", "l.csv",
     "l.csv line 2: end 'two' is not a number of seconds"),
    ("path,start,end\nsig.wav,0,1\nb.flac,,\nsig.wav,0.0,1.0\n", "l.csv",
     "key 'sig.wav@0-1' is given twice: l.csv line 2 and line 4"),
    ("sig.wav\nb.flac\n./sig.wav\n", "l.txt",
     "key 'sig.wav' is given twice: l.txt line 1 and line 3"),
    ("file,start\nsig.wav,1\n", "l.csv", "l.csv: a CSV list needs a header row with a 'path' "
     "column (and optional key, start, end)"),
    ('{"path": "sig.wav", "end": "x"}\n', "l.jsonl",
     "l.jsonl line 1: end 'x' is not a number of seconds"),
    ('{"path": "sig.wav", "end": true}\n', "l.jsonl",
     "l.jsonl line 1: end True is not a number of seconds"),
    ('["sig.wav"]\n', "l.jsonl", 'l.jsonl line 1: not a JSON object with a "path"'),
    ('{"start": 1}\n', "l.jsonl", "l.jsonl line 1: no path"),
])
def test_impossible_values_are_usage_errors_naming_the_row(folder, tmp_path, monkeypatch,
                                                           text, name, message):
    (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    r = invoke("extract", "--files", name, "o.h5", *FAST)
    assert r.exit_code == 2, r.output
    assert one_error(r) == message
    assert not (tmp_path / "o.h5").exists()


def test_list_usage(folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("empty.txt").write_text("# nothing\n\n")
    r = invoke("extract", "--files", "empty.txt", "o.h5", *FAST)
    assert r.exit_code == 1 and one_error(r) == "--files empty.txt: the list holds no inputs"
    r = invoke("extract", "--files", "none.txt", "o.h5", *FAST)
    assert r.exit_code == 2
    assert one_error(r) == "--files: cannot read none.txt: no such file or directory"
    r = invoke("extract", "--files", "empty.txt", folder, "o.h5", *FAST)
    assert r.exit_code == 2
    assert one_error(r) == "with --files LIST give only OUTPUT (the list replaces INPUT_DIR)"
    r = invoke("extract", "--files", "empty.txt", "o.h5", "--include", "*.wav", *FAST)
    assert r.exit_code == 2 and "--include/--exclude" in one_error(r)
    r = invoke("extract", folder, *FAST)
    assert r.exit_code == 2 and one_error(r) == "Missing argument 'output'."
    assert not (tmp_path / "o.h5").exists()


# --- resume, shards, provenance --------------------------------------------------------------

def segment_rows() -> list[dict]:
    """200 segments: 50 per file of 4 noise files of 10 s, 0.2 s each, tiling the file."""
    rows = []
    for f in range(4):
        for k in range(50):
            rows.append({"path": f"n{f}.wav", "start": number_text(0.2 * k),
                         "end": number_text(0.2 * (k + 1))})
    return rows


@pytest.fixture(scope="module")
def segments(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A 200-row segment list, its clean run (one subprocess) and the run's arguments."""
    root = tmp_path_factory.mktemp("segments")
    rng = np.random.default_rng(7)
    for f in range(4):
        sf.write(root / f"n{f}.wav", 0.1 * rng.standard_normal(160000).astype(np.float32),
                 16000)
    lst = write_csv(root / "segments.csv", segment_rows())
    clean = root / "clean.h5"
    r = subprocess.run([*CMD, "--files", str(lst), str(clean), *SEG_ARGS], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return root, lst, clean


@pytest.mark.slow
def test_sigkill_then_resume_on_a_200_row_segment_list_equals_a_clean_run(segments, tmp_path):
    root, lst, clean = segments
    out = tmp_path / "out.h5"
    assert len(keys_of(clean)) == 200
    log = tmp_path / "stderr.txt"
    with open(log, "w") as fe:
        proc = subprocess.Popen([*CMD, "--files", str(lst), str(out), *SEG_ARGS],
                                stdout=subprocess.DEVNULL, stderr=fe, start_new_session=True)
        try:
            wait_for_part(out, proc, timeout=300)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL, log.read_text()
    assert not out.exists()
    # a list whose key set changed (one row dropped) is refused; the parts stay
    rows = segment_rows()
    changed = write_csv(tmp_path / "changed.csv", rows[1:])
    r = subprocess.run([*CMD, "--files", str(changed), str(out), *SEG_ARGS, "--resume"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stderr
    assert "made with different settings (differs: input_rows)" in one_error(r)
    # the same rows in another order, in another list file: the same inputs, resumed
    random.Random(3).shuffle(rows)
    shuffled = write_csv(root / "shuffled.csv", rows)  # relative paths: next to the audio
    r = subprocess.run([*CMD, "--files", str(shuffled), str(out), *SEG_ARGS, "--resume",
                        "--json"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert 0 < summary["resumed_files"] < 200 and summary["files"] == 200
    assert summary["input_list"]["sha256"] == hashlib.sha256(shuffled.read_bytes()).hexdigest()
    assert_same(clean, out)  # byte-identical features, same keys and index rows
    with h5py.File(out) as a, h5py.File(clean) as b:
        for name in ("input_rows_hash", "resume_hash"):
            assert a.attrs[name] == b.attrs[name], name
        assert b.attrs["input_list_sha256"] == hashlib.sha256(lst.read_bytes()).hexdigest()
        assert a.attrs["input_list"] == str(shuffled)


@pytest.mark.slow
def test_shards_of_a_list_merge_into_the_clean_run(segments, tmp_path):
    root, lst, clean = segments
    out = tmp_path / "feats.h5"
    shard_keys = []
    for i in range(2):
        r = subprocess.run([*CMD, "--files", str(lst), str(out), *SEG_ARGS, "--shard",
                            f"{i}/2"], capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        shard_keys.append(keys_of(shard_path(out, i, 2)))
    assert shard_keys[0] and shard_keys[1] and shard_keys[0] + shard_keys[1] == keys_of(clean)
    r = subprocess.run([sys.executable, "-m", "nnaudio_cli", "merge",
                        *(str(shard_path(out, i, 2)) for i in range(2)), str(out), "--copy"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert_same(clean, out)
