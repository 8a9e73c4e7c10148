"""A synthesised drum machine in the spirit of the TR-808/909: no sample files.

Threads:
    drum_alloc_state, drum_default_params, drum_active_voices   control side, prepare time
    drum_trigger, drum_render, drum_panic                        AUDIO THREAD (nopython, no alloc)

State: one float64 array of shape (DRUM_ROWS, DRUM_W). Rows 0..DRUM_VOICES-1 are voices
(columns V_*), row DRUM_GLOBAL holds the machine's counters (columns G_*), the rows after it
are scratch for drum_render. Everything a voice needs is in its row, including its noise: a
xorshift32 generator, or for the hats a seed hashed with the voice's age (integers < 2**32
stored exactly in a float64), so the same state and the same calls give bit-identical output.

Rendering: each sounding voice renders its whole segment in a loop specialised for its
instrument, with its state in locals; the recursive part (envelopes, phases, filters, level)
runs sample by sample, and the rest (sines, tanh drive, the hats' oscillators and noise) over
chunks of CHUNK samples in loops that LLVM vectorises. Every sample's value depends only on the
voice's state and the params, never on where a block was split.

Voices:
- mono per instrument: a new hit fades the same instrument's ringing voice out in CHOKE_S
  (5 ms), as the circuits of a real drum machine do; a closed hat chokes the open hat the
  same way;
- a free voice is taken first; only when all DRUM_VOICES are busy (about 16 hits within 5 ms)
  is a voice cut, the quietest one, and that is counted in G_STOLEN.

Params (float64[DRUM_N_PARAMS], indices below): tune and decay are read when a voice starts
(like turning the knob on an 808: the next hit uses it); levels are smoothed per sample.
"""
import math

import numpy as np
from numba import njit

from .dsp import JIT, clamp, db_to_gain, flush, smooth_coef

# General MIDI notes; equal to engine.parts.DRUM_NOTES (engine.rt may not import engine.parts,
# tests/test_drums.py checks they agree). Any other note is ignored.
NOTE_KICK, NOTE_RIM, NOTE_SNARE, NOTE_CLAP, NOTE_CLOSED_HAT = 36, 37, 38, 39, 42
NOTE_TOM_LOW, NOTE_OPEN_HAT, NOTE_TOM_MID, NOTE_TOM_HIGH = 45, 46, 47, 50

# Instruments (index of the per-instrument level param and of V_INST).
KICK, RIM, SNARE, CLAP, CLOSED_HAT, TOM_LOW, OPEN_HAT, TOM_MID, TOM_HIGH = range(9)
N_INSTRUMENTS = 9
INSTRUMENT_NAMES = ("kick", "rim", "snare", "clap", "closed_hat", "tom_low", "open_hat",
                    "tom_mid", "tom_high")

# Params -----------------------------------------------------------------------------------
DRUM_TUNE_ST = 0        # semitones, -24..24, all pitches and filters (read at trigger)
DRUM_DECAY_SCALE = 1    # x, 0.1..8, multiplies every amplitude decay (read at trigger)
DRUM_LEVEL_DB = 2       # dB, <= -90 is silent, max +12, whole kit (smoothed)
DRUM_INST_LEVEL_DB = 3  # dB, per instrument: params[DRUM_INST_LEVEL_DB + KICK] ... (smoothed)
DRUM_N_PARAMS = DRUM_INST_LEVEL_DB + N_INSTRUMENTS

DRUM_PARAM_NAMES = {"tune_st": DRUM_TUNE_ST, "decay_scale": DRUM_DECAY_SCALE,
                    "level_db": DRUM_LEVEL_DB}
for _k, _name in enumerate(INSTRUMENT_NAMES):
    DRUM_PARAM_NAMES[_name + "_level_db"] = DRUM_INST_LEVEL_DB + _k
del _k, _name

TUNE_MAX_ST = 24.0
DECAY_SCALE_MIN, DECAY_SCALE_MAX = 0.1, 8.0
MUTE_DB = -90.0         # a level at or below this is exactly silent
LEVEL_MAX_DB = 12.0
LEVEL_SMOOTH_S = 0.02
LEVEL_SETTLE = 1e-9      # a smoothed level this close to its target snaps to it
VELOCITY_EXPONENT = 1.6  # gain = KIT_GAIN * velocity ** 1.6 (velocity 0.5 is about -10 dB)
KIT_GAIN = 0.5           # a full-velocity kick peaks near -6 dBFS

# State layout -----------------------------------------------------------------------------
DRUM_VOICES = 16
DRUM_GLOBAL = DRUM_VOICES  # row index of the counters
DRUM_W = 48
# voice columns
V_ACTIVE, V_INST, V_AGE, V_VEL_GAIN, V_LEVEL, V_FADE_LEFT, V_FADE_LEN, V_RNG = range(8)
# a choked voice fades linearly: gain V_FADE_LEFT / V_FADE_LEN (V_FADE_LEN 0: not fading)
V_ENV_A, V_K_A = 8, 9      # gate envelope: the voice ends when it falls below END_LEVEL
V_ENV_B, V_K_B = 10, 11
V_ENV_C, V_K_C = 12, 13
V_PENV, V_K_P = 14, 15     # pitch envelope
V_FREQ, V_SWEEP, V_FREQ2 = 16, 17, 18  # cycles per sample
V_BRIGHT, V_AUX = 19, 20
V_PH = 21                  # six oscillator phases, V_PH .. V_PH + 5
V_F1, V_F2, V_F3 = 30, 36, 42  # three state-variable filters, 6 columns each
# global columns (row DRUM_GLOBAL)
G_TRIGGERS = 0  # hits started so far (also seeds each voice's noise generator)
G_STOLEN = 1    # voices cut because all DRUM_VOICES were busy
G_LEVELS_OK = 2  # 1 when the next columns hold the level targets of the params they cache:
G_LEVEL_PARAMS = 3                         # params[DRUM_LEVEL_DB:DRUM_N_PARAMS] they came from
G_LEVELS = G_LEVEL_PARAMS + 1 + N_INSTRUMENTS  # _target_level of each instrument
# scratch rows after DRUM_GLOBAL: per-sample values of one chunk (CHUNK = DRUM_W samples) of
# the voice being rendered, handed from its recursive loop to its vectorisable one
S_PH0, S_PH1, S_AMP, S_ADD, S_GAIN = range(DRUM_GLOBAL + 1, DRUM_GLOBAL + 6)
DRUM_ROWS = DRUM_GLOBAL + 6
CHUNK = DRUM_W

CHOKE_S = 0.005
END_LEVEL = 3e-5  # -90 dB

# Sound design constants (Hz, seconds) -------------------------------------------------------
KICK_HZ = 50.0          # end pitch of the kick at tune 0
KICK_SWEEP = 3.2        # start pitch = KICK_HZ * (1 + KICK_SWEEP * (0.7 + 0.3 * velocity))
KICK_SWEEP_S = 0.03
KICK_DECAY_S = 0.28
KICK_DRIVE = 1.6
TOM_DRIVE = 1.3
SNARE_HZ, SNARE_HZ2 = 185.0, 330.0
TOM_HZ_LOW, TOM_HZ_MID, TOM_HZ_HIGH = 92.0, 132.0, 188.0
RIM_HZ, RIM_HZ2 = 455.0, 1667.0
HAT_HZ = (205.3, 304.4, 369.6, 522.7, 540.0, 800.0)  # the 808's six square oscillators
CLAP_BURST_S = 0.0105
CLAP_BURSTS = 3

TWO_PI = 2.0 * math.pi
M32 = 0xFFFFFFFF
FASTMATH = {"contract"}  # fused multiply-adds in the voice loops (no reassociation)

# sin(z) on [-pi/2, pi/2]: Taylor coefficients up to z**13 (error < 7e-10)
SIN_C3, SIN_C5, SIN_C7 = -1.0 / 6.0, 1.0 / 120.0, -1.0 / 5040.0
SIN_C9, SIN_C11, SIN_C13 = 1.0 / 362880.0, -1.0 / 39916800.0, 1.0 / 6227020800.0
# tanh(x): rational approximation x * P(x**2) / Q(x**2) on [-TANH_CLAMP, TANH_CLAMP] (Eigen's)
TANH_CLAMP = 7.90531110763549805
TANH_A1, TANH_A3, TANH_A5 = 4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05
TANH_A7, TANH_A9 = 5.12229709037114e-08, -8.60467152213735e-11
TANH_A11, TANH_A13 = 2.00018790482477e-13, -2.76076847742355e-16
TANH_B0, TANH_B2 = 4.89352518554385e-03, 2.26843463243900e-03
TANH_B4, TANH_B6 = 1.18534705686654e-04, 1.19825839466702e-06


# Control side -----------------------------------------------------------------------------

def drum_alloc_state(sample_rate):
    """Control side, prepare time: a silent drum machine (all voices free, counters 0)."""
    return np.zeros((DRUM_ROWS, DRUM_W), dtype=np.float64)


def drum_default_params():
    """Control side: the params array with its defaults (tune 0 st, decay x1, all levels 0 dB)."""
    p = np.zeros(DRUM_N_PARAMS, dtype=np.float64)
    p[DRUM_DECAY_SCALE] = 1.0
    return p


def drum_active_voices(state):
    """Control side (or tests): how many voices are sounding."""
    return int(np.count_nonzero(state[:DRUM_VOICES, V_ACTIVE]))


# Audio thread helpers ---------------------------------------------------------------------

@njit(**JIT)
def _instrument(note):
    n = int(math.floor(note + 0.5)) if abs(note) < 1e6 else -1
    if n == NOTE_KICK:
        return KICK
    if n == NOTE_RIM:
        return RIM
    if n == NOTE_SNARE:
        return SNARE
    if n == NOTE_CLAP:
        return CLAP
    if n == NOTE_CLOSED_HAT:
        return CLOSED_HAT
    if n == NOTE_TOM_LOW:
        return TOM_LOW
    if n == NOTE_OPEN_HAT:
        return OPEN_HAT
    if n == NOTE_TOM_MID:
        return TOM_MID
    if n == NOTE_TOM_HIGH:
        return TOM_HIGH
    return -1


@njit(**JIT)
def _level_gain(db):
    return 0.0 if db <= MUTE_DB else db_to_gain(db)


@njit(**JIT)
def _target_level(params, inst):
    master = clamp(params[DRUM_LEVEL_DB], MUTE_DB, LEVEL_MAX_DB)
    own = clamp(params[DRUM_INST_LEVEL_DB + inst], MUTE_DB, LEVEL_MAX_DB)
    return _level_gain(master) * _level_gain(own)


@njit(**JIT)
def _target_levels(state, params):
    """Refresh the cached level targets of every instrument in the DRUM_GLOBAL row (two pow
    per instrument) only when the level params differ from the ones they were computed from."""
    glob = state[DRUM_GLOBAL]
    same = glob[G_LEVELS_OK] == 1.0
    for k in range(1 + N_INSTRUMENTS):
        same = same and glob[G_LEVEL_PARAMS + k] == params[DRUM_LEVEL_DB + k]
    if not same:
        for k in range(1 + N_INSTRUMENTS):
            glob[G_LEVEL_PARAMS + k] = params[DRUM_LEVEL_DB + k]
        for inst in range(N_INSTRUMENTS):
            glob[G_LEVELS + inst] = _target_level(params, inst)
        glob[G_LEVELS_OK] = 1.0


@njit(**JIT)
def _choke_samples(sr):
    """Length of a choke / steal fade in samples."""
    return float(max(1, int(CHOKE_S * sr + 0.5)))


@njit(**JIT)
def _decay_k(tau_s, sr):
    """Per-sample multiplier of an exponential decay with time constant tau_s."""
    return math.exp(-1.0 / (tau_s * sr))


@njit(inline="always", **JIT)
def _at(i):
    """An index known to be >= 0: unsigned, so no negative-index wraparound is compiled in
    (which also lets LLVM vectorise the chunk loops)."""
    return np.uint64(i)


@njit(inline="always", **JIT)
def _sin2pi(ph):
    """sin(2 pi ph) for a phase ph in [0, 1): range-reduced odd polynomial, error < 1e-9."""
    x = ph - 0.5                     # sin(2 pi ph) = -sin(2 pi x), x in [-0.5, 0.5)
    if x > 0.25:
        x = 0.5 - x
    elif x < -0.25:
        x = -0.5 - x                 # now x in [-0.25, 0.25]: sin(2 pi x) unchanged
    z = TWO_PI * x
    z2 = z * z
    z4 = z2 * z2
    # Estrin's scheme: short dependency chains, so successive samples overlap in the CPU
    p = ((1.0 + SIN_C3 * z2) + z4 * (SIN_C5 + SIN_C7 * z2)
         + (z4 * z4) * ((SIN_C9 + SIN_C11 * z2) + z4 * SIN_C13))
    return -(z * p)


@njit(inline="always", **JIT)
def _tanh(x):
    """tanh(x), rational approximation (|error| < 3e-7, exactly +-1 far out, odd)."""
    x = min(max(x, -TANH_CLAMP), TANH_CLAMP)
    x2 = x * x
    x4 = x2 * x2
    x8 = x4 * x4
    # Estrin's scheme, as in _sin2pi
    p = ((TANH_A1 + TANH_A3 * x2) + x4 * (TANH_A5 + TANH_A7 * x2)
         + x8 * ((TANH_A9 + TANH_A11 * x2) + x4 * TANH_A13))
    q = (TANH_B0 + TANH_B2 * x2) + x4 * (TANH_B4 + TANH_B6 * x2)
    return min(max(x * p / q, -1.0), 1.0)


@njit(inline="always", **JIT)
def _wrap(ph):
    """A phase advanced by less than one cycle (usually) back into [0, 1)."""
    if ph >= 1.0:
        ph -= 1.0
        if ph >= 1.0:  # an increment of a cycle or more (absurdly low sample rates)
            ph -= math.floor(ph)
    return ph


@njit(inline="always", **JIT)
def _xorshift(s):
    """Next state of a xorshift32 generator (held in an int64)."""
    s ^= (s << 13) & M32
    s ^= s >> 17
    s ^= (s << 5) & M32
    return s


@njit(inline="always", **JIT)
def _white(s):
    """The noise sample in [-1, 1) of xorshift32 state s."""
    return s * (2.0 / 4294967296.0) - 1.0


@njit(inline="always", **JIT)
def _svf(a1, a2, a3, ic1, ic2, x):
    """One sample of a TPT state-variable filter with coefficients a1, a2, a3 and state
    ic1, ic2: (lowpass, bandpass, next ic1, next ic2); highpass = x - k * bandpass - lowpass.
    Every filter input in this kit is noise or an oscillator (nothing decays into it), so the
    state stays of the order of the input and needs no per-sample denormal flush."""
    v3 = x - ic2
    v1 = a1 * ic1 + a2 * v3
    v2 = ic2 + a2 * ic1 + a3 * v3
    return v2, v1, 2.0 * v1 - ic1, 2.0 * v2 - ic2


@njit(**JIT)
def _svf_set(row, c, fc, q, sr):
    """Set up the TPT state-variable filter at columns c..c+5 (coefficients, zeroed state)."""
    fc = clamp(fc, 10.0, 0.45 * sr)
    g = math.tan(math.pi * fc / sr)
    k = 1.0 / q
    a1 = 1.0 / (1.0 + g * (g + k))
    row[c] = a1
    row[c + 1] = g * a1
    row[c + 2] = g * g * a1
    row[c + 3] = k
    row[c + 4] = 0.0
    row[c + 5] = 0.0


@njit(inline="always", **JIT)
def _tail(level, target, ks, fade_left, inv_fade_len):
    """Per-sample level smoothing (snapped to the target once within LEVEL_SETTLE of it) and
    choke fade (inv_fade_len = 1 / V_FADE_LEN, 0 when not fading) of a voice:
    (level, fade_left, fade)."""
    if level != target:
        level += ks * (target - level)
        if abs(target - level) <= LEVEL_SETTLE:
            level = target
    fade = 1.0
    if inv_fade_len > 0.0:
        fade_left -= 1.0
        fade = fade_left * inv_fade_len
    return level, fade_left, fade


@njit(**JIT)
def _seed(n):
    """A nonzero 32-bit seed from a counter (Wang hash)."""
    x = (n * 2654435761 + 0x9E3779B9) & M32
    x = (x ^ 61) ^ (x >> 16)
    x = (x + (x << 3)) & M32
    x ^= x >> 4
    x = (x * 0x27D4EB2D) & M32
    x ^= x >> 15
    return x if x != 0 else 0x1234567


# Instruments: each ADDs voice v (row v of state) over [i0, i1) into out, its state in locals
# written back at the end. Common to all: level smoothing, choke fade, age, and the end (the
# gate envelope V_ENV_A below END_LEVEL, or the fade done: V_ACTIVE is cleared and the rest of
# the segment left silent). ---------------------------------------------------------------------

@njit(fastmath=FASTMATH, **JIT)
def _render_kick_tom(state, v, out, i0, i1, target, ks, drive):
    """Kick (drive KICK_DRIVE) or tom (drive TOM_DRIVE): a swept sine, a noise click, tanh drive.
    Per chunk: the recursive part sample by sample (phase, envelopes, click filter, level),
    then the sine and the drive of the whole chunk in one vectorisable loop."""
    row = state[v]
    norm = 1.0 / math.tanh(drive)
    freq = row[V_FREQ]
    sweep = row[V_SWEEP]
    bright = row[V_BRIGHT]
    penv, kp = row[V_PENV], row[V_K_P]
    ea, ka = row[V_ENV_A], row[V_K_A]
    ec, kc = row[V_ENV_C], row[V_K_C]
    ph = row[V_PH]
    a1, a2, a3 = row[V_F1], row[V_F1 + 1], row[V_F1 + 2]
    ic1, ic2 = row[V_F1 + 4], row[V_F1 + 5]
    rng = np.int64(row[V_RNG])
    level, vel = row[V_LEVEL], row[V_VEL_GAIN]
    fade_left = row[V_FADE_LEFT]
    inv_fade_len = 1.0 / row[V_FADE_LEN] if row[V_FADE_LEN] > 0.0 else 0.0
    # level settled and no choke fade: the gain stays vel * level for the whole call (a level
    # only moves when its target does, and a fade only starts between calls)
    steady = level == target and inv_fade_len == 0.0
    fade = 1.0
    gain = vel * level
    age = row[V_AGE]
    alive = True
    i = i0
    while alive and i < i1:
        n = min(CHUNK, i1 - i)
        for t in range(n):
            p = penv
            penv = flush(penv * kp)
            ph = _wrap(ph + (freq + sweep * p))
            y = 0.0
            if ec != 0.0:  # the click (once its envelope is flushed to 0 it adds exactly nothing)
                rng = _xorshift(rng)
                _, bp, ic1, ic2 = _svf(a1, a2, a3, ic1, ic2, _white(rng))
                y = bright * (bp * ec)
                ec = flush(ec * kc)
            if not steady:
                level, fade_left, fade = _tail(level, target, ks, fade_left, inv_fade_len)
                gain = vel * level * fade
            state[S_PH0, t] = ph
            state[S_AMP, t] = ea
            state[S_ADD, t] = y
            state[S_GAIN, t] = gain
            ea = flush(ea * ka)
            if fade <= 0.0 or ea < END_LEVEL:
                alive = False
                n = t + 1
                break
        age += n
        for t in range(n):
            u = _at(t)
            body = _sin2pi(state[S_PH0, u]) * state[S_AMP, u]
            x = _tanh(drive * (body + state[S_ADD, u])) * norm
            out[_at(i + t)] += x * state[S_GAIN, u]
        i += n
    row[V_PENV], row[V_ENV_A], row[V_ENV_C], row[V_PH] = penv, ea, ec, ph
    row[V_F1 + 4], row[V_F1 + 5] = ic1, ic2
    row[V_RNG] = float(rng)
    row[V_LEVEL], row[V_FADE_LEFT], row[V_AGE] = level, fade_left, age
    if not alive:
        row[V_ACTIVE] = 0.0


@njit(fastmath=FASTMATH, **JIT)
def _render_snare(state, v, out, i0, i1, target, ks):
    """Two bent sines and highpassed, lowpassed noise; the sines per chunk, vectorisable."""
    row = state[v]
    f0, f1 = row[V_FREQ], row[V_FREQ2]
    bright = row[V_BRIGHT]
    penv, kp = row[V_PENV], row[V_K_P]
    ea, ka = row[V_ENV_A], row[V_K_A]
    eb, kb = row[V_ENV_B], row[V_K_B]
    ph0, ph1 = row[V_PH], row[V_PH + 1]
    a1, a2, a3, k = row[V_F1], row[V_F1 + 1], row[V_F1 + 2], row[V_F1 + 3]
    ic1, ic2 = row[V_F1 + 4], row[V_F1 + 5]
    b1, b2, b3 = row[V_F2], row[V_F2 + 1], row[V_F2 + 2]
    jc1, jc2 = row[V_F2 + 4], row[V_F2 + 5]
    rng = np.int64(row[V_RNG])
    level, vel = row[V_LEVEL], row[V_VEL_GAIN]
    fade_left = row[V_FADE_LEFT]
    inv_fade_len = 1.0 / row[V_FADE_LEN] if row[V_FADE_LEN] > 0.0 else 0.0
    # level settled and no choke fade: the gain stays vel * level for the whole call (a level
    # only moves when its target does, and a fade only starts between calls)
    steady = level == target and inv_fade_len == 0.0
    fade = 1.0
    gain = vel * level
    age = row[V_AGE]
    alive = True
    i = i0
    while alive and i < i1:
        n = min(CHUNK, i1 - i)
        for t in range(n):
            bend = 1.0 + 0.15 * penv
            penv = flush(penv * kp)
            ph0 = _wrap(ph0 + f0 * bend)
            ph1 = _wrap(ph1 + f1 * bend)
            rng = _xorshift(rng)
            w = _white(rng)
            lp, bp, ic1, ic2 = _svf(a1, a2, a3, ic1, ic2, w)
            lp, _, jc1, jc2 = _svf(b1, b2, b3, jc1, jc2, w - k * bp - lp)
            if not steady:
                level, fade_left, fade = _tail(level, target, ks, fade_left, inv_fade_len)
                gain = vel * level * fade
            state[S_PH0, t] = ph0
            state[S_PH1, t] = ph1
            state[S_AMP, t] = eb
            state[S_ADD, t] = bright * (lp * ea)
            state[S_GAIN, t] = gain
            eb = flush(eb * kb)
            ea = flush(ea * ka)
            if fade <= 0.0 or ea < END_LEVEL:
                alive = False
                n = t + 1
                break
        age += n
        for t in range(n):
            u = _at(t)
            body = (0.65 * _sin2pi(state[S_PH0, u]) + 0.35 * _sin2pi(state[S_PH1, u]))
            x = 0.55 * (body * state[S_AMP, u]) + state[S_ADD, u]
            out[_at(i + t)] += x * state[S_GAIN, u]
        i += n
    row[V_PENV], row[V_ENV_A], row[V_ENV_B], row[V_PH], row[V_PH + 1] = penv, ea, eb, ph0, ph1
    row[V_F1 + 4], row[V_F1 + 5] = ic1, ic2
    row[V_F2 + 4], row[V_F2 + 5] = jc1, jc2
    row[V_RNG] = float(rng)
    row[V_LEVEL], row[V_FADE_LEFT], row[V_AGE] = level, fade_left, age
    if not alive:
        row[V_ACTIVE] = 0.0


@njit(fastmath=FASTMATH, **JIT)
def _render_clap(state, v, out, i0, i1, target, ks):
    """Bandpassed noise: CLAP_BURSTS re-attacking bursts, then the tail."""
    row = state[v]
    burst = int(row[V_AUX])
    bright = row[V_BRIGHT]
    ea, ka = row[V_ENV_A], row[V_K_A]
    eb, kb = row[V_ENV_B], row[V_K_B]
    a1, a2, a3 = row[V_F1], row[V_F1 + 1], row[V_F1 + 2]
    ic1, ic2 = row[V_F1 + 4], row[V_F1 + 5]
    rng = np.int64(row[V_RNG])
    level, vel = row[V_LEVEL], row[V_VEL_GAIN]
    fade_left = row[V_FADE_LEFT]
    inv_fade_len = 1.0 / row[V_FADE_LEN] if row[V_FADE_LEN] > 0.0 else 0.0
    # level settled and no choke fade: the gain stays vel * level for the whole call (a level
    # only moves when its target does, and a fade only starts between calls)
    steady = level == target and inv_fade_len == 0.0
    fade = 1.0
    gain = vel * level
    age = row[V_AGE]
    n_age = int(age)
    bursts_end = CLAP_BURSTS * burst
    in_burst = n_age % burst  # samples since the last burst started (while bursting)
    alive = True
    for i in range(i0, i1):
        if n_age < bursts_end:
            if in_burst == 0:
                eb = 1.0
            env = eb
            eb = flush(eb * kb)
            in_burst += 1
            if in_burst == burst:
                in_burst = 0
        else:
            env = ea
            ea = flush(ea * ka)
        n_age += 1
        rng = _xorshift(rng)
        _, bp, ic1, ic2 = _svf(a1, a2, a3, ic1, ic2, _white(rng))
        x = bright * bp * env
        if not steady:
            level, fade_left, fade = _tail(level, target, ks, fade_left, inv_fade_len)
            gain = vel * level * fade
        out[i] += x * gain
        if fade <= 0.0 or ea < END_LEVEL:
            alive = False
            break
    age = float(n_age)
    row[V_ENV_A], row[V_ENV_B] = ea, eb
    row[V_F1 + 4], row[V_F1 + 5] = ic1, ic2
    row[V_RNG] = float(rng)
    row[V_LEVEL], row[V_FADE_LEFT], row[V_AGE] = level, fade_left, age
    if not alive:
        row[V_ACTIVE] = 0.0


@njit(inline="always", **JIT)
def _hash_white(n):
    """White noise in [-1, 1) as a hash of the 32-bit counter n (lowbias32): unlike a running
    generator, any sample of it can be computed on its own, so whole chunks vectorise."""
    n ^= n >> 16
    n = (n * 0x7FEB352D) & M32
    n ^= n >> 15
    n = (n * 0x846CA68B) & M32
    n ^= n >> 16
    return n * (2.0 / 4294967296.0) - 1.0


@njit(fastmath=FASTMATH, **JIT)
def _render_hat(state, v, out, i0, i1, target, ks):
    """Six square oscillators (32-bit integer phases in V_PH..V_PH+5) and noise (hashed from
    the voice's seed V_RNG and its age), two highpasses and a normalised band around the sizzle.
    Per chunk: the oscillators and the noise in one vectorisable loop (integer phases: sample t
    of a chunk is exactly the running phase), then the filters sample by sample."""
    row = state[v]
    scale = 4294967296.0
    f = row[V_FREQ]
    # phase increments in 1/2**32 cycles (only the fraction of a cycle matters)
    inc0 = np.int64((HAT_HZ[0] * f - math.floor(HAT_HZ[0] * f)) * scale)
    inc1 = np.int64((HAT_HZ[1] * f - math.floor(HAT_HZ[1] * f)) * scale)
    inc2 = np.int64((HAT_HZ[2] * f - math.floor(HAT_HZ[2] * f)) * scale)
    inc3 = np.int64((HAT_HZ[3] * f - math.floor(HAT_HZ[3] * f)) * scale)
    inc4 = np.int64((HAT_HZ[4] * f - math.floor(HAT_HZ[4] * f)) * scale)
    inc5 = np.int64((HAT_HZ[5] * f - math.floor(HAT_HZ[5] * f)) * scale)
    p0, p1, p2 = np.int64(row[V_PH]), np.int64(row[V_PH + 1]), np.int64(row[V_PH + 2])
    p3, p4, p5 = np.int64(row[V_PH + 3]), np.int64(row[V_PH + 4]), np.int64(row[V_PH + 5])
    seed = np.int64(row[V_RNG])
    c6 = 0.6 * row[V_BRIGHT]
    c4 = 0.4 * row[V_BRIGHT] * row[V_F3 + 3]
    ea, ka = row[V_ENV_A], row[V_K_A]
    a1, a2, a3, ak = row[V_F1], row[V_F1 + 1], row[V_F1 + 2], row[V_F1 + 3]
    ic1, ic2 = row[V_F1 + 4], row[V_F1 + 5]
    b1, b2, b3, bk = row[V_F2], row[V_F2 + 1], row[V_F2 + 2], row[V_F2 + 3]
    jc1, jc2 = row[V_F2 + 4], row[V_F2 + 5]
    c1, c2, c3 = row[V_F3], row[V_F3 + 1], row[V_F3 + 2]
    kc1, kc2 = row[V_F3 + 4], row[V_F3 + 5]
    level, vel = row[V_LEVEL], row[V_VEL_GAIN]
    fade_left = row[V_FADE_LEFT]
    inv_fade_len = 1.0 / row[V_FADE_LEN] if row[V_FADE_LEN] > 0.0 else 0.0
    # level settled and no choke fade: the gain stays vel * level for the whole call (a level
    # only moves when its target does, and a fade only starts between calls)
    steady = level == target and inv_fade_len == 0.0
    fade = 1.0
    gain = vel * level
    age = row[V_AGE]
    alive = True
    i = i0
    while alive and i < i1:
        n = min(CHUNK, i1 - i)
        a0 = np.int64(age)
        for t in range(n):
            # each square is +1 in the first half of its cycle, -1 in the second
            s = t + 1
            high = (((p0 + s * inc0) & M32) >> 31) + (((p1 + s * inc1) & M32) >> 31)
            high += (((p2 + s * inc2) & M32) >> 31) + (((p3 + s * inc3) & M32) >> 31)
            high += (((p4 + s * inc4) & M32) >> 31) + (((p5 + s * inc5) & M32) >> 31)
            state[S_ADD, _at(t)] = ((3 - high) * (1.0 / 3.0)
                               + 0.6 * _hash_white((seed + a0 + t) & M32))
        for t in range(n):
            x = state[S_ADD, t]
            lp, bp, ic1, ic2 = _svf(a1, a2, a3, ic1, ic2, x)
            hp = x - ak * bp - lp
            lp, bp, jc1, jc2 = _svf(b1, b2, b3, jc1, jc2, hp)
            hp2 = hp - bk * bp - lp
            _, bp, kc1, kc2 = _svf(c1, c2, c3, kc1, kc2, hp2)
            y = (c6 * hp2 + c4 * bp) * ea  # 0.6 * highpass + 0.4 * normalised band
            ea = flush(ea * ka)
            if not steady:
                level, fade_left, fade = _tail(level, target, ks, fade_left, inv_fade_len)
                gain = vel * level * fade
            out[_at(i + t)] += y * gain
            if fade <= 0.0 or ea < END_LEVEL:
                alive = False
                n = t + 1
                break
        age += n
        p0 = (p0 + n * inc0) & M32
        p1 = (p1 + n * inc1) & M32
        p2 = (p2 + n * inc2) & M32
        p3 = (p3 + n * inc3) & M32
        p4 = (p4 + n * inc4) & M32
        p5 = (p5 + n * inc5) & M32
        i += n
    row[V_PH], row[V_PH + 1], row[V_PH + 2] = float(p0), float(p1), float(p2)
    row[V_PH + 3], row[V_PH + 4], row[V_PH + 5] = float(p3), float(p4), float(p5)
    row[V_ENV_A] = ea
    row[V_F1 + 4], row[V_F1 + 5] = ic1, ic2
    row[V_F2 + 4], row[V_F2 + 5] = jc1, jc2
    row[V_F3 + 4], row[V_F3 + 5] = kc1, kc2
    row[V_LEVEL], row[V_FADE_LEFT], row[V_AGE] = level, fade_left, age
    if not alive:
        row[V_ACTIVE] = 0.0


@njit(fastmath=FASTMATH, **JIT)
def _render_rim(state, v, out, i0, i1, target, ks):
    """Two sines and a noise click through a highpass."""
    row = state[v]
    f0, f1 = row[V_FREQ], row[V_FREQ2]
    bright = row[V_BRIGHT]
    ea, ka = row[V_ENV_A], row[V_K_A]
    ec, kc = row[V_ENV_C], row[V_K_C]
    ph0, ph1 = row[V_PH], row[V_PH + 1]
    a1, a2, a3 = row[V_F1], row[V_F1 + 1], row[V_F1 + 2]
    ic1, ic2 = row[V_F1 + 4], row[V_F1 + 5]
    b1, b2, b3, bk = row[V_F2], row[V_F2 + 1], row[V_F2 + 2], row[V_F2 + 3]
    jc1, jc2 = row[V_F2 + 4], row[V_F2 + 5]
    rng = np.int64(row[V_RNG])
    level, vel = row[V_LEVEL], row[V_VEL_GAIN]
    fade_left = row[V_FADE_LEFT]
    inv_fade_len = 1.0 / row[V_FADE_LEN] if row[V_FADE_LEN] > 0.0 else 0.0
    # level settled and no choke fade: the gain stays vel * level for the whole call (a level
    # only moves when its target does, and a fade only starts between calls)
    steady = level == target and inv_fade_len == 0.0
    fade = 1.0
    gain = vel * level
    age = row[V_AGE]
    alive = True
    for i in range(i0, i1):
        ph0 = _wrap(ph0 + f0)
        ph1 = _wrap(ph1 + f1)
        tone = 0.45 * _sin2pi(ph0) + 0.55 * _sin2pi(ph1)
        s = tone
        if ec != 0.0:  # the click (once its envelope is flushed to 0 it adds exactly nothing)
            rng = _xorshift(rng)
            _, bp, ic1, ic2 = _svf(a1, a2, a3, ic1, ic2, _white(rng))
            s = tone + bright * (bp * ec)
            ec = flush(ec * kc)
        lp, bp, jc1, jc2 = _svf(b1, b2, b3, jc1, jc2, s)
        x = 1.1 * (s - bk * bp - lp) * ea
        ea = flush(ea * ka)
        if not steady:
            level, fade_left, fade = _tail(level, target, ks, fade_left, inv_fade_len)
            gain = vel * level * fade
        out[i] += x * gain
        age += 1.0
        if fade <= 0.0 or ea < END_LEVEL:
            alive = False
            break
    row[V_ENV_A], row[V_ENV_C], row[V_PH], row[V_PH + 1] = ea, ec, ph0, ph1
    row[V_F1 + 4], row[V_F1 + 5] = ic1, ic2
    row[V_F2 + 4], row[V_F2 + 5] = jc1, jc2
    row[V_RNG] = float(rng)
    row[V_LEVEL], row[V_FADE_LEFT], row[V_AGE] = level, fade_left, age
    if not alive:
        row[V_ACTIVE] = 0.0


# Voice set-up -------------------------------------------------------------------------------

@njit(**JIT)
def _setup_voice(row, inst, vel, tune, decay, sr):
    """Fill a zeroed voice row for instrument inst (velocity 0..1, tune ratio, decay scale)."""
    row[V_ENV_A] = 1.0
    row[V_K_A] = 1.0
    if inst == KICK:
        f = KICK_HZ * tune / sr
        row[V_FREQ] = f
        row[V_SWEEP] = f * KICK_SWEEP * (0.7 + 0.3 * vel)
        row[V_PENV] = 1.0
        row[V_K_P] = _decay_k(KICK_SWEEP_S, sr)
        row[V_K_A] = _decay_k(KICK_DECAY_S * decay, sr)
        row[V_ENV_C] = 1.0
        row[V_K_C] = _decay_k(0.0025, sr)
        row[V_BRIGHT] = 0.25 + 0.35 * vel
        _svf_set(row, V_F1, 2800.0 * tune, 0.8, sr)
    elif inst == TOM_LOW or inst == TOM_MID or inst == TOM_HIGH:
        hz = TOM_HZ_LOW if inst == TOM_LOW else (TOM_HZ_MID if inst == TOM_MID else TOM_HZ_HIGH)
        f = hz * tune / sr
        row[V_FREQ] = f
        row[V_SWEEP] = f * (0.35 + 0.15 * vel)
        row[V_PENV] = 1.0
        row[V_K_P] = _decay_k(0.06, sr)
        row[V_K_A] = _decay_k((0.22 - 0.15 * (hz - TOM_HZ_LOW) / TOM_HZ_HIGH) * decay, sr)
        row[V_ENV_C] = 1.0
        row[V_K_C] = _decay_k(0.003, sr)
        row[V_BRIGHT] = 0.3 + 0.4 * vel
        _svf_set(row, V_F1, 2000.0 * tune, 0.9, sr)
    elif inst == SNARE:
        row[V_FREQ] = SNARE_HZ * tune / sr
        row[V_FREQ2] = SNARE_HZ2 * tune / sr
        row[V_PENV] = 1.0
        row[V_K_P] = _decay_k(0.012, sr)
        row[V_ENV_B] = 1.0
        row[V_K_B] = _decay_k(0.055 * decay, sr)
        row[V_K_A] = _decay_k(0.075 * decay, sr)
        row[V_BRIGHT] = 0.55 + 0.25 * vel
        _svf_set(row, V_F1, 1400.0 * tune, 0.7, sr)
        _svf_set(row, V_F2, (6500.0 + 4000.0 * vel) * tune, 0.7, sr)
    elif inst == CLAP:
        row[V_AUX] = float(max(1, int(CLAP_BURST_S * sr + 0.5)))
        row[V_ENV_A] = 0.7  # tail level
        row[V_K_B] = _decay_k(0.0045, sr)
        row[V_K_A] = _decay_k(0.075 * decay, sr)
        row[V_BRIGHT] = 2.6 * (0.8 + 0.2 * vel)
        _svf_set(row, V_F1, 1150.0 * tune, 1.6, sr)
    elif inst == CLOSED_HAT or inst == OPEN_HAT:
        row[V_FREQ] = tune / sr
        tau = 0.022 if inst == CLOSED_HAT else 0.17
        row[V_K_A] = _decay_k(tau * decay, sr)
        row[V_BRIGHT] = 0.85 * (0.75 + 0.25 * vel)
        fc = (6000.0 + 1500.0 * vel) * tune
        _svf_set(row, V_F1, fc, 0.7, sr)
        _svf_set(row, V_F2, fc, 0.7, sr)
        _svf_set(row, V_F3, 10000.0 * tune, 1.2, sr)
    else:  # RIM
        row[V_FREQ] = RIM_HZ * tune / sr
        row[V_FREQ2] = RIM_HZ2 * tune / sr
        row[V_K_A] = _decay_k(0.008 * decay, sr)
        row[V_ENV_C] = 1.0
        row[V_K_C] = _decay_k(0.0015, sr)
        row[V_BRIGHT] = 0.6 + 0.4 * vel
        _svf_set(row, V_F1, 2600.0 * tune, 1.5, sr)
        _svf_set(row, V_F2, 380.0 * tune, 0.7, sr)


# Kernels ------------------------------------------------------------------------------------

@njit(**JIT)
def drum_trigger(state, params, note, velocity, sample_rate):
    """AUDIO THREAD. Start a hit of GM drum `note` at `velocity` (0..1); returns the voice index,
    or -1 if the note is not a drum of this kit or velocity <= 0.

    The hit sounds from the next sample drum_render produces. A voice of the same instrument
    that is still ringing (and an open hat, when this is a closed hat) fades out in CHOKE_S.
    """
    inst = _instrument(note)
    if inst < 0 or not (velocity > 0.0):
        return -1
    sr = max(sample_rate, 1000.0)
    vel = min(velocity, 1.0)
    fade = _choke_samples(sr)
    slot = -1
    for v in range(DRUM_VOICES):
        row = state[v]
        if row[V_ACTIVE] == 0.0:
            if slot < 0:
                slot = v
            continue
        other = int(row[V_INST])
        if row[V_FADE_LEN] == 0.0 and (other == inst or (inst == CLOSED_HAT and other == OPEN_HAT)):
            row[V_FADE_LEN] = fade
            row[V_FADE_LEFT] = fade
    if slot < 0:
        # every voice busy: cut the quietest (ties: the oldest)
        best = 1e300
        best_age = -1.0
        for v in range(DRUM_VOICES):
            row = state[v]
            loud = row[V_ENV_A] * row[V_VEL_GAIN] * row[V_LEVEL]
            if row[V_FADE_LEN] > 0.0:
                loud *= row[V_FADE_LEFT] / row[V_FADE_LEN]
            if loud < best or (loud == best and row[V_AGE] > best_age):
                best = loud
                best_age = row[V_AGE]
                slot = v
        state[DRUM_GLOBAL, G_STOLEN] += 1.0
    glob = state[DRUM_GLOBAL]
    row = state[slot]
    row[:] = 0.0
    row[V_ACTIVE] = 1.0
    row[V_INST] = float(inst)
    row[V_VEL_GAIN] = KIT_GAIN * math.pow(vel, VELOCITY_EXPONENT)
    row[V_LEVEL] = _target_level(params, inst)
    row[V_RNG] = float(_seed(np.int64(glob[G_TRIGGERS]) & M32))
    glob[G_TRIGGERS] += 1.0
    tune = math.pow(2.0, clamp(params[DRUM_TUNE_ST], -TUNE_MAX_ST, TUNE_MAX_ST) / 12.0)
    decay = clamp(params[DRUM_DECAY_SCALE], DECAY_SCALE_MIN, DECAY_SCALE_MAX)
    _setup_voice(row, inst, vel, tune, decay, sr)
    return slot


@njit(**JIT)
def drum_render(state, params, out, i0, i1, sample_rate):
    """AUDIO THREAD. ADD the kit's mono output for samples [i0, i1) into out[i0:i1].

    Each sounding voice renders its whole segment in a loop specialised for its instrument
    (state in locals, written back at the end); free voices cost nothing."""
    if i1 <= i0:
        return
    ks = smooth_coef(LEVEL_SMOOTH_S, max(sample_rate, 1000.0))
    _target_levels(state, params)
    for v in range(DRUM_VOICES):
        if state[v, V_ACTIVE] != 0.0:
            drum_render_voice(state, v, out, i0, i1, ks)


@njit(**JIT)
def drum_render_voice(state, v, out, i0, i1, ks):
    """AUDIO THREAD. ADD sounding voice v's output for [i0, i1) into out (levels targeted by
    `_target_levels` first; ks: the level smoothing coefficient)."""
    inst = int(state[v, V_INST])
    target = state[DRUM_GLOBAL, G_LEVELS + inst]
    if inst == KICK:
        _render_kick_tom(state, v, out, i0, i1, target, ks, KICK_DRIVE)
    elif inst == SNARE:
        _render_snare(state, v, out, i0, i1, target, ks)
    elif inst == CLOSED_HAT or inst == OPEN_HAT:
        _render_hat(state, v, out, i0, i1, target, ks)
    elif inst == CLAP:
        _render_clap(state, v, out, i0, i1, target, ks)
    elif inst == RIM:
        _render_rim(state, v, out, i0, i1, target, ks)
    else:
        _render_kick_tom(state, v, out, i0, i1, target, ks, TOM_DRIVE)


@njit(**JIT)
def drum_panic(state, sample_rate):
    """AUDIO THREAD. Every sounding voice fades out within CHOKE_S (no click)."""
    fade = _choke_samples(max(sample_rate, 1000.0))
    for v in range(DRUM_VOICES):
        if state[v, V_ACTIVE] != 0.0 and state[v, V_FADE_LEN] == 0.0:
            state[v, V_FADE_LEN] = fade
            state[v, V_FADE_LEFT] = fade
