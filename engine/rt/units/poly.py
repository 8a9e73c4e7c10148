"""Polyphony for every instrument unit: voice slots, allocation and stealing, play modes,
glide, unison, controllers, and the ADSR kernel (AUDIO THREAD kernels; one way to do it).

State layout (float64, inside the instrument's own state):

    [0, HDR)                 header: poly's slots H_* in [0, 32), the held-note stack in
                             [STACK, STACK + 3 * STACK_N), the modulation matrix's slots from
                             X0 (engine.rt.units.modmatrix), the instrument's own slots from
                             modmatrix.X_FREE to HDR
    HDR + r * NV + v         voice row r, voice v (SoA: each row is NV consecutive values);
                             poly owns rows [0, POLY_ROWS), the matrix the next ones, the
                             instrument its rows from modmatrix.ROWS_END (`vrow(r)`), then
                             anything else it needs (tables)

Control rate. An instrument renders in control periods of CHUNK samples counted on its own
sample clock (H_CPOS), whatever the spans: at the first sample of each period (the *tick*) it
moves everything that need not move per sample (glides, fades, envelopes, filter and pitch
coefficients) to where it will be at the period's end, and per sample it only ramps linearly
towards those values. An event in the middle of a period (note-on, note-off, a steal)
re-plans the voices it touched for the rest of the period (`rewind` gives a control value at
the current sample), so notes start and stop at their exact sample. As the periods are fixed
on the sample clock, the output never depends on how blocks are cut.

Voices. NV slots; `polyphony` limits how many a note-on may use. A note-on takes the lowest
idle voice; else it steals (released voices first, then the oldest; voices already fading
last): the victim fades out linearly over STEAL_MS, and the thief starts at the first tick
after the fade. A note holds `unison` voices (1..8) spread over +-unison_detune_cents / 2 and
placed across the stereo field by `stereo_spread` with an equal-power law
(gl = sqrt((1 - p) / 2), gr = sqrt((1 + p) / 2): spread 0 puts every voice in the middle, L
and R identical). Note-offs match (note, source); the sustain pedal holds released notes until
it lifts; source-gone releases a source's notes (pedal or not); all-notes-off releases all;
panic fades every voice out within STEAL_MS.

Play modes: poly; mono (one note at a time, last-note priority over a stack of held keys: a
released key returns to the most recent key still held; every new note retriggers the
envelopes from where they stand); legato (as mono, but a note played while another key is held
moves the pitch without retriggering). Glide (glide_ms > 0): the pitch moves linearly in
semitones from the previous note to the new one in exactly glide_ms, only between overlapping
notes (`glide` = legato) or always.

Pitch bend arrives in semitones (the part scales the wheel by its bend range, see
engine.rt.events), mod wheel and aftertouch in 0..1; all three are smoothed (BEND_S) at
control rate and each instrument decides what they do (and the modulation matrix,
engine.rt.units.modmatrix, routes them). Every note-on is counted (H_NOTES) and its voices
keep its number (R_NKEY): the key of the matrix's per-note random values.
"""
import math

import numpy as np
from numba import njit

from engine.rt.dsp import JIT
from engine.rt.events import (K_AFTERTOUCH, K_ALL_NOTES_OFF, K_MOD_WHEEL, K_NOTE_OFF, K_NOTE_ON,
                              K_PANIC, K_PITCH_BEND, K_SOURCE_GONE, K_SUSTAIN)
from engine.rt.units.base import Param, clampf, finite_or_zero

NV = 128                   # voice slots per instrument
CHUNK = 16                 # control period in samples
STEAL_MS = 2.0             # linear fade of a stolen (or panicked) voice
BEND_S = 0.005             # smoothing of bend, mod wheel and aftertouch

# ---- header -------------------------------------------------------------------------------
(H_CPOS, H_SERIAL, H_SUSTAIN, H_BEND, H_BEND_CUR, H_WHEEL, H_WHEEL_CUR, H_AT, H_AT_CUR,
 H_LAST_PITCH, H_NHELD, H_HI, H_MONO, H_STEALS, H_SR, H_LFO_PHASE, H_NOTES) = range(17)
STACK = 32                 # held keys: (note, velocity, source) triples, oldest first
STACK_N = 16
X0 = STACK + 3 * STACK_N   # the modulation matrix's header slots (modmatrix.MX_*), then the
HDR = 512                  # instrument's own (from modmatrix.X_FREE)

# ---- voice rows ---------------------------------------------------------------------------
(R_STATE, R_NOTE, R_SRC, R_VEL, R_AGE, R_SUST, R_UIDX, R_UPOS, R_PITCH, R_PSLOPE, R_TARGET,
 R_GSTEP, R_FADE, R_FSLOPE, R_PNOTE, R_PVEL, R_PSRC, R_PUIDX, R_PUPOS, R_PAGE, R_PPITCH,
 R_START, R_DIRTY, R_NKEY, R_PNKEY) = range(25)
POLY_ROWS = 25
"""R_NKEY: which note-on (H_NOTES, counting every note-on since reset) the voice plays, the
key of its per-note random values (engine.rt.units.modmatrix); R_PNKEY: its pending note's."""

V_IDLE, V_ON, V_OFF, V_FADE = 0.0, 1.0, 2.0, 3.0
"""Voice states: idle; on (key held or sustained); off (released, envelopes releasing);
fading (stolen or panicked: fades out over STEAL_MS, then starts its pending note or idles)."""
START_NONE, START_FRESH, START_RETRIG = 0.0, 1.0, 2.0
"""R_START: what the instrument must do at its next control step: nothing; start from rest
(phases, filters, envelopes from 0); retrigger the envelopes from where they stand."""

MODES = ("poly", "mono", "legato")
MODE_POLY, MODE_MONO, MODE_LEGATO = 0, 1, 2
GLIDES = ("legato", "always")
UNISONS = tuple(str(k) for k in range(1, 9))
GOLDEN = 0.6180339887498949

P_MODE, P_GLIDE_MS, P_GLIDE, P_UNISON, P_DETUNE, P_SPREAD, P_POLYPHONY, P_BEND_RANGE = range(8)
NPOLY = 8


def poly_params():
    """Fresh Params for the poly controls; every instrument starts its PARAMS with them (so
    their indices are the P_* above)."""
    return [
        Param("mode", 0, 2, 0, curve="choice", smooth_s=0.0, choices=MODES,
              doc="poly; mono (last note, retrigger); legato (mono, no retrigger while held)"),
        Param("glide_ms", 0.0, 5000.0, 0.0, smooth_s=0.0,
              doc="portamento: the pitch reaches the new note in this time"),
        Param("glide", 0, 1, 0, curve="choice", smooth_s=0.0, choices=GLIDES,
              doc="glide only between overlapping notes, or always"),
        Param("unison", 0, 7, 0, curve="choice", smooth_s=0.0, choices=UNISONS,
              doc="voices per note"),
        Param("unison_detune_cents", 0.0, 100.0, 10.0,
              doc="pitch distance between the lowest and the highest unison voice"),
        Param("stereo_spread", 0.0, 1.0, 0.5,
              doc="unison voices across the field: 0 all centred, 1 from hard left to right"),
        Param("polyphony", 1.0, float(NV), 32.0, smooth_s=0.0,
              doc="voices a note-on may use before it steals"),
        Param("bend_range_st", 0.0, 48.0, 2.0, smooth_s=0.0,
              doc="semitones of a full pitch bend (a bend event's -1..1 times this)"),
    ]


@njit(**JIT)
def lane_sum(state, row, hi):
    """Row `row` summed over voices [0, hi) (hi a multiple of 4), each voice always into the
    same one of four accumulators (the sum does not depend on where hi stands)."""
    a0 = a1 = a2 = a3 = 0.0
    for b in range(np.uint64(0), hi, np.uint64(4)):
        a0 += state[row + b]
        a1 += state[row + b + np.uint64(1)]
        a2 += state[row + b + np.uint64(2)]
        a3 += state[row + b + np.uint64(3)]
    return (a0 + a1) + (a2 + a3)


def vrow(r):
    """The state offset of voice row r (a compile-time constant where used in kernels)."""
    return HDR + r * NV


def poly_state_size(rows):
    """State for the header and `rows` voice rows (poly's and the instrument's)."""
    return HDR + rows * NV


@njit(inline="always", **JIT)
def at(r, v):
    return HDR + r * NV + v


@njit(inline="always", **JIT)
def choice(params, k, count):
    """Choice parameter k's target as an index 0..count-1 (NaN: 0)."""
    return int(clampf(params[k], 0.0, count - 1.0) + 0.5)


@njit(inline="always", **JIT)
def steal_samples(sample_rate):
    return max(1.0, math.floor(STEAL_MS * 0.001 * sample_rate + 0.5))


@njit(inline="always", **JIT)
def rewind(end, slope, r_left):
    """A control value now, `r_left` samples before the end of the period it ramps over."""
    return end - slope * r_left


@njit(inline="always", **JIT)
def pan_gains(p):
    """Equal-power gains (left, right) for a position p in -1..1 (0: both sqrt(1/2))."""
    p = clampf(p, -1.0, 1.0)
    return math.sqrt(0.5 * (1.0 - p)), math.sqrt(0.5 * (1.0 + p))


@njit(inline="always", **JIT)
def unison_pos(u, count):
    """Unison voice u of `count`, placed symmetrically in -1..1 (0 when alone)."""
    if count <= 1:
        return 0.0
    return -1.0 + 2.0 * u / (count - 1.0)


@njit(inline="always", **JIT)
def start_phase(u):
    """A unison voice's starting phase (cycles): spread by the golden ratio, 0 for the first."""
    x = u * GOLDEN
    return x - math.floor(x)


# ---- the ADSR kernel --------------------------------------------------------------------

ST_IDLE, ST_ATTACK, ST_DECAY, ST_RELEASE = 0.0, 1.0, 2.0, 3.0
ATTACK_TARGET = 1.3
"""The attack aims at 1.3 and stops at 1.0 (a rounded, punchy curve): it reaches 1.0 in
attack_ms exactly (ln(1.3 / 0.3) time constants)."""
SPAN_ATTACK = math.log(ATTACK_TARGET / (ATTACK_TARGET - 1.0))
SPAN_DECAY = math.log(100.0)
"""Decay and release cover 99 % of their way (40 dB for a release) in decay_ms / release_ms."""
IDLE_LEVEL = 1e-4
"""A releasing envelope below this (-80 dB) ends at 0 and its voice is free."""


@njit(inline="always", **JIT)
def env_coef(time_ms, span, n, sample_rate):
    """The coefficient of an exponential segment moving `span` time constants in `time_ms`,
    for a step of n samples: level += coef * (target - level)."""
    t = clampf(time_ms, 0.05, 1e6) * 0.001 * sample_rate
    return 1.0 - math.exp(-span * n / t)


@njit(inline="always", **JIT)
def adsr_coefs(attack_ms, decay_ms, release_ms, n, sample_rate):
    """(attack, decay, release) coefficients for steps of n samples."""
    return (env_coef(attack_ms, SPAN_ATTACK, n, sample_rate),
            env_coef(decay_ms, SPAN_DECAY, n, sample_rate),
            env_coef(release_ms, SPAN_DECAY, n, sample_rate))


@njit(inline="always", **JIT)
def adsr_step(level, stage, gate, ca, cd, cr, sustain):
    """One step of an exponential ADSR (coefficients from `adsr_coefs`): returns (level,
    stage). Without the gate an attack or decay turns to release; a release below IDLE_LEVEL
    ends at 0, stage idle."""
    if not gate and (stage == ST_ATTACK or stage == ST_DECAY):
        stage = ST_RELEASE
    if stage == ST_ATTACK:
        level += ca * (ATTACK_TARGET - level)
        if level >= 1.0:
            level = 1.0
            stage = ST_DECAY
    elif stage == ST_DECAY:
        level += cd * (sustain - level)
    elif stage == ST_RELEASE:
        level -= cr * level
        if level < IDLE_LEVEL:
            level = 0.0
            stage = ST_IDLE
    else:
        level = 0.0
    return level, stage


# ---- voice bookkeeping --------------------------------------------------------------------

@njit(**JIT)
def reset_poly(state, end):
    """Every voice idle, no keys held, controllers at rest: state[0:end] cleared (the header
    and the voice rows; an instrument keeps what lies after them, such as its tables)."""
    for i in range(min(end, state.shape[0])):
        state[i] = 0.0
    state[H_LAST_PITCH] = -1.0
    for v in range(NV):
        state[at(R_PNOTE, v)] = -1.0


@njit(**JIT)
def _glide_step(from_pitch, to_pitch, glide_ms, sample_rate):
    if glide_ms <= 0.0 or from_pitch == to_pitch:
        return 0.0
    return abs(to_pitch - from_pitch) / max(1.0, glide_ms * 0.001 * sample_rate)


@njit(**JIT)
def _start(state, v, note, vel, src, uidx, upos, serial, from_pitch, glide_ms, nkey,
           sample_rate):
    state[at(R_STATE, v)] = V_ON
    state[at(R_NKEY, v)] = nkey
    state[at(R_NOTE, v)] = note
    state[at(R_SRC, v)] = src
    state[at(R_VEL, v)] = vel
    state[at(R_AGE, v)] = serial
    state[at(R_SUST, v)] = 0.0
    state[at(R_UIDX, v)] = uidx
    state[at(R_UPOS, v)] = upos
    state[at(R_TARGET, v)] = note
    state[at(R_PITCH, v)] = from_pitch
    state[at(R_PSLOPE, v)] = 0.0
    state[at(R_GSTEP, v)] = _glide_step(from_pitch, note, glide_ms, sample_rate)
    state[at(R_FADE, v)] = 1.0
    state[at(R_FSLOPE, v)] = 0.0
    state[at(R_PNOTE, v)] = -1.0
    state[at(R_START, v)] = START_FRESH
    state[at(R_DIRTY, v)] = 1.0
    if state[H_HI] < v + 1:
        state[H_HI] = v + 1


@njit(**JIT)
def free_voice(state, v):
    state[at(R_STATE, v)] = V_IDLE
    state[at(R_PNOTE, v)] = -1.0
    state[at(R_SUST, v)] = 0.0
    state[at(R_START, v)] = START_NONE


@njit(**JIT)
def _fade(state, v):
    """Start fading voice v out (its pending note, if any, is set by the caller)."""
    if state[at(R_STATE, v)] != V_FADE:
        state[at(R_STATE, v)] = V_FADE
        state[at(R_DIRTY, v)] = 1.0
    state[at(R_SUST, v)] = 0.0
    state[at(R_PNOTE, v)] = -1.0


@njit(**JIT)
def _assign(state, note, vel, src, uidx, upos, serial, from_pitch, glide_ms, limit, nkey,
            sample_rate):
    """One voice for a note-on: the lowest idle one, else a stolen one. Returns 1 if stolen."""
    for v in range(limit):
        if state[at(R_STATE, v)] == V_IDLE:
            _start(state, v, note, vel, src, uidx, upos, serial, from_pitch, glide_ms, nkey,
                   sample_rate)
            return 0
    best = -1
    best_key = 1e300
    for v in range(limit):
        st = state[at(R_STATE, v)]
        if st == V_FADE:
            if state[at(R_PNOTE, v)] >= 0.0 and state[at(R_PAGE, v)] == serial:
                continue                     # already this note's
            key = 2e15 + state[at(R_AGE, v)]
        else:
            if state[at(R_AGE, v)] == serial:
                continue
            key = state[at(R_AGE, v)] + (-1e15 if st == V_OFF else 0.0)
        if key < best_key:
            best_key = key
            best = v
    if best < 0:
        return 0
    _fade(state, best)
    state[at(R_PNOTE, best)] = note
    state[at(R_PVEL, best)] = vel
    state[at(R_PSRC, best)] = src
    state[at(R_PUIDX, best)] = uidx
    state[at(R_PUPOS, best)] = upos
    state[at(R_PAGE, best)] = serial
    state[at(R_PPITCH, best)] = from_pitch
    state[at(R_PNKEY, best)] = nkey
    state[H_STEALS] += 1.0
    return 1


@njit(**JIT)
def _allocate(state, params, note, vel, src, from_pitch, glide_ms, sample_rate):
    """A new note of `unison` voices; returns (serial, stolen)."""
    limit = int(clampf(params[P_POLYPHONY], 1.0, NV))
    count = min(choice(params, P_UNISON, 8) + 1, limit)
    serial = state[H_SERIAL] + 1.0
    state[H_SERIAL] = serial
    stolen = 0
    for u in range(count):
        stolen |= _assign(state, note, vel, src, float(u), unison_pos(u, count), serial,
                          from_pitch, glide_ms, limit, state[H_NOTES], sample_rate)
    return serial, stolen


@njit(**JIT)
def _push(state, note, vel, src):
    _remove(state, note, src, False)
    n = int(state[H_NHELD])
    if n == STACK_N:                          # full: forget the oldest
        for k in range(3 * (STACK_N - 1)):
            state[STACK + k] = state[STACK + 3 + k]
        n -= 1
    state[STACK + 3 * n] = note
    state[STACK + 3 * n + 1] = vel
    state[STACK + 3 * n + 2] = src
    state[H_NHELD] = n + 1


@njit(**JIT)
def _remove(state, note, src, every_note):
    """Take (note, src) off the stack (every_note: every entry of src)."""
    n = int(state[H_NHELD])
    w = 0
    for k in range(n):
        kn = state[STACK + 3 * k]
        ks = state[STACK + 3 * k + 2]
        if ks == src and (every_note or kn == note):
            continue
        for j in range(3):
            state[STACK + 3 * w + j] = state[STACK + 3 * k + j]
        w += 1
    state[H_NHELD] = w


@njit(**JIT)
def _retarget(state, v, note, vel, src, glide, glide_ms, retrig, sample_rate):
    """A sounding mono voice moves to `note` (gliding or not), retriggered or not."""
    state[at(R_STATE, v)] = V_ON
    state[at(R_NOTE, v)] = note
    state[at(R_SRC, v)] = src
    state[at(R_SUST, v)] = 0.0
    state[at(R_TARGET, v)] = note
    state[at(R_NKEY, v)] = state[H_NOTES]
    if glide:
        state[at(R_GSTEP, v)] = _glide_step(state[at(R_PITCH, v)], note, glide_ms, sample_rate)
    else:
        state[at(R_PITCH, v)] = note
        state[at(R_PSLOPE, v)] = 0.0
        state[at(R_GSTEP, v)] = 0.0
    if retrig:
        state[at(R_VEL, v)] = vel
        if state[at(R_START, v)] != START_FRESH:
            state[at(R_START, v)] = START_RETRIG
    state[at(R_DIRTY, v)] = 1.0


@njit(**JIT)
def _mono_move(state, params, note, vel, src, held_before, sample_rate):
    """Mono/legato: move the sounding note group to `note`. Returns False if nothing sounds."""
    group = state[H_MONO]
    if group <= 0.0:
        return False
    hi = int(state[H_HI])
    found = False
    for v in range(hi):
        st = state[at(R_STATE, v)]
        if (st == V_ON or st == V_OFF) and state[at(R_AGE, v)] == group:
            found = True
        elif st == V_FADE and state[at(R_PNOTE, v)] >= 0.0 and state[at(R_PAGE, v)] == group:
            found = True
    if not found:
        return False
    mode = choice(params, P_MODE, 3)
    glide_ms = clampf(params[P_GLIDE_MS], 0.0, 5000.0)
    glide = glide_ms > 0.0 and (held_before or choice(params, P_GLIDE, 2) == 1)
    retrig = mode == MODE_MONO or not held_before
    for v in range(hi):
        st = state[at(R_STATE, v)]
        if (st == V_ON or st == V_OFF) and state[at(R_AGE, v)] == group:
            _retarget(state, v, note, vel, src, glide, glide_ms, retrig, sample_rate)
        elif st == V_FADE and state[at(R_PNOTE, v)] >= 0.0 and state[at(R_PAGE, v)] == group:
            state[at(R_PNOTE, v)] = note
            state[at(R_PVEL, v)] = vel
            state[at(R_PSRC, v)] = src
            state[at(R_PNKEY, v)] = state[H_NOTES]
    state[H_LAST_PITCH] = note
    return True


@njit(**JIT)
def _group_sounds(state, note, src, by_source):
    """Whether the mono group sounds (note, src) (by_source: any note of src)."""
    group = state[H_MONO]
    if group <= 0.0:
        return False
    for v in range(int(state[H_HI])):
        if state[at(R_STATE, v)] == V_ON and state[at(R_AGE, v)] == group \
                and state[at(R_SRC, v)] == src and (by_source or state[at(R_NOTE, v)] == note):
            return True
    return False


@njit(**JIT)
def _back_to_held(state, params, sample_rate):
    """Mono: the sounding key went up while others are held: play the most recent of them."""
    n = int(state[H_NHELD])
    k = STACK + 3 * (n - 1)
    _mono_move(state, params, state[k], state[k + 1], state[k + 2], True, sample_rate)


@njit(**JIT)
def note_on(state, params, note, vel, src, sample_rate):
    state[H_NOTES] = state[H_NOTES] + 1.0 if state[H_NOTES] < 2.0 ** 52 else 1.0
    held_before = state[H_NHELD] > 0.0
    _push(state, note, vel, src)
    mode = choice(params, P_MODE, 3)
    if mode != MODE_POLY and _mono_move(state, params, note, vel, src, held_before,
                                        sample_rate):
        return 0
    glide_ms = clampf(params[P_GLIDE_MS], 0.0, 5000.0)
    last = state[H_LAST_PITCH]
    glide = glide_ms > 0.0 and last >= 0.0 and (held_before or choice(params, P_GLIDE, 2) == 1)
    serial, stolen = _allocate(state, params, note, vel, src, last if glide else note,
                               glide_ms, sample_rate)
    if mode != MODE_POLY:
        state[H_MONO] = serial
    state[H_LAST_PITCH] = note
    return stolen


@njit(**JIT)
def _release(state, v):
    if state[at(R_STATE, v)] == V_ON:
        state[at(R_STATE, v)] = V_OFF
        state[at(R_DIRTY, v)] = 1.0
    state[at(R_SUST, v)] = 0.0


@njit(**JIT)
def note_off(state, params, note, src, sample_rate):
    _remove(state, note, src, False)
    if state[H_NHELD] > 0.0 and _group_sounds(state, note, src, False):
        _back_to_held(state, params, sample_rate)
    pedal = state[H_SUSTAIN] > 0.5
    for v in range(int(state[H_HI])):
        st = state[at(R_STATE, v)]
        if st == V_ON and state[at(R_NOTE, v)] == note and state[at(R_SRC, v)] == src:
            if pedal:
                state[at(R_SUST, v)] = 1.0
            else:
                _release(state, v)
        elif st == V_FADE and state[at(R_PNOTE, v)] == note and state[at(R_PSRC, v)] == src:
            state[at(R_PNOTE, v)] = -1.0      # released before its voice was free


@njit(**JIT)
def sustain(state, down):
    state[H_SUSTAIN] = 1.0 if down else 0.0
    if not down:
        for v in range(int(state[H_HI])):
            if state[at(R_SUST, v)] > 0.0:
                _release(state, v)


@njit(**JIT)
def release_source(state, params, src, sample_rate):
    """Source gone: its keys are up and its notes released, pedal or not."""
    _remove(state, 0.0, src, True)
    if state[H_NHELD] > 0.0 and _group_sounds(state, 0.0, src, True):
        _back_to_held(state, params, sample_rate)
    for v in range(int(state[H_HI])):
        st = state[at(R_STATE, v)]
        if st == V_ON and state[at(R_SRC, v)] == src:
            _release(state, v)
        elif st == V_FADE and state[at(R_PSRC, v)] == src:
            state[at(R_PNOTE, v)] = -1.0


@njit(**JIT)
def release_all(state):
    state[H_SUSTAIN] = 0.0
    state[H_NHELD] = 0.0
    for v in range(int(state[H_HI])):
        if state[at(R_STATE, v)] == V_ON:
            _release(state, v)
        state[at(R_PNOTE, v)] = -1.0
        state[at(R_SUST, v)] = 0.0


@njit(**JIT)
def panic(state):
    """Every voice fades out over STEAL_MS; keys, pedal and controllers back to rest."""
    state[H_SUSTAIN] = 0.0
    state[H_NHELD] = 0.0
    state[H_BEND] = state[H_WHEEL] = state[H_AT] = 0.0
    state[H_MONO] = 0.0
    for v in range(int(state[H_HI])):
        if state[at(R_STATE, v)] != V_IDLE:
            _fade(state, v)


@njit(**JIT)
def poly_event(state, params, kind, a, b, c, sample_rate):
    """Apply one event to the voices (the instrument then re-plans the voices marked
    R_DIRTY). Returns the number of voices stolen (0 or 1)."""
    src = finite_or_zero(c)
    if kind == K_NOTE_ON:
        if not abs(a) < 1e6:
            return 0
        note = clampf(a, 0.0, 127.0)
        vel = clampf(b, 0.0, 1.0)
        if vel <= 0.0:
            note_off(state, params, note, src, sample_rate)
            return 0
        return note_on(state, params, note, vel, src, sample_rate)
    if kind == K_NOTE_OFF:
        if abs(a) < 1e6:
            note_off(state, params, clampf(a, 0.0, 127.0), src, sample_rate)
    elif kind == K_SUSTAIN:
        sustain(state, b > 0.5)
    elif kind == K_PITCH_BEND:      # -1..1, scaled by the instrument's own range
        state[H_BEND] = clampf(b, -1.0, 1.0) * clampf(params[P_BEND_RANGE], 0.0, 48.0)
    elif kind == K_MOD_WHEEL:
        state[H_WHEEL] = clampf(b, 0.0, 1.0)
    elif kind == K_AFTERTOUCH:
        state[H_AT] = clampf(b, 0.0, 1.0)
    elif kind == K_ALL_NOTES_OFF:
        release_all(state)
    elif kind == K_SOURCE_GONE:
        release_source(state, params, src, sample_rate)
    elif kind == K_PANIC:
        panic(state)
    return 0


# ---- control rate -------------------------------------------------------------------------

@njit(**JIT)
def smooth_coefs(state, at0, smooth_s, sample_rate):
    """Per-parameter control-rate smoothing coefficients into state[at0:at0 + n], computed
    again only when the sample rate changes (0: a parameter that applies at once)."""
    if state[H_SR] == sample_rate:
        return
    state[H_SR] = sample_rate
    for k in range(smooth_s.shape[0]):
        s = smooth_s[k]
        state[at0 + k] = 1.0 if s <= 0.0 else 1.0 - math.exp(-CHUNK / (s * sample_rate))


@njit(**JIT)
def smooth_tick(state, params, n, at0):
    """One control period of parameter smoothing (coefficients at state[at0:]) and of the
    controllers (bend, wheel, aftertouch)."""
    for k in range(n):
        t = params[k]
        if not abs(t) < 1e300:
            continue
        c = params[n + k]
        if not abs(c) < 1e300:
            c = t
        c += state[at0 + k] * (t - c)
        if abs(t - c) <= 1e-9 * (abs(t) + 1e-9):
            c = t
        params[n + k] = c
    cc = 1.0 - math.exp(-CHUNK / (BEND_S * state[H_SR]))
    _follow(state, H_BEND, cc)
    _follow(state, H_WHEEL, cc)
    _follow(state, H_AT, cc)


@njit(inline="always", **JIT)
def _follow(state, h, cc):
    """A controller's smoothed value (slot h + 1) one control period towards slot h."""
    c = state[h + 1] + cc * (state[h] - state[h + 1])
    if abs(state[h] - c) < 1e-9:
        c = state[h]
    state[h + 1] = c


@njit(**JIT)
def tick_voices(state, params, sample_rate):
    """Start of a control period: stolen voices whose fade is done start their pending note
    (or go idle)."""
    glide_ms = clampf(params[P_GLIDE_MS], 0.0, 5000.0)
    for v in range(int(state[H_HI])):
        if state[at(R_STATE, v)] == V_FADE and state[at(R_FADE, v)] <= 0.0:
            if state[at(R_PNOTE, v)] >= 0.0:
                _start(state, v, state[at(R_PNOTE, v)], state[at(R_PVEL, v)],
                       state[at(R_PSRC, v)], state[at(R_PUIDX, v)], state[at(R_PUPOS, v)],
                       state[at(R_PAGE, v)], state[at(R_PPITCH, v)], glide_ms,
                       state[at(R_PNKEY, v)], sample_rate)
            else:
                free_voice(state, v)


@njit(**JIT)
def shrink(state):
    """Lower H_HI past idle voices at the top."""
    hi = int(state[H_HI])
    while hi > 0 and state[at(R_STATE, hi - 1)] == V_IDLE:
        hi -= 1
    state[H_HI] = hi


@njit(inline="always", **JIT)
def motion(state, v, seg, r_left, steal_n):
    """Glide and fade of voice v over the next `seg` samples (the control values rewound by
    r_left first). Returns (pitch, fade) at the end of the segment."""
    p = rewind(state[at(R_PITCH, v)], state[at(R_PSLOPE, v)], r_left)
    target = state[at(R_TARGET, v)]
    step = state[at(R_GSTEP, v)] * seg
    if p < target:
        q = min(target, p + step) if step > 0.0 else target
    else:
        q = max(target, p - step) if step > 0.0 else target
    state[at(R_PITCH, v)] = q
    state[at(R_PSLOPE, v)] = (q - p) / seg
    f = 1.0
    if state[at(R_STATE, v)] == V_FADE:
        f0 = rewind(state[at(R_FADE, v)], state[at(R_FSLOPE, v)], r_left)
        f = max(0.0, f0 - seg / steal_n)
        state[at(R_FSLOPE, v)] = (f - f0) / seg
        state[at(R_FADE, v)] = f
    return q, f


@njit(**JIT)
def active_voices(state):
    """Voices sounding or about to (fading out, or waiting to start after a steal)."""
    n = 0
    for v in range(NV):
        if state[at(R_STATE, v)] != V_IDLE:
            n += 1
    return n
