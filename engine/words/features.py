"""The audio features the timbre words are meant to move, measured on rendered audio (control
side: the evaluation in bench/words.py and tests/test_words.py).

`probe(patch)` renders a patch offline through the real engine (engine.control.preview's
engine: the patch's instrument, its inserts, a touch of reverb send): one note, C3, held
HOLD_S and left to ring until PROBE_S. `measure(patch)` returns every feature of it:

    centroid        spectral centroid of the held note, Hz            (bright / dark)
    warmth          low-mid (100-800 Hz) over high (2-10 kHz), dB     (warm / cold)
    air             energy above 8 kHz, share in dB                   (airy / closed)
    presence        2-5 kHz over 100 Hz-2 kHz, dB                     (biting / round)
    grit            energy off the harmonics of two notes a tritone apart (intermodulation,
                    which only a nonlinearity makes), share in dB, measured late in a longer
                    hold (CHORD_WINDOW) when envelopes have settled, since a moving filter
                    also makes sidebands                               (gritty / clean)
    odd_even        each odd harmonic 3..15 over the mean (in dB) of its even neighbours,
                    averaged: the filter's slope cancels out, a square wave scores high,
                    a saw about 0                                      (hollow / full)
    inharmonicity   energy off the note's harmonic series, share in dB (metallic / woody)
    width           1 - correlation of left and right                 (wide / narrow)
    tail            energy after the release over energy while held, dB (spacious / intimate)
    motion          wobble of the held note's level (dB) and centroid (semitones) around their
                    trend, summed standard deviations                 (shimmering / steady)
    time_centroid   the energy's centre in time, s, measured on one voice (unison 1, no
                    oscillator detune), so beating between detuned voices is not taken for
                    the envelope                                       (plucky / swelling)
    low_share       energy below 150 Hz over the energy above, dB     (fat / thin)
"""
from __future__ import annotations

import numpy as np

from engine.rt.events import K_NOTE_OFF, K_NOTE_ON

SAMPLE_RATE = 48000
NOTE = 48                      # C3, 130.8 Hz
TRITONE = 54
HOLD_S = 1.5
PROBE_S = 3.0
SUSTAIN = (0.25, 1.45)         # the window inside the held note
TAIL = (1.6, 3.0)
CHORD_HOLD_S = 2.5
CHORD_WINDOW = (1.3, 2.5)
EPS = 1e-20


def _hz(note: int) -> float:
    return 440.0 * 2.0 ** ((note - 69) / 12.0)


def probe(patch, notes=(NOTE,), sample_rate: int = SAMPLE_RATE, hold_s: float = HOLD_S,
          length_s: float = PROBE_S) -> np.ndarray:
    """Stereo float64 audio of `patch` (a Patch) holding `notes` for `hold_s`, `length_s`
    long."""
    from engine.control.offline import OfflineDriver
    from engine.control.preview import preview_engine
    st, part = preview_engine(patch, sample_rate)
    off = round(hold_s * sample_rate)
    for n in notes:
        st.push_sched(0, K_NOTE_ON, part, n, 0.8, 1)
        st.push_sched(off, K_NOTE_OFF, part, n, 0.0, 1)
    return OfflineDriver(st, 512).render(round(length_s * sample_rate)).astype(np.float64)


def _span(audio, sr, a, b):
    return audio[round(a * sr):round(b * sr)]


def _spectrum(x: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies, power) of one Hann-windowed FFT of the mono signal `x`."""
    w = np.hanning(len(x))
    p = np.abs(np.fft.rfft(x * w)) ** 2
    return np.fft.rfftfreq(len(x), 1.0 / sr), p


def _band(f, p, lo, hi) -> float:
    return float(p[(f >= lo) & (f < hi)].sum())


def _db(x: float) -> float:
    return 10.0 * np.log10(max(x, EPS))


def _harmonic_mask(f: np.ndarray, f0s) -> np.ndarray:
    """Bins within a few percent (at most 0.2 f0) of a harmonic of any of `f0s`."""
    mask = np.zeros(len(f), bool)
    for f0 in f0s:
        k = np.maximum(np.round(f / f0), 1.0)
        mask |= np.abs(f - k * f0) <= np.minimum(0.03 * k * f0, 0.2 * f0)
    return mask


def _harmonic_db(f, p, f0, k, floor) -> float:
    return 10.0 * np.log10(_band(f, p, k * f0 * 0.97, k * f0 * 1.03) + floor)


def features(audio: np.ndarray, sr: int = SAMPLE_RATE, chord: np.ndarray | None = None
             ) -> dict[str, float]:
    """Every feature of a probe render (`chord`: the two-note render, for grit)."""
    mono = audio.mean(axis=1)
    held = _span(mono, sr, 0.0, HOLD_S)
    sus = _span(mono, sr, *SUSTAIN)
    fh, ph = _spectrum(held, sr)
    total = _band(fh, ph, 20, sr / 2)
    out = {}
    audible = (fh >= 20)
    out["centroid"] = float((fh[audible] * ph[audible]).sum() / max(ph[audible].sum(), EPS))
    out["warmth"] = _db(_band(fh, ph, 100, 800)) - _db(_band(fh, ph, 2000, 10000))
    out["air"] = _db(_band(fh, ph, 8000, sr / 2) / max(total, EPS))
    out["presence"] = _db(_band(fh, ph, 2000, 5000)) - _db(_band(fh, ph, 100, 2000))
    out["low_share"] = _db(_band(fh, ph, 20, 150)) - _db(_band(fh, ph, 150, sr / 2))
    f, p = _spectrum(sus, sr)
    f0 = _hz(NOTE)
    band = (f >= 60) & (f < 10000)
    harm = _harmonic_mask(f, [f0])
    out["inharmonicity"] = _db(p[band & ~harm].sum() / max(p[band].sum(), EPS))
    floor = max(p[band].sum(), EPS) * 1e-9         # -90 dB: a missing harmonic
    h = {k: _harmonic_db(f, p, f0, k, floor) for k in range(2, 17)}
    out["odd_even"] = float(np.mean([h[k] - (h[k - 1] + h[k + 1]) / 2 for k in range(3, 16, 2)]))
    if chord is not None:
        c = _span(chord.mean(axis=1), sr, *CHORD_WINDOW)
        fc, pc = _spectrum(c, sr)
        bc = (fc >= 40) & (fc < 10000)
        hm = _harmonic_mask(fc, [f0, _hz(TRITONE)])
        out["grit"] = _db(pc[bc & ~hm].sum() / max(pc[bc].sum(), EPS))
    left, right = audio[: round(2.5 * sr), 0], audio[: round(2.5 * sr), 1]
    den = np.sqrt((left * left).sum() * (right * right).sum())
    out["width"] = 1.0 - float((left * right).sum() / den) if den > 0 else 0.0
    out["tail"] = _db((_span(mono, sr, *TAIL) ** 2).sum()) - _db((held ** 2).sum())
    out["motion"] = _motion(sus, sr)
    out["time_centroid"] = time_centroid(audio, sr)
    return out


def time_centroid(audio: np.ndarray, sr: int) -> float:
    """The centre in time (s) of the energy of both channels, in 10 ms frames."""
    n = sr // 100
    e = (audio[: len(audio) // n * n] ** 2).sum(axis=1).reshape(-1, n).sum(axis=1)
    t = (np.arange(len(e)) + 0.5) / 100.0
    return float((t * e).sum() / max(e.sum(), EPS))


def one_voice(patch):
    """A copy of `patch` playing one voice per note (unison 1, no oscillator detune)."""
    import copy
    from engine.patch import Patch
    data = copy.deepcopy(patch.data)
    if patch.engine == "analog":
        data["oscillators"]["detune_cents"] = 0.0
    elif "unison" in data.get("synth", {}):
        data["synth"]["unison"] = "1"
    return Patch(data, patch.path)


def _motion(x: np.ndarray, sr: int) -> float:
    """Standard deviation of 20 ms frames' level (dB) and centroid (semitones) around a
    straight-line trend (so a plain decay or a slow swell is not counted as motion)."""
    n = sr // 50
    frames = x[: len(x) // n * n].reshape(-1, n)
    w = np.hanning(n)
    spec = np.abs(np.fft.rfft(frames * w, axis=1)) ** 2
    f = np.fft.rfftfreq(n, 1.0 / sr)
    level = 10 * np.log10(np.maximum(spec.sum(axis=1), EPS))
    cen = (spec * f).sum(axis=1) / np.maximum(spec.sum(axis=1), EPS)
    cen = 12 * np.log2(np.maximum(cen, 20.0))
    t = np.arange(len(level))

    def resid(y):
        a, b = np.polyfit(t, y, 1)
        return float(np.std(y - (a * t + b)))

    return resid(level) + resid(cen)


def measure(patch, sample_rate: int = SAMPLE_RATE) -> dict[str, float]:
    """Every feature of `patch` (a Patch), from its probe renders."""
    audio = probe(patch, (NOTE,), sample_rate)
    chord = probe(patch, (NOTE, TRITONE), sample_rate, CHORD_HOLD_S, CHORD_HOLD_S + 0.1)
    out = features(audio, sample_rate, chord)
    out["time_centroid"] = time_centroid(probe(one_voice(patch), (NOTE,), sample_rate),
                                         sample_rate)
    out["peak"] = float(max(np.abs(audio).max(), np.abs(chord).max()))
    out["finite"] = float(np.isfinite(audio).all() and np.isfinite(chord).all())
    return out
