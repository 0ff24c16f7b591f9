"""Quick to start (issue 23): what does not compute features does not import torch.

``import torch`` is 2-3 s of every command that does it, so ``--version``, ``--help`` (of the
program and of every command), ``presets`` and an ``extract`` refused for a bad flag must not;
nor must the decoder processes. Checked with ``-X importtime`` (every import the process
made), never with a timing. Also: a Ctrl-C a command does not handle itself is one line and
exit 130, where Typer alone exits 130 silently.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from support import HANG_S, invoke

from nnaudio_cli import schema
from nnaudio_cli.commands import presets as presets_command

COMMANDS = ["extract", "merge", "info", "invert", "benchmark", "export", "presets", "plot"]


def imported(args: list[str], env: dict[str, str] | None = None) -> tuple[int, set[str], str]:
    """Run ``python -X importtime -m nnaudio_cli ARGS``: (exit code, modules imported,
    the stderr lines that are not import times)."""
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "nnaudio_cli", *args],
                       capture_output=True, text=True, timeout=HANG_S * 4,
                       env=dict(os.environ, **(env or {})))
    mods, rest = set(), []
    for line in r.stderr.splitlines():
        if line.startswith("import time:"):
            mods.add(line.rsplit("|", 1)[1].strip())
        else:
            rest.append(line)
    return r.returncode, mods, "\n".join(rest)


@pytest.mark.parametrize(
    "args",
    [["--version"], ["--help"], ["presets"], ["presets", "--json"],
     *([c, "--help"] for c in COMMANDS)],
    ids=lambda a: " ".join(a),
)
def test_commands_that_compute_nothing_do_not_import_torch(args):
    code, mods, err = imported(args)
    assert code == 0, err
    assert "nnaudio_cli.app" in mods  # the measurement saw the program's imports
    assert "torch" not in mods, sorted(m for m in mods if m.startswith("torch"))[:5]


def test_version_reads_the_torch_version_from_package_metadata():
    from importlib import metadata

    r = subprocess.run([sys.executable, "-m", "nnaudio_cli", "--version"],
                       capture_output=True, text=True, timeout=HANG_S * 4)
    assert r.returncode == 0, r.stderr
    assert f"(torch {metadata.version('torch')}," in r.stdout, r.stdout


def test_extract_refuses_a_bad_flag_before_importing_torch(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    sf.write(src / "a.wav", np.zeros(2205, np.float32), 22050)
    code, mods, err = imported(["extract", str(src), str(tmp_path / "o.h5"), "-c", "mel128",
                                "--set", "n_mels=abc"])
    assert code == 2, err
    assert "n_mels" in err and "torch" not in mods, err


def test_decoder_processes_import_no_torch(tmp_path):
    """The decoders start (and decode) while the main process imports torch: a worker that
    imported it would cost its seconds again, in every worker."""
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(22050, np.float32), 22050)
    script = (
        "import sys\n"
        "from nnaudio_cli.extract.decode import DecodeSettings, Job, make_decoder\n"
        "dec = make_decoder(1)\n"
        f"jobs = [Job(0, {str(wav)!r}, 'a.wav', 4 * 22050)]\n"
        "res = list(dec.decode(jobs, DecodeSettings((16000,), True, 'reject'), budget=1 << 24))\n"
        "dec.close()\n"
        "assert res[0][1].status == 'ok', res\n"
        "assert 'torch' not in sys.modules\n"
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=HANG_S * 4, env=dict(os.environ, PYTHONPROFILEIMPORTTIME="1"))
    assert r.returncode == 0, r.stderr[-3000:]
    mods = {ln.rsplit("|", 1)[1].strip() for ln in r.stderr.splitlines()
            if ln.startswith("import time:")}
    assert "nnaudio_cli.extract.worker" in mods  # the worker's own imports were seen too
    assert "torch" not in mods


def test_stored_schema_is_the_transforms_own():
    """``presets`` and the flag checks read the transforms' parameters from a stored copy;
    after changing a constructor, run ``python -m nnaudio_cli.schema``."""
    assert schema.specs() == schema.live(), "stale: run python -m nnaudio_cli.schema"


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_a_command_does_not_handle_is_one_line(monkeypatch, signum, code):
    """Before: Typer turned the KeyboardInterrupt into exit 130 with no message at all (and
    SIGTERM killed the process)."""

    def signalled() -> list:
        os.kill(os.getpid(), signum)
        time.sleep(HANG_S)  # the handler runs here (another thread may take the delivery)
        raise AssertionError("the signal did not interrupt")

    monkeypatch.setattr("nnaudio_cli.presets.list_presets", signalled)
    # what the command found: Python's default handler, or SIG_IGN where the test run was
    # started in the background by a non-interactive shell (nohup ... &)
    before = signal.getsignal(signal.SIGINT)
    r = invoke(presets_command.NAME)
    assert r.exit_code == code, r.output
    assert r.stderr.strip().splitlines() == ["nnaudio: error: interrupted"], r.stderr
    assert signal.getsignal(signal.SIGINT) is before  # restored


def test_preload_imports_in_a_thread_and_reraises_its_error():
    from nnaudio_cli.plumbing.preload import Preload, running

    Preload(("json", "nnaudio_core.params")).wait()
    loading = Preload(("no_such_module_xyz",))
    with pytest.raises(ModuleNotFoundError):
        loading.wait()
    assert not running()  # the program may now exit normally


def test_package_import_is_cheap():
    r = subprocess.run([sys.executable, "-c", "import sys, nnaudio_core, nnaudio_cli.config;"
                        "print(nnaudio_core.__version__, 'torch' in sys.modules)"],
                       capture_output=True, text=True, timeout=HANG_S * 4,
                       cwd=Path(__file__).parent)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [__import__("nnaudio_core").__version__, "False"]
