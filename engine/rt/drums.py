"""A synthesised drum machine in the spirit of the TR-808/909: no sample files.

Threads:
    drum_alloc_state, drum_default_params, drum_active_voices   control side, prepare time
    drum_trigger, drum_render, drum_panic                        AUDIO THREAD (nopython, no alloc)

State: one float64 array of shape (DRUM_VOICES + 1, DRUM_W). Rows 0..DRUM_VOICES-1 are voices
(columns V_*), row DRUM_GLOBAL holds the machine's counters (columns G_*). Everything a voice
needs is in its row, including its xorshift32 noise generator (an integer < 2**32 stored
exactly in a float64), so the same state and the same calls give bit-identical output.

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

from .dsp import JIT, db_to_gain, flush, smooth_coef

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

CHOKE_S = 0.005
END_LEVEL = 3e-5  # -90 dB

# Sound design constants (Hz, seconds) -------------------------------------------------------
KICK_HZ = 50.0          # end pitch of the kick at tune 0
KICK_SWEEP = 3.2        # start pitch = KICK_HZ * (1 + KICK_SWEEP * (0.7 + 0.3 * velocity))
KICK_SWEEP_S = 0.03
KICK_DECAY_S = 0.28
KICK_DRIVE = 1.6
SNARE_HZ, SNARE_HZ2 = 185.0, 330.0
TOM_HZ_LOW, TOM_HZ_MID, TOM_HZ_HIGH = 92.0, 132.0, 188.0
RIM_HZ, RIM_HZ2 = 455.0, 1667.0
HAT_HZ = (205.3, 304.4, 369.6, 522.7, 540.0, 800.0)  # the 808's six square oscillators
CLAP_BURST_S = 0.0105
CLAP_BURSTS = 3

TWO_PI = 2.0 * math.pi
M32 = 0xFFFFFFFF


# Control side -----------------------------------------------------------------------------

def drum_alloc_state(sample_rate):
    """Control side, prepare time: a silent drum machine (all voices free, counters 0)."""
    return np.zeros((DRUM_VOICES + 1, DRUM_W), dtype=np.float64)


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
def _clamp(x, lo, hi):
    """Clamp to [lo, hi]; NaN gives lo."""
    if x >= lo:
        return x if x <= hi else hi
    return lo


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
    master = _clamp(params[DRUM_LEVEL_DB], MUTE_DB, LEVEL_MAX_DB)
    own = _clamp(params[DRUM_INST_LEVEL_DB + inst], MUTE_DB, LEVEL_MAX_DB)
    return _level_gain(master) * _level_gain(own)


@njit(**JIT)
def _choke_samples(sr):
    """Length of a choke / steal fade in samples."""
    return float(max(1, int(CHOKE_S * sr + 0.5)))


@njit(**JIT)
def _decay_k(tau_s, sr):
    """Per-sample multiplier of an exponential decay with time constant tau_s."""
    return math.exp(-1.0 / (tau_s * sr))


@njit(**JIT)
def _svf_set(row, c, fc, q, sr):
    """Set up the TPT state-variable filter at columns c..c+5 (coefficients, zeroed state)."""
    fc = _clamp(fc, 10.0, 0.45 * sr)
    g = math.tan(math.pi * fc / sr)
    k = 1.0 / q
    a1 = 1.0 / (1.0 + g * (g + k))
    row[c] = a1
    row[c + 1] = g * a1
    row[c + 2] = g * g * a1
    row[c + 3] = k
    row[c + 4] = 0.0
    row[c + 5] = 0.0


@njit(**JIT)
def _svf(row, c, x):
    """One sample of the state-variable filter at column c: (lowpass, bandpass, highpass)."""
    ic1 = row[c + 4]
    ic2 = row[c + 5]
    v3 = x - ic2
    v1 = row[c] * ic1 + row[c + 1] * v3
    v2 = ic2 + row[c + 1] * ic1 + row[c + 2] * v3
    row[c + 4] = flush(2.0 * v1 - ic1)
    row[c + 5] = flush(2.0 * v2 - ic2)
    return v2, v1, x - row[c + 3] * v1 - v2


@njit(**JIT)
def _noise(row):
    """White noise in [-1, 1) from the voice's xorshift32 generator."""
    s = np.int64(row[V_RNG])
    s ^= (s << 13) & M32
    s ^= s >> 17
    s ^= (s << 5) & M32
    row[V_RNG] = float(s)
    return s * (2.0 / 4294967296.0) - 1.0


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


@njit(**JIT)
def _env(row, c):
    """Read an exponential envelope at column c and advance it one sample."""
    e = row[c]
    row[c] = flush(e * row[c + 1])
    return e


@njit(**JIT)
def _osc(row, c, inc):
    """Advance the phase at column c by inc cycles; return the new phase in [0, 1)."""
    ph = row[c] + inc
    ph -= math.floor(ph)
    row[c] = ph
    return ph


# Instruments: one sample at unit level ------------------------------------------------------

@njit(**JIT)
def _tick_kick(row):
    p = _env(row, V_PENV)
    ph = _osc(row, V_PH, row[V_FREQ] + row[V_SWEEP] * p)
    body = math.sin(TWO_PI * ph) * _env(row, V_ENV_A)
    click = _svf(row, V_F1, _noise(row))[1] * _env(row, V_ENV_C)
    return math.tanh(KICK_DRIVE * (body + row[V_BRIGHT] * click)) * (1.0 / math.tanh(KICK_DRIVE))


@njit(**JIT)
def _tick_tom(row):
    p = _env(row, V_PENV)
    ph = _osc(row, V_PH, row[V_FREQ] + row[V_SWEEP] * p)
    body = math.sin(TWO_PI * ph) * _env(row, V_ENV_A)
    click = _svf(row, V_F1, _noise(row))[1] * _env(row, V_ENV_C)
    return math.tanh(1.3 * (body + row[V_BRIGHT] * click)) * (1.0 / math.tanh(1.3))


@njit(**JIT)
def _tick_snare(row):
    bend = 1.0 + 0.15 * _env(row, V_PENV)
    ph0 = _osc(row, V_PH, row[V_FREQ] * bend)
    ph1 = _osc(row, V_PH + 1, row[V_FREQ2] * bend)
    body = (0.65 * math.sin(TWO_PI * ph0) + 0.35 * math.sin(TWO_PI * ph1)) * _env(row, V_ENV_B)
    hp = _svf(row, V_F1, _noise(row))[2]
    noise = _svf(row, V_F2, hp)[0] * _env(row, V_ENV_A)
    return 0.55 * body + row[V_BRIGHT] * noise


@njit(**JIT)
def _tick_clap(row):
    age = int(row[V_AGE])
    burst = int(row[V_AUX])
    if age < CLAP_BURSTS * burst:
        if age % burst == 0:
            row[V_ENV_B] = 1.0
        env = _env(row, V_ENV_B)
    else:
        env = _env(row, V_ENV_A)
    bp = _svf(row, V_F1, _noise(row))[1]
    return row[V_BRIGHT] * bp * env


@njit(**JIT)
def _tick_hat(row):
    inc = row[V_FREQ]
    m = 0.0
    for j in range(6):
        m += 1.0 if _osc(row, V_PH + j, HAT_HZ[j] * inc) < 0.5 else -1.0
    x = m * (1.0 / 6.0) + 0.6 * _noise(row)
    hp = _svf(row, V_F1, x)[2]
    hp = _svf(row, V_F2, hp)[2]
    bp = _svf(row, V_F3, hp)[1] * row[V_F3 + 3]  # normalised band around the sizzle
    return row[V_BRIGHT] * (0.6 * hp + 0.4 * bp) * _env(row, V_ENV_A)


@njit(**JIT)
def _tick_rim(row):
    ph0 = _osc(row, V_PH, row[V_FREQ])
    ph1 = _osc(row, V_PH + 1, row[V_FREQ2])
    tone = 0.45 * math.sin(TWO_PI * ph0) + 0.55 * math.sin(TWO_PI * ph1)
    click = _svf(row, V_F1, _noise(row))[1] * _env(row, V_ENV_C)
    x = _svf(row, V_F2, tone + row[V_BRIGHT] * click)[2]
    return 1.1 * x * _env(row, V_ENV_A)


@njit(**JIT)
def _tick(row, inst):
    if inst == KICK:
        return _tick_kick(row)
    if inst == SNARE:
        return _tick_snare(row)
    if inst == CLOSED_HAT or inst == OPEN_HAT:
        return _tick_hat(row)
    if inst == CLAP:
        return _tick_clap(row)
    if inst == RIM:
        return _tick_rim(row)
    return _tick_tom(row)


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
    tune = math.pow(2.0, _clamp(params[DRUM_TUNE_ST], -TUNE_MAX_ST, TUNE_MAX_ST) / 12.0)
    decay = _clamp(params[DRUM_DECAY_SCALE], DECAY_SCALE_MIN, DECAY_SCALE_MAX)
    _setup_voice(row, inst, vel, tune, decay, sr)
    return slot


@njit(**JIT)
def drum_render(state, params, out, i0, i1, sample_rate):
    """AUDIO THREAD. ADD the kit's mono output for samples [i0, i1) into out[i0:i1]."""
    if i1 <= i0:
        return
    ks = smooth_coef(LEVEL_SMOOTH_S, max(sample_rate, 1000.0))
    for v in range(DRUM_VOICES):
        row = state[v]
        if row[V_ACTIVE] == 0.0:
            continue
        inst = int(row[V_INST])
        target = _target_level(params, inst)
        for i in range(i0, i1):
            x = _tick(row, inst)
            level = row[V_LEVEL] + ks * (target - row[V_LEVEL])
            row[V_LEVEL] = level
            fade = 1.0
            if row[V_FADE_LEN] > 0.0:
                row[V_FADE_LEFT] -= 1.0
                fade = row[V_FADE_LEFT] / row[V_FADE_LEN]
            out[i] += x * row[V_VEL_GAIN] * level * fade
            row[V_AGE] += 1.0
            if fade <= 0.0 or row[V_ENV_A] < END_LEVEL:
                row[V_ACTIVE] = 0.0
                break


@njit(**JIT)
def drum_panic(state, sample_rate):
    """AUDIO THREAD. Every sounding voice fades out within CHOKE_S (no click)."""
    fade = _choke_samples(max(sample_rate, 1000.0))
    for v in range(DRUM_VOICES):
        if state[v, V_ACTIVE] != 0.0 and state[v, V_FADE_LEN] == 0.0:
            state[v, V_FADE_LEN] = fade
            state[v, V_FADE_LEFT] = fade
