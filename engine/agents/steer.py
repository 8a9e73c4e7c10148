"""Steering: the band's parameters a performer moves while it plays (control side).

`Steering` is a time-stamped parameter map, like the clock's tempo segments: each address has a
base value (from config.toml) and change points (beat, value). A change is put in force from a
beat the scheduler has not queried yet (the session picks the next bar), so nothing scheduled is
ever rewritten, and because the agents read the map by beat, an offline render and a live run
with the same changes at the same beats play the same notes.

Addresses (each a `Param`: range, default, curve, choices):

    /band/style             a style of `STYLES` (overrides the agents' own)
    /band/energy            0..1, 0.5 neutral: pushes the followed intensity towards 0 or 1
    /band/groove            0..1: how much of the style's groove template (engine.agents.groove:
                            micro-timing, accents, jazz's triplet swing) every part plays with
    /band/key               the key the band's own progression is played in (a tonic; the
                            default progression's own is A): the player's chords stay as played
    /band/feel              normal | half | double: half time (the groove spread over twice
                            the time, the backbeat on 3) or double time (drums and bass)
    /PART/agent/on          off | on: the agent plays (PART: drums, bass, chords, lead)
    /PART/agent/density     0..1, 0.5 neutral: fewer or more notes (hits, figures, runs)
    /PART/agent/octave      -2..2 whole octaves (bass, chords, lead)
    /lead/agent/answer      off | on: the lead part answers the player's phrases (call and
                            response, `engine.agents.answer`) instead of playing its own
    /transport/playing      off | on: the band stops scheduling (the player plays on)
    /arp/...                the arpeggiator (engine.agents.arp: on, input, part, mode, rate,
                            octaves, octave, gate, latch, retrigger, velocity_mode, velocity)
    /band/memory            off | on: the band plays the loop it has learned from the player
                            ahead (engine.listen.progression); off: it follows only

The agents read them per bar through `BarInfo` (`Agent.bar_info`), so a rendered bar is cached
under its parameters and re-rendered only when they change. A value left at its default
reproduces the notes of a band with no steering at all.
"""
from __future__ import annotations

from bisect import bisect_right
from fractions import Fraction

from engine.harmony import NOTE_NAMES
from engine.patterns.event import Note
from engine.rt.param import Param

from .arp import ARP_PARAMS
from .base import MEMORY, STYLES

__all__ = ["Steering", "STEER_PARAMS", "AGENT_PARTS", "SteeredBand", "PLAYING", "check_value",
           "WHOLE", "FEELS", "FEEL"]

AGENT_PARTS = ("drums", "bass", "chords", "lead")
PLAYING = "/transport/playing"
ON_OFF = ("off", "on")
FEEL = "/band/feel"
FEELS = ("normal", "half", "double")


def _params() -> dict[str, Param]:
    out = {
        "/band/style": Param("style", 0, len(STYLES) - 1, 0, curve="choice", choices=STYLES,
                             smooth_s=0.0, doc="the band's style, from the next bar"),
        "/band/energy": Param("energy", 0.0, 1.0, 0.5, smooth_s=0.0,
                              doc="0.5 follows the player; up: busier and louder, down: calmer"),
        "/band/groove": Param("groove", 0.0, 1.0, 1.0, smooth_s=0.0,
                              doc="the style's groove template: 0 straight, 1 as written"),
        "/band/key": Param("key", 0, 11, NOTE_NAMES.index("A"), curve="choice",
                           choices=NOTE_NAMES, smooth_s=0.0,
                           doc="tonic of the band's own progression (its default is A minor)"),
        FEEL: Param("feel", 0, len(FEELS) - 1, 0, curve="choice", choices=FEELS, smooth_s=0.0,
                    doc="half time or double time (drums and bass), from the next bar"),
        PLAYING: Param("playing", 0, 1, 1, curve="choice", choices=ON_OFF, smooth_s=0.0,
                       doc="off: the band stops at once; on: it comes back at the next bar"),
    }
    for part in AGENT_PARTS:
        out[f"/{part}/agent/on"] = Param("on", 0, 1, 1, curve="choice", choices=ON_OFF,
                                         smooth_s=0.0, doc=f"the {part} agent plays")
        out[f"/{part}/agent/density"] = Param("density", 0.0, 1.0, 0.5, smooth_s=0.0,
                                              doc="0.5 as the style has it; fewer/more notes")
        if part != "drums":
            out[f"/{part}/agent/octave"] = Param("octave", -2.0, 2.0, 0.0, smooth_s=0.0,
                                                 doc="register shift, whole octaves")
    out[MEMORY] = Param("memory", 0, 1, 1, curve="choice", choices=ON_OFF, smooth_s=0.0,
                        doc="the band anticipates the chord loop it has learned from the player")
    out["/lead/agent/answer"] = Param("answer", 0, 1, 0, curve="choice", choices=ON_OFF,
                                      smooth_s=0.0, doc="the lead answers the player's phrases")
    out.update(ARP_PARAMS)
    return out


#: every steering address and its Param
STEER_PARAMS: dict[str, Param] = _params()
#: addresses whose value is a whole number (rounded when set)
WHOLE = frozenset(a for a, q in STEER_PARAMS.items()
                  if q.curve == "choice" or q.name in ("octave", "octaves"))


def check_value(address: str, q: Param, value) -> float:
    """`value` for the parameter `q` of `address`: a number in its range (a whole one for a
    choice) or a choice's word, as a number; ValueError naming the address otherwise."""
    if q.curve == "choice" and isinstance(value, str):
        if value not in q.choices:
            raise ValueError(f"{address}: must be one of {', '.join(q.choices)}, got {value!r}")
        return float(q.choices.index(value))
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or value != value or not q.lo <= value <= q.hi:
        raise ValueError(f"{address}: must be {q.lo:g}..{q.hi:g}"
                         + (f" or one of {', '.join(q.choices)}" if q.choices else "")
                         + f", got {value!r}")
    if q.curve == "choice" and value != int(value):
        raise ValueError(f"{address}: must be a whole number (a choice), got {value!r}")
    return float(value)


class Steering:
    """The time-stamped map of the steering addresses (see the module's docstring).

    ``base``: values in force before any change (address -> number; the defaults otherwise).
    ``keep_beats``: how much history is kept behind the latest change (the point in force then
    is always kept)."""

    def __init__(self, base: dict[str, float] | None = None, keep_beats: int = 256):
        self.base = {a: float(q.default) for a, q in STEER_PARAMS.items()}
        for a, v in (base or {}).items():
            self.base[a] = self.check(a, v)
        self._beats: dict[str, list[Fraction]] = {}
        self._values: dict[str, list[float]] = {}
        self.keep_beats = keep_beats
        self.version = 0            # bumped on every change (a cheap "anything new?" check)

    @staticmethod
    def param(address: str) -> Param:
        try:
            return STEER_PARAMS[address]
        except KeyError:
            raise KeyError(f"{address}: no such parameter") from None

    @classmethod
    def check(cls, address: str, value) -> float:
        """`value` (a number, or a choice's word) as the number stored; ValueError if out of
        range, KeyError if there is no such address."""
        v = check_value(address, cls.param(address), value)
        return float(round(v)) if address in WHOLE else v

    def set(self, address: str, value, at: Fraction) -> float:
        """Put `value` in force from beat `at` on; changes planned after `at` are dropped (the
        newest request wins, as with the player's chords). Returns the value stored."""
        v = self.check(address, value)
        at = Fraction(at)
        beats = self._beats.setdefault(address, [])
        values = self._values.setdefault(address, [])
        i = bisect_right(beats, at)
        if i > 0 and beats[i - 1] == at:
            i -= 1
        del beats[i:], values[i:]
        if (values[-1] if values else self.base[address]) != v:
            beats.append(at)
            values.append(v)
        cut = bisect_right(beats, at - self.keep_beats) - 1
        if cut > 0:
            del beats[:cut], values[:cut]
        self.version += 1
        return v

    def at(self, address: str, beat: Fraction) -> float:
        """The value in force at `beat`."""
        beats = self._beats.get(address)
        if beats:
            i = bisect_right(beats, beat) - 1
            if i >= 0:
                return self._values[address][i]
        return self.base[address]

    def latest(self, address: str) -> float:
        """The last value asked for (in force now or from a coming bar)."""
        self.param(address)
        values = self._values.get(address)
        return values[-1] if values else self.base[address]

    def since(self, address: str, beat: Fraction) -> Fraction:
        """The beat from which the value in force at `beat` has been in force (0: the base)."""
        beats = self._beats.get(address)
        if beats:
            i = bisect_right(beats, beat) - 1
            if i >= 0:
                return beats[i]
        return Fraction(0)

    def changed(self, address: str) -> bool:
        """Whether `address` has any change point (a fast path for the common case)."""
        return bool(self._beats.get(address))

    # ---- what the agents read -------------------------------------------------------------
    def style_at(self, beat: Fraction, own: str) -> str:
        """The style in force: `own` (the agent's or the context's) until /band/style is set."""
        if not self.changed("/band/style"):
            return own
        return STYLES[int(self.at("/band/style", beat))]

    def key_shift(self, beat: Fraction, tonic: int) -> int:
        """Semitones the band's progression (whose tonic is `tonic`) moves at `beat`: 0 until
        /band/key is set."""
        if not self.changed("/band/key"):
            return 0
        return (int(self.at("/band/key", beat)) - tonic) % 12

    def feel_at(self, beat: Fraction) -> str:
        """The feel in force at `beat` (one of `FEELS`)."""
        return FEELS[int(self.at(FEEL, beat))]

    def agent(self, part: str, beat: Fraction) -> tuple[bool, float, int]:
        """(on, density, octave) of the agent of `part` at `beat`."""
        on = self.at(f"/{part}/agent/on", beat) >= 0.5
        density = self.at(f"/{part}/agent/density", beat)
        octave = int(self.at(f"/{part}/agent/octave", beat)) if part != "drums" else 0
        return on, density, octave


class SteeredBand:
    """The band as the scheduler queries it: the notes of `band` whose onsets fall where
    /transport/playing is on (a stopped band schedules nothing; the agents' caches stay)."""

    def __init__(self, band, steer: Steering):
        self.band = band
        self.steer = steer

    def query(self, begin: Fraction, end: Fraction, ctx) -> list[Note]:
        steer = self.steer
        if not steer.changed(PLAYING):
            return self.band.query(begin, end, ctx) if steer.base[PLAYING] >= 0.5 else []
        return [n for n in self.band.query(begin, end, ctx) if steer.at(PLAYING, n.begin) >= 0.5]
