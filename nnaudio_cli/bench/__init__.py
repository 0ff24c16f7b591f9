"""``nnaudio benchmark``'s library: what runs (:mod:`~nnaudio_cli.bench.workload`), against
what (:mod:`~nnaudio_cli.bench.peers`), how it is timed (:mod:`~nnaudio_cli.bench.measure`)
and what is reported (:mod:`~nnaudio_cli.bench.report`: JSON and tables, and one function per
mode that runs it whole)."""
