"""``nnaudio benchmark``'s library, one module per mode, each with its measuring and its
report: :mod:`~nnaudio_cli.bench.transforms` (the default, and ``--busy``),
:mod:`~nnaudio_cli.bench.matrix`, :mod:`~nnaudio_cli.bench.pipeline` (with ``--formats``:
:mod:`~nnaudio_cli.bench.formats`), :mod:`~nnaudio_cli.bench.invert`,
:mod:`~nnaudio_cli.bench.frontends`. Shared: what runs (:mod:`~nnaudio_cli.bench.workload`),
against what (:mod:`~nnaudio_cli.bench.peers`), how one candidate is timed
(:mod:`~nnaudio_cli.bench.measure`), on what machine (:mod:`~nnaudio_cli.bench.machine`),
and busy neighbours (:mod:`~nnaudio_cli.bench.busy`)."""
