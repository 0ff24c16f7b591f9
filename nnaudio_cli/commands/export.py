"""``nnaudio export``: a preset's transform as a deployable front end (ONNX, torch.export,
TorchScript), checked against eager before success is reported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from nnaudio_cli.errors import EXIT_OK, CliError
from nnaudio_cli.plumbing.flags import (
    check_verbosity,
    config_option,
    examples,
    quiet_option,
    set_option,
    sr_option,
    transform_option,
    verbose_option,
)

NAME = "export"
EPILOG = examples(
    "nnaudio export --config mel128 -o mel128.onnx",
    "nnaudio export --config cqt84 --set hop_length=256 -o cqt.pt2",
    "nnaudio export --config cfp --precision float64 -o cfp.onnx",
)


def run(
    output: Path = typer.Option(
        ..., "--output", "-o", dir_okay=False,
        help="File to write: .onnx (onnxruntime), .pt2 (torch.export) or .ts/.pt (TorchScript).",
    ),
    quiet: bool = quiet_option(),
    verbose: bool = verbose_option(),
    config: Optional[str] = config_option(),
    transform: Optional[str] = transform_option(),
    set_: List[str] = set_option(),
    sr: Optional[float] = sr_option("Sample rate in Hz (default: the preset's)."),
    precision: str = typer.Option(
        "float32", "--precision",
        help="Compute in float32 (default) or float64 inside the front end (I/O stay float32).",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing file."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> int:
    """Write the transform of a preset as a front end with a dynamic batch and length."""
    check_verbosity(quiet, verbose)
    from nnaudio_cli.config import resolve
    from nnaudio_cli.export import export_frontend, format_of
    from nnaudio_cli.plumbing.outputs import check_parent

    format_of(output)  # a wrong suffix is a usage error before anything is built
    if config is None and transform is None:
        raise CliError("pass --config PRESET or --transform NAME", usage=True)
    if output.exists() and not overwrite:
        raise CliError(f"{output} exists; pass --overwrite to replace it", usage=True)
    check_parent(output)
    cfg = resolve(config, transform, list(set_), sr)
    report = export_frontend(cfg.as_core_config(), output, precision)
    if json_out:
        print(json.dumps(report.as_dict(), indent=2))
        return EXIT_OK
    # the final result (with -q too), then the details (without -q)
    print(f"wrote {output} ({report.format}, {report.transform} at {report.sr:g} Hz, "
          f"computing in {report.precision})")
    if not quiet:
        shape_in = ", ".join(map(str, report.input_shape))
        shape_out = ", ".join(map(str, report.output_shape))
        print(f"  input  {report.names['input']}: float32 [{shape_in}], samples >= "
              f"{report.min_samples}")
        print(f"  output {report.names['output']}: float32 [{shape_out}]")
        print(f"  checked on {report.check_shape[0]} x {report.check_shape[1]} samples: "
              f"max error {report.max_error:.1e} of the peak ({report.seconds:.1f} s)")
    return EXIT_OK
