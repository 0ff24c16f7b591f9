"""Where ``--config NAME`` and ``nnaudio presets`` look for ``NAME.toml`` (stdlib only: no
torch, so listing presets stays light).

In order, the first holding a name wins:

1. ``./configs`` of the current folder (a user's own presets shadow the shipped ones);
2. the presets shipped inside the installed package, ``nnaudio_cli/presets_data/`` (package
   data, found with :mod:`importlib.resources`; setup.py copies the repository's
   ``configs/*.toml`` there when a wheel is built);
3. the ``configs/`` of the source checkout this code runs from (an editable install or
   ``PYTHONPATH``, where the package holds no copy).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

#: the package-data folder of the shipped presets, inside ``nnaudio_cli``
DATA_DIR = "presets_data"


def shipped_dir() -> Path | None:
    """The folder of the presets that came with this installation (2. or 3. above), or
    ``None`` when there is none (a broken install)."""
    data = resources.files("nnaudio_cli") / DATA_DIR
    if isinstance(data, Path) and data.is_dir():
        return data
    root = Path(__file__).resolve().parents[1]
    if (root / "pyproject.toml").is_file() and (root / "configs").is_dir():
        return root / "configs"
    return None


def preset_dirs() -> tuple[Path, ...]:
    """The folders searched for ``NAME.toml``, in order: ``./configs``, then
    :func:`shipped_dir` (when there is one)."""
    shipped = shipped_dir()
    return (Path.cwd() / "configs",) + ((shipped,) if shipped is not None else ())


def preset_files() -> list[Path]:
    """Every preset file ``--config NAME`` can reach, one per name (the first folder of
    :func:`preset_dirs` holding it), sorted by name."""
    found: dict[str, Path] = {}
    for d in preset_dirs():
        if d.is_dir():
            for f in sorted(d.glob("*.toml")):
                found.setdefault(f.stem, f)
    return [found[k] for k in sorted(found)]
