"""Tempo sync (engine.control.sync): MIDI clock in, tap tempo, Ableton Link.

MIDI clock: a simulated master (24 ticks a beat, ±1 ms gaussian jitter on every stamp, a tick
dropped now and then, a 96 → 100 BPM ramp) drives a real Session stepped on its sample clock
as the live loop steps it (follower.update, then scheduler.advance, every 10 ms); the band's
beats are compared with the master's true beats. Then the same follower through a real rtmidi
JACK port (the suite's jackd). Link: two peers in a network namespace with only loopback (a
subprocess under `unshare -n`), so discovery never leaves the machine. Every wait has a timeout.
"""
from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from engine.config import load_config
from engine.control.session import TAP_ADDRESS, Session
from engine.control.sync import (
    CLOCK, CONTINUE, SONG_POSITION, START, STOP, LinkSync, MidiClockFollower, TapTempo,
    sync_from_config, tap,
)
from engine.parts import DRUMS
from engine.patterns.event import MAX_NUDGE_S
from engine.rt.events import K_NOTE_ON

SR = 48000
ROOT = Path(__file__).resolve().parents[1]
WINDOW = 96                      # ticks (the default)
STEP = 480                       # the live loop's 10 ms
MAX_NUDGE = MAX_NUDGE_S * SR + 1  # an agent's humanising offset, at most


def make_cfg(drums: bool = False, **sync) -> dict:
    cfg = load_config(ROOT / "config.toml", environ={})
    for part in ("bass", "chords", "lead"):
        cfg["band"][part] = False
    cfg["band"]["drums"] = drums
    cfg["band"]["tempo_bpm"] = 120.0
    cfg["sync"].update(sync)
    return cfg


@pytest.fixture
def at_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def master_ticks(seconds: float, bpm_at, jitter_s: float = 0.001, drop: float = 0.01,
                 seed: int = 1, t0: float = 0.3) -> list[tuple[int, float, float]]:
    """(tick number, true time s, stamped time s) of a master clock whose tempo is
    bpm_at(t); a dropped tick is missing from the list."""
    rng = random.Random(seed)
    t, k, out = t0, 0, []
    while t < seconds:
        if rng.random() >= drop:
            out.append((k, t, t + rng.gauss(0.0, jitter_s)))
        t += 60.0 / (24 * bpm_at(t))
        k += 1
    return out


def ramp(t: float) -> float:
    return 96.0 if t < 8.0 else 96.0 + (t - 8.0) if t < 12.0 else 100.0


class Sim:
    """A Session stepped like the live loop, fed master clock messages at their stamps."""

    def __init__(self, drums: bool = False):
        self.session = Session(make_cfg(drums), SR)
        self.rows: list[np.ndarray] = []
        send = self.session.scheduler.send

        def record(rows):
            self.rows.append(rows.copy())
            send(rows)
        self.session.scheduler.send = record
        self.follower = MidiClockFollower(self.session, log=lambda text: None, window_ticks=WINDOW)
        self.now = 0

    def run(self, until_s: float, messages: list[tuple[float, int, int]] | None = None) -> None:
        """messages: (stamp s, status, data), sorted (None: go on with the last ones)."""
        if messages is not None:
            self.messages, self.i = messages, 0
        messages = self.messages
        while self.now < until_s * SR:
            while self.i < len(messages) and messages[self.i][0] * SR <= self.now:
                t, status, data = messages[self.i]
                self.follower.feed(status, data, round(t * SR))
                self.i += 1
            self.follower.update()
            self.session.scheduler.advance(self.now)
            self.now += STEP

    def drum_onsets(self) -> np.ndarray:
        rows = np.concatenate(self.rows) if self.rows else np.zeros((0, 6))
        on = rows[(rows[:, 1] == K_NOTE_ON) & (rows[:, 2] == DRUMS)]
        return np.sort(on[:, 0])

    def error_ms(self, ext_beat: float, true_s: float, bpm: float) -> float:
        """The master's beat + the lock's offset - the band's beat, at the true time (ms)."""
        band = float(self.session.clock.beat_at(round(true_s * SR)))
        return (ext_beat + self.follower.lock.offset - band) * 60.0 / bpm * 1000.0


def test_midi_clock_follows_jitter_drops_and_a_tempo_ramp(at_root):
    ticks = master_ticks(40.0, ramp)
    start_k = next(k for k, t, _ in ticks if t >= 3.0)
    msgs = [(ts, CLOCK, 0) for _, _, ts in ticks]
    msgs.append((ticks[[k for k, _, _ in ticks].index(start_k)][2] - 0.002, START, 0))
    msgs.sort()
    sim = Sim(drums=True)
    sim.run(40.0, msgs)
    f, lock = sim.follower, sim.follower.lock
    assert abs(f.bpm - 100.0) < 0.1
    assert f.status().startswith("MIDI clock 100.0") and " ms" in f.status()
    assert abs(sim.session.clock.bpm - 100.0) < 100.0 * lock.max_nudge + 1e-9
    dropped = sum(1 for a, b in zip(ticks, ticks[1:]) if b[0] - a[0] > 1)
    assert f.counters["dropped_ticks"] == dropped > 0
    assert f.counters["outliers"] == 0 and f.counters["starts"] == 1
    assert lock.realigns == 1 and lock.offset % 4 == 0      # master bars on the band's bars
    beats = [(k, t) for k, t, _ in ticks if k >= start_k and (k - start_k) % 24 == 0]
    errors = [(t, sim.error_ms((k - start_k) / 24, t, ramp(t))) for k, t in beats]
    late = [abs(e) for t, e in errors if t >= 25.0]
    settled = [abs(e) for t, e in errors if 12.0 <= t < 18.0]
    assert max(late) < 2.0, late                # ms: the beats line up
    assert np.mean(late) < np.mean(settled)     # and the error shrinks after the ramp
    # tempo changes: at most one per band beat (and the realignment's)
    assert lock.tempo_changes <= float(sim.session.clock.beat_at(sim.now)) + 1
    # the band fell silent at Start and came back in on the master's bar line, on the one
    onsets = sim.drum_onsets()
    start_sample = dict((k, t) for k, t, _ in ticks)[start_k] * SR
    entry_sample = sim.session.clock.sample_at(Fraction(lock.entry))
    entry_ext = lock.entry - lock.offset
    assert entry_ext % 4 == 0 and 0 < entry_ext <= 8
    true_entry = dict((k, t) for k, t, _ in ticks)[start_k + 24 * entry_ext] * SR
    assert abs(entry_sample - true_entry) < 0.002 * SR               # 2 ms
    lookahead = sim.session.scheduler.lookahead
    gap = onsets[(onsets > start_sample + lookahead) & (onsets < entry_sample - MAX_NUDGE)]
    assert len(gap) == 0, gap
    back = onsets[onsets >= entry_sample - MAX_NUDGE][0]
    assert abs(back - entry_sample) <= MAX_NUDGE                    # the one (humanised)


def test_stop_silences_the_band_and_continue_resumes_at_the_song_position(at_root):
    ticks = master_ticks(24.0, lambda t: 120.0, drop=0.0, seed=2)
    times = {k: (t, ts) for k, t, ts in ticks}
    # Start at tick 24 (beat 0), Stop after 4 bars (tick 24 + 16*24), Continue from song
    # position 16ths = 64 (beat 16, bar 5) at tick 24 + 24*24
    msgs = [(ts, CLOCK, 0) for _, _, ts in ticks]
    msgs.append((times[24][1] - 0.003, START, 0))
    stop_k, cont_k = 24 + 16 * 24, 24 + 24 * 24
    msgs.append((times[stop_k][1] + 0.003, STOP, 0))
    msgs.append((times[cont_k][1] - 0.006, SONG_POSITION, 64))
    msgs.append((times[cont_k][1] - 0.003, CONTINUE, 0))
    msgs.sort()
    sim = Sim(drums=True)
    sim.run(24.0, msgs)
    f, lock = sim.follower, sim.follower.lock
    assert f.counters["stops"] == 1 and f.counters["continues"] == 1
    assert f.playing and not lock.stopped and lock.realigns >= 1
    onsets = sim.drum_onsets()
    stop_s = times[stop_k][0]
    lookahead = sim.session.scheduler.lookahead + 1
    # silent from Stop (what was queued, at most the look-ahead, plays out)...
    quiet = onsets[(onsets > stop_s * SR + lookahead) & (onsets < times[cont_k][0] * SR)]
    assert len(quiet) == 0, quiet
    # ...and back in at the song position: the band's bars on the song's bars (the band still
    # in phase: from the next beat; else from the next bar line)
    entry = sim.session.clock.sample_at(Fraction(lock.entry))
    assert times[cont_k][0] * SR <= entry and lock.offset % 4 == 0
    k_back = min(times, key=lambda k: abs(times[k][0] * SR - entry))
    assert abs(times[k_back][0] * SR - entry) < 0.002 * SR and (k_back - cont_k) % 24 == 0
    assert lock.entry - (16 + (k_back - cont_k) // 24) == lock.offset
    back = onsets[onsets >= entry - MAX_NUDGE][0]
    assert abs(back - entry) <= MAX_NUDGE or (back - entry) % (SR / 4) < MAX_NUDGE
    for k in range(cont_k + 24 * 8, max(times), 24):   # locked to the song position after
        assert abs(sim.error_ms(16 + (k - cont_k) / 24, times[k][0], 120.0)) < 1.0


def test_a_daws_loop_point_keeps_the_band_playing(at_root):
    """Stop, Song Position 0, Continue on one bar line (a DAW looping 4 bars): the band is in
    phase with the new position, so it plays on from the next beat: no realignment, no bar of
    silence, still on the master's beats."""
    ticks = master_ticks(16.0, lambda t: 120.0, drop=0.0, seed=5)
    times = {k: (t, ts) for k, t, ts in ticks}
    loop_k = 24 + 24 * 16                                 # song beat 16 after Start at tick 24
    msgs = [(ts, CLOCK, 0) for _, _, ts in ticks]
    msgs += [(times[24][1] - 0.003, START, 0), (times[loop_k][1] - 0.004, STOP, 0),
             (times[loop_k][1] - 0.003, SONG_POSITION, 0),
             (times[loop_k][1] - 0.002, CONTINUE, 0)]
    sim = Sim(drums=True)
    sim.run(times[loop_k][0] - 0.5, sorted(msgs))
    lock = sim.follower.lock
    before = lock.realigns
    assert before >= 1 and lock.offset is not None
    sim.run(16.0)
    assert sim.follower.counters["continues"] == 1 and not lock.stopped
    onsets = sim.drum_onsets()
    loop_s = times[loop_k][0]
    after = onsets[onsets > loop_s * SR]
    assert after[0] - loop_s * SR < 0.5 * SR + sim.session.scheduler.lookahead   # a beat
    assert lock.realigns == before and lock.entry is not None
    assert lock.offset % 4 == 0
    for k in range(loop_k + 24 * 4, max(times), 24):     # on the looped song's beats
        assert abs(sim.error_ms((k - loop_k) / 24, times[k][0], 120.0)) < 2.0


def test_a_clock_that_starts_with_start_brings_the_band_in_on_the_masters_beat(at_root):
    """No clock before Start: the band falls silent at Start, locks on the new ticks and
    comes in on a beat of the master (its bars on the master's bars), on its sample."""
    ticks = master_ticks(10.0, lambda t: 132.0, drop=0.0, seed=4, t0=2.0)
    times = {k: (t, ts) for k, t, ts in ticks}
    msgs = sorted([(ts, CLOCK, 0) for _, _, ts in ticks] + [(times[0][1] - 0.004, START, 0)])
    sim = Sim(drums=True)
    sim.run(10.0, msgs)
    lock = sim.follower.lock
    assert lock.entry is not None and not lock.stopped and lock.offset % 4 == 0
    entry_ext = lock.entry - lock.offset          # a master beat (a bar line if it realigned)
    assert 0 < entry_ext <= 8 and (lock.realigns == 0 or entry_ext % 4 == 0)
    entry_sample = sim.session.clock.sample_at(Fraction(lock.entry))
    assert abs(entry_sample - times[24 * entry_ext][0] * SR) < 0.002 * SR
    onsets = sim.drum_onsets()
    lookahead = sim.session.scheduler.lookahead
    quiet = onsets[(onsets > times[0][0] * SR + lookahead) & (onsets < entry_sample - MAX_NUDGE)]
    assert len(quiet) == 0, quiet
    assert abs(onsets[onsets >= entry_sample - MAX_NUDGE][0] - entry_sample) <= MAX_NUDGE


def test_an_outlier_tick_is_ignored_and_bad_input_changes_nothing(at_root):
    ticks = master_ticks(6.0, lambda t: 110.0, drop=0.0, jitter_s=0.0005)
    msgs = [(ts, CLOCK, 0) for _, _, ts in ticks]
    msgs.append((ticks[100][2] + 0.011, CLOCK, 0))        # a stray tick between two
    bad = [(2.0, SONG_POSITION, -1), (2.0, SONG_POSITION, 1 << 14), (2.0, 0x90, 0)]
    msgs = sorted(msgs + bad)
    sim = Sim()
    sim.run(6.0, msgs)
    f = sim.follower
    assert f.counters["spurious"] + f.counters["outliers"] == 1
    assert f.counters["bad"] == 3 and not f.started
    assert abs(f.bpm - 110.0) < 0.1
    # before any Start the band locks onto the clock's beats (its bars unknown)
    assert abs(sim.error_ms((ticks[-30][0]) / 24, ticks[-30][1], 110.0)) < 1.0


# ---- tap tempo ----------------------------------------------------------------------------------

def test_tap_tempo_median_pause_and_outlier():
    rng = random.Random(3)
    t = TapTempo(reset_s=2.5)
    now, bpm = 10.0, None
    for i in range(12):
        bpm = t.tap(now + rng.uniform(-0.01, 0.01))
        now += 60.0 / 90.0
        if i == 6:                                     # a bounce: a tap far too early
            assert abs(t.tap(now - 60.0 / 90.0 + 0.12) - bpm) < 1e-9
    assert abs(bpm - 90.0) < 0.5 and t.ignored == 1
    now += 5.0                                          # a pause: a new count
    assert t.tap(now) is None and t.tap(now + 0.5) is None
    assert abs(t.tap(now + 1.0) - 120.0) < 1e-6
    late = TapTempo()                                   # one late tap: the median holds
    for x in (0.0, 0.5, 1.0, 1.5, 2.3, 2.8, 3.3):
        bpm = late.tap(x)
    assert abs(bpm - 120.0) < 1e-6
    fast = TapTempo()
    for x in (0.0, 0.1, 0.2, 0.3):
        bpm = fast.tap(x)
    assert bpm == 400.0                                 # clamped to 20..400


def test_tap_from_the_session_cli_osc_and_a_mapped_pad(at_root):
    from engine.commands import live_command
    from engine.control.mapping import Mapper, Mapping
    from engine.control.osc import OscServer
    from pythonosc.osc_message_builder import OscMessageBuilder
    import mido
    import socket

    s = Session(make_cfg(), SR)
    for x in (0.0, 0.6, 1.2, 1.8):
        tap(s, x)
    assert s.clock.bpm == 100.0
    assert live_command(s, "tap 95") == "tempo 95 BPM" and s.clock.bpm == 95.0
    assert live_command(s, "tap").startswith("tap")       # a pause: a new count starts
    assert len(s.tapper.intervals) == 0 and s.tapper.last is not None
    n_before = len(s.tapper.intervals)
    s.set(TAP_ADDRESS, 1.0)                               # the address taps...
    s.set(TAP_ADDRESS, 0.0)                               # ...its release does not
    assert len(s.tapper.intervals) == n_before + 1 and TAP_ADDRESS in s.addresses()

    async def osc():
        server = OscServer(s, port=0, log=lambda text: None)
        await server.start()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for args in ((), (1.0,), (0.0,), ("x",)):
            b = OscMessageBuilder("/transport/tap")
            for a in args:
                b.add_arg(a)
            sock.sendto(b.build().dgram, server.address)
        end = time.monotonic() + 5.0
        while server.counters["packets"] < 4:
            assert time.monotonic() < end, "timed out waiting for 4 OSC packets"
            await asyncio.sleep(0.001)
        sock.close()
        server.close()
        return server
    s.tapper = TapTempo()
    server = asyncio.run(asyncio.wait_for(osc(), 30.0))
    assert server.counters["errors"] == 1                 # the string
    assert len(s.tapper.intervals) == 1                   # two taps: no tap, yes tap, release
    text = ('[[note]]\nnote = 40\nchannel = 10\naddress = "/transport/tap"\n'
            'mode = "trigger"\n')
    s.tapper = TapTempo()
    mapper = Mapper(s, Mapping.parse(text, "tap.toml", session=s), log=lambda text: None)
    for _ in range(3):
        mapper.events(mido.Message("note_on", channel=9, note=40, velocity=100), 5)
        mapper.events(mido.Message("note_off", channel=9, note=40), 5)
    assert len(s.tapper.intervals) == 2                   # three presses: three taps


# ---- MIDI clock through a real rtmidi port (JACK) -----------------------------------------------

@pytest.mark.jack
def test_midi_clock_through_an_rtmidi_jack_port(jack_server, at_root):
    """Ticks sent by an rtmidi JACK port reach the live input in order, each stamped, and the
    follower finds the tempo they were sent at. A message lost while jackd reported an xrun
    is the host's (measured again, at most three times); lost with none, the test fails."""
    from tests.latencykit import retry
    s, got, stats, sent = retry(_clock_through_jack, jack_server)
    assert got[0][:2] == (SONG_POSITION, 144), got[:3]
    assert got[1][:2] == (CONTINUE, 0), got[:3]
    assert [g[0] for g in got[2:]] == [CLOCK] * len(sent) + [STOP]
    assert stats["dropped"] == 1 and stats["received"] == len(got)
    stamps = [g[2] for g in got]
    assert stamps == sorted(stamps)
    f = MidiClockFollower(s, log=lambda text: None)
    for status, data, sample_time in got:             # on "the control thread": here
        f.feed(status, data, sample_time)
    # the follower's tempo is the rate the ticks were really sent at (the host's pacing)
    k = np.arange(len(sent))
    sent_bpm = 60.0 / (24 * np.polyfit(k, np.array(sent), 1)[0])
    print(f"MIDI clock through JACK: followed {f.bpm:.3f} BPM, sent at {sent_bpm:.3f} BPM")
    assert abs(f.bpm - sent_bpm) < 0.3, (f.bpm, sent_bpm)
    assert f.counters["continues"] == 1 and f.counters["stops"] == 1
    assert f.base_beat == 36.0                        # song position 144 sixteenths


def _clock_through_jack(server):
    import rtmidi
    from tests.latencykit import RigGap
    from controllers.midi_in import MidiInputs
    from engine.control.live_input import LiveInput

    s = Session(make_cfg(), SR)
    xruns = server.xruns()
    t0 = time.monotonic_ns()
    got: list[tuple[int, int, int]] = []
    lock = threading.Lock()

    def on_realtime(status, data, sample_time):
        with lock:
            got.append((status, data, sample_time))

    live = LiveInput(s.state, clock=lambda: (time.monotonic_ns() - t0) * 1e-9 * SR,
                     log=lambda text: None, on_realtime=on_realtime)
    out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="bm_clock_master")
    short = f"clock{os.getpid()}"
    out.open_virtual_port(short)
    try:
        probe = MidiInputs(live, api="jack", ports=[])
        name = [n for n in probe.list_ports() if n.endswith(":" + short)][0]
        probe.close()
        with MidiInputs(live, api="jack", ports=name) as inputs:
            end = time.monotonic() + 5.0
            while name not in inputs.sources:
                assert time.monotonic() < end, "timed out waiting for the port"
                time.sleep(0.01)
            end = time.monotonic() + 5.0                 # a note first: the connection is up
            while inputs.stats()[name]["received"] < 1:
                assert time.monotonic() < end, "timed out waiting for the first note"
                out.send_message([0x90, 60, 0])
                time.sleep(0.05)
            time.sleep(0.05)
            base = inputs.stats()[name]["received"]
            period = 60.0 / (24 * 120.0)
            sent = []
            out.send_message([SONG_POSITION, 0x10, 0x01])
            out.send_message([CONTINUE])
            nxt = time.perf_counter()
            for i in range(24 * 6):
                while time.perf_counter() < nxt:
                    time.sleep(0.0005)
                out.send_message([CLOCK])
                sent.append(time.perf_counter())
                nxt += period
            out.send_message([STOP])
            out.send_message([0xF2, 0x80, 0x00])          # malformed: dropped, counted
            end = time.monotonic() + 5.0
            while True:
                with lock:
                    if len(got) >= 3 + len(sent):
                        break
                if time.monotonic() >= end:
                    if server.xruns() != xruns:
                        raise RigGap(f"{len(got)} of {len(sent) + 3} arrived; jackd reported "
                                     f"{server.xruns() - xruns} xruns meanwhile")
                    raise AssertionError(f"timed out: {len(got)} of {len(sent) + 3}")
                time.sleep(0.01)
            time.sleep(0.05)
            stats = inputs.stats()[name]
            stats["received"] -= base
    finally:
        out.delete()
    return s, got, stats, sent


# ---- Ableton Link in a loopback-only network namespace ------------------------------------------

LINK_PEERS = r'''
import asyncio, json, sys, time
sys.path.insert(0, sys.argv[1])
import aalink
from engine.config import load_config
from engine.control.session import Session
from engine.control.sync import LinkSync

SR = 48000

async def main():
    cfg = load_config(sys.argv[1] + "/config.toml", environ={})
    for p in ("drums", "bass", "chords", "lead"):
        cfg["band"][p] = False
    cfg["band"]["tempo_bpm"] = 120.0
    s = Session(cfg, SR, root=__import__("pathlib").Path(sys.argv[1]))
    t0 = time.monotonic_ns()
    sync = LinkSync(s, quantum=4, start_stop=True, log=lambda text: None,
                    clock=lambda: (0, t0))
    other = aalink.Link(97.0)
    other.quantum = 4
    other.start_stop_sync_enabled = True
    other.enabled = True
    sync.start()
    out = {}

    def now_sample():
        return round((time.monotonic_ns() - t0) * 1e-9 * SR)

    async def step_until(pred, timeout):
        end = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > end:
                return False
            sync.update()
            s.scheduler.advance(now_sample())
            await asyncio.sleep(0.01)
        return True

    def phase_ms():
        m0 = time.monotonic_ns(); b = other.beat; m1 = time.monotonic_ns()
        sample = (( m0 + m1) / 2 - t0) * 1e-9 * SR
        band = float(s.clock.beat_at(round(sample)))
        d = (band - b) % 4
        d = d - 4 if d > 2 else d
        return d * 60.0 / other.tempo * 1000.0

    out["peers"] = await step_until(lambda: sync.link.num_peers >= 1, 20.0)
    other.tempo = 97.0
    out["tempo"] = await step_until(lambda: abs(s.clock.bpm - 97.0) < 97 * 0.041
                                    and sync.lock.until is None and sync.lock.offset is not None
                                    and abs(phase_ms()) < 3.0, 30.0)
    await step_until(lambda: False, 3.0)           # settle
    errs = []
    for _ in range(100):
        await step_until(lambda: False, 0.02)
        errs.append(phase_ms())
    out["phase_ms"] = errs
    out["band_bpm"] = s.clock.bpm
    out["link_bpm"] = sync.link.tempo
    other.playing = True                            # a peer starts the session...
    out["playing"] = await step_until(lambda: sync._playing is True, 10.0)
    other.playing = False                           # ...stops it: the band stops
    out["stopped"] = await step_until(lambda: sync.lock.stopped, 10.0)
    await step_until(lambda: False, 1.0)
    out["still_stopped"] = sync.lock.stopped
    other.playing = True                            # and starts it again: back on a bar line
    out["restarted"] = await step_until(lambda: not sync.lock.stopped
                                        and sync.lock.until is None
                                        and sync.lock.offset is not None, 15.0)
    await step_until(lambda: False, 2.0)
    out["phase_after_restart_ms"] = phase_ms()
    out["bars_aligned"] = sync.lock.offset % 4 == 0      # band bars on the session's bars
    s.set("/transport/tempo_bpm", 110.0)           # bandmate's tempo goes to the session
    out["sent"] = await step_until(lambda: abs(other.tempo - 110.0) < 1e-3, 10.0)
    out["other_bpm"] = other.tempo
    out["tempo_sent"] = sync.tempo_sent
    sync.close()
    other.enabled = False
    print("RESULT " + json.dumps(out), flush=True)

asyncio.run(asyncio.wait_for(main(), 90.0))
'''


def _netns_ok() -> str | None:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare or ip not installed"
    r = subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=10)
    if r.returncode != 0:
        return f"unshare -n not permitted here: {r.stderr.decode().strip()}"
    return None


def test_link_peers_converge_on_tempo_and_phase_in_a_loopback_namespace(tmp_path):
    why = _netns_ok()
    if why is not None:
        pytest.skip(f"Link test needs a private network namespace: {why}")
    script = tmp_path / "peers.py"
    script.write_text(LINK_PEERS)
    setup = ("ip link set lo up && ip link set lo multicast on && "
             "ip route add 224.0.0.0/4 dev lo && exec \"$0\" \"$@\"")
    r = subprocess.run(["unshare", "-n", "sh", "-c", setup, sys.executable, str(script),
                        str(ROOT)], capture_output=True, timeout=150, text=True)
    lines = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
    assert r.returncode == 0 and lines, r.stdout[-2000:] + r.stderr[-4000:]
    out = json.loads(lines[-1][len("RESULT "):])
    assert out["peers"], "the peers never found each other"
    assert out["tempo"], out
    assert abs(out["link_bpm"] - 97.0) < 1e-3     # (Link: integer us a beat)
    assert abs(out["band_bpm"] - 97.0) < 97.0 * 0.041     # 97 with at most the nudge
    errs = np.abs(out["phase_ms"])
    print("Link phase error ms: median", np.median(errs), "max", errs.max())
    assert np.median(errs) < 2.0 and errs.max() < 5.0, out["phase_ms"]
    assert out["playing"] and out["stopped"] and out["still_stopped"] and out["restarted"]
    assert abs(out["phase_after_restart_ms"]) < 5.0 and out["bars_aligned"]
    assert out["sent"] and abs(out["other_bpm"] - 110.0) < 1e-3
    assert out["tempo_sent"] >= 1


# ---- config, CLI, the live run ------------------------------------------------------------------

def test_sync_config_cli_and_factory(at_root):
    from engine.cli import _overrides, _parser
    from engine.tomldata import DataError
    assert _overrides(_parser().parse_args(["jam", "--sync", "midi"]))["sync"] == \
        {"source": "midi_clock"}
    assert "sync" not in _overrides(_parser().parse_args(["jam"]))
    with pytest.raises(DataError, match="sync.*source"):
        load_config(ROOT / "config.toml", environ={"BANDMATE_SYNC_SOURCE": "wordclock"})
    with pytest.raises(DataError, match="max_nudge_pct"):
        load_config(ROOT / "config.toml", environ={"BANDMATE_SYNC_MAX_NUDGE_PCT": "50"})
    s = Session(make_cfg(), SR)
    assert sync_from_config(s, make_cfg()) is None
    assert isinstance(sync_from_config(s, make_cfg(source="midi_clock")), MidiClockFollower)
    link = sync_from_config(s, make_cfg(source="link", link_quantum=0))
    assert isinstance(link, LinkSync) and link.quantum == 4 and link.link is None


def test_the_live_run_feeds_midi_clock_to_its_follower(at_root):
    from engine.control import live

    from tests.enginekit import NullStream as Stream

    async def main():
        s = Session(make_cfg(source="midi_clock"), SR)
        lr = live.LiveRun(s, Stream(), log=lambda text: None)
        task = asyncio.create_task(lr.run(30.0))
        end = time.monotonic() + 10.0
        while lr.sync is None:
            assert time.monotonic() < end, "timed out waiting for the follower"
            await asyncio.sleep(0.005)
        lr.midi_realtime(START, 0, 1000)
        for i in range(48):
            lr.midi_realtime(CLOCK, 0, 1000 + i * 1000)     # 120 BPM at 48 kHz
        assert lr.sync.counters["ticks"] == 48 and abs(lr.sync.bpm - 120.0) < 1e-9
        lr.stop()
        await asyncio.wait_for(task, 10.0)
    asyncio.run(asyncio.wait_for(main(), 60.0))
