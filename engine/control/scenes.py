"""Scenes: named sets of address -> value, recalled in one go (control side).

A scene file (config `[scenes] file`, TOML) holds one table per scene; its keys are the
session's addresses (quoted: they have slashes) and two optional settings:

    [groove]
    fade_s = 2.0                 # continuous values glide this long (0: switch at once)
    quantise = "bar"             # start on the next bar (or "beat"; "none": at once)
    "/band/energy" = 0.65
    "/band/style" = "funk"       # a choice by its word (or its number)
    "/bass/mix/gain_db" = -3.0

Checked on load against the session's addresses (`Session.param`): an unknown address, a value
out of range, a bad setting raise DataError("scenes.toml:12: [groove] /band/energy: must be
0..1, got 3") naming the file, line and field. `save_scenes` writes them back (the file's
leading comment block is kept): load -> save -> load gives the same scenes.
`Session.recall_scene`, `Session.save_scene` and `Session.scenes` use them; `:scene NAME` while
jamming, OSC `/bandmate/scene NAME [FADE_S]` and a mapping file's `[[program]] scenes = [...]`
recall one.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from engine.agents.steer import check_value
from engine.rt.param import Param
from engine.tomldata import DataError, dump, leading_comments, line_of, parse

QUANTISE = ("none", "beat", "bar")
SETTINGS = ("fade_s", "quantise")
MAX_FADE_S = 60.0
_NAME = re.compile(r"[A-Za-z0-9_-]+")


@dataclass
class Scene:
    """`values`: address -> a number or a choice's word, in file order."""
    name: str
    values: dict = field(default_factory=dict)
    fade_s: float = 0.0
    quantise: str = "none"

    def data(self) -> dict:
        out: dict = {}
        if self.fade_s:
            out["fade_s"] = float(self.fade_s)
        if self.quantise != "none":
            out["quantise"] = self.quantise
        out.update(self.values)
        return out


def snapshot_addresses(addresses: list[str]) -> list[str]:
    """What `Session.save_scene` keeps by default: the band's steering, the arpeggiator, the
    tempo and swing, and every part's and return's mixer strip (not the instruments' sound,
    which patches hold, nor /transport/playing: a scene never stops the band unless it says
    so)."""
    return [a for a in addresses
            if (a.startswith("/band/") or "/agent/" in a or a == "/transport/tempo_bpm"
                or "/mix/" in a or a.startswith("/arp/"))]


def parse_scenes(text: str, where: str, param: Callable[[str], Param]) -> dict[str, Scene]:
    """The scenes of a scene file's `text` (`where` names it in errors), each address checked
    with `param` (address -> Param, KeyError if there is none)."""
    data = parse(text, where)

    def fail(section, key, msg):
        line = line_of(text, section, key)
        loc = f"{where}:{line}" if line else where
        raise DataError(f"{loc}: [{section}]" + (f" {key}" if key else "") + f": {msg}")

    out: dict[str, Scene] = {}
    for name, table in data.items():
        if not _NAME.fullmatch(name):
            fail(name, None, "a scene's name is letters, digits, - and _")
        if not isinstance(table, dict):
            fail(name, None, "must be a table of address = value")
        scene = Scene(name)
        for key, value in table.items():
            if key == "fade_s":
                if isinstance(value, bool) or not isinstance(value, (int, float)) \
                        or not 0.0 <= value <= MAX_FADE_S:
                    fail(name, key, f"must be 0..{MAX_FADE_S:g} seconds, got {value!r}")
                scene.fade_s = float(value)
            elif key == "quantise":
                if value not in QUANTISE:
                    fail(name, key, f"must be one of {', '.join(QUANTISE)}, got {value!r}")
                scene.quantise = value
            elif not key.startswith("/"):
                fail(name, key, f"unknown setting; a scene has {', '.join(SETTINGS)} and "
                                f"addresses (\"/band/energy\" = 0.7)")
            else:
                try:
                    q = param(key)
                except KeyError as exc:
                    fail(name, key, str(exc.args[0] if exc.args else exc).removeprefix(
                        key + ": "))
                try:
                    check_value(key, q, value)
                except ValueError as exc:
                    fail(name, key, str(exc).removeprefix(key + ": "))
                scene.values[key] = float(value) if isinstance(value, int) \
                    and not isinstance(value, bool) and q.curve != "choice" else value
        out[name] = scene
    return out


def load_scenes(path: str | Path, param: Callable[[str], Param]) -> dict[str, Scene]:
    """The scenes of the file at `path` (none if there is no such file)."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        text = path.read_text()
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror}") from exc
    return parse_scenes(text, str(path), param)


def dumps_scenes(scenes: dict[str, Scene], head: str = "") -> str:
    body = dump({name: s.data() for name, s in scenes.items()})
    return (head + "\n\n" if head else "") + body


def save_scenes(path: str | Path, scenes: dict[str, Scene]) -> Path:
    """Write `scenes` to `path`, keeping the leading comment block of the file there."""
    path = Path(path)
    head = leading_comments(path.read_text()) if path.exists() else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(dumps_scenes(scenes, head))
    tmp.replace(path)
    return path
