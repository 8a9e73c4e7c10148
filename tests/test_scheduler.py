"""engine.control.scheduler: notes -> sample-stamped event rows, ahead of the audio clock.

A fake band (a fixed list of `Note`s, filtered by onset) and a recording sink stand in for the
agents and the audio queue; expected sample times are computed here with integer arithmetic.
The end-to-end tests push the scheduler's rows through the real queue and render kernel and
find the exact sample on which the note started.
"""
from fractions import Fraction as F

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.control.clock import Clock
from engine.control.offline import OfflineDriver
from engine.control.scheduler import AGENT_SOURCE, Played, Scheduler
from engine.control.state import EngineState
from engine.parts import DRUMS, PART_INDEX
from engine.patterns.event import Note
from engine.rt import layout as L
from tests.enginekit import analog_voices
from engine.rt import master
from engine.rt.events import EVENT_WIDTH, K_NOTE_OFF, K_NOTE_ON

SR = 48000


def direct_sample(beat, bpm, sr=SR) -> int:
    beat, bpm = F(beat), F(bpm)
    return (beat.numerator * 60 * sr * bpm.denominator) // (beat.denominator * bpm.numerator)


class FakeBand:
    """Returns its notes whose onset lies in [begin, end); records every query span."""

    def __init__(self, notes, reverse=False):
        self.notes = sorted(notes, key=lambda n: (n.begin, n.part, n.note), reverse=reverse)
        self.spans = []

    def query(self, begin, end, ctx):
        self.spans.append((begin, end))
        return [n for n in self.notes if begin <= n.begin < end]


class Sink:
    def __init__(self):
        self.batches = []

    def __call__(self, rows):
        assert rows.shape[1] == EVENT_WIDTH
        self.batches.append(rows.copy())

    def rows(self):
        return np.concatenate(self.batches) if self.batches else np.zeros((0, EVENT_WIDTH))


def canonical(rows):
    """Rows sorted by every column, for comparing multisets of rows."""
    return rows[np.lexsort(rows.T[::-1])]


def make_notes(seed=3, n=300, beats=64):
    rng = np.random.default_rng(seed)
    parts = ["keys", "bass", "chords", "lead", "drums"]
    drum_notes = [36, 38, 42, 46, 37, 39]
    notes = []
    for _ in range(n):
        part = parts[rng.integers(5)]
        d = int(rng.choice([1, 2, 3, 4, 5, 6, 8, 12]))
        begin = F(int(rng.integers(0, beats * d)), d)
        dur = F(int(rng.integers(1, 9)), int(rng.choice([1, 2, 3, 4, 8])))
        note = int(rng.choice(drum_notes)) if part == "drums" else int(rng.integers(24, 100))
        vel = float(rng.integers(1, 128)) / 127
        nudge = float(rng.integers(-15, 16)) / 1000 if rng.random() < 0.5 else 0.0
        notes.append(Note(begin, dur, part, note, vel, nudge))
    return notes


def expected_rows(notes, bpm, sr=SR):
    """The rows the scheduler must produce, from the formula in its contract."""
    rows = []
    for n in notes:
        p = PART_INDEX[n.part]
        nudge = round(n.nudge_s * sr)
        on = max(direct_sample(n.begin, bpm, sr) + nudge, 0)
        off = max(direct_sample(n.begin + n.dur, bpm, sr) + nudge, on + 1)
        rows.append([on, K_NOTE_ON, p, n.note, n.velocity, AGENT_SOURCE + p, 0, 0])
        if p != DRUMS:
            rows.append([off, K_NOTE_OFF, p, n.note, 0.0, AGENT_SOURCE + p, 0, 0])
    return np.array(rows, dtype=np.float64).reshape(-1, EVENT_WIDTH)


# ---- rows ------------------------------------------------------------------------------------

def test_rows_by_hand_at_120():
    notes = [Note(F(1), F(1, 2), "keys", 60, 0.5),
             Note(F(3, 2), F(1, 4), "drums", 36, 1.0),
             Note(F(1, 3), F(2), "bass", 40, 0.25, 0.01)]
    sink = Sink()
    s = Scheduler(Clock(SR, 120), FakeBand(notes), None, sink, lookahead_s=0.08)
    s.advance(2 * 24000)
    rows = sink.rows()
    want = np.array([
        [8000 + 480, K_NOTE_ON, 1, 40, 0.25, 2001, 0, 0],
        [24000, K_NOTE_ON, 0, 60, 0.5, 2000, 0, 0],
        [36000, K_NOTE_OFF, 0, 60, 0.0, 2000, 0, 0],
        [36000, K_NOTE_ON, 4, 36, 1.0, 2004, 0, 0],
        [56000 + 480, K_NOTE_OFF, 1, 40, 0.0, 2001, 0, 0],
    ])
    assert np.array_equal(rows, want)


@pytest.mark.parametrize("bpm", [120, 137, 93.7])
def test_every_row_lands_on_the_exact_sample(bpm):
    notes = make_notes()
    sink = Sink()
    s = Scheduler(Clock(SR, bpm), FakeBand(notes), None, sink)
    s.advance(10 ** 8)
    rows = sink.rows()
    assert np.array_equal(canonical(rows), canonical(expected_rows(notes, F(str(bpm)))))
    assert s.scheduled_notes == len(notes)


def test_rows_use_clock_sample_at_plus_nudge():
    clock = Clock(SR, 137)
    notes = make_notes(seed=11, n=120)
    sink = Sink()
    Scheduler(clock, FakeBand(notes), None, sink).advance(10 ** 8)
    rows = sink.rows()
    for n in notes:
        p = PART_INDEX[n.part]
        on = max(clock.sample_at(n.begin) + round(n.nudge_s * SR), 0)
        hit = rows[(rows[:, 1] == K_NOTE_ON) & (rows[:, 2] == p) & (rows[:, 3] == n.note) &
                   (rows[:, 0] == on)]
        assert len(hit) >= 1, n


def test_drums_get_no_note_off():
    notes = [Note(F(k, 2), F(1, 2), "drums", 42, 0.7) for k in range(16)] + \
            [Note(F(k), F(1), "bass", 36, 0.7) for k in range(8)]
    sink = Sink()
    Scheduler(Clock(SR, 120), FakeBand(notes), None, sink).advance(10 ** 7)
    rows = sink.rows()
    drums = rows[rows[:, 2] == DRUMS]
    assert len(drums) == 16 and set(drums[:, 1]) == {K_NOTE_ON}
    bass = rows[rows[:, 2] == PART_INDEX["bass"]]
    assert np.count_nonzero(bass[:, 1] == K_NOTE_ON) == 8
    assert np.count_nonzero(bass[:, 1] == K_NOTE_OFF) == 8


@pytest.mark.parametrize("reverse", [False, True], ids=["band-order", "reversed"])
def test_note_offs_sort_before_note_ons_at_equal_times(reverse):
    """Rows come out sorted by time, note-offs first at equal times, whatever order the band
    returns its notes in."""
    # legato re-strikes of one note, and another part's note-on at the same instants
    notes = [Note(F(k), F(1), "keys", 60, 0.5) for k in range(8)] + \
            [Note(F(k), F(1), "bass", 36, 0.5) for k in range(8)] + \
            [Note(F(k), F(1, 4), "drums", 36, 0.5) for k in range(8)]
    sink = Sink()
    Scheduler(Clock(SR, 120), FakeBand(notes, reverse), None, sink).advance(10 ** 7)
    for rows in sink.batches:
        times = rows[:, 0]
        assert np.all(np.diff(times) >= 0)
        for t in np.unique(times):
            kinds = list(rows[times == t, 1])
            assert kinds == sorted(kinds, key=lambda k: 0 if k == K_NOTE_OFF else 1), t
    rows = sink.rows()
    at = rows[rows[:, 0] == 24000]
    assert list(at[:, 1]) == [K_NOTE_OFF, K_NOTE_OFF, K_NOTE_ON, K_NOTE_ON, K_NOTE_ON]


def test_a_note_lasts_at_least_one_sample():
    # a 1/100000-beat note: its off lands on the same floor sample as its on -> pushed to +1
    notes = [Note(F(1), F(1, 100000), "lead", 72, 0.5)]
    sink = Sink()
    Scheduler(Clock(SR, 120), FakeBand(notes), None, sink).advance(10 ** 6)
    assert np.array_equal(sink.rows()[:, :2], [[24000, K_NOTE_ON], [24001, K_NOTE_OFF]])


def test_negative_nudge_at_time_zero_clamps_to_zero():
    notes = [Note(F(0), F(1), "keys", 60, 0.5, -0.01)]
    sink = Sink()
    Scheduler(Clock(SR, 120), FakeBand(notes), None, sink).advance(0)
    rows = sink.rows()
    assert rows[0, 0] == 0 and rows[1, 0] == 24000 - 480


def test_swing_moves_onset_and_keeps_the_duration():
    clock = Clock(SR, 120, swing=1 / 3, swing_unit=F(1))
    notes = [Note(F(1, 2), F(1, 4), "keys", 60, 0.5), Note(F(1), F(1, 4), "keys", 62, 0.5)]
    sink = Sink()
    Scheduler(clock, FakeBand(notes), None, sink).advance(10 ** 6)
    rows = sink.rows()
    assert np.array_equal(rows[:, :4], [[16000, K_NOTE_ON, 0, 60], [22000, K_NOTE_OFF, 0, 60],
                                        [24000, K_NOTE_ON, 0, 62], [30000, K_NOTE_OFF, 0, 62]])


# ---- look-ahead and chunking ----------------------------------------------------------------

@pytest.mark.parametrize("lookahead_s", [0.01, 0.08, 0.5])
def test_scheduling_is_ahead_of_the_audio_by_the_lookahead(lookahead_s):
    clock = Clock(SR, 137)
    notes = [Note(F(k, 4), F(1, 8), "keys", 60 + k % 12, 0.5) for k in range(400)]
    sink = Sink()
    s = Scheduler(clock, FakeBand(notes), None, sink, lookahead_s=lookahead_s)
    la = round(lookahead_s * SR)
    assert s.lookahead == la
    onsets = [(n.note, direct_sample(n.begin, 137)) for n in notes]
    done = set()
    for now in range(0, 12 * SR, 997):
        s.advance(now)
        for rows in sink.batches:
            done |= {(r[3], r[0]) for r in rows if r[1] == K_NOTE_ON}
        sink.batches.clear()
        assert done == {(k, t) for k, t in onsets if t < now + la}, now
        assert s.cursor == clock.beat_at(now + la)


def test_queries_are_contiguous_half_open_spans():
    band = FakeBand(make_notes())
    s = Scheduler(Clock(SR, 137), band, None, Sink())
    for now in (0, 10, 10, 5000, 5001, 48000, 48000, 100000):
        s.advance(now)
    assert band.spans[0][0] == 0
    for (b0, e0), (b1, e1) in zip(band.spans, band.spans[1:]):
        assert e0 == b1 and b1 < e1
    assert len(band.spans) == 6           # repeated `now` values query nothing


def test_advance_again_at_the_same_time_does_nothing():
    band = FakeBand([Note(F(0), F(1), "keys", 60, 0.5)])
    sink = Sink()
    s = Scheduler(Clock(SR, 120), band, None, sink)
    assert s.advance(100) == 1
    assert s.advance(100) == 0
    assert s.advance(50) == 0        # time never runs backwards for the scheduler
    assert len(sink.batches) == 1 and len(band.spans) == 1


def _chunked(notes, bpm, nows, lookahead_s=0.08):
    sink = Sink()
    s = Scheduler(Clock(SR, bpm), FakeBand(notes), None, sink, lookahead_s=lookahead_s)
    for now in nows:
        s.advance(now)
    return sink.rows(), s


@settings(max_examples=40, deadline=None)
@given(steps=st.lists(st.integers(min_value=0, max_value=30000), min_size=1, max_size=120),
       bpm=st.sampled_from([120, 137, 93.7, 61]))
def test_chunking_invariance(steps, bpm):
    """However the scheduler is woken (random increasing `now` values), the union of its rows is
    exactly the rows of one advance over the same span."""
    notes = make_notes(seed=5, n=200, beats=40)
    nows = list(np.cumsum(steps))
    chunked, s = _chunked(notes, bpm, nows)
    whole, s1 = _chunked(notes, bpm, [nows[-1]])
    assert s.cursor == s1.cursor
    assert np.array_equal(canonical(chunked), canonical(whole))
    # nothing scheduled twice, nothing lost
    assert s.scheduled_notes == s1.scheduled_notes


def test_chunking_invariance_ticks_of_one_sample():
    notes = make_notes(seed=9, n=200, beats=1)
    chunked, _ = _chunked(notes, 137, range(0, SR // 2), lookahead_s=0.01)
    whole, _ = _chunked(notes, 137, [SR // 2 - 1], lookahead_s=0.01)
    assert len(whole) > 50
    assert np.array_equal(canonical(chunked), canonical(whole))


# ---- on_played ------------------------------------------------------------------------------

def test_on_played_records_each_note_in_seconds():
    played = []
    notes = [Note(F(1), F(1, 2), "keys", 60, 0.5),
             Note(F(2), F(1, 4), "drums", 38, 0.75),
             Note(F(3), F(1), "bass", 40, 0.25, -0.005)]
    s = Scheduler(Clock(SR, 120), FakeBand(notes), None, Sink(), on_played=played.append)
    s.advance(10 ** 6)
    assert played == [Played(24000 / SR, 12000 / SR, "keys", 60, 0.5),
                      Played(48000 / SR, 6000 / SR, "drums", 38, 0.75),
                      Played((72000 - 240) / SR, 24000 / SR, "bass", 40, 0.25)]


# ---- end to end through the engine ----------------------------------------------------------

LA = master.latency_samples(master.master_default_params(), SR)  # the default limiter's delay


def render_one_note(note, bpm, block, frames, lookahead_s=0.08):
    """Schedule `note` through the real queue and kernel; returns (state, output, part bus)."""
    clock = Clock(SR, bpm)
    state = EngineState(SR)

    def send(rows):
        assert state.push_sched_rows(rows) == len(rows)

    sched = Scheduler(clock, FakeBand([note]), None, send, lookahead_s=lookahead_s)
    drv = OfflineDriver(state, block, sched.advance)
    out = np.zeros((frames, 2), np.float32)
    bus = np.zeros(frames)
    p = PART_INDEX[note.part]
    done = 0
    while done < frames:
        n = min(block, frames - done)
        drv.render(n, out[done:done + n])
        rows = state.arrays[L.S_BUS]     # the built-in voice's row, or an instrument unit's pair
        bus[done:done + n] = np.abs(rows[p, :n]) + np.abs(rows[L.B_PART0 + 2 * p, :n]) \
            + np.abs(rows[L.B_PART0 + 2 * p + 1, :n])
        done += n
    return state, out, bus


def first_nonzero(x):
    nz = np.flatnonzero(x)
    return int(nz[0]) if len(nz) else None




def _cases():
    for block in (1, 7, 64, 4096):
        for T in (4095, 4096, 4097, 5000):
            yield pytest.param(block, T, id=f"block{block}-T{T}")


@pytest.mark.parametrize("block,T", list(_cases()))
@pytest.mark.parametrize("part,pitch", [("drums", 36), ("keys", 60)])
def test_scheduled_note_sounds_on_exactly_its_sample(block, T, part, pitch):
    """4095 is a block edge for 7 and 1; 4096 for 1, 64 and 4096."""
    clock = Clock(SR, 120)
    beat = clock.beat_at(T)
    assert (beat * 60 * SR / 120) == T
    state, out, bus = render_one_note(Note(beat, F(1, 4), part, pitch, 0.9), 120, block,
                                      T + 600)
    assert state.ctl[L.C_LAST_NOTE_ON] == T
    assert state.counters()["late_events"] == 0
    assert first_nonzero(bus) == T
    assert first_nonzero(out[:, 0]) == T + LA
    assert first_nonzero(out[:, 1]) == T + LA


@pytest.mark.parametrize("block", [1, 7, 64, 4096])
def test_odd_tempo_note_lands_on_floor_sample(block):
    # beat 5/3 at 137 BPM: 5/3 * 60 * 48000 / 137 = 35036.49... -> 35036
    T = direct_sample(F(5, 3), 137)
    assert T == 35036
    state, out, bus = render_one_note(Note(F(5, 3), F(1, 2), "keys", 64, 0.8), 137, block,
                                      T + 300)
    assert state.ctl[L.C_LAST_NOTE_ON] == T
    assert first_nonzero(bus) == T
    assert first_nonzero(out[:, 0]) == T + LA


@pytest.mark.parametrize("blocks", [
    (1, 7, 64, 3840),
    pytest.param((1, 4096), id="with-4096"),
])
def test_output_is_block_size_invariant_end_to_end(blocks):
    notes_at = [4095, 4096, 9001]
    outs = []
    for block in blocks:
        clock = Clock(SR, 120)
        state = EngineState(SR)
        band = FakeBand([Note(clock.beat_at(t), F(1, 3), part, pitch, 0.8)
                         for t in notes_at for part, pitch in (("drums", 38), ("keys", 67),
                                                               ("bass", 31))])
        sched = Scheduler(clock, band, None, state.push_sched_rows)
        outs.append(OfflineDriver(state, block, sched.advance).render(16384))
    for o in outs[1:]:
        assert np.array_equal(o, outs[0])
    assert first_nonzero(outs[0][:, 0]) == 4095 + LA


def test_restruck_note_at_one_sample_applies_off_before_on_whatever_the_push_order():
    """The kernel orders events at one sample by kind (`_before`): a note-off and the next
    note-on of the same key at the same sample leave exactly one held voice, even when the
    note-on was pushed first, in an earlier batch."""
    for order in ("on_first", "off_first"):
        state = EngineState(SR)
        src = AGENT_SOURCE
        state.push_sched(0, K_NOTE_ON, 0, 60, 0.8, src)
        run = OfflineDriver(state, 64)
        run.render(1024)
        on = np.array([[2048, K_NOTE_ON, 0, 60, 0.8, src, 0, 0]], float)
        off = np.array([[2048, K_NOTE_OFF, 0, 60, 0.0, src, 0, 0]], float)
        first, second = (on, off) if order == "on_first" else (off, on)
        state.push_sched_rows(first)
        run.render(512)
        state.push_sched_rows(second)
        run.render(2048)
        vm = analog_voices(state, "keys")
        held = [v for v in range(L.NVMAX) if vm[L.VM_HELD, v] == 1.0]
        assert len(held) == 1, order
        assert vm[L.VM_NOTE, held[0]] == 60
        assert vm[L.VM_START, held[0]] == 2048
        assert state.ctl[L.C_LAST_NOTE_ON] == 2048


def test_block_larger_than_lookahead_still_lands_on_time():
    T = 4000          # inside block [0, 4096) but beyond the first horizon 0 + 3840
    clock = Clock(SR, 120)
    state, out, bus = render_one_note(Note(clock.beat_at(T), F(1, 4), "keys", 60, 0.9), 120,
                                      4096, T + 4096 + 600)
    assert state.counters()["late_events"] == 0
    assert state.ctl[L.C_LAST_NOTE_ON] == T


# ---- querying a bar at a time (offline, `reach_bars`) ---------------------------------------

def kernel_order(rows):
    """Rows in the order the kernel applies them (`engine.rt.render._before`): time, kind rank
    (controls, then note-offs, then note-ons), part, note, then arrival."""
    rank = np.where(rows[:, 1] == K_NOTE_ON, 2, np.where(rows[:, 1] == K_NOTE_OFF, 1, 0))
    return rows[np.lexsort((np.arange(len(rows)), rows[:, 3], rows[:, 2], rank, rows[:, 0]))]


@pytest.mark.parametrize("bpm", [120, 93.7])
@pytest.mark.parametrize("reach", [1, 3])
def test_reach_bars_sends_the_same_rows_in_the_same_kernel_order(bpm, reach):
    notes = make_notes(seed=7, n=300, beats=48)
    nows = list(range(0, 40 * SR, 512))      # past the last note
    plain, _ = _chunked(notes, bpm, nows)
    sink = Sink()
    band = FakeBand(notes)
    s = Scheduler(Clock(SR, bpm), band, None, sink, reach_bars=reach)
    for now in nows:
        s.advance(now)
    ahead = sink.rows()
    assert np.array_equal(kernel_order(ahead), kernel_order(plain))
    assert len(band.spans) < len(nows) // 20                       # a query per few bars
    assert all(e % 4 == 0 for _, e in band.spans)                  # ending on bar lines


def test_reach_bars_reports_each_note_when_the_lookahead_reaches_it():
    """on_played hears of a note at the same advance() as without reach_bars (a render's MIDI
    file has the notes the render reached, not a bar beyond)."""
    notes = make_notes(seed=4, n=200, beats=40)
    heard = {0: [], 2: []}
    for reach, log in heard.items():
        s = Scheduler(Clock(SR, 137), FakeBand(notes), None, Sink(), on_played=log.append,
                      reach_bars=reach)
        for now in range(0, 12 * SR, 4001):
            s.advance(now)
            log.append(now)
    assert heard[2] == heard[0]


def test_reach_bars_follows_a_tempo_change():
    clock = Clock(SR, 120)
    notes = [Note(F(k, 2), F(1, 4), "keys", 60, 0.5) for k in range(64)]
    sink = Sink()
    s = Scheduler(clock, FakeBand(notes), None, sink, reach_bars=1)
    s.advance(0)
    assert s.cursor == 4
    clock.set_tempo(180, F(6))
    for now in range(0, 8 * SR, 256):
        s.advance(now)
    want = Sink()
    Scheduler(clock, FakeBand(notes), None, want).advance(8 * SR)
    rows = sink.rows()
    assert np.array_equal(kernel_order(rows[rows[:, 0] < 8 * SR]),
                          kernel_order(want.rows()[want.rows()[:, 0] < 8 * SR]))


def test_reach_bars_renders_the_same_audio():
    notes = make_notes(seed=12, n=120, beats=16)
    outs = []
    for reach in (0, 1):
        state = EngineState(SR)
        sched = Scheduler(Clock(SR, 120), FakeBand(notes), None, state.push_sched_rows,
                          reach_bars=reach)
        outs.append(OfflineDriver(state, 256, sched.advance).render(9 * SR))
    assert np.abs(outs[0]).max() > 0
    assert np.array_equal(outs[0], outs[1])
