"""Synth patches: TOML files of named parameters with units (control side).

A patch names its engine in `[patch] engine`: `analog` (the built-in subtractive voice, the
default) or an instrument unit (`engine.rt.units`, e.g. `wavetable`, `fm`). An analog patch sets
any of the synth parameters (`engine.rt.params.SYNTH_SPECS`), grouped in tables for reading; a
unit engine's patch sets its unit's parameters in `[synth]`. Names say their units (`cutoff_hz`,
`amp_attack_s`, `gain_db`); choices are words (`osc1_wave = "saw"`). Any patch may carry its
own effect chain, `[patch] inserts = [{ unit = "chorus" }, ...]`, and tags.

A drum kit is the `kit` engine, its values in `[kit]`.

A patch is the part's instrument in the session's graph (engine.control.graph): loading one
while notes sound swaps the graph, crossfaded; an instrument of the same engine keeps its voices
and glides to the new values, so it never clicks.
"""
from __future__ import annotations

from pathlib import Path

from engine.rt.params import SYNTH_SPECS
from engine.tomldata import DataError, Field, Schema, load

GROUPS = {
    "oscillators": ("osc1_wave", "osc2_wave", "osc2_semitones", "detune_cents", "osc2_level",
                    "pulse_width", "noise_level", "noise_color"),
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


class _Chain(Field):
    """A patch's insert chain (engine.declared.check_chain says what is valid)."""

    def check(self, value):
        from engine.declared import check_chain
        check_chain(value)
        return value


def engines() -> tuple[str, ...]:
    """Every instrument unit's name (`analog` the subtractive voice, `kit` the drum
    machine)."""
    from engine.declared import units
    return tuple(u.NAME for u in units() if getattr(u, "INSTRUMENT", False))


def section(engine: str) -> str:
    """The table holding an instrument unit's values: [kit] for a kit, [synth] otherwise."""
    return "kit" if engine == "kit" else "synth"


META = {"name": Field(""), "description": Field(""), "tags": Field([]),
        "engine": Field("analog"), "inserts": _Chain([])}
SCHEMA: Schema = {"patch": META} | {
    group: {name: _field(name) for name in names} for group, names in GROUPS.items()}


def unit_schema(engine: str) -> Schema:
    """The schema of a patch for an instrument unit: [patch] and [synth] (a kit: [kit])."""
    from engine.declared import unit as declared
    unit = declared(engine)
    fields = {}
    for q in unit.PARAMS:
        if q.curve == "choice":
            fields[q.name] = Field(q.choices[int(q.default)], q.doc, choices=tuple(q.choices))
        else:
            fields[q.name] = Field(float(q.default), q.doc, lo=q.lo, hi=q.hi)
    for key in getattr(unit, "DATA", {}):      # data keys (the sampler's `samples`): a string
        fields[key] = Field("", "data the instrument loads (a name, or a path relative to the "
                                "patch)")
    return {"patch": META, section(engine): fields}


class Patch:
    """A loaded, validated patch: its engine, its values, its inserts, its words."""

    def __init__(self, data: dict, path: Path | None = None):
        meta = data["patch"]
        self.path = path
        self.data = data
        self.engine = meta["engine"]
        self.name, self.description = meta["name"], meta["description"]
        self.tags = list(meta["tags"])
        self.inserts = list(meta["inserts"])

    @property
    def analog(self) -> bool:
        return self.engine == "analog"

    def params(self) -> dict[int, float]:
        """An analog patch's parameter index → engine value."""
        return param_values(self.data)

    def instrument(self) -> dict:
        """The graph's instrument table: {"unit": engine, parameter: value...}."""
        if self.analog:
            values = self.params()
            return {"unit": "analog"} | {q.name: values[q.index] for q in SYNTH_SPECS.values()}
        from engine.declared import unit as declared
        unit = declared(self.engine)
        out = {"unit": self.engine}
        for q in unit.PARAMS:
            v = self.data[section(self.engine)][q.name]
            out[q.name] = float(q.choices.index(v)) if q.curve == "choice" else float(v)
        for key in getattr(unit, "DATA", {}):
            v = self.data[section(self.engine)].get(key, "")
            if v:       # a path (not a bare name) is relative to the patch's folder
                bare = v.replace("_", "").replace("-", "").isalnum()
                out[key] = v if bare or self.path is None or Path(v).is_absolute() \
                    else str(self.path.parent / v)
        return out


def read_patch(path: str | Path) -> Patch:
    """Any patch file, validated against its engine's schema; errors name file, line, field."""
    from engine.tomldata import line_of, parse, validate
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror}") from exc
    raw = parse(text, str(path))
    engine = raw.get("patch", {}).get("engine", "analog") if isinstance(raw.get("patch"), dict) \
        else "analog"
    known = engines()
    if engine not in known:
        line = line_of(text, "patch", "engine")
        raise DataError(f"{path}:{line}: [patch] engine: must be one of {', '.join(known)}; "
                        f"got {engine!r}")
    schema = SCHEMA if engine == "analog" else unit_schema(engine)
    try:
        return Patch(validate(raw, schema, text, str(path)), path)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - any other failure still names the file
        raise DataError(f"{path}: {exc}") from exc


def load_patch(path: str | Path) -> dict:
    """A validated patch: {"patch": {...}, group: {param: value}} (missing values: defaults)."""
    return load(path, SCHEMA)


def param_values(patch: dict) -> dict[int, float]:
    """Parameter index → engine value (choices become their index)."""
    out = {}
    for group in GROUPS:
        if group not in patch:
            continue
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
