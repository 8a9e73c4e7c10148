"""engine.config: defaults < config.toml < environment < command line, every value validated,
every error naming the file, the line and the field."""
import tomllib
from pathlib import Path

import pytest

from engine.config import SCHEMA, load_config
from engine.tomldata import DataError, Field, dump, line_of, validate

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path, text, name="config.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def errors(path, **kw):
    with pytest.raises(DataError) as exc:
        load_config(path, environ=kw.pop("environ", {}), **kw)
    return str(exc.value)


# ---- defaults and the repository's file ----------------------------------------------------------

def test_defaults_without_a_file():
    cfg = load_config(None, environ={})
    assert set(cfg) == set(SCHEMA)
    for section, fields in SCHEMA.items():
        assert set(cfg[section]) == set(fields)
        for key, f in fields.items():
            assert cfg[section][key] == f.default, (section, key)
    assert cfg["band"]["tempo_bpm"] == 112.0
    assert cfg["audio"]["block_size"] == 64
    assert cfg["render"]["sample_rate"] == 48000
    assert cfg["midi"]["inputs"] == ["all"]


def test_a_missing_file_means_defaults(tmp_path):
    assert load_config(tmp_path / "nope.toml", environ={}) == load_config(None, environ={})


def test_default_lists_are_not_shared_between_loads():
    a = load_config(None, environ={})
    a["midi"]["inputs"].append("x")
    assert load_config(None, environ={})["midi"]["inputs"] == ["all"]


def test_repository_config_loads_and_says_what_it_says():
    path = ROOT / "config.toml"
    raw = tomllib.loads(path.read_text())
    cfg = load_config(path, environ={})
    for section, values in raw.items():
        for key, value in values.items():
            assert cfg[section][key] == value, (section, key)
    # keys the file leaves out keep their defaults
    assert cfg["mix"]["keys_reverb_send"] == SCHEMA["mix"]["keys_reverb_send"].default


def test_partial_file_overrides_only_its_keys(tmp_path):
    path = write(tmp_path, "[band]\ntempo_bpm = 90\nstyle = \"funk\"\n")
    cfg = load_config(path, environ={})
    assert cfg["band"]["tempo_bpm"] == 90.0 and isinstance(cfg["band"]["tempo_bpm"], float)
    assert cfg["band"]["style"] == "funk"
    assert cfg["band"]["seed"] == 1
    assert cfg["audio"] == load_config(None, environ={})["audio"]


# ---- environment and command line ------------------------------------------------------------

def test_env_override():
    cfg = load_config(None, environ={"BANDMATE_BAND_TEMPO_BPM": "96", "PATH": "/bin"})
    assert cfg["band"]["tempo_bpm"] == 96.0


def test_env_values_are_toml_when_they_can_be(tmp_path):
    env = {"BANDMATE_BAND_DRUMS": "false", "BANDMATE_AUDIO_DEVICE": "hw:USB",
           "BANDMATE_MIDI_INPUTS": '["Keystation", "nanoKEY"]', "BANDMATE_BAND_SEED": "42",
           "BANDMATE_MIX_KEYS_GAIN_DB": "-3.5"}
    cfg = load_config(None, environ=env)
    assert cfg["band"]["drums"] is False
    assert cfg["audio"]["device"] == "hw:USB"
    assert cfg["midi"]["inputs"] == ["Keystation", "nanoKEY"]
    assert cfg["band"]["seed"] == 42
    assert cfg["mix"]["keys_gain_db"] == -3.5


def test_env_single_string_for_a_list_setting():
    cfg = load_config(None, environ={"BANDMATE_MIDI_INPUTS": "Keystation"})
    assert cfg["midi"]["inputs"] == ["Keystation"]


def test_env_beats_file(tmp_path):
    path = write(tmp_path, "[band]\ntempo_bpm = 90\nseed = 7\n")
    cfg = load_config(path, environ={"BANDMATE_BAND_TEMPO_BPM": "96"})
    assert cfg["band"]["tempo_bpm"] == 96.0
    assert cfg["band"]["seed"] == 7


def test_command_line_beats_env_and_file(tmp_path):
    path = write(tmp_path, "[band]\ntempo_bpm = 90\nseed = 7\n")
    cfg = load_config(path, overrides={"band": {"tempo_bpm": 130}},
                      environ={"BANDMATE_BAND_TEMPO_BPM": "96", "BANDMATE_BAND_SEED": "8"})
    assert cfg["band"]["tempo_bpm"] == 130.0
    assert cfg["band"]["seed"] == 8


def test_os_environ_is_the_default(monkeypatch):
    import os
    for name in list(os.environ):
        if name.startswith("BANDMATE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("BANDMATE_BAND_TEMPO_BPM", "101")
    assert load_config(None)["band"]["tempo_bpm"] == 101.0


@pytest.mark.parametrize("name", ["BANDMATE_BAND_TEMPO", "BANDMATE_FOO", "BANDMATE_BAND",
                                  "BANDMATE_AUDIO_BLOCKSIZE", "BANDMATE_TEMPO_BPM"])
def test_bad_env_names_are_errors(name):
    msg = errors(None, environ={name: "1"})
    assert name in msg and "no such setting" in msg


def test_env_names_of_other_programs_are_ignored():
    cfg = load_config(None, environ={"BANDMATEX_BAND_TEMPO_BPM": "30", "XBANDMATE_A_B": "1"})
    assert cfg["band"]["tempo_bpm"] == 112.0


@pytest.mark.parametrize("name,raw,what", [
    ("BANDMATE_BAND_TEMPO_BPM", "fast", "must be float"),
    ("BANDMATE_BAND_TEMPO_BPM", "500", "20..400"),
    ("BANDMATE_AUDIO_BLOCK_SIZE", "1.5", "must be int"),
    ("BANDMATE_BAND_STYLE", "polka", "must be one of"),
])
def test_bad_env_values_name_the_setting(name, raw, what):
    msg = errors(None, environ={name: raw})
    section, key = name[len("BANDMATE_"):].lower().split("_", 1)
    assert msg.startswith("environment")
    assert f"[{section}] {key}" in msg and what in msg


def test_env_numeric_looking_string_setting():
    cfg = load_config(None, environ={"BANDMATE_AUDIO_DEVICE": "2"})
    assert cfg["audio"]["device"] == "2"


@pytest.mark.parametrize("overrides,what", [
    ({"band": {"tempo_bpm": 10}}, "20..400"),
    ({"band": {"nope": 1}}, "unknown key"),
    ({"bogus": {"x": 1}}, "unknown section"),
])
def test_bad_overrides_name_the_command_line(overrides, what):
    msg = errors(None, overrides=overrides)
    assert msg.startswith("command line") and what in msg


# ---- errors name file:line and the field ---------------------------------------------------------

GOOD_HEAD = """# my settings
[audio]
driver = "jack"

[band]
tempo_bpm = 96
"""


def test_typo_key_names_file_line_and_key(tmp_path):
    path = write(tmp_path, GOOD_HEAD + "sed = 3\n")      # line 7
    msg = errors(path)
    assert "config.toml:7" in msg
    assert f"{path}:7: [band] sed: unknown key" in msg
    assert "seed" in msg                                 # lists what it could have been


def test_wrong_type_names_line(tmp_path):
    path = write(tmp_path, GOOD_HEAD + 'seed = 3\n\n[render]\nblock_size = "512"\n')
    msg = errors(path)
    assert f"{path}:10: [render] block_size: must be int, got '512'" == msg


def test_wrong_type_bool_for_int_and_int_for_bool(tmp_path):
    msg = errors(write(tmp_path, "[band]\n\ndrums = 1\n"))
    assert ":3: [band] drums: must be bool" in msg
    msg = errors(write(tmp_path, "[band]\nseed = true\n"))
    assert ":2: [band] seed: must be int" in msg


@pytest.mark.parametrize("line,text,field,rng", [
    (3, "block_size = 7", "[audio] block_size", "16..4096"),
    (3, "sample_rate = 200000", "[audio] sample_rate", "0..192000"),
    (4, "tempo_bpm = 19.5", "[band] tempo_bpm", "20..400"),
    (4, "swing = 0.6", "[band] swing", "0..0.5"),
    (5, "keys_pan = -1.5", "[mix] keys_pan", "-1..1"),
])
def test_out_of_range_names_line_and_range(tmp_path, line, text, field, rng):
    section = field[1:field.index("]")]
    body = "# x\n" * (line - 2) + f"[{section}]\n{text}\n"
    path = write(tmp_path, body)
    msg = errors(path)
    assert msg.startswith(f"{path}:{line}: {field}: must be {rng}, got ")


def test_unknown_section_names_the_header_line(tmp_path):
    path = write(tmp_path, GOOD_HEAD + "\n[bnad]\ntempo = 3\n")   # header on line 8
    msg = errors(path)
    assert msg.startswith(f"{path}:8: [bnad]: unknown section")
    assert "band" in msg


def test_broken_toml_names_file_and_line(tmp_path):
    path = write(tmp_path, GOOD_HEAD + "seed = = 3\n")
    msg = errors(path)
    assert msg.startswith(f"{path}:7: not valid TOML")      # file:line, as every other error


def test_choice_error_lists_the_choices(tmp_path):
    msg = errors(write(tmp_path, '[band]\nstyle = "polka"\n'))
    assert ":2: [band] style: must be one of rock, house, funk" in msg and "'polka'" in msg


def test_an_unreadable_path_is_a_data_error(tmp_path):
    # a directory where the file should be
    d = tmp_path / "config.toml"
    d.mkdir()
    msg = errors(d)
    assert str(d) in msg and "cannot read" in msg


def test_audio_latency_accepts_seconds_and_rejects_other_words(tmp_path):
    cfg = load_config(write(tmp_path, "[audio]\nlatency = 0.01\n"), environ={})
    assert cfg["audio"]["latency"] == 0.01
    with pytest.raises(DataError, match=r":2: \[audio\] latency"):
        load_config(write(tmp_path, '[audio]\nlatency = "fast"\n'), environ={})


def test_line_of_finds_keys_in_their_own_section_only():
    text = '[a]\nx = 1\n# x = 2\n[b]\n  "x" = 3\ny=4\n[ c ]\n'
    assert line_of(text, "a", "x") == 2
    assert line_of(text, "b", "x") == 5
    assert line_of(text, "b", "y") == 6
    assert line_of(text, "b", None) == 4
    assert line_of(text, "c", "x") == 7       # missing key -> the section's header
    assert line_of(text, "d", "x") is None


def test_field_check_rules():
    assert Field(1.0, lo=0, hi=2).check(1) == 1.0 and isinstance(Field(1.0).check(1), float)
    with pytest.raises(ValueError, match="must be float"):
        Field(1.0).check(True)
    with pytest.raises(ValueError, match="must be int"):
        Field(1).check(1.0)
    assert Field(["a"]).check("b") == ["b"]
    with pytest.raises(ValueError, match="list of strings"):
        Field(["a"]).check(["b", 3])


def test_validated_config_round_trips_through_dump():
    cfg = load_config(ROOT / "config.toml", environ={})
    again = validate(tomllib.loads(dump(cfg)), SCHEMA)
    assert again == cfg


def _toml_value(value) -> str:
    """A value as TOML text (inline tables for the units of a chain)."""
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return repr(value)


def test_every_setting_has_an_env_name_that_works():
    """BANDMATE_<SECTION>_<KEY> reaches every setting, and only it (a section may hold an
    underscore, [midi_out], as long as no other section and key spell the same name)."""
    names = [f"{section}_{key}" for section, fields in SCHEMA.items() for key in fields]
    assert len(set(names)) == len(names)
    for section, fields in SCHEMA.items():
        for key, f in fields.items():
            value = f.default
            raw = _toml_value(value)
            cfg = load_config(None, environ={f"BANDMATE_{section.upper()}_{key.upper()}": raw})
            assert cfg[section][key] == value, (section, key)
