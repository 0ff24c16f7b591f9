"""The shipped and local presets (``configs/*.toml``) as rows to list (``nnaudio presets``).

A preset is looked up as ``--config NAME`` finds it (:mod:`nnaudio_cli.preset_paths`:
``./configs`` first, then the presets shipped in the package), so a local file shadows a
shipped one of the same name and the list shows the one ``--config`` would use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nnaudio_cli.preset_paths import preset_files

#: Parameters shown in the table's "key parameters" column (in this order) when present.
KEY_PARAMS = ("n_fft", "hop_length", "n_mels", "n_mfcc", "fmin", "n_bins", "bins_per_octave",
              "gamma", "output_format")


def describe_preset(path: Path) -> dict[str, Any]:
    """One preset resolved as ``extract -c PATH`` would: name, path, transform (class
    name), sr (Hz), params, description; ``error`` (one line) instead when it is invalid."""
    from nnaudio_cli.config import ConfigError, load_preset, resolve

    row: dict[str, Any] = {"name": path.stem, "path": str(path)}
    try:
        data = load_preset(path)
        cfg = resolve(str(path))
    except ConfigError as e:
        return {**row, "error": " ".join(str(e).split())}
    return {**row, "transform": cfg.transform, "sr": cfg.sr, "params": dict(cfg.params),
            "description": str(data.get("description", ""))}


def list_presets() -> list[dict[str, Any]]:
    """:func:`describe_preset` of every :func:`preset_files` entry."""
    return [describe_preset(p) for p in preset_files()]


def _value(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def render(rows: list[dict[str, Any]], verbose: bool = False, console: Any = None) -> None:
    """The presets as a rich table: name, transform, sample rate, key parameters (every
    parameter with ``verbose``), description."""
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console()
        if not console.is_terminal:  # a file or a pipe: do not squeeze the table into 80
            console = Console(width=160)
    table = Table(title="presets (nnaudio extract -c NAME)")
    for col in ("name", "transform", "sr (Hz)", "parameters" if verbose else "key parameters",
                "description"):
        table.add_column(col, justify="right" if col == "sr (Hz)" else "left")
    for r in rows:
        if "error" in r:
            table.add_row(r["name"], "-", "-", "-", f"invalid: {r['error']}")
            continue
        keys = sorted(r["params"]) if verbose else [k for k in KEY_PARAMS if k in r["params"]]
        params = ", ".join(f"{k}={_value(r['params'][k])}" for k in keys)
        table.add_row(r["name"], r["transform"], _value(r["sr"]), params, r["description"])
    console.print(table)
