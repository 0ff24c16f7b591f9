"""What ``nnaudio invert`` will do, decided before any audio is made: the method
(:func:`choose_method`), the feature of a several-feature file (:func:`select_feature`) and
each key's output file (:func:`plan_outputs`); :class:`InvertError` for what cannot be done.

The rules are in :mod:`nnaudio_cli.invert` (method, feature choice, output names).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path, PurePosixPath
from typing import Any

import h5py

from nnaudio_cli.errors import CliError
from nnaudio_cli.featurefile.layout import READABLE_VERSIONS, feature_group, feature_names
from nnaudio_cli.featurefile.validate import validate_layout
from nnaudio_cli.plumbing.text import shown_key

#: ``--method`` choices.
METHODS = ("auto", "istft", "icqt", "griffin-lim")
#: ``--format`` -> (soundfile container, subtype) of the written audio.
FORMATS = {"wav": ("WAV", "FLOAT"), "flac": ("FLAC", "PCM_24")}
#: The constant-Q transforms iCQT inverts.
CQT_NAMES = ("CQT1992v2", "CQT2010v2")


class InvertError(CliError, ValueError):
    """A file or request that cannot be inverted; the message is one line for the user.

    ``usage`` marks a wrong request (exit 2) rather than a bad file (exit 1).
    """


def show(key: str) -> str:
    """A key as it appears in messages (:func:`nnaudio_cli.plumbing.text.shown_key`: printable keys
    as they are, others ``repr``-escaped, so no raw newline or control character)."""
    return shown_key(key)


def choose_method(config: dict[str, Any], requested: str) -> str:
    """The inversion method for a stored transform config, or :class:`InvertError`."""
    name = config.get("transform")
    params = config.get("params", {})
    fmt = params.get("output_format")
    if name == "STFT":
        if params.get("freq_scale", "no") != "no":
            raise InvertError(
                f"cannot invert a freq_scale='{params.get('freq_scale')}' STFT: only the "
                "uniform grid (freq_scale='no') is invertible"
            )
        auto = "istft" if fmt == "Complex" else "griffin-lim" if fmt == "Magnitude" else None
    elif name in CQT_NAMES:
        auto = "icqt" if fmt == "Complex" else None
    elif name == "MelSpectrogram":
        auto = "griffin-lim"
    else:
        auto = None
    if auto is None:
        raise InvertError(
            f"cannot invert {name} features with output_format={fmt!r}: invertible are "
            "complex STFT (istft), complex CQT1992v2/CQT2010v2 (icqt), and magnitude STFT or "
            "mel spectrograms (griffin-lim)"
        )
    if requested == "auto":
        return auto
    # a complex STFT may also go through Griffin-Lim (its magnitude); nothing else mixes
    allowed = {"istft": ("istft", "griffin-lim"), "icqt": ("icqt",),
               "griffin-lim": ("griffin-lim",)}
    if requested not in allowed[auto]:
        raise InvertError(
            f"--method {requested} does not apply to {name} ({fmt}) features; use "
            f"{' or '.join(allowed[auto])}", usage=True,
        )
    return requested


def _how(config: dict[str, Any], requested: str) -> str | None:
    """The method ``requested`` resolves to for ``config``, or None when it does not apply."""
    try:
        return choose_method(config, requested)
    except InvertError:
        return None


def select_feature(path: Path, feature: str | None, requested: str) -> str | None:
    """Check a feature file before it is opened for reading, and pick its feature.

    The layout of every feature is validated first (a damaged index is a one-line
    :class:`InvertError` before anything reads it). ``feature`` given: it must be in the file
    (else a usage error naming the choices). Not given: None for a one-feature file (the
    reader takes its only feature); with several, the one feature that ``requested`` applies
    to, else a usage :class:`InvertError` (one line) naming every feature with the method
    ``auto`` would use for it (or "not invertible"). Files that are not feature files are
    left to the reader (returned as is).
    """
    try:
        h5 = h5py.File(path, "r")
    except OSError:
        return feature
    with h5:
        if h5.attrs.get("layout_version") not in READABLE_VERSIONS:
            return feature
        validate_layout(h5, path)  # a damaged file: one line naming it (FeatureFileError)
        names = feature_names(h5)  # validate_layout read them
        if feature is not None:
            if feature not in names:
                raise InvertError(f"--feature {feature}: {path} has no such feature; it "
                                  f"holds {', '.join(names)}", usage=True)
            return feature
        if len(names) < 2:
            return None
        try:
            configs = {n: json.loads(feature_group(h5, n).attrs["config_json"])
                       for n in names}
        except (KeyError, TypeError, ValueError):
            return None  # the reader names what is missing
    fits = [n for n, c in configs.items() if _how(c, requested) is not None]
    if len(fits) == 1:
        return fits[0]
    each = ", ".join(f"{n} ({_how(c, 'auto') or 'not invertible'})"
                     for n, c in configs.items())
    if requested == "auto":
        why = "none is invertible" if not fits else f"{len(fits)} are invertible"
    else:
        why = f"--method {requested} applies to {len(fits) or 'none'} of them"
    raise InvertError(f"{path} holds {len(names)} features: {each}; {why}; say which with "
                      "--feature NAME", usage=True)


# --- output names ---------------------------------------------------------------------

def _name_max(folder: Path) -> int:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return 255


def _check_key(key: str) -> PurePosixPath:
    if not key or "\x00" in key:
        raise InvertError(f"refusing unsafe key {show(key)}: empty or contains NUL")
    seps = {s for s in (os.sep, os.altsep) if s and s != "/"}
    if any(s in key for s in seps):
        raise InvertError(f"refusing key {show(key)}: it contains a path separator of this OS")
    rel = PurePosixPath(key)
    if rel.is_absolute() or any(part in ("..", ".") for part in key.split("/")):
        raise InvertError(f"refusing key {show(key)}: it would escape the output folder")
    return rel


#: What counts as a file name extension to replace: a letter, then up to 9 letters/digits.
#: The key of a segment (``a.wav@1.5-3``, from ``extract --files``) ends in none: its output
#: is ``a.wav@1.5-3.wav``, not ``a.wav@1.wav``.
_EXTENSION = re.compile(r"^\.[A-Za-z][A-Za-z0-9]{0,9}$")


def plan_outputs(
    keys: list[str], out_dir: Path, fmt: str
) -> dict[str, Path | InvertError]:
    """Each key's output file under ``out_dir`` (see the module docstring), or the reason
    it gets none. Deterministic: depends on the set of keys only, not on their order."""
    name_max = _name_max(out_dir)
    plain: dict[str, str] = {}
    result: dict[str, Path | InvertError] = {}
    for key in keys:
        try:
            rel = _check_key(key)
        except InvertError as e:
            result[key] = e
            continue
        suffix = rel.suffix if _EXTENSION.match(rel.suffix) else ""  # not '.5-3' of a@1.5-3
        stem = rel.name[: -len(suffix)] if suffix else rel.name
        plain[key] = str(rel.parent / f"{stem}.{fmt}") if rel.parent != PurePosixPath(".") \
            else f"{stem}.{fmt}"
    count: dict[str, int] = {}
    for name in plain.values():
        count[name] = count.get(name, 0) + 1
    chosen = {k: (n if count[n] == 1 else f"{k}.{fmt}") for k, n in plain.items()}
    owners: dict[str, list[str]] = {}
    for k, n in chosen.items():
        owners.setdefault(n, []).append(k)
    root = out_dir.resolve() if out_dir.exists() else None
    for key in keys:
        if key in result:
            continue
        name = chosen[key]
        if len(owners[name]) > 1:
            others = ", ".join(show(o) for o in sorted(owners[name]) if o != key)
            result[key] = InvertError(f"output name {show(name)} of {show(key)} is also the "
                                      f"name of {others}")
            continue
        too_long = [p for p in PurePosixPath(name).parts
                    if len(p.encode("utf-8", "surrogateescape")) > name_max]
        if too_long:
            result[key] = InvertError(
                f"output name of {show(key)} has a component of "
                f"{len(too_long[0].encode('utf-8', 'surrogateescape'))} bytes; the file "
                f"system allows {name_max}"
            )
            continue
        target = out_dir.joinpath(*PurePosixPath(name).parts)
        if root is not None:  # a symlinked sub-folder must not lead outside
            resolved = target.parent.resolve() / target.name
            if root != resolved.parent and root not in resolved.parents:
                result[key] = InvertError(f"refusing key {show(key)}: it resolves outside "
                                          f"{out_dir}")
                continue
        result[key] = target
    return result
