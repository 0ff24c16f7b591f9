"""Damaged inputs get reasons that say what happened, and decoder libraries print nothing
on stderr themselves (issue 12, section 4)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from support import tone

from nnaudio_cli.errors import InputError
from nnaudio_cli.extract.audio import SourceInfo, decode_task, stream_file

SR = 44100
HAS_MP3 = "MP3" in sf.available_formats()
needs_mp3 = pytest.mark.skipif(not HAS_MP3, reason="this libsndfile cannot write MP3")


@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("damaged")
    sf.write(d / "good.flac", tone(SR, 3.0), SR)
    flac = (d / "good.flac").read_bytes()
    (d / "truncated.flac").write_bytes(flac[: len(flac) // 2])
    (d / "fake.mp3").write_text("this is not audio\n" * 10)
    if HAS_MP3:
        sf.write(d / "good.mp3", tone(SR, 3.0), SR)
        mp3 = (d / "good.mp3").read_bytes()
        # the first third decodes, then the frames are zeros: no valid header follows
        (d / "corrupt.mp3").write_bytes(mp3[: len(mp3) // 3] + bytes(len(mp3) - len(mp3) // 3))
        rng = np.random.default_rng(0)
        (d / "garbage.mp3").write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    return d


def decode(path: Path):
    return decode_task(str(path), path.name, 22050, True, 10**9)


def test_truncated_flac_is_a_documented_truncated_reason(damaged, capfd):
    r = decode(damaged / "truncated.flac")
    assert r.status == "failed"
    assert r.reason.startswith("truncated: FLAC decoder lost sync"), r.reason
    assert "declared 132300 samples" in r.reason
    assert capfd.readouterr().err == ""


def test_fake_mp3_is_not_an_audio_file_without_the_pipe_guess(damaged, capfd):
    r = decode(damaged / "fake.mp3")
    assert r.status == "failed"
    assert r.reason.startswith("not an audio file ("), r.reason
    assert "pipe" not in r.reason and "does not exist" not in r.reason
    assert capfd.readouterr().err == ""


@needs_mp3
def test_corrupt_mp3_says_corrupt_stream_and_mpg123_stays_quiet(damaged, capfd):
    assert decode(damaged / "good.mp3").status == "ok"
    r = decode(damaged / "corrupt.mp3")
    assert r.status == "failed"
    assert r.reason.startswith("corrupt MP3 stream ("), r.reason
    assert "Unspecified internal error" not in r.reason
    assert "Illegal Audio-MPEG-Header" in r.reason  # libmpg123's note, moved into the reason
    err = capfd.readouterr().err
    assert "Illegal Audio-MPEG-Header" not in err and "Note:" not in err, err


@needs_mp3
def test_random_bytes_named_mp3_are_not_an_audio_file_quietly(damaged, capfd):
    r = decode(damaged / "garbage.mp3")
    assert r.status == "failed"
    assert r.reason.startswith("not an audio file ("), r.reason
    assert "pipe" not in r.reason
    assert "Note:" not in capfd.readouterr().err


def test_streaming_a_truncated_flac_raises_the_same_reason(damaged, capfd):
    info = SourceInfo(key="truncated.flac")
    with pytest.raises(InputError, match=r"^truncated: FLAC .* before the declared 132300"):
        for _ in stream_file(str(damaged / "truncated.flac"), info, 22050, True, block=4096):
            pass
    assert capfd.readouterr().err == ""


@needs_mp3
def test_streaming_a_corrupt_mp3_is_an_input_error_without_stderr_noise(damaged, capfd):
    info = SourceInfo(key="corrupt.mp3")
    with pytest.raises(InputError, match=r"^corrupt MP3 stream \(Illegal Audio-MPEG-Header"):
        for _ in stream_file(str(damaged / "corrupt.mp3"), info, 22050, True, block=4096):
            pass
    with pytest.raises(InputError, match=r"^not an audio file"):
        next(stream_file(str(damaged / "fake.mp3"), SourceInfo(key="f"), 22050, True))
    assert "Note:" not in capfd.readouterr().err


def test_other_stderr_output_during_a_decode_is_passed_through(damaged, capfd):
    """fd 2 is only borrowed: lines that are not decoder noise reach stderr afterwards."""
    from nnaudio_cli.extract.reasons import decoder_messages

    with decoder_messages() as noise:
        os.write(2, b"Note: Illegal Audio-MPEG-Header 0x00000000 at offset 1.\n")
        os.write(2, b"extract: 1/2 files\n")
    assert noise == ["Illegal Audio-MPEG-Header 0x00000000 at offset 1."]
    assert capfd.readouterr().err == "extract: 1/2 files\n"
    assert decode(damaged / "good.flac").status == "ok"


def test_a_child_forked_during_a_capture_neither_deadlocks_nor_loses_stderr(tmp_path):
    """fork while another thread borrows fd 2: the child gets a fresh lock and its stderr."""
    import threading
    import time

    from nnaudio_cli.extract.reasons import decoder_messages

    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        with decoder_messages():
            entered.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    assert entered.wait(10)
    marker = tmp_path / "child.txt"
    pid = os.fork()
    if pid == 0:  # child: must be able to capture, and fd 2 must be the real stderr again
        code = 1
        try:
            with decoder_messages() as noise:
                os.write(2, b"Note: child note\n")
            st = os.fstat(2)
            marker.write_text(f"{noise}|{st.st_ino}")
            code = 0
        finally:
            os._exit(code)
    try:
        deadline = time.monotonic() + 30  # a deadlock check; ~0.1 s when idle
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child deadlocked on the capture lock")
    finally:
        release.set()
        t.join()
    assert os.waitstatus_to_exitcode(status) == 0
    noise, ino = marker.read_text().split("|")
    assert noise == "['child note']"
    assert int(ino) == os.fstat(2).st_ino  # the child's fd 2 is the parent's real stderr
