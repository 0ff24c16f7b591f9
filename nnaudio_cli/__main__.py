"""``python -m nnaudio_cli`` runs the ``nnaudio`` command."""

from nnaudio_cli.app import main

if __name__ == "__main__":
    main()
