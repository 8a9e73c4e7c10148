"""The offline driver: the same render kernel, driven block by block without a device
(control side). Used for WAV export, tests and benchmarks.

Each block: the scheduler pushes what is due within its look-ahead, timed input events (a MIDI
file played as the player's part) go through the MIDI queue exactly as live input does, then
`engine.rt.render.run_block` renders. Block size only changes how often this loop wakes, never
the output: the kernel is block-size invariant.
"""
from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

from engine.control.state import EngineState
from engine.rt.layout import C_SAMPLE_TIME, MAXBLOCK
from engine.rt.render import run_block

TimedEvent = tuple  # (time, kind, part, a, b, c)


class OfflineDriver:
    """Renders `state` without a device. `before_block(block_end)` runs before each block with
    the sample time just past it, so everything due inside the block can be queued first (the
    scheduler's `advance`: its look-ahead then reaches past the block whatever the block size);
    `events` are (time, kind, part, a, b, c) tuples, fed through the MIDI queue a little ahead
    of their time."""

    def __init__(self, state: EngineState, block_size: int = 256,
                 before_block: Callable[[int], object] | None = None,
                 events: Iterable[TimedEvent] = (), feed_ahead: int | None = None):
        if not 1 <= block_size <= 4096:
            raise ValueError("block_size must be 1..4096")
        self.state = state
        self.block_size = int(block_size)
        self.before_block = before_block
        self.events = sorted(events, key=lambda e: e[0])
        self._next = 0
        self.feed_ahead = feed_ahead if feed_ahead is not None else 4 * self.block_size

    def _feed(self, until: int) -> None:
        while self._next < len(self.events) and self.events[self._next][0] < until:
            if not self.state.push_midi(*self.events[self._next]):
                return  # queue full: the rest goes in after the next block
            self._next += 1

    def render(self, frames: int, out: np.ndarray | None = None) -> np.ndarray:
        """Render `frames` stereo frames; returns float32 (frames, 2)."""
        if out is None:
            out = np.zeros((frames, 2), np.float32)
        done = 0
        st = self.state
        table, clock = st.table, st.ctl[C_SAMPLE_TIME:C_SAMPLE_TIME + 1]
        stereo = st.out(MAXBLOCK)                       # the out rows (views)
        before, block, events = self.before_block, self.block_size, self.events
        while done < frames:
            n = min(block, frames - done)
            now = int(clock[0])
            if before is not None:
                before(now + n)
            if self._next < len(events):
                self._feed(now + n + self.feed_ahead)
            run_block(table, n)
            out[done:done + n] = stereo[:, :n].T
            done += n
        return out
