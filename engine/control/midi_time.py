"""MIDI backend timestamps → the audio sample clock (control side, one timeline per port).

rtmidi stamps every message on its backend's own thread and hands Python the delta time since
the port's previous message. Summed, the deltas are the port's *backend timeline* (seconds from
its first message), which a busy Python thread cannot disturb: a message read 10 ms late still
carries its true time. `PortTimeline` maps that timeline onto the engine's sample clock:

    sample time of a message = backend_time * sample_rate + offset(backend_time)

Each message yields one measurement d = arrival - backend_time * sample_rate, where `arrival` is
the audio clock when Python saw it: d = offset + that message's delivery delay >= offset. The
least-delayed messages are the truest, so the offset tracks the *minimum* of d (the lower
envelope), not its mean:
  * the envelope is the least d of the last `history` windows of `window_s` (none older than
    `max_age_s`), each carried forward at the drift rate: a message below it moves it down at
    once (it is the new least-delayed one); messages above it are delays and move nothing;
  * when the envelope would rise (old minima expire, the drift rate is refitted) it rises at
    most `slew_ppm` of the time passed: slowly, never as a step;
  * the two clocks drift apart at a constant rate (a sound card's crystal against the system
    clock: tens of ppm): the rate is the slope of the lower convex hull of the per-window minima
    over the last `history` windows (the hull edge across their mean time; Moon, Skelly and
    Towsley's skew estimate), clamped to `max_ppm`, and the envelope moves with it between
    messages and across silences;
  * a clock jump (the audio stream restarted, the backend lost time): a message more than
    `jump_s` below the envelope resets it there; messages all more than `jump_s` above it for at
    least `jump_span_s` and 3 messages re-anchor it to their least residual. One GIL stall cannot
    do that: of the messages it delays, the last one read arrives almost on time.

What the stamp is worth depends on the backend (RtMidi 5/6 source): ALSA's sequencer stamps
each event when it is delivered to our port (the queue's real-time clock); rtmidi's JACK backend
takes `jack_get_time()` when its own process callback handles the event, so all events of one
JACK cycle share a time: up to one period of jitter there (CoreMIDI and WinMM stamp each packet
or message in their drivers).
"""
from __future__ import annotations

import math
from collections import deque


class PortTimeline:
    """One port's backend timeline mapped onto the audio sample clock (see the module docstring).

    Not thread-safe: one caller at a time (LiveInput calls it under its lock)."""

    def __init__(self, sample_rate: float, *, window_s: float = 1.0, history: int = 120,
                 max_age_s: float = 600.0, slew_ppm: float = 200.0, max_ppm: float = 1000.0,
                 jump_s: float = 0.010, jump_span_s: float = 0.5):
        self.sr = float(sample_rate)
        self.window_s = window_s
        self.history = history
        self.max_age_s = max_age_s
        self.slew = slew_ppm * 1e-6 * self.sr        # samples of offset per backend second
        self.max_rate = max_ppm * 1e-6 * self.sr
        self.jump = jump_s * self.sr
        self.jump_span_s = jump_span_s
        self.offset: float | None = None             # the estimate, at backend time self._t
        self._t = 0.0
        self.rate = 0.0                              # d(offset)/d(backend second), samples/s
        self.jumps = 0                               # clock jumps handled
        self._minima: deque[tuple[float, float]] = deque()   # (t, d): least d of each window
        self._base = math.inf                        # min over _minima of d - rate * t
        self._win_start = 0.0
        self._win_min: tuple[float, float] | None = None
        self._run: tuple[float, int, float] | None = None    # (start t, messages, least residual)

    @property
    def rate_ppm(self) -> float:
        """The drift of the audio clock against this port's backend clock, in ppm."""
        return self.rate / self.sr * 1e6

    def place(self, backend_s: float, arrival: float) -> float:
        """The sample time at which the message stamped `backend_s` (seconds on this port's
        timeline) happened, given `arrival`, the audio clock (samples) when Python read it.
        Never later than `arrival`."""
        if self.offset is None:                       # the first message: all we know
            d = arrival - backend_s * self.sr
            self.offset, self._t = d, backend_s
            self._win_start, self._win_min = backend_s, (backend_s, d)
            return arrival
        t = max(backend_s, self._t)
        d = arrival - t * self.sr
        if t >= self._win_start + self.window_s:
            self._close_window(t)
        pred = self.offset + self.rate * (t - self._t)
        resid = d - pred
        if resid < -self.jump:                        # far below: a clock jump (or everything
            self._reset(t, d)                         # before was delayed): start over here
            self.offset, self._t = d, t
            return t * self.sr + d
        if resid > self.jump:                         # far above: a stall, or a clock jump
            start, n, least = self._run if self._run else (t, 0, resid)
            self._run = (start, n + 1, min(least, resid))
            if n + 1 >= 3 and t - start >= self.jump_span_s:
                self._reset(t, d)
                self.offset, self._t = pred + min(least, resid), t
                return t * self.sr + self.offset
        else:
            self._run = None
        if self._win_min is None or d < self._win_min[1]:
            self._win_min = (t, d)
        wt, wd = self._win_min
        envelope = min(self._base, wd - self.rate * wt) + self.rate * t
        self.offset = min(envelope, pred + self.slew * (t - self._t))
        self._t = t
        return t * self.sr + self.offset

    # -- windows, drift, jumps ---------------------------------------------------------------

    def _close_window(self, t: float) -> None:
        """A message of a later window arrived: keep the closed window's least d, forget
        minima beyond the history, refit the drift rate."""
        if self._win_min is not None:
            self._minima.append(self._win_min)
        while self._minima and (len(self._minima) > self.history
                                or self._minima[0][0] < t - self.max_age_s):
            self._minima.popleft()
        self._fit_rate()
        self._base = min((d - self.rate * u for u, d in self._minima), default=math.inf)
        self._win_start, self._win_min = t, None

    def _fit_rate(self) -> None:
        pts = self._minima
        if len(pts) < 6 or pts[-1][0] - pts[0][0] < 10 * self.window_s:
            return
        hull: list[tuple[float, float]] = []
        for p in pts:                                 # lower convex hull, points in time order
            while len(hull) >= 2:
                (x1, y1), (x2, y2) = hull[-2], hull[-1]
                if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) <= 0.0:
                    hull.pop()
                else:
                    break
            hull.append(p)
        mean_t = sum(p[0] for p in pts) / len(pts)
        for (x1, y1), (x2, y2) in zip(hull, hull[1:]):
            if x1 <= mean_t <= x2 and x2 > x1:
                self.rate = min(max((y2 - y1) / (x2 - x1), -self.max_rate), self.max_rate)
                return

    def _reset(self, t: float, d: float) -> None:
        """Forget the envelope's history (kept: the drift rate, a property of the two clocks)."""
        self.jumps += 1
        self._minima.clear()
        self._base = math.inf
        self._run = None
        self._win_start, self._win_min = t, (t, d)
