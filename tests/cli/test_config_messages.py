"""``--transform``/``--config``/``--set`` mistakes: one-line messages that name the key,
suggest the nearest name, and say what type a value takes (checked against each transform's
``param_spec()``)."""

from __future__ import annotations

import pytest

from nnaudio_cli import config


def _error(**kwargs) -> config.ConfigError:
    with pytest.raises(config.ConfigError) as exc:
        config.resolve(**kwargs)
    msg = str(exc.value)
    assert "\n" not in msg
    return exc.value


def test_every_alias_names_an_extractable_transform():
    """An alias names an existing transform and is not shadowed by a class name."""
    valid = set(config.extractable_transforms())
    for alias, name in config.ALIASES.items():
        assert name in valid, f"alias {alias!r} -> {name!r} is not an extractable transform"
        assert config.resolve_transform_name(alias) == name


@pytest.mark.parametrize(
    "typed, nearest",
    [("melspectogram", "MelSpectrogram"), ("MFFC", "MFCC"), ("cqt1992v3", "CQT1992v2"),
     ("melspek", "melspec")],
)
def test_unknown_transform_suggests_the_nearest_name(typed, nearest):
    err = _error(transform=typed)
    assert str(err).startswith(f"unknown transform {typed!r}; did you mean {nearest!r}? valid: ")
    assert err.usage is True


def test_unknown_transform_far_from_any_name_lists_the_valid_ones():
    msg = str(_error(transform="wavelet"))
    assert "did you mean" not in msg and "MelSpectrogram" in msg


def test_unknown_preset_suggests_the_nearest_name():
    err = _error(preset="mel12")
    assert "config 'mel12' not found; did you mean 'mel128'? presets: " in str(err)
    assert err.usage is True


def test_unknown_parameter_suggests_the_nearest_name():
    err = _error(transform="mel", overrides=["n_mel=64"])
    assert "unknown parameter 'n_mel' for MelSpectrogram; did you mean 'n_mels'? valid: " in str(
        err
    )


@pytest.mark.parametrize(
    "item, message",
    [
        ("n_mels=abc", "--set n_mels=abc: expected an integer for n_mels, e.g. n_mels=128"),
        ("n_mels=1.5", "--set n_mels=1.5: expected an integer for n_mels, e.g. n_mels=128"),
        ("center=maybe", "--set center=maybe: expected true or false for center, e.g. "
                         "center=true"),
        ("fmin=low", "--set fmin=low: expected a number for fmin, e.g. fmin=0.0"),
        ("n_mels=none", "--set n_mels=none: expected an integer for n_mels, e.g. n_mels=128"),
        ("pad_mode=3", "--set pad_mode=3: expected one of 'reflect', 'constant' for pad_mode, "
                       "e.g. pad_mode=reflect"),
    ],
)
def test_set_value_of_the_wrong_type_says_what_the_key_takes(item, message):
    err = _error(transform="mel", overrides=[item])
    assert str(err) == message and err.usage is True


def test_list_parameters_take_a_list_of_numbers():
    assert config.resolve(None, "cfp", ["g=[0.2, 0.6, 1]"]).params["g"] == [0.2, 0.6, 1.0]
    err = _error(transform="cfp", overrides=["g=abc"])
    assert str(err) == "--set g=abc: expected a list of numbers for g, e.g. g=[0.24, 0.6, 1.0]"


def test_set_values_are_coerced_by_the_schema():
    cfg = config.resolve(None, "cqt", ["hop_length=256.0", "fmax=none", "norm=2",
                                       "trainable=yes", "filter_scale=2"])
    p = cfg.params
    assert p["hop_length"] == 256 and type(p["hop_length"]) is int
    assert p["fmax"] is None and p["trainable"] is True
    assert p["norm"] == 2.0 and type(p["filter_scale"]) is float


def test_preset_value_of_the_wrong_type_names_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('transform = "mel"\n[params]\nn_mels = "many"\n')
    err = _error(preset=str(path))
    assert str(err) == (f"{path}: [params] n_mels='many': expected an integer for n_mels, "
                        "e.g. n_mels=128")
    assert err.usage is False
