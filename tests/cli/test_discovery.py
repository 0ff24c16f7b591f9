"""What ``nnaudio extract`` takes from a folder, and what it says about the rest.

No silent skips: every entry not taken is counted by extension (summary line, ``--json``,
``info``), ``-v`` lists them, ``--include``/``--exclude`` choose what is taken, a folder with
nothing to take is one line and exit 1, and an output written inside the input folder is
never taken as an input on a later run.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import soundfile as sf
from support import assert_same, invoke, tone

from nnaudio_cli.extract.discover import EXCLUDED, HIDDEN, NO_EXTENSION, discover, own_files
from nnaudio_cli.extract.parts import parts_dir
from nnaudio_cli.extract.shard import shard_path

FAST = ["-c", "mel128", "--workers", "0"]


def _tree(root: Path, names: list[str]) -> Path:
    """Files ``names`` under ``root``: ``.wav``/``.flac`` ones hold 0.3 s tones."""
    for i, n in enumerate(names):
        p = root / n
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.suffix in (".wav", ".flac"):
            sf.write(p, tone(16000, 0.3, freq=200.0 + 50 * i), 16000)
        else:
            p.write_text("not audio")
    return root


def run_extract(src: Path, out: Path, *args: str):
    """``nnaudio extract SRC OUT ARGS...`` in-process (``exit_code``, ``stdout``,
    ``stderr``)."""
    return invoke("extract", src, out, *args)


def _info(path: Path) -> dict:
    r = invoke("info", path, "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_discover_counts_every_entry_not_taken(tmp_path):
    root = _tree(tmp_path, ["a.wav", "sub/b.flac", "notes.txt", "meta.json", "more/x.txt",
                            "README", ".hidden.wav", ".git/objects/1", ".git/objects/2",
                            "sub/skip_me.wav"])
    found = discover(root, exclude=["*skip_me*"])
    assert found.keys == ["a.wav", "sub/b.flac"]
    assert found.skipped == [(".git", HIDDEN), (".hidden.wav", HIDDEN), ("README", NO_EXTENSION),
                             ("meta.json", ".json"), ("more/x.txt", ".txt"),
                             ("notes.txt", ".txt"), ("sub/skip_me.wav", EXCLUDED)]
    # a hidden folder is one entry, not searched
    assert found.skipped_counts() == {HIDDEN: 2, NO_EXTENSION: 1, EXCLUDED: 1, ".json": 1,
                                      ".txt": 2}
    assert discover(root, include=["sub/*"]).keys == ["sub/b.flac", "sub/skip_me.wav"]
    # patterns are matched against the relative path, '*' crossing '/'
    assert discover(root, include=["*.flac", "a.*"]).keys == ["a.wav", "sub/b.flac"]


def test_own_files_are_neither_taken_nor_counted(tmp_path):
    root = _tree(tmp_path / "in", ["a.wav", "out.wav", "out.wav.partial", "out.shard-1-of-2.wav",
                                   "feats.shard-0-of-2.h5", "sub/out.wav"])
    (root / "out.wav.parts").mkdir()
    (root / "out.wav.parts" / "part-000000.h5").write_text("x")
    ignore = own_files(root, root / "out.wav")
    found = discover(root, ignore=ignore)
    assert found.keys == ["a.wav", "out.shard-1-of-2.wav", "sub/out.wav"]
    assert found.skipped == [("feats.shard-0-of-2.h5", ".h5")]
    # a shard of a sharded run: every shard's files and the merged output's are ours
    ignore = own_files(root, root / "out.shard-0-of-2.wav", base=root / "out.wav")
    assert discover(root, ignore=ignore).keys == ["a.wav", "sub/out.wav"]
    assert discover(root, ignore=own_files(root, tmp_path / "elsewhere.wav")).keys == [
        "a.wav", "out.shard-1-of-2.wav", "out.wav", "sub/out.wav"]


def test_skipped_counts_in_summary_json_info_and_verbose_list(tmp_path):
    src = _tree(tmp_path / "in", ["a.wav", "b.wav", "notes.txt", "labels.txt", "meta.json",
                                  ".DS_Store"])
    out = tmp_path / "o.h5"
    r = run_extract(src, out, *FAST, "--json")
    assert r.exit_code == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["files"] == 2
    assert summary["skipped"] == {"(hidden)": 1, ".json": 1, ".txt": 2}
    last = r.stderr.strip().splitlines()[-1]
    assert last.endswith("; skipped 4 files (.txt 2, (hidden) 1, .json 1) (-v lists them)"), last
    info = _info(out)
    assert info["skipped"] == {"(hidden)": 1, ".json": 1, ".txt": 2}
    r = invoke("info", out)
    assert "skipped      4 files (.txt 2, (hidden) 1, .json 1) of the input folder" in r.stdout
    r = run_extract(src, tmp_path / "v.h5", *FAST, "-v")
    assert r.exit_code == 0, r.stderr
    notes = [ln for ln in r.stderr.splitlines() if ln.startswith("nnaudio: note: skipped: ")]
    assert notes == ["nnaudio: note: skipped: .DS_Store (hidden)",
                     "nnaudio: note: skipped: labels.txt (not an audio extension: .txt)",
                     "nnaudio: note: skipped: meta.json (not an audio extension: .json)",
                     "nnaudio: note: skipped: notes.txt (not an audio extension: .txt)"]


def test_include_and_exclude_choose_what_is_taken(tmp_path):
    src = _tree(tmp_path / "in", ["speech/a.wav", "speech/tmp/b.wav", "music/c.flac",
                                  "music/d.wav"])
    out = tmp_path / "o.h5"
    r = run_extract(src, out, *FAST, "--include", "speech/*", "--include", "*.flac",
                    "--exclude", "*/tmp/*", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["skipped"] == {EXCLUDED: 2}
    with h5py.File(out) as h5:
        assert list(h5["index/key"].asstr()[()]) == ["music/c.flac", "speech/a.wav"]
    r = run_extract(src, tmp_path / "none.h5", *FAST, "--include", "*.mp3")
    assert r.exit_code == 1
    assert r.stderr.strip() == (
        f"nnaudio: error: no audio files matching --include/--exclude under {src}; skipped "
        f"4 files ({EXCLUDED} 4) (looked for .wav .flac .ogg .opus .mp3 .aiff .m4a .mp4 .webm "
        ".mkv .wma ...)")


def test_folder_of_only_skipped_files_is_one_line_exit_1_and_writes_nothing(tmp_path):
    src = _tree(tmp_path / "in", ["a.txt", "b.json"])
    out = tmp_path / "o.h5"
    for _ in range(2):  # nothing is left behind that would block the rerun
        r = run_extract(src, out, "-c", "mel128")
        assert r.exit_code == 1
        assert r.stderr.strip().splitlines() == [
            f"nnaudio: error: no audio files under {src}; skipped 2 files (.json 1, .txt 1) "
            "(looked for .wav .flac .ogg .opus .mp3 .aiff .m4a .mp4 .webm .mkv .wma ...)"]
        assert not out.exists() and not parts_dir(out).exists()


def test_output_inside_the_input_folder_is_not_taken_on_rerun(tmp_path):
    """``extract same same/out.wav`` then ``--resume``: the output (named like audio) is
    neither an input nor a skipped file; the rerun keeps everything (before the fix it
    failed ``out.wav`` as not audio, exit 3)."""
    src = _tree(tmp_path / "same", ["a.wav", "b.wav"])
    out = src / "out.wav"
    r = run_extract(src, out, *FAST, "--json")
    assert r.exit_code == 0, r.stderr
    first = tmp_path / "first.h5"
    first.write_bytes(out.read_bytes())
    r = run_extract(src, out, *FAST, "--resume", "--json")
    assert r.exit_code == 0, r.stderr
    summary = json.loads(r.stdout)
    assert (summary["files"], summary["resumed_files"], summary["skipped"]) == (2, 2, {})
    assert_same(first, out)
    r = run_extract(src, out, *FAST, "--overwrite", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["files"] == 2, r.stderr


def test_shards_written_inside_the_input_folder_are_not_inputs(tmp_path):
    """Shard 1 finishes first; shard 0 must not take its ``.wav``-named file as an input
    (the shards would plan different inputs and not merge)."""
    src = _tree(tmp_path / "same", [f"c{i}.wav" for i in range(6)])
    out = src / "feats.wav"
    args = [*FAST, "--batch-seconds", "0.5"]
    single = tmp_path / "single.h5"  # before the shards: another output would take them
    assert run_extract(src, single, *args).exit_code == 0
    for i in (1, 0):
        r = run_extract(src, out, *args, "--shard", f"{i}/2", "--json")
        assert r.exit_code == 0, r.stderr
        assert json.loads(r.stdout)["skipped"] == {}
    keys = []
    for i in (0, 1):
        with h5py.File(shard_path(out, i, 2)) as h5:
            keys += list(h5["index/key"].asstr()[()])
            plan = h5.attrs["shard_plan"]
    assert keys == [f"c{i}.wav" for i in range(6)]
    with h5py.File(shard_path(out, 0, 2)) as h5:
        assert h5.attrs["shard_plan"] == plan
    r = invoke("merge", *(shard_path(out, i, 2) for i in range(2)), out, "--copy")
    assert r.exit_code == 0, r.output
    assert_same(single, out)
    with h5py.File(out) as h5:
        assert json.loads(h5.attrs["skipped_json"]) == {}
