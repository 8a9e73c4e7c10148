"""Style prompts for the band (control side): "funky, 96 bpm, sparse drums, dreamy keys".

A prompt names styles (engine/words/styles.toml), optionally weighted ("70% lofi, 30% bossa",
`lofi:0.7 bossa:0.3`; a style without a weight weighs 1; weights are normalised), a tempo
("96 bpm"), band words ("calm", "swung", "fast") and part words placed before a part's name
("sparse drums", "low bass", "no lead", and any timbre word of engine/words: "dreamy keys").

Blending, deterministic: each number (tempo, swing, energy, each agent's density and octave) is
the weighted mean over the styles, a style that leaves a key out counting as that address's
neutral default; each choice (the band's style, each part's patch, an agent on or off) is the
heaviest style's (the first named on a tie; for a patch, the heaviest style naming one). Words
given outright (a tempo, "sparse drums", "calm") override the blend. Unknown words are reported,
not guessed. `apply_prompt` sends the result through `Session.set` (or `Session.glide` with a
fade), so the band changes from its next bar not yet scheduled, without stopping.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from engine.agents.base import STYLES
from engine.agents.steer import AGENT_PARTS, STEER_PARAMS
from engine.parts import PARTS

__all__ = ["StyleTable", "Prompt", "Settings", "Applied", "styles", "parse", "settings",
           "apply_prompt", "describe"]

PATH = Path(__file__).with_name("styles.toml")
TEMPO = "/transport/tempo_bpm"
SWING = "/band/swing"
PART_ALIASES = {"drum": "drums", "piano": "keys", "key": "keys", "chord": "chords",
                "melody": "lead", "pad": "chords", "pads": "chords"}
FILLERS = {"with", "and", "a", "an", "the", "some", "of", "bit", "little", "in", "plus", "mix"}
NEUTRAL = {TEMPO: 120.0, SWING: 0.0}
TOKEN = re.compile(r"(\d+(?:\.\d+)?)\s*(%|bpm\b)?|([a-z][a-z'\-]*)(?::(\d+(?:\.\d+)?))?|([,;+/])")


@dataclass(frozen=True)
class StyleTable:
    """The style words, part words and band words of a styles.toml."""
    styles: dict          # name -> its table
    aliases: dict         # word -> style name
    part_words: dict      # word -> (what, value): ("density", 0.2), ("octave", -1), ("on", False)
    band_words: dict      # word -> (what, value): ("energy", 0.3), ("tempo", "fast")


@lru_cache(maxsize=4)
def styles(path: str = str(PATH)) -> StyleTable:
    """The style table, checked (a ValueError names the file and the bad key)."""
    data = tomllib.loads(Path(path).read_text())
    table, aliases = {}, {}
    for name, s in data.get("styles", {}).items():
        where = f"{path}: [styles.{name}]"
        if s.get("style") not in STYLES:
            raise ValueError(f"{where} style: one of {', '.join(STYLES)}, got {s.get('style')!r}")
        if not isinstance(s.get("tempo_bpm"), (int, float)):
            raise ValueError(f"{where} tempo_bpm: a number is needed")
        for part in list(s.get("parts", {})) + list(s.get("patches", {})):
            if part not in PARTS:
                raise ValueError(f"{where}: no part {part!r}; parts: {', '.join(PARTS)}")
        table[name] = s
        for word in [name] + list(s.get("aliases", [])):
            aliases[word] = name
    part_words = {w: (what, v) for what, words in data.get("part_words", {}).items()
                  for w, v in words.items()}
    band_words = {w: (what, v) for what, words in data.get("band_words", {}).items()
                  for w, v in words.items()}
    return StyleTable(table, aliases, part_words, band_words)


@dataclass
class Prompt:
    """What a prompt says, before blending."""
    weights: list = field(default_factory=list)     # [(style name, weight)], in order
    tempo_bpm: float | None = None
    band: list = field(default_factory=list)        # [(what, value)] of band words, in order
    parts: list = field(default_factory=list)       # [(part, word)], in order
    unknown: list = field(default_factory=list)


def _timbre_word(word: str) -> bool:
    from engine.words.vocab import vocabulary
    parsed = vocabulary().parse(word)
    return bool(parsed.terms) and not parsed.unknown


def parse(text: str, table: StyleTable | None = None) -> Prompt:
    """The styles, weights, tempo, band words and part words of `text`."""
    table = table or styles()
    out = Prompt()
    weight: float | None = None
    pending: list[str] = []

    def flush():
        for w in pending:
            if w in table.band_words:
                out.band.append(table.band_words[w])
            elif w in table.part_words and table.part_words[w][0] == "density":
                out.band.append(table.part_words[w])          # "sparse" alone: every agent
            elif w not in FILLERS:
                out.unknown.append(w)
        pending.clear()

    for m in TOKEN.finditer(text.lower()):
        number, unit, word, wnum, sep = m.groups()
        if sep:
            flush()
        elif number is not None:
            flush()
            if unit == "bpm":
                out.tempo_bpm = float(number)
            elif unit == "%":
                weight = float(number) / 100.0
            else:
                out.unknown.append(number)
        elif word in table.aliases:
            flush()
            w = float(wnum) if wnum is not None else weight if weight is not None else 1.0
            out.weights.append((table.aliases[word], w))
            weight = None
        elif wnum is not None:
            out.unknown.append(f"{word}:{wnum}")
        elif word in PARTS or word in PART_ALIASES:
            part = PART_ALIASES.get(word, word)
            for w in pending:
                if w in table.part_words or _timbre_word(w):
                    out.parts.append((part, w))
                elif w not in FILLERS:
                    out.unknown.append(w)
            pending.clear()
        else:
            pending.append(word)
    flush()
    return out


@dataclass
class Settings:
    """A prompt's band settings: address -> value (a choice as its word), patches per part,
    timbre words per part, and the words not understood."""
    values: dict = field(default_factory=dict)
    patches: dict = field(default_factory=dict)
    timbre: dict = field(default_factory=dict)
    unknown: list = field(default_factory=list)


def _default(address: str) -> float:
    return NEUTRAL[address] if address in NEUTRAL else float(STEER_PARAMS[address].default)


def settings(text: str, table: StyleTable | None = None) -> Settings:
    """The blended band settings of `text` (see the module's doc for the rules)."""
    table = table or styles()
    p = parse(text, table)
    out = Settings(unknown=list(p.unknown))
    bad = [(n, w) for n, w in p.weights if w <= 0]
    out.unknown += [f"{n}:{w:g} (a weight must be > 0)" for n, w in bad]
    weights = [(n, w) for n, w in p.weights if w > 0]
    total = sum(w for _, w in weights)
    if weights:
        mix = [(table.styles[n], w / total) for n, w in weights]
        heavy = sorted(mix, key=lambda sw: -sw[1])          # stable: the first on a tie
        numbers: dict[str, list] = {TEMPO: [], SWING: [], "/band/energy": []}
        for s, w in mix:
            numbers[TEMPO].append((float(s["tempo_bpm"]), w))
            numbers[SWING].append((float(s.get("swing", 0.0)), w))
            numbers["/band/energy"].append((float(s.get("energy", 0.5)), w))
        for part in AGENT_PARTS:
            keys = ["density"] + (["octave"] if part != "drums" else [])
            for key in keys:
                address = f"/{part}/agent/{key}"
                numbers[address] = [(float(s.get("parts", {}).get(part, {}).get(
                    key, _default(address))), w) for s, w in mix]
        for address, vw in numbers.items():
            v = sum(v * w for v, w in vw)
            if address.endswith("/octave"):
                v = float(round(v))
            if any(v != _default(address) for v, _ in vw) or address in (TEMPO, SWING) \
                    or address == "/band/energy":
                out.values[address] = round(v, 4)
        out.values["/band/style"] = heavy[0][0]["style"]
        for part in AGENT_PARTS:
            on = heavy[0][0].get("parts", {}).get(part, {}).get("on")
            if on is not None:
                out.values[f"/{part}/agent/on"] = "on" if on else "off"
        for part in PARTS:
            name = next((s["patches"][part] for s, _ in heavy
                         if part in s.get("patches", {})), None)
            if name:
                out.patches[part] = name
        lo = sum(s.get("tempo_range_bpm", [s["tempo_bpm"]] * 2)[0] * w for s, w in mix)
        hi = sum(s.get("tempo_range_bpm", [s["tempo_bpm"]] * 2)[1] * w for s, w in mix)
    else:
        lo, hi = 80.0, 140.0
    for what, v in p.band:
        if what == "energy":
            out.values["/band/energy"] = float(v)
        elif what == "swing":
            out.values[SWING] = float(v)
        elif what == "tempo":
            out.values[TEMPO] = round(float(lo if v == "slow" else hi), 4)
        elif what == "density":
            for part in AGENT_PARTS:
                out.values[f"/{part}/agent/density"] = float(v)
    if p.tempo_bpm is not None:
        out.values[TEMPO] = p.tempo_bpm
    for part, word in p.parts:
        what, v = table.part_words.get(word, ("timbre", word))
        if what == "timbre":
            out.timbre.setdefault(part, []).append(word)
        elif part not in AGENT_PARTS:
            out.unknown.append(f"{word} {part} ({part} has no agent)")
        elif what == "on":
            out.values[f"/{part}/agent/on"] = "on" if v else "off"
        elif what == "octave" and part == "drums":
            out.unknown.append(f"{word} drums (the drums have no octave)")
        else:
            out.values[f"/{part}/agent/{what}"] = float(v)
    return out


@dataclass
class Applied:
    """What `apply_prompt` did: the values set, patches loaded, timbre moved, and what not."""
    settings: Settings
    sets: list = field(default_factory=list)
    patches: dict = field(default_factory=dict)
    timbre: dict = field(default_factory=dict)
    skipped: list = field(default_factory=list)


def apply_prompt(session, text: str, fade_s: float = 0.0, similar=None, folders=None,
                 load_patches: bool = True) -> Applied:
    """Set the band as `text` says through the session's address space: every value is checked
    first (a bad one raises ValueError and nothing changes), then set from the next bar not yet
    scheduled (a tempo from the next beat), continuous values gliding over `fade_s` seconds like
    a faded scene. Patches (by name, in `folders`, default the factory library; all in one
    crossfaded graph swap) and timbre words follow; one that cannot apply (no such part, the
    last swap still fading) is reported in `skipped`."""
    from engine.agents.steer import check_value
    s = settings(text)
    checked = [(a, check_value(a, session.param(a), v)) for a, v in s.values.items()]
    out = Applied(s)
    for address, v in checked:
        out.sets.append((address, session.glide(address, v, fade_s) if fade_s > 0
                         else session.set(address, v)))
    if load_patches and s.patches:
        from engine.words.design import library
        files = {p.stem: p for p in library(folders)}
        for part, name in s.patches.items():
            if name not in files:
                out.skipped.append(f"patch {name} on {part}: no such patch")
        paths = {part: files[name] for part, name in s.patches.items() if name in files}
        try:
            if paths:
                session.load_patches(paths)         # one crossfaded swap for all the parts
                out.patches = {part: s.patches[part] for part in paths}
        except Exception as exc:  # noqa: BLE001 - patches that cannot load are reported
            out.skipped += [f"patch {s.patches[part]} on {part}: {exc}" for part in paths]
    for part, words in s.timbre.items():
        from engine.words.design import edit_live
        try:
            sets, _ = edit_live(session, part, ", ".join(words), similar)
            out.timbre[part] = sets
        except (KeyError, ValueError) as exc:
            out.skipped.append(f"{' '.join(words)} {part}: {str(exc).strip(chr(39))}")
    return out


def describe(applied: Applied) -> str:
    """A few lines for the terminal."""
    s = applied.settings
    vals = ", ".join(f"{a}={v:g}" if isinstance(v, float) else f"{a}={v}"
                     for a, v in s.values.items())
    lines = [f"prompt: {len(applied.sets)} values ({vals})" if vals else "prompt: no values"]
    if applied.patches:
        lines.append("patches: " + ", ".join(f"{p}={n}" for p, n in applied.patches.items()))
    for part, sets in applied.timbre.items():
        lines.append(f"{part}: {len(sets)} sound parameters moved")
    lines += [f"skipped: {x}" for x in applied.skipped]
    if s.unknown:
        lines.append("unknown: " + ", ".join(s.unknown))
    return "\n".join(lines)
