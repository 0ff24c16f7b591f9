"""nnaudio_cli: the ``nnaudio`` command (feature extraction into HDF5) and its file reader.

Importing this package is cheap (no torch); ``from nnaudio_cli.featurefile import open_features``
gives the reader.
"""

__all__ = ["DISTRIBUTION", "open_features"]

#: The name pip installs this project under (``nnaudio`` on PyPI is the original nnAudio);
#: the import names ``nnaudio_core``/``nnaudio_cli`` and the ``nnaudio`` command stay.
DISTRIBUTION = "nnaudio-cli"


def __getattr__(name: str):  # lazy: keeps worker processes free of h5py/torch imports
    if name == "open_features":
        from nnaudio_cli.featurefile.reader import open_features

        return open_features
    raise AttributeError(name)
