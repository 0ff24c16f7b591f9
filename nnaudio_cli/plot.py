"""``nnaudio plot``: one input's stored features as an image (matplotlib, Agg backend).

Time runs along x in seconds (frame ``i`` is centred at ``i * hop / sr``, as ``center=True``
frames are), frequency along y with one row per bin, labelled in Hz at round frequencies placed
by the file's own bin frequencies — so a mel, constant-Q or log-frequency axis reads in real
Hz (MFCC: coefficient index). Values:

* power (Mel/Gammatone ``power=2``): ``10 log10``; magnitude (STFT/CQT/VQT ``'Magnitude'``,
  complex outputs shown as ``|X|``): ``20 log10``; ``|X|**p`` in general: ``(20 / p) log10``.
  The colour range is the ``top_db`` (default 80) dB below the clip's peak. ``--linear``
  shows the values themselves.
* MFCC coefficients, phase (radians) and CFP salience are shown linearly; dB is refused.
* Features stored in dB (``extract --db``) are drawn as stored, with no second log; their
  colour range is also ``top_db`` below the clip's peak. ``--linear`` shows
  ``ref * 10 ** (dB / k)`` (values below the stored floor stay at it).

A file holding several features needs ``--feature NAME`` (a usage error names the choices).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from nnaudio_cli.errors import CliError
from nnaudio_cli.featurefile.encoding import Decibels
from nnaudio_cli.plumbing.text import install_hint, shown_key, unknown_key

MISSING = f"nnaudio plot needs matplotlib: {install_hint('plot')}"


@dataclass(frozen=True)
class Scale:
    """How a file's values are shown.

    Attributes
    ----------
    label : str
        What the values are (colour bar label), e.g. ``'power'``.
    db_factor : float or None
        ``dB = db_factor * log10(value)``: 10 for power, 20 for magnitude; None where dB
        does not apply (MFCC, phase, salience).
    """

    label: str
    db_factor: Optional[float]


def value_scale(config: dict[str, Any]) -> Scale:
    """The :class:`Scale` of a transform's output, from its ``get_config()``."""
    name = str(config.get("transform", ""))
    params = config.get("params", {})
    fmt = params.get("output_format")
    if name == "MFCC":
        return Scale("MFCC coefficient value", None)
    if fmt == "Phase":
        return Scale("phase (rad)", None)
    if params.get("power") is not None:
        p = float(params["power"])
        label = {2.0: "power", 1.0: "magnitude"}.get(p, f"magnitude^{p:g}")
        return Scale(label, 20.0 / p)
    if fmt in ("Magnitude", "Complex"):
        return Scale("magnitude", 20.0)
    if name == "CFP":
        return Scale("salience", None)
    return Scale("value", None)


def magnitudes(values: np.ndarray, value_layout: str) -> np.ndarray:
    """Complex ``(..., 2)`` (real, imaginary) features as ``|X|``; others unchanged."""
    if str(value_layout).endswith("_reim"):
        return np.hypot(values[..., 0], values[..., 1])
    return values


def freq_ticks(freqs: np.ndarray, max_ticks: int = 8) -> tuple[np.ndarray, list[str]]:
    """Tick positions (fractional bin index) and Hz labels for a y axis of ``freqs`` rows.

    Round frequencies (a linear grid for evenly spaced bins, 1-2-5 per decade otherwise) are
    placed by interpolating the bin frequencies; ticks closer than ``n_bins / (2 max_ticks)``
    bins to a higher one are dropped, so a mel axis is not crowded at the bottom.
    """
    n = freqs.size
    lo, hi = float(freqs[0]), float(freqs[-1])
    if n < 2 or not np.all(np.diff(freqs) > 0):  # not increasing: label bins directly
        pos = np.unique(np.linspace(0, n - 1, min(n, max_ticks)).round().astype(int))
        return pos.astype(float), [_hz(float(freqs[i])) for i in pos]
    steps = np.diff(freqs)
    if steps.max() <= 1.01 * steps.min():
        from matplotlib.ticker import MaxNLocator

        cand = MaxNLocator(nbins=max_ticks, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)
    else:
        cand = np.array([m * 10.0**e for e in range(-1, 7) for m in (1, 2, 5)])
        if lo <= 0:
            cand = np.concatenate(([0.0], cand))
    cand = cand[(cand >= lo) & (cand <= hi)]
    pos = np.interp(cand, freqs, np.arange(n, dtype=float))
    keep: list[int] = []
    for j in range(cand.size - 1, -1, -1):
        if not keep or pos[keep[-1]] - pos[j] >= n / (2 * max_ticks):
            keep.append(j)
    keep.reverse()
    return pos[keep], [_hz(float(cand[j])) for j in keep]


def _hz(f: float) -> str:
    return f"{f / 1000:g}k" if f >= 1000 else f"{f:.3g}" if f < 10 else f"{f:.0f}"


def _pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, or the one-line message when it is missing."""
    try:
        import matplotlib
    except ImportError:
        raise CliError(MISSING) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@dataclass
class Features:
    """One input's stored features, ready to draw.

    Attributes
    ----------
    values : np.ndarray
        float64 ``(frames, channels, bins)``; complex outputs as magnitudes.
    freqs : np.ndarray
        Hz per bin (MFCC: coefficient index).
    sr, hop : the feature rate is ``sr / hop`` frames per second.
    config : the transform's ``get_config()``.
    feature : the feature's name in the file.
    stored_db : how the values were stored in dB (None: linear values).
    """

    key: str
    values: np.ndarray
    freqs: np.ndarray
    sr: float
    hop: int
    config: dict[str, Any]
    feature: str = ""
    stored_db: Optional[Decibels] = None


def load(path: Path, key: str, feature: Optional[str] = None) -> Features:
    """Read ``key``'s values of ``feature`` (decoded float32, as float64) from a feature file;
    ``feature`` may be omitted when the file holds one. A one-line :class:`CliError` for an
    unreadable file, a failed input (exit 1), an unknown key (exit 2, with a did-you-mean)
    or a missing or unknown ``feature`` (exit 2, naming the choices)."""
    from nnaudio_cli.info import open_checked

    with open_checked(path, feature) as ff:
        if key not in ff:
            if key in ff.failed:
                raise CliError(f"{shown_key(key)}: extraction failed ({ff.failed[key]}); "
                               "nothing to plot")
            raise CliError(unknown_key(key, list(ff.index["key"]), str(path)), usage=True)
        values = magnitudes(np.asarray(ff[key], dtype=np.float64),
                            str(ff.attrs.get("value_layout", "")))
        if values.ndim == 2:  # (frames, bins) -> (frames, 1, bins)
            values = values[:, None, :]
        if values.shape[0] == 0 or values.shape[-1] == 0:
            raise CliError(f"{shown_key(key)}: no frames stored; nothing to plot")
        return Features(key, values, np.asarray(ff.frequencies, dtype=np.float64),
                        float(ff.attrs["sr"]), int(ff.attrs["hop_length"]), ff.config,
                        ff.feature, ff.storage.db)


def draw(
    feats: Features,
    db: Optional[bool] = None,
    top_db: float = 80.0,
    width: int = 1000,
    height: int = 400,
    dpi: int = 100,
) -> tuple[Any, dict[str, Any]]:
    """The matplotlib figure of ``feats`` (one panel per channel, a shared colour bar) and
    a summary: ``frames``, ``bins``, ``channels``, ``scale`` (``'dB'``/``'linear'``),
    ``vmin``, ``vmax`` (the colour range), ``feature`` (its name). See :func:`plot_features`
    for the arguments."""
    plt = _pyplot()
    config = feats.config
    scale = value_scale(config)
    stored = feats.stored_db
    if stored is not None:  # the values are dB already: never a second log
        scale = Scale(scale.label if scale.db_factor is not None else stored.kind,
                      stored.factor)
    if db and scale.db_factor is None:
        raise CliError(f"{config.get('transform')} values are {scale.label}: dB does not apply "
                       "(use --linear)", usage=True)
    use_db = scale.db_factor is not None if db is None else db
    values = feats.values
    frames, channels, bins = values.shape
    if stored is not None and not use_db:
        values = stored.ref * 10.0 ** (values / stored.factor)
        vmin, vmax = float(values.min()), float(values.max())
    elif use_db:
        if stored is None:
            values = scale.db_factor * np.log10(np.maximum(values, np.finfo(np.float32).tiny))
        vmax = float(values.max())
        vmin = vmax - top_db
    elif scale.label.startswith("phase"):
        vmin, vmax = -np.pi, np.pi
    else:
        vmin, vmax = float(values.min()), float(values.max())
    params = config.get("params", {})
    sr, hop = feats.sr, feats.hop
    shift = 0.0 if params.get("center", True) else 0.5 * float(params.get("n_fft", 0)) / sr
    step = hop / sr
    extent = (shift - step / 2, shift + (frames - 0.5) * step, -0.5, bins - 0.5)
    is_mfcc = config.get("transform") == "MFCC"
    cmap = "twilight" if scale.label.startswith("phase") else "magma"

    fig, axes = plt.subplots(channels, 1, squeeze=False, sharex=True,
                             figsize=(width / dpi, height / dpi), dpi=dpi, layout="constrained")
    image = None
    for c, ax in enumerate(axes[:, 0]):
        image = ax.imshow(values[:, c, :].T, origin="lower", aspect="auto", extent=extent,
                          interpolation="nearest", cmap=cmap, vmin=vmin, vmax=vmax)
        if is_mfcc:
            ax.set_ylabel("MFCC coefficient")
        else:
            pos, labels = freq_ticks(feats.freqs)
            ax.set_yticks(pos, labels)
            ax.set_ylabel("frequency (Hz)")
        if channels > 1:
            ax.set_title(f"channel {c}", fontsize=9, loc="right")
    axes[-1, 0].set_xlabel("time (s)")
    transform = config.get("transform", "features")
    name = f"{feats.feature}: " if feats.feature and feats.feature != transform else ""
    fig.suptitle(f"{shown_key(feats.key)} — {name}{transform} ({sr:g} Hz, hop {hop})")
    re = f" re {stored.ref:g}" if stored is not None and stored.ref != 1 else ""
    unit = f"{scale.label} (dB{re})" if use_db else scale.label
    fig.colorbar(image, ax=axes[:, 0].tolist(), label=unit)
    return fig, {"feature": feats.feature, "frames": frames, "bins": bins, "channels": channels,
                 "scale": "dB" if use_db else "linear", "vmin": vmin, "vmax": vmax}


def plot_features(path: Path, key: str, out: Path, feature: Optional[str] = None,
                  overwrite: bool = False, **style: Any) -> dict[str, Any]:
    """Draw the features of ``key`` in the feature file ``path`` into the image ``out``.

    Parameters
    ----------
    feature :
        The feature to draw; may be omitted when the file holds one.
    overwrite :
        Replace an existing ``out`` (else a usage error); the image is written to a
        temporary file renamed onto ``out``, so a symlink there is never written through.
    **style :
        :func:`draw`'s ``db``, ``top_db``, ``width``, ``height`` and ``dpi``; the image's
        format follows ``out``'s extension (png, pdf, svg...).

    Returns
    -------
    dict
        :func:`draw`'s summary with ``out`` and ``key``.
    """
    from nnaudio_cli.plumbing.outputs import check_new, replacing

    _pyplot()  # the missing-matplotlib message comes before anything is read
    check_new(out, overwrite)
    fig, summary = draw(load(path, key, feature), **style)
    plt = _pyplot()
    try:
        with replacing(out) as tmp:
            fig.savefig(tmp, dpi=style.get("dpi", 100), format=out.suffix[1:] or None)
    except ValueError as e:  # an extension matplotlib cannot write
        raise CliError(f"cannot write {shown_key(str(out))}: {e}", usage=True) from None
    except OSError as e:
        raise CliError(f"cannot write {shown_key(str(out))}: {e.strerror or e}") from None
    finally:
        plt.close(fig)
    return {"out": str(out), "key": key, **summary}
