"""Sampler instrument: multisampled zones, velocity layers, round robin, crossfaded loops,
octave levels read by a windowed-sinc kernel, and coloured noise (AUDIO THREAD kernels; the
sample set is built on the control side and copied into the state at prepare time).

Sample sets. A set is up to MAX_ZONES zones, each a mono or stereo recording with its root key,
key range (lo..hi), velocity range (vel_lo..vel_hi, MIDI 1..127: velocity layers), tune, gain,
pan, round-robin group, an optional forward loop, or one_shot (plays to its end whatever the
key does). `engine.samples` reads the TOML description and the audio files (control side) and
calls `build_set`; without a set the unit plays `builtin_set(...)`, a looped saw or sine at
A4 (the `builtin` parameter), so a patch that names no samples still sounds.
`prepare(state, params, sample_rate, samples)` copies the set into the state; nothing is read
from disk or allocated on the audio thread.

A note-on picks one zone: the first zone (in file order) whose key and velocity ranges hold the
note; if that zone has a round-robin group g > 0, the note plays the next of the zones of
group g that hold the note, in file order, cycling with one counter per group (reset starts
every cycle again, so a render is repeatable). Mono and legato moves keep the zone and the
sample position (the pitch moves; mono re-attacks the envelope from where it stands).

Resampling. Each zone is stored as LEVELS octave levels, built once with long FIR filters:
level 0 is the recording upsampled 2x (its even samples are the recording itself, the odd ones
a 64-tap Kaiser half-band interpolation: flat to 0.45 fs, -100 dB from 0.55 fs); level m is
level m - 1 low-passed (flat to 0.225, -100 dB from 0.275 of level m's rate; 257 taps) and
decimated by 2. So every level holds its content in the bottom 0.225..0.25 of its rate,
oversampled 2x. A voice transposed by o octaves reads level k = ceil(o - BLEND) (0 for
o <= BLEND), stepping s = 2^(o - k + 1) stored samples a sample: 1.26 < s <= 2 in the level's
own range, the octave content maps below Nyquist. Over the top BLEND octave (s up to 2.52) it
cross-fades to level k + 1 (per control period), so a glide or bend never switches spectra at
once; what folds there lands above 0.433 fs (20.8 kHz at 48 kHz). At the root (s = 2 exactly,
every read on an even stored sample) the voice plays the recording's own samples, bit-exact.

The kernel: an 8-tap Kaiser-windowed sinc (beta 6, cutoff at the stored Nyquist, so its taps
vanish at the integers), tabulated at PH = 256 phases with linear interpolation between them;
each phase is normalised to unit DC gain. On 2x-oversampled levels its images of content below
0.25 of the stored rate are at most -62.8 dB (the kernel's stopband from 0.75), passband flat
within 0.01 dB up to 0.225. Measured (tests/test_unit_sampler.py: a saw band-limited to
0.45 fs transposed up to +5.6 octaves): off-harmonic energy -100 dB at whole octaves, -65 to
-92 dB elsewhere, except over level 0's top third-octave where it folds above 20.8 kHz (-46 dB
in all, below -78 dB under 20 kHz); linear interpolation without levels: -7 to -48 dB.
Cost: about twice the wavetable's per voice (an 8-tap read per channel).

Loops. loop_start..loop_end (frames) is a forward loop; the last loop_crossfade frames before
loop_end are cross-faded (raised cosine, equal gain) with the frames before loop_start, the fade
reaching the pre-start frames exactly at loop_end, so the wrap continues the recording as it
ran into loop_start: no step. The looped recording is unrolled far enough (MARGIN frames) that
every level, filters included, is periodic where the voice wraps: a voice wraps its position
by whole loop lengths inside that region, at every level at once.

Per voice: amp ADSR, an optional state-variable filter (off, lowpass, bandpass, highpass; key
tracking from middle C, the amp envelope and aftertouch on the cutoff), pan (the unit's, the
zone's and the unison spread), velocity sensitivity; play modes, glide, unison and stealing from
engine.rt.units.poly. The mod wheel adds vibrato.

Noise. Every voice can add noise (`noise_level`, and `sample_level` for the recording): white
(xorshift32, uniform), pink (Paul Kellet's refined filter: -3 dB/oct within 0.05 dB from 10 Hz),
brown (a leaky integrator, pole 0.998: -6 dB/oct above 15 Hz at 48 kHz), blue (differenced
pink: +3 dB/oct), violet (differenced white: +6 dB/oct), each scaled to an RMS of NOISE_RMS.
With sample_level 0 and no matching zone needed, the unit is a noise source played by notes.
"""
import math

import numpy as np
from numba import njit

from engine.rt.dsp import JIT
from engine.rt.noise import PINK_GAIN, brown, pink, pink_response
from engine.rt.events import K_NOTE_ON
from engine.rt.osc import tan_fraction
from engine.rt.units import poly
from engine.rt.units.base import IO_OUT_L, IO_OUT_R, Param, clampf, declare
from engine.rt.units.poly import (CHUNK, H_AT_CUR, H_BEND_CUR, H_CPOS, H_HI, H_LFO_PHASE,
                                  H_SERIAL, H_WHEEL_CUR, HDR, NV, P_DETUNE, P_SPREAD,
                                  POLY_ROWS, R_AGE, R_DIRTY, R_PAGE, R_PNOTE, R_START, R_STATE,
                                  R_UIDX, R_UPOS, R_VEL, ST_ATTACK, ST_IDLE, START_FRESH,
                                  START_NONE, START_RETRIG, V_FADE, V_IDLE, V_OFF, V_ON, X0,
                                  adsr_coefs, adsr_step, at, choice, motion, pan_gains, rewind,
                                  steal_samples)

NAME = "sampler"
INSTRUMENT = True

DATA = {"samples": "engine.samples:load_set"}
"""Keys of the instrument's table that carry data, not numbers: key -> its control-side loader
("module:function"), called with the key's value (a factory set's name or a TOML path); what it
returns is passed to `state_size` and `prepare` as that keyword (engine.control.graph)."""

# ---- the resampling kernel and the levels ------------------------------------------------------
K = 8                       # kernel taps
HALF = K // 2
PH = 256                    # tabulated phases
KAISER_BETA = 6.0
LEVELS = 8                  # octave levels: transpositions up to LEVELS - 1 + BLEND octaves
BLEND = 1.0 / 3.0           # octaves over which a level hands over to the next
HB_M = 32                   # half-band upsampler: 2 * HB_M taps on the odd outputs
HB_BETA = 10.0
DEC_Q = 128                 # level decimator: 2 * DEC_Q + 1 taps, cutoff 0.125 of its input rate
DEC_BETA = 10.06
PAD = K + 4 * CHUNK         # zeros after every level (a voice reads past a one-shot's end)
MARGIN = HB_M + sum(DEC_Q * 2 ** (m - 1) // 2 for m in range(1, LEVELS)) \
    + HALF * 2 ** (LEVELS - 1) // 2 + 64
"""Frames after loop_start before every level of a looped recording is periodic where a voice
reads it: the filters' reach (a level m - 1 sample is 2^(m - 2) frames), the kernel's at the
coarsest level, and a guard."""
MAX_ZONES = 512
MAX_RR = 64


def _kernel_table():
    """(PH + 1, K) tap values and their per-phase slopes: tap k at phase p/PH weighs the stored
    sample (i - HALF + 1 + k) for a read at i + p/PH."""
    p = np.arange(PH + 1) / PH
    t = p[:, None] + (HALF - 1) - np.arange(K)[None, :]
    win = np.i0(KAISER_BETA * np.sqrt(np.clip(1.0 - (t / HALF) ** 2, 0.0, None)))
    c = np.sinc(t) * win / np.i0(KAISER_BETA)
    c[0] = 0.0
    c[0, HALF - 1] = 1.0        # phase 0 reads the stored sample itself
    c[PH] = 0.0
    c[PH, HALF] = 1.0
    c /= c.sum(axis=1, keepdims=True)
    d = np.zeros_like(c)
    d[:PH] = c[1:] - c[:PH]
    return np.ascontiguousarray(c), np.ascontiguousarray(d)


KC, KD = _kernel_table()

# ---- noise ------------------------------------------------------------------------------------
NOISES = ("white", "pink", "brown", "blue", "violet")
NOISE_RMS = 0.25


def _noise_scales():
    """Each colour's factor to NOISE_RMS, from its filter's impulse response (white in: uniform
    on [-1, 1), variance 1/3)."""
    hd = np.diff(pink_response(), prepend=0.0)
    rms = {"white": 1.0, "pink": PINK_GAIN, "brown": 1.0,
           "blue": math.sqrt((hd * hd).sum()), "violet": math.sqrt(2.0)}
    return tuple(NOISE_RMS / (math.sqrt(1.0 / 3.0) * rms[c]) for c in NOISES)


NS_WHITE, NS_PINK, NS_BROWN, NS_BLUE, NS_VIOLET = _noise_scales()
M32 = 0xFFFFFFFF

# ---- parameters ---------------------------------------------------------------------------------
FILTERS = ("off", "lowpass", "bandpass", "highpass")
BUILTINS = ("saw", "sine")
PREPARE_PARAMS = ("builtin",)   # applied when the graph is built: a change is a new instrument

PARAMS = declare(poly.poly_params() + [       # the sources, then the wavetable's order
    Param("builtin", 0, len(BUILTINS) - 1, 0, curve="choice", smooth_s=0.0, choices=BUILTINS,
          doc="what plays without a sample set: a looped band-limited saw or sine at A4 (set "
              "at prepare time)"),
    Param("sample_level", 0.0, 1.0, 1.0, doc="the recordings in the voice"),
    Param("noise", 0, len(NOISES) - 1, 0, curve="choice", smooth_s=0.0, choices=NOISES,
          doc="noise colour: white, pink (-3 dB/oct), brown (-6), blue (+3), violet (+6)"),
    Param("noise_level", 0.0, 1.0, 0.0, doc="noise in the voice (1: RMS 0.25 before the filter)"),
    Param("tune_st", -24.0, 24.0, 0.0, doc="transposition of every zone"),
    Param("lfo_hz", 0.01, 20.0, 5.0, curve="log", doc="vibrato rate"),
    Param("attack_ms", 0.05, 10000.0, 1.0, curve="log", smooth_s=0.0),
    Param("decay_ms", 1.0, 20000.0, 1000.0, curve="log", smooth_s=0.0),
    Param("sustain", 0.0, 1.0, 1.0),
    Param("release_ms", 2.0, 20000.0, 200.0, curve="log", smooth_s=0.0),
    Param("filter", 0, len(FILTERS) - 1, 0, curve="choice", smooth_s=0.0, choices=FILTERS),
    Param("cutoff_hz", 20.0, 20000.0, 8000.0, curve="log"),
    Param("resonance", 0.0, 1.0, 0.1),
    Param("filter_env_oct", -8.0, 8.0, 0.0, doc="amp envelope amount on the cutoff"),
    Param("key_tracking", 0.0, 1.0, 0.5, doc="cutoff octaves per octave from middle C"),
    Param("velocity_sens", 0.0, 1.0, 0.5, doc="0: every note at full level; 1: level = vel^2"),
    Param("vibrato_st", 0.0, 2.0, 0.3, doc="vibrato depth at full mod wheel"),
    Param("aftertouch_oct", 0.0, 4.0, 1.0, doc="cutoff rise at full aftertouch"),
    Param("pan", -1.0, 1.0, 0.0, doc="added to each zone's pan and the unison spread"),
    Param("gain_db", -24.0, 12.0, 0.0,
          doc="a trim (sample_level, velocity and the strip go lower)"),
])
(P_BUILTIN, P_SAMPLE_LEVEL, P_NOISE, P_NOISE_LEVEL, P_TUNE, P_LFO_HZ, P_ATTACK, P_DECAY,
 P_SUSTAIN, P_RELEASE, P_FILTER, P_CUTOFF, P_RES, P_FENV, P_KEYTRACK, P_VELSENS, P_VIBRATO,
 P_AT_OCT, P_PAN, P_GAIN_DB) = range(poly.NPOLY, len(PARAMS))
N = len(PARAMS)
SMOOTH_S = np.array([p.smooth_s for p in PARAMS])

# ---- state ------------------------------------------------------------------------------------
X_PCOEF = X0                          # N smoothing coefficients
(X_LFO, X_PITCH_OFF, X_K, X_M0, X_M1, X_M2, X_GAIN, X_L2C, X_NDUAL, X_SL0, X_SLS, X_SLT, X_NL0,
 X_NLS, X_NLT, X_NCOL, X_READY, X_FMODE) = range(X0 + 32, X0 + 50)
assert N <= 32 and X_FMODE < HDR
LN2 = math.log(2.0)
W_MAX = math.log2(0.45 * math.pi)     # cutoff at most 0.45 fs
O_MIN = -16.0
O_MAX = LEVELS - 1.0 + BLEND          # transposition limit (octaves)
NEVER = 1e300

(S_ZONE, S_PZONE, S_P, S_INC, S_SA, S_SB, S_OAL, S_OAR, S_OBL, S_OBR, S_JA0, S_JA1, S_JB0,
 S_JB1, S_BW, S_WE, S_WL, S_ENDP, S_YL, S_YR, S_S1L, S_S2L, S_S1R, S_S2R, S_A1, S_A2, S_A3,
 S_GL, S_GLS, S_GR, S_GRS, S_GTL, S_GTR, S_OUTL, S_OUTR, A_LEV, A_SL, A_ST, S_RNG, S_B0, S_B1,
 S_B2, S_B3, S_B4, S_B5, S_B6, S_NPREV, S_DUAL) = range(POLY_ROWS, POLY_ROWS + 48)
ROWS = POLY_ROWS + 48
RR0 = poly.poly_state_size(ROWS)      # round-robin counters (cleared by reset)
RESET_END = RR0 + MAX_RR
SET_NZ, SET_STEREO = RESET_END, RESET_END + 1     # the set (kept by reset)
SILENT = RESET_END + 8                # 2 K zeros: what an idle voice reads
ZT = SILENT + 2 * K                   # the zone table, then the levels

# zone table columns
(Z_LO, Z_HI, Z_VLO, Z_VHI, Z_ROOT, Z_TUNE, Z_GAIN, Z_PAN, Z_RR, Z_ONESHOT, Z_WE, Z_WL, Z_END,
 Z_RATE, Z_STEREO) = range(15)
Z_LEV = 16                            # per level: origin L, origin R, lowest and highest tap
ZW = Z_LEV + 4 * LEVELS


# ---- control side: building a set -------------------------------------------------------------

def _kaiser(t, half, beta):
    return np.i0(beta * np.sqrt(np.clip(1.0 - (t / half) ** 2, 0.0, None))) / np.i0(beta)


def _convolve(x, h):
    """Full linear convolution of each row of x with h (FFT)."""
    n = x.shape[1] + len(h) - 1
    nfft = 1 << max(1, (n - 1).bit_length())
    return np.fft.irfft(np.fft.rfft(x, nfft) * np.fft.rfft(h, nfft), nfft)[:, :n]


_HB = np.sinc(np.arange(-HB_M, HB_M) + 0.5) * _kaiser(np.arange(-HB_M, HB_M) + 0.5, HB_M,
                                                      HB_BETA)
_t = np.arange(-DEC_Q, DEC_Q + 1, dtype=float)
_DEC = 0.25 * np.sinc(0.25 * _t) * _kaiser(_t, DEC_Q + 1, DEC_BETA)
_DEC /= _DEC.sum()
del _t


def _upsample2(x):
    """Level 0: x (channels, n) at twice its rate, the even samples x itself; returns (array,
    origin) with array[:, origin + 2 i] == x[:, i]."""
    ch, n = x.shape
    odd = _convolve(x, _HB / _HB.sum())
    # odd[:, i + HB_M] is the value between x[i] and x[i + 1], for i in -HB_M .. n + HB_M - 2
    out = np.zeros((ch, 2 * (n + 2 * HB_M)))
    origin = 2 * HB_M
    out[:, origin:origin + 2 * n:2] = x
    m = odd.shape[1]                    # = n + 2 HB_M - 1, i from -HB_M
    out[:, origin - 2 * HB_M + 1:origin - 2 * HB_M + 1 + 2 * m:2] = odd
    return out, origin


def _decimate2(a, origin):
    """The next level: a (channels, n) with its origin, low-passed and decimated by 2."""
    full = _convolve(a, _DEC)
    j0 = -((origin + DEC_Q) // 2)
    j1 = (full.shape[1] - 1 - origin - DEC_Q) // 2
    idx = origin + DEC_Q + 2 * np.arange(j0, j1 + 1)
    return full[:, idx], -j0


def _levels(x):
    """LEVELS (array, origin) pairs of a recording x (channels, frames), each padded with PAD
    zeros at its end."""
    a, o = _upsample2(x)
    out = []
    for m in range(LEVELS):
        if m:
            a, o = _decimate2(a, o)
        out.append((np.concatenate([a, np.zeros((a.shape[0], PAD))], axis=1), o))
    return out


def loop_unroll(x, loop_start, loop_end, crossfade):
    """A looped recording cross-faded and unrolled: (signal, wrap start, loop length) in
    frames. The signal is periodic from loop_start on, and a voice that reaches
    wrap start + length goes back by one length."""
    length = loop_end - loop_start
    xf = int(min(crossfade, loop_start, length))
    d = x[:, :loop_end].copy()
    if xf > 0:
        w = 0.5 - 0.5 * np.cos(np.pi * (np.arange(xf) + 1.0) / xf)    # ends at exactly 1
        d[:, loop_end - xf:] = (1.0 - w) * x[:, loop_end - xf:loop_end] \
            + w * x[:, loop_start - xf:loop_start]
    k = -(-MARGIN // length)
    wrap = loop_start + k * length
    total = wrap + length + MARGIN
    reps = -(-(total - loop_end) // length)
    u = np.concatenate([d] + [d[:, loop_start:]] * reps, axis=1)[:, :total]
    return u, wrap, length


class Zone:
    """One zone for `build_set`: audio (channels, frames) float, its sample rate, and its
    mapping. loop: (start, end, crossfade) in frames, or None."""
    __slots__ = ("audio", "rate", "root", "lo", "hi", "vel_lo", "vel_hi", "tune_cents",
                 "gain_db", "pan", "rr_group", "one_shot", "loop")

    def __init__(self, audio, rate, root, lo=None, hi=None, vel_lo=1, vel_hi=127,
                 tune_cents=0.0, gain_db=0.0, pan=0.0, rr_group=0, one_shot=False, loop=None):
        audio = np.asarray(audio, dtype=np.float64)
        if audio.ndim == 1:
            audio = audio[None, :]
        if audio.shape[0] not in (1, 2) or audio.shape[1] < 1:
            raise ValueError(f"a zone holds 1 or 2 channels of at least one frame, got "
                             f"{audio.shape}")
        self.audio, self.rate, self.root = audio, float(rate), int(root)
        self.lo = self.root if lo is None else int(lo)
        self.hi = self.root if hi is None else int(hi)
        self.vel_lo, self.vel_hi = int(vel_lo), int(vel_hi)
        self.tune_cents, self.gain_db, self.pan = float(tune_cents), float(gain_db), float(pan)
        self.rr_group, self.one_shot, self.loop = int(rr_group), bool(one_shot), loop


class SampleSet:
    """A set ready to install: the zone table (zones, ZW) with level origins relative to the
    data, and the data (every level of every zone)."""

    def __init__(self, table, data, name=""):
        self.table = np.ascontiguousarray(table, dtype=np.float64)
        self.data = np.ascontiguousarray(data, dtype=np.float64)
        self.name = name
        self.stereo = bool((self.table[:, Z_STEREO] > 0).any()) if len(self.table) else False

    @property
    def zones(self):
        return len(self.table)

    @property
    def size(self):
        """Floats of state the set takes."""
        return self.table.size + self.data.size

    def __repr__(self):
        return f"SampleSet({self.name!r}, {self.zones} zones, {self.data.nbytes / 1e6:.1f} MB)"


def build_set(zones, name=""):
    """A SampleSet from Zones (control side: filters, loops and levels built here)."""
    zones = list(zones)
    if not 1 <= len(zones) <= MAX_ZONES:
        raise ValueError(f"a set has 1..{MAX_ZONES} zones, got {len(zones)}")
    table = np.zeros((len(zones), ZW))
    chunks, at0 = [], 0
    for i, z in enumerate(zones):
        row = table[i]
        frames = z.audio.shape[1]
        row[Z_LO], row[Z_HI], row[Z_VLO], row[Z_VHI] = z.lo, z.hi, z.vel_lo, z.vel_hi
        row[Z_ROOT], row[Z_TUNE] = z.root, z.tune_cents / 100.0
        row[Z_GAIN], row[Z_PAN] = 10.0 ** (z.gain_db / 20.0), z.pan
        row[Z_RR], row[Z_ONESHOT], row[Z_RATE] = z.rr_group, float(z.one_shot), z.rate
        row[Z_STEREO] = float(z.audio.shape[0] == 2)
        if z.loop is not None:
            start, end, xf = (int(v) for v in z.loop)
            if not 0 <= start < end <= frames:
                raise ValueError(f"loop {start}..{end} outside the {frames} frames")
            u, wrap, length = loop_unroll(z.audio, start, end, xf)
            row[Z_WE], row[Z_WL], row[Z_END] = 2.0 * (wrap + length), 2.0 * length, NEVER
        else:
            u = z.audio
            row[Z_WE], row[Z_WL], row[Z_END] = NEVER, 0.0, 2.0 * frames
        for m, (a, o) in enumerate(_levels(u)):
            n = a.shape[1]
            col = Z_LEV + 4 * m
            row[col] = at0 + o
            row[col + 1] = at0 + o + (n if a.shape[0] == 2 else 0)
            row[col + 2] = -o
            row[col + 3] = n - o - K
            chunks.append(a.ravel())
            at0 += a.size
    return SampleSet(table, np.concatenate(chunks), name)


BUILTIN_ROOT = 69
BUILTIN_RATE = 48000
BUILTIN_LOOP = 1200                  # eleven periods of 440 Hz at 48 kHz


_BUILTIN = {}


def builtin_set(name="saw"):
    """One of BUILTINS at A4 (440 Hz, peak 1; the sine starts at phase 0, the saw is
    band-limited to 0.45 of the rate), looped on whole periods, over the whole keyboard and
    every velocity: what the unit plays without a sample set (built once per process)."""
    if name in _BUILTIN:
        return _BUILTIN[name]
    t = np.arange(2 * BUILTIN_LOOP) * 440.0 / BUILTIN_RATE
    if name == "sine":
        x = np.sin(2.0 * np.pi * t)
    elif name == "saw":
        h = np.arange(1, int(0.45 * BUILTIN_RATE / 440.0) + 1)
        x = -(np.sin(2.0 * np.pi * np.outer(t, h)) / h).sum(axis=1)
        x /= np.abs(x).max()
    else:
        raise ValueError(f"unknown built-in {name!r}; built-ins: {', '.join(BUILTINS)}")
    _BUILTIN[name] = build_set([Zone(x, BUILTIN_RATE, BUILTIN_ROOT, 0, 127,
                                     loop=(BUILTIN_LOOP, 2 * BUILTIN_LOOP, 0))], f"builtin {name}")
    return _BUILTIN[name]


def state_size(sample_rate, samples=None):
    if samples is None:            # room for any built-in (they have one shape)
        return ZT + max(builtin_set(b).size for b in BUILTINS)
    return ZT + samples.size


def carry_len(sample_rate, samples=None):
    """The live state (header, voices, round-robin counters) a graph swap carries: the set from
    RESET_END on is data the new program got at prepare time (engine.rt.units.base)."""
    return RESET_END


def install(state, samples):
    """Copy a SampleSet into the unit's state (control side, before the stream runs); level
    origins become state indices."""
    nz = samples.zones
    base = ZT + samples.table.size
    table = samples.table.copy()
    for m in range(LEVELS):
        table[:, Z_LEV + 4 * m:Z_LEV + 4 * m + 2] += base
    state[SET_NZ] = nz
    state[SET_STEREO] = float(samples.stereo)
    state[SILENT:ZT] = 0.0
    state[ZT:base] = table.ravel()
    state[base:base + samples.data.size] = samples.data


def prepare(state, params, sample_rate, samples=None):
    """Reset, and install `samples` (a SampleSet; None: the built-in tone the `builtin`
    parameter names) (control side, prepare time)."""
    reset(state, sample_rate)
    if samples is None:
        b = np.nan_to_num(params[P_BUILTIN])
        samples = builtin_set(BUILTINS[int(np.clip(b, 0, len(BUILTINS) - 1) + 0.5)])
    install(state, samples)


# ---- audio thread ------------------------------------------------------------------------------

RFAST = dict(JIT, fastmath={"contract", "arcp", "nsz"})
"""The voice loop may fuse multiply-adds (no reassociation: a voice's samples come out the
same however the block is cut)."""


@njit(**JIT)
def reset(state, sample_rate):
    poly.reset_poly(state, RESET_END)
    for v in range(NV):
        _mute(state, v)
        state[at(S_PZONE, v)] = -1.0


@njit(**JIT)
def active_voices(state):
    return poly.active_voices(state)


def _off(row):
    """Voice row `row` as an unsigned compile-time offset."""
    return np.uint64(HDR + row * NV)


_NVU = np.uint64(NV)            # from one voice row to the next


(_ZONE, _P, _INC, _SA, _SB, _OAL, _OAR, _OBL, _OBR, _JA0, _JA1, _JB0, _JB1, _BW, _WE, _WL, _YL,
 _YR, _S1L, _S2L, _S1R, _S2R, _A1, _A2, _A3, _GL, _GLS, _GR, _GRS, _OUTL, _OUTR, _RNG, _B0, _B1,
 _B2, _B3, _B4, _B5, _B6, _NPREV, _DUAL) = (_off(r) for r in (
    S_ZONE, S_P, S_INC, S_SA, S_SB, S_OAL, S_OAR, S_OBL, S_OBR, S_JA0, S_JA1, S_JB0, S_JB1,
    S_BW, S_WE, S_WL, S_YL, S_YR, S_S1L, S_S2L, S_S1R, S_S2R, S_A1, S_A2, S_A3, S_GL, S_GLS,
    S_GR, S_GRS, S_OUTL, S_OUTR, S_RNG, S_B0, S_B1, S_B2, S_B3, S_B4, S_B5, S_B6, S_NPREV,
    S_DUAL))


@njit(inline="always", **RFAST)
def _tap(state, x, j0, j1):
    """(first stored index relative to the level's origin, phase row, phase fraction) of a read
    at x, the first index kept within [j0, j1]."""
    i = int(x)
    pf = (x - i) * PH
    p = int(pf)
    j = min(max(i - (HALF - 1), j0), j1)
    return j, p, pf - p


@njit(**RFAST)
def _read(state, hi, stereo):
    """One sample of voices [0, hi) at their level a, into S_YL / S_YR."""
    for v in range(np.uint64(0), hi):
        j, p, fr = _tap(state, state[_P + v] * state[_SA + v], int(state[_JA0 + v]),
                        int(state[_JA1 + v]))
        ol = int(state[_OAL + v]) + j
        yl = 0.0
        if stereo:
            orr = int(state[_OAR + v]) + j
            yr = 0.0
            for k in range(K):
                c = KC[p, k] + fr * KD[p, k]
                yl += c * state[ol + k]
                yr += c * state[orr + k]
            state[_YR + v] = yr
        else:
            for k in range(K):
                yl += (KC[p, k] + fr * KD[p, k]) * state[ol + k]
            state[_YR + v] = yl
        state[_YL + v] = yl


@njit(**RFAST)
def _blend(state, count, stereo):
    """The voices in a level cross-fade (the first `count` of the S_DUAL list): level b mixed
    in by S_BW."""
    for d in range(count):
        v = np.uint64(state[_DUAL + np.uint64(d)])
        j, p, fr = _tap(state, state[_P + v] * state[_SB + v], int(state[_JB0 + v]),
                        int(state[_JB1 + v]))
        ol = int(state[_OBL + v]) + j
        orr = int(state[_OBR + v]) + j
        yl = 0.0
        yr = 0.0
        for k in range(K):
            c = KC[p, k] + fr * KD[p, k]
            yl += c * state[ol + k]
            yr += c * state[orr + k]
        w = state[_BW + v]
        a = state[_YL + v]
        state[_YL + v] = a + w * (yl - a)
        a = state[_YR + v]
        state[_YR + v] = a + w * ((yr if stereo else yl) - a)


@njit(inline="always", **RFAST)
def _white(state, v):
    """The voice's next uniform value in [-1, 1) (xorshift32)."""
    r = np.int64(state[_RNG + v])
    r ^= (r << 13) & M32
    r ^= r >> 17
    r ^= (r << 5) & M32
    state[_RNG + v] = float(r)
    return float(r) * (2.0 / 4294967296.0) - 1.0


@njit(inline="always", **RFAST)
def _pink(state, v, w):
    """Pink (engine.rt.noise), one sample (unscaled): memories in rows S_B0..S_B6."""
    return pink(state, _B0 + v, _NVU, w)


@njit(inline="always", **RFAST)
def _noise(state, v, colour):
    w = _white(state, v)
    if colour == 0:
        return NS_WHITE * w
    if colour == 1:
        return NS_PINK * _pink(state, v, w)
    if colour == 2:
        return NS_BROWN * brown(state, _B0 + v, w)
    if colour == 3:
        y = _pink(state, v, w)
        d = y - state[_NPREV + v]
        state[_NPREV + v] = y
        return NS_BLUE * d
    d = w - state[_NPREV + v]
    state[_NPREV + v] = w
    return NS_VIOLET * d


@njit(**RFAST)
def _voices(state, hi, m0, m1, m2, sl, nl, colour, filtered):
    """One sample of voices [0, hi) after `_read` and `_blend`: noise, the filter (if any),
    the level and place into S_OUTL / S_OUTR, the ramps and positions one sample on."""
    for v in range(np.uint64(0), hi):
        yl = state[_YL + v] * sl
        yr = state[_YR + v] * sl
        if colour >= 0:
            n = nl * _noise(state, v, colour)
            yl += n
            yr += n
        if filtered:
            yl, yr = _filter(state, v, yl, yr, m0, m1, m2)
        gl = state[_GL + v]
        gr = state[_GR + v]
        state[_OUTL + v] = yl * gl
        state[_OUTR + v] = yr * gr
        state[_GL + v] = gl + state[_GLS + v]
        state[_GR + v] = gr + state[_GRS + v]
        p = state[_P + v] + state[_INC + v]
        state[_P + v] = p - state[_WL + v] if p >= state[_WE + v] else p


@njit(inline="always", **RFAST)
def _filter(state, v, yl, yr, m0, m1, m2):
    """Voice v's state-variable filters (Simper), one sample of each channel."""
    a1 = state[_A1 + v]
    a2 = state[_A2 + v]
    a3 = state[_A3 + v]
    s1 = state[_S1L + v]
    s2 = state[_S2L + v]
    v3 = yl - s2
    v1 = a1 * s1 + a2 * v3
    v2 = s2 + a2 * s1 + a3 * v3
    state[_S1L + v] = 2.0 * v1 - s1
    state[_S2L + v] = 2.0 * v2 - s2
    outl = m0 * yl + m1 * v1 + m2 * v2
    s1 = state[_S1R + v]
    s2 = state[_S2R + v]
    v3 = yr - s2
    v1 = a1 * s1 + a2 * v3
    v2 = s2 + a2 * s1 + a3 * v3
    state[_S1R + v] = 2.0 * v1 - s1
    state[_S2R + v] = 2.0 * v2 - s2
    return outl, m0 * yr + m1 * v1 + m2 * v2



@njit(**JIT)
def _render(state, bus, ol, orr, i0, n, cpos):
    """Every voice over [i0, i0 + n), into the out rows (which hold 0 there); cpos: the first
    sample's place in its control period."""
    hi = np.uint64(((int(state[H_HI]) + 3) // 4) * 4)
    if hi == 0:
        return
    m0 = state[X_M0]
    m1 = state[X_M1]
    m2 = state[X_M2]
    nd = int(clampf(state[X_NDUAL], 0.0, NV))
    stereo = state[SET_STEREO] > 0.0
    noisy = state[X_NL0] != 0.0 or state[X_NLS] != 0.0
    colour = int(state[X_NCOL]) if noisy else -1
    filtered = state[X_FMODE] != 0.0
    for i in range(i0, i0 + n):
        k = float(cpos + 1 + i - i0)
        sl = state[X_SL0] + state[X_SLS] * k
        nl = state[X_NL0] + state[X_NLS] * k
        _read(state, hi, stereo)
        if nd > 0:
            _blend(state, nd, stereo)
        _voices(state, hi, m0, m1, m2, sl, nl, colour, filtered)
        bus[ol, i] = poly.lane_sum(state, _OUTL, hi)
        bus[orr, i] = poly.lane_sum(state, _OUTR, hi)


@njit(**JIT)
def _mute(state, v):
    """An idle voice renders exact zeros from the silent block (the voice loop runs over idle
    voices too)."""
    state[at(S_ZONE, v)] = -1.0
    state[at(S_GL, v)] = state[at(S_GLS, v)] = 0.0
    state[at(S_GR, v)] = state[at(S_GRS, v)] = 0.0
    state[at(S_S1L, v)] = state[at(S_S2L, v)] = 0.0
    state[at(S_S1R, v)] = state[at(S_S2R, v)] = 0.0
    _silence(state, v)


@njit(**JIT)
def _silence(state, v):
    """Voice v reads the silent block, standing still."""
    state[at(S_OAL, v)] = state[at(S_OAR, v)] = SILENT
    state[at(S_OBL, v)] = state[at(S_OBR, v)] = SILENT
    state[at(S_JA0, v)] = state[at(S_JA1, v)] = 0.0
    state[at(S_JB0, v)] = state[at(S_JB1, v)] = 0.0
    state[at(S_SA, v)] = state[at(S_SB, v)] = 1.0
    state[at(S_BW, v)] = 0.0
    state[at(S_INC, v)] = 0.0
    state[at(S_P, v)] = 0.0
    state[at(S_WE, v)] = NEVER
    state[at(S_WL, v)] = 0.0
    state[at(S_ENDP, v)] = NEVER


@njit(**JIT)
def select_zone(state, note, vel):
    """The zone a note-on plays (-1: none), advancing its round-robin group's counter."""
    nz = int(clampf(state[SET_NZ], 0.0, MAX_ZONES))
    key = math.floor(note + 0.5)
    iv = clampf(math.floor(vel * 127.0 + 0.5), 1.0, 127.0)
    first = -1
    for z in range(nz):
        b = ZT + z * ZW
        if state[b + Z_LO] <= key <= state[b + Z_HI] and state[b + Z_VLO] <= iv <= state[b + Z_VHI]:
            first = z
            break
    if first < 0:
        return -1
    g = state[ZT + first * ZW + Z_RR]
    if not 0.0 < g < MAX_RR:
        return first
    count = 0
    for z in range(first, nz):
        b = ZT + z * ZW
        if state[b + Z_RR] == g and state[b + Z_LO] <= key <= state[b + Z_HI] \
                and state[b + Z_VLO] <= iv <= state[b + Z_VHI]:
            count += 1
    c = RR0 + int(g)
    pick = int(state[c]) % count
    state[c] = float((pick + 1) % count)
    for z in range(first, nz):
        b = ZT + z * ZW
        if state[b + Z_RR] == g and state[b + Z_LO] <= key <= state[b + Z_HI] \
                and state[b + Z_VLO] <= iv <= state[b + Z_VHI]:
            if pick == 0:
                return z
            pick -= 1
    return first


@njit(**JIT)
def _fresh(state, v, z):
    """Voice v starts zone z (-1: none) from its first sample."""
    state[at(S_ZONE, v)] = z
    state[at(S_P, v)] = 0.0
    state[at(S_S1L, v)] = state[at(S_S2L, v)] = 0.0
    state[at(S_S1R, v)] = state[at(S_S2R, v)] = 0.0
    state[at(S_GL, v)] = state[at(S_GR, v)] = 0.0
    state[at(S_GLS, v)] = state[at(S_GRS, v)] = 0.0
    state[at(S_GTL, v)] = state[at(S_GTR, v)] = -1.0
    state[at(A_LEV, v)] = state[at(A_SL, v)] = 0.0
    state[at(A_ST, v)] = ST_ATTACK
    seed = (state[at(R_AGE, v)] * 2654435761.0 + (state[at(R_UIDX, v)] + 1.0) * 40503.0) \
        % 4294967296.0
    state[at(S_RNG, v)] = seed if seed > 0.0 else 1.0
    for r in range(S_B0, S_NPREV + 1):
        state[at(r, v)] = 0.0
    if z >= 0:
        b = ZT + z * ZW
        state[at(S_WE, v)] = state[b + Z_WE]
        state[at(S_WL, v)] = state[b + Z_WL]
    else:
        state[at(S_WE, v)] = NEVER
        state[at(S_WL, v)] = 0.0


@njit(**JIT)
def _plan(state, params, v, seg, r_left, sample_rate, ca, cd, cr, at_tick):
    """Voice v's control values for the next `seg` samples (its ramps rewound by r_left)."""
    c = params[N:]
    start = state[at(R_START, v)]
    if start == START_FRESH:
        z = int(state[at(S_PZONE, v)])
        _fresh(state, v, z if 0 <= z < state[SET_NZ] else -1)
        r_left = 0.0
    elif start == START_RETRIG:
        state[at(A_ST, v)] = ST_ATTACK
    state[at(R_START, v)] = START_NONE
    state[at(R_DIRTY, v)] = 0.0
    pitch, fade = motion(state, v, seg, r_left, steal_samples(sample_rate))
    z = int(state[at(S_ZONE, v)])
    zb = ZT + max(z, 0) * ZW
    oneshot = z >= 0 and state[zb + Z_ONESHOT] > 0.0
    gate = state[at(R_STATE, v)] == V_ON or (oneshot and state[at(R_STATE, v)] == V_OFF)

    a = rewind(state[at(A_LEV, v)], state[at(A_SL, v)], r_left)
    a1, ast = adsr_step(a, state[at(A_ST, v)], gate, ca, cd, cr, clampf(c[P_SUSTAIN], 0.0, 1.0))
    state[at(A_LEV, v)] = a1
    state[at(A_SL, v)] = (a1 - a) / seg
    state[at(A_ST, v)] = ast

    # pitch: the step through level 0, the level(s) read
    upos = state[at(R_UPOS, v)]
    if z >= 0:
        semis = pitch + state[X_PITCH_OFF] + upos * 0.005 * clampf(c[P_DETUNE], 0.0, 100.0) \
            + state[zb + Z_TUNE] - state[zb + Z_ROOT]
        o = clampf(semis / 12.0 + math.log2(state[zb + Z_RATE] / sample_rate), O_MIN, O_MAX)
        state[at(S_INC, v)] = math.pow(2.0, o + 1.0)
        k = max(0.0, math.ceil(o - BLEND))
        la = int(min(k, LEVELS - 1.0))
        lb = int(min(k + 1.0, LEVELS - 1.0))
        w = clampf((o - k) / BLEND, 0.0, 1.0) if lb > la else 0.0
        ca_ = zb + Z_LEV + 4 * la
        cb_ = zb + Z_LEV + 4 * lb
        state[at(S_SA, v)] = 1.0 / (1 << la)
        state[at(S_SB, v)] = 1.0 / (1 << lb)
        state[at(S_OAL, v)] = state[ca_]
        state[at(S_OAR, v)] = state[ca_ + 1]
        state[at(S_JA0, v)] = state[ca_ + 2]
        state[at(S_JA1, v)] = state[ca_ + 3]
        state[at(S_OBL, v)] = state[cb_]
        state[at(S_OBR, v)] = state[cb_ + 1]
        state[at(S_JB0, v)] = state[cb_ + 2]
        state[at(S_JB1, v)] = state[cb_ + 3]
        state[at(S_BW, v)] = w
        state[at(S_ENDP, v)] = state[zb + Z_END] + (K + 2.0) * (1 << lb)
    else:
        _silence(state, v)

    if state[X_FMODE] != 0.0:          # the filter's coefficients (when there is one)
        octs = clampf(c[P_FENV], -8.0, 8.0) * a1 \
            + clampf(c[P_KEYTRACK], 0.0, 1.0) * (pitch - 60.0) / 12.0 \
            + clampf(c[P_AT_OCT], 0.0, 4.0) * state[H_AT_CUR]
        num, den = tan_fraction(math.exp(LN2 * clampf(state[X_L2C] + octs, -16.0, W_MAX)))
        g = num / den
        d1 = 1.0 / (1.0 + g * (g + state[X_K]))
        state[at(S_A1, v)] = d1
        state[at(S_A2, v)] = g * d1
        state[at(S_A3, v)] = g * g * d1

    # level and place
    s = clampf(c[P_VELSENS], 0.0, 1.0)
    vel = state[at(R_VEL, v)]
    zgain = state[zb + Z_GAIN] if z >= 0 else 1.0
    zpan = state[zb + Z_PAN] if z >= 0 else 0.0
    level = a1 * fade * ((1.0 - s) + s * vel * vel) * state[X_GAIN] * zgain
    pl, pr = pan_gains(clampf(c[P_PAN], -1.0, 1.0) + zpan
                       + upos * clampf(c[P_SPREAD], 0.0, 1.0))
    tl = level * pl
    tr = level * pr
    if at_tick and tl == state[at(S_GTL, v)] and tr == state[at(S_GTR, v)]:
        state[at(S_GL, v)] = tl              # a settled level holds exactly
        state[at(S_GR, v)] = tr
        state[at(S_GLS, v)] = state[at(S_GRS, v)] = 0.0
    else:
        state[at(S_GLS, v)] = (tl - state[at(S_GL, v)]) / seg
        state[at(S_GRS, v)] = (tr - state[at(S_GR, v)]) / seg
    state[at(S_GTL, v)] = tl
    state[at(S_GTR, v)] = tr


@njit(**JIT)
def _dual_list(state):
    """S_DUAL: the sounding voices in a level cross-fade, X_NDUAL of them."""
    nd = 0
    for v in range(int(state[H_HI])):
        if state[at(S_BW, v)] > 0.0 and state[at(R_STATE, v)] != V_IDLE:
            state[at(S_DUAL, nd)] = v
            nd += 1
    state[X_NDUAL] = nd


@njit(**JIT)
def _finished(state, params, v):
    """A running voice with nothing left to play: its zone is over (or it has none) and no
    noise is wanted."""
    if not (params[P_NOISE_LEVEL] <= 0.0 and params[N + P_NOISE_LEVEL] <= 0.0):
        return False
    return state[at(S_ZONE, v)] < 0.0 or state[at(S_P, v)] >= state[at(S_ENDP, v)]


@njit(**JIT)
def _tick(state, params, sample_rate):
    """The first sample of a control period: smoothing, the LFO, unit-wide values, voices."""
    poly.smooth_coefs(state, X_PCOEF, SMOOTH_S, sample_rate)
    poly.smooth_tick(state, params, N, X_PCOEF)
    c = params[N:]
    ph = state[H_LFO_PHASE]
    lfo = math.sin(2.0 * math.pi * ph)
    ph += CHUNK * clampf(c[P_LFO_HZ], 0.01, 20.0) / sample_rate
    state[H_LFO_PHASE] = ph - math.floor(ph)
    state[X_LFO] = lfo
    state[X_PITCH_OFF] = state[H_BEND_CUR] + clampf(c[P_TUNE], -24.0, 24.0) \
        + state[H_WHEEL_CUR] * clampf(c[P_VIBRATO], 0.0, 2.0) * lfo
    _unit_values(state, params, sample_rate)
    poly.tick_voices(state, params, sample_rate)
    ca, cd, cr = adsr_coefs(c[P_ATTACK], c[P_DECAY], c[P_RELEASE], CHUNK, sample_rate)
    for v in range(int(state[H_HI])):
        st = state[at(R_STATE, v)]
        if state[at(R_START, v)] == START_NONE and (st == V_ON or st == V_OFF) and (
                (st == V_OFF and state[at(A_ST, v)] == ST_IDLE) or _finished(state, params, v)):
            poly.free_voice(state, v)
            st = V_IDLE
        if st == V_IDLE:
            _mute(state, v)
            continue
        _plan(state, params, v, float(CHUNK), 0.0, sample_rate, ca, cd, cr, True)
    poly.shrink(state)
    _dual_list(state)


@njit(**JIT)
def _unit_values(state, params, sample_rate):
    c = params[N:]
    k = 2.0 - 1.96 * clampf(c[P_RES], 0.0, 1.0)       # SVF damping: Q from 0.5 to 25
    state[X_K] = k
    mode = choice(params, P_FILTER, 4)
    params[N + P_FILTER] = mode
    m0, m1, m2 = 1.0, 0.0, 0.0                          # off: the voice as it is
    if mode == 1:
        m0, m1, m2 = 0.0, 0.0, 1.0
    elif mode == 2:
        m0, m1, m2 = 0.0, k, 0.0                        # unit gain at the centre
    elif mode == 3:
        m0, m1, m2 = 1.0, -k, -1.0
    state[X_M0] = m0
    state[X_M1] = m1
    state[X_M2] = m2
    if mode != 0 and state[X_FMODE] == 0.0:        # switched on: the filters start at rest
        for v in range(NV):
            state[at(S_S1L, v)] = state[at(S_S2L, v)] = 0.0
            state[at(S_S1R, v)] = state[at(S_S2R, v)] = 0.0
    state[X_FMODE] = mode
    state[X_GAIN] = math.pow(10.0, clampf(c[P_GAIN_DB], -24.0, 12.0) / 20.0)
    state[X_L2C] = math.log2(math.pi * clampf(c[P_CUTOFF], 20.0, 20000.0) / sample_rate)
    state[X_NCOL] = choice(params, P_NOISE, len(NOISES))
    # the recordings' and the noise's levels ramp per sample over the period
    sl = clampf(c[P_SAMPLE_LEVEL], 0.0, 1.0)
    nl = clampf(c[P_NOISE_LEVEL], 0.0, 1.0)
    if state[X_READY] == 0.0:
        state[X_SLT] = sl
        state[X_NLT] = nl
        state[X_READY] = 1.0
    state[X_SL0] = state[X_SLT]
    state[X_SLS] = (sl - state[X_SLT]) / CHUNK
    state[X_SLT] = sl
    state[X_NL0] = state[X_NLT]
    state[X_NLS] = (nl - state[X_NLT]) / CHUNK
    state[X_NLT] = nl


@njit(**JIT)
def _zone_to_new_note(state, serial, z):
    """The voices of note `serial` (started, or waiting for a stolen voice to fade) will play
    zone z."""
    for v in range(int(state[H_HI])):
        st = state[at(R_STATE, v)]
        if st == V_FADE:
            if state[at(R_PNOTE, v)] >= 0.0 and state[at(R_PAGE, v)] == serial:
                state[at(S_PZONE, v)] = z
        elif st != V_IDLE and state[at(R_AGE, v)] == serial:
            state[at(S_PZONE, v)] = z


@njit(**JIT)
def event(state, params, kind, a, b, c, sample_rate):
    sr = clampf(sample_rate, 1000.0, 1e6)
    serial = state[H_SERIAL]
    stolen = poly.poly_event(state, params, kind, a, b, c, sr)
    if kind == K_NOTE_ON and state[H_SERIAL] != serial:       # a new note (not a mono move)
        z = select_zone(state, clampf(a, 0.0, 127.0), clampf(b, 0.0, 1.0))
        _zone_to_new_note(state, state[H_SERIAL], float(z))
    cpos = clampf(state[H_CPOS], 0.0, CHUNK - 1.0)
    if cpos > 0.0:
        # re-plan the voices this event touched for the rest of the control period
        seg = CHUNK - cpos
        c_ = params[N:]
        ca, cd, cr = adsr_coefs(c_[P_ATTACK], c_[P_DECAY], c_[P_RELEASE], seg, sr)
        for v in range(int(state[H_HI])):
            if state[at(R_DIRTY, v)] != 0.0 and state[at(R_STATE, v)] != V_IDLE:
                _plan(state, params, v, seg, seg, sr, ca, cd, cr, False)
        _dual_list(state)
    return stolen


@njit(**JIT)
def process(state, params, bus, io, i0, i1, sample_rate):
    ol = io[IO_OUT_L]
    orr = io[IO_OUT_R]
    sr = clampf(sample_rate, 1000.0, 1e6)
    for i in range(i0, i1):
        bus[ol, i] = 0.0
        bus[orr, i] = 0.0
    i = i0
    while i < i1:
        cpos = int(clampf(state[H_CPOS], 0.0, CHUNK - 1.0))
        if cpos == 0:
            _tick(state, params, sr)
        n = min(i1 - i, CHUNK - cpos)
        _render(state, bus, ol, orr, i, n, cpos)
        cpos += n
        state[H_CPOS] = 0.0 if cpos >= CHUNK else float(cpos)
        i += n
