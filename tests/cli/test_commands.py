"""The shape every command shares: --help examples, shell completion, -q/-v, `nnaudio presets`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tomllib
from typer.testing import CliRunner

from nnaudio_cli.app import app
from nnaudio_cli.config import RATE_PARAM

COMMANDS = ("extract", "merge", "info", "invert", "benchmark", "export", "presets", "plot")
CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def run(*args: object, **kw):
    return CliRunner().invoke(app, [str(a) for a in args], prog_name="nnaudio", **kw)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_two_or_three_examples_of_the_command(command):
    r = run(command, "--help")
    assert r.exit_code == 0, r.output
    examples = r.stdout.split("Examples:", 1)[1]
    shown = [ln.strip() for ln in examples.splitlines() if ln.strip()]
    assert 2 <= len(shown) <= 3, shown
    assert all(ln.startswith(f"nnaudio {command}") for ln in shown), shown


@pytest.mark.parametrize("command", COMMANDS)
def test_quiet_and_verbose_are_the_same_flags_everywhere(command):
    help_text = run(command, "--help").stdout
    assert "-q, --quiet" in help_text and "-v, --verbose" in help_text
    assert "only errors and the final result" in " ".join(help_text.split())


def test_quiet_with_verbose_is_one_line_usage_error(tmp_path):
    r = run("presets", "-q", "-v")
    assert r.exit_code == 2
    assert r.stderr.splitlines() == ["nnaudio: error: --quiet and --verbose exclude each other"]


def test_show_completion_prints_a_bash_script(monkeypatch):
    # typer picks the shell from the process tree (shellingham), not from the argument: pin it,
    # so the test does not depend on what launched pytest (a bash, a plain sh, no shell at all).
    import shellingham

    monkeypatch.setattr(shellingham, "detect_shell", lambda *a, **k: ("bash", "/bin/bash"))
    r = run("--show-completion", "bash")
    assert r.exit_code == 0, r.output
    assert "_NNAUDIO_COMPLETE=complete_bash" in r.stdout
    assert "complete -o default -F _nnaudio_completion nnaudio" in r.stdout


def test_completion_env_var_completes_command_names():
    env = {"_NNAUDIO_COMPLETE": "complete_bash", "COMP_WORDS": "nnaudio pre", "COMP_CWORD": "1"}
    r = run(env=env)
    assert r.exit_code == 0, r.output
    assert r.stdout.split() == ["presets"]


def test_install_completion_is_offered():
    assert "--install-completion" in run("--help").stdout


def _shipped() -> dict[str, dict]:
    return {p.stem: tomllib.loads(p.read_text()) for p in sorted(CONFIGS.glob("*.toml"))}


def test_presets_json_lists_every_shipped_preset_with_transform_rate_and_params(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./configs here: the repository's presets only
    r = run("presets", "--json")
    assert r.exit_code == 0, r.output
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    shipped = _shipped()
    assert set(rows) == set(shipped) and len(rows) >= 7
    for name, toml in shipped.items():
        row = rows[name]
        assert row["transform"] == toml["transform"], name
        assert row["sr"] == toml["sr"], name
        # the resolved parameters: the preset's, plus the sample rate the transform is built at
        # (under the transform's own name for it: CFP calls it fs)
        rate = RATE_PARAM.get(toml["transform"], "sr")
        assert row["params"] == {**toml["params"], rate: toml["sr"]}, name
        assert row["description"] == toml["description"], name
    assert rows["mel128"]["params"]["n_mels"] == 128
    assert rows["cqt84"]["params"]["n_bins"] == 84


def test_presets_table_shows_key_parameters_and_verbose_shows_all(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = run("presets")
    assert r.exit_code == 0, r.output
    text = " ".join(r.stdout.split())
    for name in _shipped():
        assert name in text
    assert "n_mels=128" in text and "MelSpectrogram" in text and "22050" in text
    assert "htk=" not in text  # not a key parameter
    assert "htk=False" in " ".join(run("presets", "-v").stdout.split())


def test_local_preset_shadows_the_shipped_one_and_a_broken_one_is_listed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "mel128.toml").write_text(
        'transform = "mel"\nsr = 16000\n[params]\nn_mels = 40\n')
    (tmp_path / "configs" / "broken.toml").write_text('transform = "mel"\nbogus = 1\n')
    rows = {row["name"]: row for row in json.loads(run("presets", "--json").stdout)}
    assert rows["mel128"]["sr"] == 16000 and rows["mel128"]["params"] == {"n_mels": 40, "sr": 16000}
    assert rows["mel128"]["transform"] == "MelSpectrogram"
    assert "unknown key 'bogus'" in rows["broken"]["error"]
    assert "stft" in rows  # the shipped presets are still there
