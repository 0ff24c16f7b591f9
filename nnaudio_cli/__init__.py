"""The ``nnaudio`` command line: batch feature extraction into HDF5."""
