"""The one packaging rule pyproject.toml cannot state: the presets in ``configs/`` (edited
there, kept once in git) ship inside the wheel as package data ``nnaudio_cli/presets_data/``,
where :mod:`nnaudio_cli.preset_paths` finds them. Everything else is in pyproject.toml."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["nnaudio_core*", "nnaudio_cli*"])
    + ["nnaudio_cli.presets_data"],
    package_dir={"nnaudio_cli.presets_data": "configs"},
    package_data={"nnaudio_cli.presets_data": ["*.toml"]},
)
