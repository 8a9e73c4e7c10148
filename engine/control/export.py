"""Offline rendering of a session to WAV (and MIDI) files (control side).

The player's part can come from a MIDI file; its notes reach the engine through the MIDI queue
exactly as live input does, and reach the conductor at their own time, so the band follows
the file's chords the same way whatever the block size.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.control.live_input import message_event
from engine.control.offline import OfflineDriver
from engine.control.session import Session
from engine.agents.arp import ARP_INPUT
from engine.parts import KEYS
from engine.rt.events import K_ALL_NOTES_OFF, K_NOTE_OFF, K_NOTE_ON

FILE_SOURCE = 1000
SFC_SET_ADD_PEAK_CHUNK = 0x1050  # libsndfile's sf_command: write a PEAK chunk (SF_TRUE/SF_FALSE)


def open_wav(path: Path, sample_rate: int, channels: int = 2):
    """A float32 WAV for writing whose bytes depend only on the audio: no PEAK chunk (by
    default libsndfile adds one to float files, and it carries the time of writing)."""
    import soundfile as sf

    f = sf.SoundFile(path, "w", sample_rate, channels, "FLOAT")
    # soundfile has no public sf_command: call libsndfile through its cffi handle
    if sf._snd.sf_command(f._file, SFC_SET_ADD_PEAK_CHUNK, sf._ffi.NULL, 0) != 0:
        f.close()
        raise RuntimeError("libsndfile would not drop the PEAK chunk (its timestamp would "
                           "make identical renders differ)")
    return f


@dataclass
class RenderResult:
    wav: Path
    midi: Path
    seconds: float
    wall_s: float
    peak: float
    counters: dict

    @property
    def speed(self) -> float:
        """Times faster than real time."""
        return self.seconds / max(self.wall_s, 1e-9)


class Progress:
    """A one-line progress bar on stderr (only when it is a terminal, or when forced)."""

    def __init__(self, total_s: float, label: str, enabled: bool | None = None):
        self.total = total_s
        self.label = label
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._last = 0.0

    def update(self, done_s: float) -> None:
        if not self.enabled or (time.monotonic() - self._last < 0.1 and done_s < self.total):
            return
        self._last = time.monotonic()
        frac = min(done_s / self.total, 1.0) if self.total else 1.0
        bar = "#" * int(frac * 30)
        sys.stderr.write(f"\r{self.label} [{bar:<30}] {done_s:6.1f}/{self.total:.1f} s")
        if frac >= 1.0:
            sys.stderr.write("\n")
        sys.stderr.flush()


def player_part(session: Session, msg) -> int:
    """The part a player's message plays: keys, or ARP_INPUT (no instrument) when the
    arpeggiator takes its channel (Session.arp_takes), as the live input decides."""
    return ARP_INPUT if session.arp_takes(getattr(msg, "channel", 0) + 1) else KEYS


def file_events(path: Path, session: Session) -> list[tuple]:
    """The MIDI file's messages as timed engine events on the player's part."""
    from controllers.midifile import read_performance
    sr = session.sample_rate
    events = []
    for seconds, msg in read_performance(path):
        ev = message_event(msg)
        if ev is not None:
            kind, a, b = ev
            events.append((round(seconds * sr), kind, player_part(session, msg), a, b,
                           float(FILE_SOURCE)))
    return events


def score_events(score, session: Session) -> list[tuple]:
    """A score's messages as timed engine events on the player's part, each on the sample the
    session's clock (which follows the score: Session.follow_score) gives its beat."""
    clock = session.clock
    events = []
    for beat, msg in score.messages:
        ev = message_event(msg)
        if ev is not None:
            kind, a, b = ev
            events.append((clock.sample_at(score.session_beat(beat)), kind,
                           player_part(session, msg), a, b, float(FILE_SOURCE)))
    return events


def query_by_bar(session: Session, player_notes: bool = False) -> None:
    """Offline, when nothing will change what the band plays (the demo, whose band follows no
    one, or a jam with no player notes to follow), let the scheduler query the band a bar at a
    time: the same events at the same samples, the same audio, far fewer queries."""
    if session.conductor is None or not player_notes:
        session.scheduler.reach_bars = 1


def render(session: Session, seconds: float, wav: Path, block_size: int = 512,
           midi_in: Path | None = None, progress: bool | None = None) -> RenderResult:
    """Render `seconds` of the session into `wav` (float32 stereo) and the notes into a .mid
    beside it; returns the figures. The same session and settings give the same bytes.

    `midi_in` plays a MIDI file as the player. In a jam the file is a score: the band plays in
    its tempo and meter, from its downbeat, and knows its harmony ahead (Session.follow_score,
    unless the session already follows one); the demo plays it at the file's own times.
    With config [sync] source = "player" the file is played at its own times and the band
    follows it by ear (engine.control.sync.PlayerFollower), as it would follow it live."""
    follower = session.follower
    if follower is None and session.conductor is not None and \
            session.cfg.get("sync", {}).get("source") == "player":
        from engine.control.sync import sync_from_config
        follower = sync_from_config(session, session.cfg, log=lambda text: None)
    if midi_in and session.conductor is not None and session.score is None \
            and follower is None:
        from engine.listen.score import Score
        session.follow_score(Score.read(midi_in))
    if session.score is not None:
        events = score_events(session.score, session)
    else:
        events = file_events(midi_in, session) if midi_in else []
    notes = [e for e in events if e[1] in (K_NOTE_ON, K_NOTE_OFF)
             or (e[1] == K_ALL_NOTES_OFF and e[2] == ARP_INPUT)]
    lookahead = session.scheduler.lookahead
    query_by_bar(session, player_notes=bool(notes))
    cursor = [0]

    def before_block(end: int) -> None:
        # the player's notes reach the conductor when the render reaches them, and take
        # effect from the beat the scheduler would not yet have queried at their time
        while cursor[0] < len(notes) and notes[cursor[0]][0] < end:
            t, kind, part, a, b, src = notes[cursor[0]]
            session.player_note(kind, int(a), b, t, int(src),
                                horizon=session.clock.beat_at(t + lookahead),
                                arp=part == ARP_INPUT)
            cursor[0] += 1
        if follower is not None:
            follower.update()
        session.scheduler.advance(end)

    driver = OfflineDriver(session.state, block_size, before_block, events)
    frames = round(seconds * session.sample_rate)
    wav.parent.mkdir(parents=True, exist_ok=True)
    bar = Progress(seconds, f"rendering {wav.name}", progress)
    chunk = session.sample_rate  # one second at a time
    peak = 0.0
    t0 = time.perf_counter()
    with open_wav(wav, session.sample_rate) as out:
        done = 0
        buf = np.zeros((chunk, 2), np.float32)
        while done < frames:
            n = min(chunk, frames - done)
            driver.render(n, buf[:n])
            out.write(buf[:n])
            peak = max(peak, float(np.abs(buf[:n]).max()))
            done += n
            bar.update(done / session.sample_rate)
    wall = time.perf_counter() - t0
    midi = session.write_midi(wav.with_suffix(".mid"))
    return RenderResult(wav, midi, seconds, wall, peak, session.state.counters())
