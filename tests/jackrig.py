"""A frame-exact JACK test rig (test code only).

`Rig` is one JACK client ("bandmate_rig") in the test process, its callbacks compiled
(tests.jackc: no Python, no GIL on JACK's threads), that
  * sends MIDI into a device under test (DUT) through a JACK MIDI output port, each message at
    an exact absolute JACK frame, and
  * records the DUT's audio through JACK audio input ports, stamping every period with the
    absolute JACK frame of its first sample (`client.last_frame_time` in the process callback),
so the latency and jitter from "MIDI sent" to "sound out" are measured in exact frames.

Graph order and the rig's own delay (measured by tests/test_jackrig.py)
------------------------------------------------------------------------
JACK2 runs the clients of each cycle in topological order of their connections, and when
connections form a cycle it turns the one that *closes* it into a "feedback" connection,
whose data is read one cycle later. Two cases:

1. The DUT's MIDI input and audio output are one JACK client (or JACK connections lead from
   the one to the other): rig MIDI -> DUT -> rig audio is a cycle. With `Rig.connect` (MIDI
   first, then audio) the order is rig -> DUT: the DUT gets the MIDI in the cycle it was sent
   and the rig reads the DUT's audio one cycle later (had the audio been connected first,
   the MIDI would reach the DUT a cycle late instead). Either way the rig adds exactly
   RIG_LOOP_PERIODS (= 1) period. A sample-accurate one-client DUT measures one period.
2. MIDI input and audio output are different clients with no JACK path between them (e.g.
   rtmidi's "RtMidiIn Client" feeding a PortAudio or JACK-Client audio client through the
   DUT's own queues): no cycle. The order is DUT audio -> rig -> DUT MIDI: the rig records
   the DUT's audio in the cycle it was written, so the rig adds nothing; the DUT itself can
   render a note no earlier than the next cycle (its MIDI client runs after its audio
   client), exactly as with a hardware MIDI port.

`Rig.loop_frames()` looks at the live connections and tells which case holds (period or 0);
`measure(sent, onsets, loop_frames=rig.loop_frames())` reports the raw figure and the DUT's
own figure (`own_median`, the loop subtracted).

No Python runs in the rig's callbacks, so nothing in the test process can make it miss a
cycle; the host still can (a VM's stolen time): then the server reports an xrun, the rig counts
it (`xruns`), and `recording()` raises `RigGap` if its period stamps are not contiguous, so a
test measures again rather than read misaligned audio. Where a property does not depend on
wall-clock time, `freewheel()` runs the server's cycles back to back with no deadline (JACK's
freewheel mode): no xruns at all; schedule such runs with `arm()` (frames relative to the
cycle that picks the schedule up), since the frame clock then races ahead of any Python thread.
"""
from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass

import numpy as np

from engine.drivers.jack import AUDIO_TYPE, MIDI_TYPE, port_names
from tests.jackc import (ANCHOR_ARMED, ANCHOR_HOLD, T_ANCHOR, T_CYCLES, T_DROPPED, T_LATE,
                         T_LEAD, T_SCHED_COUNT, CClient)

RIG_LOOP_PERIODS = 1
"""Periods the rig adds when it closes a cycle in the JACK graph (one feedback connection)."""

PORT_IS_INPUT, PORT_IS_OUTPUT = 0x1, 0x2


class RigError(RuntimeError):
    """The rig cannot give a frame-exact answer."""


class RigGap(RigError):
    """The recording has a discontinuity (the host made the server miss one or more cycles)."""


def list_ports(lib, client, pattern: str = "", *, is_midi: bool | None = None,
               is_input: bool | None = None) -> list[str]:
    """Names of the JACK ports whose full name matches the regex `pattern` (re.search)."""
    flags = 0
    if is_input is True:
        flags |= PORT_IS_INPUT
    elif is_input is False:
        flags |= PORT_IS_OUTPUT
    kind = None if is_midi is None else (MIDI_TYPE if is_midi else AUDIO_TYPE)
    out = port_names(lib, lib.jack_get_ports(client, None, kind, flags))
    rx = re.compile(pattern)
    return sorted(n for n in out if rx.search(n))


class Rig:
    """A JACK client that sends MIDI at exact frames and records audio with exact frame stamps.

    Use as a context manager (activates on enter, closes on exit):

        with Rig() as rig:
            rig.connect(midi_to=rig.find_port(r"^dut:midi_in$", is_midi=True, is_input=True),
                        audio_from=rig.find_ports(r"^dut:out_", is_midi=False, is_input=False))
            t = rig.now() + rig.rate // 10          # schedule ~100 ms ahead
            seq = rig.send(b"\\x90\\x3c\\x64", at_frame=t)
            rig.wait_until(t + rig.rate // 10)
            rec = rig.recording(since_frame=t)      # (start_frame, audio[frames, channels])
            onset = onset_frame(rec, after_frame=rig.sent_frame(seq), threshold=0.1)
            m = measure([rig.sent_frame(seq)], [onset], loop_frames=rig.loop_frames())
    """

    def __init__(self, name: str = "bandmate_rig", audio_inputs: int = 2, *,
                 seconds: float = 20.0, max_messages: int = 1 << 14):
        self.c = CClient(name, midi_out=True, audio_in=audio_inputs, seconds=seconds,
                         max_messages=max_messages)
        self.lib, self.name = self.c.lib, self.c.name
        self.rate, self.period, self.channels = self.c.rate, self.c.period, audio_inputs
        self.midi_out = self.c.port_name("midi_out")
        self.audio_in = [self.c.port_name(f"in_{i + 1}") for i in range(audio_inputs)]
        self._seq = 0
        self._last_frame = -(1 << 62)
        self._freewheel = False
        self._rec = self.c._rec.reshape(self.c.slots, max(audio_inputs, 1), self.period)

    # -------------------------------------------------------------------- lifecycle
    def activate(self) -> "Rig":
        self.c.activate()
        return self

    def close(self) -> None:
        if self._freewheel:
            self.freewheel(False)
        self.c.close()

    def __enter__(self) -> "Rig":
        return self.activate()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def xruns(self) -> int:
        return self.c.xruns

    @property
    def late_messages(self) -> int:
        """Messages whose frame had already passed when the rig came to them (sent at 0)."""
        return int(self.c.t[T_LATE])

    @property
    def dropped_messages(self) -> int:
        """Messages the MIDI port buffer had no room for (left unsent, -1)."""
        return int(self.c.t[T_DROPPED])

    def freewheel(self, on: bool) -> None:
        """JACK's freewheel mode: cycles back to back, no deadline (the whole server)."""
        if self.lib.jack_set_freewheel(self.c.client, int(on)) != 0:
            raise RigError("JACK refused freewheel mode")
        self._freewheel = on

    @contextlib.contextmanager
    def freewheeling(self):
        self.freewheel(True)
        try:
            yield self
        finally:
            self.freewheel(False)

    # -------------------------------------------------------------------- wiring
    def find_ports(self, pattern: str, *, is_midi: bool | None = None,
                   is_input: bool | None = None) -> list[str]:
        return list_ports(self.lib, self.c.client, pattern, is_midi=is_midi, is_input=is_input)

    def find_port(self, pattern: str, **kwargs) -> str:
        names = self.find_ports(pattern, **kwargs)
        if len(names) != 1:
            raise RigError(f"expected exactly one port matching {pattern!r} {kwargs}, "
                           f"found {names}")
        return names[0]

    def wait_for_port(self, pattern: str, timeout: float = 10.0, **kwargs) -> str:
        """The one port matching `pattern`, waiting for it to appear (RigError on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            names = self.find_ports(pattern, **kwargs)
            if len(names) == 1:
                return names[0]
            if time.monotonic() > deadline:
                raise RigError(f"no single port matching {pattern!r} within {timeout} s: "
                               f"{names}")
            time.sleep(0.02)

    def connect_ports(self, src: str, dst: str) -> None:
        if self.lib.jack_connect(self.c.client, src.encode(), dst.encode()) != 0:
            raise RigError(f"JACK refused to connect {src} -> {dst}")

    def disconnect_ports(self, src: str, dst: str) -> None:
        if self.lib.jack_disconnect(self.c.client, src.encode(), dst.encode()) != 0:
            raise RigError(f"JACK refused to disconnect {src} -> {dst}")

    def connect(self, midi_to: str | None, audio_from: list[str] | tuple[str, ...] = ()) -> None:
        """Connect the rig's MIDI out to `midi_to` (a JACK MIDI input port name, or None) and the
        DUT's audio outputs `audio_from` (port names, one per rig input, in order) to the rig.

        The MIDI is connected first, on purpose: JACK2 then runs rig -> DUT in each cycle and the
        audio connection becomes the loop's feedback edge (see the module doc: RIG_LOOP_PERIODS).
        """
        if len(audio_from) > self.channels:
            raise RigError(f"{len(audio_from)} audio sources but the rig has {self.channels} inputs")
        self.activate()
        if midi_to is not None:
            self.connect_ports(self.midi_out, midi_to)
        for port, source in zip(self.audio_in, audio_from):
            self.connect_ports(source, port)

    def _connections(self, port_name: str) -> list[str]:
        port = self.lib.jack_port_by_name(self.c.client, port_name.encode())
        return port_names(self.lib, self.lib.jack_port_get_all_connections(self.c.client, port)
                          if port else None)

    def loop_frames(self) -> int:
        """Frames the rig itself adds to a send -> onset measurement with the connections as
        they are now: one period (RIG_LOOP_PERIODS) if JACK connections lead from the rig back
        to the rig (a graph cycle, case 1 of the module doc), else 0."""
        edges: dict[str, set[str]] = {}
        for port in self.find_ports("", is_input=False):
            src = port.split(":", 1)[0]
            for dst in self._connections(port):
                edges.setdefault(src, set()).add(dst.split(":", 1)[0])
        seen, todo = set(), list(edges.get(self.name, ()))
        while todo:
            c = todo.pop()
            if c == self.name:
                return RIG_LOOP_PERIODS * self.period
            if c not in seen:
                seen.add(c)
                todo.extend(edges.get(c, ()))
        return 0

    # -------------------------------------------------------------------- time and MIDI
    def now(self) -> int:
        """The estimated current JACK frame (jack_frame_time; for scheduling from this thread)."""
        return self.c.now()

    def hold(self) -> None:
        """Send nothing until `arm()`: queue a schedule relative to the arming cycle."""
        self.c.t[T_ANCHOR] = ANCHOR_HOLD
        self._last_frame = -(1 << 62)

    def arm(self, lead: int | None = None) -> None:
        """Start the held schedule: its frames count from the first cycle that sees the arm,
        plus `lead` frames (default 2 periods). `anchor()` then tells that frame."""
        self.c.t[T_LEAD] = 2 * self.period if lead is None else lead
        self.c.t[T_ANCHOR] = ANCHOR_ARMED

    def anchor(self, timeout: float = 10.0) -> int:
        """The absolute frame the schedule counts from (waits for an armed schedule)."""
        deadline = time.monotonic() + timeout
        while self.c.t[T_ANCHOR] < 0:
            self._check_alive()
            if time.monotonic() > deadline:
                raise RigError(f"the rig did not pick up its schedule within {timeout} s")
            time.sleep(0.002)
        return int(self.c.t[T_ANCHOR])

    def send(self, msg: bytes | bytearray | list[int], at_frame: int) -> int:
        """Queue a MIDI message to go out at frame `at_frame` (absolute, or relative to the
        anchor after `hold()`); returns its sequence number (see `sent_frame`). Frames must not
        decrease from one send to the next. A frame already past goes out at offset 0 of the
        next cycle and counts in `late_messages`."""
        data = bytes(msg)
        c = self.c
        seq = self._seq
        if seq >= len(c._frames):
            raise RigError(f"more than {len(c._frames)} messages sent; raise max_messages")
        if at_frame < self._last_frame:
            raise RigError(f"send frames must not decrease ({at_frame} < {self._last_frame})")
        if c._pool_used + len(data) > len(c._pool):
            raise RigError("the rig's MIDI byte pool is full")
        c._pool[c._pool_used:c._pool_used + len(data)] = np.frombuffer(data, np.uint8)
        c._offs[seq] = c._pool_used
        c._lens[seq] = len(data)
        c._frames[seq] = int(at_frame)
        c._pool_used += len(data)
        self._last_frame = int(at_frame)
        self._seq = seq + 1
        c.t[T_SCHED_COUNT] = seq + 1      # publish (x86/ARM: the stores above land first)
        return seq

    def sent_frame(self, seq: int) -> int:
        """The absolute frame message `seq` actually went out at, or -1 if not yet sent."""
        return int(self.c._sent[seq])

    def sent_frames(self) -> np.ndarray:
        """Actual send frames of every message so far, indexed by sequence number (-1 = unsent)."""
        return self.c._sent[: self._seq].copy()

    def recorded_until(self) -> int:
        """Absolute frame just past the last recorded sample (-1 before the first cycle)."""
        n = int(self.c.t[T_CYCLES])
        if n == 0:
            return -1
        return int(self.c._stamps[(n - 1) % self.c.slots]) + self.period

    def wait_until(self, frame: int, timeout: float = 10.0) -> None:
        """Block until the recording covers every frame before `frame`."""
        deadline = time.monotonic() + timeout
        while (reached := self.recorded_until()) < frame:
            self._check_alive()
            if time.monotonic() > deadline:
                raise RigError(f"recording reached frame {reached}, not {frame}, within "
                               f"{timeout} s (xruns={self.xruns})")
            remaining = (frame - reached) / self.rate if reached >= 0 else 0.0
            time.sleep(min(0.05, max(0.001, remaining - 0.01)))

    def _check_alive(self) -> None:
        if not self.c.alive:
            raise RigError("JACK shut the rig down (the server went away)")

    # -------------------------------------------------------------------- recording
    def recording(self, since_frame: int | None = None) -> tuple[int, np.ndarray]:
        """(start_frame, audio[frames, channels] float32) for the recorded span, from the oldest
        period still in the ring (or the period containing `since_frame`) to the newest.

        Raises RigGap if a cycle is missing inside that span."""
        stamps, audio = self._periods(since_frame)
        steps = np.diff(stamps)
        if len(steps) and not np.all(steps == self.period):
            bad = int(np.argmax(steps != self.period))
            raise RigGap(f"recording discontinuous after frame {int(stamps[bad])}: next period "
                         f"starts at {int(stamps[bad + 1])} (period {self.period}); xruns={self.xruns}"
                         f" (pass since_frame= to look only at the span you measured)")
        if len(stamps) == 0:
            return 0, np.zeros((0, self.channels), dtype=np.float32)
        # [periods, channels, period] -> [frames, channels]
        flat = audio.transpose(0, 2, 1).reshape(-1, self.channels)
        return int(stamps[0]), flat

    def segments(self, since_frame: int | None = None) -> list[tuple[int, np.ndarray]]:
        """The recorded span as its gapless runs of periods: [(start_frame, audio[frames,
        channels])...], split wherever a cycle is missing (an xrun) instead of raising."""
        stamps, audio = self._periods(since_frame)
        out = []
        start = 0
        for k in range(1, len(stamps) + 1):
            if k == len(stamps) or stamps[k] - stamps[k - 1] != self.period:
                run = audio[start:k].transpose(0, 2, 1).reshape(-1, self.channels)
                out.append((int(stamps[start]), run))
                start = k
        return out

    def _periods(self, since_frame):
        self._check_alive()
        slots = self.c.slots
        n = int(self.c.t[T_CYCLES])
        count = min(n, slots)
        if count == 0:
            return np.zeros(0, np.int64), np.zeros((0, self.channels, self.period), np.float32)
        idx = (np.arange(n - count, n) % slots)
        audio = self._rec[idx][:, :self.channels].copy()
        stamps = self.c._stamps[idx].copy()
        # The callback may have overwritten the oldest slots while we copied: drop those.
        overwritten = max(0, int(self.c.t[T_CYCLES]) - slots - (n - count) + 1)
        audio, stamps = audio[overwritten:], stamps[overwritten:]
        if since_frame is not None:
            keep = stamps + self.period > since_frame
            if not keep.any():
                raise RigError(f"frame {since_frame} is not recorded (newest ends "
                               f"{int(stamps[-1]) + self.period})")
            first = int(np.argmax(keep))
            if first == 0 and stamps[0] > since_frame:
                raise RigError(f"frame {since_frame} has left the ring (oldest is {int(stamps[0])})")
            audio, stamps = audio[first:], stamps[first:]
        return stamps, audio


# ------------------------------------------------------------------------ analysis helpers
def onset_frame(recording: tuple[int, np.ndarray], after_frame: int, threshold: float,
                channel: int | None = None, before_frame: int | None = None) -> int | None:
    """First absolute frame >= after_frame (and < before_frame) whose |sample| exceeds
    `threshold` on `channel` (None: any channel), or None if there is none."""
    start, audio = recording
    lo = max(0, after_frame - start)
    hi = len(audio) if before_frame is None else min(len(audio), before_frame - start)
    if lo >= hi:
        return None
    seg = audio[lo:hi] if channel is None else audio[lo:hi, channel:channel + 1]
    hits = np.flatnonzero(np.any(np.abs(seg) > threshold, axis=1))
    return None if len(hits) == 0 else start + lo + int(hits[0])


@dataclass
class Measurement:
    latencies: np.ndarray   # frames from send to onset, per note (rig loop included)
    median: float           # frames
    jitter: int             # max - min, frames
    min: int
    max: int
    own_median: float       # median minus the rig's own delay (loop_frames): the DUT's figure
    missing: int            # notes with no onset

    def ms(self, rate: int) -> float:
        return 1000.0 * self.median / rate


def measure(sent_frames, onsets, loop_frames: int = 0) -> Measurement:
    """Latency per note (onset - sent) in frames, their median and jitter (max - min).

    Notes whose onset is None (or never sent, -1) are counted in `missing` and left out.
    `own_median` = median - loop_frames: pass `rig.loop_frames()` to get the DUT's own figure."""
    sent_frames, onsets = list(sent_frames), list(onsets)
    if len(sent_frames) != len(onsets):
        raise RigError(f"{len(sent_frames)} sent frames but {len(onsets)} onsets")
    pairs = [(int(s), int(o)) for s, o in zip(sent_frames, onsets) if o is not None and s >= 0]
    missing = len(sent_frames) - len(pairs)
    if not pairs:
        raise RigError("no onsets to measure")
    lat = np.array([o - s for s, o in pairs], dtype=np.int64)
    med = float(np.median(lat))
    return Measurement(latencies=lat, median=med, jitter=int(lat.max() - lat.min()),
                       min=int(lat.min()), max=int(lat.max()), own_median=med - loop_frames,
                       missing=missing)
