"""Note-in → sound-out measurements through a real JACK server, for tests and bench/latency.py.

A rig client (tests.jackrig) sends note-ons into bandmate and records its output in the same
process; bandmate plays a click patch whose first output sample is non-zero, so the onset is
found to the frame. Every figure is the DUT's own latency in frames (the rig's one-period loop
subtracted), which includes the master limiter's constant look-ahead.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from engine.control.live_input import LiveInput
from engine.control.state import EngineState
from engine.control.warmup import warm_up

from engine.rt.params import SYNTH_SPECS
from engine.rt import layout as L
from tests.jackrig import Rig, RigGap, measure, onset_frame

CLICK = {"osc1_wave": 1.0, "osc2_level": 0.0, "filter_type": 3.0, "cutoff_hz": 20.0,
         "resonance": 0.0, "filter_env_octaves": 0.0, "amp_attack_s": 0.0005,
         "amp_sustain": 1.0, "amp_release_s": 0.002, "velocity_sensitivity": 0.0,
         "gain_db": 0.0}
"""Pulse into an open high-pass: the first sample of a note is already well above the floor."""


def click_engine(rate: int) -> EngineState:
    st = EngineState(rate)
    for name, value in CLICK.items():
        st.arrays[L.S_PTARGET][0, SYNTH_SPECS[name].index] = value
        st.arrays[L.S_PCUR][0, SYNTH_SPECS[name].index] = value
    for p in range(L.NPARTS):   # dry: no delay or reverb tails between notes
        st.arrays[L.S_MIX_TARGET][p, 3:5] = 0.0
    return st


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


def retry(fn, *args, attempts: int = 3, **kw):
    """The rig's own callback is Python: on a loaded machine it can miss a cycle (RigGap);
    measure again rather than report a broken recording."""
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
            t.join()


def _play_notes(rig: Rig, n: int, spacing: int, seed: int = 1) -> list[int]:
    rng = np.random.default_rng(seed)
    seqs = []
    t = rig.now() + 8 * rig.period
    for i in range(n):
        at = t + int(rng.integers(0, rig.period))
        seqs.append(rig.send(bytes([0x90, 60 + i % 12, 127]), at))
        rig.send(bytes([0x80, 60 + i % 12, 0]), at + spacing // 2)
        t += spacing
    rig.wait_until(t + 4 * rig.period, timeout=n * spacing / rig.rate + 20)
    return seqs


def _result(rig: Rig, seqs, state: EngineState) -> Result:
    sent = [rig.sent_frame(s) for s in seqs]
    rec = rig.recording(since_frame=min(sent))     # not the start-up (graph changes)
    onsets = [onset_frame(rec, f, 0.02, channel=0, before_frame=f + 2000) for f in sent]
    m = measure(sent, onsets, loop_frames=rig.loop_frames())
    ring = state.arrays[L.S_CBTIME]
    n = int(state.ctl[L.C_CBTIME_W])
    times = ring[:min(n, L.CBTIME_CAP)] / 1000.0
    c = state.counters()
    return Result(m.own_median, m.jitter, m.latencies - rig.loop_frames(), m.missing, c["xruns"],
                  c["late_events"], float(np.median(times)), float(np.percentile(times, 99)),
                  rig.period)


def jack_native(notes: int = 40, spacing_s: float = 0.05, busy: bool = False) -> Result:
    """bandmate's JACK driver (MIDI read in the compiled callback at each event's offset), in
    its own process (tests.jack_dut), with a busy Python thread beside it if `busy`."""
    import json
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    dut = subprocess.Popen([sys.executable, "-m", "tests.jack_dut", "bandmate_dut"]
                           + (["--busy"] if busy else []), cwd=root, stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = dut.stdout.readline().split()
        if not line or line[0] != "ready":
            raise RuntimeError("the JACK device under test did not start")
        name = line[1]
        with Rig(seconds=notes * spacing_s + 10) as rig:
            rig.connect(midi_to=f"{name}:midi_in", audio_from=[f"{name}:out_l"])
            seqs = _play_notes(rig, notes, int(spacing_s * rig.rate))
            sent = [rig.sent_frame(s) for s in seqs]
            rec = rig.recording(since_frame=min(sent))
            loop = rig.loop_frames()
        dut.stdin.close()
        stats = json.loads(dut.stdout.readline())
    finally:
        if dut.poll() is None:
            dut.kill()
        dut.wait()
    onsets = [onset_frame(rec, f, 0.02, channel=0, before_frame=f + 2000) for f in sent]
    m = measure(sent, onsets, loop_frames=loop)
    return Result(m.own_median, m.jitter, m.latencies - loop, m.missing, stats["xruns"],
                  stats["late_events"], stats["cb_us_median"], stats["cb_us_p99"], rig.period)


def portaudio_rtmidi(mode: str, notes: int = 40, spacing_s: float = 0.05,
                     busy: bool = False) -> Result:
    """The PortAudio driver (compiled callback) with MIDI through rtmidi's JACK API."""
    from controllers.midi_in import MidiInputs
    from engine.drivers import portaudio
    warm_up(("portaudio",))
    portaudio.rescan()
    device = portaudio.find_output("system")
    state = click_engine(int(device["default_samplerate"]))
    stream = portaudio.PortAudioStream(state, device, 64).start()
    sink = LiveInput(state, mode, 5.0, log=lambda s: None)
    # rtmidi opens its JACK clients holding the GIL: open them before the rig's Python
    # process callback runs, or the server waits for the rig, which waits for the GIL
    midi = MidiInputs(sink, "jack", [], client_name="bandmate_dut", virtual=True)
    try:
        with Rig(seconds=notes * spacing_s + 10) as rig:
            pa_outs = [p for p in rig.find_ports(".*", is_midi=False, is_input=False)
                       if not p.startswith(("system:", rig.name))]
            midi_in = rig.find_port(".*bandmate in", is_midi=True, is_input=True)
            rig.connect(midi_to=midi_in, audio_from=pa_outs[:1])
            with busy_python(busy):
                seqs = _play_notes(rig, notes, int(spacing_s * rig.rate))
            return _result(rig, seqs, state)
    finally:
        midi.close()
        stream.close()
