"""Note-in → sound-out measurements through a real JACK server, for tests and bench/latency.py.

bandmate runs as a device under test in its own process (tests.jack_dut); a rig client
(tests.jackrig) in this process sends note-ons into it and records its output, so a busy
Python thread beside bandmate cannot disturb the measuring instrument. bandmate plays a click
patch whose first output sample is non-zero, so the onset is found to the frame. Every figure
is bandmate's own latency in frames (the rig's loop, if any, subtracted), which includes the
master limiter's constant look-ahead.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from engine.control.state import EngineState

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
    repeated_notes: int = 0   # notes measured again because the rig missed a cycle


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


def _measure_notes(rig: Rig, n: int, spacing: int, seed: int = 1) -> tuple[list, list, int]:
    """Play n notes one after another at random offsets in the period, each onset read from a
    short recording of its own, so one cycle the rig missed (its callback is Python) or an xrun
    of the server costs a repeat of that note, not the run. Returns (sent frames, onsets,
    notes repeated)."""
    rng = np.random.default_rng(seed)
    sent, onsets, repeats = [], [], 0
    i = 0
    while len(sent) < n and repeats <= n:
        at = rig.now() + 6 * rig.period + int(rng.integers(0, rig.period))
        xruns = rig.xruns
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
        if rig.xruns != xruns:       # the server lost a cycle during this note: measure again
            repeats += 1
            continue
        sent.append(frame)
        onsets.append(onset_frame(rec, frame, 0.02, channel=0, before_frame=frame + 2000))
    return sent, onsets, repeats


def measure_dut(driver: str, mode: str = "asap", notes: int = 40, spacing_s: float = 0.05,
                busy: bool = False) -> Result:
    """Start bandmate as a device under test in its own process (tests.jack_dut) and measure
    note-in → sound-out with the rig in this one."""
    import json
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    args = [sys.executable, "-m", "tests.jack_dut", driver] + ([mode] if driver != "jack" else [])
    dut = subprocess.Popen(args + (["--busy"] if busy else []), cwd=root, stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = dut.stdout.readline().rstrip("\n").split("\t")
        if len(line) != 3 or line[0] != "ready":
            raise RuntimeError(f"the device under test did not start ({driver} {mode})")
        with Rig(seconds=10) as rig:
            rig.connect(midi_to=line[1], audio_from=[line[2]])
            sent, onsets, repeats = _measure_notes(rig, notes, int(spacing_s * rig.rate))
            loop = rig.loop_frames()
            period = rig.period
        dut.stdin.close()
        stats = json.loads(dut.stdout.readline())
    finally:
        if dut.poll() is None:
            dut.kill()
        dut.wait()
    m = measure(sent, onsets, loop_frames=loop)
    return Result(m.own_median, m.jitter, m.latencies - loop, m.missing + (notes - len(sent)),
                  stats["xruns"], stats["late_events"], stats["cb_us_median"],
                  stats["cb_us_p99"], period, repeats)


def jack_native(notes: int = 40, spacing_s: float = 0.05, busy: bool = False) -> Result:
    """bandmate's JACK driver: MIDI read in the compiled callback at each event's offset."""
    return measure_dut("jack", notes=notes, spacing_s=spacing_s, busy=busy)


def portaudio_rtmidi(mode: str, notes: int = 40, spacing_s: float = 0.05,
                     busy: bool = False) -> Result:
    """The PortAudio driver (compiled callback) with MIDI through rtmidi's JACK API."""
    return measure_dut("portaudio", mode, notes, spacing_s, busy)
