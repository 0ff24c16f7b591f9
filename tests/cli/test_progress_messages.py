"""Progress and result messages say what happened (issues 22 and 23).

* the progress count never passes its total and the ETA is never negative, also when
  inputs are computed again after their part failed verification (kept from an earlier run
  or finished in this one);
* a parts folder deleted or moved mid-run is named as such, not blamed on free space;
* ``-q`` still prints the final result line, and counts read right ("1 file", "2 files").
"""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
import soundfile as sf
from support import invoke, make_inputs

import nnaudio_cli.plumbing.progress
from nnaudio_cli.extract.parts import PartStore, parts_dir
from nnaudio_cli.plumbing.progress import PlainReporter, Reporter
from nnaudio_cli.plumbing.text import count

ARGS = ["-c", "mel128", "--batch-seconds", "2", "--workers", "0", "--threads", "1"]


def lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


class Recorder(Reporter):
    """Every (done, total) the progress showed."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[int, int]] = []

    def start(self, total: int) -> None:
        super().start(total)
        self.seen.append((self.done, self.total))

    def advance(self, audio_seconds: float, failed: bool = False) -> None:
        super().advance(audio_seconds, failed)
        self.seen.append((self.done, self.total))
        assert self.eta() is None or self.eta() >= 0


@pytest.fixture
def recorders(monkeypatch) -> list[Recorder]:
    """The reporters of the runs of a test, one per run, in order."""
    made: list[Recorder] = []

    def make(quiet: bool = False, label: str = "") -> Recorder:
        made.append(Recorder())
        return made[-1]

    monkeypatch.setattr(nnaudio_cli.plumbing.progress, "make_reporter", make)
    return made


def lose_once(monkeypatch, n: int) -> list[str]:
    """Make the end-of-run verification lose the parts of ``n`` finished inputs once (as a
    checksum failure would); returns the keys lost."""
    original = PartStore.verify_sources
    lost: list[str] = []

    def verify_sources(self: PartStore) -> list[str]:
        if lost:
            return original(self)
        keys = sorted(self.sources)[:n]
        for k in keys:
            del self.sources[k]
        lost.extend(keys)
        return keys

    monkeypatch.setattr(PartStore, "verify_sources", verify_sources)
    return lost


def test_count_is_singular_for_one_only():
    assert [count(n, "file") for n in (0, 1, 2)] == ["0 files", "1 file", "2 files"]
    assert count(1, "process", "processes") == "1 process"
    assert count(3, "process", "processes") == "3 processes"


def test_plain_progress_counts_back_and_never_shows_a_negative_eta():
    rep = PlainReporter(stream=io.StringIO(), interval=0.0)
    rep.start(3)
    for _ in range(3):
        rep.advance(1.0)
    rep.redo(2, failed=0, audio_seconds=2.0)  # two parts failed verification
    assert (rep.done, rep.total, rep.audio_seconds) == (1, 3, 1.0)
    rep.extend(1)  # one input kept from before lost its part too
    for _ in range(3):
        rep.advance(1.0)
    assert (rep.done, rep.total) == (4, 4)
    rep.done = 5  # whatever happens, the ETA is not negative
    assert rep.eta() == 0.0 and "ETA -" not in rep._line()
    rep.start(1)
    rep.done = 1
    assert "1/1 file," in rep._line()


def test_inputs_computed_again_do_not_push_progress_past_its_total(
    tmp_path, monkeypatch, recorders
):
    src = make_inputs(tmp_path / "in", n=8)
    lost = lose_once(monkeypatch, 3)
    r = invoke("extract", src, tmp_path / "o.h5", *ARGS)
    assert r.exit_code == 0, r.output
    assert len(lost) == 3
    seen = recorders[-1].seen
    assert all(done <= total for done, total in seen), seen
    assert seen[-1] == (8, 8)


def test_kept_inputs_lost_at_the_end_join_the_total(tmp_path, monkeypatch, recorders):
    src = make_inputs(tmp_path / "in", n=6)
    out = tmp_path / "o.h5"
    assert invoke("extract", src, out, *ARGS).exit_code == 0
    lose_once(monkeypatch, 2)
    r = invoke("extract", src, out, *ARGS, "--resume")  # every input kept: nothing to do
    assert r.exit_code == 0, r.output
    seen = recorders[-1].seen
    assert seen[0] == (0, 0)
    assert all(done <= total for done, total in seen), seen
    assert seen[-1] == (2, 2)


@pytest.mark.parametrize("how", ["deleted", "moved"])
def test_parts_folder_gone_mid_run_is_named_not_blamed_on_free_space(
    tmp_path, monkeypatch, how
):
    src = make_inputs(tmp_path / "in", n=12)
    out = tmp_path / "o.h5"
    original = PartStore.commit
    commits = [0]

    def commit(self: PartStore) -> None:
        original(self)
        commits[0] += 1
        if commits[0] == 2:
            if how == "deleted":
                shutil.rmtree(self.folder)
            else:
                self.folder.rename(tmp_path / "elsewhere")

    monkeypatch.setattr(PartStore, "commit", commit)
    r = invoke("extract", src, out, *ARGS, "-q")
    assert r.exit_code == 1, r.output
    err = lines(r.stderr)
    assert len(err) == 1, err
    assert f"work folder {parts_dir(out)}/ was deleted or moved away" in err[0], err
    assert "--resume" in err[0] and "free space" not in err[0], err
    assert not out.exists()


def test_quiet_still_prints_the_result_and_one_file_reads_singular(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    t = np.arange(22050) / 22050
    sf.write(src / "tone.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 22050)
    out = tmp_path / "o.h5"
    r = invoke("extract", src, out, *ARGS, "-q")
    assert r.exit_code == 0, r.output
    err = lines(r.stderr)
    assert len(err) == 1 and err[0].startswith(f"nnaudio: wrote {out}: 1/1 file, "), err
    r = invoke("invert", out, tmp_path / "wav", "-q")
    assert r.exit_code == 0, r.output
    err = lines(r.stderr)
    assert len(err) == 1 and err[0].startswith("nnaudio: wrote 1 file to "), err


def test_interrupted_message_counts_one_input_in_the_singular():
    from nnaudio_cli.extract.run import Interrupted

    assert str(Interrupted(0, 1)) == "interrupted; 0 of 1 input kept"
    assert str(Interrupted(1, 2)) == "interrupted; 1 of 2 inputs kept"
