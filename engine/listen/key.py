"""Key finding (control side): key profiles correlated with a duration-weighted pitch-class
histogram (Krumhansl–Schmuckler's method), over a whole piece or, live, over a sliding window
with hysteresis.

Profiles (`PROFILES`): 'krumhansl' (Krumhansl & Kessler 1982, probe-tone ratings), 'temperley'
(Temperley 2007, from the Kostka–Payne corpus) and 'albrecht' (Albrecht & Shanahan 2013, from a
corpus of art music). The default is the one measured best on the Bach chorales
(tests/test_key.py, bench/agents.py --json).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from engine.harmony import NOTE_NAMES

__all__ = ["Key", "PROFILES", "DEFAULT_PROFILE", "key_scores", "find_key", "KeyTracker"]

PROFILES: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "krumhansl": ((6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88),
                  (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)),
    "temperley": ((0.748, 0.060, 0.488, 0.082, 0.670, 0.460, 0.096, 0.715, 0.104, 0.366, 0.057,
                   0.400),
                  (0.712, 0.084, 0.474, 0.618, 0.049, 0.460, 0.105, 0.747, 0.404, 0.067, 0.133,
                   0.330)),
    "albrecht": ((0.238, 0.006, 0.111, 0.006, 0.137, 0.094, 0.016, 0.214, 0.009, 0.080, 0.008,
                  0.081),
                 (0.220, 0.006, 0.104, 0.123, 0.019, 0.103, 0.012, 0.214, 0.062, 0.022, 0.061,
                  0.052)),
}
DEFAULT_PROFILE = "albrecht"

_MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
# minor: the natural minor with the raised sixth and seventh (melodic/harmonic minor) beside it
_MINOR_SCALE = (0, 2, 3, 5, 7, 8, 9, 10, 11)


@dataclass(frozen=True, slots=True)
class Key:
    """A key: ``tonic`` pitch class and ``mode`` ('major' or 'minor')."""

    tonic: int
    mode: str = "major"

    def __post_init__(self) -> None:
        if not (isinstance(self.tonic, int) and 0 <= self.tonic <= 11):
            raise ValueError(f"Key.tonic must be a pitch class 0..11, got {self.tonic!r}")
        if self.mode not in ("major", "minor"):
            raise ValueError(f"Key.mode must be 'major' or 'minor', got {self.mode!r}")

    @property
    def name(self) -> str:
        """'A major', 'F# minor'."""
        return f"{NOTE_NAMES[self.tonic]} {self.mode}"

    def __str__(self) -> str:
        return self.name

    @property
    def scale(self) -> frozenset[int]:
        """The key's pitch classes: the major scale, or the minor with its raised 6th and 7th."""
        ivs = _MAJOR_SCALE if self.mode == "major" else _MINOR_SCALE
        return frozenset((self.tonic + i) % 12 for i in ivs)

    @classmethod
    def parse(cls, text: str) -> Key:
        """'A major', 'F#m', 'Bb minor', 'C' (mido's key_signature names too)."""
        t = text.strip()
        mode = "major"
        for suffix, m in ((" major", "major"), (" minor", "minor"), ("m", "minor")):
            if t.endswith(suffix):
                t, mode = t[: -len(suffix)].strip(), m
                break
        names = {n: i for i, n in enumerate(NOTE_NAMES)}
        names.update({"Db": 1, "D#": 3, "Gb": 6, "G#": 8, "A#": 10, "Cb": 11, "B#": 0, "Fb": 4,
                      "E#": 5})
        if t not in names:
            raise ValueError(f"cannot parse key {text!r}")
        return cls(names[t], mode)


def _pearson(x: Sequence[float], y: Sequence[float]) -> float:
    mx, my = sum(x) / 12, sum(y) / 12
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    if sxx <= 0 or syy <= 0:
        return 0.0
    return sxy / math.sqrt(sxx * syy)


def key_scores(histogram: Sequence[float], profile: str = DEFAULT_PROFILE) -> dict[Key, float]:
    """The correlation of the pitch-class ``histogram`` (12 weights, C first) with every one of
    the 24 keys' profiles."""
    if len(histogram) != 12:
        raise ValueError("a pitch-class histogram has 12 bins")
    if profile not in PROFILES:
        raise ValueError(f"unknown key profile {profile!r}; one of {list(PROFILES)}")
    out = {}
    for mode, prof in zip(("major", "minor"), PROFILES[profile]):
        for tonic in range(12):
            rotated = [prof[(pc - tonic) % 12] for pc in range(12)]
            out[Key(tonic, mode)] = _pearson(histogram, rotated)
    return out


def histogram(notes: Iterable[tuple[int, float]]) -> list[float]:
    """A pitch-class histogram from (MIDI note, weight) pairs (weight: e.g. duration)."""
    h = [0.0] * 12
    for note, weight in notes:
        h[int(note) % 12] += float(weight)
    return h


def find_key(notes: Iterable[tuple[int, float]], profile: str = DEFAULT_PROFILE) -> Key | None:
    """The best key for (MIDI note, duration) pairs; None without notes."""
    h = histogram(notes)
    if sum(h) <= 0:
        return None
    scores = key_scores(h, profile)
    return max(scores, key=lambda k: (scores[k], -k.tonic, k.mode == "major"))


class KeyTracker:
    """The key for live playing: a duration-weighted histogram that decays with a half-life of
    ``half_life_beats``; the key in force changes only when another key has correlated better
    by ``margin`` for ``hold_beats`` beats in a row (hysteresis: a borrowed chord or a passing
    modulation does not flip it)."""

    __slots__ = ("half_life", "margin", "hold", "profile", "_h", "_t", "key", "_rival",
                 "_rival_since")

    def __init__(self, half_life_beats: float = 16.0, margin: float = 0.05,
                 hold_beats: float = 4.0, profile: str = DEFAULT_PROFILE):
        if half_life_beats <= 0 or margin < 0 or hold_beats < 0:
            raise ValueError("half_life_beats > 0, margin >= 0, hold_beats >= 0")
        self.half_life, self.margin, self.hold = half_life_beats, margin, hold_beats
        self.profile = profile
        self._h = [0.0] * 12
        self._t = 0.0
        self.key: Key | None = None
        self._rival: Key | None = None
        self._rival_since = 0.0

    def add(self, note: int, duration_beats: float, at_beat: float) -> Key | None:
        """A note that sounded for ``duration_beats`` from ``at_beat`` (non-decreasing); returns
        the key in force after it."""
        at = float(at_beat)
        if at > self._t:
            f = 0.5 ** ((at - self._t) / self.half_life)
            self._h = [x * f for x in self._h]
            self._t = at
        self._h[int(note) % 12] += max(0.0, float(duration_beats))
        scores = key_scores(self._h, self.profile)
        best = max(scores, key=lambda k: (scores[k], -k.tonic, k.mode == "major"))
        if self.key is None:
            self.key = best
        elif best != self.key and scores[best] >= scores[self.key] + self.margin:
            if best != self._rival:
                self._rival, self._rival_since = best, at
            if at - self._rival_since >= self.hold:
                self.key, self._rival = best, None
        else:
            self._rival = None
        return self.key
