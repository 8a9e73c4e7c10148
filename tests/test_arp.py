"""The arpeggiator (engine.agents.arp): note order per mode against the analytic cycle, step
lengths in beats and in samples at a tempo (and across a tempo change), octaves, gate, latch,
retrigger, seeded random, the chords input; and in a session: the player's notes taken from
the instrument and arpeggiated through the band's scheduler on the live input path and offline
(the same notes), the addresses, config, CLI, and no stuck note after panic, stop or release."""
import asyncio
import math
from fractions import Fraction as F
from pathlib import Path

import mido
import numpy as np
import pytest

from engine.agents.arp import (ARP_INPUT, MODES, RATE_BEATS, RATES, Arpeggiator, chord_notes,
                               sequence)
from engine.agents.base import StaticContext
from engine.agents.steer import Steering
from engine.config import load_config
from engine.control.clock import Clock
from engine.control.live_input import LiveInput
from engine.control.session import Session
from engine.harmony import Chord, Progression
from engine.parts import KEYS, LEAD
from engine.rt.events import K_ALL_NOTES_OFF, K_NOTE_OFF, K_NOTE_ON
from engine.tomldata import DataError

SR = 48000
ROOT = Path(__file__).resolve().parent.parent
BLOCK = 256
CHORD = ((64, 0.5), (60, 0.6), (67, 0.7))       # E4 C4 G4, pressed in that order


def arp_with(**settings) -> tuple[Arpeggiator, Steering]:
    st = Steering({"/arp/on": "on", **{f"/arp/{k}": v for k, v in settings.items()}})
    return Arpeggiator(st), st


def hold(arp, chord=CHORD, at=F(0), source=1):
    for note, vel in chord:
        arp.press(source, note, vel, at)


def onsets(notes):
    return [(n.begin, n.note) for n in notes]


# ---- the patterns, against the analytic cycle ------------------------------------------------

# one cycle of each mode over C E G (played E C G) and two octaves, written out by hand
CYCLES = {
    "up": [60, 64, 67, 72, 76, 79],
    "down": [79, 76, 72, 67, 64, 60],
    "up_down": [60, 64, 67, 72, 76, 79, 76, 72, 67, 64],
    "down_up": [79, 76, 72, 67, 64, 60, 64, 67, 72, 76],
    "up_down_ends": [60, 64, 67, 72, 76, 79, 79, 76, 72, 67, 64, 60],
    "down_up_ends": [79, 76, 72, 67, 64, 60, 60, 64, 67, 72, 76, 79],
    "played": [64, 60, 67, 76, 72, 79],
}


@pytest.mark.parametrize("mode", sorted(CYCLES))
def test_each_mode_plays_its_cycle_on_the_step_grid(mode):
    arp, _ = arp_with(mode=mode, octaves=2)
    hold(arp)
    notes = arp.query(F(0), F(8), StaticContext())
    cycle = CYCLES[mode]
    assert [n.begin for n in notes] == [F(k, 4) for k in range(32)]
    assert [n.note for n in notes] == [cycle[k % len(cycle)] for k in range(32)]
    assert sequence(mode, [64, 60, 67], 2) == cycle


def test_ends_are_played_once_or_twice_and_one_note_just_repeats():
    assert sequence("up_down", [60, 64], 1) == [60, 64]
    assert sequence("up_down_ends", [60, 64], 1) == [60, 64, 64, 60]
    for mode in CYCLES:
        assert set(sequence(mode, [62], 1)) == {62}


def test_chord_mode_plays_the_whole_chord_each_step_climbing_the_octaves():
    arp, _ = arp_with(mode="chord", octaves=3, rate="1/8")
    hold(arp)
    notes = arp.query(F(0), F(4), StaticContext())
    steps = sorted({n.begin for n in notes})
    assert steps == [F(k, 2) for k in range(8)]
    for k, s in enumerate(steps):
        assert sorted(n.note for n in notes if n.begin == s) == [60 + 12 * (k % 3),
                                                                 64 + 12 * (k % 3),
                                                                 67 + 12 * (k % 3)]


def test_random_is_seeded_draws_every_note_and_differs_between_seeds():
    def order(seed):
        arp, _ = arp_with(mode="random", octaves=2)
        hold(arp)
        return [n.note for n in arp.query(F(0), F(32), StaticContext(seed=seed))]

    a = order(7)
    assert a == order(7)                           # same seed, same order
    assert set(a) == set(CYCLES["up"])             # every note of the pattern, nothing else
    assert a != order(8)
    assert a != [CYCLES["up"][k % 6] for k in range(len(a))]
    # not stuck on one note: the commonest note is near its share (1/6 of 128 steps)
    assert max(a.count(n) for n in set(a)) < 40


@pytest.mark.parametrize("rate", RATES)
def test_steps_are_the_rate_long_and_run_on_across_bars(rate):
    arp, _ = arp_with(rate=rate, gate=1.0)
    hold(arp)
    notes = arp.query(F(0), F(12), StaticContext())
    step = {"1/4": 1, "1/8": F(1, 2), "1/16": F(1, 4), "1/32": F(1, 8)}[rate.rstrip("dt")]
    step *= F(3, 2) if rate.endswith("d") else F(2, 3) if rate.endswith("t") else 1
    assert RATE_BEATS[rate] == step
    assert [n.begin for n in notes] == [k * step for k in range(math.ceil(12 / step))]
    assert all(n.dur == step for n in notes)       # gate 1: legato


def test_retrigger_bar_restarts_pattern_and_grid_on_every_bar_line():
    arp, _ = arp_with(rate="1/8d", retrigger="bar")
    hold(arp)
    notes = arp.query(F(0), F(8), StaticContext())
    bar = [F(3, 4) * k for k in range(6)]          # 0, .75 ... 3.75: six steps, the last cut
    assert [n.begin for n in notes] == bar + [4 + b for b in bar]
    assert [n.note for n in notes][:6] == [n.note for n in notes][6:] == [60, 64, 67] * 2
    assert notes[5].dur == F(1, 4) * F(1, 2)       # the cut last step: 1/4 beat, gate 0.5


@pytest.mark.parametrize("octaves", [1, 2, 3, 4])
def test_octaves_multiply_the_cycle_and_its_span(octaves):
    arp, _ = arp_with(octaves=octaves)
    hold(arp)
    notes = [n.note for n in arp.query(F(0), F(16), StaticContext())]
    cycle = notes[:3 * octaves]
    assert cycle == sorted(cycle) and len(set(cycle)) == 3 * octaves
    assert max(cycle) - min(cycle) == 7 + 12 * (octaves - 1)
    assert notes[3 * octaves] == 60                # and round again


@pytest.mark.parametrize("gate", [0.1, 0.25, 0.5, 0.9, 1.0])
def test_gate_is_that_share_of_the_step_and_of_the_swung_step(gate):
    arp, _ = arp_with(gate=gate, rate="1/8")
    hold(arp)
    notes = arp.query(F(0), F(4), StaticContext())
    g = F(round(gate * 1000), 1000)
    assert all(n.dur == g * F(1, 2) for n in notes)
    clock = Clock(SR, 120.0, 4, swing=0.3)
    arp.swung = clock.swung
    swung = arp.query(F(0), F(4), StaticContext())
    late = F(3, 10) * F(1, 2)                     # swing 0.3 of half a beat
    for n in swung:                                # on-beats are shortened, off-beats lengthen
        want = F(1, 2) + late if n.begin % 1 == 0 else F(1, 2) - late
        assert n.dur == g * want


def test_latch_holds_after_release_and_a_new_chord_replaces_it():
    ctx = StaticContext()
    for latch in ("off", "on"):
        arp, _ = arp_with(latch=latch)
        hold(arp)
        for note, _ in CHORD:
            arp.lift(1, note, F(2))
        after = arp.query(F(2), F(4), ctx)
        if latch == "off":
            assert after == []
            continue
        assert [n.note for n in after] == [67, 60, 64, 67, 60, 64, 67, 60]   # runs on
        arp.press(1, 62, 0.9, F(4))                   # a new chord, note by note
        arp.press(1, 65, 0.9, F(4) + F(1, 8))
        arp.lift(1, 62, F(5))                         # lifted while 65 is held: kept
        arp.press(1, 69, 0.9, F(5))                   # added while a key is down
        arp.lift(1, 65, F(6))
        arp.lift(1, 69, F(6))
        notes = arp.query(F(4), F(10), ctx)
        assert {n.note for n in notes if n.begin >= 5} == {62, 65, 69}
        assert [n.note for n in notes if n.begin >= F(9, 2)][:1] == [62]
        assert {n.note for n in notes if n.begin < F(17, 4)} == {62}    # the restart
        arp.unlatch(F(10))
        assert arp.query(F(10), F(12), ctx) == []


def test_latch_off_while_released_stops_and_does_not_come_back():
    arp, st = arp_with(latch="on")
    hold(arp)
    for note, _ in CHORD:
        arp.lift(1, note, F(1))
    st.set("/arp/latch", "off", F(2))
    arp.unlatch(F(2))
    st.set("/arp/latch", "on", F(3))
    notes = arp.query(F(0), F(6), StaticContext())
    assert notes and max(n.begin for n in notes) < 2


def test_retrigger_chord_restarts_and_off_runs_on():
    ctx = StaticContext()
    for retrigger, first in (("chord", 62), ("off", 65)):
        arp, _ = arp_with(retrigger=retrigger)
        hold(arp)
        for note, _ in CHORD:
            arp.lift(1, note, F(9, 8))            # between steps: the next step is 5/4
        for note in (62, 65, 69):
            arp.press(1, note, 0.8, F(13, 8))     # next step 7/4: step index 7 from 0
        notes = arp.query(F(0), F(4), ctx)
        assert [n.note for n in notes if F(9, 8) < n.begin < F(7, 4)] == []
        assert [n.note for n in notes if n.begin == F(7, 4)] == [first]


def test_any_chunking_gives_the_same_notes():
    for mode in MODES:
        arp, st = arp_with(mode=mode, octaves=2, rate="1/8t", latch="on")
        hold(arp)
        for note, _ in CHORD:
            arp.lift(1, note, F(5, 3))
        arp.press(1, 61, 0.4, F(7))
        st.set("/arp/rate", "1/16d", F(8))
        whole = arp.query(F(0), F(16), StaticContext(seed=3))
        parts = []
        for a, b in zip(range(0, 16 * 7, 7), range(7, 16 * 7 + 7, 7)):
            parts += arp.query(F(a, 7), min(F(b, 7), F(16)), StaticContext(seed=3))
        assert parts == whole, mode


def test_chords_input_arpeggiates_the_harmony_restarting_on_each_chord():
    prog = Progression.parse("Am F C G")
    arp, _ = arp_with(input="chords", mode="up", octaves=1)
    ctx = StaticContext(progression=prog)
    notes = arp.query(F(0), F(16), ctx)
    for bar in range(4):
        chord = prog.chord_at(bar)
        mine = [n.note for n in notes if bar * 4 <= n.begin < bar * 4 + 4]
        assert {n % 12 for n in mine} == set(chord.tones)
        assert mine[:3] == sorted(chord_notes(chord))            # restarts on the chord
    assert chord_notes(Chord(9, "min")) == [69, 72, 76]


# ---- in a session ----------------------------------------------------------------------------

@pytest.fixture
def cfg(monkeypatch):
    monkeypatch.chdir(ROOT)
    c = load_config("config.toml", environ={})
    for part in ("drums", "bass", "chords", "lead"):      # the player and the arpeggiator only
        c["band"][part] = False
    c["band"]["tempo_bpm"] = 100.0
    c["arp"].update(on=True, mode="up", rate="1/16", gate=0.5)
    return c


class Run:
    """A session whose scheduler is advanced block by block (no audio), every row it sends
    kept; player notes go in through `Session.player_note` as the offline render feeds them."""

    def __init__(self, cfg):
        self.s = Session(cfg, SR)
        self.rows = []
        send = self.s.scheduler.send
        self.s.scheduler.send = lambda r: (self.rows.append(r.copy()), send(r))
        self.now = 0

    def to(self, sample):
        while self.now + BLOCK <= sample:
            self.now += BLOCK
            self.s.scheduler.advance(self.now)

    def note(self, kind, note, sample, velocity=0.7, source=1, arp=True):
        self.to(sample)
        self.s.player_note(kind, note, velocity, sample, source,
                           horizon=self.s.clock.beat_at(sample + self.s.scheduler.lookahead),
                           arp=arp)

    def table(self, part=KEYS):
        r = np.concatenate(self.rows) if self.rows else np.zeros((0, 8))
        return r[r[:, 2] == part]

    def ons(self, part=KEYS):
        r = self.table(part)
        return [(int(x[0]), int(x[3])) for x in r if x[1] == K_NOTE_ON]


def no_stuck_notes(rows):
    """Every note-on row has a later note-off row of the same part, note and source."""
    open_ = {}
    for t, kind, part, note, _, src in rows[:, :6]:
        key = (part, note, src)
        if kind == K_NOTE_ON:
            open_[key] = open_.get(key, 0) + 1
        elif kind == K_NOTE_OFF and open_.get(key):
            open_[key] -= 1
    return not any(open_.values())


def test_steps_land_on_their_samples_at_the_tempo(cfg):
    cfg["band"]["tempo_bpm"] = 90.0
    cfg["arp"]["rate"] = "1/8t"
    run = Run(cfg)
    start = run.s.clock.sample_at(F(4))
    for note, vel in CHORD:
        run.note(K_NOTE_ON, note, start - 2000, vel)
    run.to(start + 8 * SR)
    ons = run.ons()
    step_samples = F(60 * SR, 90) / 3                      # 10666.67 samples a step
    first = F(math.ceil(run.s.clock.beat_at(start - 2000 + run.s.scheduler.lookahead) * 3), 3)
    t0 = F(first) * 60 * SR / 90
    assert [t for t, _ in ons] == [math.floor(t0 + k * step_samples) for k in range(len(ons))]
    assert len(ons) >= 30
    assert [n for _, n in ons][:6] == [60, 64, 67, 60, 64, 67]


def test_a_tempo_change_moves_the_steps_from_the_next_beat(cfg):
    run = Run(cfg)
    for note, vel in CHORD:
        run.note(K_NOTE_ON, note, 1000, vel)
    run.to(run.s.clock.sample_at(F(6)))
    run.s.set("/transport/tempo_bpm", 150.0)
    change = run.s.clock.segments[-1].beat
    run.to(run.s.clock.sample_at(change + 8))
    ons = [t for t, _ in run.ons()]
    gaps = np.diff(ons)
    at = run.s.clock.sample_at(change)
    before = [g for t, g in zip(ons, gaps) if t + g <= at]
    after = [g for t, g in zip(ons, gaps) if t >= at]
    assert set(before) == {7200}                           # 100 BPM: 60/100/4 s
    assert set(after) == {4800}                            # 150 BPM
    assert at in ons


def test_stop_panic_release_and_an_unplugged_keyboard_leave_nothing_playing(cfg):
    cfg["arp"]["latch"] = True
    for how in ("stop", "panic", "release", "gone", "all_notes_off"):
        run = Run(cfg)
        for note, vel in CHORD:
            run.note(K_NOTE_ON, note, 1000, vel, source=5)
        run.to(SR)
        for note, _ in CHORD:                              # released: latched, plays on
            run.note(K_NOTE_OFF, note, SR, source=5)
        run.to(2 * SR)
        assert run.ons()[-1][0] > 1.8 * SR
        if how == "stop":
            run.s.set("/transport/playing", "off")
        elif how == "panic":
            run.s.panic()
        elif how == "release":
            run.s.release_all()
        elif how == "gone":
            run.s.source_gone(5)
        else:
            run.note(K_ALL_NOTES_OFF, 0, 2 * SR, source=5)
        cut = run.s.clock.sample_at(run.s.scheduler.cursor)
        run.to(5 * SR)
        assert run.ons() and max(t for t, _ in run.ons()) < cut, how
        assert no_stuck_notes(run.table()), how


def test_switching_the_arp_while_keys_are_down_sticks_no_note(cfg):
    """A note-on the instrument got, released after the arpeggiator came on (the JACK path
    reports it as the arpeggiator's), is released on the instrument; a note the arpeggiator
    took, released after it went off, leaves its input."""
    cfg["arp"]["on"] = False
    run = Run(cfg)
    sched = []
    push = run.s.state.push_sched
    run.s.state.push_sched = lambda *row: (sched.append(row), push(*row))[1]
    run.note(K_NOTE_ON, 60, 1000, arp=False)
    run.s.set("/arp/on", "on")
    run.note(K_NOTE_ON, 64, 2000)
    run.note(K_NOTE_OFF, 60, 3000)                         # reported as the arp's now
    assert any(r[1] == K_NOTE_OFF and r[2] == KEYS and r[3] == 60 for r in sched)
    run.s.set("/arp/on", "off")
    run.note(K_NOTE_OFF, 64, 4000, arp=False)              # its note-on went to the arp
    assert run.s.arp.now.down == ()
    run.s.set("/arp/on", "on")
    run.to(3 * SR)
    assert no_stuck_notes(run.table())


def test_a_band_part_arpeggiates_the_players_chord(cfg):
    cfg["arp"].update(input="chords", part="lead", mode="up")
    run = Run(cfg)
    for note in (62, 65, 69):                               # D minor, played (not taken)
        run.note(K_NOTE_ON, note, 1000, arp=False)
    run.to(3 * SR)
    assert run.ons(LEAD) and not run.ons(KEYS)
    # the band's progression (A minor) until the player's chord is in force, on beat 1
    beat1 = run.s.clock.sample_at(F(1))
    assert {n % 12 for t, n in run.ons(LEAD) if t < beat1} == {0, 4, 9}
    lead = [(t, n) for t, n in run.ons(LEAD) if t >= beat1]
    assert {n % 12 for _, n in lead} == {2, 5, 9}
    assert [n for _, n in lead][:3] == [62, 65, 69]


# ---- the live input path and the offline render: the same notes -----------------------------

def feed_live(cfg, presses, seconds, score=None):
    """The live input path: LiveInput (fixed latency, the audio clock given) decides, the
    notes it hands over reach the session as LiveRun's loop passes them; the scheduler is
    advanced every block before the input reads what arrived. Returns (run, rows the input
    pushed to the engine)."""
    run = Run(cfg)
    if score is not None:
        run.s.follow_score(score)
    pushed = []
    live = LiveInput(run.s.state, "fixed", 5.0, clock=lambda: float(run.now),
                     on_note=lambda *a: run.s.player_note(*a),
                     on_gone=run.s.source_gone)
    live.divert = run.s.arp_takes
    live.on_arp = lambda kind, n, v, t, src: run.s.player_note(kind, n, v, t, src, None, True)
    push = run.s.state.push_midi
    run.s.state.push_midi = lambda *row: (pushed.append(row), push(*row))[1]
    for sample, msg in presses:
        run.to(sample)
        live.feed(msg, 1)
    run.to(seconds * SR)
    return run, pushed, live


def test_live_input_takes_the_notes_from_the_instrument_and_arpeggiates_them(cfg):
    cfg["arp"]["channel"] = 2
    presses = [(30_000, mido.Message("note_on", channel=1, note=n, velocity=90))
               for n in (64, 60, 67)]
    presses += [(31_000, mido.Message("note_on", channel=0, note=48, velocity=90)),
                (31_500, mido.Message("control_change", channel=1, control=64, value=127)),
                (200_000, mido.Message("note_off", channel=1, note=60)),
                (200_000, mido.Message("note_off", channel=1, note=64)),
                (200_000, mido.Message("note_off", channel=1, note=67)),
                (210_000, mido.Message("note_off", channel=0, note=48))]
    run, pushed, live = feed_live(cfg, presses, 6)
    # channel 1 plays the instrument; channel 2's notes and pedal never reach the engine
    assert [(int(r[1]), int(r[3])) for r in pushed] == [(K_NOTE_ON, 48), (K_NOTE_OFF, 48)]
    ons = run.ons()
    assert [n for _, n in ons][:6] == [60, 64, 67, 60, 64, 67]
    assert all(t < 200_000 + run.s.scheduler.lookahead + 7200 for t, _ in ons)
    assert [n for _, n in ons if n == 48] == []
    assert no_stuck_notes(run.table()) and not live._diverted
    # the recording has the arpeggio, not the held chord, and the channel-1 note
    played = [(p.part, p.note) for p in run.s.recorder.notes]
    assert ("keys", 48) in played and len(played) == len(ons) + 1


def test_live_and_offline_give_the_same_arpeggio(cfg, tmp_path):
    """The same chord from a MIDI file: rendered offline as the player (`bandmate render
    --midi`: engine.control.export.render) and played live through LiveInput into a session
    following the same file's time, gives the same note-on rows on the same samples."""
    from controllers.midifile import write_performance
    from engine.control import export
    from engine.listen.score import Score
    grid = 7200                                   # a sixteenth at 100 BPM
    # pressed where no step lies between the live horizon (the input reads it up to a block
    # and 5 ms early) and the offline one: one chord, then another
    chords = [(10 * grid + 5400, (60, 64, 67)), (30 * grid + 5400, (62, 65, 69))]
    notes = [(t / SR, 12 * grid / SR, "keys", n, 100 / 127) for t, ch in chords for n in ch]
    path = tmp_path / "chords.mid"
    write_performance(path, notes, 100.0)
    score = Score.read(path)

    off = Session(cfg, SR)
    rows = []
    send = off.scheduler.send
    off.scheduler.send = lambda r: (rows.append(r.copy()), send(r))
    result = export.render(off, 7.0, tmp_path / "out.wav", 512, path)
    r = np.concatenate(rows)
    r = r[(r[:, 2] == KEYS) & (r[:, 1] == K_NOTE_ON)]
    offline = [(int(x[0]), int(x[3])) for x in r]

    events = export.score_events(score, off)
    assert {e[2] for e in events} == {ARP_INPUT}   # the arpeggiator's, no instrument's
    assert sorted({e[0] for e in events if e[1] == K_NOTE_ON}) == [t for t, _ in chords]
    feed = [(t - 240, mido.Message("note_on" if k == K_NOTE_ON else "note_off", note=int(a),
                                   velocity=round(b * 127) if k == K_NOTE_ON else 0))
            for t, k, _, a, b, _ in events if k in (K_NOTE_ON, K_NOTE_OFF)]
    live, pushed, _ = feed_live(cfg, feed, 7, score)
    assert pushed == []                            # nothing reached the instrument
    assert len(offline) == 24 and offline == live.ons()     # 12 steps of each chord
    assert [n for _, n in offline] == [60, 64, 67] * 4 + [62, 65, 69] * 4
    # the rendered sound: silent from the press to the first step (the chord itself never
    # sounded), then a note starting on every step's sample
    import soundfile as sf
    x = sf.read(str(result.wav))[0][:, 0]
    assert np.abs(x[:offline[0][0]]).max() == 0.0 and chords[0][0] < offline[0][0]
    for t, _ in offline:
        after = np.sqrt(np.mean(x[t:t + 1200] ** 2))
        before = np.sqrt(np.mean(x[t - 600:t] ** 2))
        assert after > 0.01 and after > 2 * before, t


# ---- the address space, config, CLI ----------------------------------------------------------

def test_every_arp_parameter_is_an_address_checked_and_timed(cfg):
    s = Session(cfg, SR)
    addrs = set(s.addresses())
    for a in ("/arp/on", "/arp/input", "/arp/part", "/arp/mode", "/arp/rate", "/arp/octaves",
              "/arp/octave", "/arp/gate", "/arp/latch", "/arp/retrigger",
              "/arp/velocity_mode", "/arp/velocity"):
        assert a in addrs and s.param(a) is not None, a
    assert s.param("/arp/rate").choices[int(s.value("/arp/rate"))] == "1/16"
    s.scheduler.advance(SR // 2)
    cursor = s.scheduler.cursor
    assert s.set("/arp/mode", "down") == MODES.index("down")
    assert s.steer.since("/arp/mode", cursor + 1) == cursor     # from the next step
    s.set("/arp/rate", "1/8t")
    assert s.steer.since("/arp/rate", F(8)) == s.clock.next_bar(cursor)  # from the next bar
    assert s.set("/arp/octaves", 3) == 3.0
    assert s.set("/arp/octaves", 2.4) == 2.0                  # whole octaves, like /PART/agent
    for address, value in (("/arp/mode", "sideways"), ("/arp/rate", "1/5"),
                           ("/arp/octaves", 5), ("/arp/octaves", 0), ("/arp/gate", 0.0),
                           ("/arp/gate", float("nan")), ("/arp/latch", "maybe")):
        before = s.value(address)
        with pytest.raises(ValueError, match=address):
            s.set(address, value)
        assert s.value(address) == before


def test_a_mapped_cc_and_a_scene_reach_the_arp_with_no_code_of_their_own(cfg, tmp_path):
    from engine.control.mapping import load_mapper
    s = Session(cfg, SR)
    path = tmp_path / "map.toml"
    path.write_text('[[cc]]\ncontrol = 20\naddress = "/arp/rate"\n'
                    '[[cc]]\ncontrol = 21\naddress = "/arp/gate"\n')
    mapper = load_mapper(s, path, print)
    mapper.events(mido.Message("control_change", control=20, value=127), 1)
    mapper.events(mido.Message("control_change", control=21, value=0), 1)
    assert RATES[int(s.value("/arp/rate"))] == RATES[-1]
    assert s.value("/arp/gate") == pytest.approx(0.01)
    scenes = tmp_path / "scenes.toml"
    scenes.write_text('[up]\n"/arp/mode" = "up_down"\n"/arp/latch" = "on"\n')
    s.cfg = dict(s.cfg, scenes={"file": str(scenes)})
    s.recall_scene("up")
    assert MODES[int(s.value("/arp/mode"))] == "up_down" and s.value("/arp/latch") == 1.0


def test_config_arp_section_is_validated_and_sets_the_session(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    path = tmp_path / "c.toml"
    path.write_text('[arp]\non = true\nmode = "played"\nrate = "1/8d"\noctaves = 3\n'
                    'latch = true\nchannel = 2\n')
    cfg = load_config(path, environ={})
    s = Session(cfg, SR)
    assert s.value("/arp/on") == 1.0 and s.value("/arp/octaves") == 3.0
    assert MODES[int(s.value("/arp/mode"))] == "played" and s.value("/arp/latch") == 1.0
    assert s.arp_takes(2) and not s.arp_takes(1)
    from engine.rt import layout as L
    table = s.state.ctl[L.C_CHAN_PART:L.C_CHAN_PART + 16]
    assert [int(x) for x in table] == [KEYS, ARP_INPUT] + [KEYS] * 14      # the JACK routing
    s.set("/arp/on", "off")
    assert [int(x) for x in table] == [KEYS] * 16
    for text, field in (('mode = "sideways"', "mode"), ("octaves = 5", "octaves"),
                        ('rate = "1/7"', "rate"), ("gate = 2.0", "gate"),
                        ("channel = 17", "channel"), ("latch = 1", "latch")):
        path.write_text(f"[arp]\n{text}\n")
        with pytest.raises(DataError, match=rf"c.toml:2.*\[arp\] {field}"):
            load_config(path, environ={})
    assert load_config(None, environ={"BANDMATE_ARP_RATE": "1/8t"})["arp"]["rate"] == "1/8t"


def test_the_jam_command_and_the_cli_flag(cfg):
    from engine import cli
    from engine.commands import live_command
    s = Session(cfg, SR)
    s.set("/arp/on", "off")
    reply = live_command(s, "arp down_up 1/8t 3 latch")
    assert reply.startswith("arp on: down_up 1/8t, 3 octave(s)") and "latch on" in reply
    assert s.value("/arp/on") == 1.0 and s.value("/arp/octaves") == 3.0
    before = {a: s.value(a) for a in s.addresses() if a.startswith("/arp/")}
    assert "not on, off, a mode" in live_command(s, "arp up sideways")
    assert "/arp/octaves" in live_command(s, "arp up 9")
    assert {a: s.value(a) for a in before} == before           # nothing half-set
    assert live_command(s, "arp off").startswith("arp off")
    args = cli._parser().parse_args(["jam", "--arp", "up_down"])
    assert cli._overrides(args)["arp"] == {"on": True, "mode": "up_down"}
    with pytest.raises(SystemExit):
        cli._parser().parse_args(["render", "--arp", "sideways"])


@pytest.mark.jack
def test_jack_callback_gives_the_arp_channel_to_the_arpeggiator(jack_server, cfg):
    """Through a real JACK server: the compiled callback plays no instrument for the
    arpeggiator's channel but reports its notes; the live loop hands them to the arpeggiator,
    whose steps then sound; another channel still plays the instrument at once."""
    import time

    from engine.control.live import LiveRun
    from engine.control.warmup import warm_up
    from engine.drivers.jack import JackClient
    from tests.enginekit import NullStream
    from tests.jackrig import Rig
    warm_up(("jack",))
    cfg["arp"]["channel"] = 2
    client = JackClient("bandmate_arp")
    try:
        s = Session(cfg, client.sample_rate)
        s.advance(0)
        client.start(s.state)
        with Rig(seconds=30) as rig:
            rig.connect(client.port_name(client.midi_in), [client.port_name(client.out_l)])
            time.sleep(0.1)
            t = rig.now() + rig.rate // 10
            for n in (60, 64, 67):
                rig.send(bytes([0x91, n, 100]), t)              # channel 2: the arpeggiator's
            rig.wait_until(t + rig.rate // 5, timeout=20)
            assert s.state.counters()["voices"] == 0            # no instrument played them
            # (runs of periods: a host that missed a cycle leaves a gap, not a failure)
            assert max(np.abs(a).max() for _, a in rig.segments(since_frame=t)) == 0.0
            run = LiveRun(s, NullStream(), log=lambda text: None, tty_status=False)
            asyncio.run(run.run(1.5))
            peak = max(np.abs(a).max() for _, a in rig.segments(since_frame=t))
            assert peak > 0.01                                  # the arpeggio sounded
        arp = [p.note for p in s.recorder.notes if p.part == "keys"]
        assert len(arp) >= 6 and arp[:6] == [60, 64, 67, 60, 64, 67]
        assert max(p.dur_s for p in s.recorder.notes) < 0.1        # steps, not a held chord
    finally:
        client.close()


def test_velocity_as_played_or_fixed():
    arp, st = arp_with(octaves=2)
    hold(arp)
    notes = arp.query(F(0), F(2), StaticContext())
    by_note = {60: 0.6, 64: 0.5, 67: 0.7}
    assert all(n.velocity == by_note[n.note % 12 + 60 if n.note % 12 else 60] for n in notes)
    st.set("/arp/velocity_mode", "fixed", F(1))
    st.set("/arp/velocity", 0.33, F(1))
    assert {n.velocity for n in arp.query(F(1), F(2), StaticContext())} == {0.33}


def test_swing_delays_the_off_beat_eighths_like_the_bands(cfg):
    cfg["band"]["swing"] = 0.25
    run = Run(cfg)
    for note, vel in CHORD:
        run.note(K_NOTE_ON, note, 1000, vel)
    run.to(3 * SR)
    ons = [t for t, _ in run.ons()]
    beat = 28800                                           # samples a beat at 100 BPM
    late = round(0.25 * beat / 2)
    phases = {t % beat for t in ons}
    assert phases == {0, beat // 4, beat // 2 + late, 3 * beat // 4}


def test_a_remote_clients_keys_notes_are_arpeggiated_and_released(cfg):
    """OSC's and MQTT's notes (engine.control.remote.Remote): with the arpeggiator taking
    every channel, a remote's keys notes are arpeggiated, not played; closing it releases."""
    from engine.control.remote import Remote
    from engine.rt.events import ASAP
    run = Run(cfg)
    sched = []
    push = run.s.state.push_sched
    run.s.state.push_sched = lambda *row: (sched.append(row), push(*row))[1]
    remote = Remote(run.s, 3000)
    run.to(1000)
    for n in (67, 60, 64):
        remote.note(KEYS, float(n), 0.8, ASAP, run.now)
    assert not [r for r in sched if r[1] == K_NOTE_ON and r[5] == 3000]
    run.to(SR)
    assert [n for _, n in run.ons()][:3] == [60, 64, 67]
    remote.release_held()
    cut = run.s.clock.sample_at(run.s.scheduler.cursor)
    run.to(2 * SR)
    assert max(t for t, _ in run.ons()) < cut and no_stuck_notes(run.table())
