"""Through a real JACK server (dummy driver, 48 kHz, 64 frames): bandmate's live drivers beside
a compiled test rig (tests.jackrig) that sends MIDI and records the audio, measured in frames.

Nothing here assumes the host keeps its deadlines: what does not depend on wall-clock time runs
in JACK's freewheel mode (no deadline, no xrun possible); what goes through Python threads runs
in real time, note by note, and a note the host disturbed (an xrun, a late send) is measured
again within a fixed budget. Timing figures (callback load, jitter of the Python MIDI path) are
reported by bench/latency.py, not asserted here.
"""
import threading
import time

import numpy as np
import pytest

from engine.config import load_config
from engine.control.offline import OfflineDriver
from engine.control.session import Session
from engine.control.warmup import warm_up
from engine.rt import master
from tests import latencykit as lk
from tests.jackrig import Rig

pytestmark = pytest.mark.jack

DELAY = master.latency_samples(master.master_default_params(), 48000)   # 0: safety limiter


def _wait(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


@pytest.mark.parametrize("busy", [False, True], ids=["idle", "busy-python-thread"])
def test_jack_native_note_to_sound_is_one_period_with_zero_jitter(jack_server, busy):
    """Freewheel: every note sounds at its own frame in the period it arrives in (the rig's
    one-period loop is the JACK period itself), whatever a Python thread is doing."""
    assert DELAY == 0
    r = lk.jack_native(notes=30, busy=busy)
    assert r.missing == 0 and r.late_events == 0
    assert r.own_median == 0
    assert r.jitter == 0
    assert set(r.latencies.tolist()) == {0}


def test_jack_native_in_real_time_on_the_spans_the_host_left_alone(jack_server):
    """Real time: the same exactness on every note no xrun touched (disturbed notes are
    measured again, within the budget)."""
    r = lk.jack_native(notes=20, freewheel=False)
    assert r.missing == 0 and r.late_events == 0
    assert set(r.latencies.tolist()) == {0}


def test_jack_native_with_the_lookahead_limiter_adds_exactly_its_lookahead(jack_server):
    r = lk.jack_native(notes=10, limiter=master.LOOKAHEAD)
    assert set(r.latencies.tolist()) == {master.lookahead_samples(48000)}


def test_portaudio_asap_plays_every_note_after_it_was_sent(jack_server):
    r = lk.retry(lk.portaudio_rtmidi, "asap", notes=20)
    assert r.missing == 0
    # causal: never before the cycle that carried the note. rtmidi's JACK backend hands a
    # message over when its cycle is handled, not at the message's own frame; on a busy host
    # PortAudio's callback for that same cycle may run after it, so ASAP plays the note from
    # the cycle's first frame, up to one period before the message's own frame
    assert r.latencies.min() > -r.period


def test_portaudio_fixed_mode_plays_every_note_no_earlier_than_promised(jack_server):
    r = lk.retry(lk.portaudio_rtmidi, "fixed", notes=20)
    assert r.missing == 0
    fixed = round(0.005 * 48000)
    # rtmidi's JACK backend stamps a message when its JACK cycle is handled (not at the
    # message's own frame), so a note may come up to one period before `fixed` after it
    assert r.latencies.min() >= fixed - 64 - 8


def test_live_jack_run_is_bit_identical_to_the_offline_render(jack_server):
    """The demo, scheduled live by a control thread and rendered by the JACK callback in real
    time, equals the offline render sample for sample (on the span after the last cycle the
    host made the server miss, at least 0.8 s; else it is measured again)."""
    warm_up(("jack",))
    cfg = load_config("config.toml")
    seconds = 3.0
    offline = Session(cfg, 48000, demo=True)
    ref = OfflineDriver(offline.state, 256, offline.scheduler.advance).render(int(seconds * 48000))
    lk.retry(_live_run_matches, cfg, ref, seconds, attempts=4)


def test_live_jack_run_in_freewheel_is_bit_identical_to_the_offline_render(jack_server):
    """Freewheel (no deadlines): every sample recorded, from the rig's connection on, equals
    the render."""
    from engine.drivers.jack import JackClient
    warm_up(("jack",))
    cfg = load_config("config.toml")
    n = int(4.0 * 48000)
    offline = Session(cfg, 48000, demo=True)
    ref = OfflineDriver(offline.state, 256, offline.scheduler.advance).render(n)
    client = JackClient("bandmate_live_fw")
    try:
        live = Session(cfg, client.sample_rate, demo=True)
        live.scheduler.advance(n)             # everything queued before the first block
        with Rig(seconds=120) as rig:       # freewheel races: a ring far longer than the run
            with rig.freewheeling():
                client.start(live.state)
                rig.connect(None, [client.port_name(client.out_l),
                                   client.port_name(client.out_r)])
                since = rig.recorded_until() + 2 * rig.period     # after the connection
                rig.wait_until(client.frame_of(n) + rig.period, timeout=60)
            start, rec = rig.recording(since_frame=since)
    finally:
        client.close()
    assert live.state.counters()["late_events"] == 0
    first = start - client.frame_of(0) - rig.loop_frames()
    m = min(len(rec), n - first)
    assert m > 2 * 48000, f"only {m} samples after the connection"
    assert np.abs(ref[first:first + m]).max() > 0.05
    assert np.array_equal(rec[:m], ref[first:first + m])


def test_a_graph_swap_while_jack_runs_is_click_free_and_matches_the_render(jack_server):
    """A new graph (here: a darker master) swapped in by a control thread while the JACK
    client plays the demo in real time (100 ms ahead, as a patch reload does): the recording
    equals the offline render with the same swap, and no step at the swap is larger than the
    music's own (threshold: 1.1 x the largest step of the second before)."""
    warm_up(("jack",))
    cfg = load_config("config.toml")
    lk.retry(_swap_run_matches, cfg, attempts=6)


def _swap_run_matches(cfg):
    from engine.drivers.jack import JackClient
    n = int(1.8 * 48000)
    client = JackClient("bandmate_swap")
    swapped_at = []
    try:
        live = Session(cfg, client.sample_rate, demo=True)
        live.scheduler.advance(0)
        spec = dict(live.graph.spec, master=[{"unit": "eq", "high_shelf_gain_db": -9.0,
                                              "low_shelf_gain_db": 4.0}])
        stop = threading.Event()

        def control_thread():
            while not stop.is_set():
                t = live.state.sample_time
                live.scheduler.advance(t)
                if t > 48000 and not swapped_at:
                    live.graph.swap(spec, time=t + 4800)
                    swapped_at.append(t + 4800)
                time.sleep(0.005)

        with Rig(seconds=5.0 + n / 48000) as rig:
            th = threading.Thread(target=control_thread, daemon=True)
            th.start()
            try:
                client.start(live.state)
                rig.connect(None, [client.port_name(client.out_l),
                                   client.port_name(client.out_r)])
                rig.wait_until(client.frame_of(n), timeout=30)
            finally:
                stop.set()
                th.join(timeout=10)
            if not swapped_at:
                raise AssertionError("the control thread never swapped")
            # the span around the swap, as its gapless runs (the host may make a cycle late)
            segments = rig.segments(since_frame=client.frame_of(swapped_at[0] - 12000))
            frame0 = client.frame_of(0) + rig.loop_frames()   # where engine sample 0 landed
            period = rig.period
    finally:
        client.close()
    if live.state.counters()["late_events"]:
        raise lk.RigGap("the control thread was starved: late events")
    assert swapped_at, "the control thread never swapped"
    assert not live.graph.busy()
    t = swapped_at[0]
    offline = Session(cfg, 48000, demo=True)
    drv = OfflineDriver(offline.state, 256, offline.scheduler.advance)
    first_part = drv.render(t - 1000)
    offline.graph.swap(spec, time=t)
    ref = np.concatenate([first_part, drv.render(n - (t - 1000))])
    # every run of the recording is the offline render exactly, at the engine's sample times
    # (an xrun can only move a run by whole periods: cycles the engine or the rig missed)
    heard = np.zeros(n, bool)
    for start, rec in segments:
        base = start - frame0
        if base >= n - 16 * period:       # past the compared span
            continue
        for shift in sorted(range(-16 * period, 16 * period + 1, period), key=abs):
            first = base + shift
            m = min(len(rec), n - first)
            if first >= 0 and m > 0 and np.array_equal(rec[:m], ref[first:first + m]):
                heard[first:first + m] = True
                break
        else:
            raise AssertionError(f"a run of {len(rec)} frames at {start} is not the render")
    if not heard[t - 1000:t + 12000].all():
        raise lk.RigGap("a cycle around the swap was not recorded")
    steps = np.abs(np.diff(ref, axis=0)).max(1)
    assert steps[t - 10:t + 1000].max() <= 1.1 * steps[t - 48000:t - 10].max()
    other = Session(cfg, 48000, demo=True)
    plain = OfflineDriver(other.state, 256, other.scheduler.advance).render(n)
    assert np.array_equal(plain[:t], ref[:t])
    diff = plain[t + 2000:] - ref[t + 2000:]                          # the swap was heard
    assert np.sqrt(np.mean(diff ** 2)) > 0.1 * np.sqrt(np.mean(plain[t + 2000:] ** 2))


def _live_run_matches(cfg, ref, seconds):
    from engine.drivers.jack import JackClient
    client = JackClient("bandmate_live")
    try:
        live = Session(cfg, client.sample_rate, demo=True)
        live.scheduler.advance(0)
        stop = threading.Event()

        def control_thread():
            while not stop.is_set():
                live.scheduler.advance(live.state.sample_time)
                time.sleep(0.005)

        with Rig(seconds=seconds + 5) as rig:
            th = threading.Thread(target=control_thread, daemon=True)
            th.start()
            try:
                client.start(live.state)
                rig.connect(None, [client.port_name(client.out_l),
                                   client.port_name(client.out_r)])
                # compare from 0.4 s on: graph changes at start-up may cost a cycle
                since = client.frame_of(int(0.4 * 48000))
                rig.wait_until(client.frame_of(int(seconds * 48000)), timeout=30)
            finally:
                stop.set()
                th.join(timeout=10)
            # the span since the last cycle the host made the server miss: the callback's
            # frame offset (frame_of) is the one in force since then
            start, rec = rig.segments(since_frame=since)[-1]
    finally:
        client.close()
    if live.state.counters()["late_events"]:
        raise lk.RigGap("the control thread was starved: late events")
    if len(rec) < 0.8 * 48000:
        raise lk.RigGap(f"the host made the server miss a cycle: only {len(rec)} samples "
                        "recorded without a gap at the end")
    # engine sample 0 is rendered at frame_of(0); the rig adds its loop delay, if any
    first = start - client.frame_of(0) - rig.loop_frames()
    n = min(len(rec), len(ref) - first)
    assert n >= 0.8 * 48000 and np.abs(ref[first:first + n]).max() > 0.05
    assert np.array_equal(rec[:n], ref[first:first + n])


def test_jack_native_shrugs_off_garbage_midi_and_releases_notes_when_unplugged(jack_server):
    from engine.control.live_input import LiveInput
    from engine.drivers.jack import JACK_MIDI_SOURCE, JackClient
    warm_up(("jack",))
    client = JackClient("bandmate_garbage")
    told = []
    try:
        state = lk.click_engine(client.sample_rate)
        sink = LiveInput(state, "asap", log=lambda s: None)
        client.on_midi_disconnect = lambda: (told.append(1), sink.source_gone(JACK_MIDI_SOURCE))
        client.start(state)
        with Rig(seconds=120) as rig:
            midi_in = client.port_name(client.midi_in)
            rig.connect(midi_in, [client.port_name(client.out_l)])
            rig.hold()
            rig.send(bytes([0x90, 60, 100]), 0)                       # held: never released
            rng = np.random.default_rng(1)
            garbage = [bytes([0x45, 0x12, 0x07]), bytes([0x90]), bytes([0x90, 200, 300 % 256]),
                       bytes([0xF8]), bytes([0xFE]), bytes([0xE0, 0x7F]),
                       bytes([0xF0]) + bytes(rng.integers(0, 128, 500, dtype=np.uint8)) + b"\xF7"]
            for i in range(400):                                        # a flood, 2 per period
                rig.send(garbage[i % len(garbage)], 64 + i * 32)
            with rig.freewheeling():
                rig.arm()
                t = rig.anchor()
                rig.wait_until(t + 64 + 400 * 32 + 4800, timeout=30)
            assert rig.dropped_messages == 0
            assert state.counters()["voices"] == 1                     # the note still plays
            blocks = state.counters()["blocks"]
            rig.disconnect_ports(rig.midi_out, midi_in)                 # the cable is pulled
            _wait(lambda: state.counters()["voices"] == 0, 5, "the held note to be released")
            _wait(lambda: told, 5, "on_midi_disconnect")
            _wait(lambda: state.counters()["blocks"] > blocks + 10, 5, "the music to go on")
            assert state.counters()["midi_dropped"] > 0
            rec = rig.recording(since_frame=t + 64)
            assert np.all(np.isfinite(rec[1])) and np.abs(rec[1]).max() <= 10 ** (-1 / 20)
            assert np.abs(rec[1]).max() > 0.05
    finally:
        client.close()


_QUIT_PROBE = """
import os, sys, time
from engine.control.warmup import warm_up
from engine.drivers.jack import JackClient
from tests import latencykit as lk
from tests.jackserver import JackServer
warm_up(("jack",))
srv = JackServer(name=f"bandmate_quit_{os.getpid()}", log_dir=sys.argv[1]).start()
gone = []
client = JackClient("bandmate_quit")
client.on_shutdown = lambda: gone.append(1)
client.start(lk.click_engine(client.sample_rate))
deadline = time.monotonic() + 10
while client.state.sample_time == 0 and time.monotonic() < deadline:
    time.sleep(0.01)
assert client.state.sample_time > 0, "no block rendered"
assert client.alive
srv.stop()
deadline = time.monotonic() + 10
while not gone and time.monotonic() < deadline:
    time.sleep(0.01)
assert gone == [1], gone
assert not client.alive
client.close()
print("ok")
"""


def test_jack_client_reports_the_server_going_away(tmp_path):
    """A server that quits under a running client: the compiled shutdown callback flags it,
    the watcher calls on_shutdown once, and close() still returns. (In a process of its own:
    libjack serves one server per process, and this one needs a server it can stop.)"""
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", _QUIT_PROBE, str(tmp_path)], cwd=root,
                         capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), \
        f"exit {out.returncode}\nstdout: {out.stdout[-2000:]}\nstderr: {out.stderr[-3000:]}"


def test_python_callback_fallback_stream_plays_the_same_kernel(jack_server):
    """Where a platform forbids a compiled callback, `callback = "python"` runs the same kernel
    from sounddevice's usual Python callback."""
    from engine.drivers import portaudio
    from engine.rt import layout as L
    from engine.rt.events import K_NOTE_ON
    warm_up(("python",))
    portaudio.rescan()
    device = portaudio.find_output("system")
    state = lk.click_engine(int(device["default_samplerate"]))
    stream = portaudio.PortAudioStream(state, device, 256, callback="python").start()
    try:
        _wait(lambda: state.counters()["blocks"] > 20, 10, "20 blocks")
        assert state.arrays[L.S_METER][L.M_PEAK_L] == 0.0
        state.push_sched(state.sample_time + 4800, K_NOTE_ON, 0, 60, 1.0, 1)
        _wait(lambda: state.arrays[L.S_METER][L.M_PEAK_L] > 0.05, 10, "the note")
    finally:
        stream.close()
    assert state.counters()["voices"] == 1
