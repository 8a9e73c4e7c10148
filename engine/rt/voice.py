"""Polyphonic subtractive synth voices (AUDIO THREAD ONLY).

These are the kernels of the `analog` instrument unit (engine.rt.units.analog), which holds
them in its state: the kernels take that state as a few arrays and a row index `p` into the 2-D
ones (always 0 there). Voice state is one flat float32 array of rows (`engine.rt.layout` VF_*),
NVMAX columns per row; a part's voices are a contiguous range whose length is a multiple of
LANES. Every stage
(envelopes, oscillators, cutoff, filter, amplifier) is a loop over the part's active voices, in
float32 with unsigned indices and compile-time row offsets, so LLVM vectorizes each loop across
voices (AVX2/AVX-512) with no alias checks. Choices made per part (waveform, filter type) are
branches outside those loops.

While a part's parameters are settled (most of the time) it renders up to VF_CHUNK samples at
a time: stage by stage over the chunk across its voices, or, with few voices sounding, voice by
voice with each voice's state in registers; a part with no voice only runs its LFO phase on.
Parameter glides, circuit switches and steal fades go sample by sample (`_sample`). All paths
compute the same arithmetic (VFAST never reassociates), so they give the same bits and no
block split changes the output (tests/test_voice.py).

Voice stealing never clicks: a stolen voice first fades out linearly to exactly 0 over
STEAL_TIME_S (2 ms, `steal_samples` whole samples; stage ST_STEAL), and the note that stole it
starts on the very next sample.
"""
import math

import numpy as np
from numba import njit

from engine.rt import noise
from engine.rt.dsp import JIT, db_to_gain
from engine.rt.layout import (
    NVMAX, PS_A_COEF, PS_COEF_DIRTY, PS_D_COEF, PS_FA_COEF, PS_FD_COEF, PS_FR_COEF, PS_GAIN,
    PS_G_DIRTY, PS_LFO_PHASE, PS_LOG2_CUTOFF, PS_NACTIVE, PS_NSTEAL, PS_R_COEF, PS_RATIO2, PS_SETTLING,
    PS_DUCK, PS_NOISE0, PS_SEED, PS_SUSTAIN, PS_SWITCH, PS_VHI, PS_VLO,
    ST_ATTACK, ST_DECAY, ST_IDLE, ST_RELEASE, ST_STEAL, VF_AENV, VF_ASTAGE, VF_FENV, VF_FSTAGE,
    VF_G, VF_GAIN, VF_INC, VF_KEYOCT, VF_OSC, VF_OUT, VF_PHASE1, VF_PHASE2, VF_S1,
    VF_S2, VF_S3, VF_S4, VF_VEL, VF_C_G, VF_C_OSC, VF_C_OUT, VF_C_SCALAR, VF_CHUNK, VM_FADE_LEFT, VM_FADE_STEP, VM_HELD, VM_NOTE, VM_PEND_NOTE,
    VM_PEND_SOURCE, VM_PEND_VEL, VM_SOURCE, VM_START, VM_SUSTAINED,
)
from engine.rt.osc import (
    ONE, ZERO, exp2_fast, pulse, saw, sine, tan_fraction, tanh_fast, triangle, wrap,
)
from engine.rt.params import (
    NPARAMS, P_AMP_A, P_AMP_D, P_AMP_R, P_AMP_S, P_CUTOFF_HZ, P_DETUNE_CENTS, P_DRIVE,
    P_FENV_OCT, P_FILTER_TYPE, P_FLT_A, P_FLT_D, P_FLT_R, P_FLT_S, P_GAIN_DB, P_KEY_TRACKING,
    P_LFO_CUTOFF, P_LFO_PITCH, P_LFO_RATE, P_LFO_SHAPE, P_MOD_VIBRATO, P_NOISE, P_NOISE_COLOR, P_OSC1_WAVE,
    P_OSC2_LEVEL, P_OSC2_SEMI, P_OSC2_WAVE, P_PULSE_WIDTH, P_RESONANCE, P_VEL_CUTOFF_OCT,
    P_VEL_SENS, P_BEND_ST, P_MOD, SMOOTH_S, STEPPED, SWITCH_S, SWITCHED, SYNTH_SPECS,
)

LANES = 8
_PINK_SCALE = 1.0 / noise.PINK_GAIN   # pink at white's level
"""Voice ranges and active counts are padded to multiples of LANES and each voice always adds
into the same accumulator lane, so the sum over voices is bit-identical whatever the count."""

VFAST = dict(JIT, fastmath={"contract"})
"""Voice loops may fuse a multiply and an add, but never reorder or approximate: every voice
computes exactly as written, so the vector loops (across voices) and the scalar ones (one voice
over a chunk) give the same bits, and a voice sounds the same whatever renders it."""

f32 = np.float32
u64 = np.uint64

# row offsets: unsigned compile-time constants for the vector loops ...
_PH1, _PH2, _INC = u64(VF_PHASE1 * NVMAX), u64(VF_PHASE2 * NVMAX), u64(VF_INC * NVMAX)
_AENV, _ASTG = u64(VF_AENV * NVMAX), u64(VF_ASTAGE * NVMAX)
_FENV, _FSTG = u64(VF_FENV * NVMAX), u64(VF_FSTAGE * NVMAX)
_S1, _S2, _S3, _S4 = (u64(r * NVMAX) for r in (VF_S1, VF_S2, VF_S3, VF_S4))
_VEL, _KEY, _GAIN = u64(VF_VEL * NVMAX), u64(VF_KEYOCT * NVMAX), u64(VF_GAIN * NVMAX)
_OSC, _G, _OUT = (u64(r * NVMAX) for r in (VF_OSC, VF_G, VF_OUT))
_ULANES = u64(LANES)

# stage codes and constants in float32
_IDLE, _ATT, _DEC, _REL = f32(ST_IDLE), f32(ST_ATTACK), f32(ST_DECAY), f32(ST_RELEASE)
ATTACK_TARGET = f32(1.3)  # attack aims past 1.0 for a rounded, punchy curve; clipped at 1.0
IDLE_LEVEL = 1e-4         # release ends (and the voice is freed) below -80 dB
_IDLE_LEVEL = f32(IDLE_LEVEL)
STEAL_TIME_S = 0.002
"""A stolen (or panicked) voice fades out linearly over this time, rounded to whole samples."""
_M14, _P15 = f32(-14.0), f32(15.0)

_SMOOTHED = np.array([k not in STEPPED for k in range(NPARAMS)], dtype=np.bool_)
_SWITCHED = np.array([k in SWITCHED for k in range(NPARAMS)], dtype=np.bool_)
# Valid ranges: targets are clamped to them before they are used, so no value can make the audio
# unsafe (an osc2 ratio of 2^(1e30/12) made NaN in the idle voices' lanes). Bend and mod wheel
# as engine.rt.render clamps them.
_LO = np.full(NPARAMS, -np.inf)
_HI = np.full(NPARAMS, np.inf)
for _spec in SYNTH_SPECS.values():
    _LO[_spec.index], _HI[_spec.index] = _spec.lo, _spec.hi
_LO[P_BEND_ST], _HI[P_BEND_ST] = -48.0, 48.0
_LO[P_MOD], _HI[P_MOD] = 0.0, 1.0


# ---- events (scalar code, int64 indices) ---------------------------------------------------------

@njit(inline="always", **JIT)
def _at(row, v):
    return row * NVMAX + v


@njit(**JIT)
def _start(vf, vm, ps, pcur, p, v, note, vel, src, now, sample_rate):
    for row in (VF_PHASE1, VF_AENV, VF_FENV, VF_S1, VF_S2, VF_S3, VF_S4):
        vf[_at(row, v)] = 0.0
    vf[_at(VF_PHASE2, v)] = 0.25
    vf[_at(VF_INC, v)] = 440.0 * 2.0 ** ((note - 69.0) / 12.0) / sample_rate
    vf[_at(VF_ASTAGE, v)] = ST_ATTACK
    vf[_at(VF_FSTAGE, v)] = ST_ATTACK
    vf[_at(VF_VEL, v)] = vel
    vf[_at(VF_KEYOCT, v)] = (note - 60.0) / 12.0
    sens = min(max(pcur[p, P_VEL_SENS], 0.0), 1.0)
    vf[_at(VF_GAIN, v)] = (1.0 - sens) + sens * vel * vel
    vm[VM_NOTE, v] = note
    vm[VM_SOURCE, v] = src
    vm[VM_START, v] = now
    vm[VM_HELD, v] = 1.0
    vm[VM_SUSTAINED, v] = 0.0
    vm[VM_PEND_NOTE, v] = -1.0
    n = v - int(ps[p, PS_VLO]) + 1
    if n > ps[p, PS_NACTIVE]:
        ps[p, PS_NACTIVE] = n
    ps[p, PS_G_DIRTY] = 1.0


@njit(**JIT)
def steal_samples(sample_rate):
    """Length of a steal fade in samples (the thief starts right after it)."""
    return max(1, int(round(STEAL_TIME_S * sample_rate)))


@njit(**JIT)
def _steal(vf, vm, ps, p, v):
    """Start fading voice v out (its level is frozen until the fade is laid out, by
    `_begin_fades` before the next sample is rendered)."""
    if vf[_at(VF_ASTAGE, v)] != ST_STEAL:
        vf[_at(VF_ASTAGE, v)] = ST_STEAL
        vf[_at(VF_FSTAGE, v)] = ST_STEAL
        vm[VM_FADE_LEFT, v] = -1.0
        ps[p, PS_NSTEAL] += 1.0


@njit(**JIT)
def note_on(vf, vm, ps, pcur, p, note, vel, src, now, sample_rate):
    """Start `note` on part p: the lowest idle voice, else steal one (fading it out first).
    Returns 1 if a voice was stolen."""
    lo = int(ps[p, PS_VLO])
    hi = int(ps[p, PS_VHI])
    vel = min(max(vel, 0.0), 1.0)
    for v in range(lo, hi):
        if vf[_at(VF_ASTAGE, v)] == ST_IDLE and vm[VM_PEND_NOTE, v] < 0.0:
            _start(vf, vm, ps, pcur, p, v, note, vel, src, now, sample_rate)
            return 0
    # steal: prefer released voices, then the oldest; a voice already fading is last resort
    best = lo
    best_key = 1e300
    for v in range(lo, hi):
        stage = vf[_at(VF_ASTAGE, v)]
        key = vm[VM_START, v] - (1e200 if stage == ST_RELEASE else 0.0) + \
            (1e250 if stage == ST_STEAL else 0.0)
        if key < best_key:
            best_key = key
            best = v
    _steal(vf, vm, ps, p, best)
    vm[VM_HELD, best] = 0.0
    vm[VM_SUSTAINED, best] = 0.0
    vm[VM_PEND_NOTE, best] = note
    vm[VM_PEND_VEL, best] = vel
    vm[VM_PEND_SOURCE, best] = src
    return 1


@njit(**JIT)
def _release(vf, vm, v):
    vm[VM_HELD, v] = 0.0
    vm[VM_SUSTAINED, v] = 0.0
    stage = vf[_at(VF_ASTAGE, v)]
    if stage != ST_IDLE and stage != ST_STEAL:
        vf[_at(VF_ASTAGE, v)] = ST_RELEASE
        vf[_at(VF_FSTAGE, v)] = ST_RELEASE


@njit(**JIT)
def note_off(vf, vm, ps, p, note, src):
    """Release the voices of part p that `src` started on `note` (sustain pedal permitting)."""
    for v in range(int(ps[p, PS_VLO]), int(ps[p, PS_VHI])):
        if vm[VM_PEND_NOTE, v] == note and vm[VM_PEND_SOURCE, v] == src:
            vm[VM_PEND_NOTE, v] = -1.0   # released before its stolen voice was free
        if vm[VM_HELD, v] == 1.0 and vm[VM_NOTE, v] == note and vm[VM_SOURCE, v] == src:
            if ps[p, PS_SUSTAIN] > 0.5:
                vm[VM_HELD, v] = 0.0
                vm[VM_SUSTAINED, v] = 1.0
            else:
                _release(vf, vm, v)


@njit(**JIT)
def sustain(vf, vm, ps, p, down):
    """Sustain pedal of part p; lifting it releases every voice it was holding."""
    ps[p, PS_SUSTAIN] = 1.0 if down else 0.0
    if not down:
        for v in range(int(ps[p, PS_VLO]), int(ps[p, PS_VHI])):
            if vm[VM_SUSTAINED, v] == 1.0:
                _release(vf, vm, v)


@njit(**JIT)
def release_all(vf, vm, ps, p, src):
    """Release every voice of part p (src < 0), or only the notes `src` started; lifts the
    pedal's hold on them."""
    if src < 0.0:
        ps[p, PS_SUSTAIN] = 0.0
    for v in range(int(ps[p, PS_VLO]), int(ps[p, PS_VHI])):
        if src < 0.0 or vm[VM_PEND_SOURCE, v] == src:
            vm[VM_PEND_NOTE, v] = -1.0
        if src < 0.0 or vm[VM_SOURCE, v] == src:
            _release(vf, vm, v)


@njit(**JIT)
def fade_all(vf, vm, ps, p):
    """Panic: every voice of part p fades out over STEAL_TIME_S and nothing restarts."""
    ps[p, PS_SUSTAIN] = 0.0
    for v in range(int(ps[p, PS_VLO]), int(ps[p, PS_VHI])):
        vm[VM_PEND_NOTE, v] = -1.0
        vm[VM_HELD, v] = 0.0
        vm[VM_SUSTAINED, v] = 0.0
        if vf[_at(VF_ASTAGE, v)] != ST_IDLE:
            _steal(vf, vm, ps, p, v)


@njit(**JIT)
def _coef(time_s, floor_s, sample_rate, span):
    """Exponential-segment coefficient: `span` time constants in `time_s` seconds."""
    return 1.0 - math.exp(-span / (max(time_s, floor_s) * sample_rate))


@njit(**JIT)
def env_coefs(ptarget, ps, p, sample_rate):
    """Envelope rate coefficients from the part's stage times (which apply at once: a time
    changes a slope, never a level, so it cannot click)."""
    t = ptarget[p]
    ps[p, PS_A_COEF] = _coef(t[P_AMP_A], 5e-4, sample_rate, 1.4)
    ps[p, PS_D_COEF] = _coef(t[P_AMP_D], 1e-3, sample_rate, 4.6)
    ps[p, PS_R_COEF] = _coef(t[P_AMP_R], 2e-3, sample_rate, 4.6)
    ps[p, PS_FA_COEF] = _coef(t[P_FLT_A], 5e-4, sample_rate, 1.4)
    ps[p, PS_FD_COEF] = _coef(t[P_FLT_D], 1e-3, sample_rate, 4.6)
    ps[p, PS_FR_COEF] = _coef(t[P_FLT_R], 2e-3, sample_rate, 4.6)
    ps[p, PS_COEF_DIRTY] = 0.0


# ---- the per-sample voice stages (float32, vectorized across voices) ------------------------------

@njit(inline="always", **VFAST)
def _env_step(env, stage, a_coef, d_coef, r_coef, sus):
    """One sample of an exponential ADSR for one voice, branch-free. Returns (env, stage).
    A fading (stolen) voice's level is left alone: `_finish_steals` ramps it down."""
    att = stage == _ATT
    dec = stage == _DEC
    target = ATTACK_TARGET if att else (sus if dec else ZERO)
    coef = a_coef if att else (d_coef if dec else (r_coef if stage == _REL else ZERO))
    env = env + (target - env) * coef
    peaked = att and env >= ONE
    env = min(env, ONE)
    stage = _DEC if peaked else stage
    done = stage == _REL and env < _IDLE_LEVEL
    return (ZERO if done else env), (_IDLE if done else stage)


def _make_envelopes(level_row, stage_row):
    """Build the envelope stage over rows (level, stage), compile-time constants as for the
    oscillators."""

    @njit(**VFAST)
    def envelopes(vf, lo, hi, ac, dc, rc, sus):
        for v in range(lo, hi):
            e, st = _env_step(vf[level_row + v], vf[stage_row + v], ac, dc, rc, sus)
            vf[level_row + v] = e
            vf[stage_row + v] = st

    return envelopes


_amp_envelopes = _make_envelopes(_AENV, _ASTG)
_filter_envelopes = _make_envelopes(_FENV, _FSTG)


@njit(inline="always", **VFAST)
def _phase_step(phase, inc, mul):
    """Advance one phase: returns (new phase, increment). Inline helpers take scalars, never
    arrays: an array argument brings reference-count calls that stop vectorization."""
    dt = min(inc * mul, f32(0.45))
    return wrap(phase + dt), dt


def _make_osc(row):
    """Build the oscillator stage for phase row `row` (a compile-time constant, so LLVM sees
    fixed distances between rows and vectorizes without alias checks)."""

    @njit(**VFAST)
    def osc(vf, lo, hi, wave, mul, level, pw, keep):
        """Advance the phase row by VF_INC*mul for every voice and set
        VF_OSC = keep*VF_OSC + level*wave. The waveform branch is outside the loops."""
        if wave == 0:
            for v in range(lo, hi):
                t, dt = _phase_step(vf[row + v], vf[_INC + v], mul)
                vf[row + v] = t
                vf[_OSC + v] = vf[_OSC + v] * keep + level * saw(t, dt)
        elif wave == 1:
            for v in range(lo, hi):
                t, dt = _phase_step(vf[row + v], vf[_INC + v], mul)
                vf[row + v] = t
                vf[_OSC + v] = vf[_OSC + v] * keep + level * pulse(t, dt, pw)
        elif wave == 2:
            for v in range(lo, hi):
                t, dt = _phase_step(vf[row + v], vf[_INC + v], mul)
                vf[row + v] = t
                vf[_OSC + v] = vf[_OSC + v] * keep + level * triangle(t, dt)
        else:
            for v in range(lo, hi):
                t, dt = _phase_step(vf[row + v], vf[_INC + v], mul)
                vf[row + v] = t
                vf[_OSC + v] = vf[_OSC + v] * keep + level * sine(t)

    return osc


_osc1 = _make_osc(_PH1)
_osc2 = _make_osc(_PH2)


@njit(inline="always", **VFAST)
def _voice_octaves(kt, key, vel_oct, vel):
    """A voice's own cutoff offset in octaves: key tracking and velocity (constant for the
    note; the chunk paths compute it once per chunk, each in its own statement, so no
    multiply-add fuses across it differently in the two)."""
    return kt * key + vel_oct * (vel - ONE)


@njit(**VFAST)
def _cutoff(vf, lo, hi, log2_base, kt, fenv_oct, vel_oct, wmax, one_pole):
    """Per-voice filter coefficient into VF_G from the prewarped g = tan(pi fc / fs): g itself
    (SVF), or the TPT one-pole gain G = g / (1 + g) when `one_pole` (ladder; one division)."""
    for v in range(lo, hi):
        octs = (log2_base + fenv_oct * vf[_FENV + v]) + _voice_octaves(
            kt, vf[_KEY + v], vel_oct, vf[_VEL + v])
        w = min(exp2_fast(min(max(octs, _M14), _P15)), wmax)   # = pi * fc / fs
        num, den = tan_fraction(w)
        vf[_G + v] = num / (den + num * one_pole)


@njit(**VFAST)
def _ladder(vf, lo, hi, k, drive, comp):
    """Zero-delay-feedback 4-pole ladder (Zavalishin's TPT form) with a saturated input and
    feedback path: linear response G^4 / (1 + k G^4) per TPT one-pole G = g / (1 + g), which
    VF_G holds."""
    for v in range(lo, hi):
        G = vf[_G + v]
        b = ONE - G
        s1 = vf[_S1 + v]
        s2 = vf[_S2 + v]
        s3 = vf[_S3 + v]
        s4 = vf[_S4 + v]
        S = b * (G * (G * (G * s1 + s2) + s3) + s4)
        G4 = G * G * G * G
        x = tanh_fast(vf[_OSC + v] * drive) * comp
        u = tanh_fast((x - k * S) / (ONE + k * G4))
        v1 = G * (u - s1)
        y1 = v1 + s1
        v2 = G * (y1 - s2)
        y2 = v2 + s2
        v3 = G * (y2 - s3)
        y3 = v3 + s3
        v4 = G * (y3 - s4)
        y4 = v4 + s4
        vf[_S1 + v] = y1 + v1
        vf[_S2 + v] = y2 + v2
        vf[_S3 + v] = y3 + v3
        vf[_S4 + v] = y4 + v4
        vf[_OUT + v] = y4


@njit(inline="always", **VFAST)
def _svf_tick(g, ic1, ic2, xin, damp, drive):
    """One SVF sample: returns (new ic1, new ic2, x, band, low)."""
    a1 = ONE / (ONE + g * (g + damp))
    a2 = g * a1
    a3 = g * a2
    x = tanh_fast(xin * drive)
    v3 = x - ic2
    v1 = a1 * ic1 + a2 * v3
    v2 = ic2 + a2 * ic1 + a3 * v3
    return v1 + v1 - ic1, v2 + v2 - ic2, x, v1, v2


@njit(**VFAST)
def _svf(vf, lo, hi, damp, drive, mode):
    """Zero-delay-feedback state-variable filter (Simper/Cytomic): mode 1 lowpass, 2 bandpass
    (unity gain at the centre), 3 highpass."""
    if mode == 1:
        for v in range(lo, hi):
            vf[_S1 + v], vf[_S2 + v], x, band, low = _svf_tick(
                vf[_G + v], vf[_S1 + v], vf[_S2 + v], vf[_OSC + v], damp, drive)
            vf[_OUT + v] = low
    elif mode == 2:
        for v in range(lo, hi):
            vf[_S1 + v], vf[_S2 + v], x, band, low = _svf_tick(
                vf[_G + v], vf[_S1 + v], vf[_S2 + v], vf[_OSC + v], damp, drive)
            vf[_OUT + v] = band * damp
    else:
        for v in range(lo, hi):
            vf[_S1 + v], vf[_S2 + v], x, band, low = _svf_tick(
                vf[_G + v], vf[_S1 + v], vf[_S2 + v], vf[_OSC + v], damp, drive)
            vf[_OUT + v] = x - damp * band - low


@njit(**VFAST)
def _amp_sum(vf, lo, hi):
    """Amplifier, and the sum over voices into LANES fixed accumulators (voice v always adds
    into lane (v - lo) % 8, so the result does not depend on how many voices are active)."""
    for v in range(lo, hi):
        vf[_OUT + v] *= vf[_AENV + v] * vf[_GAIN + v]
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = ZERO
    for b in range(lo, hi, _ULANES):
        a0 += vf[_OUT + b]
        a1 += vf[_OUT + b + u64(1)]
        a2 += vf[_OUT + b + u64(2)]
        a3 += vf[_OUT + b + u64(3)]
        a4 += vf[_OUT + b + u64(4)]
        a5 += vf[_OUT + b + u64(5)]
        a6 += vf[_OUT + b + u64(6)]
        a7 += vf[_OUT + b + u64(7)]
    return ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))


@njit(**JIT)
def _begin_fades(vf, vm, ps, p, sample_rate):
    """Lay out the fades of voices stolen since the last sample: from the level e0 they had,
    the next `steal_samples` samples sound at e0 (n-1)/n, e0 (n-2)/n, ..., 0."""
    n = steal_samples(sample_rate)
    for v in range(int(ps[p, PS_VLO]), int(ps[p, PS_VHI])):
        if vf[_at(VF_ASTAGE, v)] == ST_STEAL and vm[VM_FADE_LEFT, v] < 0.0:
            step = vf[_at(VF_AENV, v)] / n
            vm[VM_FADE_STEP, v] = step
            vm[VM_FADE_LEFT, v] = n - 1.0
            vf[_at(VF_AENV, v)] = step * (n - 1.0)


@njit(**JIT)
def _finish_steals(vf, vm, ps, pcur, p, now, sample_rate):
    """After each sample: fading voices step down their linear fade; those whose fade is done
    start the note that stole them at `now`, the next sample (or go idle)."""
    for v in range(int(ps[p, PS_VLO]), int(ps[p, PS_VHI])):
        if vf[_at(VF_ASTAGE, v)] != ST_STEAL:
            continue
        left = vm[VM_FADE_LEFT, v]
        if left > 0.0:
            vm[VM_FADE_LEFT, v] = left - 1.0
            vf[_at(VF_AENV, v)] = vm[VM_FADE_STEP, v] * (left - 1.0)
        elif left == 0.0:
            ps[p, PS_NSTEAL] -= 1.0
            pend = vm[VM_PEND_NOTE, v]
            if pend >= 0.0:
                _start(vf, vm, ps, pcur, p, v, pend, vm[VM_PEND_VEL, v], vm[VM_PEND_SOURCE, v],
                       now, sample_rate)
            else:
                vf[_at(VF_ASTAGE, v)] = ST_IDLE
                vf[_at(VF_FSTAGE, v)] = ST_IDLE
                vf[_at(VF_AENV, v)] = 0.0
                vf[_at(VF_FENV, v)] = 0.0


@njit(inline="always", **JIT)
def _target(ptarget, p, k):
    """Parameter k's target, clamped to its valid range."""
    return min(max(ptarget[p, k], _LO[k]), _HI[k])


@njit(**JIT)
def _settle(ptarget, pcur, ps, p, smooth, log2_pi_over_fs):
    """One sample of parameter smoothing while PS_SETTLING; recomputes the values derived from
    the parameters, and clears PS_SETTLING once every parameter has reached its target."""
    moving = False
    for k in range(NPARAMS):
        t = _target(ptarget, p, k)
        if _SWITCHED[k]:
            if pcur[p, k] != t and ps[p, PS_SWITCH] == 0.0:
                ps[p, PS_SWITCH] = 1.0         # dip, then switch (see _switch)
            continue
        if not _SMOOTHED[k]:
            pcur[p, k] = t
            continue
        c = pcur[p, k] + (t - pcur[p, k]) * smooth
        if abs(t - c) <= 1e-6 * (abs(t) + 1e-3):
            c = t
        else:
            moving = True
        pcur[p, k] = c
    c = pcur[p]
    ps[p, PS_RATIO2] = 2.0 ** ((c[P_OSC2_SEMI] + c[P_DETUNE_CENTS] * 0.01) / 12.0)
    ps[p, PS_LOG2_CUTOFF] = log2_pi_over_fs + math.log2(min(max(c[P_CUTOFF_HZ], 20.0), 20000.0))
    ps[p, PS_GAIN] = db_to_gain(min(max(c[P_GAIN_DB], -60.0), 12.0))
    ps[p, PS_SETTLING] = 1.0 if moving else 0.0
    ps[p, PS_G_DIRTY] = 1.0


@njit(**JIT)
def _switch(vf, ptarget, pcur, ps, p, lo, hi, step):
    """One sample of a circuit change: the part's level dips linearly to 0, the waveform and
    filter switch there (filter states cleared, as the new filter starts from rest), and the
    level comes back. Returns the level."""
    duck = ps[p, PS_DUCK]
    if ps[p, PS_SWITCH] == 1.0:
        duck -= step
        if duck <= 0.0:
            duck = 0.0
            for k in range(NPARAMS):
                if _SWITCHED[k]:
                    pcur[p, k] = _target(ptarget, p, k)
            for row in (_S1, _S2, _S3, _S4):
                for v in range(lo, hi):
                    vf[row + v] = ZERO
            ps[p, PS_G_DIRTY] = 1.0
            ps[p, PS_SWITCH] = 2.0
    else:
        duck += step
        if duck >= 1.0:
            duck = 1.0
            ps[p, PS_SWITCH] = 0.0
    ps[p, PS_DUCK] = duck
    return duck


@njit(inline="always", **JIT)
def _noise(t, seed):
    """White noise in -1..1 as a pure function of (sample time, seed): splitmix64."""
    z = np.uint64(t) * np.uint64(0x9E3779B97F4A7C15) + \
        np.uint64(seed + 1) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return float(z >> np.uint64(11)) * (2.0 / 9007199254740992.0) - 1.0


@njit(inline="always", **JIT)
def _coloured(ps, p, white, colour):
    """The part's noise in its colour, one sample on: white as it is; pink or brown (the
    instruments' shared filters, engine.rt.noise, memories in ps[p, PS_NOISE0:]) at white's
    level. Both render paths call it once per sample the noise sounds, in order, so the colour's
    filters see the same stream however blocks are cut."""
    if colour == 1:
        return _PINK_SCALE * noise.pink(ps[p], PS_NOISE0, 1, white)
    if colour == 2:
        return noise.brown(ps[p], PS_NOISE0, white)
    return white


@njit(**JIT)
def _noise_runs(ps, p, c, now0, s0, s1):
    """The coloured noise's filters over samples [s0, s1) no voice hears: the noise stream
    advances at every sample while the part's noise is on, voices or none, so where a render
    happens to notice its last voice has ended (at the end of a call) changes nothing. (White
    noise is a pure function of the sample time: nothing to run.)"""
    colour = int(c[P_NOISE_COLOR])
    if c[P_NOISE] > 0.0 and colour != 0:
        seed = int(ps[p, PS_SEED])
        for s in range(s0, s1):
            _coloured(ps, p, _noise(now0 + s, seed), colour)


@njit(**JIT)
def _sample(vf, vm, ptarget, pcur, ps, p, out, s, now0, sample_rate, smooth, log2_pi_over_fs,
            wmax, switch_step):
    """Render sample s of part p the general way, every stage over the active voices once:
    used while parameters settle, a circuit switches or stolen voices fade."""
    lo = u64(ps[p, PS_VLO])
    c = pcur[p]
    if ps[p, PS_SETTLING] != 0.0:
        _settle(ptarget, pcur, ps, p, smooth, log2_pi_over_fs)
    # the LFO phase runs whether or not a voice sounds
    ph = ps[p, PS_LFO_PHASE]
    ph += min(max(c[P_LFO_RATE], 0.0), 40.0) / sample_rate
    ps[p, PS_LFO_PHASE] = ph - math.floor(ph)
    n = int(ps[p, PS_NACTIVE])
    if n == 0:
        if ps[p, PS_SWITCH] != 0.0:       # nothing sounds: switch at once
            for k in range(NPARAMS):
                if _SWITCHED[k]:
                    pcur[p, k] = _target(ptarget, p, k)
            ps[p, PS_SWITCH] = 0.0
            ps[p, PS_DUCK] = 1.0
        _noise_runs(ps, p, c, now0, s, s + 1)
        out[s] = 0.0
        return
    hi = lo + u64(((n + LANES - 1) // LANES) * LANES)
    vib = c[P_LFO_PITCH] + c[P_MOD] * c[P_MOD_VIBRATO]
    lfo_cut = c[P_LFO_CUTOFF]
    lfo = 0.0
    if vib != 0.0 or lfo_cut != 0.0:
        lfo = math.sin(2.0 * math.pi * ph) if c[P_LFO_SHAPE] < 0.5 else 1.0 - 4.0 * abs(ph - 0.5)
    pitch_st = c[P_BEND_ST] + lfo * vib
    mul1 = 2.0 ** (pitch_st / 12.0) if pitch_st != 0.0 else 1.0
    pw = f32(min(max(c[P_PULSE_WIDTH], 0.05), 0.95))
    _amp_envelopes(vf, lo, hi, f32(ps[p, PS_A_COEF]), f32(ps[p, PS_D_COEF]),
                   f32(ps[p, PS_R_COEF]), f32(min(max(c[P_AMP_S], 0.0), 1.0)))
    fenv_oct = c[P_FENV_OCT]
    if fenv_oct != 0.0:
        # the filter envelope runs only while it is heard (a patch turning its amount up
        # mid-note hears it from where it stands)
        _filter_envelopes(vf, lo, hi, f32(ps[p, PS_FA_COEF]), f32(ps[p, PS_FD_COEF]),
                          f32(ps[p, PS_FR_COEF]), f32(min(max(c[P_FLT_S], 0.0), 1.0)))
    _osc1(vf, lo, hi, int(c[P_OSC1_WAVE]), f32(mul1), ONE, pw, ZERO)
    _osc2(vf, lo, hi, int(c[P_OSC2_WAVE]), f32(mul1 * ps[p, PS_RATIO2]),
          f32(min(max(c[P_OSC2_LEVEL], 0.0), 1.0)), pw, ONE)
    if c[P_NOISE] > 0.0:
        nl = f32(min(c[P_NOISE], 1.0) * _coloured(ps, p, _noise(now0 + s, int(ps[p, PS_SEED])),
                                                   int(c[P_NOISE_COLOR])))
        for v in range(lo, hi):
            vf[_OSC + v] += nl
    ftype = int(c[P_FILTER_TYPE])
    if fenv_oct != 0.0 or lfo * lfo_cut != 0.0 or ps[p, PS_G_DIRTY] != 0.0:
        # per-voice coefficients change only with modulation, parameters or new notes
        _cutoff(vf, lo, hi, f32(ps[p, PS_LOG2_CUTOFF] + lfo * lfo_cut),
                f32(c[P_KEY_TRACKING]), f32(fenv_oct), f32(c[P_VEL_CUTOFF_OCT]), wmax,
                ONE if ftype == 0 else ZERO)
        ps[p, PS_G_DIRTY] = ps[p, PS_SETTLING]
    res = min(max(c[P_RESONANCE], 0.0), 1.0)
    drive = min(max(c[P_DRIVE], 0.1), 10.0)
    if ftype == 0:
        k = 3.9 * res
        _ladder(vf, lo, hi, f32(k), f32(drive), f32((1.0 + 0.5 * k) / max(drive, 1.0)))
    else:
        _svf(vf, lo, hi, f32(2.0 - 1.96 * res), f32(drive), ftype)
    level = ps[p, PS_GAIN]
    if ps[p, PS_SWITCH] != 0.0:
        level *= _switch(vf, ptarget, pcur, ps, p, lo, u64(ps[p, PS_VHI]), switch_step)
    out[s] = level * _amp_sum(vf, lo, hi)
    if ps[p, PS_NSTEAL] > 0.0:
        _finish_steals(vf, vm, ps, pcur, p, now0 + s + 1, sample_rate)


# ---- the chunk paths: up to VF_CHUNK samples at a time ---------------------------------------
# While a part's parameters are settled, no circuit switches and no stolen voice fades, nothing
# but the voices' own state changes from sample to sample, so the part renders a chunk of
# samples at a time, in one of two ways with the same arithmetic (so the same bits):
# - stages (many voices): each stage runs over the whole chunk (samples outer, voices inner,
#   vectorised across voices), handing its per-sample results to the next in the chunk rows;
# - voices (few voices sounding): each sounding voice runs every stage over the chunk with its
#   state in registers (two voices interleaved), so no idle lane is computed and nothing goes
#   through memory between stages.
# The part's per-sample values (LFO, pitch, base cutoff) are computed once per chunk first.

_NV = u64(NVMAX)
SCALAR_VOICES = 2
"""A part with at most this many voices sounding renders each voice over the chunk on its own
(`_voice_chunk`); with more, stage by stage across the voices (vectorised)."""
_COSC, _CG, _COUT = u64(VF_C_OSC * NVMAX), u64(VF_C_G * NVMAX), u64(VF_C_OUT * NVMAX)
_CS = u64(VF_C_SCALAR * NVMAX)
# per-sample part values in the VF_C_SCALAR row: frequency multipliers of the two
# oscillators, the noise sample, the base cutoff (log2 of pi fc / fs) and whether the
# coefficients are recomputed at that sample (1) or kept (0)
CS_MUL1, CS_MUL2, CS_NOISE, CS_BASE, CS_NEED = (u64(k * VF_CHUNK) for k in range(5))
_CS_MUL1, _CS_MUL2, _CS_NOISE = _CS + CS_MUL1, _CS + CS_MUL2, _CS + CS_NOISE
_CS_BASE, _CS_NEED = _CS + CS_BASE, _CS + CS_NEED


def _make_osc_chunk(row, mul_col, add):
    """The oscillator stage over a chunk for phase row `row`, its multipliers at `mul_col` of
    the scalar row: sets (osc 1) or adds `level` times (osc 2) its wave into the chunk's
    oscillator rows, as `_osc1` / `_osc2` do for one sample."""

    @njit(**VFAST)
    def osc(vf, lo, hi, nt, wave, level, pw):
        for t in range(nt):
            mul = vf[mul_col + t]
            o = _COSC + t * _NV
            if wave == 0:
                for v in range(lo, hi):
                    ph, dt = _phase_step(vf[row + v], vf[_INC + v], mul)
                    vf[row + v] = ph
                    vf[o + v] = vf[o + v] + level * saw(ph, dt) if add else saw(ph, dt)
            elif wave == 1:
                for v in range(lo, hi):
                    ph, dt = _phase_step(vf[row + v], vf[_INC + v], mul)
                    vf[row + v] = ph
                    vf[o + v] = vf[o + v] + level * pulse(ph, dt, pw) if add else pulse(ph, dt, pw)
            elif wave == 2:
                for v in range(lo, hi):
                    ph, dt = _phase_step(vf[row + v], vf[_INC + v], mul)
                    vf[row + v] = ph
                    vf[o + v] = vf[o + v] + level * triangle(ph, dt) if add else triangle(ph, dt)
            else:
                for v in range(lo, hi):
                    ph, dt = _phase_step(vf[row + v], vf[_INC + v], mul)
                    vf[row + v] = ph
                    vf[o + v] = vf[o + v] + level * sine(ph) if add else sine(ph)

    return osc


_osc1_chunk = _make_osc_chunk(_PH1, _CS_MUL1, False)
_osc2_chunk = _make_osc_chunk(_PH2, _CS_MUL2, True)


@njit(**VFAST)
def _noise_chunk(vf, lo, hi, nt):
    for t in range(nt):
        nl = vf[_CS_NOISE + t]
        o = _COSC + t * _NV
        for v in range(lo, hi):
            vf[o + v] += nl


@njit(**VFAST)
def _cutoff_chunk(vf, lo, hi, nt, fenv_on, ac, dc, rc, sus, kt, fenv_oct, vel_oct, wmax,
                  one_pole):
    """The filter envelope (if `fenv_on`) and the coefficients over a chunk: into row
    VF_C_G + t, computed as `_cutoff` does where the scalar row says so, else the previous
    sample's (VF_G before the chunk's first). VF_OUT holds each voice's `_voice_octaves`."""
    for v in range(lo, hi):
        vf[_OUT + v] = _voice_octaves(kt, vf[_KEY + v], vel_oct, vf[_VEL + v])
    for t in range(nt):
        o = _CG + t * _NV
        log2_base = vf[_CS_BASE + t]
        if fenv_on:             # then the coefficients change every sample
            for v in range(lo, hi):
                e, st = _env_step(vf[_FENV + v], vf[_FSTG + v], ac, dc, rc, sus)
                vf[_FENV + v] = e
                vf[_FSTG + v] = st
                octs = (log2_base + fenv_oct * e) + vf[_OUT + v]
                w = min(exp2_fast(min(max(octs, _M14), _P15)), wmax)
                num, den = tan_fraction(w)
                vf[o + v] = num / (den + num * one_pole)
        elif vf[_CS_NEED + t] != ZERO:
            for v in range(lo, hi):
                octs = (log2_base + fenv_oct * vf[_FENV + v]) + vf[_OUT + v]
                w = min(exp2_fast(min(max(octs, _M14), _P15)), wmax)
                num, den = tan_fraction(w)
                vf[o + v] = num / (den + num * one_pole)
        else:
            prev = o - _NV if t > 0 else _G
            for v in range(lo, hi):
                vf[o + v] = vf[prev + v]


@njit(**VFAST)
def _ladder_chunk(vf, lo, hi, nt, g_row, g_step, k, drive, comp, ac, dc, rc, sus):
    """`_ladder` and the amplifier (amp envelope times voice gain, as `_amp_sum`) over a
    chunk: input row VF_C_OSC + t, coefficients row g_row + t g_step, output row
    VF_C_OUT + t."""
    for t in range(nt):
        gr = g_row + t * g_step
        xr = _COSC + t * _NV
        yr = _COUT + t * _NV
        for v in range(lo, hi):
            G = vf[gr + v]
            b = ONE - G
            s1 = vf[_S1 + v]
            s2 = vf[_S2 + v]
            s3 = vf[_S3 + v]
            s4 = vf[_S4 + v]
            S = b * (G * (G * (G * s1 + s2) + s3) + s4)
            G4 = G * G * G * G
            x = tanh_fast(vf[xr + v] * drive) * comp
            u = tanh_fast((x - k * S) / (ONE + k * G4))
            v1 = G * (u - s1)
            y1 = v1 + s1
            v2 = G * (y1 - s2)
            y2 = v2 + s2
            v3 = G * (y2 - s3)
            y3 = v3 + s3
            v4 = G * (y3 - s4)
            y4 = v4 + s4
            vf[_S1 + v] = y1 + v1
            vf[_S2 + v] = y2 + v2
            vf[_S3 + v] = y3 + v3
            vf[_S4 + v] = y4 + v4
            e, st = _env_step(vf[_AENV + v], vf[_ASTG + v], ac, dc, rc, sus)
            vf[_AENV + v] = e
            vf[_ASTG + v] = st
            vf[yr + v] = y4 * (e * vf[_GAIN + v])


@njit(inline="always", **VFAST)
def _svf_amp(vf, v, gr, xr, yr, damp, drive, mode, ac, dc, rc, sus):
    vf[_S1 + v], vf[_S2 + v], x, band, low = _svf_tick(
        vf[gr + v], vf[_S1 + v], vf[_S2 + v], vf[xr + v], damp, drive)
    y = low if mode == 1 else (band * damp if mode == 2 else x - damp * band - low)
    e, st = _env_step(vf[_AENV + v], vf[_ASTG + v], ac, dc, rc, sus)
    vf[_AENV + v] = e
    vf[_ASTG + v] = st
    vf[yr + v] = y * (e * vf[_GAIN + v])


@njit(**VFAST)
def _svf_chunk(vf, lo, hi, nt, g_row, g_step, damp, drive, mode, ac, dc, rc, sus):
    """`_svf` and the amplifier over a chunk (rows as `_ladder_chunk`)."""
    for t in range(nt):
        gr = g_row + t * g_step
        xr = _COSC + t * _NV
        yr = _COUT + t * _NV
        if mode == 1:
            for v in range(lo, hi):
                _svf_amp(vf, v, gr, xr, yr, damp, drive, 1, ac, dc, rc, sus)
        elif mode == 2:
            for v in range(lo, hi):
                _svf_amp(vf, v, gr, xr, yr, damp, drive, 2, ac, dc, rc, sus)
        else:
            for v in range(lo, hi):
                _svf_amp(vf, v, gr, xr, yr, damp, drive, 3, ac, dc, rc, sus)


@njit(**VFAST)
def _sum_chunk(vf, lo, hi, nt, level, out, s0):
    """The sum over voices of each sample of a chunk (rows VF_C_OUT + t, the same fixed lanes
    as `_amp_sum`), times `level`, into out[s0 + t]."""
    for t in range(nt):
        yr = _COUT + t * _NV
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = ZERO
        for b in range(lo, hi, _ULANES):
            a0 += vf[yr + b]
            a1 += vf[yr + b + u64(1)]
            a2 += vf[yr + b + u64(2)]
            a3 += vf[yr + b + u64(3)]
            a4 += vf[yr + b + u64(4)]
            a5 += vf[yr + b + u64(5)]
            a6 += vf[yr + b + u64(6)]
            a7 += vf[yr + b + u64(7)]
        out[s0 + t] = level * (((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)))


@njit(inline="always", **VFAST)
def _wave(wave, ph, dt, pw):
    if wave == 0:
        return saw(ph, dt)
    if wave == 1:
        return pulse(ph, dt, pw)
    if wave == 2:
        return triangle(ph, dt)
    return sine(ph)


@njit(inline="always", **VFAST)
def _voice_step(voice, inc, voice_octs, gain, mul1, mul2, nl, base, need, pc):
    """One sample of one voice, every stage of `_sample` in order, term for term the
    arithmetic of the chunk stages. `voice` is its state (`_voice_load`), `pc` the part's
    settled values (`_chunk`): returns the new state and the output."""
    ph1, ph2, ae, ast, fe, fst, s1, s2, s3, s4, g = voice
    (w1, w2, level2, pw, fenv_on, fa, fd, fr, fsus, fenv_oct, wmax, one_pole, ftype, k, drive,
     comp, damp, aa, ad, ar, asus) = pc
    ph1, dt1 = _phase_step(ph1, inc, mul1)
    # + 0: osc 1 rounded on its own (no multiply-add across it), as the stage path stores it
    # before osc 2 adds to it
    x = _wave(w1, ph1, dt1, pw) + ZERO
    ph2, dt2 = _phase_step(ph2, inc, mul2)
    x = x + level2 * _wave(w2, ph2, dt2, pw)
    x += nl
    if fenv_on:
        fe, fst = _env_step(fe, fst, fa, fd, fr, fsus)
    if need:
        octs = (base + fenv_oct * fe) + voice_octs
        w = min(exp2_fast(min(max(octs, _M14), _P15)), wmax)
        num, den = tan_fraction(w)
        g = num / (den + num * one_pole)
    if ftype == 0:
        G = g
        b = ONE - G
        S = b * (G * (G * (G * s1 + s2) + s3) + s4)
        G4 = G * G * G * G
        xd = tanh_fast(x * drive) * comp
        u = tanh_fast((xd - k * S) / (ONE + k * G4))
        v1 = G * (u - s1)
        y1 = v1 + s1
        v2 = G * (y1 - s2)
        y2 = v2 + s2
        v3 = G * (y2 - s3)
        y3 = v3 + s3
        v4 = G * (y3 - s4)
        y4 = v4 + s4
        s1 = y1 + v1
        s2 = y2 + v2
        s3 = y3 + v3
        s4 = y4 + v4
        y = y4
    else:
        s1, s2, xs, band, low = _svf_tick(g, s1, s2, x, damp, drive)
        if ftype == 1:
            y = low
        elif ftype == 2:
            y = band * damp
        else:
            y = xs - damp * band - low
    ae, ast = _env_step(ae, ast, aa, ad, ar, asus)
    return (ph1, ph2, ae, ast, fe, fst, s1, s2, s3, s4, g), y * (ae * gain)


@njit(inline="always", **VFAST)
def _voice_load(vf, v):
    """A voice's state for `_voice_step`."""
    return (vf[_PH1 + v], vf[_PH2 + v], vf[_AENV + v], vf[_ASTG + v], vf[_FENV + v],
            vf[_FSTG + v], vf[_S1 + v], vf[_S2 + v], vf[_S3 + v], vf[_S4 + v], vf[_G + v])


@njit(inline="always", **VFAST)
def _voice_store(vf, v, voice):
    ph1, ph2, ae, ast, fe, fst, s1, s2, s3, s4, g = voice
    vf[_PH1 + v] = ph1
    vf[_PH2 + v] = ph2
    vf[_AENV + v] = ae
    vf[_ASTG + v] = ast
    vf[_FENV + v] = fe
    vf[_FSTG + v] = fst
    vf[_S1 + v] = s1
    vf[_S2 + v] = s2
    vf[_S3 + v] = s3
    vf[_S4 + v] = s4
    vf[_G + v] = g


@njit(**VFAST)
def _voice_chunk(vf, va, vb, nt, noise_on, need_any, kt, vel_oct, pc):
    """Voices va and vb (va == vb: va alone) over a chunk, their state in registers, each
    sample's output (amp applied) into row VF_C_OUT + t. Two voices interleave: one's filter
    recursion runs while the other's waits on its own."""
    a = _voice_load(vf, va)
    b = _voice_load(vf, vb)
    inc_a, octs_a, gain_a = vf[_INC + va], _voice_octaves(kt, vf[_KEY + va], vel_oct,
                                                         vf[_VEL + va]), vf[_GAIN + va]
    inc_b, octs_b, gain_b = vf[_INC + vb], _voice_octaves(kt, vf[_KEY + vb], vel_oct,
                                                         vf[_VEL + vb]), vf[_GAIN + vb]
    pair = va != vb
    for t in range(nt):
        mul1 = vf[_CS_MUL1 + t]
        mul2 = vf[_CS_MUL2 + t]
        nl = vf[_CS_NOISE + t] if noise_on else ZERO
        base = vf[_CS_BASE + t]
        need = need_any and vf[_CS_NEED + t] != ZERO
        a, y = _voice_step(a, inc_a, octs_a, gain_a, mul1, mul2, nl, base, need, pc)
        vf[_COUT + t * _NV + va] = y
        if pair:
            b, y = _voice_step(b, inc_b, octs_b, gain_b, mul1, mul2, nl, base, need, pc)
            vf[_COUT + t * _NV + vb] = y
    _voice_store(vf, va, a)
    if pair:
        _voice_store(vf, vb, b)


@njit(inline="always", **JIT)
def _lfo_step(ph, rate):
    """The LFO phase one sample on: (ph + rate) - floor(ph + rate) as `_sample` computes it,
    the floor taken only when it is not 0 (rarely: the rate is under a cycle a sample)."""
    ph += rate
    if ph >= 1.0:
        ph -= math.floor(ph)
    return ph


@njit(**JIT)
def _chunk(vf, ps, c, p, out, s0, nt, now0, sample_rate, wmax, scalar_voices):
    """Samples [s0, s0 + nt) of part p (nt <= VF_CHUNK) while nothing but the voices moves:
    parameters settled, no switch, no fade; at least one voice active."""
    lo = u64(ps[p, PS_VLO])
    n = int(ps[p, PS_NACTIVE])
    hi = lo + u64(((n + LANES - 1) // LANES) * LANES)
    # the part's per-sample values, as `_sample` computes them
    rate = min(max(c[P_LFO_RATE], 0.0), 40.0) / sample_rate
    ph = ps[p, PS_LFO_PHASE]
    vib = c[P_LFO_PITCH] + c[P_MOD] * c[P_MOD_VIBRATO]
    lfo_cut = c[P_LFO_CUTOFF]
    lfo_on = vib != 0.0 or lfo_cut != 0.0
    sine_lfo = c[P_LFO_SHAPE] < 0.5
    bend = c[P_BEND_ST]
    ratio2 = ps[p, PS_RATIO2]
    log2_cutoff = ps[p, PS_LOG2_CUTOFF]
    noise = c[P_NOISE]
    noise_level = min(noise, 1.0)
    seed = int(ps[p, PS_SEED])
    colour = int(c[P_NOISE_COLOR])
    fenv_oct = c[P_FENV_OCT]
    need_any = ps[p, PS_G_DIRTY] != 0.0
    for t in range(nt):
        ph = _lfo_step(ph, rate)
        lfo = 0.0
        if lfo_on:
            lfo = math.sin(2.0 * math.pi * ph) if sine_lfo else 1.0 - 4.0 * abs(ph - 0.5)
        pitch_st = bend + lfo * vib
        # exp2: the same value as `_sample`'s 2 ** x (both correctly rounded), at less cost
        mul1 = math.exp2(pitch_st / 12.0) if pitch_st != 0.0 else 1.0
        vf[_CS_MUL1 + u64(t)] = mul1
        vf[_CS_MUL2 + u64(t)] = mul1 * ratio2
        if noise > 0.0:
            vf[_CS_NOISE + u64(t)] = noise_level * _coloured(ps, p, _noise(now0 + s0 + t, seed),
                                                             colour)
        need = fenv_oct != 0.0 or lfo * lfo_cut != 0.0 or (t == 0 and need_any)
        need_any = need_any or need
        vf[_CS_NEED + u64(t)] = ONE if need else ZERO
        vf[_CS_BASE + u64(t)] = log2_cutoff + lfo * lfo_cut
    ps[p, PS_LFO_PHASE] = ph
    unt = u64(nt)
    pw = f32(min(max(c[P_PULSE_WIDTH], 0.05), 0.95))
    w1, w2 = int(c[P_OSC1_WAVE]), int(c[P_OSC2_WAVE])
    level2 = f32(min(max(c[P_OSC2_LEVEL], 0.0), 1.0))
    ftype = int(c[P_FILTER_TYPE])
    one_pole = ONE if ftype == 0 else ZERO
    fa, fd, fr = f32(ps[p, PS_FA_COEF]), f32(ps[p, PS_FD_COEF]), f32(ps[p, PS_FR_COEF])
    fsus = f32(min(max(c[P_FLT_S], 0.0), 1.0))
    kt, vel_oct = f32(c[P_KEY_TRACKING]), f32(c[P_VEL_CUTOFF_OCT])
    res = min(max(c[P_RESONANCE], 0.0), 1.0)
    drive = min(max(c[P_DRIVE], 0.1), 10.0)
    k = 3.9 * res
    comp = (1.0 + 0.5 * k) / max(drive, 1.0)
    damp = 2.0 - 1.96 * res
    aa, ad, ar = f32(ps[p, PS_A_COEF]), f32(ps[p, PS_D_COEF]), f32(ps[p, PS_R_COEF])
    asus = f32(min(max(c[P_AMP_S], 0.0), 1.0))
    need_any = need_any or fenv_oct != 0.0
    sounding = 0
    for v in range(lo, lo + u64(n)):
        if vf[_ASTG + v] != _IDLE:
            sounding += 1
    if sounding <= scalar_voices:
        # few voices: each over the chunk with its state in registers; the others are idle
        # (exactly 0 in the sum, and a voice's state is set afresh when it starts)
        pc = (w1, w2, level2, pw, fenv_oct != 0.0, fa, fd, fr, fsus, f32(fenv_oct), wmax,
              one_pole, ftype, f32(k), f32(drive), f32(comp), f32(damp), aa, ad, ar, asus)
        va = hi
        for v in range(lo, hi):
            if vf[_ASTG + v] != _IDLE:
                if va == hi:
                    va = v
                else:
                    _voice_chunk(vf, va, v, unt, noise > 0.0, need_any, kt, vel_oct, pc)
                    va = hi
            else:
                for t in range(unt):
                    vf[_COUT + t * _NV + v] = ZERO
        if va != hi:
            _voice_chunk(vf, va, va, unt, noise > 0.0, need_any, kt, vel_oct, pc)
    else:
        # the stages run over the active voices rounded up to what the vector loops take whole:
        # 4 (one 128-bit step; the rest of the 8 lanes summed are idle, so 0) or whole 16s
        # where the part has the voices (one 512-bit step each), else 8s; idle voices in the
        # range are computed and never heard
        hs = lo + u64(4)
        if n <= 4:
            for t in range(unt):
                for v in range(hs, hi):
                    vf[_COUT + t * _NV + v] = ZERO
        else:
            hs = lo + u64(((n + 15) // 16) * 16)
            if hs > u64(ps[p, PS_VHI]):
                hs = hi
            hi = hs
        _osc1_chunk(vf, lo, hs, unt, w1, ONE, pw)
        _osc2_chunk(vf, lo, hs, unt, w2, level2, pw)
        if noise > 0.0:
            _noise_chunk(vf, lo, hs, unt)
        g_row, g_step = _G, u64(0)
        if need_any:
            _cutoff_chunk(vf, lo, hs, unt, fenv_oct != 0.0, fa, fd, fr, fsus, kt, f32(fenv_oct),
                          vel_oct, wmax, one_pole)
            g_row, g_step = _CG, _NV
            last = _CG + (unt - u64(1)) * _NV
            for v in range(lo, hs):
                vf[_G + v] = vf[last + v]
        if ftype == 0:
            _ladder_chunk(vf, lo, hs, unt, g_row, g_step, f32(k), f32(drive), f32(comp), aa,
                          ad, ar, asus)
        else:
            _svf_chunk(vf, lo, hs, unt, g_row, g_step, f32(damp), f32(drive), ftype, aa, ad, ar,
                       asus)
    if need_any:
        ps[p, PS_G_DIRTY] = 0.0
    _sum_chunk(vf, lo, hi, unt, ps[p, PS_GAIN], out, u64(s0))


@njit(**JIT)
def _idle(ps, p, c, out, s0, s1, now0, sample_rate):
    """Samples [s0, s1) of a part with no voice and nothing to switch: silence, and the LFO
    phase and the noise's colour filters run on."""
    _noise_runs(ps, p, c, now0, s0, s1)
    rate = min(max(c[P_LFO_RATE], 0.0), 40.0) / sample_rate
    ph = ps[p, PS_LFO_PHASE]
    for s in range(s0, s1):
        ph = _lfo_step(ph, rate)
        out[s] = 0.0
    ps[p, PS_LFO_PHASE] = ph


@njit(**JIT)
def render_part(vf, vm, ptarget, pcur, ps, p, out, i0, i1, now0, sample_rate):
    """Render synth part p into out[i0:i1] (overwrites); see `render_part_with`."""
    render_part_with(vf, vm, ptarget, pcur, ps, p, out, i0, i1, now0, sample_rate,
                     SCALAR_VOICES)


@njit(**JIT)
def render_part_with(vf, vm, ptarget, pcur, ps, p, out, i0, i1, now0, sample_rate,
                     scalar_voices):
    """Render synth part p into out[i0:i1] (overwrites). `now0` is the absolute sample time of
    out[0]. Everything is per sample and a function of the sample clock (LFO phase, noise,
    smoothing), so any split of a block renders identically: which path renders a sample
    (`_sample` while anything but the voices moves, else a chunk) does not depend on the split,
    and the two chunk paths give the same bits (a part with at most `scalar_voices` voices
    sounding renders voice by voice, tests choose)."""
    lo = u64(ps[p, PS_VLO])
    if ps[p, PS_COEF_DIRTY] != 0.0:
        env_coefs(ptarget, ps, p, sample_rate)
    smooth = 1.0 - math.exp(-1.0 / (SMOOTH_S * sample_rate))
    if ps[p, PS_NSTEAL] > 0.0:
        _begin_fades(vf, vm, ps, p, sample_rate)
    log2_pi_over_fs = math.log2(math.pi / sample_rate)
    wmax = f32(math.pi * min(18000.0, 0.45 * sample_rate) / sample_rate)
    switch_step = 1.0 / (SWITCH_S * sample_rate)
    c = pcur[p]
    s = i0
    while s < i1:
        if ps[p, PS_SETTLING] != 0.0 or ps[p, PS_SWITCH] != 0.0 or ps[p, PS_NSTEAL] > 0.0:
            _sample(vf, vm, ptarget, pcur, ps, p, out, s, now0, sample_rate, smooth,
                    log2_pi_over_fs, wmax, switch_step)
            s += 1
        elif ps[p, PS_NACTIVE] == 0.0:
            _idle(ps, p, c, out, s, i1, now0, sample_rate)
            s = i1
        else:
            nt = min(VF_CHUNK, i1 - s)
            _chunk(vf, ps, c, p, out, s, nt, now0, sample_rate, wmax, scalar_voices)
            s += nt
    # shrink the active range past voices that went idle (their output is exactly 0)
    n = int(ps[p, PS_NACTIVE])
    top = int(lo) + n - 1
    while n > 0 and vf[_at(VF_ASTAGE, top)] == ST_IDLE and vm[VM_PEND_NOTE, top] < 0.0:
        n -= 1
        top -= 1
    ps[p, PS_NACTIVE] = n
