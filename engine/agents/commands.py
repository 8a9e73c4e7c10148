"""Band commands in words (control side): a small deterministic language, no model.

    sparser | busier [PARTS]              each agent's (or those parts') density -/+ 0.2
    louder | softer                       the band's faders +/- 3 dB
    more energy | calm down               /band/energy +/- 0.2
    half time | double time | normal time /band/feel
    drop the drums [and bass]             those agents stop (until brought back)
    bring back the drums | everyone       those agents (or all) play again
    bass only | solo keys                 only that part plays (keys: the player alone)
    key of D minor                        /band/key (a major key asked of a minor
                                          progression: its relative minor)
    tempo 100 | faster | slower           /transport/tempo_bpm (+/- 5 BPM)
    swing more | swing less | straight    /band/swing (+/- 0.08; straight: 0)
    go to chorus [next phrase]            a jump in the song form (`engine.agents.form`)
    fill                                  a drum fill into the next bar line
    end                                   the ending: a final hit, then the band stops

A command may end with ``for N bars`` (N a number or one..sixteen): what it changes comes back
after those bars (the steering commands and swing). Several commands go in one line separated
by commas, ``;`` or ``then``. Every change is time-stamped: steering from the next bar the
scheduler has not reached (`Session.set(..., beat=...)`), faders on that bar's sample, the
tempo from the next beat not yet scheduled; a jump, a fill and the ending at the first bar
line whose last two beats are not scheduled yet (room for the fill). So the same command at the
same point of a session gives the same notes, live or offline.

Words not understood raise `CommandError` listing what is understood; nothing is guessed and
nothing changes (every clause is parsed before any is applied).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from engine.harmony import NOTE_NAMES

from .steer import AGENT_PARTS, FEEL, check_value

__all__ = ["CommandError", "Command", "Change", "parse", "do", "HELP"]

TEMPO = "/transport/tempo_bpm"
SWING = "/band/swing"
ENERGY = "/band/energy"
KEY = "/band/key"
DENSITY_STEP = 0.2
ENERGY_STEP = 0.2
GAIN_STEP_DB = 3.0
TEMPO_STEP_BPM = 5.0
SWING_STEP = 0.08
MAX_BARS = 64
FILL_ROOM_BEATS = 2     # a jump, fill or ending lands where this much of the bar is unscheduled

HELP = ("understood: sparser | busier [PARTS], louder | softer, more energy | calm down, "
        "half time | double time | normal time, drop the PARTS, bring back the PARTS | "
        "everyone, PART only | solo PART, key of D minor, tempo 100 | faster | slower, "
        "swing more | swing less | straight, go to SECTION [next phrase], fill, end; "
        "add 'for N bars' to come back after N bars; separate commands with ',' or 'then' "
        "(PARTS: drums, bass, chords, lead, keys, everyone)")

_PARTS = {"drums": "drums", "drum": "drums", "kit": "drums", "bass": "bass",
          "chords": "chords", "comping": "chords", "pads": "chords", "pad": "chords",
          "lead": "lead", "melody": "lead", "keys": "keys", "piano": "keys", "me": "keys"}
_ALL = {"everyone", "everybody", "everything", "all", "band"}
_FILLER = {"the", "a", "please", "bit", "little", "now", "some", "us", "lets", "let's", "and",
           "bars", "bar", "of"}
_NUMBERS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen".split())}
_NOTE = {n.lower(): i for i, n in enumerate(NOTE_NAMES)}
_NOTE.update({"db": 1, "d#": 3, "gb": 6, "g#": 8, "a#": 10, "cb": 11, "e#": 5, "fb": 4,
              "b#": 0, "bb": 10, "eb": 3, "ab": 8, "c#": 1, "f#": 6})


class CommandError(ValueError):
    """Words that are not a command: the message says which and what is understood."""


@dataclass(frozen=True)
class Change:
    """Set `address` to `value`, or (value None) move it by `delta` from its current value
    (clamped to its range)."""
    address: str
    value: float | str | None = None
    delta: float = 0.0


@dataclass(frozen=True)
class Command:
    """One parsed command: what it is (`what`), its changes, how many bars they last (None:
    they stay), and an action beside them ('fill', 'end', 'go SECTION', 'go SECTION phrase')."""
    what: str
    changes: tuple[Change, ...] = ()
    bars: int | None = None
    action: str | None = None


def _parts(words: list[str], clause: str) -> list[str]:
    """Part names (AGENT_PARTS, 'keys', or every agent for 'everyone')."""
    out: list[str] = []
    for w in words:
        if w in _ALL:
            out += [p for p in AGENT_PARTS if p not in out]
        elif w in _PARTS:
            if _PARTS[w] not in out:
                out.append(_PARTS[w])
        else:
            raise CommandError(f"{clause!r}: {w!r} is not a part. {HELP}")
    return out


def _number(word: str) -> int | None:
    if word.isdigit():
        return int(word)
    return _NUMBERS.get(word)


def _agents(parts: list[str], clause: str) -> list[str]:
    agents = [p for p in parts if p in AGENT_PARTS]
    if not agents:
        raise CommandError(f"{clause!r}: name a band part (drums, bass, chords, lead) or "
                           f"everyone")
    return agents


def _clause(clause: str) -> Command:
    words = [w for w in clause.split() if w not in _FILLER]
    bars = None
    if "for" in words:
        i = words.index("for")
        tail = words[i + 1:]
        n = _number(tail[0]) if len(tail) == 1 else None
        if n is None or not 1 <= n <= MAX_BARS:
            raise CommandError(f"{clause!r}: write 'for N bars' with N 1..{MAX_BARS}")
        bars, words = n, words[:i]
    if not words:
        raise CommandError(f"{clause!r}: nothing to do. {HELP}")
    head, rest, text = words[0], words[1:], " ".join(words)

    def cmd(what, changes=(), action=None) -> Command:
        return Command(what, tuple(changes), bars, action)

    if head in ("sparser", "busier", "denser", "thinner"):
        sign = -1.0 if head in ("sparser", "thinner") else 1.0
        agents = _agents(_parts(rest, clause), clause) if rest else list(AGENT_PARTS)
        return cmd(f"{head} ({', '.join(agents)})",
                   [Change(f"/{p}/agent/density", delta=sign * DENSITY_STEP) for p in agents])
    if text in ("louder", "softer", "quieter"):
        sign = 1.0 if text == "louder" else -1.0
        return cmd(text, [Change(f"/{p}/mix/gain_db", delta=sign * GAIN_STEP_DB)
                          for p in AGENT_PARTS])
    if text in ("more energy", "calm down", "less energy", "energy up", "energy down"):
        sign = 1.0 if text in ("more energy", "energy up") else -1.0
        return cmd(text, [Change(ENERGY, delta=sign * ENERGY_STEP)])
    if len(words) == 2 and words[1] in ("time", "feel") or text in ("halftime", "double"):
        feel = {"half": "half", "halftime": "half", "double": "double", "normal": "normal",
                "straight": "normal", "common": "normal"}.get(head)
        if feel is None:
            raise CommandError(f"{clause!r}: half time, double time or normal time")
        return cmd(f"{feel} time", [Change(FEEL, feel)])
    if head in ("drop", "no", "lose", "cut", "stop") and rest:
        agents = _agents(_parts(rest, clause), clause)
        return cmd(f"drop {', '.join(agents)}", [Change(f"/{p}/agent/on", "off")
                                                 for p in agents])
    if head in ("bring", "back") and rest:
        names = [w for w in rest if w not in ("back", "in")]
        agents = _agents(_parts(names or ["everyone"], clause), clause)
        return cmd(f"bring back {', '.join(agents)}", [Change(f"/{p}/agent/on", "on")
                                                       for p in agents])
    if (head in ("solo", "only", "just") and rest) or (rest == ["only"]):
        names = rest if head in ("solo", "only", "just") else [head]
        parts = _parts(names, clause)
        return cmd(f"{' and '.join(parts)} only",
                   [Change(f"/{p}/agent/on", "on" if p in parts else "off")
                    for p in AGENT_PARTS])
    if head == "key" and rest:
        mode = rest[-1] if rest[-1] in ("major", "minor") else None
        name = rest[:-1] if mode else rest
        if len(name) == 1 and name[0].endswith("m") and name[0][:-1] in _NOTE and mode is None:
            name, mode = [name[0][:-1]], "minor"
        if len(name) != 1 or name[0] not in _NOTE:
            raise CommandError(f"{clause!r}: write 'key of D minor' (a note C..B, with # or b, "
                               f"and major or minor)")
        return cmd(f"key of {NOTE_NAMES[_NOTE[name[0]]]}" + (f" {mode}" if mode else ""),
                   action=f"key {_NOTE[name[0]]} {mode or ''}".strip())
    if head == "tempo" and len(rest) == 1 or (len(words) == 2 and words[1] == "bpm"):
        word = rest[0] if head == "tempo" else head
        try:
            bpm = float(word)
        except ValueError:
            raise CommandError(f"{clause!r}: write 'tempo 100' (BPM)") from None
        return cmd(f"tempo {bpm:g}", [Change(TEMPO, bpm)])
    if text in ("faster", "slower", "speed up", "slow down"):
        sign = 1.0 if text in ("faster", "speed up") else -1.0
        return cmd(text, [Change(TEMPO, delta=sign * TEMPO_STEP_BPM)])
    if text in ("swing more", "more swing", "swing less", "less swing", "straight",
                "no swing", "swing"):
        if text in ("straight", "no swing"):
            return cmd("straight", [Change(SWING, 0.0)])
        sign = -1.0 if "less" in words else 1.0
        return cmd(f"swing {'less' if sign < 0 else 'more'}", [Change(SWING,
                                                                    delta=sign * SWING_STEP)])
    if head in ("go", "goto", "jump") and rest:
        names = rest[1:] if rest[0] == "to" else rest
        phrase = names[-2:] == ["next", "phrase"] or names[-1:] == ["phrase"]
        names = [w for w in names if w not in ("at", "on", "next", "phrase")]
        if len(names) != 1:
            raise CommandError(f"{clause!r}: write 'go to chorus' (a section of the form)")
        return cmd(f"go to {names[0]}" + (" (next phrase)" if phrase else ""),
                   action=f"go {names[0]}" + (" phrase" if phrase else ""))
    if text in ("fill", "drum fill", "fill in"):
        return cmd("fill", action="fill")
    if text in ("end", "ending", "end it", "end song", "finish", "wrap up"):
        if bars is not None:
            raise CommandError(f"{clause!r}: an ending takes no 'for N bars'")
        return cmd("end", action="end")
    unknown = [w for w in words if w not in _KNOWN]
    raise CommandError(f"{clause!r}: not understood"
                       + (f" ({', '.join(repr(w) for w in unknown)})" if unknown else "")
                       + f". {HELP}")


_KNOWN = set(_PARTS) | _ALL | {
    "sparser", "busier", "denser", "thinner", "louder", "softer", "quieter", "more", "energy",
    "calm", "down", "less", "up", "half", "double", "normal", "time", "feel", "halftime",
    "drop", "no", "lose", "cut", "stop", "bring", "back", "in", "solo", "only", "just", "key",
    "major", "minor", "tempo", "bpm", "faster", "slower", "speed", "slow", "swing", "straight",
    "go", "goto", "jump", "to", "next", "phrase", "fill", "end", "ending", "for"}


def parse(text: str) -> list[Command]:
    """The commands of `text` (clauses split at ',', ';' and 'then'); CommandError for any
    clause not understood (then none is applied)."""
    if not isinstance(text, str):
        raise CommandError(f"a command is text, got {type(text).__name__}")
    low = text.lower().strip()
    clauses = [c.strip(" .!?") for c in re.split(r"[,;]|\bthen\b", low)]
    clauses = [c for c in clauses if c]
    if not clauses:
        raise CommandError(f"no command given. {HELP}")
    out = [_clause(c) for c in clauses]
    if any(c.bars is not None and any(ch.address not in _TIMED and not
                                      ch.address.endswith("/agent/on") and not
                                      ch.address.endswith("/agent/density")
                                      for ch in c.changes) for c in out):
        raise CommandError("'for N bars' goes with the band's steering (parts, density, "
                           "energy, feel, key) and swing; not with the tempo or the faders")
    return out


_TIMED = {ENERGY, FEEL, KEY, SWING}


def _landing(session) -> int:
    """The bar a jump, fill or ending lands on: the first bar line with FILL_ROOM_BEATS of
    the bar before it not yet scheduled."""
    clock = session.clock
    return clock.bar_at(clock.next_bar(session.scheduler.cursor + FILL_ROOM_BEATS))


def _progression_minor(session) -> bool:
    ctx = session.ctx
    harmony = getattr(ctx, "harmony", None)
    prog = harmony.progression if harmony is not None else ctx.progression
    return prog.chords[0].is_minor


def do(session, text: str) -> str:
    """Parse `text` and apply it to `session` (see the module's docstring): returns what was
    done, e.g. "from bar 13: drop drums; back at bar 17". CommandError (nothing changed) when
    the words are not understood or a command cannot apply (no form to go to, ...)."""
    commands = parse(text)
    clock = session.clock
    start = clock.next_bar(session.scheduler.cursor)      # the next bar not yet scheduled
    first_bar = clock.bar_at(start)
    # check what needs the session before changing anything
    for c in commands:
        if c.action and c.action.startswith("go "):
            if session.form is None:
                raise CommandError(f"{c.what}: no song form playing (jam --form ...)")
            name = c.action.split()[1]
            names = {s.name for s in session.form.form.sections} | \
                {s.kind for s in session.form.form.sections}
            if name not in names:
                raise CommandError(f"{c.what}: no section {name!r} in the form "
                                   f"({session.form.form})")
        if c.action in ("fill", "end") and not hasattr(session.ctx, "cue"):
            raise CommandError(f"{c.what}: the demo plays its own fills and ending")
        for ch in c.changes:
            try:
                q = session.param(ch.address)
                if ch.value is not None:
                    check_value(ch.address, q, ch.value)
            except (KeyError, ValueError) as exc:
                raise CommandError(f"{c.what}: {str(exc).strip(chr(39))}") from None
    said = []
    for c in commands:
        said.append(_apply(session, c, start, first_bar))
    return "; ".join(said)


def _apply(session, c: Command, start: Fraction, first_bar: int) -> str:
    meter = session.clock.meter
    clock = session.clock
    if c.action == "fill":
        bar = _landing(session) - 1
        session.ctx.cue(bar, "fill")
        return f"fill in bar {bar + 1}"
    if c.action == "end":
        bar = _landing(session)
        if session.form is not None:
            session.form.jump("ending", bar)
        else:
            session.ctx.cue(bar, "ending")
            for p in AGENT_PARTS:
                session.set(f"/{p}/agent/on", "off", beat=meter.bar_start(bar + 1))
        return f"ending on bar {bar + 1}"
    if c.action and c.action.startswith("go "):
        words = c.action.split()
        bar = _landing(session)
        if len(words) == 3:         # the next phrase: a multiple of four bars
            bar = -(-bar // 4) * 4
        j = session.form.jump(words[1], bar)
        return f"{session.form.form.sections[j].name} from bar {bar + 1}"
    changes = list(c.changes)
    if c.action and c.action.startswith("key "):
        words = c.action.split()
        tonic, mode = int(words[1]), (words[2] if len(words) == 3 else None)
        minor = _progression_minor(session)
        if mode is not None and (mode == "minor") != minor:
            tonic = (tonic + (9 if minor else 3)) % 12   # the relative key of the mode asked
        changes.append(Change(KEY, NOTE_NAMES[tonic]))
    before = {ch.address: session.value(ch.address) for ch in changes}
    done = []
    for ch in changes:
        q = session.param(ch.address)
        if ch.value is None:
            v = min(q.hi, max(q.lo, before[ch.address] + ch.delta))
        else:
            v = ch.value
        if ch.address == TEMPO:
            session.set(TEMPO, float(v))
        elif ch.address.endswith("/mix/gain_db"):
            session.set(ch.address, v, time=clock.sample_at(start))
        else:
            session.set(ch.address, v, beat=start)
        done.append(ch.address)
    out = f"from bar {first_bar + 1}: {c.what}"
    if c.bars is not None:
        back = meter.bar_start(first_bar + c.bars)
        for ch in changes:
            session.set(ch.address, before[ch.address], beat=back)
        out += f"; back at bar {first_bar + c.bars + 1}"
    if c.action and c.action.startswith("key "):
        out += f" (/band/key {NOTE_NAMES[int(session.value(KEY))]})"
    return out

