"""Tempo sync (control side): the band follows MIDI clock or an Ableton Link session, and
tap tempo.

The band's clock (engine.control.clock) is an exact tempo map that only changes from a beat not
yet scheduled, so following another clock never moves a note already queued and never jumps:

* **Phase lock** (`PhaseLock`): an external source gives its beat as a line over the sample clock
  (`ext_beat(sample)`, its tempo). Once a beat, at the first beat B the scheduler has not reached
  (where `Session.set_tempo` acts), the lock compares the band's beat with the external one at
  B's sample: e = external beat + offset - B (the offset maps external bars onto the band's bars:
  a whole number of quanta). It then sets the external tempo nudged by at most `max_nudge_pct`
  so that a `phase_gain` share of the error is gone one beat later (bpm × 1 / (1 - gain × e)).
  Changes below `min_change_bpm` are not sent, and at most one a beat unless the external tempo
  stepped by 1 % or more. An error above `realign_beats` (joining a session, Start, a peer that
  moved the beat) is not nudged away over many beats: the band falls silent from the scheduler's
  cursor, the stretch from B up to its next bar line gets the one tempo (0.5..2 times the
  external one) that lands that line on an external bar line, and the band comes back in there,
  on the one.
* **MIDI clock** (`MidiClockFollower`): 24 ticks per beat. Each tick's sample time is numbered
  by rounding its distance from the last one to whole tick periods (a dropped tick counts two),
  a tick far off the fitted line is an outlier (ignored; three in a row re-lock the line), and
  the tempo and phase are a least-squares line over the last `window_ticks` ticks (while the
  tempo changes, shown by a significant curvature of the tick times, the fitted parabola's
  tangent at the last tick and its curve a little ahead). Start (0xFA):
  the next tick is beat 0 of a bar; Song Position Pointer (0xF2) + Continue (0xFB): the next
  tick is that 16th; the band realigns to it as above (silent, it comes back in at the next
  beat when that is within ENTRY_TOLERANCE_S of the external beat: a DAW's loop point, Stop +
  Song Position + Continue, costs no bar). Stop (0xFC): the band stops (its notes already
  queued, at most the look-ahead, play out) and waits for Start or Continue; the tempo keeps
  following the ticks. Start or Continue before any clock silences the band until it locks. Before the first Start the band plays and locks to the clock's
  beats (its bars are unknown until a Start).
* **Ableton Link** (`LinkSync`, aalink on the asyncio loop): the session's tempo drives the band;
  a tempo set on bandmate (`Session.set_tempo`, `/transport/tempo_bpm`, tap) goes to Link; the
  band's bars are aligned on a quantum of `beats_per_bar`; with start/stop sync, the band plays
  while the Link session plays.
* **The player** (`PlayerFollower`, no clock given): the player's note-ons go to a beat tracker
  (engine.listen.tempo.BeatTracker: tempo, phase and downbeat from their timing and accents);
  its beat line drives the same phase lock, its bars the band's bars. The band waits, silent,
  until it has heard the beat, then comes in on the player's next bar line it can reach; a
  player who stops leaves the band at their last tempo (the nudge taken off).
* **Tap tempo** (`TapTempo`, `tap(session)`): the median of the recent intervals, a tap far
  too early ignored, a pause resets.

`latency_ms` places the band's beats that much before the external ones (the output latency of
the sound card, so they are heard together).
"""
from __future__ import annotations

import asyncio
import bisect
import math
import time
from collections import deque
from fractions import Fraction
from statistics import median
from typing import Callable

import numpy as np

from engine.patterns.event import Note

MIN_BPM, MAX_BPM = 20.0, 400.0
TICKS_PER_BEAT = 24
CLOCK, START, CONTINUE, STOP, SONG_POSITION = 0xF8, 0xFA, 0xFB, 0xFC, 0xF2
SYNC_SOURCES = ("internal", "midi_clock", "link", "player")
CURVE_T = 4.0        # a tempo change is read from the tick times' curvature above this t-value
CURVE_AHEAD = 48     # ticks the curvature is extrapolated (beyond: its tangent)
ENTRY_TOLERANCE_S = 0.002   # a silent band comes back in at once only this close to the beat


# ---- the band's gate: silence while stopped or realigning --------------------------------------

class GatedBand:
    """The scheduler's note source wrapped so the sync can silence the band: no note with an
    onset in [silent_from, silent_until) (beats) is played. Installed by `PhaseLock`."""

    def __init__(self, band):
        self.band = band
        self.silent_from: Fraction | None = None
        self.silent_until: Fraction | None = None      # None: until told otherwise

    def query(self, begin: Fraction, end: Fraction, ctx) -> list[Note]:
        notes = self.band.query(begin, end, ctx)
        lo, hi = self.silent_from, self.silent_until
        if lo is None or not notes:
            return notes
        return [n for n in notes if n.begin < lo or (hi is not None and n.begin >= hi)]

    def silence(self, from_beat: Fraction, until_beat: Fraction | None) -> None:
        self.silent_from, self.silent_until = Fraction(from_beat), until_beat

    def __getattr__(self, name):          # the band's own attributes (parts, agent...)
        return getattr(self.band, name)


# ---- phase lock ---------------------------------------------------------------------------------

class PhaseLock:
    """Steers the session's tempo so its beat follows an external beat line (module docstring).

    `steer(ext_beat, ext_bpm, quantum)` runs on the control loop (each scheduler tick):
    `ext_beat(sample)` is the external beat at a sample time (linear: the external tempo),
    `quantum` the beats between the external bar lines the band's bar lines must meet."""

    def __init__(self, session, *, max_nudge_pct: float = 4.0, phase_gain: float = 0.5,
                 min_change_bpm: float = 0.01, realign_beats: float = 0.25,
                 latency_ms: float = 0.0, log: Callable[[str], None] = print):
        self.session = session
        self.max_nudge = max_nudge_pct / 100.0
        self.gain = phase_gain
        self.min_change = min_change_bpm
        self.realign_beats = realign_beats
        self.latency = latency_ms * 1e-3 * session.sample_rate
        self.log = log
        self.gate = GatedBand(session.scheduler.band)
        session.scheduler.band = self.gate
        self.offset: int | None = None        # band beat - external beat (whole quanta)
        self.quantum = 1
        self.until: int | None = None         # a realignment lands on this band beat
        self.entry: int | None = None         # the band beat the last realignment came in on
        self.last_error = 0.0                 # beats, at the last steer (+: band behind)
        self.tempo_changes = 0
        self.realigns = 0
        self._last_beat = -1
        self._last_ext = 0.0
        self.stopped = False                  # after stop(): silent until start()
        self.reaim = False                    # re-aim a realigning stretch each beat (_reaim)
        self._restart = False

    # -- transport ---------------------------------------------------------------------------
    def stop(self) -> None:
        """The band falls silent from the next note not yet scheduled, until `start`."""
        self.gate.silence(self.session.scheduler.cursor, None)
        self.offset = None
        self.until = None
        self.stopped = True
        self._restart = False

    def start(self, quantum: int) -> None:
        """Realign on the external bars (at the next steer) and play from there: from the next
        beat when the band is already within `realign_beats` of them, else from the next bar
        line it can reach."""
        self.offset = None
        self.until = None
        self.quantum = max(int(quantum), 1)
        self._restart = True

    # -- steering ----------------------------------------------------------------------------
    def steer(self, ext_beat: Callable[[float], float], ext_bpm: float,
              quantum: int | None = None,
              tempo_at: Callable[[float], float] | None = None) -> None:
        """One step (see the class docstring); `tempo_at(sample)`: the external tempo expected
        at a sample while it changes (default: `ext_bpm` throughout)."""
        if quantum is not None:
            self.quantum = max(int(quantum), 1)
        session, clock = self.session, self.session.clock
        b = int(session.scheduler.cursor) + 1          # where Session.set_tempo acts
        if self.until is not None:
            if b < self.until:                         # the realigning stretch runs
                if self.reaim:                         # (re-aimed with the latest estimate)
                    self._reaim(b, ext_beat, ext_bpm, tempo_at)
                return
            self.until = None
        s_b = clock.sample_at(Fraction(b))
        x_b = ext_beat(s_b + self.latency)
        if tempo_at is not None:              # the tempo over the beat to come
            ext_bpm = tempo_at(s_b + self.latency + 30.0 * self.session.sample_rate / ext_bpm)
        q = self.quantum
        if self.stopped and not self._restart:
            return
        if self.offset is None:
            self.offset = round((b - x_b) / q) * q
            e = x_b + self.offset - b
            # silent, the band comes back in at the next beat only if that is on time (a DAW's
            # loop: Stop, Song Position, Continue), else through a realignment
            tolerance = ENTRY_TOLERANCE_S * ext_bpm / 60.0 if self.stopped else self.realign_beats
            if abs(e) > tolerance:
                self._realign(b, s_b, ext_beat, ext_bpm)
                return
            if self.stopped:
                self.gate.silence(self.session.scheduler.cursor, Fraction(b))
                self.entry = b
            self.stopped = self._restart = False
        e = x_b + self.offset - b
        self.last_error = e
        if abs(e) > self.realign_beats:
            self._realign(b, s_b, ext_beat, ext_bpm)
            return
        ratio = 1.0 / (1.0 - self.gain * e)
        ratio = min(max(ratio, 1.0 - self.max_nudge), 1.0 + self.max_nudge)
        target = min(max(ext_bpm * ratio, MIN_BPM), MAX_BPM)
        big_change = abs(ext_bpm - self._last_ext) >= 0.01 * ext_bpm   # a step: act at once
        if b == self._last_beat and not big_change:
            return
        if abs(target - clock.bpm) < self.min_change:
            return
        self._set(target)
        self._last_beat, self._last_ext = b, ext_bpm

    def _reaim(self, b: int, ext_beat, ext_bpm: float, tempo_at) -> None:
        """While the band is silent on its way to the bar line `until`: the rest of the
        stretch, from band beat b on, at the tempo that lands `until` on its external beat as
        the external beat line now stands (it was planned from an estimate a bar or more
        older; a tempo that changes meanwhile would otherwise leave the band's first beat
        off). Once a beat, within 0.5..2 times the external tempo. Used by the player
        follower (`reaim`), whose estimate is young when the band comes in; a clock's is not."""
        if b == self._last_beat:
            return
        sr = self.session.sample_rate
        s_b = self.session.clock.sample_at(Fraction(b))
        x_b = ext_beat(s_b + self.latency)
        target = self.until - self.offset              # the external beat `until` lands on
        if target <= x_b:
            return
        spb = 60.0 * sr / ext_bpm
        s = s_b + (target - x_b) * spb                 # where ext_beat reaches target (secant)
        for _ in range(3):
            x = ext_beat(s + self.latency)
            if abs(x - target) < 1e-6:
                break
            s += (target - x) * (60.0 * sr / (tempo_at(s + self.latency) if tempo_at
                                              else ext_bpm))
        if s <= s_b:
            return
        bpm = (self.until - b) * 60.0 * sr / (s - s_b)
        bpm = min(max(bpm, ext_bpm / 2.0, MIN_BPM), ext_bpm * 2.0, MAX_BPM)
        self._last_beat = b
        if abs(bpm - self.session.clock.bpm) >= self.min_change:
            self._set(bpm)

    def _set(self, bpm: float) -> None:
        self.session.set_tempo(bpm)
        self.tempo_changes += 1

    def phase_text(self) -> str:
        """The last phase error, for the status line."""
        if self.stopped:
            return "stopped"
        if self.until is not None:
            return "coming in"
        return f"phase {self.last_error * 60000.0 / self.session.clock.bpm:+.1f} ms"

    def _realign(self, b: int, s_b: int, ext_beat, ext_bpm: float) -> None:
        """Silence from the scheduler's cursor; stretch [b, N) so the band's bar line N lands
        on an external bar line; play again from N."""
        clock, q = self.session.clock, self.quantum
        bpb = clock.beats_per_bar
        x_b = ext_beat(s_b + self.latency)
        spb = 60.0 * self.session.sample_rate / ext_bpm        # samples per external beat
        # silent, the stretch may be far off the tempo: the band comes in at the first
        # external bar line it can reach at 0.5..2 times the external tempo (within a bar)
        lo, hi = max(ext_bpm / 2.0, MIN_BPM), min(ext_bpm * 2.0, MAX_BPM)
        first_bar = (b // bpb + 1) * bpb
        e_first = math.ceil((x_b + 1e-9) / q) * q
        for e in range(e_first, e_first + 16 * q, q):
            span = (e - x_b) * spb                              # samples from s_b to ext beat e
            for n in range(first_bar, first_bar + 16 * bpb, bpb):
                bpm = (n - b) * 60.0 * self.session.sample_rate / span
                if bpm < lo:
                    continue
                if bpm > hi:
                    break
                self.gate.silence(self.session.scheduler.cursor, Fraction(n))
                self.offset = n - e
                self.until = self.entry = n
                self._set(bpm)
                self.realigns += 1
                self._last_beat, self._last_ext = b, ext_bpm
                self.stopped = self._restart = False
                return
        self.offset = None            # not reachable (a tempo far outside 20..400): next time

    def release(self) -> None:
        """Hand the band back (sync off): nothing silenced any more."""
        self.gate.silent_from = self.gate.silent_until = None


# ---- MIDI clock in ------------------------------------------------------------------------------

class MidiClockFollower:
    """Follows MIDI clock (module docstring). `feed(status, data, sample_time)` on the control
    thread: status 0xF8/0xFA/0xFB/0xFC/0xF2, data the song position in 16ths for 0xF2 (else 0),
    sample_time when the byte arrived on the audio clock. `update()` steers the band (each
    scheduler tick)."""

    def __init__(self, session, *, window_ticks: int = 96, lost_s: float = 1.0,
                 outlier_ticks: float = 0.35, log: Callable[[str], None] = print, **lock):
        self.session = session
        self.sr = session.sample_rate
        self.window_ticks = int(window_ticks)
        self.lost = lost_s * self.sr
        self.outlier = outlier_ticks
        self.log = log
        self.lock = PhaseLock(session, log=log, **lock)
        self._k: deque[int] = deque(maxlen=self.window_ticks)
        self._s: deque[float] = deque(maxlen=self.window_ticks)
        self.index = 0                   # the last tick's number (since Start: tick 0 = beat 0)
        self.base_beat = 0.0             # the external song beat of tick 0
        self.period: float | None = None  # samples per tick (the fit)
        self.fit: tuple[float, float] | None = None     # (sample of tick 0, period)
        # while the tempo changes: (last tick, its sample, period there, curvature) of the fit
        self.curve: tuple[float, float, float, float] | None = None
        self.started = False
        self.playing = False
        self._restart_at: float | None = None   # the next tick is this song beat (Start, Continue)
        self._song_beat = 0.0                   # from Song Position Pointer
        self._outliers_run = 0
        self.counters = {"ticks": 0, "dropped_ticks": 0, "outliers": 0, "spurious": 0,
                         "relocks": 0, "starts": 0, "stops": 0, "continues": 0, "bad": 0}

    # -- input -------------------------------------------------------------------------------
    def feed(self, status: int, data: int, sample_time: int) -> None:
        """One realtime/system message (never raises: bad input is counted and changes
        nothing)."""
        if status == CLOCK:
            self._tick(float(sample_time))
        elif status in (START, CONTINUE):
            self.counters["starts" if status == START else "continues"] += 1
            self._restart_at = 0.0 if status == START else self._song_beat
            if not self.locked:          # no clock yet to align to: silent until there is
                self.lock.stop()
        elif status == STOP:
            self.counters["stops"] += 1
            self.playing = False
            self._restart_at = None
            self._song_beat = self.beat_of_index(self.index + 1)
            self.lock.stop()
        elif status == SONG_POSITION and isinstance(data, int) and 0 <= data < 16384:
            self._song_beat = data / 4.0
        else:
            self.counters["bad"] += 1

    def beat_of_index(self, k: float) -> float:
        return self.base_beat + k / TICKS_PER_BEAT

    def _tick(self, s: float) -> None:
        self.counters["ticks"] += 1
        if self._s:
            dt = s - self._s[-1]
            p = self.period
            if p is None:
                n = 1
            else:
                if dt < 0.5 * p:
                    self.counters["spurious"] += 1
                    return
                n = max(1, round(dt / p))
                if dt > self.lost:                 # a long gap: the line starts over
                    self._k.clear()
                    self._s.clear()
                    self.fit = None
                elif self.fit is not None and len(self._s) >= 8:
                    resid = s - (self.fit[0] + (self.index + n) * self.fit[1])
                    if abs(resid) > self.outlier * p:
                        self._outliers_run += 1
                        self.counters["outliers"] += 1
                        if self._outliers_run < 3:
                            return
                        self.counters["relocks"] += 1     # three in a row: a new line
                        keep_s = self._s[-1]
                        self._k.clear()
                        self._s.clear()
                        self._k.append(self.index)
                        self._s.append(keep_s)
                        n = max(1, round((s - keep_s) / p))
                if n > 1:
                    self.counters["dropped_ticks"] += n - 1
            self.index += n
        else:
            self.index = 0
        self._outliers_run = 0
        if self._restart_at is not None:              # this tick is the song position
            shift = self.index
            self._k = deque((k - shift for k in self._k), maxlen=self.window_ticks)
            self.index = 0
            self.base_beat = self._restart_at
            self._restart_at = None
            self.playing = self.started = True
            self.lock.start(self.session.clock.beats_per_bar)
        self._k.append(self.index)
        self._s.append(s)
        self._fit()

    def _fit(self) -> None:
        n = len(self._s)
        if n < 3:
            if n == 2:
                self.period = self._s[1] - self._s[0]
                self.fit = (self._s[1] - self._k[1] * self.period, self.period)
            return
        k = np.fromiter(self._k, float, n)
        s = np.fromiter(self._s, float, n)
        km = k.mean()
        x = k - km
        p, a = np.polyfit(x, s, 1)
        if n >= 24:
            # a changing tempo bends the tick times into a curve that a line lags behind: where
            # the curvature stands out of the jitter, the tangent at the last tick is the line
            (c, b2, a2), cov = np.polyfit(x, s, 2, cov=True)
            if cov[0, 0] > 0 and abs(c) > CURVE_T * math.sqrt(cov[0, 0]):
                xe = x[-1]
                p = b2 + 2.0 * c * xe
                a = a2 + b2 * xe + c * xe * xe - p * xe
                if p > 0:
                    self.curve = (float(k[-1]), float(a + p * xe), float(p), float(c))
                    self.period = float(p)
                    self.fit = (float(a - p * km), float(p))
                    return
        self.curve = None
        if p <= 0:
            return
        self.period = float(p)
        self.fit = (float(a - p * km), float(p))

    # -- what it knows -------------------------------------------------------------------------
    @property
    def bpm(self) -> float | None:
        if self.period is None:
            return None
        return float(60.0 * self.sr / (TICKS_PER_BEAT * self.period))

    def ext_beat(self, sample: float) -> float:
        """The external song beat at `sample`: the fitted line, or while the tempo changes the
        fitted curve (at most CURVE_AHEAD ticks past the last tick, its tangent beyond)."""
        if self.curve is None:
            s0, p = self.fit
            return self.beat_of_index((sample - s0) / p)
        ke, se, pe, c = self.curve
        h = CURVE_AHEAD
        if c * h * h + pe * h < sample - se:          # past the horizon: its tangent
            sh, ph = se + pe * h + c * h * h, pe + 2.0 * c * h
            return self.beat_of_index(ke + h + (sample - sh) / ph)
        d = sample - se
        dk = d / pe
        for _ in range(3):
            dk = (d - c * dk * dk) / pe
        return self.beat_of_index(ke + dk)

    def tempo_at(self, sample: float) -> float:
        """The external tempo (BPM) expected at `sample` (the curve's slope there)."""
        if self.curve is None:
            return self.bpm
        ke, se, pe, c = self.curve
        dk = min(max((self.ext_beat(sample) - self.beat_of_index(ke)) * TICKS_PER_BEAT, 0.0),
                 CURVE_AHEAD)
        period = pe + 2.0 * c * dk
        return 60.0 * self.sr / (TICKS_PER_BEAT * period) if period > 0 else self.bpm

    @property
    def locked(self) -> bool:
        return self.fit is not None and len(self._s) >= min(24, self.window_ticks)

    def update(self) -> None:
        """Steer the band (the control loop, each scheduler tick)."""
        if not self.locked or (self.started and not self.playing):
            return
        bpm = self.bpm
        if not MIN_BPM <= bpm <= MAX_BPM:
            return
        quantum = self.session.clock.beats_per_bar if self.started else 1
        self.lock.steer(self.ext_beat, bpm, quantum, self.tempo_at)

    def status(self) -> str:
        bpm = self.bpm
        if bpm is None or not self.locked:
            return "MIDI clock: waiting"
        return f"MIDI clock {bpm:.2f} BPM, {self.lock.phase_text()}"

    async def run(self, stopping: asyncio.Event) -> None:
        """Nothing to serve (fed by the MIDI input); kept for the LiveRun's task list."""
        await stopping.wait()

    def close(self) -> None:
        pass


# ---- Ableton Link -------------------------------------------------------------------------------

class LinkSync:
    """The band in an Ableton Link session (aalink on the asyncio loop; module docstring).

    `clock` (tests) returns the audio clock's anchor (sample, CLOCK_MONOTONIC ns) or None
    before audio runs; by default the audio thread's last block (`EngineState.sample_clock`).
    """

    def __init__(self, session, *, quantum: int = 0, start_stop: bool = True,
                 log: Callable[[str], None] = print,
                 clock: Callable[[], tuple[int, int] | None] | None = None, **lock):
        self.session = session
        self.quantum = int(quantum) or session.clock.beats_per_bar
        self.start_stop = start_stop
        self.log = log
        self._clock = clock if clock is not None else session.state.sample_clock
        self.lock = PhaseLock(session, log=log, **lock)
        self.lock.quantum = self.quantum
        self.link = None
        self.peers = 0
        self.tempo_sent = 0
        self._playing: bool | None = None
        self._seen: float | None = None      # the clock's tempo after the last update

    def start(self) -> None:
        """Join (on the running asyncio loop). Alone, the Link timeline takes the band's beat."""
        import aalink
        self.link = aalink.Link(self.session.clock.bpm)
        self.link.quantum = float(self.quantum)
        self.link.start_stop_sync_enabled = self.start_stop
        self.link.enabled = True
        now = self._now_sample()
        if now is not None and self.link.num_peers == 0:
            self.link.request_beat(float(self.session.clock.beat_at(now)))
        self.log(f"Link: joined (quantum {self.quantum}, start/stop sync "
                 f"{'on' if self.start_stop else 'off'})")

    def _now_sample(self, mono_ns: int | None = None) -> float | None:
        anchor = self._clock()
        if anchor is None:
            return None
        sample, ns = anchor
        mono_ns = time.monotonic_ns() if mono_ns is None else mono_ns
        return sample + (mono_ns - ns) * 1e-9 * self.session.sample_rate

    def snapshot(self) -> tuple[float, float, float] | None:
        """(Link beat, its sample time, Link tempo), read together; None before audio runs."""
        link = self.link
        m0 = time.monotonic_ns()
        beat = link.beat
        m1 = time.monotonic_ns()
        tempo = link.tempo
        at = self._now_sample((m0 + m1) // 2)
        return None if at is None else (beat, at, tempo)

    def update(self) -> None:
        """One step: peers, a tempo set on bandmate → Link, start/stop, then steer."""
        link, lock = self.link, self.lock
        if link is None:
            return
        peers = link.num_peers
        if peers != self.peers:
            self.log(f"Link: {peers} peer{'s' if peers != 1 else ''}")
            self.peers = peers
        bpm = self.session.clock.bpm
        if self._seen is not None and bpm != self._seen:
            link.tempo = bpm                 # set on bandmate (OSC, tap, CLI): to the session
            self.tempo_sent += 1
        if self.start_stop:
            playing = bool(link.playing)
            if playing != self._playing and self._playing is not None:
                if playing:
                    lock.start(self.quantum)
                else:
                    lock.stop()
            self._playing = playing
        snap = self.snapshot()
        if snap is None:
            return
        beat, at, tempo = snap
        spb = 60.0 * self.session.sample_rate / tempo
        lock.steer(lambda s: beat + (s - at) / spb, tempo, self.quantum)
        self._seen = self.session.clock.bpm

    async def run(self, stopping: asyncio.Event) -> None:
        """Join, stay until `stopping` is set, leave (LiveRun calls `update` each tick)."""
        if self.link is None:
            self.start()
        try:
            await stopping.wait()
        finally:
            self.close()

    def status(self) -> str:
        if self.link is None:
            return "Link: off"
        return f"Link {self.link.tempo:.2f} BPM, {self.peers} peers, {self.lock.phase_text()}"

    def close(self) -> None:
        if self.link is not None:
            self.link.enabled = False
            self.link = None


def sync_from_config(session, cfg: dict, log=print, clock=None):
    """The follower `cfg["sync"]` asks for (MidiClockFollower, LinkSync or PlayerFollower),
    None when internal."""
    sync = cfg.get("sync", {})
    source = sync.get("source", "internal")
    if source == "internal":
        return None
    lock = dict(max_nudge_pct=sync["max_nudge_pct"], phase_gain=sync["phase_gain"],
                min_change_bpm=sync["min_change_bpm"], realign_beats=sync["realign_beats"],
                latency_ms=sync["latency_ms"])
    if source == "midi_clock":
        return MidiClockFollower(session, window_ticks=sync["window_ticks"], log=log, **lock)
    if source == "player":
        lock["phase_gain"] = sync["player_phase_gain"]
        return PlayerFollower(session, log=log, chord_window_ms=sync["player_chord_window_ms"],
                              hold_beats=sync["player_hold_beats"], **lock)
    return LinkSync(session, quantum=sync["link_quantum"], start_stop=sync["link_start_stop"],
                    log=log, clock=clock, **lock)


# ---- the player ---------------------------------------------------------------------------------

class PlayerFollower:
    """The band follows the player's own timing (module docstring): `note(kind, note, velocity,
    sample)` for each of the player's notes (Session.player_note calls it), `update()` each
    scheduler tick (before the scheduler advances), as the other followers.

    Live = offline: the tracker hears the notes at fixed points of the band's tempo map, not
    when the loop happens to wake. The tempo from band beat b on is decided once, when the
    scheduler's cursor passes b - DECIDE_BEATS, from the notes before that point's sample less
    the look-ahead (which the audio clock has passed by then, so every such note is in). Fed
    the same notes at the same sample times, a live run and an offline render make the same
    decisions, whatever their tick or block (as long as it is shorter than DECIDE_BEATS)."""

    DECIDE_BEATS = Fraction(1, 4)

    def __init__(self, session, *, log: Callable[[str], None] = print,
                 chord_window_ms: float = 40.0, hold_beats: float = 4.0, **lock):
        from engine.listen.tempo import BeatTracker
        self.session = session
        self.log = log
        clock = session.clock
        self.tracker = BeatTracker(session.sample_rate, prior_bpm=clock.bpm,
                                   beats_per_bar=clock.beats_per_bar,
                                   chord_window_ms=chord_window_ms, hold_beats=hold_beats)
        self.lock = PhaseLock(session, log=log, **lock)
        self.lock.quantum = clock.beats_per_bar
        self.lock.reaim = True               # the ear's estimate firms up while it comes in
        self.lock.stop()                     # the band listens first
        self._pending: list[tuple[int, int, int, float]] = []   # (sample, kind, note, velocity)
        self._fed = -math.inf                # notes before this sample are with the tracker
        self._decided = 0                    # the band beat the tempo was last decided for
        self._generation = 0                 # the tracker's numbering the lock is aligned to
        self.following = False               # the lock follows the tracker (else: waits/holds)
        self.counters = {"notes": 0, "late": 0, "holds": 0, "realigns": 0}
        session.follower = self

    def note(self, kind: int, note: int, velocity: float, sample: int) -> None:
        """One of the player's notes (K_NOTE_ON / K_NOTE_OFF from engine.rt.events)."""
        from engine.rt.events import K_NOTE_ON
        self.counters["notes"] += 1
        if sample < self._fed:               # arrived after its moment was decided on
            self.counters["late"] += 1
            return
        bisect.insort(self._pending, (int(sample), 0 if kind == K_NOTE_ON else -1,
                                      int(note), float(velocity)))

    def _feed(self, cut: int) -> None:
        tracker, pending = self.tracker, self._pending
        i = 0
        while i < len(pending) and pending[i][0] < cut:
            sample, kind, note, velocity = pending[i]
            if kind == 0:
                tracker.note_on(sample, note, velocity)
            else:
                tracker.note_off(sample, note)
            i += 1
        del pending[:i]
        tracker.advance(cut)
        self._fed = cut

    def update(self) -> None:
        """At each band beat's decision point: hear the notes up to it, then steer."""
        session = self.session
        cursor = session.scheduler.cursor
        b = int(cursor) + 1
        if b <= self._decided or cursor < b - self.DECIDE_BEATS:
            return
        self._decided = b
        cut = session.clock.sample_at(b - self.DECIDE_BEATS) - session.scheduler.lookahead
        self._feed(cut)
        tracker, lock = self.tracker, self.lock
        if not tracker.locked or tracker.holding:
            if self.following and tracker.holding:       # the player stopped: keep the tempo
                self.following = False
                self.counters["holds"] += 1
                bpm = min(max(tracker.bpm, MIN_BPM), MAX_BPM)
                if abs(bpm - session.clock.bpm) >= lock.min_change:
                    lock._set(bpm)
            return
        if not self.following or tracker.generation != self._generation:
            if self.following:
                self.counters["realigns"] += 1
            lock.start(session.clock.beats_per_bar)      # (again) onto the player's bars
            self._generation = tracker.generation
            self.following = True
        if not MIN_BPM <= tracker.bpm <= MAX_BPM:
            return
        lock.steer(tracker.beat_at, tracker.bpm, session.clock.beats_per_bar,
                   tracker.tempo_at)

    def status(self) -> str:
        t = self.tracker
        if t.bpm is None:
            return "player: listening"
        state = "holding" if t.holding else self.lock.phase_text()
        return (f"player {t.bpm:.1f} BPM (confidence {t.confidence:.2f}, bar "
                f"{t.downbeat_confidence:.2f}), {state}")

    async def run(self, stopping: asyncio.Event) -> None:
        """Nothing to serve (fed by the player's notes); kept for the LiveRun's task list."""
        await stopping.wait()

    def close(self) -> None:
        if self.session.follower is self:
            self.session.follower = None


# ---- tap tempo ----------------------------------------------------------------------------------

class TapTempo:
    """Taps → BPM: the median of the last `history` intervals, an interval under `early` × that
    median ignored (a double tap, a bounce), a pause over `reset_s` starts again. `tap()`
    returns the tempo once `min_taps` taps are in (clamped to 20..400), else None."""

    def __init__(self, reset_s: float = 2.5, history: int = 8, min_taps: int = 3,
                 early: float = 0.6):
        self.reset_s = reset_s
        self.history = history
        self.min_taps = min_taps
        self.early = early
        self.intervals: deque[float] = deque(maxlen=history)
        self.last: float | None = None
        self.ignored = 0

    def tap(self, now_s: float | None = None) -> float | None:
        now_s = time.monotonic() if now_s is None else now_s
        if self.last is None or not 0.0 < now_s - self.last <= self.reset_s:
            self.intervals.clear()
            self.last = now_s
            return None
        dt = now_s - self.last
        if len(self.intervals) >= 2 and dt < self.early * median(self.intervals):
            self.ignored += 1
            return self.bpm
        self.intervals.append(dt)
        self.last = now_s
        return self.bpm

    @property
    def bpm(self) -> float | None:
        if len(self.intervals) + 1 < self.min_taps:
            return None
        m = median(self.intervals)
        near = [d for d in self.intervals if abs(d - m) <= 0.2 * m] or [m]
        return min(max(60.0 / median(near), MIN_BPM), MAX_BPM)


def tap(session, now_s: float | None = None) -> float | None:
    """One tap on `session`'s tap tempo (`session.tapper`); sets the tempo once it is known
    (a change under 0.05 BPM is not sent). Returns the tapped BPM or None."""
    bpm = session.tapper.tap(now_s)
    if bpm is not None and abs(bpm - session.clock.bpm) >= 0.05:
        session.set_tempo(round(bpm, 2))
    return bpm
