"""Wavetables from single-cycle WAV files (control side: file I/O stays off engine/rt)."""
from __future__ import annotations

from pathlib import Path

from engine.rt.units.wavetable import Wavetable, table_from_cycles


def load_wav_table(path: str | Path, frames: int = 1) -> Wavetable:
    """A Wavetable from a WAV (or FLAC) file holding `frames` single cycles back to back (1: the
    whole file is one cycle); channels are averaged."""
    import soundfile
    x, _ = soundfile.read(str(path), dtype="float64", always_2d=True)
    return table_from_cycles(x.mean(axis=1), frames, where=str(path))
