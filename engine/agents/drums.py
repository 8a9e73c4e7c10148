"""The drummer (control side): per-style step patterns with Euclidean and probabilistic layers,
two-bar kick variations, ghost notes, fills at phrase ends (each style's own: `STYLE_FILLS`),
crashes after fills, humanised velocity and timing, and intensity that thins or thickens the
groove. The style's groove template (engine.agents.groove) is applied afterwards, by `Agent`.

Patterns are written for 4/4 as 16 sixteenth steps. Step characters:

    X  accent, always       x  hit, always       o  weak hit; sometimes dropped below 0.5
    g  ghost (quiet); more likely as intensity rises   ?  optional hit; only at high intensity
    .  rest

Every probabilistic hit compares a fixed draw ``unit(seed, "drums", bar, instrument, layer,
step)`` against a threshold that rises with intensity, so more intensity only ever adds hits
(and a rendered bar never reshuffles when intensity moves).

Other meters reuse the 4/4 beats pulse by pulse (`engine.meter.step_source`): the first pulse
plays beat 1, then beats 2 and 3 alternately, then the last pulse beat 4 (3/4 plays beats 1, 2,
4 of the 4/4 pattern, 5/4 beats 1, 2, 3, 2, 4). A dotted-quarter pulse (6/8, 9/8, 12/8, the
three-eighth group of 5/8 or 7/8) plays its beat's downbeat and off-beat eighth on its three
eighths: 6/8 is two pulses, the kick on 1 and the backbeat on 4, the hats on every eighth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from itertools import accumulate

from engine.meter import step_source
from engine.parts import DRUM_NOTES
from engine.patterns.event import Note
from engine.patterns.pattern import euclid
from engine.patterns.rand import unit

from .base import Agent, BarInfo

__all__ = ["DrumAgent", "DrumStyle", "DRUM_STYLES", "STYLE_FILLS", "Fills", "kick_steps",
           "fit_meter", "feel_pattern"]

SIXTEENTH = Fraction(1, 4)


def _e(k: int, n: int, rotation: int = 0, ch: str = "x") -> str:
    """A Euclidean rhythm as a step string."""
    return "".join(ch if b else "." for b in euclid(k, n, rotation))


@dataclass(frozen=True)
class DrumStyle:
    """``layers``: (instrument, 16-step pattern, minimum intensity). The first kick layer is the
    main kick; in odd bars it is replaced by one of ``kick_variants`` (chosen per 4-bar
    phrase, sometimes the main pattern itself). ``gain`` scales velocities per instrument;
    ``feel_ms`` pushes (-) or lays back (+) an instrument; ``jitter_ms`` is the random spread."""

    layers: tuple[tuple[str, str, float], ...]
    kick_variants: tuple[str, ...] = ()
    gain: tuple[tuple[str, float], ...] = ()
    feel_ms: tuple[tuple[str, float], ...] = ()
    jitter_ms: float = 3.0
    choke_hats: bool = True   # an open hat drops the closed hat on its step (False: jazz,
    #                          whose "open hat" is the ride and whose closed hat is the foot)


DRUM_STYLES: dict[str, DrumStyle] = {
    "rock": DrumStyle(
        layers=(
            ("kick", "x.......x.x.....", 0.0),
            ("snare", "....X.......X...", 0.0),
            ("snare", "...g.......g....", 0.3),
            ("closed_hat", "x.o.x.o.x.o.x.o.", 0.0),
            ("closed_hat", ".g.g.g.g.g.g.g.g", 0.8),
            ("open_hat", "..............?.", 0.55),
        ),
        kick_variants=("x.......x.x..x..", "x......xx.x.....", "x.x.....x.x....."),
        gain=(("closed_hat", 0.72), ("open_hat", 0.75)),
        jitter_ms=3.5,
    ),
    "house": DrumStyle(
        layers=(
            ("kick", "X...X...X...X...", 0.0),
            ("clap", "....x.......x...", 0.25),
            ("open_hat", "..x...x...x...x.", 0.0),
            ("closed_hat", "?g.g?g.g?g.g?g.g", 0.45),
            ("rim", _e(3, 8, 1, "o") * 2, 0.6),
        ),
        kick_variants=("X...X...X...X..?",),
        gain=(("open_hat", 0.7), ("closed_hat", 0.6), ("rim", 0.7), ("clap", 0.9)),
        feel_ms=(("clap", 1.5),),
        jitter_ms=1.5,
    ),
    "funk": DrumStyle(
        layers=(
            ("kick", "x.x.......x..x..", 0.0),
            ("snare", "....X..g.g..X..g", 0.0),
            ("closed_hat", "xgogxgogxgogxgog", 0.0),
            ("open_hat", ".......?......?.", 0.5),
            ("rim", ".............?..", 0.85),
        ),
        kick_variants=("x.x.......x..?.x", "x..x..x...x....."),
        gain=(("closed_hat", 0.7), ("open_hat", 0.7), ("rim", 0.6)),
        jitter_ms=3.0,
    ),
    "hiphop": DrumStyle(
        layers=(
            ("kick", "x......?x.x.....", 0.0),
            ("snare", "....X.......X...", 0.0),
            ("snare", "...............g", 0.4),
            ("closed_hat", "x.o.x.o.x.o.x.o.", 0.0),
            ("closed_hat", "...?.......?....", 0.6),
            ("open_hat", "..............?.", 0.65),
        ),
        kick_variants=("x.....x...x..x..", "x..x....x.x....."),
        gain=(("closed_hat", 0.65), ("open_hat", 0.65)),
        feel_ms=(("snare", 7.0), ("closed_hat", 3.0)),
        jitter_ms=4.0,
    ),
    "bossa": DrumStyle(
        layers=(
            ("kick", "x..ox..ox..ox..o", 0.0),
            ("rim", "x..x..x...x..x..", 0.0),
            ("closed_hat", "xgogxgogxgogxgog", 0.0),
            ("tom_low", "..............?.", 0.75),
        ),
        gain=(("kick", 0.7), ("rim", 0.75), ("closed_hat", 0.5), ("tom_low", 0.55)),
        jitter_ms=4.0,
    ),
    "breakbeat": DrumStyle(
        layers=(
            ("kick", "x.x.......xx....", 0.0),
            ("snare", "....X..o.o..X..o", 0.0),
            ("closed_hat", "x.x.x.x.x.x.x.x.", 0.0),
            ("closed_hat", ".g.g.g.g.g.g.g.g", 0.75),
            ("open_hat", "..........?.....", 0.6),
        ),
        kick_variants=("x.x.......x.....", "x.x...x...x....."),
        gain=(("closed_hat", 0.68), ("open_hat", 0.7)),
        jitter_ms=3.0,
    ),
    # drum and bass (160-176 BPM): the two-step, kick on 1 and the "and" of 3, snare on 2
    # and 4 (a half-time backbeat at a double-time tempo), fast hats, ghost snares around it
    "dnb": DrumStyle(
        layers=(
            ("kick", "x.........x.....", 0.0),
            ("snare", "....X.......X...", 0.0),
            ("snare", ".......g.g....g.", 0.2),
            ("closed_hat", "x.x.x.x.x.x.x.x.", 0.0),
            ("closed_hat", ".g.g.g.g.g.g.g.g", 0.45),
            ("open_hat", "......?.......?.", 0.6),
            ("kick", ".............?..", 0.75),
        ),
        kick_variants=("x.........x..x..", "x.x.......x.....", "x......x..x....."),
        gain=(("closed_hat", 0.62), ("open_hat", 0.62)),
        jitter_ms=2.0,
    ),
    # jazz swing: the ride's "spang-a-lang" (every beat, a skip note on the off-beat of 2 and
    # 4, swung to the triplet by the jazz groove), the hi-hat foot on 2 and 4, a feathered kick
    # on every beat, snare comping and ghosts. The kit has no ride cymbal: the open hat,
    # played light, is the ride (GM 46 on MIDI out).
    "jazz": DrumStyle(
        layers=(
            ("kick", "o...o...o...o...", 0.0),
            ("open_hat", "x...x.x.x...x.x.", 0.0),
            ("closed_hat", "....x.......x...", 0.0),
            ("snare", "..g...g...g...g.", 0.25),
            ("snare", "..........?...?.", 0.5),
            ("kick", "......?.........", 0.7),
        ),
        gain=(("kick", 0.42), ("open_hat", 0.6), ("closed_hat", 0.55), ("snare", 0.75)),
        feel_ms=(("closed_hat", -5.0),),   # the foot lands just before the ride it meets
        jitter_ms=2.0,
        choke_hats=False,
    ),
}

# step character -> (velocity, probability as a function of intensity i)
_VEL = {"X": 1.0, "x": 0.86, "o": 0.68, "g": 0.32, "?": 0.74}


def _prob(ch: str, i: float) -> float:
    if ch in "Xx":
        return 1.0
    if ch == "o":
        return min(1.0, 0.5 + i)
    if ch == "g":
        return max(0.0, min(0.95, 1.3 * i - 0.25))
    if ch == "?":
        return max(0.0, min(0.85, 1.5 * (i - 0.45)))
    raise ValueError(f"unknown drum step {ch!r}")


# Fills: one character per sixteenth (per eighth-note triplet in jazz). S snare, s ghost snare,
# R a snare 32nd pair, H/M/L toms, K kick, . rest. Velocities rise through the fill.
FILLS_1 = ("SSSS", "S.SS", "HHML", "SSHM", "K.SS")
FILLS_2 = ("SSSSHHML", "S.SSH.ML", "sSsSSSSS", "HHMMLLKK", "KSsSHMLL", "S.S.SSSS")
_FILL_INST = {"S": "snare", "s": "snare", "R": "snare", "H": "tom_high", "M": "tom_mid",
              "L": "tom_low", "K": "kick"}


@dataclass(frozen=True)
class Fills:
    """A style's fills, by length: one beat, two beats (the 8-bar phrase end), four beats
    (the phrase end at high energy, from intensity `whole_bar_from` up). ``unit``: sixteenths
    per character (4/3: eighth-note triplets)."""

    one: tuple[str, ...] = FILLS_1
    two: tuple[str, ...] = FILLS_2
    four: tuple[str, ...] = ()
    unit: Fraction = Fraction(1)
    whole_bar_from: float = 0.8


#: fills that fit each style: tom runs in rock, snare rolls in drum and bass, triplets in jazz
STYLE_FILLS: dict[str, Fills] = {
    "rock": Fills(one=("HHML", "SHML", "S.ML", "SSHM"),
                  two=("SSHHMMLL", "HHMMLLKK", "S.SSHHML", "SHMLHMLL", "KSsSHMLL"),
                  four=("S.SSS.SSHHMMLLKK", "SSHHSSMMSSLLHMLK")),
    "dnb": Fills(one=("sSSS", "SSRR", "S.RR"),
                 two=("sSsSSSSS", "S.SsSSRR", "SSSSRRRR", "sSSRSSRR"),
                 four=("sssSsSsSSSSSRRRR", "S.sSS.sSSSSSRRRR")),
    "jazz": Fills(one=("sSS", "S.K", "SHM"),
                  two=("SsSSHM", "S.KS.K", "sSSSSS", "SHMHML"),
                  four=("sSsSSSHHMMLK", "S.KS.KSSSHML"),
                  unit=Fraction(4, 3)),
}
_DEFAULT_FILLS = Fills()


def _step(at: Fraction) -> int | Fraction:
    """A fill position as an int step when it is on the sixteenth grid (keys stay ints)."""
    return int(at) if at.denominator == 1 else at


def fit_meter(pattern16: str, pulses: tuple[int, ...]) -> str:
    """The 4/4 step pattern adapted to a bar of ``pulses`` (sixteenths each; see module doc
    and `BarInfo.beat_pulses`)."""
    if pulses == (4, 4, 4, 4):
        return pattern16
    return "".join(pattern16[step_source(pulses, s)] for s in range(sum(pulses)))


def feel_pattern(pattern16: str, feel: str) -> str:
    """The 16-step pattern in a feel (steering /band/feel): 'half' spreads its first two beats
    over the bar (each step twice as long: the backbeat of beat 2 lands on beat 3), 'double'
    plays the whole pattern in two beats, twice; 'normal' leaves it."""
    if feel == "normal":
        return pattern16
    n = len(pattern16)
    if feel == "half":
        return "".join(pattern16[s // 2] if s % 2 == 0 else "." for s in range(n))
    if feel == "double":
        return "".join(pattern16[(2 * s) % n] for s in range(n))
    raise ValueError(f"unknown feel {feel!r}")


def _kick_pattern(style: DrumStyle, seed: int, bar: int) -> str:
    main = next(p for inst, p, _ in style.layers if inst == "kick")
    if bar % 2 == 0 or not style.kick_variants:
        return main
    options = (main,) + style.kick_variants
    return options[int(unit(seed, "drums", "kickvar", bar // 4) * len(options))]


def kick_steps(style_name: str, bar: int, pulses: tuple[int, ...] = (4, 4, 4, 4), seed: int = 0,
               feel: str = "normal") -> tuple[int, ...]:
    """The steps where the kick always plays ('X'/'x') in ``bar`` (of ``pulses``): the bass
    locks to these."""
    pat = fit_meter(feel_pattern(_kick_pattern(DRUM_STYLES[style_name], seed, bar), feel),
                    pulses)
    return tuple(s for s, ch in enumerate(pat) if ch in "Xx")


class DrumAgent(Agent):
    """``DrumAgent(style, seed)``: ``style`` None follows ``ctx.style``, ``seed`` None
    follows ``ctx.seed``."""

    name = "drums"
    part = "drums"

    def __init__(self, style: str | None = None, seed: int | None = 0, cache_bars: int = 48):
        super().__init__(seed=seed, style=style, cache_bars=cache_bars)

    # -- phrase structure -----------------------------------------------------------------------
    def fill_for(self, info: BarInfo) -> str | None:
        """The fill ending this bar ('build' for a whole-bar build-up), or None: the style's
        fills (`STYLE_FILLS`), longer as the energy rises (a whole bar into a new 8-bar
        section from `Fills.whole_bar_from` up)."""
        if "build" in info.cues:
            return "build"
        bar, i = info.bar, info.intensity
        fills = STYLE_FILLS.get(info.style, _DEFAULT_FILLS)
        if "fill" in info.cues or (bar % 8 == 7 and i >= 0.2):
            pool = fills.four if fills.four and i >= fills.whole_bar_from else fills.two
            return pool[int(unit(info.seed, "drums", "fill2", bar) * len(pool))]
        if bar % 4 == 3 and i >= 0.3 and unit(info.seed, "drums", "fill?", bar) < 0.2 + 0.6 * i:
            pool = fills.one
            return pool[int(unit(info.seed, "drums", "fill1", bar) * len(pool))]
        return None

    def crash_for(self, info: BarInfo) -> bool:
        return (
            (info.bar % 8 == 0 and info.bar > 0)
            or "crash" in info.cues
            or bool(info.prev_cues & {"fill", "build"})
        )

    # -- rendering ------------------------------------------------------------------------------
    def render(self, info: BarInfo) -> list[Note]:
        style = DRUM_STYLES[info.style]
        seed, bar, i = info.seed, info.bar, info.busy   # how many hits: intensity × density
        n_steps = info.steps
        gain = dict(style.gain)
        hits: dict[tuple[int | Fraction, str], float] = {}  # (step, instrument) -> velocity

        if "ending" in info.cues:
            hits[(0, "kick")] = 1.0
            hits[(0, "open_hat")] = 1.0
            return self._notes(info, style, hits, ring={(0, "open_hat"): Fraction(4)})

        fill = self.fill_for(info)
        fill_unit = STYLE_FILLS.get(info.style, _DEFAULT_FILLS).unit
        fill_from: int | Fraction = n_steps
        if fill == "build":
            fill_from = 0
        elif fill is not None:
            room = int(n_steps / fill_unit)     # a short bar (1/4, 3/16) is shorter than the fill
            fill = fill[-room:] if room else None
            fill_from = n_steps - len(fill) * fill_unit if fill else n_steps

        kick_main = _kick_pattern(style, seed, bar)
        first_kick = True
        for li, (inst, pat, min_i) in enumerate(style.layers):
            if i < min_i:
                continue
            if inst == "kick" and first_kick:
                pat, first_kick = kick_main, False
            pat = fit_meter(feel_pattern(pat, info.feel), info.beat_pulses)
            for s in range(min(math.ceil(fill_from), len(pat))):
                ch = pat[s]
                if ch == ".":
                    continue
                p = _prob(ch, i)
                if p < 1.0 and unit(seed, "drums", bar, inst, li, s) >= p:
                    continue
                v = _VEL[ch] * gain.get(inst, 1.0)
                if v > hits.get((s, inst), 0.0):
                    hits[(s, inst)] = v

        if fill == "build":
            half = n_steps // 2
            for s in range(n_steps):
                if s < half and s % 2:
                    continue
                hits[(s, "snare")] = 0.3 + 0.7 * s / (n_steps - 1)
                if s % 4 == 0:
                    hits[(s, "kick")] = 0.6 + 0.4 * s / n_steps
        elif fill is not None:
            last = max(1, len(fill) - 1)
            for j, ch in enumerate(fill):
                if ch == ".":
                    continue
                v = 0.3 if ch == "s" else 0.62 + 0.38 * j / last
                at = fill_from + j * fill_unit
                hits[(_step(at), _FILL_INST[ch])] = v
                if ch == "R":    # a 32nd pair: the second stroke a little softer
                    hits[(_step(at + fill_unit / 2), "snare")] = 0.9 * v

        ring: dict[tuple[int, str], Fraction] = {}
        if self.crash_for(info):
            hits[(0, "open_hat")] = 1.0
            hits[(0, "kick")] = 1.0
            hits.pop((0, "closed_hat"), None)
            ring[(0, "open_hat")] = Fraction(2)
        # an open hat chokes the closed hat on the same step
        for s, inst in list(hits):
            if inst == "open_hat" and style.choke_hats:
                hits.pop((s, "closed_hat"), None)
        return self._notes(info, style, hits, ring)

    def _notes(
        self,
        info: BarInfo,
        style: DrumStyle,
        hits: dict[tuple[int, str], float],
        ring: dict[tuple[int, str], Fraction],
    ) -> list[Note]:
        seed, bar, i = info.seed, info.bar, info.intensity
        feel = dict(style.feel_ms)
        level = 0.72 + 0.3 * i
        beats = set(accumulate(info.beat_pulses, initial=0))
        out = []
        for (s, inst), v in hits.items():
            note = DRUM_NOTES[inst]
            if s in beats and v > 0.5:
                v *= 1.04  # the pulses (beats) a touch stronger than the offbeats
            key = s if isinstance(s, int) else str(s)   # a fill's triplet or 32nd step
            v = v * level + (unit(seed, "drums-vel", bar, key, note) - 0.5) * 0.1
            vel = round(min(1.0, max(0.05, v)), 3)
            nudge_ms = feel.get(inst, 0.0) + (unit(seed, "drums-nudge", bar, key, note)
                                              - 0.5) * 2 * style.jitter_ms
            nudge = round(max(-12.0, min(12.0, nudge_ms)) / 1000, 4) + 0.0  # no -0.0
            dur = ring.get((s, inst), SIXTEENTH)
            out.append(Note(info.at(s), dur, "drums", note, vel, nudge))
        return out
