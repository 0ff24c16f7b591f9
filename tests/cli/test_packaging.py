"""The wheel carries every preset and an installed package finds them from any folder
(:mod:`nnaudio_cli.preset_paths`); the distribution name and the install hints agree."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib
from support import make_inputs

REPO = Path(__file__).resolve().parents[2]
PRESETS = sorted(p.stem for p in (REPO / "configs").glob("*.toml"))
DIST = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["name"]


@pytest.fixture(scope="module")
def unpacked_wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the sources (no network, no build isolation: the
    test venv's setuptools), unpacked as pip would install it, outside any checkout."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, src / name)
    for name in ("nnaudio_core", "nnaudio_cli", "configs"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp / "dist"), str(src)],
        capture_output=True, text=True, timeout=300, cwd=tmp)
    assert r.returncode == 0, r.stderr
    wheel = next((tmp / "dist").glob("*.whl"))
    site = tmp / "site"
    zipfile.ZipFile(wheel).extractall(site)
    return site


def run_installed(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m nnaudio_cli ARGS`` importing only the unpacked wheel (and the venv's
    dependencies), from ``cwd``."""
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([sys.executable, "-m", "nnaudio_cli", *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd, env=env)


def test_the_wheel_holds_every_preset_as_package_data(unpacked_wheel):
    shipped = sorted(p.stem for p in (unpacked_wheel / "nnaudio_cli" / "presets_data")
                     .glob("*.toml"))
    assert shipped == PRESETS and len(PRESETS) >= 9
    for name in PRESETS:  # the same bytes as the edited files
        assert ((unpacked_wheel / "nnaudio_cli" / "presets_data" / f"{name}.toml").read_bytes()
                == (REPO / "configs" / f"{name}.toml").read_bytes())
    meta = next(unpacked_wheel.glob("*.dist-info")) / "METADATA"
    assert f"Name: {DIST}" in meta.read_text()


def test_installed_package_lists_and_uses_presets_from_any_folder(unpacked_wheel, tmp_path):
    r = run_installed(unpacked_wheel, tmp_path, "presets", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [row["name"] for row in rows] == PRESETS
    data = unpacked_wheel / "nnaudio_cli" / "presets_data"
    assert all(Path(row["path"]).parent == data and "error" not in row for row in rows)
    audio = make_inputs(tmp_path / "audio", n=2)
    r = run_installed(unpacked_wheel, tmp_path, "extract", str(audio), "f.h5", "-c", "mel128",
                      "--device", "cpu", "--workers", "0", "--json", "-q")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["features"] == ["mel128"] and summary["ok"] == 2


def test_local_configs_shadow_the_shipped_presets_of_an_install(unpacked_wheel, tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "mel128.toml").write_text(
        'transform = "mel"\nsr = 16000\n[params]\nn_mels = 40\n')
    r = run_installed(unpacked_wheel, tmp_path, "presets", "--json")
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert sorted(rows) == PRESETS
    assert rows["mel128"]["params"]["n_mels"] == 40
    assert Path(rows["mel128"]["path"]) == tmp_path / "configs" / "mel128.toml"
    assert rows["stft"]["path"].startswith(str(unpacked_wheel))


def test_an_unknown_preset_of_an_install_lists_the_shipped_ones(unpacked_wheel, tmp_path):
    r = run_installed(unpacked_wheel, tmp_path, "extract", str(tmp_path), "f.h5", "-c", "mel12")
    assert r.returncode == 2
    assert "did you mean 'mel128'?" in r.stderr and ", ".join(PRESETS) in r.stderr


def test_install_hints_name_this_distribution():
    """Every ``pip install 'X[extra]'`` in the code, the README and docs/ installs this project,
    not the unrelated ``nnaudio`` on PyPI (the original nnAudio)."""
    hints = set()
    for path in [*REPO.glob("nnaudio_c*/**/*.py"), REPO / "README.md", *REPO.glob("docs/*.md")]:
        hints |= set(re.findall(r"pip install '([\w-]+)\[", path.read_text()))
    assert hints == {DIST}  # ('.[plot]', this checkout, is not a name)
    assert DIST != "nnaudio"
    from nnaudio_cli import DISTRIBUTION

    assert DISTRIBUTION == DIST
