"""Tempo and downbeat from the player's timing, when no clock is given (control side).

`BeatTracker` is an online beat tracker over the player's note-ons (sample times, velocities,
pitches), fed in time order:

* **Onsets.** Notes within `chord_window_ms` of a group's first note are one onset at their
  mean time (a chord counts once). Its accent (salience): the velocity against the recent mean,
  the number of notes, how low its lowest note lies against the recent register, a change of
  pitch classes from the last chord (a chord change), and, once its note-off is known, a note
  held long.
* **Tempo induction** (after Dixon 2001: inter-onset intervals between every pair of recent
  onsets, not only neighbours). Each pair votes, weighted by both accents, for the beat periods
  it spans 1, 2, 3 or 4 of (a comb of Gaussians); a log-normal prior half an octave wide around
  `prior_bpm` settles the metrical level (eighths at 96 BPM are heard at 96, not 192). The
  phase is the one whose beats carry the most accent.
* **Tracking.** Every onset within `tolerance_beats` of the estimate's eighth-note grid is an
  observation (its grid position, its sample) for a Kalman filter whose state is the time of
  the latest grid position, the period and the period's change a beat. It runs as an IMM
  (interacting multiple models, one per `drift_jerks`: how fast the period's change may
  itself change): a steady model averages the jitter away, quicker ones follow a drift, each
  weighted by how well it predicted the recent onsets, so a drift is followed without letting
  the jitter through (`jitter_ms`: how far a single onset strays; a chord's mean weighs as its
  notes). Syncopations lie on the eighth grid and count; off-grid notes (swung, ornaments) miss
  and move nothing; a missing beat leaves no observation and the filter carries on through it.
  Ahead of its latest observation the beat follows the filter's curve for
  `curve_ahead_beats`, then its tangent. What limits it: a drift that starts or stops (a ramp's
  ends) shows only once the onsets have strayed from the old curve by more than their jitter,
  a few beats, and each beat is predicted about 1.4 beats ahead.
* **The metrical level** (the tempo octave: a player at 170 first heard at 85, or at 60 heard
  at 120, when the configured tempo, the induction's prior, lies between). Once a bar, the
  accents of the last `level_window_s` are folded over two bars: consecutive bars should look
  alike and a half bar should not look like a bar. A half bar that sounds like a bar (and
  `level_fill` of the eighths between played) says the beat is twice too slow; every other bar
  without its accent, twice too fast; no bar accent (`level_accent` over the other beats)
  says nothing. Two bars in a row saying the same move the beat an octave: the onsets are
  renumbered, the filter starts again at the new period (`level_changes`, a new
  `generation`).
* **Re-induction, with hysteresis.** When most of the last onsets miss the grid (the player
  jumped to a new tempo, or came back in after a pause off the old beat), the tempo is induced
  again from the recent onsets; the new estimate replaces the old one only if it explains
  `switch_margin` more of those onsets. `generation` counts the times the beat numbering
  changed (this and a new downbeat), so a follower knows to realign.
* **Downbeat** (the bar's phase): every on-beat onset's accent goes to its beat's place in the
  bar (`beats_per_bar` bins, forgetting with half-life `downbeat_half_life_beats`), with a
  note held over a beat adding its length (`long_accent`); the first onset heard is taken as a
  downbeat to start with (worth `first_downbeat_prior` accents), and the bar's phase moves
  only when another place outscores it by `downbeat_margin` (and all the others by half that).
  For music without accents (a chorale: even chords on every beat) the harmonic rhythm
  decides: the bass seldom sounds again across a bar line and notes of two beats mostly start
  on the one (rates measured on Bach's chorales), so each beat's bass (the same as the last
  beat's or not) and each long note add their log-likelihood to each hypothesis of the bar's
  first beat; the first note heard starts ahead (a pickup of a beat next). The bar moves when
  another hypothesis leads by `harmonic_margin` nats, unless the accents have settled it
  (`accent_settled`).
* **Confidence**: the share of recent onsets on the grid, less the filter's mean innovation;
  `locked` from `lock_confidence` up. A player who stops: after `hold_beats` beats with no
  onset the tracker is `holding`: the estimate stays as it was (a follower keeps the last
  tempo), and the next onsets either fit it (the player came back in time) or, missing, bring
  a re-induction.

The tracker is a pure function of the notes and the times `advance` is called with: fed the
same notes, live or offline, it gives the same estimate (engine.control.sync.PlayerFollower
feeds it at fixed points of the band's tempo map for that reason).
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

__all__ = ["BeatTracker", "Onset"]


@dataclass(slots=True)
class Onset:
    """One onset: a note, or the notes of a chord played together."""
    sample: float                 # mean time of its notes (samples)
    first: float                  # its first note's time (the chord window starts there)
    velocity: float               # the loudest note, 0..1
    low: int                      # its lowest pitch
    notes: int = 1
    pcs: set = field(default_factory=set)
    accent: float = 1.0
    beat: float | None = None     # grid position (the tracker's numbering), or None: off-grid
    times: list = field(default_factory=list)
    long: bool = False            # counted as a long note (on its place in the bar)


class BeatTracker:
    """Tempo, beat phase and downbeat from note-on times (the module docstring says how).

    Feed `note_on(sample, pitch, velocity)` and `note_off(sample, pitch)` in time order and
    `advance(sample)` as time passes; read `locked`, `bpm`, `beat_at(sample)` (the player's
    beat at a sample: whole numbers are beats, multiples of `beats_per_bar` downbeats),
    `tempo_at(sample)`, `confidence`, `downbeat_confidence`, `holding`."""

    def __init__(self, sample_rate: int, *, prior_bpm: float = 120.0, beats_per_bar: int = 4,
                 min_bpm: float = 40.0, max_bpm: float = 240.0, chord_window_ms: float = 40.0,
                 tolerance_beats: float = 0.12, window_s: float = 6.0, min_onsets: int = 5,
                 hold_beats: float = 4.0,
                 lock_confidence: float = 0.5, switch_margin: float = 0.25,
                 downbeat_half_life_beats: float = 24.0, first_downbeat_prior: float = 1.5,
                 downbeat_margin: float = 0.3, jitter_ms: float = 10.0,
                 drift_jerks: tuple = (3.0, 100.0, 3000.0), switch_prob: float = 0.05,
                 curve_ahead_beats: float = 1.0, level_window_s: float = 16.0,
                 level_accent: float = 2.5, long_accent: float = 0.5,
                 harmonic_margin: float = 1.5, accent_settled: float = 0.3,
                 level_alike: float = 0.7, level_fill: float = 0.6):
        self.sr = float(sample_rate)
        self.prior_bpm = float(prior_bpm)
        self.beats_per_bar = max(int(beats_per_bar), 1)
        self.min_bpm, self.max_bpm = float(min_bpm), float(max_bpm)
        self.chord_window = chord_window_ms * 1e-3 * self.sr
        self.tolerance = float(tolerance_beats)
        self.window = window_s * self.sr
        self.min_onsets = int(min_onsets)
        self.hold_beats = float(hold_beats)
        self.lock_confidence = float(lock_confidence)
        self.switch_margin = float(switch_margin)
        self.db_half_life = float(downbeat_half_life_beats)
        self.first_prior = float(first_downbeat_prior)
        self.db_margin = float(downbeat_margin)
        self.curve_ahead = float(curve_ahead_beats)
        lo, hi = 60.0 * self.sr / self.max_bpm, 60.0 * self.sr / self.min_bpm
        self._periods = np.exp(np.linspace(math.log(lo), math.log(hi), 240))  # samples
        self.onsets: deque[Onset] = deque(maxlen=96)
        self._heard: deque[Onset] = deque(maxlen=128)   # the last `level_window_s`: the level
        self.level_window = level_window_s * self.sr
        self.level_accent, self.level_alike = float(level_accent), float(level_alike)
        self.level_fill = float(level_fill)
        self.long_accent = float(long_accent)
        self.harmonic_margin = float(harmonic_margin)
        self.accent_settled = float(accent_settled)
        self._level_u = 0.0                      # the beat the level was last checked at
        self._level_votes = 0
        self._group: Onset | None = None
        self._open: dict[int, Onset] = {}        # pitch -> the onset its note-on belongs to
        self._vel = 0.6                          # running means: velocity, lowest pitch
        self._low = 60.0
        self._last_pcs: frozenset = frozenset()
        self._x = np.zeros(3)                    # the filter: time, period, its change
        self._P = np.eye(3)
        self._R = (jitter_ms * 1e-3 * self.sr) ** 2
        self.jerks = tuple(float(j) for j in drift_jerks)
        self.drift0 = 0.002
        k = len(self.jerks)                      # the models' switching: rare, either way
        if k < 1:
            raise ValueError("drift_jerks: at least one model")
        self._switch = np.eye(k) if k == 1 else \
            np.full((k, k), switch_prob / (k - 1)) + np.eye(k) * (1.0 - switch_prob
                                                                 - switch_prob / (k - 1))
        self._jerks = np.array(self.jerks)
        self._xs = np.tile(self._x, (k, 1))
        self._Ps = np.tile(self._P, (k, 1, 1))
        self._mu = np.full(k, 1.0 / k)
        self._hits: deque[bool] = deque(maxlen=8)
        self.fit: tuple[float, float, float, float] | None = None  # (u_ref, t_ref, p, c)
        self.downbeat = 0                        # tracker beats u with u % bpb == this: the one
        self._bins = np.zeros(self.beats_per_bar)
        self._bins_u = 0.0                       # the beat the bins were last decayed to
        # harmonic rhythm (a chorale's bar): the log-likelihood of each place being the one,
        # from where the bass sounds again (rarely across a bar line: 5 % of Bach's chorales'
        # downbeats, 15 % of third beats, 22-23 % of the others) and where notes of two beats
        # start (28 % of the ones, 16 % of third beats, 2 % and none of the others); a place
        # other than the first note heard starts behind (a pickup of a beat least)
        bpb = self.beats_per_bar
        if bpb == 4:
            self._repeat_rates = (0.052, 0.234, 0.147, 0.217)
            self._long_rates = (0.28, 0.017, 0.163, 0.005)
        else:
            self._repeat_rates = (0.052,) + (0.2,) * (bpb - 1)
            self._long_rates = (0.28,) + (0.03,) * (bpb - 1)
        self._hr_prior = tuple(0.0 if i == 0 else -1.0 if i == 1 else -2.0
                               for i in range(bpb))
        self._hr = np.array(self._hr_prior)
        self._bass: tuple[float, int] | None = None   # the last on-beat onset's beat, its bass
        self.generation = 0
        self.now = -math.inf                     # the latest time advanced to (samples)
        self.last_onset: float | None = None
        self.rms = 0.0                           # the filter's mean |innovation|, in beats
        self.counters = {"notes": 0, "onsets": 0, "chords": 0, "hits": 0, "misses": 0,
                         "inductions": 0, "switches": 0, "downbeat_changes": 0, "late": 0,
                         "bad": 0, "level_changes": 0}

    # ---- input --------------------------------------------------------------------------------
    def note_on(self, sample: float, pitch: int, velocity: float) -> None:
        """A note-on at `sample` (in time order; an earlier one is counted late and ignored)."""
        if not (isinstance(pitch, int) and 0 <= pitch <= 127 and 0.0 <= velocity <= 1.0
                and math.isfinite(sample)):
            self.counters["bad"] += 1
            return
        if sample < self.now - self.chord_window:
            self.counters["late"] += 1
            return
        self.counters["notes"] += 1
        g = self._group
        if g is not None and sample - g.first <= self.chord_window:
            g.times.append(float(sample))
            g.notes += 1
            g.velocity = max(g.velocity, velocity)
            g.low = min(g.low, pitch)
            g.pcs.add(pitch % 12)
        else:
            self._close_group()
            g = self._group = Onset(float(sample), float(sample), velocity, pitch,
                                    pcs={pitch % 12}, times=[float(sample)])
        self._open[pitch] = g
        self.now = max(self.now, float(sample))

    def note_off(self, sample: float, pitch: int) -> None:
        """A note-off: a note held long adds to its onset's accent (on its beat's bin)."""
        onset = self._open.pop(pitch, None) if isinstance(pitch, int) else None
        if onset is None or onset is self._group or self.fit is None or onset.beat is None:
            return
        dur = (sample - onset.sample) / self.fit[2]
        if dur > 1.0 and onset.beat == int(onset.beat):
            # a durational accent: long notes start on strong beats (in Bach's chorales a
            # note of two beats or more starts on the one in 28 % of bars, on the third beat
            # in 16 %, on the others almost never), the note's share of its chord's
            self._add_downbeat(onset.beat, self.long_accent * (min(dur, 3.0) - 1.0)
                               / onset.notes, decay=False)
        if dur >= 1.9 and onset.beat == int(onset.beat) and not onset.long:
            onset.long = True                    # a note of two beats: mostly on the one
            self._harmonic(int(onset.beat) % self.beats_per_bar, self._long_rates)

    def advance(self, sample: float) -> None:
        """Time has come to `sample`: a chord whose window has passed is complete."""
        if self._group is not None and sample > self._group.first + self.chord_window:
            self._close_group()
        self.now = max(self.now, float(sample))

    # ---- what it knows ------------------------------------------------------------------------
    @property
    def period(self) -> float | None:
        """Samples per beat now (the fit's slope at its latest point), or None."""
        return None if self.fit is None else self.fit[2]

    @property
    def bpm(self) -> float | None:
        p = self.period
        return None if p is None else 60.0 * self.sr / p

    @property
    def holding(self) -> bool:
        """No onset for `hold_beats` beats: the player has stopped (the estimate is kept)."""
        if self.fit is None or self.last_onset is None:
            return False
        return self.now - self.last_onset > self.hold_beats * self.fit[2]

    @property
    def confidence(self) -> float:
        """0..1: the share of the recent onsets on the grid, less the fit's spread."""
        if self.fit is None or not self._hits:
            return 0.0
        share = sum(self._hits) / len(self._hits)
        return max(0.0, share * (1.0 - self.rms / self.tolerance))

    @property
    def locked(self) -> bool:
        return self.fit is not None and self.confidence >= self.lock_confidence

    @property
    def downbeat_confidence(self) -> float:
        """0..1: how far the bar's first beat outscores the next best place in the bar."""
        b = self._bins
        if self.beats_per_bar < 2 or b[self.downbeat] <= 0:
            return 0.0
        other = max(v for i, v in enumerate(b) if i != self.downbeat)
        return float(max(0.0, (b[self.downbeat] - other) / b[self.downbeat]))

    def _u_at(self, sample: float) -> float:
        """The tracker's beat (its own numbering) at `sample`: the fitted curve near its
        points, its tangent a beat past the last one."""
        u0, t0, p, c = self.fit
        d = sample - t0
        if c != 0.0:
            # t = t0 + p x + c x^2 up to x = h; beyond it, the tangent there
            h = self.curve_ahead
            t1, p1 = t0 + p * h + c * h * h, p + 2.0 * c * h
            if d > t1 - t0:
                return u0 + h + (sample - t1) / p1
            disc = p * p + 4.0 * c * d
            if disc > 0.0:
                return u0 + 2.0 * d / (p + math.sqrt(disc))
        return u0 + d / p

    def beat_at(self, sample: float) -> float:
        """The player's beat at `sample`: multiples of beats_per_bar are their downbeats."""
        return self._u_at(sample) - self.downbeat

    def tempo_at(self, sample: float) -> float:
        """The tempo (BPM) the fit expects at `sample` (its slope there)."""
        u0, t0, p, c = self.fit
        x = min(max(self._u_at(sample) - u0, -4.0), self.curve_ahead)
        slope = p + 2.0 * c * x
        return 60.0 * self.sr / (slope if slope > 0 else p)

    # ---- onsets -------------------------------------------------------------------------------
    def _close_group(self) -> None:
        g, self._group = self._group, None
        if g is None:
            return
        g.sample = sum(g.times) / len(g.times)
        self.counters["onsets"] += 1
        if g.notes > 1:
            self.counters["chords"] += 1
        # accent: louder than usual, more notes, lower than usual, a new chord
        change = g.notes > 1 and frozenset(g.pcs) != self._last_pcs
        g.accent = max(0.2, 1.0 + 2.0 * (g.velocity - self._vel)
                       + 0.4 * min(g.notes - 1, 3)
                       + min(max(0.06 * (self._low - g.low), -0.5), 0.8)
                       + (0.4 if change else 0.0))
        if g.notes > 1:
            self._last_pcs = frozenset(g.pcs)
        self._vel += 0.1 * (g.velocity - self._vel)
        self._low += 0.1 * (g.low - self._low)
        if self.last_onset is not None and self.fit is not None and \
                g.sample - self.last_onset > self.hold_beats * self.fit[2]:
            self._hits.clear()                   # back after a pause: judge it afresh
        self.last_onset = g.sample
        self.onsets.append(g)
        while self.onsets and self.onsets[0].sample < g.sample - self.window:
            self.onsets.popleft()
        self._heard.append(g)
        while self._heard and self._heard[0].sample < g.sample - self.level_window:
            self._heard.popleft()
        if self.fit is None:
            if len(self.onsets) >= self.min_onsets:
                self._induce()
            return
        self._track(g)

    def _track(self, g: Onset) -> None:
        u = self._u_at(g.sample)
        n = round(2.0 * u) / 2.0
        tol = self.tolerance if n == int(n) else 0.75 * self.tolerance
        if abs(u - n) <= tol:
            g.beat = n
            self._hits.append(True)
            self.counters["hits"] += 1
            # a chord's mean time is steadier than one note's: its weight grows with its notes
            self._observe(n, g.sample, (1.0 if n == int(n) else 0.6) * min(g.notes, 4))
            if n == int(n):
                self._add_downbeat(n, g.accent)
                # the bass sounding now (the lowest note held, stale ones aside) against the
                # last beat's: the same bass again is a weak beat's sign
                fresh = g.sample - 4.0 * self.fit[2]
                bass = min((p for p, o in self._open.items() if o.sample >= fresh),
                           default=g.low)
                if self._bass is not None and self._bass[0] == n - 1:
                    same = bass == self._bass[1]
                    rates = self._repeat_rates if same else [1.0 - r for r in
                                                             self._repeat_rates]
                    self._harmonic(int(n) % self.beats_per_bar, rates)
                self._bass = (n, bass)
                self._check_level(n)
        else:
            self._hits.append(False)
            self.counters["misses"] += 1
        misses = len(self._hits) - sum(self._hits)
        if len(self._hits) >= 4 and misses >= max(3, (len(self._hits) + 1) // 2 + 1):
            self._induce()

    # ---- induction ----------------------------------------------------------------------------
    def _hypothesis(self, onsets: list[Onset]) -> tuple[float, float] | None:
        """(period, phase sample) that best explains `onsets` (IOI comb × tempo prior, then the
        phase with the most accent on its beats), or None."""
        if len(onsets) < 3:
            return None
        t = np.array([o.sample for o in onsets])
        w = np.array([o.accent for o in onsets])
        i, j = np.triu_indices(len(t), 1)
        d = t[j] - t[i]
        keep = d <= 4.0 * self._periods[-1]
        d, ww = d[keep], (w[i] * w[j])[keep]
        if not len(d):
            return None
        P = self._periods[:, None]
        score = np.zeros(len(self._periods))
        for m in (1, 2, 3, 4):              # the comb's teeth, weaker further out
            sigma = 0.02 * self.sr + 0.03 * m * P
            score += (ww * np.exp(-0.5 * ((d - m * P) / sigma) ** 2)).sum(axis=1) / m
        bpm = 60.0 * self.sr / self._periods
        score *= np.exp(-0.5 * (np.log2(bpm / self.prior_bpm) / 0.5) ** 2)
        k = int(np.argmax(score))
        if score[k] <= 0.0:
            return None
        period = float(self._periods[k])
        if 0 < k < len(score) - 1:                # parabolic refinement on the log grid
            a, b, c = score[k - 1:k + 2]
            den = a - 2.0 * b + c
            if den < 0:
                step = math.log(self._periods[1] / self._periods[0])
                period *= math.exp(0.5 * (a - c) / den * step)
        x = (t / period) % 1.0
        phases = np.linspace(0.0, 1.0, 64, endpoint=False)
        dev = (x[None, :] - phases[:, None] + 0.5) % 1.0 - 0.5
        ps = (w * np.exp(-0.5 * (dev / 0.07) ** 2)).sum(axis=1)
        phase = float(phases[int(np.argmax(ps))]) * period
        # the phase's centre of mass among the onsets near it
        near = np.abs((x - phase / period + 0.5) % 1.0 - 0.5) < 0.1
        if near.any():
            dv = ((x[near] - phase / period + 0.5) % 1.0 - 0.5) * w[near]
            phase += float(dv.sum() / w[near].sum()) * period
        return period, phase

    @staticmethod
    def _assign(onsets: list[Onset], period: float, phase: float, tol: float) -> list:
        """(onset, grid position) for the onsets on the eighth grid of (period, phase)."""
        out = []
        for o in onsets:
            u = (o.sample - phase) / period
            n = round(2.0 * u) / 2.0
            if abs(u - n) <= (tol if n == int(n) else 0.75 * tol):
                out.append((o, n))
        return out

    def _induce(self) -> None:
        """Find the tempo afresh from the recent onsets; take it if nothing is known yet, or if
        it explains `switch_margin` more of them than the current estimate (hysteresis)."""
        recent = list(self.onsets)
        hyp = self._hypothesis(recent)
        if hyp is None:
            return
        period, phase = hyp
        assigned = self._assign(recent, period, phase, self.tolerance)
        beats = {n for _, n in assigned if n == int(n)}
        if len(assigned) < max(4, 0.6 * len(recent)) or len(beats) < 3:
            return
        if self.fit is not None:
            old = sum(1 for o in recent if abs(self._u_at(o.sample)
                                               - round(2 * self._u_at(o.sample)) / 2)
                      <= self.tolerance)
            if len(assigned) - old < self.switch_margin * len(recent):
                self._hits.clear()               # not better: keep it, judge afresh
                return
            self.counters["switches"] += 1
        self.counters["inductions"] += 1
        first = min((n for _, n in assigned if n == int(n)))
        for o in self._heard:
            o.beat = None
        self._adopt([(o, n - first) for o, n in assigned])   # the first beat heard is beat 0

    def _adopt(self, assigned: list) -> None:
        """A new beat numbering: (onset, its grid position) for the onsets on it. The filter
        starts afresh from those in the window; the bar's first beat is beat 0 to begin with
        (worth `first_downbeat_prior`), then the accents."""
        for o, n in assigned:
            o.beat = n
        recent = [(o, n) for o, n in assigned if o.sample >= self.onsets[0].sample]
        self._start_filter([(n, o.sample, (1.0 if n == int(n) else 0.6) * min(o.notes, 4))
                            for o, n in recent])
        self._hits = deque((True,) * min(len(recent), 8), maxlen=self._hits.maxlen)
        self._bins[:] = 0.0
        self._bins_u = 0.0
        self._hr = np.array(self._hr_prior)
        self._bass = None
        self.downbeat = 0
        self._bins[0] = self.first_prior
        for o, n in recent:
            if n == int(n):
                self._add_downbeat(n, o.accent, pick=False)
        self._pick_downbeat()
        self._level_u = max(n for _, n in assigned)
        self._level_votes = 0
        self.generation += 1

    # ---- the metrical level -------------------------------------------------------------------
    def _level_vote(self) -> int:
        """Is the beat at the right metrical level? The accents of the last bars, folded over
        two bars (2 x beats_per_bar places, each its mean accent a beat): consecutive bars
        should look alike and a half bar should not look like a bar. -1: the half bars are
        bars (the beat is twice too slow: a player at 170 heard at 85), +1: every other bar
        starts like a bar and the others not (twice too fast: 60 heard at 120), 0: nothing
        to say (no bar accent, as in running eighths all alike, or too little heard)."""
        bpb = self.beats_per_bar
        m = 2 * bpb
        pts = [(int(o.beat), o.accent) for o in self._heard
               if o.beat is not None and o.beat == int(o.beat)]
        if len(pts) < 2 * bpb:
            return 0
        lo, hi = min(u for u, _ in pts), max(u for u, _ in pts)
        if hi - lo < m - 1:                          # two bars at least
            return 0
        slots = np.zeros(m)
        for u in range(lo, hi + 1):
            slots[u % m] += 1
        acc = np.zeros(m)
        for u, a in pts:
            acc[u % m] += a
        B = acc / np.maximum(slots, 1)
        d = int(np.argmax(B[:bpb] + B[bpb:]))
        one, next_one = max(B[d], B[d + bpb]), min(B[d], B[d + bpb])
        bars = {d, d + bpb}
        rest = [B[i] for i in range(m) if i not in bars]
        if next_one <= self.level_alike * one and 2 * self.period <= self._periods[-1] \
                and one >= self.level_accent * float(np.mean(rest)):
            return +1
        if bpb % 2 == 0 and 0.5 * self.period >= self._periods[0]:
            half = {(d + bpb // 2) % m, (d + 3 * bpb // 2) % m}
            h = float(np.mean([B[i] for i in half]))
            others = [B[i] for i in range(m) if i not in bars | half]
            eighths = {o.beat for o in self._heard if o.beat is not None and lo <= o.beat <= hi}
            fill = len(eighths) / (2 * (hi - lo) + 1)
            if next_one > self.level_alike * one and h > self.level_alike * 0.5 * (one + next_one) \
                    and min(h, next_one) >= self.level_accent * float(np.mean(others)) \
                    and fill >= self.level_fill:
                return -1
        return 0

    def _check_level(self, n: float) -> None:
        """Once a bar: the level's vote; two bars in a row voting the same move the beat an
        octave (the onsets renumbered, the filter started again at the new period)."""
        if n < self._level_u + self.beats_per_bar:
            return
        self._level_u = n
        vote = self._level_vote()
        self._level_votes = self._level_votes + vote if vote and \
            (self._level_votes == 0 or (vote > 0) == (self._level_votes > 0)) else vote
        if abs(self._level_votes) < 2:
            return
        bpb, m = self.beats_per_bar, 2 * self.beats_per_bar
        pts = [(int(o.beat), o.accent) for o in self._heard
               if o.beat is not None and o.beat == int(o.beat)]
        acc = np.zeros(m)
        for u, a in pts:
            acc[u % m] += a
        d = int(np.argmax(acc[:bpb] + acc[bpb:]))
        if vote > 0:                                 # twice the period, on the stronger bar
            d = d if acc[d] >= acc[d + bpb] else d + bpb
            renumber = lambda b: (b - d) / 2.0      # noqa: E731
        else:
            renumber = lambda b: 2.0 * (b - d)      # noqa: E731
        assigned = [(o, renumber(o.beat)) for o in self._heard if o.beat is not None]
        assigned = [(o, nb) for o, nb in assigned if nb == round(2.0 * nb) / 2.0]
        start = self.onsets[0].sample
        if len({nb for o, nb in assigned if nb == int(nb) and o.sample >= start}) < 3:
            self._level_votes = 0                    # too little on the new grid: keep it
            return
        for o in self._heard:
            o.beat = None
        self.counters["level_changes"] += 1
        self._adopt(assigned)

    # ---- the filter ---------------------------------------------------------------------------
    def _start_filter(self, pts: list[tuple[float, float, float]]) -> None:
        """A straight line through the induction's points (weighted least squares) starts the
        Kalman filter: the latest point's time, the period, no drift yet."""
        u = np.array([q[0] for q in pts])
        t = np.array([q[1] for q in pts])
        w = np.array([q[2] for q in pts])
        ub, tb = (w * u).sum() / w.sum(), (w * t).sum() / w.sum()
        sxx = (w * (u - ub) ** 2).sum()
        p = (w * (u - ub) * (t - tb)).sum() / sxx
        u_ref = float(u[-1])
        var_p = self._R / sxx
        x = np.array([tb + p * (u_ref - ub), p, 0.0])
        P = np.diag([self._R / w.sum() + (u_ref - ub) ** 2 * var_p, var_p,
                     (self.drift0 * p) ** 2])
        self._xs = np.tile(x, (len(self.jerks), 1))
        self._Ps = np.tile(P, (len(self.jerks), 1, 1))
        self._mu = np.full(len(self.jerks), 1.0 / len(self.jerks))
        self._x, self._P = x, P
        self.rms = 0.0
        self.fit = (u_ref, float(self._x[0]), float(p), 0.0)

    def _observe(self, u: float, t: float, w: float) -> None:
        """One onset at grid position `u` (beats), time `t`: each model's state (the time of
        its latest beat position, the period, the period's change a beat) moves on to `u` (a
        constant change of period, its uncertainty growing with the model's jerk) and takes
        the onset in (its variance the jitter's over `w`); the models are mixed as an IMM
        (interacting multiple models: a steady one that averages jitter away, quicker ones that
        follow a drift, their weights from how well each predicted the recent onsets)."""
        d = u - self.fit[0]
        xs, Ps = self._xs, self._Ps                       # (models, 3), (models, 3, 3)
        # mixing: each model starts from the others' states as far as it may switch to them
        c = self._mu @ self._switch                       # prior weight of each model
        mix = self._switch * self._mu[:, None] / np.maximum(c[None, :], 1e-300)
        x0 = mix.T @ xs
        dx = xs[None, :, :] - x0[:, None, :]              # [j, i]: model i from j's mix
        P0 = np.einsum("ij,ikl->jkl", mix, Ps) + np.einsum("ij,jik,jil->jkl", mix, dx, dx)
        F = np.array([[1.0, d, 0.5 * d * d], [0.0, 1.0, d], [0.0, 0.0, 1.0]])
        if d > 0.0:
            d2, d3 = d * d, d * d * d
            Q0 = np.array([[d3 * d2 / 20.0, d2 * d2 / 8.0, d3 / 6.0],
                           [d2 * d2 / 8.0, d3 / 3.0, d2 / 2.0],
                           [d3 / 6.0, d2 / 2.0, d]])
            x0 = x0 @ F.T
            P0 = np.einsum("ab,jbc,dc->jad", F, P0, F) + self._jerks[:, None, None] * Q0
        innov = t - x0[:, 0]
        S = P0[:, 0, 0] + self._R / w
        K = P0[:, :, 0] / S[:, None]
        xs = x0 + K * innov[:, None]
        Ps = P0 - K[:, :, None] * P0[:, None, 0, :]
        like = np.exp(-0.5 * np.minimum(innov * innov / S, 50.0)) / np.sqrt(S)
        mu = c * like
        mu = mu / mu.sum() if mu.sum() > 0.0 else np.full(len(mu), 1.0 / len(mu))
        x = mu @ xs
        p0 = self.fit[2]
        if not 0.5 * p0 < x[1] < 2.0 * p0:       # nonsense: keep what was known
            return
        xs[:, 2] = np.clip(xs[:, 2], -0.05 * xs[:, 1], 0.05 * xs[:, 1])
        x[2] = min(max(x[2], -0.05 * x[1]), 0.05 * x[1])
        predicted = float((c / c.sum()) @ (self._xs @ F.T)[:, 0]) if d > 0.0 else self._x[0]
        self._xs, self._Ps, self._mu = xs, Ps, mu
        self._x = x
        self.rms += 0.2 * (abs(t - predicted) / x[1] - self.rms)
        self.fit = (float(u), float(x[0]), float(x[1]), float(0.5 * x[2]))

    # ---- the bar ------------------------------------------------------------------------------
    def _add_downbeat(self, beat: float, accent: float, decay: bool = True,
                      pick: bool = True) -> None:
        if decay and beat > self._bins_u:
            self._bins *= 0.5 ** ((beat - self._bins_u) / self.db_half_life)
            self._bins_u = beat
        self._bins[int(beat) % self.beats_per_bar] += accent
        if pick:
            self._pick_downbeat()

    def _harmonic(self, place: int, rates) -> None:
        """One harmonic-rhythm observation at `place` in the bar, whose chance at each place
        counted from the one is `rates`: each hypothesis of the bar's first beat gains its
        log-likelihood; the bar moves when another hypothesis leads the current one by
        `harmonic_margin` (nats), if the accents have not settled it (their confidence under
        `accent_settled`): hysteresis both ways."""
        bpb = self.beats_per_bar
        for d in range(bpb):
            self._hr[d] += math.log(rates[(place - d) % bpb])
        best = int(np.argmax(self._hr))
        if best != self.downbeat and self._hr[best] - self._hr[self.downbeat] \
                >= self.harmonic_margin and self.downbeat_confidence < self.accent_settled:
            self.downbeat = best
            self.counters["downbeat_changes"] += 1
            self.generation += 1

    def _pick_downbeat(self) -> None:
        """Move the bar's phase to the place that outscores the current one by the margin and
        every other place by half of it (so near-even bins, as in a chorale's steady chords,
        never flip the bars back and forth)."""
        b = self._bins
        best = int(np.argmax(b))
        others = max((v for i, v in enumerate(b) if i != best), default=0.0)
        if best != self.downbeat and b[best] > (1.0 + self.db_margin) * b[self.downbeat] \
                and b[best] > (1.0 + 0.5 * self.db_margin) * others:
            self.downbeat = best
            self.counters["downbeat_changes"] += 1
            self.generation += 1
