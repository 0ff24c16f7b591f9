"""``python -m nnaudio_cli`` runs the ``nnaudio`` command."""

import sys

try:
    from nnaudio_cli.app import main
except KeyboardInterrupt:  # Ctrl-C while the program is still importing
    import os

    print("nnaudio: error: interrupted; nothing written", file=sys.stderr, flush=True)
    # at once: no interpreter teardown over a module (maybe a C extension) the signal cut
    # short, and no death by SIGINT that CPython may re-raise at a normal exit
    os._exit(130)

if __name__ == "__main__":
    main()
