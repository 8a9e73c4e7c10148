"""The engine's sink for controllers: MIDI messages → timestamped events (control side).

`feed` runs on whichever thread delivered the message (the MIDI reader thread, the asyncio
thread for the computer keyboard). It gives the message a sample time and pushes one event to
the MIDI queue:
- latency mode "asap": the event applies at the start of the next block (lowest latency, but
  the offset within the block is lost: jitter up to a block, plus however late Python reads it);
- latency mode "fixed": the event plays a constant `fixed_latency_ms` after the moment the MIDI
  backend received it, at its own sample. That moment comes from the backend's own time stamp
  (`at`: rtmidi's delta times, measured on its backend thread, summed per port and mapped onto
  the audio clock by `engine.control.midi_time.PortTimeline`), so a busy Python thread delays
  when the message is read but not where it lands, as long as it is read within the fixed
  delay; read later than that, it plays at once and counts as late. The jitter left is the
  backend's: ALSA's sequencer stamps each event; rtmidi's JACK backend stamps all events of one
  JACK cycle with the same time, so through it the jitter is up to one JACK period. Sources
  without a backend stamp (the computer keyboard) are stamped on arrival: their jitter is
  Python's. The JACK driver's own MIDI input is read in the compiled callback and needs none of
  this.
Several controller threads may feed at once: they serialise on a lock among themselves (the
audio thread never takes it), so the queue keeps a single producer, as scsynth does.

Player notes also go to the conductor (`on_note(kind, note, velocity, time, source)`, and
`on_gone(source)`) for chord detection and recording.

The arpeggiator (engine.agents.arp): while `divert(channel)` says so, the keys part's messages
of that MIDI channel do not reach the engine; their notes go to `on_arp(kind, note, velocity,
time, source)` (the session arpeggiates them on the band's clock) instead of `on_note`, and a
note-off follows its note-on wherever that went, so no note sticks when the arpeggiator is
switched while keys are down.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

import mido

from engine.control.midi_time import PortTimeline
from engine.control.state import EngineState
from engine.parts import KEYS
from engine.rt.events import (
    ASAP, K_AFTERTOUCH, K_ALL_NOTES_OFF, K_MOD_WHEEL, K_NOTE_OFF, K_NOTE_ON, K_PITCH_BEND,
    K_SOURCE_GONE, K_SUSTAIN,
)


def message_event(msg: mido.Message) -> tuple[int, float, float] | None:
    """(kind, a, b) for a player's message, or None when it is not one the engine plays. A
    pitch bend is -1..1: each part's instrument scales it by its own bend range."""
    t = msg.type
    if t == "note_on" and msg.velocity > 0:
        return K_NOTE_ON, float(msg.note), msg.velocity / 127.0
    if t in ("note_on", "note_off"):
        return K_NOTE_OFF, float(msg.note), 0.0
    if t == "pitchwheel":
        return K_PITCH_BEND, 0.0, max(msg.pitch, -8191) / 8191.0
    if t == "aftertouch":
        return K_AFTERTOUCH, 0.0, msg.value / 127.0
    if t == "control_change":
        if msg.control == 64:
            return K_SUSTAIN, 0.0, 1.0 if msg.value >= 64 else 0.0
        if msg.control == 1:
            return K_MOD_WHEEL, 0.0, msg.value / 127.0
        if msg.control in (120, 123):
            return K_ALL_NOTES_OFF, 0.0, 0.0
    return None


class LiveInput:
    """Implements `controllers.base.Sink` over an EngineState's MIDI queue.

    `clock` (tests) returns the audio clock now, in samples, or None before audio runs; by
    default it is read from the audio thread's last block (`EngineState.sample_clock`)."""

    def __init__(self, state: EngineState, mode: str = "fixed", fixed_latency_ms: float = 5.0,
                 part: int = KEYS,
                 on_note: Callable[[int, int, float, int, int], None] | None = None,
                 on_gone: Callable[[int], None] | None = None,
                 log: Callable[[str], None] = print,
                 clock: Callable[[], float | None] | None = None,
                 on_realtime: Callable[[int, int, int], None] | None = None):
        if mode not in ("asap", "fixed"):
            raise ValueError("latency mode must be 'asap' or 'fixed'")
        self.state = state
        self.mode = mode
        self.offset = round(fixed_latency_ms * 1e-3 * state.sample_rate)
        self.part = part
        self.on_note = on_note
        self.on_gone = on_gone
        self.on_realtime = on_realtime
        self._log = log
        self._clock = clock if clock is not None else self._audio_clock
        self._lock = threading.Lock()
        self.timelines: dict[int, PortTimeline] = {}   # per source with backend stamps
        self.dropped = 0
        # an engine.control.mapping.Mapper: routes notes (splits, layers, channels) and turns
        # mapped controls into parameter changes; None: every note to `part`, as before
        self.mapper = None
        # the arpeggiator's input (see the module's docstring); None: nothing diverted
        self.divert: Callable[[int], bool] | None = None
        self.on_arp: Callable[[int, int, float, int, int], None] | None = None
        self._diverted: set[tuple[int, int, int]] = set()   # (source, channel, note) keys
        # MIDI thru (engine.control.midi_out.Thru, config [midi_out] thru): the player's
        # messages echoed to MIDI out, the mapper's controls excepted; None: off
        self.thru = None

    def _audio_clock(self) -> float | None:
        anchor = self.state.sample_clock()
        if anchor is None:
            return None
        sample, ns = anchor
        return sample + (time.monotonic_ns() - ns) * 1e-9 * self.state.sample_rate

    def now_sample(self) -> int | None:
        """The audio clock now, from the last block's (sample, ns) pair; None before audio runs."""
        now = self._clock()
        return None if now is None else round(now)

    def stamp(self, source: int | None = None, at: float | None = None) -> float:
        """The sample time for a message of `source` the backend stamped `at` (None: unstamped,
        so stamped now)."""
        if self.mode == "asap":
            return ASAP
        now = self._clock()
        if now is None:
            return ASAP
        if at is None:
            return float(round(now) + self.offset)
        timeline = self.timelines.get(source)
        if timeline is None:
            timeline = self.timelines[source] = PortTimeline(self.state.sample_rate)
        # a time already past plays at the start of the next block and counts as late there
        return float(round(timeline.place(at, now)) + self.offset)

    def feed(self, msg: mido.Message, source: int, at: float | None = None) -> None:
        if self.thru is not None and not (
                msg.type == "control_change" and self.mapper is not None
                and self.mapper.binds_cc(msg.channel + 1, msg.control)):
            self.thru.feed(msg.bytes(), source)
        if self.mapper is not None:
            self._feed_mapped(msg, source, at)
            return
        ev = message_event(msg)
        if ev is None:
            return
        kind, a, b = ev
        ch = getattr(msg, "channel", 0) + 1
        with self._lock:
            t = self.stamp(source, at)
            to_arp = self.part == KEYS and self._to_arp(kind, source, ch, int(a))
            if not to_arp or kind == K_ALL_NOTES_OFF:
                if not self.state.push_midi(t, kind, self.part, a, b, float(source)):
                    self.dropped += 1
                    return
        if to_arp:
            self._arp(kind, int(a), b, t, source)
        elif self.on_note is not None and kind in (K_NOTE_ON, K_NOTE_OFF):
            when = int(t) if t != ASAP else (self.now_sample() or 0)
            self.on_note(kind, int(a), b, when, source)

    def _to_arp(self, kind: int, source: int, ch: int, note: int) -> bool:
        """Whether a keys-part event goes to the arpeggiator (under the lock): a note-on while
        `divert(ch)`, a note-off when its note-on did, all notes off when any key of that
        channel is with it (the engine gets that one too), anything else while `divert`."""
        key = (source, ch, note)
        if kind == K_NOTE_OFF:
            if key in self._diverted:
                self._diverted.discard(key)
                return True
            return False
        divert = self.divert is not None and bool(self.divert(ch))
        if kind == K_NOTE_ON:
            if divert:
                self._diverted.add(key)
            else:
                self._diverted.discard(key)
            return divert
        if kind == K_ALL_NOTES_OFF:
            mine = {k for k in self._diverted if k[:2] == (source, ch)}
            self._diverted -= mine
            return divert or bool(mine)
        return divert

    def _arp(self, kind: int, note: int, velocity: float, t: float, source: int) -> None:
        if self.on_arp is not None and kind in (K_NOTE_ON, K_NOTE_OFF, K_ALL_NOTES_OFF):
            when = int(t) if t != ASAP else (self.now_sample() or 0)
            self.on_arp(kind, note, velocity, when, source)

    def _feed_mapped(self, msg: mido.Message, source: int, at: float | None) -> None:
        """Through the mapper: one message may become events for several parts (layers), all
        stamped with one time; mapped controls never reach the engine's MIDI queue."""
        ch = getattr(msg, "channel", 0) + 1
        arp = []
        with self._lock:
            events = self.mapper.events(msg, source)
            if not events:
                return
            t = self.stamp(source, at)
            for kind, part, a, b in events:
                if part == KEYS and self._to_arp(kind, source, ch, int(a)):
                    arp.append((kind, int(a), b))
                    if kind != K_ALL_NOTES_OFF:
                        continue
                if not self.state.push_midi(t, kind, part, a, b, float(source)):
                    self.dropped += 1
        for kind, a, b in arp:
            self._arp(kind, a, b, t, source)
        if any(kind != K_ALL_NOTES_OFF for kind, _, _ in arp):
            return              # the arpeggiator's notes reach the conductor through it
        if self.on_note is not None and msg.type in ("note_on", "note_off"):
            kind = K_NOTE_ON if msg.type == "note_on" and msg.velocity > 0 else K_NOTE_OFF
            when = int(t) if t != ASAP else (self.now_sample() or 0)
            velocity = min(msg.velocity / 127.0, 1.0) if kind == K_NOTE_ON else 0.0
            self.on_note(kind, msg.note, velocity, when, source)

    def realtime(self, status: int, data: int, source: int, at: float | None = None) -> None:
        """A MIDI clock byte (0xF8/0xFA/0xFB/0xFC, or 0xF2 with the song position in `data`)
        from `source`: placed on the audio clock at the backend's stamp (the port's timeline,
        without the fixed latency: a clock follower wants when it happened) and handed to
        `on_realtime(status, data, sample_time)`. Before audio runs there is no clock: dropped."""
        if self.on_realtime is None:
            return
        with self._lock:
            now = self._clock()
            if now is None:
                return
            if at is None:
                t = now
            else:
                timeline = self.timelines.get(source)
                if timeline is None:
                    timeline = self.timelines[source] = PortTimeline(self.state.sample_rate)
                t = timeline.place(at, now)
        self.on_realtime(status, data, round(t))

    def source_gone(self, source: int) -> None:
        with self._lock:
            if self.mapper is not None:
                self.mapper.source_gone(source)
            self._diverted = {k for k in self._diverted if k[0] != source}
            self.state.push_midi(ASAP, K_SOURCE_GONE, -1, 0.0, 0.0, float(source))
            self.timelines.pop(source, None)
        if self.thru is not None:
            self.thru.release(source)
        if self.on_gone is not None:
            self.on_gone(source)
        self._log(f"MIDI source {source} gone: its notes released")

    def log(self, text: str) -> None:
        self._log(text)
