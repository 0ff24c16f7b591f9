"""One module per ``nnaudio`` command: flags in, one call into the library, exit code out.

Each module defines ``NAME`` (the command's name), ``EPILOG`` (the examples its ``--help``
shows) and ``run`` (the Typer command function); :mod:`nnaudio_cli.app` registers them. A
command raises :class:`nnaudio_cli.errors.CliError` for errors the user can cause (the app
reports it as one line) and returns its exit code.
"""
