"""Helpers for tests that render through the real engine offline."""
from __future__ import annotations

import numpy as np

from engine.control.offline import OfflineDriver
from engine.control.state import EngineState
from engine.rt import layout as L
from engine.rt import master
from engine.rt.params import SYNTH_SPECS

SR = 48000
DRY_MIX = {"delay_send": 0.0, "reverb_send": 0.0, "pan": 0.0, "gain_db": 0.0}


def engine(patch: dict | None = None, part: int = 0, sr: int = SR, dry: bool = True,
           polyphony: dict | None = None) -> EngineState:
    """An EngineState with `patch` ({param name: value}) on `part` and, if `dry`, no sends."""
    st = EngineState(sr, polyphony)
    a = st.arrays
    for name, value in (patch or {}).items():
        spec = SYNTH_SPECS[name]
        v = float(spec.choices.index(value) if isinstance(value, str) else value)
        a[L.S_PTARGET][part, spec.index] = v
        a[L.S_PCUR][part, spec.index] = v
    return st


def unit_param(st: EngineState, address: str) -> int:
    """The params-pool index (a K_UNIT_PARAM event's A) of a graph address, in the bank
    playing (bank 0 until a swap)."""
    return st.graph.program.resolve(address)[0]


def render(st: EngineState, events, seconds: float, block: int = 256,
           part_bus: int | None = None) -> np.ndarray:
    """Render; returns the stereo output (frames, 2), or with `part_bus` the mono part bus."""
    frames = round(seconds * st.sample_rate)
    drv = OfflineDriver(st, block, events=events)
    if part_bus is None:
        return drv.render(frames)
    out = np.zeros(frames)
    done = 0
    while done < frames:
        n = min(block, frames - done)
        drv.render(n, np.zeros((n, 2), np.float32))
        out[done:done + n] = st.arrays[L.S_BUS][part_bus, :n]
        done += n
    return out


def latency(sr: int = SR) -> int:
    """The master's constant delay with the engine's default limiter (the safety limiter:
    0; the look-ahead limiter would add its look-ahead)."""
    return master.latency_samples(master.master_default_params(), sr)


def peak_hz(x: np.ndarray, sr: int = SR) -> float:
    """Frequency of the strongest spectral peak (Hann window, parabolic interpolation)."""
    w = np.hanning(len(x))
    mag = np.abs(np.fft.rfft(x * w))
    k = int(np.argmax(mag[1:])) + 1
    a, b, c = np.log(mag[k - 1:k + 2] + 1e-30)
    delta = 0.5 * (a - c) / (a - 2 * b + c)
    return (k + delta) * sr / len(x)
