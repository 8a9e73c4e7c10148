"""Allocation of all audio-thread state, once, before a stream starts (control side).

`EngineState` owns every array of `engine.rt.layout` and the pointer table whose address the
callbacks receive. Nothing here is touched by the audio thread except through that table;
the control side only writes to the audio thread through the queues (`push_*`), and reads
counters and meters (single aligned int64/float64 words, written by the audio thread).
"""
from __future__ import annotations

import ctypes
import ctypes.util

import numpy as np

from engine.rt import master
from engine.rt import layout as L
from engine.rt.events import EVENT_WIDTH
from engine.rt.ringbuf import push, push_rows


class QueueFull(RuntimeError):
    """The audio thread has not drained a queue: it is not running, or far behind."""


class EngineState:
    """Every preallocated array the render kernel uses, and the pointer table (`table`).

    Runs on the control side at prepare time. The parts' instruments are units of the graph
    (`self.graph`, engine.control.graph), `spec` its first spec (default: every part at its
    default instrument)."""

    def __init__(self, sample_rate: int, spec: dict | None = None):
        self.sample_rate = int(sample_rate)
        sr = self.sample_rate
        a = self.arrays = {
            L.S_CTL: np.zeros(L.CTL_SIZE, np.int64),
            L.S_QSCHED: np.zeros((L.QCAP, EVENT_WIDTH)),
            L.S_QSCHED_IDX: np.zeros(16, np.int64),
            L.S_QMIDI: np.zeros((L.QCAP, EVENT_WIDTH)),
            L.S_QMIDI_IDX: np.zeros(16, np.int64),
            L.S_PENDING: np.zeros((L.PCAP, EVENT_WIDTH)),
            L.S_GLOBAL: np.zeros(L.GL_SIZE),
            L.S_MASTER_STATE: master.master_alloc_state(sr),
            L.S_MASTER_PARAMS: master.master_default_params(),
            L.S_BUS: np.zeros((L.BUS_ROWS, L.MAXBLOCK)),
            L.S_METER: np.zeros(L.METER_SIZE),
            L.S_CBTIME: np.zeros(L.CBTIME_CAP, np.int64),
            L.S_QOUT: np.zeros((L.QCAP, EVENT_WIDTH)),
            L.S_QOUT_IDX: np.zeros(16, np.int64),
            L.S_MOUT: np.zeros((L.MOUT_CAP, 2)),
            L.S_THRU: np.zeros((L.THRU_CAP, 2), np.int64),
        } | {L.bank_slot(b, g): np.zeros((1, 8) if g == L.G_PROG else 1, L.SLOT_DTYPES[
            L.bank_slot(b, g)]) for b in range(L.N_BANKS) for g in range(L.BANK_STRIDE)}
        assert set(a) == set(range(L.N_SLOTS))
        for slot, arr in a.items():
            assert arr.dtype == L.SLOT_DTYPES[slot], slot
            assert arr.flags.c_contiguous, slot
        self.ctl = a[L.S_CTL]
        self.ctl[L.C_SAMPLE_RATE] = sr
        self.ctl[L.C_CLOCK_FN] = _clock_gettime_address()
        self.ctl[L.C_CHAN_PART:L.C_CHAN_PART + 16] = 0   # every MIDI channel plays `keys`
        a[L.S_GLOBAL][L.GL_TEMPO_BPM] = 120.0
        self.table = np.zeros(L.N_SLOTS * L.TABLE_WIDTH, np.int64)
        for slot, arr in a.items():
            self.set_slot(slot, arr)
        self.address = int(self.table.ctypes.data)
        from engine.control.graph import Graph, default_spec
        self.graph = Graph(self, default_spec() if spec is None else spec, sr)

    def set_slot(self, slot: int, arr: np.ndarray) -> None:
        """Point table slot `slot` at `arr` (kept alive here). Only for a slot the audio thread
        is not reading: at prepare time, or a graph bank that is not playing."""
        assert arr.dtype == L.SLOT_DTYPES[slot] and arr.flags.c_contiguous, slot
        self.arrays[slot] = arr
        i = slot * L.TABLE_WIDTH
        self.table[i + 1] = arr.shape[0]
        self.table[i + 2] = arr.shape[1] if arr.ndim == 2 else 0
        self.table[i] = arr.ctypes.data

    # ---- producer side of the queues ----------------------------------------------------
    def push_sched(self, time: int, kind: int, part: int, a=0.0, b=0.0, c=0.0, d=0.0) -> None:
        """Scheduler thread only (the asyncio loop, or the offline driver)."""
        if not push(self.arrays[L.S_QSCHED], self.arrays[L.S_QSCHED_IDX], float(time),
                    float(kind), float(part), float(a), float(b), float(c), float(d)):
            raise QueueFull("scheduler queue full")

    def push_sched_rows(self, rows: np.ndarray) -> int:
        """Scheduler thread only: push (n, EVENT_WIDTH) rows; returns how many fitted."""
        return int(push_rows(self.arrays[L.S_QSCHED], self.arrays[L.S_QSCHED_IDX], rows))

    def push_midi(self, time: int, kind: int, part: int, a=0.0, b=0.0, c=0.0, d=0.0) -> bool:
        """MIDI input thread only. False (never blocks) when the queue is full."""
        return bool(push(self.arrays[L.S_QMIDI], self.arrays[L.S_QMIDI_IDX], float(time),
                         float(kind), float(part), float(a), float(b), float(c), float(d)))

    # ---- reading what the audio thread publishes ---------------------------------------------
    @property
    def sample_time(self) -> int:
        """Absolute sample time of the next block to be rendered."""
        return int(self.ctl[L.C_SAMPLE_TIME])

    def sample_clock(self) -> tuple[int, int] | None:
        """(sample time, CLOCK_MONOTONIC ns) of the start of the block the audio thread rendered
        last, read consistently (a seqlock); None before the first timed block."""
        c = self.ctl
        for _ in range(100):
            s1 = int(c[L.C_CLOCK_SEQ])
            ns, sample = int(c[L.C_BLOCK_NS]), int(c[L.C_BLOCK_SAMPLE])
            if s1 % 2 == 0 and int(c[L.C_CLOCK_SEQ]) == s1:
                return (sample, ns) if s1 else None
        return None

    def counters(self) -> dict[str, int]:
        c = self.ctl
        return {"blocks": int(c[L.C_BLOCKS]), "late_events": int(c[L.C_LATE]),
                "dropped_events": int(c[L.C_DROPPED]), "nonfinite": int(c[L.C_NONFINITE]),
                "xruns": int(c[L.C_XRUNS]), "voices": int(c[L.C_VOICES_ACTIVE]),
                "steals": int(c[L.C_STEALS]), "midi_dropped": int(c[L.C_MIDI_DROPPED])}

    def out(self, nframes: int) -> np.ndarray:
        """The last rendered block's stereo output rows (views, valid until the next render)."""
        return self.arrays[L.S_BUS][L.B_OUT_L:L.B_OUT_R + 1, :nframes]


def _clock_gettime_address() -> int:
    """Address of libc's clock_gettime, for timing callbacks (0 where there is none)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        return int(ctypes.cast(libc.clock_gettime, ctypes.c_void_p).value or 0)
    except (OSError, AttributeError):
        return 0
