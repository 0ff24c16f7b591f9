"""Speed of nnaudio_core's transforms against peers: a thin wrapper over ``nnaudio benchmark``.

Kept so that ``make bench`` and old notes keep working; the measuring (seeded piano-like
clips, torch.stft / librosa / nnAudio2 peers, median timing, JSON report) now lives in
:mod:`nnaudio_cli.bench`. The old ``--transforms`` flag is accepted as ``--transform``;
every other flag is passed through (``nnaudio benchmark --help`` lists them).

    python benchmarks/bench_core.py --clips 177 --json bench-core.json
    # = nnaudio benchmark --clips 177 --json bench-core.json
"""

from __future__ import annotations

import sys

from nnaudio_cli.app import app
from nnaudio_cli.bench.workload import piano_clips  # noqa: F401 - re-exported for old imports


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    args = ["--transform" if a == "--transforms" else a for a in args]
    args = [
        "--transform=" + a.split("=", 1)[1] if a.startswith("--transforms=") else a
        for a in args
    ]
    app(["benchmark", *args], prog_name="bench_core.py")


if __name__ == "__main__":
    main()
