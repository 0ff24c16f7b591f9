"""Old home of the ``nnaudio`` app, kept for installed entry points (``nnaudio_cli.main:app``)
and old imports; the app lives in :mod:`nnaudio_cli.app`."""

from nnaudio_cli.app import app, main

__all__ = ["app", "main"]
