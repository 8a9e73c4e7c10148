"""Helpers for tests that render through the real engine offline."""
from __future__ import annotations

import numpy as np

from engine.control.graph import DEFAULT_POLYPHONY, default_spec
from engine.control.offline import OfflineDriver
from engine.control.state import EngineState
from engine.parts import PARTS
from engine.rt import layout as L
from engine.rt import master
from engine.rt.params import SYNTH_SPECS

SR = 48000
DRY_MIX = {"delay_send": 0.0, "reverb_send": 0.0, "pan": 0.0, "gain_db": 0.0}


def engine(patch: dict | None = None, part: int = 0, sr: int = SR, dry: bool = True,
           polyphony: dict | None = None) -> EngineState:
    """An EngineState whose `part` plays the analog voice with `patch` ({param name: value};
    choice words allowed), the other parts at their default instruments; `polyphony`: {part
    name: voices}. (No sends: the default graph sends nothing.)"""
    return EngineState(sr, analog_spec({PARTS[part]: patch or {}}, polyphony))


def analog_spec(patches: dict, polyphony: dict | None = None) -> dict:
    """The default graph spec with these parts ({part name: {param: value}}, and the parts
    `polyphony` names) playing the analog voice with those values."""
    spec = default_spec()
    poly = polyphony or {}
    for name in sorted(set(patches) | set(poly)):
        inst = {"unit": "analog", "polyphony": float(poly.get(name) or DEFAULT_POLYPHONY[name])}
        for key, value in (patches.get(name) or {}).items():
            q = SYNTH_SPECS[key]
            inst[key] = float(q.choices.index(value) if isinstance(value, str) else value)
        spec["parts"][name]["instrument"] = inst
    return spec


def unit_param(st: EngineState, address: str) -> int:
    """The params-pool index (a K_UNIT_PARAM event's A) of a graph address, in the bank
    playing (bank 0 until a swap)."""
    return st.graph.program.resolve(address)[0]


def render(st: EngineState, events, seconds: float, block: int = 256,
           part_bus: int | None = None) -> np.ndarray:
    """Render; returns the stereo output (frames, 2), or with `part_bus` (a part index) that
    part's left row (its instrument, then its inserts; mono instruments play both rows alike)."""
    frames = round(seconds * st.sample_rate)
    drv = OfflineDriver(st, block, events=events)
    if part_bus is None:
        return drv.render(frames)
    out = np.zeros(frames)
    done = 0
    while done < frames:
        n = min(block, frames - done)
        drv.render(n, np.zeros((n, 2), np.float32))
        out[done:done + n] = st.arrays[L.S_BUS][L.B_PART0 + 2 * part_bus, :n]
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


def synth_index(st: EngineState, part: str, name: str) -> int:
    """The params-pool index of part's instrument parameter `name` (a K_UNIT_PARAM's A)."""
    return unit_param(st, f"/{part}/synth/{name}")


def analog_targets(st: EngineState, part: str) -> np.ndarray:
    """A view of the targets of part's analog voice in the playing bank (engine.rt.params
    order)."""
    prog = st.graph.program
    op = prog.ops[prog.part_op[PARTS.index(part)]]
    pool = st.arrays[L.bank_slot(st.graph.bank, L.G_UPARAMS)]
    return pool[op.params:op.params + len(op.unit.PARAMS)]


def analog_voices(st: EngineState, part: str) -> np.ndarray:
    """A view of the voice bookkeeping (engine.rt.layout VM_* rows) of part's analog voice."""
    from engine.rt.units import analog
    prog = st.graph.program
    op = prog.ops[prog.part_op[PARTS.index(part)]]
    pool = st.arrays[L.bank_slot(st.graph.bank, L.G_USTATE)]
    return pool[op.state + analog.X_VM:op.state + analog.X_VF].reshape(L.VM_SIZE, L.NVMAX)


def analog_kernel_arrays(patch: dict | None = None, polyphony: float = 16.0, sr: int = SR):
    """A lone analog voice's state as the voice kernels (engine.rt.voice) take it: views
    (vf, vm, ps, ptarget, pcur) into a fresh, reset and prepared unit state and params, with
    `patch` ({param name: value}) set."""
    from engine.rt.units import analog
    from engine.rt.units.base import default_params
    state = np.zeros(analog.STATE_SIZE)
    params = np.array(default_params(analog.PARAMS))
    n = len(analog.PARAMS)
    for key, value in dict(patch or {}, polyphony=polyphony).items():
        q = next(q for q in analog.PARAMS if q.name == key)
        params[q.index] = params[n + q.index] = float(
            q.choices.index(value) if isinstance(value, str) else value)
    analog.reset(state, float(sr))
    analog.prepare(state, params, float(sr))
    vf = state[analog.X_VF:].view(np.float32)[:L.VF_ROWS * L.NVMAX]
    vm = state[analog.X_VM:analog.X_VF].reshape(L.VM_SIZE, L.NVMAX)
    return vf, vm, state[:L.PS_SIZE].reshape(1, L.PS_SIZE), params[:n].reshape(1, n), \
        params[n:].reshape(1, n)


class NullStream:
    """A stand-in for a driver's stream in LiveRun tests that need no audio: it only records
    that the run closed it."""
    closed = False

    def close(self):
        self.closed = True


def dry_config(root) -> dict:
    """The repository's config.toml (read from `root`, no environment) with every part's
    reverb and delay sends off, so a part's own strip tells all."""
    from engine.config import load_config
    c = load_config(str(root / "config.toml"), environ={})
    for part in PARTS:
        c["mix"][f"{part}_reverb_send"] = 0.0
        c["mix"][f"{part}_delay_send"] = 0.0
    return c


def render_session(session, seconds: float, block: int = 256, sr: int = SR) -> np.ndarray:
    """Render a Session offline for `seconds`, its scheduler advancing before each block."""
    return OfflineDriver(session.state, block, session.scheduler.advance).render(
        round(seconds * sr))


class SentRows:
    """Every row a session's scheduler sends (kept, then passed on to the engine)."""

    def __init__(self, session):
        self.rows: list[np.ndarray] = []
        send = session.scheduler.send

        def keep(rows):
            self.rows.append(rows.copy())
            send(rows)
        session.scheduler.send = keep

    def onsets(self, part: str | int | None = None) -> np.ndarray:
        """The note-on rows, of one part (name or index) or of all."""
        from engine.parts import PART_INDEX
        from engine.rt.events import EVENT_WIDTH, K_NOTE_ON
        r = np.concatenate(self.rows) if self.rows else np.zeros((0, EVENT_WIDTH))
        r = r[r[:, 1] == K_NOTE_ON]
        if part is None:
            return r
        return r[r[:, 2] == (PART_INDEX[part] if isinstance(part, str) else part)]


def write_midi(path, events, notes, ticks_per_beat: int = 480):
    """A one-track MIDI file from absolute-tick meta `events` [(tick, message)] and `notes`
    [(start tick, end tick, pitch)] (a note-off one tick before its end, sorted with the
    note-offs first at a tick, so repeated notes never overlap). Returns `path`."""
    import mido
    events = list(events)
    for start, end, n in notes:
        events.append((int(start), mido.Message("note_on", note=n, velocity=80)))
        events.append((int(end) - 1, mido.Message("note_off", note=n)))
    events.sort(key=lambda e: (e[0], e[1].type != "note_off"))
    track, last = mido.MidiTrack(), 0
    for tick, msg in events:
        track.append(msg.copy(time=tick - last))
        last = tick
    mid = mido.MidiFile(ticks_per_beat=ticks_per_beat)
    mid.tracks.append(track)
    mid.save(path)
    return path

