"""Golden seeded snapshots: every agent in every style, eight bars each, stored as compact JSON
in this folder (``AGENT-STYLE.json``, one note a row: begin, dur, MIDI note, velocity, nudge).

They pin the music down: an edit that changes what any agent plays in any style shows up as
the snapshot of that agent and style, with the first bar that differs (tests/test_golden.py).
The metric tests (tests/test_styles.py, tests/test_agents.py) say whether the music is still
right; the snapshots say that it changed. When a change is meant, regenerate them with

    python -m tests.golden --update        (from the repository root)

and read the diff of the JSON files (``python -m tests.golden`` only checks).

The scene: seed 11, the default progression (Am F C G) for bars 0-3 and a jazz-style ii-V-I
(Dm7 G7 Cmaj7 A7) for bars 4-7 through the same context, an intensity that rises over each
4-bar phrase (0.35, 0.55, 0.75, 0.95: quiet pads and grooves, fills and a whole-bar fill into
bar 8), cue-free.
"""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

from engine.agents import STYLES, BassAgent, ChordAgent, DrumAgent, LeadAgent, StaticContext
from engine.harmony import Progression

HERE = Path(__file__).parent
SEED = 11
BARS = 8
AGENTS = {
    "drums": lambda style: DrumAgent(style, SEED),
    "bass": lambda style: BassAgent(SEED, style),
    "chords": lambda style: ChordAgent(SEED, style),
    "lead": lambda style: LeadAgent(SEED, style),
}
PROGRESSION = Progression(["Am", "F", "C", "G", "Dm7", "G7", "Cmaj7", "A7"])


def context(style: str) -> StaticContext:
    return StaticContext(seed=SEED, style=style, progression=PROGRESSION,
                         intensity=lambda bar: 0.35 + 0.2 * (bar % 4))


def rows(agent: str, style: str) -> list[list]:
    """The snapshot's rows: [begin, dur, note, velocity, nudge_s] (times as 'n/d' strings)."""
    notes = AGENTS[agent](style).query(Fraction(0), Fraction(4 * BARS), context(style))
    return [[str(n.begin), str(n.dur), n.note, n.velocity, n.nudge_s] for n in notes]


def path(agent: str, style: str) -> Path:
    return HERE / f"{agent}-{style}.json"


def dumps(data: list[list]) -> str:
    """Compact JSON, one note a line (a diff shows which notes moved)."""
    return "[\n" + ",\n".join(json.dumps(r, separators=(",", ":")) for r in data) + "\n]\n"


def difference(agent: str, style: str) -> str | None:
    """None when the snapshot holds, else a sentence naming the agent, the style and the first
    bar and note that differ."""
    p = path(agent, style)
    if not p.exists():
        return f"{agent}/{style}: no snapshot {p.name} (python -m tests.golden --update)"
    want = json.loads(p.read_text())
    got = rows(agent, style)
    if got == want:
        return None
    for k in range(max(len(got), len(want))):
        a = got[k] if k < len(got) else None
        b = want[k] if k < len(want) else None
        if a != b:
            bar = int(Fraction((a or b)[0]) // 4)
            return (f"{agent}/{style} changed from bar {bar}: note {k} is {a}, the snapshot "
                    f"has {b} ({len(got)} notes, snapshot {len(want)}); if the change is "
                    f"meant: python -m tests.golden --update")
    return None


def update() -> list[str]:
    """Write every snapshot; returns the names of the files that changed."""
    changed = []
    for agent in AGENTS:
        for style in STYLES:
            text = dumps(rows(agent, style))
            p = path(agent, style)
            if not p.exists() or p.read_text() != text:
                p.write_text(text)
                changed.append(p.name)
    return changed
