"""Note-in → sound-out measurements through a real JACK server, for tests and bench/latency.py.

bandmate runs in this process as the device under test, beside a rig client (tests.jackrig)
that sends note-ons into it and records its output. The rig's callbacks are compiled (no
Python, no GIL), so a busy Python thread here can disturb only what it would disturb in a real
jam: bandmate's Python MIDI path (rtmidi → LiveInput), never the measuring instrument nor the
JACK-native driver. bandmate plays a click patch whose first output sample is non-zero, so the
onset is found to the frame. Every figure is bandmate's own latency in frames (the rig's loop,
if any, subtracted), which includes the master limiter's delay (none for the live safety
limiter, its look-ahead for the look-ahead limiter).

The JACK-native driver's latency does not depend on wall-clock time (MIDI is read in its
compiled callback at each event's frame), so it is measured in JACK's freewheel mode, where no
deadline exists and no host can cause an xrun; the PortAudio + rtmidi path goes through Python
threads and is measured in real time, note by note, a note disturbed by an xrun measured again.
"""
from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from engine.control.state import EngineState
from engine.rt import layout as L
from tests.enginekit import analog_spec
from tests.jackrig import Rig, RigError, RigGap, measure, onset_frame

CLICK = {"osc1_wave": 1.0, "osc2_level": 0.0, "filter_type": 3.0, "cutoff_hz": 20.0,
         "resonance": 0.0, "filter_env_octaves": 0.0, "amp_attack_s": 0.0005,
         "amp_sustain": 1.0, "amp_release_s": 0.002, "velocity_sensitivity": 0.0,
         "gain_db": 0.0}
"""Pulse into an open high-pass: the first sample of a note is already well above the floor."""


def click_engine(rate: int) -> EngineState:
    return EngineState(rate, analog_spec({"keys": CLICK}))


@dataclass
class Result:
    own_median: float
    jitter: int
    latencies: np.ndarray
    missing: int
    xruns: int
    late_events: int
    callback_us_median: float
    callback_us_p99: float
    period: int
    repeated_notes: int = 0   # notes measured again because the rig missed a cycle


def retry(fn, *args, attempts: int = 3, **kw):
    """The host can make the server miss a cycle (RigGap, a VM's stolen time): measure again
    rather than report a broken recording (a fixed number of attempts: never endless)."""
    for i in range(attempts):
        try:
            return fn(*args, **kw)
        except RigGap:
            if i == attempts - 1:
                raise


@contextmanager
def busy_python(enabled: bool):
    """A pure-Python thread spinning (holds the GIL as much as Python lets it)."""
    stop = threading.Event()

    def spin():
        x = 0
        while not stop.is_set():
            for _ in range(1000):
                x = (x * 31 + 7) % 1000003

    t = threading.Thread(target=spin, daemon=True)
    if enabled:
        t.start()
    try:
        yield
    finally:
        stop.set()
        if enabled:
            t.join(timeout=10)


def _callback_us(state) -> tuple[float, float]:
    ring = state.arrays[L.S_CBTIME]
    n = min(int(state.ctl[L.C_CBTIME_W]), L.CBTIME_CAP)
    if n == 0:
        return float("nan"), float("nan")
    us = ring[:n] / 1000.0
    return float(np.median(us)), float(np.percentile(us, 99))


def _measure_notes(rig: Rig, n: int, spacing: int, seed: int = 1,
                   budget_s: float = 60.0) -> tuple[list, list, int]:
    """Real time: play n notes one after another at random offsets in the period, each onset
    read from a short recording of its own, so an xrun of the host costs a repeat of that note,
    not the run. Returns (sent frames, onsets, notes repeated); stops at the time budget."""
    rng = np.random.default_rng(seed)
    sent, onsets, repeats = [], [], 0
    i = 0
    deadline = time.monotonic() + budget_s
    while len(sent) < n and repeats <= 4 * n and time.monotonic() < deadline:
        at = max(rig.now() + 6 * rig.period, rig._last_frame + 1) + int(rng.integers(0, rig.period))
        xruns, late = rig.xruns, rig.late_messages
        seq = rig.send(bytes([0x90, 60 + i % 12, 127]), at)
        rig.send(bytes([0x80, 60 + i % 12, 0]), at + spacing // 2)
        i += 1
        rig.wait_until(at + spacing, timeout=10)
        frame = rig.sent_frame(seq)
        try:
            rec = rig.recording(since_frame=frame)
        except RigGap:
            repeats += 1
            continue
        if rig.xruns != xruns or rig.late_messages != late:   # the host lost a cycle: again
            repeats += 1
            continue
        sent.append(frame)
        onsets.append(onset_frame(rec, frame, 0.02, channel=0, before_frame=frame + 2000))
    return sent, onsets, repeats


def _measure_freewheel(rig: Rig, n: int, spacing: int, seed: int = 1):
    """Freewheel: the whole schedule at once, relative to the cycle that picks it up."""
    rng = np.random.default_rng(seed)
    rel = [i * spacing + int(rng.integers(0, rig.period)) for i in range(n)]
    rig.hold()
    seqs = []
    for i, r in enumerate(rel):
        seqs.append(rig.send(bytes([0x90, 60 + i % 12, 127]), r))
        rig.send(bytes([0x80, 60 + i % 12, 0]), r + spacing // 2)
    with rig.freewheeling():
        rig.arm()
        anchor = rig.anchor()
        rig.wait_until(anchor + rel[-1] + spacing, timeout=60)
    rec = rig.recording(since_frame=anchor)
    sent = [rig.sent_frame(q) for q in seqs]
    onsets = [onset_frame(rec, f, 0.02, channel=0, before_frame=f + 2000) for f in sent]
    return sent, onsets, 0


def _result(rig, sent, onsets, repeats, notes, state, xruns, late_events) -> Result:
    if not sent:
        raise RigError(f"no note measured (xruns={rig.xruns})")
    m = measure(sent, onsets, loop_frames=rig.loop_frames())
    med, p99 = _callback_us(state)
    return Result(m.own_median, m.jitter, m.latencies - rig.loop_frames(),
                  m.missing + (notes - len(sent)), xruns, late_events, med, p99, rig.period,
                  repeats)


def jack_native(notes: int = 40, spacing_s: float = 0.05, busy: bool = False,
                freewheel: bool = True, limiter: float | None = None) -> Result:
    """bandmate's JACK driver: MIDI read in the compiled callback at each event's offset."""
    from engine.control.warmup import warm_up
    from engine.drivers.jack import JackClient
    warm_up(("jack",))
    client = JackClient("bandmate_dut")
    try:
        state = click_engine(client.sample_rate)
        if limiter is not None:
            from engine.rt import master
            state.arrays[L.S_MASTER_PARAMS][master.LIMITER_MODE] = limiter
        client.start(state)
        with Rig(seconds=max(30.0, 4 * notes * spacing_s)) as rig:
            rig.connect(client.port_name(client.midi_in), [client.port_name(client.out_l)])
            spacing = int(spacing_s * rig.rate)
            with busy_python(busy):
                if freewheel:
                    sent, onsets, repeats = _measure_freewheel(rig, notes, spacing)
                else:
                    sent, onsets, repeats = _measure_notes(rig, notes, spacing)
            return _result(rig, sent, onsets, repeats, notes, state, client.xruns,
                           state.counters()["late_events"])
    finally:
        client.close()


def portaudio_rtmidi(mode: str, notes: int = 40, spacing_s: float = 0.05,
                     busy: bool = False) -> Result:
    """The PortAudio driver (compiled callback) with MIDI through rtmidi's JACK API into
    LiveInput (`mode`: "asap" or "fixed"), in real time."""
    from controllers.midi_in import MidiInputs
    from engine.control.live_input import LiveInput
    from engine.control.warmup import warm_up
    from engine.drivers import portaudio
    warm_up(("portaudio",))
    portaudio.rescan()
    device = portaudio.find_output("system")
    state = click_engine(int(device["default_samplerate"]))
    stream = portaudio.PortAudioStream(state, device, 64).start()
    midi = None
    switch = sys.getswitchinterval()
    sys.setswitchinterval(0.0002)       # as `bandmate jam` does: MIDI is read within ~1 ms
    try:
        midi = MidiInputs(LiveInput(state, mode, 5.0, log=lambda s: None), "jack", [],
                          client_name="bandmate_dut", virtual=True)
        with Rig(seconds=10) as rig:
            midi_in = rig.wait_for_port(r"bandmate in$", is_midi=True, is_input=True)
            own = [p for p in rig.find_ports("", is_midi=False, is_input=False)
                   if not p.startswith(("system:", rig.name + ":"))]
            if len(own) < 1:
                raise RigError(f"PortAudio's output port not found: {own}")
            rig.connect(midi_in, [own[0]])
            with busy_python(busy):
                sent, onsets, repeats = _measure_notes(rig, notes, int(spacing_s * rig.rate))
            return _result(rig, sent, onsets, repeats, notes, state, state.counters()["xruns"],
                           state.counters()["late_events"])
    finally:
        sys.setswitchinterval(switch)
        if midi is not None:
            midi.close()
        stream.close()
