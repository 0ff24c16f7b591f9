"""Extraction configuration: TOML presets, ``--transform`` and ``--set key=value`` overrides.

A preset is a TOML file::

    transform = "MelSpectrogram"   # class name or friendly name (mel, stft, mfcc, ...)
    sr = 22050                     # target sample rate; every input is resampled to it
    [params]                       # constructor parameters of the transform
    n_mels = 128

Precedence (lowest to highest): transform defaults < preset ``[params]`` < ``--set``; the
target rate is ``--sr`` > ``--set sr=`` > preset ``sr`` > preset ``params.sr`` > the
transform's default. Errors are :class:`ConfigError` with a one-line message that names the
offending key and lists the valid ones.
"""

from __future__ import annotations

import difflib
import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from nnaudio_cli import schema
from nnaudio_cli.errors import CliError
from nnaudio_cli.preset_paths import preset_dirs, preset_files
from nnaudio_core.errors import ParameterError
from nnaudio_core.params import ParamSpec

#: Friendly (case-insensitive) names accepted by ``--transform`` besides the class names
#: (which match in any case: ``stft``, ``mfcc``, ``cqt``, ``vqt``...).
ALIASES: dict[str, str] = {
    "spec": "STFT",
    "spectrogram": "STFT",
    "mel": "MelSpectrogram",
    "melspec": "MelSpectrogram",
    "gammatone": "Gammatonegram",
}

#: Transforms that map audio to features and so can be extracted (inverses cannot).
#: (Combined_Frequency_Periodicity returns four tensors and drops two frames: use CFP.)
NOT_EXTRACTABLE = {"iSTFT", "iCQT", "Griffin_Lim", "Combined_Frequency_Periodicity"}

#: Transforms whose sample-rate parameter is not called ``sr`` (``--sr`` / preset ``sr`` set it).
RATE_PARAM: dict[str, str] = {"CFP": "fs"}

#: Keys allowed at the top level of a preset file.
PRESET_KEYS = ("transform", "sr", "params", "description")



class ConfigError(CliError, ValueError):
    """A configuration problem, reported as one line.

    Parameters
    ----------
    message : str
    usage : bool
        True when the problem is in a command-line flag (exit code 2), False when it is in a
        preset file or the transform rejected the values (exit code 1).
    """

    def __init__(self, message: str, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage


@dataclass
class ExtractConfig:
    """A fully resolved extraction request.

    Attributes
    ----------
    transform : str
        Class name in :data:`nnaudio_core.features.TRANSFORMS`.
    params : dict
        Constructor parameters given by the preset and overrides (not yet the defaults).
    sr : int or float
        Target sample rate in Hz.
    source : str
        Where the preset came from (path), or ``"defaults"``.
    name : str
        The feature's name in the output (its group ``/features/NAME``): the preset's file
        name without ``.toml``, else the transform's class name.
    """

    transform: str
    params: dict[str, Any] = field(default_factory=dict)
    sr: float = 22050
    source: str = "defaults"
    name: str = ""

    def as_core_config(self) -> dict[str, Any]:
        """``{"transform": name, "params": {...}}`` for :func:`nnaudio_core.features.build`."""
        return {"transform": self.transform, "params": dict(self.params)}


def extractable_transforms() -> list[str]:
    """Class names that ``--transform`` may name."""
    return sorted(n for n in schema.specs() if n not in NOT_EXTRACTABLE)


def did_you_mean(name: str, candidates: list[str]) -> str:
    """``"did you mean 'X'? "`` for the candidate closest to ``name`` (case-insensitive; of
    candidates equal but for case, the later one), or ``""`` when none is close."""
    by_lower = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(name.strip().lower(), list(by_lower), n=1, cutoff=0.6)
    return f"did you mean {by_lower[close[0]]!r}? " if close else ""


def resolve_transform_name(name: str, usage: bool = True) -> str:
    """Map a class or friendly name (any case) to a class name of an available transform."""
    known = schema.specs()
    by_lower = {n.lower(): n for n in known}
    key = name.strip()
    resolved = by_lower.get(key.lower()) or ALIASES.get(key.lower())
    valid = extractable_transforms()
    if resolved is None or resolved not in known or resolved in NOT_EXTRACTABLE:
        friendly = sorted(a for a, c in ALIASES.items() if c in valid)
        raise ConfigError(
            f"unknown transform {name!r}; {did_you_mean(key, friendly + valid)}"
            f"valid: {', '.join(valid)} (or {', '.join(friendly)})",
            usage=usage,
        )
    return resolved


def param_spec(cls_name: str) -> dict[str, ParamSpec]:
    """The ``--set`` / ``[params]`` schema of a transform (its :meth:`Transform.param_spec`,
    from the stored copy in :mod:`nnaudio_cli.schema`: no torch import)."""
    return schema.specs()[cls_name]


def parse_value(text: str) -> Any:
    """Parse a ``--set`` value: a TOML literal (``64``, ``0.5``, ``true``, ``"hann"``,
    ``[1, 2]``), ``none``/``null`` for None, anything else as a bare string."""
    s = text.strip()
    if s.lower() in ("none", "null"):
        return None
    try:
        return tomllib.loads(f"v = {s}")["v"]
    except tomllib.TOMLDecodeError:
        return s


def coerce(cls_name: str, key: str, value: Any, usage: bool, where: str = "") -> Any:
    """Check ``key`` against the transform's :meth:`param_spec` and coerce ``value`` to its
    type. ``where`` prefixes the message (``"--set n_mels=abc"``); by default
    ``"key=value"``."""
    spec = param_spec(cls_name)
    if key not in spec:
        raise ConfigError(
            f"unknown parameter {key!r} for {cls_name}; {did_you_mean(key, list(spec))}"
            f"valid: {', '.join(sorted(spec))}",
            usage=usage,
        )
    param = spec[key]
    try:
        return param.coerce(value)
    except ParameterError:
        where = where or f"{key}={value!r}"
        example = "" if param.default in (None, inspect.Parameter.empty) else (
            f", e.g. {key}={_literal(param.default)}"
        )
        raise ConfigError(
            f"{where}: expected {param.describe()} for {key}{example}", usage=usage
        ) from None


def _literal(value: Any) -> str:
    """``value`` as ``--set`` would take it: ``true``, ``128``, ``"hann"`` as ``hann``."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return str(value) if isinstance(value, (str, int, float)) else repr(value)


def find_preset(name: str) -> Path:
    """Path of a preset given as a file path or as a name (``./configs``, then the shipped
    presets: :mod:`nnaudio_cli.preset_paths`)."""
    p = Path(name)
    if p.is_file():
        return p
    stem = p.name[:-5] if p.name.endswith(".toml") else p.name
    for d in preset_dirs():
        cand = d / f"{stem}.toml"
        if cand.is_file():
            return cand
    known = [f.stem for f in preset_files()]
    raise ConfigError(
        f"config {name!r} not found; {did_you_mean(stem, known)}"
        f"presets: {', '.join(known) or '(none)'}",
        usage=True,
    )


def load_preset(path: Path) -> dict[str, Any]:
    """Read and check the top level of a preset TOML file."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    except UnicodeDecodeError as e:  # a binary file: TOML is UTF-8 text
        raise ConfigError(
            f"{path}: not a TOML preset (not UTF-8 text: byte 0x{e.object[e.start]:02x} at "
            f"offset {e.start})"
        ) from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    unknown = sorted(set(data) - set(PRESET_KEYS))
    if unknown:
        raise ConfigError(
            f"{path}: unknown key {unknown[0]!r}; valid: {', '.join(PRESET_KEYS)}"
        )
    if "params" in data and not isinstance(data["params"], dict):
        raise ConfigError(f"{path}: 'params' must be a table ([params])")
    return data


def parse_set(items: list[str]) -> list[tuple[str, Any, str]]:
    """Split ``--set key=value`` items into ``(key, parsed value, the item as given)``
    (usage errors when malformed)."""
    out = []
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value", usage=True)
        key, _, raw = item.partition("=")
        key = key.strip()
        if not key:
            raise ConfigError(f"--set {item!r}: empty key", usage=True)
        out.append((key, parse_value(raw), item))
    return out


def resolve(
    preset: str | None = None,
    transform: str | None = None,
    overrides: list[str] | None = None,
    sr: float | None = None,
) -> ExtractConfig:
    """Combine a preset, ``--transform``, ``--set`` and ``--sr`` into an :class:`ExtractConfig`.

    Raises
    ------
    ConfigError
        Unknown transform or key, wrongly typed value, unreadable preset.
    """
    data: dict[str, Any] = {}
    source = "defaults"
    if preset is not None:
        path = find_preset(preset)
        data = load_preset(path)
        source = str(path)
    if transform is not None:
        name = resolve_transform_name(transform, usage=True)
    elif "transform" in data:
        name = resolve_transform_name(str(data["transform"]), usage=False)
    else:
        raise ConfigError("no transform: pass --transform NAME or --config PRESET", usage=True)

    params: dict[str, Any] = {}
    for key, value in data.get("params", {}).items():
        params[key] = coerce(name, key, value, usage=False,
                             where=f"{source}: [params] {key}={value!r}")
    rate = RATE_PARAM.get(name, "sr")
    target_sr: Any = data.get("sr", params.get(rate))
    for key, value, item in parse_set(overrides or []):
        params[key] = coerce(name, key, value, usage=True, where=f"--set {item}")
        if key == rate:
            target_sr = params[key]
    if sr is not None:
        target_sr = sr
    spec = param_spec(name)
    has_sr = rate in spec
    if target_sr is None:
        target_sr = spec[rate].default if has_sr else 22050
    if isinstance(target_sr, bool) or not isinstance(target_sr, (int, float)) or target_sr <= 0:
        raise ConfigError(f"sr={target_sr!r}: expected a positive sample rate in Hz")
    target_sr = int(target_sr) if float(target_sr).is_integer() else float(target_sr)
    if has_sr:
        params[rate] = target_sr
    feature = _stem(preset) if preset is not None else name
    return ExtractConfig(transform=name, params=params, sr=target_sr, source=source,
                         name=feature)


def resolve_features(
    presets: list[str],
    transform: str | None = None,
    overrides: list[str] | None = None,
    sr: float | None = None,
) -> list[ExtractConfig]:
    """The features of one extraction pass: one per ``--config`` (or the one
    ``--transform``), named after their presets.

    With several presets ``--set`` must say which feature it changes
    (``--set mel128.n_mels=64``); a prefix is accepted with one preset too. ``--sr`` sets
    every feature's rate.

    Raises
    ------
    ConfigError
        As :func:`resolve`; ``--transform`` with several presets; a ``--set`` without a
        feature name when there are several; two features with one name.
    """
    stems = [_stem(p) for p in presets]
    if len(presets) <= 1:
        items = [_unprefixed(item, stems) for item in overrides or []]
        return [resolve(presets[0] if presets else None, transform, items, sr)]
    if transform is not None:
        raise ConfigError("--transform names one feature; with several --config put each "
                          "transform in its preset", usage=True)
    seen: set[str] = set()
    for stem in stems:
        if stem in seen:
            raise ConfigError(f"--config {stem} is given twice (each feature needs its own "
                              "name: copy the preset under another name)", usage=True)
        seen.add(stem)
    per: dict[str, list[str]] = {stem: [] for stem in stems}
    for item in overrides or []:
        key = item.partition("=")[0].strip()
        prefix, dot, _ = key.partition(".")
        if not dot:
            raise ConfigError(f"--set {item!r}: with several --config say which feature it "
                              f"changes, e.g. --set {stems[0]}.{item.strip()}", usage=True)
        if prefix not in per:
            raise ConfigError(f"--set {item!r}: no feature {prefix!r}; "
                              f"{did_you_mean(prefix, stems)}features: {', '.join(stems)}",
                              usage=True)
        per[prefix].append(item.strip()[len(prefix) + 1:])
    return [resolve(p, None, per[stem], sr) for p, stem in zip(presets, stems, strict=True)]


def _stem(preset: str) -> str:
    """A preset's feature name: its file name without ``.toml``."""
    name = Path(preset).name
    return name[:-5] if name.endswith(".toml") else name


def _unprefixed(item: str, names: list[str]) -> str:
    """``NAME.key=value`` -> ``key=value`` for a ``--set`` naming one of ``names``."""
    prefix, dot, _ = item.partition("=")[0].strip().partition(".")
    return item.strip()[len(prefix) + 1:] if dot and prefix in names else item


def canonical_json(obj: Any) -> str:
    """Stable JSON text (sorted keys, no spaces) used for storing and hashing configs."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, tuple):
        return list(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")
