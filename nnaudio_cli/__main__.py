"""``python -m nnaudio_cli`` runs the ``nnaudio`` command."""

import sys

try:
    from nnaudio_cli.app import main
except KeyboardInterrupt:  # Ctrl-C while the program is still importing
    print("nnaudio: error: interrupted; nothing written", file=sys.stderr, flush=True)
    sys.exit(130)

if __name__ == "__main__":
    main()
