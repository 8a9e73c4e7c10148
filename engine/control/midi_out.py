"""MIDI out: the band's parts on external synths, and MIDI clock (control side).

`MidiOut` sits between the scheduler and the engine (`Session._send`): each note row of a part
routed in config [midi_out] becomes a MIDI message stamped with the same sample time; with
`internal = false` the part's own instrument gets none of its notes. It also makes MIDI clock
(24 ticks per quarter note, at the exact samples of the session's Clock: a tempo change moves
only ticks not yet scheduled), Start at the session's start, Stop at its end, and Song
Position Pointer + Continue when the clock is switched on mid-song.

Messages are engine rows (engine.rt.events K_MIDI_OUT: time, part, order, packed message,
generation) handed to a sink:
  * `EngineSink` (JACK-native driver): into the scheduler queue; the render applies each at its
    sample and the JACK callback writes it to the `midi_out` port at its frame offset in the
    period: sample-accurate, whatever Python is doing (late ones go out at offset 0, counted);
  * `RtMidiSender` (any other driver): a thread that sends each message when the wall clock
    reaches its sample time (the audio thread's (sample, CLOCK_MONOTONIC ns) anchor), plus a
    fixed delay (the stream's output latency, so MIDI and audio leave together). Its jitter is
    the sender thread's wake-up (tens of microseconds idle, up to a GIL switch interval or
    more on a busy host) plus the anchor's (the callback's start time wanders by up to a block
    on PortAudio), plus the MIDI API's own (rtmidi's JACK backend delivers at the start of the
    next JACK period: up to one period);
  * `CaptureSink`: keeps the messages (tests, and offline runs that want the list).

MIDI thru (config [midi_out] thru): the player's notes, aftertouch, controls and pitch bend
are echoed to the same port (on their own channel, or all on `thru_channel`), except the
controls the MIDI mapping binds (those are bandmate's; mapping.Mapper.binds_cc). On the
JACK-native driver the callback itself echoes them, each at its frame offset one period
later (engine.rt.callbacks); elsewhere `Thru.feed` sends them through the sink at once (the
rtmidi sender: as soon as Python reads them). Either way the notes and sustain it leaves
sounding are tracked and ended by a panic, a stop (`cut_all`), the end, or their source going
away.

No stuck notes: every note sent is tracked until its note-off's time. `cut` (the session's
release_all and panic, a re-route, the end) drops that part's messages still queued (a new
generation: the engine and the sender skip older ones) and sends at once a note-off for every
note that may sound, then All Notes Off (CC 123) on the channels used.
"""
from __future__ import annotations

import heapq
import threading
import time
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from engine.parts import DRUMS, PART_INDEX, PARTS
from engine.rt.events import (
    A, ASAP, B, C, EVENT_WIDTH, K_MIDI_OUT, K_MIDI_OUT_CUT, K_NOTE_OFF, K_NOTE_ON, KIND, PART,
    TIME,
)
from engine.rt import layout as L
from engine.rt.layout import NPARTS

CLOCK_PART = -1
"""The PART of clock and transport messages: first at equal times (Start before the notes of
the first beat); a cut of the parts never touches them. (Its generation is the last entry.)"""
PPQN = 24
TICK, START, CONTINUE, STOP, SONG_POSITION = 0xF8, 0xFA, 0xFB, 0xFC, 0xF2
ALL_NOTES_OFF_CC = 123
VIRTUAL_PORT_NAME = "bandmate out"
# order of messages at one sample (the engine sorts by time, part, then this, then arrival):
# song position, then Start/Continue, then the tick they announce, then Stop; note-offs and
# controls before note-ons
_ORDER = {SONG_POSITION: 0.0, START: 1.0, CONTINUE: 1.0, TICK: 2.0, STOP: 3.0}


def pack(status: int, data1: int = 0, data2: int = 0) -> int:
    """A message as the engine rows carry it: status | data1 << 8 | data2 << 16."""
    return status | (data1 & 0x7F) << 8 | (data2 & 0x7F) << 16


def unpack(msg: int) -> bytes:
    """The message's bytes (as many as its status has)."""
    status = msg & 0xFF
    hi = status & 0xF0
    size = 2 if hi in (0xC0, 0xD0) or status in (0xF1, 0xF3) else \
        3 if hi < 0xF0 or status == SONG_POSITION else 1
    return bytes([status, (msg >> 8) & 0x7F, (msg >> 16) & 0x7F][:size])


@dataclass(frozen=True, slots=True)
class Route:
    """Where a part plays: MIDI `channel` (1..16) on the MIDI out port; `internal` keeps its
    own instrument playing too."""
    channel: int
    internal: bool = True


def routes_from_config(section: dict) -> dict[int, Route]:
    """{part index: Route} from a validated [midi_out] section (unrouted parts left out)."""
    return {PART_INDEX[p]: Route(section[p]["channel"], section[p]["internal"])
            for p in PARTS if section.get(p)}


def wanted(cfg: dict) -> bool:
    """Whether config [midi_out] asks for a MIDI out port (a part routed, the clock, thru)."""
    section = cfg.get("midi_out", {})
    return bool(section.get("clock")) or bool(section.get("thru")) or \
        bool(routes_from_config(section))


class CaptureSink:
    """Keeps every row sent, in order, and the cuts (tests; offline)."""

    def __init__(self):
        self.rows: list[np.ndarray] = []
        self.cuts: list[tuple[int, int, float]] = []     # (part, generation, sample)

    def send(self, rows: np.ndarray) -> None:
        self.rows.extend(np.array(r) for r in rows)

    def cut(self, part: int, generation: int, time: float, at: int) -> None:
        self.cuts.append((part, generation, at))

    def messages(self) -> list[tuple[float, bytes]]:
        """(sample time, bytes) of every message a cut leaves, in the engine's order (time,
        part, order, arrival); ASAP ones (-1) at the sample of the cut that sent them."""
        rows = []
        for i, r in enumerate(self.rows):
            t = float(r[TIME])
            if t == ASAP:
                t = max((at for p, g, at in self.cuts if p == int(r[PART]) and g == r[C]),
                        default=0.0)
            if any(p == int(r[PART]) and r[C] < g and t >= at for p, g, at in self.cuts):
                continue
            rows.append((t, r[PART], r[A], i, r))
        rows.sort(key=lambda k: k[:4])
        return [(t, unpack(int(r[B]))) for t, *_, r in rows]


class EngineSink:
    """JACK-native: the rows go to the audio thread with the band's (the scheduler queue)."""

    def __init__(self, state):
        self.state = state

    def thru(self, channel: int | None) -> None:
        """MIDI thru in the JACK callback: off (None), each message on its own channel (0),
        or all on `channel` (1..16)."""
        self.state.ctl[L.C_THRU] = 0 if channel is None else (17 if channel == 0 else channel)

    def release_thru(self) -> None:
        """Ask the callback to end every note (and the sustain) thru left sounding."""
        self.state.ctl[L.C_THRU_REQ] += 1

    def send(self, rows: np.ndarray) -> None:
        from engine.control.state import QueueFull
        if self.state.push_sched_rows(rows) != len(rows):
            raise QueueFull("the audio thread is not draining the scheduler queue")

    def cut(self, part: int, generation: int, time: float, at: int) -> None:
        self.state.push_sched(time, K_MIDI_OUT_CUT, part, -1.0, 0.0, float(generation))


class MidiOut:
    """Routes the scheduler's note rows and makes the clock (see the module docstring).

    Runs on the session's thread (asyncio loop / offline loop). `sink` may be set later
    (`attach`); until then messages are tracked and dropped."""

    def __init__(self, clock, sample_rate: int, routes: dict[int, Route], clock_out: bool = False,
                 drum_gate_ms: float = 50.0, lookahead: int = 0, sink=None, now=None,
                 thru: "Thru | None" = None):
        self.clock = clock
        self.thru = thru                     # MIDI thru (config [midi_out] thru), or None
        self.sample_rate = int(sample_rate)
        self.routes = dict(routes)
        self.clock_out = clock_out
        self.drum_gate = max(1, round(drum_gate_ms * 1e-3 * self.sample_rate))
        self.lookahead = int(lookahead)
        self.sink = sink
        self.now = now or (lambda: 0)        # the engine's next block's sample time
        self.generation = [0] * (NPARTS + 1)
        self._ends: list[dict] = [dict() for _ in range(NPARTS)]   # part: (ch, note) -> end
        self._channels: list[set] = [set() for _ in range(NPARTS)]
        self._tick = 0                       # next clock tick to schedule (its index)
        self._now = 0                        # the latest `now` the band was scheduled from
        self._running = False                # Start/Continue sent, Stop not
        self._position: int | None = 0       # tick where the clock (re)starts; None: off
        self.sent = 0

    @classmethod
    def from_config(cls, cfg: dict, clock, sample_rate: int, lookahead: int, now=None):
        """The session's MidiOut, or None when [midi_out] routes nothing and has no clock."""
        if not wanted(cfg):
            return None
        section = cfg["midi_out"]
        thru = Thru(section["thru_channel"]) if section["thru"] else None
        return cls(clock, sample_rate, routes_from_config(section), section["clock"],
                   section["drum_gate_ms"], lookahead, now=now, thru=thru)

    def attach(self, sink) -> None:
        self.sink = sink
        if self.thru is not None:
            self.thru.attach(sink)

    # ---- the band's notes ------------------------------------------------------------------
    def route_rows(self, rows: np.ndarray) -> np.ndarray:
        """The scheduler's rows: routed parts' notes become MIDI out messages (sent); returns
        the rows the internal instruments still play."""
        if not self.routes:
            return rows
        out, keep = [], np.ones(len(rows), bool)
        for i, row in enumerate(rows):
            kind, part = int(row[KIND]), int(row[PART])
            route = self.routes.get(part)
            if route is None or kind not in (K_NOTE_ON, K_NOTE_OFF):
                continue
            keep[i] = route.internal
            t, note = int(row[TIME]), int(round(row[A])) & 0x7F
            ch = route.channel - 1
            if kind == K_NOTE_ON:
                velocity = min(max(round(float(row[B]) * 127), 1), 127)
                out.append(self._row(t, part, 1.0, pack(0x90 | ch, note, velocity)))
                self._sounding(part, ch, note, t)
                if part == DRUMS:        # the band's drums have no note-off: a short gate
                    out.append(self._row(t + self.drum_gate, part, 0.0, pack(0x80 | ch, note)))
                    self._sounding(part, ch, note, t + self.drum_gate)
            else:
                out.append(self._row(t, part, 0.0, pack(0x80 | ch, note)))
                self._sounding(part, ch, note, t)
        self._send(out)
        return rows[keep]

    def _sounding(self, part: int, ch: int, note: int, t: int) -> None:
        ends = self._ends[part]
        ends[(ch, note)] = max(ends.get((ch, note), t), t)
        self._channels[part].add(ch)

    def _row(self, t: float, part: int, order: float, msg: int) -> np.ndarray:
        row = np.zeros(EVENT_WIDTH)
        row[:6] = (t, K_MIDI_OUT, part, order, msg, self.generation[part])
        return row

    def _send(self, rows: list) -> None:
        if not rows:
            return
        self.sent += len(rows)
        if self.sink is not None:
            self.sink.send(np.array(rows))

    # ---- no stuck notes --------------------------------------------------------------------
    def cut(self, part: int, at: int | None = None) -> None:
        """From sample `at` (None: at once, from the next block), drop `part`'s messages still
        queued; note-offs for every note that may sound then, and All Notes Off on its
        channels."""
        self.generation[part] += 1
        now = self.now()
        when = now if at is None else max(int(at), now)
        t = ASAP if when == now else when
        if self.sink is not None:       # (the time to apply it; its sample)
            self.sink.cut(part, self.generation[part], t, when)
        out = [self._row(t, part, 0.0, pack(0x80 | ch, note))
               for (ch, note), end in sorted(self._ends[part].items()) if end >= when]
        out += [self._row(t, part, 0.0, pack(0xB0 | ch, ALL_NOTES_OFF_CC))
                for ch in sorted(self._channels[part])]
        for key in [k for k, end in self._ends[part].items() if end >= when]:
            del self._ends[part][key]
        self._send(out)

    def cut_all(self, at: int | None = None) -> None:
        """Every routed part (the session's release_all and panic: at once), and every note
        MIDI thru left sounding (at once)."""
        for part in range(NPARTS):
            if self._channels[part] or part in self.routes:
                self.cut(part, at)
        if self.thru is not None:
            self.thru.release()

    def reroute(self, part: str | int, route: Route | None) -> None:
        """Play `part` on another channel, or internally only (None): its notes on the old
        channel are ended first."""
        p = PART_INDEX[part] if isinstance(part, str) else int(part)
        self.cut(p)
        self._channels[p].clear()
        if route is None:
            self.routes.pop(p, None)
        else:
            self.routes[p] = route

    def prune(self) -> None:
        """Forget notes whose note-off has gone out (keeps the tracking small)."""
        now = self.now()
        for ends in self._ends:
            for key in [k for k, end in ends.items() if end < now]:
                del ends[key]

    # ---- clock --------------------------------------------------------------------------------
    def advance(self, now: int, cursor: Fraction | None = None) -> None:
        """Schedule the clock's ticks up to the scheduler's horizon (`now` + look-ahead, never
        past `cursor`, the beat up to which the band is scheduled: a tempo change starts after
        it, so no tick sent ever moves)."""
        self._now = max(self._now, now)
        self.prune()
        if not self.clock_out or self._position is None:
            return
        end = self.clock.beat_at(now + self.lookahead)
        if cursor is not None:
            end = min(end, cursor)
        out = []
        while Fraction(self._tick, PPQN) < end:
            t = self.clock.sample_at(Fraction(self._tick, PPQN))
            if not self._running:
                if self._tick == 0:
                    out.append(self._row(t, CLOCK_PART, _ORDER[START], pack(START)))
                else:
                    sixteenths = self._tick // (PPQN // 4)
                    out.append(self._row(t, CLOCK_PART, _ORDER[SONG_POSITION],
                                         pack(SONG_POSITION, sixteenths & 0x7F,
                                              sixteenths >> 7)))
                    out.append(self._row(t, CLOCK_PART, _ORDER[CONTINUE], pack(CONTINUE)))
                self._running = True
            out.append(self._row(t, CLOCK_PART, _ORDER[TICK], pack(TICK)))
            self._tick += 1
        self._send(out)

    def stop_clock(self) -> None:
        """Stop, at the sample of the first tick not yet scheduled (after every tick sent)."""
        if not self._running:
            self._position = None
            return
        t = self.clock.sample_at(Fraction(self._tick, PPQN))
        self._send([self._row(t, CLOCK_PART, _ORDER[STOP], pack(STOP))])
        self._running = False
        self._position = None

    def start_clock(self, at_beat: Fraction | None = None) -> None:
        """Switch the clock on (again): from the next sixteenth note not yet scheduled (or the
        one at or after `at_beat`), with its Song Position Pointer and Continue (Start at the
        session's very start)."""
        self.clock_out = True
        if self._position is not None:
            return
        step = PPQN // 4
        horizon = self.clock.beat_at(max(self.now(), self._now) + self.lookahead) * PPQN
        if at_beat is not None:
            horizon = max(horizon, Fraction(at_beat) * PPQN)
        first = max(self._tick, -(-horizon.numerator // horizon.denominator))
        self._tick = -(-first // step) * step
        self._position = self._tick


_THRU_TYPES = {0x80, 0x90, 0xA0, 0xB0, 0xD0, 0xE0}
"""What thru echoes: notes, aftertouch, controls, pitch bend (not program change: bandmate's
own patch control)."""


class Thru:
    """MIDI thru (see the module docstring). `channel`: 0 each message on its own channel,
    1..16 all on that one. `feed` from the MIDI reader thread, `release` from any thread."""

    def __init__(self, channel: int = 0):
        if not 0 <= int(channel) <= 16:
            raise ValueError(f"thru channel {channel} is outside 0..16")
        self.channel = int(channel)
        self.sink = None
        self._native = False        # the JACK callback echoes (EngineSink): feed does nothing
        self._lock = threading.Lock()
        self._held: dict[int, set] = {}     # source -> {(channel 0..15, note)} sounding
        self._pedal: dict[int, set] = {}    # source -> {channel 0..15} with sustain down
        self.sent = 0

    def attach(self, sink) -> None:
        self.sink = sink
        native = getattr(sink, "thru", None)
        self._native = native is not None
        if native is not None:
            native(self.channel)

    def feed(self, data, source: int) -> None:
        """Echo one complete message `data` (bytes) of `source` (anything else is ignored)."""
        if self.sink is None or self._native or len(data) < 2:
            return
        status = int(data[0])
        hi = status & 0xF0
        if hi not in _THRU_TYPES or len(data) < (3 if hi != 0xD0 else 2):
            return
        ch = status & 0x0F if self.channel == 0 else self.channel - 1
        d1, d2 = int(data[1]) & 0x7F, int(data[2]) & 0x7F if len(data) > 2 else 0
        with self._lock:
            held = self._held.setdefault(source, set())
            if hi == 0x90 and d2 > 0:
                held.add((ch, d1))
            elif hi in (0x80, 0x90):
                held.discard((ch, d1))
            elif hi == 0xB0 and d1 == 64:
                pedal = self._pedal.setdefault(source, set())
                if d2 >= 64:
                    pedal.add(ch)
                else:
                    pedal.discard(ch)
            elif hi == 0xB0 and d1 in (120, 123):
                held -= {k for k in held if k[0] == ch}
            self._send([pack(hi | ch, d1, d2)])

    def release(self, source: int | None = None) -> None:
        """End what thru left sounding (of `source`, None: of every source): sustain up, then
        a note-off for each held note. On the JACK callback's thru: it does so itself."""
        native = getattr(self.sink, "release_thru", None)
        if native is not None:
            native()
            return
        with self._lock:
            sources = list(self._held.keys() | self._pedal.keys()) if source is None \
                else [source]
            msgs = []
            for src in sources:
                msgs += [pack(0xB0 | ch, 64, 0) for ch in sorted(self._pedal.pop(src, ()))]
                msgs += [pack(0x80 | ch, note) for ch, note in sorted(self._held.pop(src, ()))]
            self._send(msgs)

    def _send(self, msgs: list[int]) -> None:
        """(under the lock) Rows for the sink, at once (ASAP), in this order."""
        if not msgs or self.sink is None:
            return
        rows = np.zeros((len(msgs), EVENT_WIDTH))
        rows[:, TIME], rows[:, KIND], rows[:, PART] = ASAP, K_MIDI_OUT, CLOCK_PART
        rows[:, B] = msgs
        self.sink.send(rows)
        self.sent += len(msgs)


def transport(midi_out: MidiOut | None, playing: bool, beat: Fraction, sample: int,
              clock: bool) -> None:
    """`/transport/playing` changed (engine.control.session): stopping ends every routed
    part's notes at `sample` and stops the clock; starting (at `beat`, a bar) resumes the
    clock there with Song Position Pointer and Continue (when config [midi_out] has it on)."""
    if midi_out is None:
        return
    if not playing:
        midi_out.cut_all(at=sample)
        midi_out.stop_clock()
    elif clock:
        midi_out.start_clock(at_beat=beat)


class RtMidiSender:
    """Sends MIDI out rows on an rtmidi output port at their sample times' wall-clock times
    (see the module docstring for its jitter). One thread; `send` and `cut` from any one
    other thread."""

    def __init__(self, port, state, delay_s: float = 0.0, anchor=None, log=print):
        self.port = port                  # has send_message(list[int]) (rtmidi.MidiOut)
        self.state = state
        self.sample_rate = state.sample_rate
        self.delay_ns = int(delay_s * 1e9)
        self._anchor = anchor or state.sample_clock
        self._log = log
        self._heap: list = []
        self._seq = 0
        self._cuts: list[tuple[int, int, float]] = []     # (part, generation, sample)
        self._cond = threading.Condition()
        self._stop = False
        # sent; late: sent over 1 ms after its time; behind: handed over after its time (the
        # session's thread was late: it goes out at once, maybe after a later one); cut; errors
        self.stats = {"sent": 0, "late": 0, "behind": 0, "cut": 0, "errors": 0}
        self.lateness_ns: list[int] = []   # how late each message went out (wall clock)
        self._thread = threading.Thread(target=self._run, name="bandmate-midi-out", daemon=True)
        self._thread.start()

    def send(self, rows: np.ndarray) -> None:
        now = time.monotonic_ns()
        with self._cond:
            for r in rows:
                due = self._due_ns(float(r[TIME]))
                if due and due < now:
                    self.stats["behind"] += 1
                heapq.heappush(self._heap, (float(r[TIME]), float(r[PART]), float(r[A]),
                                            self._seq, int(r[B]), float(r[C])))
                self._seq += 1
            self._cond.notify()

    def cut(self, part: int, generation: int, time: float, at: int) -> None:
        with self._cond:
            self._cuts.append((part, generation, at))
            self._cond.notify()

    def _due_ns(self, t: float) -> int | None:
        if t == ASAP:
            return 0
        anchor = self._anchor()
        if anchor is None:
            return None
        sample, ns = anchor
        return ns + round((t - sample) * 1e9 / self.sample_rate) + self.delay_ns

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stop:
                    return
                if not self._heap:
                    self._cond.wait(0.1)
                    continue
                t, part, _, _, msg, gen = self._heap[0]
                if any(p == part and gen < g and t >= at for p, g, at in self._cuts):
                    heapq.heappop(self._heap)
                    self.stats["cut"] += 1
                    continue
                due = self._due_ns(t)
                now = time.monotonic_ns()
                if due is None or due > now:
                    self._cond.wait(0.005 if due is None else min((due - now) * 1e-9, 0.1))
                    continue
                heapq.heappop(self._heap)
            late = now - due if due else 0
            try:
                self.port.send_message(list(unpack(msg)))
                self.stats["sent"] += 1
                if due:
                    self.lateness_ns.append(late)
                    if late > 1_000_000:
                        self.stats["late"] += 1
            except Exception as exc:  # noqa: BLE001 - a port gone: counted, the band plays on
                self.stats["errors"] += 1
                if self.stats["errors"] == 1:
                    self._log(f"MIDI out: {exc}")

    def pending(self) -> int:
        with self._cond:
            return len(self._heap)

    def close(self, drain_s: float = 0.5) -> None:
        """Send what is due within `drain_s` (the end's note-offs), then stop the thread."""
        deadline = time.monotonic() + drain_s
        while self.pending() and time.monotonic() < deadline:
            time.sleep(0.005)
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(timeout=2.0)


def open_rtmidi_out(api: str = "auto", port: str = "", client_name: str = "bandmate"):
    """An open rtmidi output: the port whose name is `port` (exactly, else the one containing
    it), or with `port` empty a virtual port "bandmate out" other programs connect to. Raises
    MidiUnavailable with what was tried."""
    from controllers.midi_in import (_RTMIDI_API_ATTR, MidiUnavailable, _compiled_apis,
                                     _platform_apis)
    import os

    import rtmidi
    candidates = _platform_apis() if api == "auto" else (api,)
    tried = []
    for name in candidates:
        if name not in _compiled_apis():
            tried.append(f"{name}: not compiled into python-rtmidi")
            continue
        if name == "alsa" and not os.path.exists("/dev/snd/seq"):
            tried.append("alsa: no ALSA sequencer")
            continue
        try:
            out = rtmidi.MidiOut(getattr(rtmidi, _RTMIDI_API_ATTR[name]), name=client_name)
        except Exception as exc:  # noqa: BLE001 - rtmidi.SystemError: e.g. no JACK server
            tried.append(f"{name}: {exc}")
            continue
        if not port:
            out.open_virtual_port(VIRTUAL_PORT_NAME)
            return out
        names = out.get_ports()
        exact = [i for i, n in enumerate(names) if n == port]
        some = exact or [i for i, n in enumerate(names) if port.lower() in n.lower()]
        if len(some) == 1:
            out.open_port(some[0])
            return out
        out.delete()
        what = "matches several ports" if some else "matches no port"
        tried.append(f"{name}: {port!r} {what} ({', '.join(names) or 'none'})")
    raise MidiUnavailable("no MIDI output (" + "; ".join(tried) + ")")
