"""Standard MIDI files in and out (control side, offline; nothing here is real-time).

read_performance(path)  -> [(seconds from start, mido.Message)]   to play a file to the engine
read_notes(path)        -> [NoteRecord]                           paired notes, one part per track
write_performance(path, notes, tempo_bpm)                         a session's notes -> type-1 file

Notes are records (start_s, dur_s, part, note, velocity) with velocity 0..1 (the engine's scale);
a file gets one track per part, named after the part, drums on MIDI channel 10.
"""
from __future__ import annotations

import bisect
import os
from collections import defaultdict, deque
from typing import Iterable, NamedTuple

import mido

from controllers.base import DEFAULT_ACCEPT
from engine.parts import PARTS

DRUM_CHANNEL = 9  # MIDI channel 10
# General MIDI programs (0-based) for the parts, so a file sounds sensible in any GM player.
PROGRAMS = {
    "keys": 0,     # Acoustic Grand Piano
    "bass": 33,    # Electric Bass (finger)
    "chords": 89,  # Pad 2 (warm)
    "lead": 81,    # Lead 2 (sawtooth)
    "drums": 0,    # Standard kit (on channel 10)
}
DEFAULT_PROGRAM = 0
DEFAULT_TEMPO_US = 500_000  # 120 bpm, the MIDI default until a set_tempo


class MidiFileError(OSError):
    """A MIDI file that is missing, unreadable or broken; the message names the file."""

    def __init__(self, message: str, path: str):
        super().__init__(message)
        self.path = path

    def __str__(self) -> str:
        return self.args[0]


class NoteRecord(NamedTuple):
    start_s: float
    dur_s: float
    part: str
    note: int
    velocity: float  # 0..1


# --- reading ---------------------------------------------------------------------------------


def _load(path) -> tuple[mido.MidiFile, str]:
    p = os.fspath(path)
    try:
        mid = mido.MidiFile(p)
    except FileNotFoundError as exc:
        raise MidiFileError(f"MIDI file not found: {p}", p) from exc
    except (PermissionError, IsADirectoryError) as exc:
        raise MidiFileError(f"cannot read MIDI file {p}: {exc.strerror}", p) from exc
    except Exception as exc:  # mido: OSError('MThd not found...'), EOFError, ValueError, KeyError...
        reason = str(exc) or type(exc).__name__
        raise MidiFileError(f"broken MIDI file {p}: {reason}", p) from exc
    if mid.type == 2:
        raise MidiFileError(f"{p}: type 2 MIDI files (independent sequences) are not supported", p)
    if not 0 < mid.ticks_per_beat < 0x8000:
        raise MidiFileError(f"{p}: SMPTE time division is not supported", p)
    return mid, p


def _tick_to_seconds(mid: mido.MidiFile, tempo_bpm: float | None):
    """A function absolute tick -> seconds, from the file's tempo map (set_tempo events in any
    track) or, with tempo_bpm, from that one tempo (the file's tempo changes are ignored)."""
    tpb = mid.ticks_per_beat
    if tempo_bpm is not None:
        if not tempo_bpm > 0:
            raise ValueError(f"tempo_bpm must be > 0, got {tempo_bpm}")
        s_per_tick = 60.0 / (tempo_bpm * tpb)
        return lambda tick: tick * s_per_tick
    changes = []
    for track in mid.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "set_tempo":
                changes.append((tick, msg.tempo))
    changes.sort(key=lambda c: c[0])  # stable: same tick keeps track order, the last one wins
    starts, offsets_s, tempos = [0], [0.0], [DEFAULT_TEMPO_US]
    for tick, tempo in changes:
        offset = offsets_s[-1] + (tick - starts[-1]) * tempos[-1] / (1e6 * tpb)
        if tick == starts[-1]:
            offsets_s[-1], tempos[-1] = offset, tempo
        else:
            starts.append(tick)
            offsets_s.append(offset)
            tempos.append(tempo)

    def convert(tick: int) -> float:
        i = bisect.bisect_right(starts, tick) - 1
        return offsets_s[i] + (tick - starts[i]) * tempos[i] / (1e6 * tpb)

    return convert


def _normalized(msg: mido.Message) -> mido.Message:
    if msg.type == "note_on" and msg.velocity == 0:  # the same note-off form as live input
        return mido.Message("note_off", channel=msg.channel, note=msg.note, velocity=64)
    return msg.copy(time=0)


def read_performance(path, tempo_bpm: float | None = None,
                     accept: Iterable[str] = DEFAULT_ACCEPT) -> list[tuple[float, mido.Message]]:
    """The file's channel messages of the `accept` types (notes, control changes, pitch wheel,
    aftertouch), all tracks merged, as (seconds from the file's start, message) in time order.

    Times follow the file's tempo map, or the constant `tempo_bpm` when given. Messages have
    time=0 (the time is the tuple's first item); note_on with velocity 0 becomes note_off.
    Raises MidiFileError (an OSError, naming the file) for a missing or broken file.
    """
    mid, _ = _load(path)
    to_s = _tick_to_seconds(mid, tempo_bpm)
    accept = frozenset(accept)
    out: list[tuple[float, mido.Message]] = []
    tick = 0
    for msg in mido.merge_tracks(mid.tracks):
        tick += msg.time
        if msg.type in accept:
            out.append((to_s(tick), _normalized(msg)))
    return out


def read_notes(path, tempo_bpm: float | None = None) -> list[NoteRecord]:
    """The file's notes as records, sorted by (start, part, note). A track's part is its name
    (write_performance names tracks after parts); an unnamed track is "drums" when it plays on
    channel 10, else "track N". Note-offs pair with the earliest open note of the same channel
    and pitch; a note still open at its track's end ends there. Velocity is note_on velocity/127.
    """
    mid, _ = _load(path)
    to_s = _tick_to_seconds(mid, tempo_bpm)
    records: list[NoteRecord] = []
    for index, track in enumerate(mid.tracks):
        name = next((m.name for m in track if m.type == "track_name"), "").strip()
        open_notes: dict[tuple[int, int], deque[tuple[int, int]]] = defaultdict(deque)
        found: list[tuple[int, int, int, int, int]] = []  # start, end tick, channel, note, velocity
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "note_on" and msg.velocity > 0:
                open_notes[msg.channel, msg.note].append((tick, msg.velocity))
            elif msg.type in ("note_off", "note_on"):
                pending = open_notes.get((msg.channel, msg.note))
                if pending:
                    start, vel = pending.popleft()
                    found.append((start, tick, msg.channel, msg.note, vel))
        for (channel, note), pending in open_notes.items():
            found.extend((start, tick, channel, note, vel) for start, vel in pending)
        if not found:
            continue
        if not name:
            name = "drums" if all(f[2] == DRUM_CHANNEL for f in found) else f"track {index}"
        for start, end, _channel, note, vel in found:
            t0 = to_s(start)
            records.append(NoteRecord(t0, to_s(end) - t0, name, note, vel / 127))
    records.sort(key=lambda r: (r.start_s, r.part, r.note))
    return records


# --- writing ---------------------------------------------------------------------------------


def _channels(parts: list[str]) -> dict[str, int]:
    """Fixed channels for the band's parts, whichever are present: keys, bass, chords, lead ->
    channels 1..4 (engine.parts order), drums -> 10; other parts take 5, 6, ... (not 10)."""
    fixed = {p: DRUM_CHANNEL if p == "drums" else i for i, p in enumerate(PARTS)}
    used = set(fixed.values())
    channels: dict[str, int] = {}
    for part in parts:
        if part in fixed:
            channels[part] = fixed[part]
            continue
        free = next((c for c in range(16) if c not in used), None)
        if free is None:
            raise ValueError(f"too many parts for 16 MIDI channels: {parts}")
        channels[part] = free
        used.add(free)
    return channels


def write_performance(path, notes: Iterable[tuple[float, float, str, int, float]],
                      tempo_bpm: float, ticks_per_beat: int = 480) -> None:
    """Write notes (start_s, dur_s, part, note, velocity 0..1) as a type-1 MIDI file.

    Track 0 holds the tempo (tempo_bpm) and a 4/4 time signature; then one track per part
    (engine.parts order, then other parts in order of appearance), named after the part, with a
    General MIDI program change (controllers.midifile.PROGRAMS) and its notes; drums play on
    channel 10. Times are rounded to the nearest tick against the tempo as stored in the file,
    so read_notes() gives back every start and end within half a tick. A note lasts at least one
    tick; velocity is round(v * 127), at least 1. Raises ValueError for bad records and
    MidiFileError (naming the file) when it cannot be written.
    """
    p = os.fspath(path)
    if not tempo_bpm > 0:
        raise ValueError(f"tempo_bpm must be > 0, got {tempo_bpm}")
    if not 0 < ticks_per_beat < 0x8000:
        raise ValueError(f"ticks_per_beat must be 1..32767, got {ticks_per_beat}")
    tempo_us = mido.bpm2tempo(tempo_bpm)
    ticks_per_s = 1e6 * ticks_per_beat / tempo_us

    by_part: dict[str, list[tuple[int, int, int, int]]] = {}
    for i, record in enumerate(notes):
        try:
            start_s, dur_s, part, note, velocity = record
        except (TypeError, ValueError) as exc:
            raise ValueError(f"note {i}: expected (start_s, dur_s, part, note, velocity), got {record!r}") from exc
        n = int(round(note))
        if not (start_s >= 0 and dur_s >= 0 and 0 <= n <= 127 and 0 <= velocity <= 1):
            raise ValueError(f"note {i}: out of range (start_s >= 0, dur_s >= 0, note 0..127, "
                             f"velocity 0..1): {record!r}")
        start = round(start_s * ticks_per_s)
        end = max(start + 1, round((start_s + dur_s) * ticks_per_s))
        vel = max(1, min(127, round(velocity * 127)))
        by_part.setdefault(str(part), []).append((start, end, n, vel))

    parts = [p_ for p_ in PARTS if p_ in by_part] + [p_ for p_ in by_part if p_ not in PARTS]
    channels = _channels(parts)

    mid = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    conductor = mido.MidiTrack()
    conductor.append(mido.MetaMessage("track_name", name="bandmate", time=0))
    conductor.append(mido.MetaMessage("set_tempo", tempo=tempo_us, time=0))
    conductor.append(mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0))
    mid.tracks.append(conductor)
    for part in parts:
        ch = channels[part]
        track = mido.MidiTrack()
        track.append(mido.MetaMessage("track_name", name=part, time=0))
        track.append(mido.Message("program_change", channel=ch,
                                  program=PROGRAMS.get(part, DEFAULT_PROGRAM), time=0))
        events = []  # (tick, 0 = off before 1 = on at the same tick, message)
        for start, end, n, vel in by_part[part]:
            events.append((start, 1, mido.Message("note_on", channel=ch, note=n, velocity=vel)))
            events.append((end, 0, mido.Message("note_off", channel=ch, note=n, velocity=64)))
        events.sort(key=lambda e: (e[0], e[1]))
        last = 0
        for tick, _, msg in events:
            msg.time = tick - last
            last = tick
            track.append(msg)
        mid.tracks.append(track)
    try:
        mid.save(p)
    except OSError as exc:
        raise MidiFileError(f"cannot write MIDI file {p}: {exc.strerror or exc}", p) from exc
