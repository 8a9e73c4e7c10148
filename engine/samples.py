"""Sample sets: TOML descriptions of multisampled instruments, checked, their audio decoded and
built into the sampler unit's SampleSets (control side; engine.rt.units.sampler plays them).

A set is a TOML file; file paths in it are relative to it:

    [set]                           # optional
    name = "mallet"
    description = "a marimba-like mallet, four roots, two velocity layers"
    loop_crossfade_ms = 10.0        # the default for the zones' loops

    [[zone]]
    file = "mallet/c4_soft.flac"    # WAV, FLAC, anything libsndfile reads; mono or stereo
    root = 60                       # the key at which the file plays as recorded
    lo = 54                         # keys lo..hi (default: the root alone)
    hi = 65
    vel_lo = 1                      # velocities vel_lo..vel_hi, MIDI (default 1..127)
    vel_hi = 79
    tune_cents = 0.0
    gain_db = 0.0
    pan = 0.0                       # -1 left .. 1 right
    loop_start = 12000              # frames; with loop_end, a forward loop
    loop_end = 36000
    loop_crossfade_ms = 10.0
    rr_group = 0                    # 1..63: the zones of a group holding a note take turns
    one_shot = false                # plays to its end whatever the key does (not with a loop)

A note plays one zone: the first (in file order) holding its key and velocity, or, if that
one has a round-robin group, the next of that group's zones holding them.

`load_set(name_or_path)` is the graph's loader for an instrument's `samples = ...` key: a bare
word names a factory set (samples/<word>.toml), anything else is a path (relative: to the
current directory; a patch resolves its own relative paths against its folder). Sets are cached
while their files are unchanged. Errors name the file, the line and the field:
`kit.toml:14: zone 3 (snare2.flac) root: must be 0..127, got 200`.
"""
from __future__ import annotations

import re
import tomllib
from collections import OrderedDict
from pathlib import Path

import numpy as np

from engine.rt.units import sampler
from engine.tomldata import DataError, Field

FACTORY = Path(__file__).resolve().parents[1] / "samples"

SET_FIELDS = {
    "name": Field("", "the set's name"),
    "description": Field(""),
    "loop_crossfade_ms": Field(10.0, "default cross-fade at the zones' loop points",
                               lo=0.0, hi=1000.0),
}
ZONE_FIELDS = {
    "file": Field("", "the audio file, relative to the set"),
    "root": Field(60, "the key at which the file plays as recorded", lo=0, hi=127),
    "lo": Field(0, "lowest key", lo=0, hi=127),
    "hi": Field(127, "highest key", lo=0, hi=127),
    "vel_lo": Field(1, "lowest velocity", lo=0, hi=127),
    "vel_hi": Field(127, "highest velocity", lo=0, hi=127),
    "tune_cents": Field(0.0, lo=-2400.0, hi=2400.0),
    "gain_db": Field(0.0, lo=-60.0, hi=24.0),
    "pan": Field(0.0, lo=-1.0, hi=1.0),
    "loop_start": Field(0, "first frame of the loop", lo=0, hi=2 ** 40),
    "loop_end": Field(0, "the frame after the loop", lo=0, hi=2 ** 40),
    "loop_crossfade_ms": Field(10.0, lo=0.0, hi=1000.0),
    "rr_group": Field(0, "round-robin group (0: none)", lo=0, hi=sampler.MAX_RR - 1),
    "one_shot": Field(False, "play to the end whatever the key does"),
}
REQUIRED = ("file", "root")
MIN_LOOP = 8          # frames
CACHE_SETS = 8


def factory_sets() -> list[str]:
    """The names of the sets under samples/."""
    return sorted(p.stem for p in FACTORY.glob("*.toml"))


def resolve(value, base: str | Path | None = None) -> Path:
    """The TOML file a `samples` value names: a bare word is a factory set, anything else a
    path (relative to `base`, or to the current directory)."""
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"samples: must be a factory set's name or a TOML path, got {value!r}")
    if re.fullmatch(r"[A-Za-z0-9_-]+", value):
        path = FACTORY / f"{value}.toml"
        if not path.is_file():
            raise DataError(f"samples: no factory set {value!r}; factory sets: "
                            f"{', '.join(factory_sets()) or 'none'}")
        return path
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = Path(base or Path.cwd()) / path
    return path


# ---- reading a set ---------------------------------------------------------------------------

def _lines(text: str) -> tuple[dict, list]:
    """Line numbers: ({key of [set]: line} with "" for the header, [(header line, {key: line})
    per [[zone]]])."""
    set_lines: dict = {}
    zones: list = []
    current = None
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        m = re.match(r"\[\[\s*([^\]]+?)\s*\]\]", s)
        if m:
            current = (n, {}) if m.group(1) == "zone" else None
            if current is not None:
                zones.append(current)
            continue
        m = re.match(r"\[\s*([^\]]+?)\s*\]", s)
        if m:
            current = set_lines if m.group(1) == "set" else None
            if current is set_lines:
                set_lines[""] = n
            continue
        m = re.match(r"\"?([A-Za-z0-9_-]+)\"?\s*=", s)
        if m and current is not None:
            (current if isinstance(current, dict) else current[1]).setdefault(m.group(1), n)
    return set_lines, zones


class _Where:
    """Error messages for one set file: `path:line: field: message`."""

    def __init__(self, path: Path, text: str):
        self.path = path
        self.set_lines, self.zone_lines = _lines(text)

    def zone(self, i: int, key: str | None, label: str, msg: str) -> DataError:
        line = None
        if i < len(self.zone_lines):
            head, keys = self.zone_lines[i]
            line = keys.get(key, head)
        at = f"{self.path}:{line}" if line else str(self.path)
        what = f"zone {i + 1}{label}" + (f" {key}" if key else "")
        return DataError(f"{at}: {what}: {msg}")

    def top(self, key: str | None, msg: str) -> DataError:
        line = self.set_lines.get(key or "", self.set_lines.get(""))
        at = f"{self.path}:{line}" if line else str(self.path)
        return DataError(f"{at}: {('[set] ' + key) if key else '[set]'}: {msg}")


def _decode(path: Path):
    """(audio (channels, frames) float64, sample rate) of an audio file."""
    import soundfile
    x, rate = soundfile.read(str(path), dtype="float64", always_2d=True)
    return np.ascontiguousarray(x.T), float(rate)


_decoded: OrderedDict = OrderedDict()
_sets: OrderedDict = OrderedDict()


def _stamp(path: Path):
    st = path.stat()
    return (str(path), st.st_mtime_ns, st.st_size)


def _cached(cache: OrderedDict, key, make, size: int):
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    value = make()
    cache[key] = value
    while len(cache) > size:
        cache.popitem(last=False)
    return value


def read_zones(path: str | Path) -> tuple[dict, list[dict], _Where]:
    """A set file's [set] values and its zones, checked (no audio read): ({...}, [{key: value,
    "path": Path}], where)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror}") from exc
    where = _Where(path, text)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        raise DataError(f"{path}:{m.group(1) if m else '?'}: not valid TOML: {exc}") from exc
    unknown = set(raw) - {"set", "zone"}
    if unknown:
        key = sorted(unknown)[0]
        line = next((n for n, s in enumerate(text.splitlines(), 1)
                     if re.match(rf"\s*\[?\[?\s*\"?{re.escape(key)}\b", s)), None)
        raise DataError(f"{path}:{line or '?'}: {key}: unknown; a set has [set] and [[zone]]")
    head = raw.get("set", {})
    if not isinstance(head, dict):
        raise where.top(None, "must be a table")
    values = {k: f.default for k, f in SET_FIELDS.items()}
    for key, value in head.items():
        if key not in SET_FIELDS:
            raise where.top(key, f"unknown key; known: {', '.join(SET_FIELDS)}")
        try:
            values[key] = SET_FIELDS[key].check(value)
        except ValueError as exc:
            raise where.top(key, str(exc)) from None
    zones = raw.get("zone")
    if not isinstance(zones, list) or not zones:
        raise DataError(f"{path}: no [[zone]]: a set needs at least one zone")
    if len(zones) > sampler.MAX_ZONES:
        raise DataError(f"{path}: {len(zones)} zones; a set holds at most {sampler.MAX_ZONES}")
    out = []
    for i, z in enumerate(zones):
        if not isinstance(z, dict):
            raise where.zone(i, None, "", "must be a table")
        label = f" ({z['file']})" if isinstance(z.get("file"), str) else ""
        for key in REQUIRED:
            if key not in z:
                raise where.zone(i, None, label, f"{key} is missing (needed: "
                                                 f"{', '.join(REQUIRED)})")
        zone = {"loop_crossfade_ms": values["loop_crossfade_ms"]}
        for key, value in z.items():
            if key not in ZONE_FIELDS:
                raise where.zone(i, key, label, f"unknown key; known: {', '.join(ZONE_FIELDS)}")
            try:
                zone[key] = ZONE_FIELDS[key].check(value)
            except ValueError as exc:
                raise where.zone(i, key, label, str(exc)) from None
        zone.setdefault("lo", zone["root"])
        zone.setdefault("hi", zone["root"])
        for key in ZONE_FIELDS:
            zone.setdefault(key, ZONE_FIELDS[key].default)
        if not zone["file"]:
            raise where.zone(i, "file", label, "must name an audio file")
        if zone["lo"] > zone["hi"]:
            raise where.zone(i, "hi", label, f"must be >= lo ({zone['lo']}), got {zone['hi']}")
        if zone["vel_lo"] > zone["vel_hi"]:
            raise where.zone(i, "vel_hi", label, f"must be >= vel_lo ({zone['vel_lo']}), got "
                                                 f"{zone['vel_hi']}")
        looped = "loop_start" in z or "loop_end" in z
        if looped and not ("loop_start" in z and "loop_end" in z):
            key = "loop_end" if "loop_start" in z else "loop_start"
            raise where.zone(i, "loop_start" if key == "loop_end" else "loop_end", label,
                             f"a loop needs both loop_start and loop_end ({key} is missing)")
        if looped and zone["loop_end"] - zone["loop_start"] < MIN_LOOP:
            raise where.zone(i, "loop_end", label, f"must be at least {MIN_LOOP} frames after "
                                                   f"loop_start ({zone['loop_start']}), got "
                                                   f"{zone['loop_end']}")
        if looped and zone["one_shot"]:
            raise where.zone(i, "one_shot", label, "a looped zone cannot be one_shot (it would "
                                                   "never end)")
        zone["looped"] = looped
        zone["path"] = (path.parent / zone["file"]).resolve()
        zone["label"] = label
        out.append(zone)
    return values, out, where


def _audio(zone: dict, i: int, where: _Where):
    path = zone["path"]
    label = zone["label"]
    if not path.is_file():
        raise where.zone(i, "file", label, f"cannot read {path}: no such file")
    try:
        audio, rate = _cached(_decoded, _stamp(path), lambda: _decode(path), 64)
    except Exception as exc:  # noqa: BLE001 - libsndfile's errors vary by format and version
        raise where.zone(i, "file", label, f"cannot read {path} as audio: {exc}") from None
    frames = audio.shape[1]
    if audio.shape[0] > 2:
        raise where.zone(i, "file", label, f"{path.name} has {audio.shape[0]} channels; a zone "
                                           f"is mono or stereo")
    if frames == 0:
        raise where.zone(i, "file", label, f"{path.name} holds no audio")
    if not np.isfinite(audio).all():
        raise where.zone(i, "file", label, f"{path.name} holds non-finite samples")
    if zone["looped"] and zone["loop_end"] > frames:
        raise where.zone(i, "loop_end", label, f"{zone['loop_end']} is beyond the end of "
                                               f"{path.name} ({frames} frames)")
    return audio, rate


def read_set(path: str | Path) -> sampler.SampleSet:
    """A set file read, checked, its audio decoded and built (cached while the TOML and its
    audio files are unchanged)."""
    path = Path(path).resolve() if Path(path).exists() else Path(path)
    values, zones, where = read_zones(path)
    stamps = []
    for i, z in enumerate(zones):
        try:
            stamps.append(_stamp(z["path"]))
        except OSError:
            raise where.zone(i, "file", z["label"], f"cannot read {z['path']}: no such "
                                                    f"file") from None
    key = (_stamp(path), tuple(stamps))

    def build():
        built = []
        for i, z in enumerate(zones):
            audio, rate = _audio(z, i, where)
            loop = None
            if z["looped"]:
                xf = int(round(z["loop_crossfade_ms"] * 1e-3 * rate))
                loop = (z["loop_start"], z["loop_end"], xf)
            built.append(sampler.Zone(audio, rate, z["root"], z["lo"], z["hi"], z["vel_lo"],
                                      z["vel_hi"], z["tune_cents"], z["gain_db"], z["pan"],
                                      z["rr_group"], z["one_shot"], loop))
        return sampler.build_set(built, values["name"] or path.stem)
    return _cached(_sets, key, build, CACHE_SETS)


def load_set(value, base: str | Path | None = None) -> sampler.SampleSet:
    """The graph's loader for `samples = ...`: a factory set's name or a TOML path."""
    return read_set(resolve(value, base))
