"""A frame-exact JACK test rig (control side; test code only).

`Rig` is one JACK client ("bandmate_rig") in the test process that
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

Realtime caveat: the callback is Python and needs the GIL. A long GIL hold in the test
process (or a DUT in the same process), or a GIL holder descheduled on a loaded machine, can
make the rig miss a cycle (the active rig shortens sys.setswitchinterval to limit this); `recording()` detects a
discontinuity in the period stamps and raises `RigGap` rather than return misaligned audio,
and `xruns` counts the server's xrun notifications.
"""
from __future__ import annotations

import collections
import heapq
import re
import sys
import threading
import time
from dataclasses import dataclass

import jack
import numpy as np

try:  # JACK-Client's cffi handles: used to copy port buffers without a numpy object per cycle
    from jack import _ffi, _lib
except ImportError as exc:  # pragma: no cover - JACK-Client layout changed
    raise ImportError("tests.jackrig needs JACK-Client 0.5.x (jack._ffi / jack._lib)") from exc

RIG_LOOP_PERIODS = 1
"""Periods the rig adds when it closes a cycle in the JACK graph (one feedback connection)."""


SWITCH_INTERVAL = 0.0002
"""sys.setswitchinterval while a Rig is active (seconds)."""


class RigError(RuntimeError):
    """The rig cannot give a frame-exact answer."""


class RigGap(RigError):
    """The recording has a discontinuity (the rig missed one or more process cycles)."""


def find_ports(client: jack.Client, pattern: str, *, is_midi: bool | None = None,
               is_input: bool | None = None) -> list[str]:
    """Names of the JACK ports whose full name matches the regex `pattern` (re.search).

    is_midi: True = MIDI ports only, False = audio ports only, None = both.
    is_input: True = input (sink) ports only, False = output (source) ports only, None = both.
    Port names are not stable across runs (e.g. PortAudio and rtmidi number their clients), so
    look them up by pattern every time.
    """
    kwargs = {}
    if is_midi is True:
        kwargs["is_midi"] = True
    elif is_midi is False:
        kwargs["is_audio"] = True
    if is_input is True:
        kwargs["is_input"] = True
    elif is_input is False:
        kwargs["is_output"] = True
    rx = re.compile(pattern)
    return sorted(p.name for p in client.get_ports(**kwargs) if rx.search(p.name))


def find_port(client: jack.Client, pattern: str, **kwargs) -> str:
    """The one port matching `pattern` (see `find_ports`); RigError if none or several."""
    names = find_ports(client, pattern, **kwargs)
    if len(names) != 1:
        raise RigError(f"expected exactly one port matching {pattern!r} {kwargs}, found {names}")
    return names[0]


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
                 seconds: float = 20.0, max_messages: int = 1 << 16,
                 servername: str | None = None):
        self.client = jack.Client(name, no_start_server=True, servername=servername)
        self.name = self.client.name  # JACK may rename on a clash
        self.rate = int(self.client.samplerate)
        self.period = int(self.client.blocksize)
        self.midi_out = self.client.midi_outports.register("midi_out")
        self.audio_in = [self.client.inports.register(f"in_{i + 1}") for i in range(audio_inputs)]
        self.channels = audio_inputs

        # --- recording: a ring of whole periods, each stamped with its absolute first frame ---
        self._slots = max(4, int(np.ceil(seconds * self.rate / self.period)))
        self._audio = np.zeros((self._slots, self.channels, self.period), dtype=np.float32)
        self._stamps = np.full(self._slots, -1, dtype=np.int64)
        self._cycles = 0  # periods recorded so far; written last in the callback (publication)
        self._slot_bytes = self.period * 4
        base = _ffi.cast("char *", self._audio.ctypes.data)
        # one destination pointer per (slot, channel), built once: no allocation per cycle
        self._dst = [[base + (s * self.channels + c) * self._slot_bytes for c in range(self.channels)]
                     for s in range(self._slots)]
        self._in_ptrs = [p._ptr for p in self.audio_in]
        self._out_ptr = self.midi_out._ptr

        # --- MIDI sending ---
        self._inbox: collections.deque = collections.deque()  # (at_frame, seq, bytes) from send()
        self._pending: list = []  # heap of the same, owned by the callback
        self._sent = np.full(max_messages, -1, dtype=np.int64)  # actual frame each seq went out
        self._seq = 0
        self._seq_lock = threading.Lock()
        self.late_messages = 0  # messages whose at_frame had already passed (sent at offset 0)
        self.dropped_messages = 0  # messages the MIDI port buffer had no room for (left unsent)

        self.xruns = 0
        self._shutdown: str | None = None
        self.client.set_process_callback(self._process)
        self.client.set_xrun_callback(self._on_xrun)
        self.client.set_shutdown_callback(self._on_shutdown)
        self.client.set_blocksize_callback(self._on_blocksize)
        self._active = False

    # -------------------------------------------------------------------- lifecycle
    def activate(self) -> "Rig":
        if not self._active:
            # The callback needs the GIL every period (1.3 ms at 64/48k); a thread busy in Python
            # would keep it for up to the switch interval (5 ms by default). Shorten it while
            # the rig runs; restored by close().
            self._switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(min(self._switch_interval, SWITCH_INTERVAL))
            self.client.activate()
            self._active = True
        return self

    def close(self) -> None:
        if self._active:
            self.client.deactivate()
            self._active = False
            sys.setswitchinterval(self._switch_interval)
        self.client.close()

    def __enter__(self) -> "Rig":
        return self.activate()

    def __exit__(self, *exc) -> None:
        self.close()

    # -------------------------------------------------------------------- JACK callbacks
    def _process(self, frames: int) -> None:
        ft = self.client.last_frame_time
        # MIDI out: clear the port buffer every cycle, then write every due message in order.
        out = _lib.jack_port_get_buffer(self._out_ptr, frames)
        _lib.jack_midi_clear_buffer(out)
        inbox, pending = self._inbox, self._pending
        while inbox:
            heapq.heappush(pending, inbox.popleft())
        end = ft + frames
        while pending and pending[0][0] < end:
            at, seq, data = heapq.heappop(pending)
            offset = at - ft
            if offset < 0:
                offset = 0
                self.late_messages += 1
            if _lib.jack_midi_event_write(out, offset, data, len(data)) == 0:
                self._sent[seq] = ft + offset
            else:  # port buffer full: leave it unsent (-1) so the test sees it
                self.dropped_messages += 1
        # Audio in: copy each port's period into the ring slot, stamp it, then publish.
        slot = self._cycles % self._slots
        dst = self._dst[slot]
        for c, ptr in enumerate(self._in_ptrs):
            _ffi.memmove(dst[c], _lib.jack_port_get_buffer(ptr, frames), self._slot_bytes)
        self._stamps[slot] = ft
        self._cycles += 1

    def _on_xrun(self, delay_usecs: float) -> None:
        self.xruns += 1

    def _on_shutdown(self, status, reason: str) -> None:
        self._shutdown = reason or str(status)

    def _on_blocksize(self, blocksize: int) -> None:
        if blocksize != self.period:
            self._shutdown = f"JACK period changed from {self.period} to {blocksize}; make a new Rig"
            raise jack.CallbackExit

    # -------------------------------------------------------------------- wiring
    def find_ports(self, pattern: str, *, is_midi: bool | None = None,
                   is_input: bool | None = None) -> list[str]:
        return find_ports(self.client, pattern, is_midi=is_midi, is_input=is_input)

    def find_port(self, pattern: str, **kwargs) -> str:
        return find_port(self.client, pattern, **kwargs)

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
            self.client.connect(self.midi_out, midi_to)
        for port, source in zip(self.audio_in, audio_from):
            self.client.connect(source, port)

    def loop_frames(self) -> int:
        """Frames the rig itself adds to a send -> onset measurement with the connections as
        they are now: one period (RIG_LOOP_PERIODS) if JACK connections lead from the rig back
        to the rig (a graph cycle, case 1 of the module doc), else 0."""
        edges: dict[str, set[str]] = {}
        for port in self.client.get_ports(is_output=True):
            src = port.name.split(":", 1)[0]
            for dst in self.client.get_all_connections(port):
                edges.setdefault(src, set()).add(dst.name.split(":", 1)[0])
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
        return int(self.client.frame_time)

    def send(self, msg: bytes | bytearray | list[int], at_frame: int) -> int:
        """Queue a MIDI message to go out at absolute JACK frame `at_frame`; returns its sequence
        number (see `sent_frame`). A frame already past goes out at offset 0 of the next cycle
        and counts in `late_messages`. Schedule at least a couple of periods ahead of `now()`."""
        data = bytes(msg)
        with self._seq_lock:
            seq = self._seq
            if seq >= len(self._sent):
                raise RigError(f"more than {len(self._sent)} messages sent; raise max_messages")
            self._seq += 1
        self._inbox.append((int(at_frame), seq, data))
        return seq

    def sent_frame(self, seq: int) -> int:
        """The absolute frame message `seq` actually went out at, or -1 if not yet sent."""
        return int(self._sent[seq])

    def sent_frames(self) -> np.ndarray:
        """Actual send frames of every message so far, indexed by sequence number (-1 = unsent)."""
        return self._sent[: self._seq].copy()

    def recorded_until(self) -> int:
        """Absolute frame just past the last recorded sample (-1 before the first cycle)."""
        n = self._cycles
        if n == 0:
            return -1
        return int(self._stamps[(n - 1) % self._slots]) + self.period

    def wait_until(self, frame: int, timeout: float = 10.0) -> None:
        """Block until the recording covers every frame before `frame`."""
        deadline = time.monotonic() + timeout
        while (reached := self.recorded_until()) < frame:
            self._check_alive()
            if time.monotonic() > deadline:
                raise RigError(f"recording reached frame {reached}, not {frame}, within {timeout} s")
            # Sleep most of the remaining time in one go: every wake-up takes the GIL that the
            # process callback needs, so poll rarely until the end is near.
            remaining = (frame - reached) / self.rate if reached >= 0 else 0.0
            time.sleep(max(0.002, remaining - 0.01))

    def _check_alive(self) -> None:
        if self._shutdown is not None:
            raise RigError(f"JACK shut the rig down: {self._shutdown}")

    # -------------------------------------------------------------------- recording
    def recording(self, since_frame: int | None = None) -> tuple[int, np.ndarray]:
        """(start_frame, audio[frames, channels] float32) for the recorded span, from the oldest
        period still in the ring (or the period containing `since_frame`) to the newest.

        Raises RigGap if the rig missed a cycle inside that span."""
        self._check_alive()
        n = self._cycles
        count = min(n, self._slots)
        if count == 0:
            return 0, np.zeros((0, self.channels), dtype=np.float32)
        idx = (np.arange(n - count, n) % self._slots)
        audio = self._audio[idx].copy()
        stamps = self._stamps[idx].copy()
        # The callback may have overwritten the oldest slots while we copied: drop those.
        # (cycle c's slot is rewritten by cycle c + slots, which may be under way: c <= n2 - slots)
        overwritten = max(0, self._cycles - self._slots - (n - count) + 1)
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
        steps = np.diff(stamps)
        if len(steps) and not np.all(steps == self.period):
            bad = int(np.argmax(steps != self.period))
            raise RigGap(f"recording discontinuous after frame {int(stamps[bad])}: next period "
                         f"starts at {int(stamps[bad + 1])} (period {self.period}); xruns={self.xruns}"
                         f" (pass since_frame= to look only at the span you measured)")
        # [periods, channels, period] -> [frames, channels]
        flat = audio.transpose(0, 2, 1).reshape(-1, self.channels)
        return int(stamps[0]), flat


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
