"""`fixed` latency mode on backend time stamps: engine.control.midi_time and LiveInput.

An in-memory backend (controllers.fake) delivers messages with the delta times a MIDI backend
would measure on its own thread, while the test sets the audio clock Python reads at each
arrival: on time, a poll interval late, or 10 ms late in a simulated GIL stall. The sample times
LiveInput pushes must be the backend times plus one constant (within a frame), whatever the
arrival delays; the drift between the two clocks is learnt; clock jumps, silences, messages
already past and several ports are handled.
"""
from __future__ import annotations

import mido
import numpy as np
import pytest

from controllers.fake import FakeBackend, RecordingSink
from controllers.midi_in import MidiInputs
from engine.control.live_input import LiveInput
from engine.control.midi_time import PortTimeline
from engine.control.state import EngineState
from engine.rt import layout as L
from engine.rt.events import ASAP, TIME
from engine.rt.render import render_block

SR = 48000
STALL = 0.010 * SR


def delays(n, rng, stall_every=7):
    """Arrival delays (samples): most within a 1 ms poll interval, every `stall_every`-th held
    up 10 ms more by a GIL stall, every 5th read at once (the least delayed are the truest)."""
    d = rng.uniform(0, 0.001 * SR, n)
    d[::5] = rng.uniform(0, 0.5, len(d[::5]))
    if stall_every:
        d[3::stall_every] += STALL
    return d


def arrivals(true, delay):
    """When Python reads each message: its time plus its delay, but never before the port's
    previous message (a stall holds up everything queued behind it)."""
    return np.maximum.accumulate(true + delay)


def stream(n, rng, rate_hz=20.0):
    """Backend times (s) of n messages: irregular, like playing."""
    t = np.cumsum(rng.exponential(1 / rate_hz, n))
    return t - t[0]


def place_all(tl, backend, true, delay):
    return np.array([tl.place(b, a) for b, a in zip(backend, arrivals(true, delay))])


# ---- PortTimeline --------------------------------------------------------------------------------

def test_placed_times_are_backend_times_plus_a_constant_whatever_the_delays():
    rng = np.random.default_rng(1)
    backend = stream(600, rng)
    true = 5e6 + backend * SR                    # the audio clock when each message happened
    delay = delays(600, rng)
    delay[0] = 0.0
    tl = PortTimeline(SR)
    err = place_all(tl, backend, true, delay) - true
    assert np.ptp(err) <= 1.0                    # one constant, within a frame
    assert np.all(err <= 1.0)                    # and it is the least delay, not the average
    assert tl.jumps == 0                         # the 10 ms stalls are not clock jumps
    # the same messages read with other delays land on the same samples
    tl2 = PortTimeline(SR)
    delay2 = delays(600, np.random.default_rng(2), stall_every=3)
    delay2[0] = 0.0
    assert np.abs(place_all(tl2, backend, true, delay2) - true - err).max() <= 1.0


def test_a_delayed_first_message_is_corrected_by_the_first_truer_one():
    rng = np.random.default_rng(3)
    backend = stream(200, rng)
    true = backend * SR
    delay = delays(200, rng)
    delay[0] = STALL + 100.0                     # the very first message hit a stall
    tl = PortTimeline(SR)
    err = place_all(tl, backend, true, delay) - true
    first_true = 5                               # delays()[::5] are read at once
    assert err[0] == pytest.approx(STALL + 100.0)
    assert np.ptp(err[first_true:]) <= 1.0
    assert np.all(err <= err[0])                 # never placed later than it arrived


@pytest.mark.parametrize("ppm", [150.0, -400.0])
def test_drift_between_the_clocks_is_learnt_and_followed(ppm):
    rng = np.random.default_rng(4)
    backend = stream(3000, rng)                  # about 150 s of playing
    true = 1e7 + backend * SR * (1 + ppm * 1e-6)
    delay = delays(3000, rng)
    tl = PortTimeline(SR)
    err = place_all(tl, backend, true, delay) - true
    assert tl.rate_ppm == pytest.approx(ppm, abs=3.0)
    settled = backend > 60.0
    assert np.ptp(err[settled]) <= 1.5           # no creeping: the constant holds
    # and without learning the drift it would creep by ppm * 90 s (the test can fail)
    assert abs(ppm) * 1e-6 * SR * (backend[-1] - 60.0) > 100


def test_a_long_silence_keeps_the_learnt_drift():
    rng = np.random.default_rng(5)
    ppm = 100.0
    backend = np.concatenate([stream(1200, rng), 60.0 + 300.0 + stream(200, rng)])
    true = backend * SR * (1 + ppm * 1e-6)
    delay = delays(len(backend), rng)
    tl = PortTimeline(SR)
    err = place_all(tl, backend, true, delay) - true
    after = backend > 300.0
    before = (backend > 40.0) & ~after
    # the five-minute gap moved the clocks apart by 1440 samples; the first note after it
    # already lands within a few frames of where it belongs
    assert abs(err[after][0] - err[before][-1]) <= 4.0
    assert np.ptp(err[after][10:]) <= 1.5


@pytest.mark.parametrize("jump", [-0.5 * SR, 0.030 * SR])
def test_a_clock_jump_is_followed_within_a_second(jump):
    rng = np.random.default_rng(6)
    backend = stream(800, rng)
    true = 2e6 + backend * SR
    arrival = arrivals(true, delays(800, rng))
    at = np.searchsorted(backend, 20.0)
    true[at:] += jump                            # the audio stream restarted / time was lost
    arrival[at:] += jump
    tl = PortTimeline(SR)
    err = np.array([tl.place(b, a) for b, a in zip(backend, arrival)]) - true
    assert tl.jumps == 1
    settled = backend > 21.0
    assert np.ptp(err[settled]) <= 1.0
    assert np.ptp(err[backend < 20.0][20:]) <= 1.0


# ---- LiveInput with a fake backend ---------------------------------------------------------------

class Clock:
    """The audio clock as LiveInput reads it; the test moves it to each arrival."""

    def __init__(self, now=None):
        self.now = now

    def __call__(self):
        return self.now


def pushed_times(state):
    q = state.arrays[L.S_QMIDI]
    n = int(state.arrays[L.S_QMIDI_IDX][0])
    return q[:n, TIME].copy()


def play(port, clock, backend, true, delay):
    """Send note-ons whose backend delta times give `backend`, each read at true + delay."""
    prev = 0.0
    for i, (b, a) in enumerate(zip(backend, arrivals(true, delay))):
        clock.now = a
        port.send(mido.Message("note_on", note=40 + i % 40, velocity=90), delta=b - prev)
        prev = b


def fixed_input(state, clock, ms=5.0):
    sink = LiveInput(state, "fixed", ms, log=lambda s: None, clock=clock)
    backend = FakeBackend("keys:out", "pads:out")
    return sink, backend, MidiInputs(sink, backend=backend)


def test_fixed_mode_plays_at_backend_time_plus_the_fixed_delay_through_midi_inputs():
    rng = np.random.default_rng(7)
    state = EngineState(SR)
    clock = Clock()
    sink, fake, inputs = fixed_input(state, clock)
    backend = stream(300, rng)
    true = 1e6 + backend * SR
    delay = delays(300, rng)
    delay[0] = 0.0
    play(fake.ports["keys:out"], clock, backend, true, delay)
    got = pushed_times(state)
    assert len(got) == 300
    # backend time + one constant (here the fixed 5 ms: the first message arrived at once),
    # within a frame, whatever each message's delay
    assert np.abs(got - (true + sink.offset)).max() <= 1.0
    # stamping on arrival (the old way) would have kept the stalls in: this test can fail
    assert np.ptp(arrivals(true, delay) - true) > STALL
    inputs.close()


def test_several_ports_each_have_their_own_timeline():
    rng = np.random.default_rng(8)
    state = EngineState(SR)
    clock = Clock()
    sink, fake, inputs = fixed_input(state, clock)
    keys, pads = fake.ports["keys:out"], fake.ports["pads:out"]
    bk, bp = stream(100, rng), 0.37 + stream(100, rng)     # pads' first message comes later
    tk, tp = 3e6 + bk * SR, 3e6 + bp * SR
    dk, dp = delays(100, rng), delays(100, rng)
    dk[0] = dp[0] = 0.0
    ak, ap = arrivals(tk, dk), arrivals(tp, dp)
    order = np.argsort(np.concatenate([ak, ap]), kind="stable")
    prev = {"k": 0.0, "p": 0.0}
    expect = []
    for i in order:
        which, j = ("k", i) if i < 100 else ("p", i - 100)
        b, x, a, port = (bk, tk, ak, keys) if which == "k" else (bp, tp, ap, pads)
        clock.now = a[j]
        port.send(mido.Message("note_on", note=60), delta=b[j] - prev[which] if j else 0.0)
        prev[which] = b[j]
        expect.append(x[j] + sink.offset)
    assert len(sink.timelines) == 2
    assert np.abs(pushed_times(state) - np.array(expect)).max() <= 1.0
    keys.unplug()
    inputs.poll_ports()
    assert len(sink.timelines) == 1              # the unplugged port's timeline is gone
    inputs.close()


def test_a_message_read_after_its_time_plays_at_once_and_counts_as_late():
    state = EngineState(SR)
    for _ in range(10):
        render_block(state.table, 64)
    start = state.sample_time                      # the next block's first sample
    clock = Clock()
    sink, fake, inputs = fixed_input(state, clock, ms=1.0)
    keys = fake.ports["keys:out"]
    clock.now = start - 64 - 100.0                 # an on-time message sets the constant
    keys.send(mido.Message("note_on", note=60), delta=0.0)
    clock.now = start - 64 + 10.0 + 0.020 * SR     # 10 frames later, read 20 ms late
    keys.send(mido.Message("note_on", note=64), delta=110 / SR)
    got = pushed_times(state)
    assert got[0] == start - 64 - 100 + 48         # its own sample + the 1 ms delay
    assert got[1] == got[0] + 110                  # still stamped where it belongs: in the past
    render_block(state.table, 64)
    c = state.counters()
    assert c["late_events"] == 2 and c["voices"] == 2
    inputs.close()


def test_unstamped_sources_and_asap_mode_keep_their_behaviour():
    state = EngineState(SR)
    clock = Clock(1000.0)
    sink = LiveInput(state, "fixed", 5.0, log=lambda s: None, clock=clock)
    sink.feed(mido.Message("note_on", note=60), 0)            # the computer keyboard
    asap = LiveInput(state, "asap", 5.0, log=lambda s: None, clock=clock)
    asap.feed(mido.Message("note_on", note=61), 1, at=0.25)
    no_audio = LiveInput(state, "fixed", 5.0, log=lambda s: None, clock=Clock(None))
    no_audio.feed(mido.Message("note_on", note=62), 1, at=0.25)
    assert list(pushed_times(state)) == [1000.0 + 240, ASAP, ASAP]
    assert not sink.timelines and not asap.timelines and not no_audio.timelines


def test_midi_inputs_sum_delta_times_over_every_message_of_a_port():
    sink = RecordingSink()
    backend = FakeBackend("a:out", "b:out")
    inputs = MidiInputs(sink, backend=backend)
    a, b = backend.ports["a:out"], backend.ports["b:out"]
    a.send(mido.Message("note_on", note=60), delta=0.0)
    a.send_bytes([0xF8], 0.25)                      # clock: ignored, but its time counts
    a.send_bytes([0x3C, 0x40], 0.125)               # malformed: dropped, its time counts
    b.send(mido.Message("note_on", note=1), delta=0.0)
    a.send(mido.Message("note_off", note=60), delta=0.5)
    b.send(mido.Message("note_off", note=1), delta=2.0)
    a.send(mido.Message("note_on", note=62))       # a backend without times
    assert sink.stamps == [0.0, 0.0, 0.875, 2.0, None]
    inputs.close()
