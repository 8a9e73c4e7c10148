"""Synth patches: TOML files of named parameters with units (control side).

A patch sets any of the synth parameters (`engine.rt.params.SYNTH_SPECS`), grouped in tables
for reading; names say their units (`cutoff_hz`, `amp_attack_s`, `gain_db`). Choices are
words (`osc1_wave = "saw"`). A patch becomes K_PARAM events for one part, which the kernel
smooths, so loading a patch while notes sound never clicks.
"""
from __future__ import annotations

from pathlib import Path

from engine.rt.params import SYNTH_SPECS
from engine.tomldata import DataError, Field, Schema, load

GROUPS = {
    "oscillators": ("osc1_wave", "osc2_wave", "osc2_semitones", "detune_cents", "osc2_level",
                    "pulse_width", "noise_level"),
    "filter": ("filter_type", "cutoff_hz", "resonance", "drive", "key_tracking",
               "filter_env_octaves", "velocity_to_cutoff_octaves"),
    "amp_envelope": ("amp_attack_s", "amp_decay_s", "amp_sustain", "amp_release_s"),
    "filter_envelope": ("filter_attack_s", "filter_decay_s", "filter_sustain",
                        "filter_release_s"),
    "lfo": ("lfo_rate_hz", "lfo_shape", "lfo_to_pitch_semitones", "lfo_to_cutoff_octaves",
            "mod_wheel_to_vibrato_semitones"),
    "performance": ("velocity_sensitivity", "gain_db", "pitch_bend_range_semitones"),
}
assert sorted(n for g in GROUPS.values() for n in g) == sorted(SYNTH_SPECS)


def _field(name: str) -> Field:
    spec = SYNTH_SPECS[name]
    if spec.choices:
        return Field(spec.choices[int(spec.default)], choices=spec.choices)
    return Field(float(spec.default), lo=spec.lo, hi=spec.hi)


SCHEMA: Schema = {"patch": {"name": Field(""), "description": Field("")}} | {
    group: {name: _field(name) for name in names} for group, names in GROUPS.items()}


def load_patch(path: str | Path) -> dict:
    """A validated patch: {"patch": {...}, group: {param: value}} (missing values: defaults)."""
    return load(path, SCHEMA)


def param_values(patch: dict) -> dict[int, float]:
    """Parameter index → engine value (choices become their index)."""
    out = {}
    for group in GROUPS:
        for name, value in patch[group].items():
            spec = SYNTH_SPECS[name]
            out[spec.index] = float(spec.choices.index(value) if spec.choices else value)
    return out


def load_params(path: str | Path) -> dict[int, float]:
    try:
        return param_values(load_patch(path))
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - any other failure still names the file
        raise DataError(f"{path}: {exc}") from exc
