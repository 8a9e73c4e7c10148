"""Wavetable instrument: band-limited mip-mapped tables, position morph, a state-variable filter
(AUDIO THREAD kernels; the tables are built on the control side).

Tables. A table set is 1..MAX_FRAMES single-cycle frames. Each frame is stored as MIPS
mip-maps, one per octave: mip m keeps harmonics 1..MIP_H[m] = 512 >> m and is played only
where its highest harmonic stays below Nyquist (f0 * MIP_H[m] <= fs / 2), so no harmonic can
alias. A mip stores cubic B-spline coefficients (its spectrum divided by the B-spline's
response sinc^4(h / N)) and is read with the 4-point cubic B-spline: harmonics come out at
their exact level, and the interpolator's images, the only aliasing left, depend on the points
per period of the mip's highest harmonic. Mip 0 has 4096 points (8 per period of harmonic
512, itself 54 dB down: images about -103 dB for a saw); every other mip 16 per period of its
highest harmonic and at least 512 (4096, 2048, 1024, then 512: images below -115 dB). So a
voice steps at most 8 points a sample through a large table and a high note reads a small one:
what a voice plays stays in cache (2048 points at every octave would make a high note fetch a
new cache line per read). Mips cross-fade over the top MIP_BLEND octave of each range (to the
next, poorer mip), so a gliding or bent note never switches its spectrum at once.

Tables come from formulas (`TABLES`, the `table` parameter) or from single-cycle WAV files
(`engine.control.wavetables.load_wav_table`); either is built by FFT on the control side (`build_table`) and copied into
the unit's state by `prepare` / `install` before the stream starts; `reset` keeps it.

Position morph: `position` (0..1, smoothed) plus LFO 1 (`position_lfo`), the mod envelope
(`position_env`) and the matrix picks a point between frames; the voice reads the two frames around
it and mixes them, the mix ramping per sample within one pair of frames per control period
(crossing into the next pair at a period's start, where both pairs give the same wave).

Per voice: amp ADSR, mod ADSR (filter cutoff and position), a zero-delay-feedback state
variable filter (Simper: lowpass, bandpass, highpass, or off) with key tracking, velocity;
unison, spread, glide and the play modes from engine.rt.units.poly. The mod wheel adds
vibrato (LFO 1, `vibrato_st` at full wheel), aftertouch opens the filter
(`aftertouch_oct`). The modulation matrix (engine.rt.units.modmatrix: two LFOs, a random
S&H, the mod ADSR, velocity, key, wheel, aftertouch, a per-note random value; eight slots)
adds to these fixed routes: its destinations here are `DESTS` (the resonance per voice: the
bandpass and highpass mixes take each voice's damping, row W_M1).
"""
import math

import numpy as np
from numba import njit

from engine.rt.dsp import JIT
from engine.rt.osc import tan_fraction
from engine.rt.units import modmatrix as mm
from engine.rt.units import poly
from engine.rt.units.base import (CTX_BEAT, IO_CTX, IO_OUT_L, IO_OUT_R, Param, clampf, declare,
                                  finite_or_zero, tempo_bpm)
from engine.rt.units.modmatrix import D_AMP, D_DETUNE, D_PAN, D_PITCH, dest
from engine.rt.units.poly import (CHUNK, H_AT_CUR, H_BEND_CUR, H_CPOS, H_HI, H_WHEEL_CUR, HDR,
                                  NV, P_DETUNE, P_SPREAD, R_DIRTY, R_START, R_STATE, R_UIDX,
                                  R_UPOS, R_VEL, ST_ATTACK, ST_IDLE, START_FRESH, START_NONE,
                                  START_RETRIG, V_IDLE, V_OFF, V_ON, adsr_coefs, adsr_step, at,
                                  choice, motion, pan_gains, rewind, start_phase, steal_samples)

NAME = "wavetable"
INSTRUMENT = True

# ---- tables ---------------------------------------------------------------------------------
MAX_FRAMES = 16
MIPS = 10
MIP_H = np.array([512 >> m for m in range(MIPS)], dtype=np.int64)
MIP_N = np.array([4096] + [max(512, 16 * (512 >> m)) for m in range(1, MIPS)], dtype=np.int64)
GUARD = 3                   # stored: c[N-1], c[0..N-1], c[0], c[1]
MIP_OFF = np.concatenate([[0], np.cumsum(MIP_N + GUARD)[:-1]]).astype(np.int64)
FRAME_STRIDE = int((MIP_N + GUARD).sum())
MIP_BLEND = 1.0 / 3.0       # octaves over which a mip hands over to the next
TABLES = ("saw", "square", "triangle", "sine", "sine_saw", "pwm")
FILTERS = ("off", "lowpass", "bandpass", "highpass")

PREPARE_PARAMS = ("table",)   # applied when the graph is built: a change is a new instrument

DESTS = mm.COMMON_DESTS + ("cutoff", "resonance", "position")
D_CUTOFF, D_RES, D_POS = range(len(mm.COMMON_DESTS), len(DESTS))
"""The matrix's destinations here: the common ones, cutoff (octaves), resonance (added,
0..1), position (added, 0..1)."""

_OWN = [
    Param("table", 0, len(TABLES) - 1, 0, curve="choice", smooth_s=0.0, choices=TABLES,
          doc="built-in table set, copied into the state at prepare time (a change applies "
              "at the next prepare; wavetables.load_wav_table gives custom sets)"),
    Param("position", 0.0, 1.0, 0.0, smooth_s=0.05, doc="point between the first and last frame"),
    Param("position_lfo", 0.0, 1.0, 0.0, doc="LFO 1 depth on the position"),
    Param("position_env", -1.0, 1.0, 0.0, doc="mod envelope amount on the position"),
    Param("lfo_hz", 0.01, 20.0, 1.0, curve="log", doc="LFO 1 rate (position and vibrato)"),
    Param("attack_ms", 0.5, 10000.0, 3.0, curve="log", smooth_s=0.0),
    Param("decay_ms", 1.0, 20000.0, 400.0, curve="log", smooth_s=0.0),
    Param("sustain", 0.0, 1.0, 0.8),
    Param("release_ms", 2.0, 20000.0, 250.0, curve="log", smooth_s=0.0),
    Param("mod_attack_ms", 0.5, 10000.0, 3.0, curve="log", smooth_s=0.0),
    Param("mod_decay_ms", 1.0, 20000.0, 600.0, curve="log", smooth_s=0.0),
    Param("mod_sustain", 0.0, 1.0, 0.0),
    Param("mod_release_ms", 2.0, 20000.0, 300.0, curve="log", smooth_s=0.0),
    Param("filter", 0, len(FILTERS) - 1, 1, curve="choice", smooth_s=0.0, choices=FILTERS),
    Param("cutoff_hz", 20.0, 20000.0, 8000.0, curve="log"),
    Param("resonance", 0.0, 1.0, 0.1),
    Param("filter_env_oct", -8.0, 8.0, 0.0, doc="mod envelope amount on the cutoff"),
    Param("key_tracking", 0.0, 1.0, 0.5, doc="cutoff octaves per octave from middle C"),
    Param("velocity_sens", 0.0, 1.0, 0.7, doc="0: every note at full level; 1: level = vel^2"),
    Param("vibrato_st", 0.0, 2.0, 0.3, doc="vibrato depth (LFO 1) at full mod wheel"),
    Param("aftertouch_oct", 0.0, 4.0, 1.0, doc="cutoff rise at full aftertouch"),
    Param("gain_db", -48.0, 12.0, -12.0),
]
PARAMS = declare(poly.poly_params() + _OWN
                 + mm.mod_params((0.01, 20.0, 1.0), DESTS, have=[p.name for p in _OWN]))
(P_TABLE, P_POSITION, P_POS_LFO, P_POS_ENV, P_LFO_HZ, P_ATTACK, P_DECAY, P_SUSTAIN, P_RELEASE,
 P_MATTACK, P_MDECAY, P_MSUSTAIN, P_MRELEASE, P_FILTER, P_CUTOFF, P_RES, P_FENV, P_KEYTRACK,
 P_VELSENS, P_VIBRATO, P_AT_OCT, P_GAIN_DB) = range(poly.NPOLY, poly.NPOLY + len(_OWN))
N = len(PARAMS)
MP = mm.param_map(PARAMS)
SMOOTH_S = np.array([p.smooth_s for p in PARAMS])

# ---- state ------------------------------------------------------------------------------------
X_PCOEF = mm.X_FREE                   # N smoothing coefficients
(X_VIBK, X_M1S, X_M0, X_M2, X_GAIN, X_L2F, X_L2C,
 X_NDUAL) = range(X_PCOEF + N, X_PCOEF + N + 8)
assert X_NDUAL < HDR
LN2 = math.log(2.0)
O_MAX = math.log2(1024.0 * 0.45)      # f0 at most 0.45 fs
W_MAX = math.log2(0.45 * math.pi)     # cutoff at most 0.45 fs

(W_PH, W_INC, W_FA, W_WCUR, W_WEND, W_WSLOPE, W_OA, W_OB, W_NA, W_NB, W_MIPW, W_STRIDE, W_S1, W_S2,
 W_A1, W_A2, W_A3, W_M1, W_GL, W_GLS, W_GR, W_GRS, W_OUTL, W_OUTR, A_LEV, A_SL, A_ST, W_Y,
 W_DUAL) = range(mm.ROWS_END, mm.ROWS_END + 29)
ROWS = mm.ROWS_END + 29
T0 = poly.poly_state_size(ROWS)       # frames in the loaded table, then the table
TABLE = T0 + 1


def state_size(sample_rate):
    return TABLE + MAX_FRAMES * FRAME_STRIDE


def carry_len(sample_rate):
    """The live state (header and voices) a graph swap carries: the table from T0 on is data
    the new program got at prepare time (engine.rt.units.base)."""
    return T0


# ---- control side: tables -----------------------------------------------------------------------

def _mips(spectrum):
    """One frame's mip-maps (FRAME_STRIDE values) from its harmonic amplitudes: the cycle is
    sum over h of Re(spectrum[h] * exp(2 pi i h t)), t in cycles."""
    out = np.empty(FRAME_STRIDE)
    for m in range(MIPS):
        n, h = int(MIP_N[m]), int(MIP_H[m])
        k = min(h, len(spectrum) - 1)
        spec = np.zeros(n // 2 + 1, dtype=complex)
        hs = np.arange(1, k + 1)
        spec[1:k + 1] = spectrum[1:k + 1] / np.sinc(hs / n) ** 4 * (n / 2)
        c = np.fft.irfft(spec, n)
        o = int(MIP_OFF[m])
        out[o] = c[-1]
        out[o + 1:o + 1 + n] = c
        out[o + 1 + n] = c[0]
        out[o + 2 + n] = c[1]
    return out


class Wavetable:
    """A table set ready to install: `frames` frames of FRAME_STRIDE values each."""

    def __init__(self, frames, data):
        self.frames = int(frames)
        self.data = np.ascontiguousarray(data, dtype=np.float64)
        assert 1 <= self.frames <= MAX_FRAMES and self.data.shape == (frames * FRAME_STRIDE,)


def build_table(spectra, normalize="frame"):
    """A Wavetable from harmonic spectra (frames x harmonics complex; index 0, DC, ignored),
    each frame scaled to peak 1 ('frame') or all by one factor ('set')."""
    spectra = np.atleast_2d(np.asarray(spectra, dtype=complex))
    if not 1 <= len(spectra) <= MAX_FRAMES:
        raise ValueError(f"a table has 1..{MAX_FRAMES} frames, got {len(spectra)}")
    peaks = []
    for s in spectra:
        k = min(len(s) - 1, 2048)
        full = np.zeros(4097, dtype=complex)
        full[1:k + 1] = s[1:k + 1] * 4096
        peaks.append(np.abs(np.fft.irfft(full, 8192)).max())
    peaks = np.maximum(np.array(peaks), 1e-12)
    if normalize == "set":
        peaks[:] = peaks.max()
    data = np.concatenate([_mips(s / p) for s, p in zip(spectra, peaks)])
    return Wavetable(len(spectra), data)


def _sine_series(amps):
    """Spectrum of sum over h of amps[h] * sin(2 pi h t)."""
    return -1j * np.asarray(amps, dtype=float)


_BUILT: dict = {}


def builtin_table(name):
    """One of TABLES (sample-rate independent, so built once per process)."""
    if name not in _BUILT:
        _BUILT[name] = _build_builtin(name)
    return _BUILT[name]


def _build_builtin(name):
    h = np.arange(513, dtype=float)
    h[0] = 1.0
    saw = np.where(h > 0, 2.0 / np.pi * (-1.0) ** (h + 1) / h, 0.0)
    saw[0] = 0.0
    odd = (np.arange(513) % 2 == 1)
    if name == "saw":
        spectra = [_sine_series(saw)]
    elif name == "square":
        spectra = [_sine_series(np.where(odd, 4.0 / (np.pi * h), 0.0))]
    elif name == "triangle":
        sign = (-1.0) ** ((np.arange(513) - 1) // 2)
        spectra = [_sine_series(np.where(odd, 8.0 / np.pi ** 2 * sign / h ** 2, 0.0))]
    elif name == "sine":
        spectra = [_sine_series(np.eye(1, 513, 1)[0])]
    elif name == "sine_saw":
        # frame 0 a sine, then a brightening saw: harmonics rolled off above 2^(1.4 k)
        spectra = [_sine_series(np.eye(1, 513, 1)[0])]
        for k in range(1, 8):
            roll = np.exp(-(h - 1.0) / 2.0 ** (1.4 * k)) if k < 7 else np.ones(513)
            spectra.append(_sine_series(saw * roll))
    elif name == "pwm":
        # pulses from 50 % down to 5 % duty (DC removed)
        spectra = []
        for k in range(8):
            d = 0.5 - 0.45 * k / 7.0
            n = np.arange(513, dtype=float)
            n[0] = 1.0
            c = (1.0 - np.exp(-2j * np.pi * n * d)) / (2j * np.pi * n)
            c[0] = 0.0
            spectra.append(2.0 * c)
    else:
        raise ValueError(f"unknown table {name!r}; tables: {', '.join(TABLES)}")
    return build_table(spectra)


def table_from_cycles(x, frames=1, where="samples"):
    """A Wavetable from `frames` single cycles back to back in the mono array `x` (1: all of it
    is one cycle; engine.control.wavetables.load_wav_table reads them from a WAV file). Each
    cycle is resampled exactly (by its spectrum) into the mip-maps; more than MAX_FRAMES
    cycles keep MAX_FRAMES of them, evenly spaced, the first and the last included. Levels
    stay relative: the set is scaled to peak 1."""
    x = np.asarray(x, dtype=np.float64)
    frames = int(frames)
    path = where
    if frames < 1 or len(x) % frames or len(x) // frames < 4:
        raise ValueError(f"{path}: {len(x)} samples do not split into {frames} cycles of "
                         f"at least 4 samples")
    length = len(x) // frames
    cycles = x.reshape(frames, length)
    if frames > MAX_FRAMES:
        cycles = cycles[np.round(np.linspace(0, frames - 1, MAX_FRAMES)).astype(int)]
    spectra = np.fft.rfft(cycles, axis=1) * (2.0 / length)
    if length % 2 == 0:
        spectra[:, -1] = 0.0          # the Nyquist bin of the file is ambiguous in phase
    return build_table(spectra, normalize="set")


def install(state, table):
    """Copy a Wavetable into the unit's state (control side, before the stream runs)."""
    state[T0] = table.frames
    state[TABLE:TABLE + table.data.shape[0]] = table.data


def prepare(state, params, sample_rate, table=None):
    """Reset, and install `table` (a Wavetable) or the built-in set the `table` parameter
    names (control side, prepare time)."""
    reset(state, sample_rate)
    if table is None:
        table = builtin_table(TABLES[int(np.clip(np.nan_to_num(params[P_TABLE]), 0,
                                                 len(TABLES) - 1) + 0.5)])
    install(state, table)


# ---- audio thread ------------------------------------------------------------------------------

RFAST = dict(JIT, fastmath={"contract", "arcp", "nsz"})
"""The voice loop may fuse multiply-adds (no reassociation: a voice's samples come out the
same however the block is cut)."""


@njit(**JIT)
def reset(state, sample_rate):
    poly.reset_poly(state, T0)


@njit(**JIT)
def active_voices(state):
    return poly.active_voices(state)


@njit(inline="always", **JIT)
def _bspline(state, j, t):
    """The cubic B-spline through coefficients state[j .. j + 3] at t in [0, 1)."""
    t2 = t * t
    t3 = t2 * t
    u = 1.0 - t
    return (u * u * u * state[j] + (3.0 * t3 - 6.0 * t2 + 4.0) * state[j + 1]
            + (-3.0 * t3 + 3.0 * t2 + 3.0 * t + 1.0) * state[j + 2]
            + t3 * state[j + 3]) * (1.0 / 6.0)


def _off(row):
    """Voice row `row` as an unsigned compile-time offset."""
    return np.uint64(HDR + row * NV)


(_PH, _INC, _WC, _WS, _GL, _GLS, _GR, _GRS, _S1, _S2, _A1, _A2, _A3, _M1, _OA, _OB, _NA, _NB,
 _MW, _STRIDE, _OUTL, _OUTR, _Y, _DUAL) = (_off(r) for r in (
    W_PH, W_INC, W_WCUR, W_WSLOPE, W_GL, W_GLS, W_GR, W_GRS, W_S1, W_S2, W_A1, W_A2, W_A3, W_M1,
    W_OA, W_OB, W_NA, W_NB, W_MIPW, W_STRIDE, W_OUTL, W_OUTR, W_Y, W_DUAL))


@njit(**RFAST)
def _read(state, hi):
    """One sample of voices [0, hi): the mip each plays, its two frames mixed, into W_Y."""
    for v in range(np.uint64(0), hi):
        w = state[_WC + v]
        x = state[_PH + v] * state[_NA + v]
        k = int(x)
        t = x - k
        j = int(state[_OA + v]) + k
        ya = _bspline(state, j, t)
        state[_Y + v] = ya + w * (_bspline(state, j + int(state[_STRIDE + v]), t) - ya)


@njit(**RFAST)
def _blend(state, count):
    """The voices in a mip cross-fade (the first `count` of the W_DUAL list): the next mip
    mixed in. (A separate loop over a list: a branch per voice in `_read` would mispredict
    whenever such voices alternate with others.)"""
    for d in range(count):
        v = np.uint64(state[_DUAL + np.uint64(d)])
        w = state[_WC + v]
        x = state[_PH + v] * state[_NB + v]
        k = int(x)
        t = x - k
        j = int(state[_OB + v]) + k
        yb = _bspline(state, j, t)
        yb += w * (_bspline(state, j + int(state[_STRIDE + v]), t) - yb)
        y = state[_Y + v]
        state[_Y + v] = y + state[_MW + v] * (yb - y)


@njit(**RFAST)
def _voices(state, hi, m0, m2):
    """One sample of voices [0, hi) after `_read` and `_blend`: the filter, the level and
    place into W_OUTL / W_OUTR, the ramps and phases one sample on."""
    for v in range(np.uint64(0), hi):
        y = state[_Y + v]
        s1 = state[_S1 + v]
        s2 = state[_S2 + v]
        a2 = state[_A2 + v]
        v3 = y - s2
        v1 = state[_A1 + v] * s1 + a2 * v3
        v2 = s2 + a2 * s1 + state[_A3 + v] * v3
        state[_S1 + v] = 2.0 * v1 - s1
        state[_S2 + v] = 2.0 * v2 - s2
        out = m0 * y + state[_M1 + v] * v1 + m2 * v2
        gl = state[_GL + v]
        gr = state[_GR + v]
        state[_OUTL + v] = out * gl
        state[_OUTR + v] = out * gr
        state[_GL + v] = gl + state[_GLS + v]
        state[_GR + v] = gr + state[_GRS + v]
        state[_WC + v] = state[_WC + v] + state[_WS + v]
        ph = state[_PH + v] + state[_INC + v]
        state[_PH + v] = ph - 1.0 if ph >= 1.0 else ph


@njit(**JIT)
def _dual_list(state):
    """W_DUAL: the sounding voices in a mip cross-fade, X_NDUAL of them."""
    nd = 0
    for v in range(int(state[H_HI])):
        if state[at(W_MIPW, v)] > 0.0 and state[at(R_STATE, v)] != V_IDLE:
            state[at(W_DUAL, nd)] = v
            nd += 1
    state[X_NDUAL] = nd



@njit(**JIT)
def _render(state, bus, ol, orr, i0, n):
    """Every voice over [i0, i0 + n), into the out rows (which hold 0 there)."""
    hi = np.uint64(((int(state[H_HI]) + 3) // 4) * 4)
    if hi == 0:
        return
    m0 = state[X_M0]
    m2 = state[X_M2]
    nd = int(clampf(state[X_NDUAL], 0.0, NV))
    for i in range(i0, i0 + n):
        _read(state, hi)
        if nd > 0:
            _blend(state, nd)
        _voices(state, hi, m0, m2)
        bus[ol, i] = poly.lane_sum(state, _OUTL, hi)
        bus[orr, i] = poly.lane_sum(state, _OUTR, hi)


@njit(**JIT)
def _plan(state, params, v, seg, r_left, sample_rate, ca, cd, cr, ma, md, mr, at_tick):
    """Voice v's control values for the next `seg` samples (its ramps rewound by r_left)."""
    c = params[N:]
    start = state[at(R_START, v)]
    if start == START_FRESH:
        state[at(W_PH, v)] = start_phase(state[at(R_UIDX, v)])
        state[at(W_S1, v)] = state[at(W_S2, v)] = 0.0
        state[at(W_GL, v)] = state[at(W_GR, v)] = 0.0
        state[at(A_LEV, v)] = state[at(A_SL, v)] = 0.0
        state[at(A_ST, v)] = ST_ATTACK
        mm.mod_voice_start(state, params, N, MP, v, True)
        r_left = 0.0
    elif start == START_RETRIG:
        state[at(A_ST, v)] = ST_ATTACK
        mm.mod_voice_start(state, params, N, MP, v, False)
    state[at(R_START, v)] = START_NONE
    state[at(R_DIRTY, v)] = 0.0
    pitch, fade = motion(state, v, seg, r_left, steal_samples(sample_rate))
    gate = state[at(R_STATE, v)] == V_ON

    a = rewind(state[at(A_LEV, v)], state[at(A_SL, v)], r_left)
    a1, ast = adsr_step(a, state[at(A_ST, v)], gate, ca, cd, cr, clampf(c[P_SUSTAIN], 0.0, 1.0))
    state[at(A_LEV, v)] = a1
    state[at(A_SL, v)] = (a1 - a) / seg
    state[at(A_ST, v)] = ast
    m1 = mm.mod_env_step(state, params, N, MP, v, seg, r_left, gate, ma, md, mr)
    mm.mod_eval(state, v, m1, pitch)
    mm.mod_voice_rates(state, v)
    lfo = state[at(mm.L_VAL, v)]               # LFO 1 (read only where its knobs are not 0)

    # pitch: increment and mip-maps
    upos = state[at(R_UPOS, v)]
    semis = pitch + (state[H_BEND_CUR] + state[X_VIBK] * lfo) \
        + upos * 0.005 * clampf(c[P_DETUNE] + dest(state, D_DETUNE), 0.0, 200.0) \
        + dest(state, D_PITCH)
    # o = log2(1024 inc): mip m is alias-free for o <= m
    o = min(10.0 + state[X_L2F] + (clampf(semis, -100.0, 200.0) - 69.0) / 12.0, O_MAX)
    state[at(W_INC, v)] = math.exp(LN2 * (o - 10.0))
    k = max(0.0, math.ceil(o))
    ma = int(min(k, MIPS - 1.0))
    mb = int(min(k + 1.0, MIPS - 1.0))
    state[at(W_MIPW, v)] = clampf((o - (k - MIP_BLEND)) / MIP_BLEND, 0.0, 1.0)

    # position
    frames = clampf(state[T0], 1.0, MAX_FRAMES)
    pos = clampf(c[P_POSITION] + clampf(c[P_POS_LFO], 0.0, 1.0) * lfo
                 + clampf(c[P_POS_ENV], -1.0, 1.0) * m1 + dest(state, D_POS), 0.0, 1.0)
    x = pos * (frames - 1.0)
    top = max(frames - 2.0, 0.0)
    if start == START_FRESH:
        fa = min(math.floor(x), top)
        state[at(W_WCUR, v)] = state[at(W_WEND, v)] = x - fa
        state[at(W_WSLOPE, v)] = 0.0
    elif at_tick:
        # The mix ramps within one pair of frames per control period; a position beyond the
        # pair takes the next pair at the next tick, from the same point (w 1 of a pair is
        # w 0 of the next), so the morph never jumps (it lags by at most one period).
        fa = clampf(state[at(W_FA, v)], 0.0, top)
        w = state[at(W_WEND, v)]
        if w >= 1.0 and x > fa + 1.0 and fa + 1.0 <= top:
            fa += 1.0
            w = 0.0
        elif w <= 0.0 and x < fa and fa >= 1.0:
            fa -= 1.0
            w = 1.0
        w_end = clampf(x - fa, 0.0, 1.0)
        state[at(W_WCUR, v)] = w
        state[at(W_WEND, v)] = w_end
        state[at(W_WSLOPE, v)] = (w_end - w) / seg
    else:
        fa = clampf(state[at(W_FA, v)], 0.0, top)    # mid-period: the ramp carries on
    state[at(W_FA, v)] = fa
    base = TABLE + fa * FRAME_STRIDE
    state[at(W_OA, v)] = base + MIP_OFF[ma]
    state[at(W_OB, v)] = base + MIP_OFF[mb]
    state[at(W_NA, v)] = MIP_N[ma]
    state[at(W_NB, v)] = MIP_N[mb]
    state[at(W_STRIDE, v)] = FRAME_STRIDE if fa + 1.0 < frames else 0.0

    # filter
    octs = clampf(c[P_FENV], -8.0, 8.0) * m1 \
        + clampf(c[P_KEYTRACK], 0.0, 1.0) * (pitch - 60.0) / 12.0 \
        + clampf(c[P_AT_OCT], 0.0, 4.0) * state[H_AT_CUR] + dest(state, D_CUTOFF)
    # g = tan(pi fc / fs), fc = cutoff * 2^octs, below 0.45 fs
    num, den = tan_fraction(math.exp(LN2 * clampf(state[X_L2C] + octs, -16.0, W_MAX)))
    g = num / den
    k = 2.0 - 1.96 * clampf(c[P_RES] + dest(state, D_RES), 0.0, 1.0)   # damping: Q 0.5 to 25
    d1 = 1.0 / (1.0 + g * (g + k))
    state[at(W_A1, v)] = d1
    state[at(W_A2, v)] = g * d1
    state[at(W_A3, v)] = g * g * d1
    state[at(W_M1, v)] = state[X_M1S] * k

    # level and place
    s = clampf(c[P_VELSENS], 0.0, 1.0)
    vel = state[at(R_VEL, v)]
    level = a1 * fade * ((1.0 - s) + s * vel * vel) * state[X_GAIN] \
        * mm.amp_gain(dest(state, D_AMP))
    pl, pr = pan_gains(upos * clampf(c[P_SPREAD], 0.0, 1.0) + dest(state, D_PAN))
    state[at(W_GLS, v)] = (level * pl - state[at(W_GL, v)]) / seg
    state[at(W_GRS, v)] = (level * pr - state[at(W_GR, v)]) / seg


@njit(**JIT)
def _tick(state, params, sample_rate, tempo, beat):
    """The first sample of a control period: smoothing, the modulators, unit-wide values,
    voices (`tempo` and `beat` from the context row: engine.rt.units.modmatrix.mod_tick)."""
    poly.smooth_coefs(state, X_PCOEF, SMOOTH_S, sample_rate)
    poly.smooth_tick(state, params, N, X_PCOEF)
    c = params[N:]
    vibk = state[H_WHEEL_CUR] * clampf(c[P_VIBRATO], 0.0, 2.0)
    state[X_VIBK] = vibk
    mm.mod_tick(state, params, N, MP, sample_rate, tempo, beat,
                vibk != 0.0 or clampf(c[P_POS_LFO], 0.0, 1.0) != 0.0)
    _unit_values(state, params, CHUNK, sample_rate)
    poly.tick_voices(state, params, sample_rate)
    ca, cd, cr = adsr_coefs(c[P_ATTACK], c[P_DECAY], c[P_RELEASE], CHUNK, sample_rate)
    ma = state[mm.MX_ENV]
    md = state[mm.MX_ENV + 1]
    mr = state[mm.MX_ENV + 2]
    for v in range(int(state[H_HI])):
        st = state[at(R_STATE, v)]
        if st == V_OFF and state[at(A_ST, v)] == ST_IDLE and state[at(R_START, v)] == 0.0:
            poly.free_voice(state, v)
            st = V_IDLE
        if st == V_IDLE:
            _mute(state, v)
            continue
        if state[at(R_START, v)] != START_FRESH:
            mm.mod_voice_tick(state, params, N, MP, v)
        _plan(state, params, v, float(CHUNK), 0.0, sample_rate, ca, cd, cr, ma, md, mr, True)
    poly.shrink(state)
    _dual_list(state)


@njit(**JIT)
def _mute(state, v):
    """An idle voice renders exact zeros from a valid table point (the voice loop runs over
    idle voices too)."""
    state[at(W_GL, v)] = state[at(W_GLS, v)] = 0.0
    state[at(W_GR, v)] = state[at(W_GRS, v)] = 0.0
    state[at(W_S1, v)] = state[at(W_S2, v)] = 0.0
    state[at(W_M1, v)] = 0.0
    state[at(W_OA, v)] = state[at(W_OB, v)] = TABLE
    state[at(W_NA, v)] = state[at(W_NB, v)] = MIP_N[0]
    state[at(W_STRIDE, v)] = 0.0
    state[at(W_MIPW, v)] = 0.0
    state[at(W_INC, v)] = 0.0
    state[at(W_PH, v)] = 0.0


@njit(**JIT)
def _unit_values(state, params, n, sample_rate):
    c = params[N:]
    mode = choice(params, P_FILTER, 4)
    params[N + P_FILTER] = mode
    # out = m0 y + m1 v1 + m2 v2 with m1 = (X_M1S x a voice's damping k), in `_plan`
    m0, m1s, m2 = 1.0, 0.0, 0.0                         # off: the oscillator as it is
    if mode == 1:
        m0, m1s, m2 = 0.0, 0.0, 1.0
    elif mode == 2:
        m0, m1s, m2 = 0.0, 1.0, 0.0                     # k v1: unit gain at the centre
    elif mode == 3:
        m0, m1s, m2 = 1.0, -1.0, -1.0
    state[X_M0] = m0
    state[X_M1S] = m1s
    state[X_M2] = m2
    state[X_GAIN] = math.pow(10.0, clampf(c[P_GAIN_DB], -48.0, 12.0) / 20.0)
    state[X_L2F] = math.log2(440.0 / sample_rate)
    state[X_L2C] = math.log2(math.pi * clampf(c[P_CUTOFF], 20.0, 20000.0) / sample_rate)


@njit(**JIT)
def _env_coefs(params, n, sample_rate):
    c = params[N:]
    ca, cd, cr = adsr_coefs(c[P_ATTACK], c[P_DECAY], c[P_RELEASE], n, sample_rate)
    ma, md, mr = mm.env_coefs(params, N, MP, n, sample_rate)
    return ca, cd, cr, ma, md, mr


@njit(**JIT)
def event(state, params, kind, a, b, c, sample_rate):
    sr = clampf(sample_rate, 1000.0, 1e6)
    stolen = poly.poly_event(state, params, kind, a, b, c, sr)
    cpos = clampf(state[H_CPOS], 0.0, CHUNK - 1.0)
    if cpos > 0.0:
        # re-plan the voices this event touched for the rest of the control period
        seg = CHUNK - cpos
        ca, cd, cr, ma, md, mr = _env_coefs(params, seg, sr)
        for v in range(int(state[H_HI])):
            if state[at(R_DIRTY, v)] != 0.0 and state[at(R_STATE, v)] != V_IDLE:
                _plan(state, params, v, seg, seg, sr, ca, cd, cr, ma, md, mr, False)
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
    tempo = tempo_bpm(bus, io)
    row = io[IO_CTX]
    beat0 = finite_or_zero(bus[row, CTX_BEAT]) if row >= 0 else math.nan
    i = i0
    while i < i1:
        cpos = int(clampf(state[H_CPOS], 0.0, CHUNK - 1.0))
        if cpos == 0:
            _tick(state, params, sr, tempo, beat0 + (i - i0) * tempo / (60.0 * sr))
        n = min(i1 - i, CHUNK - cpos)
        _render(state, bus, ol, orr, i, n)
        cpos += n
        state[H_CPOS] = 0.0 if cpos >= CHUNK else float(cpos)
        i += n

