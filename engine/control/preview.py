"""Previews of patches: a phrase that suits the sound, rendered offline (control side).

`render_preview(patch)` plays a short phrase on one part through the real engine, the patch's
engine, its inserts and a touch of the reverb send, and returns the stereo audio. The phrase
follows the patch's tags: a bass line for `bass`, held chords for `pad`, `strings`, `choir`, a
melody over a chord for `lead`, `pluck`, `bell`, `keys`, a beat for `drums`, rising and falling
single notes for `fx`. `spectrogram_png` draws what it sounds like.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.control.graph import default_spec
from engine.control.offline import OfflineDriver
from engine.control.state import EngineState
from engine.parts import DRUM_NOTES, DRUMS, KEYS, PARTS
from engine.patch import Patch, read_patch
from engine.rt.events import K_NOTE_OFF, K_NOTE_ON

BPM = 110.0


def _phrase(tags: list[str]) -> tuple[list[tuple[float, float, float, float]], float]:
    """(start beat, length in beats, note, velocity) rows and the phrase's length in beats."""
    t = set(tags)
    if t & {"drums", "kit", "percussion"}:
        d = DRUM_NOTES
        rows = []
        for bar in range(2):
            for k in range(8):
                b = bar * 4 + k * 0.5
                rows.append((b, 0.25, d["closed_hat"] if k != 7 else d["open_hat"],
                             0.55 + 0.2 * (k % 2 == 0)))
                if k in (0, 3, 5):
                    rows.append((b, 0.25, d["kick"], 0.95))
                if k in (2, 6):
                    rows.append((b, 0.25, d["snare"], 0.9))
        rows += [(7.0, 0.25, d["tom_high"], 0.8), (7.25, 0.25, d["tom_mid"], 0.8),
                 (7.5, 0.25, d["tom_low"], 0.85), (7.75, 0.25, d["clap"], 0.9)]
        return rows, 9.0
    if "bass" in t:
        line = [36, 36, 43, 36, 39, 41, 43, 46, 36, 48, 36, 43, 41, 39, 36, 31]
        return [(k * 0.5, 0.42, n, 0.8 + 0.15 * (k % 4 == 0)) for k, n in enumerate(line)], 9.0
    if t & {"pad", "strings", "choir", "voice", "texture"}:
        chords = [(48, 55, 60, 63), (44, 51, 56, 60), (46, 53, 58, 62), (43, 50, 55, 59)]
        return [(k * 2.0, 1.9, n, 0.7) for k, ch in enumerate(chords) for n in ch], 10.0
    if t & {"fx", "sweep", "noise"}:
        return [(0.0, 3.0, 48, 0.9), (4.0, 3.0, 67, 0.9)], 9.0
    melody = [60, 63, 67, 70, 72, 70, 67, 63, 65, 68, 72, 75, 74, 70, 67, 62]
    rows = [(k * 0.5, 0.45, n, 0.65 + 0.2 * (k % 4 == 0)) for k, n in enumerate(melody)]
    rows += [(0.0, 3.9, 48, 0.55), (4.0, 3.9, 44, 0.55)]
    return rows, 9.5


def preview_engine(patch: Patch, sample_rate: int = 48000) -> tuple[EngineState, int]:
    """An engine whose `keys` part (or the drums, for a kit or another instrument tagged
    `drums`, such as a sampled kit) plays `patch`."""
    drums = patch.engine == "kit" or (not patch.analog and "drums" in patch.tags)
    part = DRUMS if drums else KEYS
    spec = default_spec()
    name = PARTS[part]
    instrument = patch.instrument()
    if instrument["unit"] == "analog":
        instrument["polyphony"] = 32.0
    spec["parts"][name] = {"instrument": instrument, "inserts": patch.inserts,
                           "mix": {"sends": {"reverb": 0.15, "delay": 0.0}}}
    st = EngineState(sample_rate, spec)
    return st, part


def render_preview(patch: Patch | str | Path, sample_rate: int = 48000) -> np.ndarray:
    """The preview phrase of `patch` (a Patch or a file), stereo float32 (frames, 2)."""
    if not isinstance(patch, Patch):
        patch = read_patch(patch)
    st, part = preview_engine(patch, sample_rate)
    rows, beats = _phrase(patch.tags if patch.engine != "kit" else ["drums"])
    spb = 60.0 / BPM * sample_rate
    for start, length, note, vel in rows:
        t0 = round(start * spb)
        st.push_sched(t0, K_NOTE_ON, part, note, vel, 1)
        st.push_sched(t0 + max(1, round(length * spb)), K_NOTE_OFF, part, note, 0.0, 1)
    return OfflineDriver(st, 512).render(round(beats * spb))


def spectrogram_png(audio: np.ndarray, sample_rate: int, path: Path, title: str) -> Path:
    """A spectrogram (log frequency, dB) and the waveform of `audio`, as a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    mono = audio.astype(np.float64).mean(axis=1)
    fig, (ax0, ax1) = plt.subplots(2, 1, figsize=(10, 6), height_ratios=(1, 3), sharex=True)
    t = np.arange(len(mono)) / sample_rate
    ax0.plot(t, audio[:, 0], lw=0.4)
    ax0.plot(t, audio[:, 1], lw=0.4, alpha=0.6)
    ax0.set_ylim(-1, 1)
    ax0.set_title(title)
    ax1.specgram(mono + 1e-9, NFFT=2048, Fs=sample_rate, noverlap=1536, cmap="magma",
                 vmin=-120, scale="dB")
    ax1.set_yscale("symlog", linthresh=200)
    ax1.set_ylim(30, sample_rate / 2)
    ax1.set_xlabel("seconds")
    ax1.set_ylabel("Hz")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
