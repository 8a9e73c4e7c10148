"""engine.patch: synth patches as TOML files of named parameters with units."""
import tomllib
from pathlib import Path

import pytest

from engine.patch import GROUPS, SCHEMA, load_params, load_patch, param_values
from engine.rt.params import FILTERS, LFO_SHAPES, NOISE_COLORS, SYNTH_SPECS, WAVES
from engine.tomldata import DataError, dump, validate

ROOT = Path(__file__).resolve().parents[1]
ALL = sorted((ROOT / "patches").glob("*.toml"))
PATCHES = [p for p in ALL if tomllib.loads(p.read_text())["patch"].get("engine", "analog")
           == "analog"]          # the analog voice's patches (the others: tests/test_factory.py)
CHOICES = {"osc1_wave": WAVES, "osc2_wave": WAVES, "filter_type": FILTERS,
           "lfo_shape": LFO_SHAPES, "noise_color": NOISE_COLORS}


def group_of(name):
    return next(g for g, names in GROUPS.items() if name in names)


def write(tmp_path, text, name="p.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_there_are_patches():
    names = {p.name for p in PATCHES}
    assert {"keys.toml", "bass.toml", "chords.toml", "lead.toml"} <= names


def test_config_points_at_existing_patches():
    cfg = tomllib.loads((ROOT / "config.toml").read_text())
    for part, rel in cfg["patches"].items():
        assert (ROOT / rel).is_file(), part


@pytest.mark.parametrize("path", PATCHES, ids=lambda p: p.name)
def test_every_patch_loads_with_the_values_it_writes(path):
    raw = tomllib.loads(path.read_text())
    patch = load_patch(path)
    values = param_values(patch)
    assert set(values) == {s.index for s in SYNTH_SPECS.values()}     # all 30, defaults filled
    for group, table in raw.items():
        for name, value in table.items():
            assert patch[group][name] == value
            if group == "patch":
                continue
            spec = SYNTH_SPECS[name]
            want = CHOICES[name].index(value) if name in CHOICES else float(value)
            assert values[spec.index] == want, name
            assert spec.lo <= values[spec.index] <= spec.hi
    # what the file leaves out is the parameter's default
    for name, spec in SYNTH_SPECS.items():
        if name not in raw.get(group_of(name), {}):
            assert values[spec.index] == spec.default, name


@pytest.mark.parametrize("path", PATCHES, ids=lambda p: p.name)
def test_every_patch_round_trips_through_dump(path, tmp_path):
    patch = load_patch(path)
    text = dump(patch)
    assert tomllib.loads(text) == patch
    assert validate(tomllib.loads(text), SCHEMA) == patch
    again = load_patch(write(tmp_path, text))
    assert again == patch
    assert dump(again) == text
    assert load_params(write(tmp_path, text, "q.toml")) == load_params(path)


def test_every_parameter_has_a_unit_or_is_a_word_or_ratio():
    """pedalboard's rule: names carry units. The unitless ones are 0..1 amounts or choices."""
    unitless = {"osc2_level", "pulse_width", "noise_level", "resonance", "drive",
                "key_tracking", "amp_sustain", "filter_sustain", "velocity_sensitivity"}
    for name in SYNTH_SPECS:
        if name in CHOICES or name in unitless:
            continue
        assert name.endswith(("_hz", "_s", "_db", "_semitones", "_cents", "_octaves")), name


@pytest.mark.parametrize("name", sorted(CHOICES))
def test_choice_words_map_to_their_indices(name, tmp_path):
    group = group_of(name)
    for i, word in enumerate(CHOICES[name]):
        path = write(tmp_path, f'[{group}]\n{name} = "{word}"\n')
        assert load_params(path)[SYNTH_SPECS[name].index] == float(i)


def test_choice_index_numbers_are_not_accepted(tmp_path):
    path = write(tmp_path, "[oscillators]\nosc1_wave = 2\n")
    with pytest.raises(DataError, match=r"p.toml:2: \[oscillators\] osc1_wave: must be str"):
        load_patch(path)


def test_unknown_choice_word_lists_the_choices(tmp_path):
    path = write(tmp_path, '[patch]\nname = "x"\n\n[oscillators]\nosc2_wave = "square"\n')
    with pytest.raises(DataError) as exc:
        load_patch(path)
    assert str(exc.value) == (f"{path}:5: [oscillators] osc2_wave: must be one of saw, pulse, "
                              "triangle, sine; got 'square'")


def test_unknown_param_names_file_line_and_field(tmp_path):
    path = write(tmp_path, '# a patch\n[patch]\nname = "x"\n\n[filter]\nresonance = 0.3\n'
                           'cutof_hz = 800.0\n')
    with pytest.raises(DataError) as exc:
        load_patch(path)
    msg = str(exc.value)
    assert msg.startswith(f"{path}:7: [filter] cutof_hz: unknown key")
    assert "cutoff_hz" in msg


def test_param_in_the_wrong_group_is_unknown_there(tmp_path):
    path = write(tmp_path, "[oscillators]\ncutoff_hz = 300.0\n")
    with pytest.raises(DataError, match=r"p.toml:2: \[oscillators\] cutoff_hz: unknown key"):
        load_patch(path)


def test_unknown_group_names_its_header(tmp_path):
    path = write(tmp_path, '[patch]\nname = "x"\n[filters]\ncutoff_hz = 300.0\n')
    with pytest.raises(DataError, match=r"p.toml:3: \[filters\]: unknown section"):
        load_patch(path)


@pytest.mark.parametrize("name", ["cutoff_hz", "resonance", "amp_release_s", "gain_db",
                                  "osc2_semitones"])
def test_out_of_range_params_are_errors(name, tmp_path):
    spec = SYNTH_SPECS[name]
    group = group_of(name)
    for bad in (spec.lo - 1.0, spec.hi + 1.0):
        path = write(tmp_path, f"[{group}]\n\n{name} = {bad!r}\n")
        with pytest.raises(DataError) as exc:
            load_patch(path)
        assert str(exc.value).startswith(f"{path}:3: [{group}] {name}: must be "
                                          f"{spec.lo:g}..{spec.hi:g}")
    for good in (spec.lo, spec.hi):
        path = write(tmp_path, f"[{group}]\n{name} = {good!r}\n")
        assert load_params(path)[spec.index] == good


def test_integer_values_become_floats(tmp_path):
    path = write(tmp_path, "[filter]\ncutoff_hz = 800\n")
    patch = load_patch(path)
    assert patch["filter"]["cutoff_hz"] == 800.0 and isinstance(patch["filter"]["cutoff_hz"],
                                                                 float)


def test_broken_patch_file_names_the_file(tmp_path):
    path = write(tmp_path, "[filter]\ncutoff_hz = \n")
    with pytest.raises(DataError) as exc:
        load_params(path)
    assert str(exc.value).startswith(f"{path}:2: not valid TOML")


def test_missing_patch_file_names_the_file(tmp_path):
    with pytest.raises(DataError, match="nope.toml: cannot read"):
        load_params(tmp_path / "nope.toml")


def test_an_empty_patch_is_all_defaults(tmp_path):
    values = load_params(write(tmp_path, ""))
    assert values == {s.index: float(s.default) for s in SYNTH_SPECS.values()}
