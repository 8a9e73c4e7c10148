"""FM instrument: four operators in the eight classic Yamaha 4-operator algorithms (AUDIO THREAD).

Operators are named as on the DX21/DX100/TX81Z: op1 is the final carrier of algorithm 1
(4 -> 3 -> 2 -> 1) and op4 has the feedback loop. Each operator is a sine at the note's
frequency times `ratio` (and `detune_cents`), with its own exponential ADSR, output `level`
and velocity sensitivity. An operator modulates the phase of the operators it feeds (phase
modulation, as Yamaha's FM): a modulator at level L moves its target's phase by
L * MOD_INDEX radians at full envelope, so a modulator at level I / MOD_INDEX driving a
carrier of the same ratio makes sin(wt + I sin(wt)), whose partials are Bessel functions
J_n(I). op4 can modulate itself: `feedback` f feeds f * FEEDBACK_MAX radians of the mean of
its last two outputs back into its phase (the mean tames the period-2 oscillation a
one-sample loop otherwise falls into: without it the loop rings at fs / 2 from about 1.2
radians, with it it stays clean to about 2; FEEDBACK_MAX is 1.6).

Algorithms (`ROUTES`; the same table as ymfm's s_algorithm_ops, which lists the routing of
the OPM/OPZ chips these instruments use), carriers in brackets:
    1: 4 -> 3 -> 2 -> [1]                 5: 4 -> [3], 2 -> [1]
    2: (4 + 3) -> 2 -> [1]                6: 4 -> [3], 4 -> [2], 4 -> [1]
    3: 4 -> [1], 3 -> 2 -> [1]            7: 4 -> [3], [2], [1]
    4: 4 -> 3 -> [1], 2 -> [1]            8: [4], [3], [2], [1]
The carriers are summed and divided by their count. Each sample runs every voice side by side
(one loop over the voice rows: the four operators of one voice depend on each other, different
voices do not, so the loop is vectorized and overlapped). Voices, unison, spread, glide and
play modes come from engine.rt.units.poly; the mod wheel adds vibrato (LFO 1), aftertouch
raises the modulators' levels (`aftertouch_index`). The modulation matrix
(engine.rt.units.modmatrix: two LFOs, a random S&H, a mod ADSR, velocity, key, wheel,
aftertouch, a per-note random value; eight slots) reaches `DESTS`: the common destinations,
each operator's level and ratio, and the index (the modulators' level factor).
"""
import math

import numpy as np
from numba import njit

from engine.rt.dsp import JIT
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

NAME = "fm"
INSTRUMENT = True
OPS = 4
MOD_INDEX = 2.0 * math.pi
"""Modulation index (radians) of a modulator at level 1 and full envelope."""
FEEDBACK_MAX = 1.6
"""Feedback (radians) at feedback = 1: near a bright saw, short of the noisy region."""
ALGORITHMS = tuple(str(k) for k in range(1, 9))

# Routing in TX81Z operator numbers: (modulator, target) pairs and carriers, per algorithm.
ROUTES = (
    ((4, 3), (3, 2), (2, 1)),
    ((4, 2), (3, 2), (2, 1)),
    ((4, 1), (3, 2), (2, 1)),
    ((4, 3), (3, 1), (2, 1)),
    ((4, 3), (2, 1)),
    ((4, 3), (4, 2), (4, 1)),
    ((4, 3),),
    (),
)
CARRIERS = ((1,), (1,), (1,), (1,), (3, 1), (3, 2, 1), (3, 2, 1), (4, 3, 2, 1))


def _j(op):
    """Computation slot of TX operator `op`: op4 (feedback, first) is slot 0, op1 slot 3."""
    return 4 - op


def _routing():
    """ROUTES and CARRIERS as the kernel reads them: mod[algorithm, target slot, modulator
    slot] and car[algorithm, slot], 1.0 or 0.0 (numpy constants, indexed at run time)."""
    mod = np.zeros((8, OPS, OPS))
    car = np.zeros((8, OPS))
    for a in range(8):
        for m, t in ROUTES[a]:
            assert _j(m) < _j(t)               # a modulator is computed before its target
            mod[a, _j(t), _j(m)] = 1.0
        for c in CARRIERS[a]:
            car[a, _j(c)] = 1.0
    return mod, car


ALG_MOD, ALG_CAR = _routing()

_OP_FIELDS = ("ratio", "detune_cents", "level", "attack_ms", "decay_ms", "sustain",
              "release_ms", "velocity")
NF = len(_OP_FIELDS)
F_RATIO, F_DETUNE, F_LEVEL, F_ATTACK, F_DECAY, F_SUSTAIN, F_RELEASE, F_VEL = range(NF)
_DEFAULT_OPS = {   # an electric piano: op2 -> op1 body, op4 -> op3 tine
    1: (1.0, 0.0, 0.9, 2.0, 2500.0, 0.3, 400.0, 0.5),
    2: (1.0, 3.0, 0.25, 2.0, 900.0, 0.1, 300.0, 0.8),
    3: (1.0, -3.0, 0.6, 1.0, 1200.0, 0.0, 300.0, 0.5),
    4: (14.0, 0.0, 0.1, 1.0, 250.0, 0.0, 200.0, 0.9),
}


def _op_params(k):
    d = _DEFAULT_OPS[k]
    return [
        Param(f"op{k}_ratio", 0.125, 32.0, d[0], curve="log", doc="frequency / note frequency"),
        Param(f"op{k}_detune_cents", -50.0, 50.0, d[1]),
        Param(f"op{k}_level", 0.0, 1.0, d[2], doc="output (carrier) or index / MOD_INDEX"),
        Param(f"op{k}_attack_ms", 0.5, 10000.0, d[3], curve="log", smooth_s=0.0),
        Param(f"op{k}_decay_ms", 1.0, 20000.0, d[4], curve="log", smooth_s=0.0),
        Param(f"op{k}_sustain", 0.0, 1.0, d[5]),
        Param(f"op{k}_release_ms", 2.0, 20000.0, d[6], curve="log", smooth_s=0.0),
        Param(f"op{k}_velocity", 0.0, 1.0, d[7], doc="velocity sensitivity of the level"),
    ]


DESTS = mm.COMMON_DESTS + tuple(f"op{k}_level" for k in range(1, OPS + 1)) + ("index",) \
    + tuple(f"op{k}_ratio" for k in range(1, OPS + 1))
D_LEVEL = len(mm.COMMON_DESTS)          # op k: D_LEVEL + k - 1
D_INDEX = D_LEVEL + OPS
D_RATIO = D_INDEX + 1                   # op k: D_RATIO + k - 1
"""The matrix's destinations here: the common ones, each operator's level (added, 0..1),
index (added to the modulators' level factor, as aftertouch_index is), each operator's
ratio (added: 0.01 moves the operator by 1 % of the note's frequency)."""

_OWN = [
    Param("algorithm", 0, 7, 4, curve="choice", smooth_s=0.0, choices=ALGORITHMS),
    Param("feedback", 0.0, 1.0, 0.0, doc="op4 into itself, FEEDBACK_MAX radians at 1"),
] + [p for k in range(1, OPS + 1) for p in _op_params(k)] + [
    Param("vibrato_st", 0.0, 2.0, 0.3, doc="vibrato depth (LFO 1) at full mod wheel"),
    Param("lfo_hz", 0.05, 20.0, 5.0, curve="log", doc="LFO 1 rate (vibrato)"),
    Param("aftertouch_index", 0.0, 1.0, 0.5, doc="modulator level rise at full aftertouch"),
    Param("gain_db", -48.0, 12.0, -12.0),
]
PARAMS = declare(poly.poly_params() + _OWN
                 + mm.mod_params((0.05, 20.0, 5.0), DESTS, have=[p.name for p in _OWN]))
P_ALG, P_FEEDBACK = poly.NPOLY, poly.NPOLY + 1
P_OPS = poly.NPOLY + 2                  # op k's field f: P_OPS + (k - 1) * NF + f
P_VIBRATO, P_LFO_HZ, P_AT_INDEX, P_GAIN_DB = range(P_OPS + OPS * NF, P_OPS + OPS * NF + 4)
N = len(PARAMS)
MP = mm.param_map(PARAMS)
SMOOTH_S = np.array([p.smooth_s for p in PARAMS])

# ---- state ------------------------------------------------------------------------------------
X_PCOEF = mm.X_FREE                    # N smoothing coefficients
(X_VIBK, X_FBK, X_M10, X_M20, X_M21, X_M30, X_M31, X_M32, X_C0, X_C1, X_C2, X_C3,
 X_OUTG) = range(X_PCOEF + N, X_PCOEF + N + 13)
X_COEF = X_OUTG + 1                    # per slot j: attack, decay, release coefficients (CHUNK)
X_RATIO = X_COEF + 3 * OPS             # per slot j: frequency ratio with its detune
assert X_RATIO + OPS <= HDR

# voice rows: per slot j, row base + j
F_PH = mm.ROWS_END
F_INC = F_PH + OPS
F_G = F_INC + OPS                      # operator gain (level x envelope x velocity), ramped
F_GS = F_G + OPS
E_LEV = F_GS + OPS
E_SL = E_LEV + OPS
E_ST = E_SL + OPS
F_Y1, F_Y2, F_OL, F_OLS, F_OR, F_ORS, F_OUTL, F_OUTR = range(E_ST + OPS, E_ST + OPS + 8)
ROWS = F_OUTR + 1


def state_size(sample_rate):
    return poly.poly_state_size(ROWS)


RFAST = dict(JIT, fastmath={"contract", "arcp", "nsz"})

TWO_PI = 2.0 * math.pi
_SIN3, _SIN5, _SIN7, _SIN9, _SIN11, _SIN13 = (
    -1.0 / 6.0, 1.0 / 120.0, -1.0 / 5040.0, 1.0 / 362880.0, -1.0 / 39916800.0, 1.0 / 6227020800.0)


@njit(inline="always", **RFAST)
def sin_cycles(x):
    """sin(2 pi x) for any x (cycles): folded to a quarter period, then a degree-13 odd
    polynomial (error below 1e-9)."""
    x -= math.floor(x + 0.5)
    a = abs(x)
    x = math.copysign(min(a, 0.5 - a), x) * TWO_PI
    z = x * x
    return x * (1.0 + z * (_SIN3 + z * (_SIN5 + z * (_SIN7 + z * (_SIN9 + z * (_SIN11
                                                                        + z * _SIN13))))))


@njit(**JIT)
def reset(state, sample_rate):
    poly.reset_poly(state, state.shape[0])


@njit(**JIT)
def active_voices(state):
    return poly.active_voices(state)


def _off(row):
    """Voice row `row` as an unsigned compile-time offset (the voice loops vectorize)."""
    return np.uint64(HDR + row * NV)


_PH = tuple(_off(F_PH + j) for j in range(OPS))
_INC = tuple(_off(F_INC + j) for j in range(OPS))
_G = tuple(_off(F_G + j) for j in range(OPS))
_GS = tuple(_off(F_GS + j) for j in range(OPS))
_PH0, _PH1, _PH2, _PH3 = _PH
_IN0, _IN1, _IN2, _IN3 = _INC
_G0, _G1, _G2, _G3 = _G
_GS0, _GS1, _GS2, _GS3 = _GS
_Y1, _Y2, _OL, _OLS, _OR, _ORS, _OUTL, _OUTR = (_off(r) for r in (F_Y1, F_Y2, F_OL, F_OLS, F_OR,
                                                                 F_ORS, F_OUTL, F_OUTR))


@njit(**RFAST)
def _voices(state, hi, fbk, m10, m20, m21, m30, m31, m32, c0, c1, c2, c3):
    """One sample of voices [0, hi): each one's output into the F_OUTL / F_OUTR rows. The
    voices are independent, so this loop runs them side by side (SIMD, out of order)."""
    for v in range(np.uint64(0), hi):
        p0 = state[_PH0 + v]
        p1 = state[_PH1 + v]
        p2 = state[_PH2 + v]
        p3 = state[_PH3 + v]
        g0 = state[_G0 + v]
        g1 = state[_G1 + v]
        g2 = state[_G2 + v]
        g3 = state[_G3 + v]
        y1 = state[_Y1 + v]
        o0 = g0 * sin_cycles(p0 + fbk * (y1 + state[_Y2 + v]))
        o1 = g1 * sin_cycles(p1 + m10 * o0)
        o2 = g2 * sin_cycles(p2 + m20 * o0 + m21 * o1)
        o3 = g3 * sin_cycles(p3 + m30 * o0 + m31 * o1 + m32 * o2)
        out = c0 * o0 + c1 * o1 + c2 * o2 + c3 * o3
        gl = state[_OL + v]
        gr = state[_OR + v]
        state[_OUTL + v] = out * gl
        state[_OUTR + v] = out * gr
        state[_OL + v] = gl + state[_OLS + v]
        state[_OR + v] = gr + state[_ORS + v]
        state[_Y2 + v] = y1
        state[_Y1 + v] = o0
        state[_G0 + v] = g0 + state[_GS0 + v]
        state[_G1 + v] = g1 + state[_GS1 + v]
        state[_G2 + v] = g2 + state[_GS2 + v]
        state[_G3 + v] = g3 + state[_GS3 + v]
        p0 += state[_IN0 + v]
        p1 += state[_IN1 + v]
        p2 += state[_IN2 + v]
        p3 += state[_IN3 + v]
        state[_PH0 + v] = p0 - math.floor(p0)
        state[_PH1 + v] = p1 - math.floor(p1)
        state[_PH2 + v] = p2 - math.floor(p2)
        state[_PH3 + v] = p3 - math.floor(p3)



@njit(**JIT)
def _render(state, bus, ol, orr, i0, n):
    """Every voice over [i0, i0 + n), into the out rows (which hold 0 there)."""
    hi = np.uint64(((int(state[H_HI]) + 3) // 4) * 4)
    if hi == 0:
        return
    fbk = state[X_FBK]
    m10 = state[X_M10]
    m20 = state[X_M20]
    m21 = state[X_M21]
    m30 = state[X_M30]
    m31 = state[X_M31]
    m32 = state[X_M32]
    c0 = state[X_C0]
    c1 = state[X_C1]
    c2 = state[X_C2]
    c3 = state[X_C3]
    for i in range(i0, i0 + n):
        _voices(state, hi, fbk, m10, m20, m21, m30, m31, m32, c0, c1, c2, c3)
        bus[ol, i] = poly.lane_sum(state, _OUTL, hi)
        bus[orr, i] = poly.lane_sum(state, _OUTR, hi)


@njit(**JIT)
def _op_coefs(state, params, j, n, sample_rate):
    """Operator slot j's (attack, decay, release) coefficients for steps of n samples."""
    b = N + P_OPS + (3 - j) * NF
    return adsr_coefs(params[b + F_ATTACK], params[b + F_DECAY], params[b + F_RELEASE], n,
                      sample_rate)


@njit(**JIT)
def _plan(state, params, v, seg, r_left, sample_rate, at_tick):
    """Voice v's control values for the next `seg` samples (ramps rewound by r_left)."""
    c = params[N:]
    start = state[at(R_START, v)]
    if start == START_FRESH:
        mm.mod_voice_start(state, params, N, MP, v, True)
        ph = start_phase(state[at(R_UIDX, v)])
        for j in range(OPS):
            state[at(F_PH + j, v)] = ph
            state[at(F_G + j, v)] = 0.0
            state[at(E_LEV + j, v)] = 0.0
            state[at(E_SL + j, v)] = 0.0
            state[at(E_ST + j, v)] = ST_ATTACK
        state[at(F_Y1, v)] = state[at(F_Y2, v)] = 0.0
        state[at(F_OL, v)] = state[at(F_OR, v)] = 0.0
        r_left = 0.0
    elif start == START_RETRIG:
        mm.mod_voice_start(state, params, N, MP, v, False)
        for j in range(OPS):
            state[at(E_ST + j, v)] = ST_ATTACK
    state[at(R_START, v)] = START_NONE
    state[at(R_DIRTY, v)] = 0.0
    pitch, fade = motion(state, v, seg, r_left, steal_samples(sample_rate))
    gate = state[at(R_STATE, v)] == V_ON
    menv = 0.0
    if state[mm.MX_NEED_ENV] != 0.0:       # the mod envelope runs while a slot reads it
        if at_tick:
            ma = state[mm.MX_ENV]
            md = state[mm.MX_ENV + 1]
            mr = state[mm.MX_ENV + 2]
        else:
            ma, md, mr = mm.env_coefs(params, N, MP, seg, sample_rate)
        menv = mm.mod_env_step(state, params, N, MP, v, seg, r_left, gate, ma, md, mr)
    mm.mod_eval(state, v, menv, pitch)
    mm.mod_voice_rates(state, v)
    upos = state[at(R_UPOS, v)]
    semis = pitch + (state[H_BEND_CUR] + state[X_VIBK] * state[at(mm.L_VAL, v)]) \
        + upos * 0.005 * clampf(c[P_DETUNE] + dest(state, D_DETUNE), 0.0, 200.0) \
        + dest(state, D_PITCH)
    f0 = 440.0 / sample_rate * math.pow(2.0, (clampf(semis, -100.0, 200.0) - 69.0) / 12.0)
    vel = state[at(R_VEL, v)]
    boost = clampf(1.0 + clampf(c[P_AT_INDEX], 0.0, 1.0) * state[H_AT_CUR]
                   + dest(state, D_INDEX), 0.0, 16.0)
    alg = int(clampf(c[P_ALG], 0.0, 7.0))
    for j in range(OPS):
        b = P_OPS + (3 - j) * NF
        if at_tick:
            ca = state[X_COEF + 3 * j]
            cd = state[X_COEF + 3 * j + 1]
            cr = state[X_COEF + 3 * j + 2]
        else:
            ca, cd, cr = _op_coefs(state, params, j, seg, sample_rate)
        e = rewind(state[at(E_LEV + j, v)], state[at(E_SL + j, v)], r_left)
        e1, st = adsr_step(e, state[at(E_ST + j, v)], gate, ca, cd, cr,
                           clampf(c[b + F_SUSTAIN], 0.0, 1.0))
        state[at(E_LEV + j, v)] = e1
        state[at(E_SL + j, v)] = (e1 - e) / seg
        state[at(E_ST + j, v)] = st
        ratio = state[X_RATIO + j]
        dr = dest(state, D_RATIO + 3 - j)
        if dr != 0.0:
            ratio = clampf(ratio + dr, 0.0, 40.0)
        state[at(F_INC + j, v)] = min(f0 * ratio, 0.5)
        s = clampf(c[b + F_VEL], 0.0, 1.0)
        g = clampf(c[b + F_LEVEL] + dest(state, D_LEVEL + 3 - j), 0.0, 1.0) * e1 \
            * ((1.0 - s) + s * vel)
        if ALG_CAR[alg, j] == 0.0:
            g *= boost
        state[at(F_GS + j, v)] = (g - state[at(F_G + j, v)]) / seg
    level = fade * state[X_OUTG] * mm.amp_gain(dest(state, D_AMP))
    pl, pr = pan_gains(upos * clampf(c[P_SPREAD], 0.0, 1.0) + dest(state, D_PAN))
    state[at(F_OLS, v)] = (level * pl - state[at(F_OL, v)]) / seg
    state[at(F_ORS, v)] = (level * pr - state[at(F_OR, v)]) / seg


@njit(**JIT)
def _silent(state, v, alg):
    """Every carrier's envelope has ended."""
    for j in range(OPS):
        if ALG_CAR[alg, j] != 0.0 and state[at(E_ST + j, v)] != ST_IDLE:
            return False
    return True


@njit(**JIT)
def _tick(state, params, sample_rate, tempo, beat):
    poly.smooth_coefs(state, X_PCOEF, SMOOTH_S, sample_rate)
    poly.smooth_tick(state, params, N, X_PCOEF)
    c = params[N:]
    vibk = state[H_WHEEL_CUR] * clampf(c[P_VIBRATO], 0.0, 2.0)
    state[X_VIBK] = vibk
    mm.mod_tick(state, params, N, MP, sample_rate, tempo, beat, vibk != 0.0)
    alg = choice(params, P_ALG, 8)
    params[N + P_ALG] = alg
    k = MOD_INDEX / TWO_PI                 # cycles of phase per unit of modulator output
    state[X_M10] = k * ALG_MOD[alg, 1, 0]
    state[X_M20] = k * ALG_MOD[alg, 2, 0]
    state[X_M21] = k * ALG_MOD[alg, 2, 1]
    state[X_M30] = k * ALG_MOD[alg, 3, 0]
    state[X_M31] = k * ALG_MOD[alg, 3, 1]
    state[X_M32] = k * ALG_MOD[alg, 3, 2]
    ncar = 0.0
    for j in range(OPS):
        state[X_C0 + j] = ALG_CAR[alg, j]
        ncar += ALG_CAR[alg, j]
    state[X_FBK] = clampf(c[P_FEEDBACK], 0.0, 1.0) * FEEDBACK_MAX / TWO_PI * 0.5
    state[X_OUTG] = math.pow(10.0, clampf(c[P_GAIN_DB], -48.0, 12.0) / 20.0) / max(ncar, 1.0)
    for j in range(OPS):
        b = P_OPS + (3 - j) * NF
        state[X_RATIO + j] = clampf(c[b + F_RATIO], 0.125, 32.0) \
            * math.pow(2.0, clampf(c[b + F_DETUNE], -50.0, 50.0) / 1200.0)
        ca, cd, cr = _op_coefs(state, params, j, CHUNK, sample_rate)
        state[X_COEF + 3 * j] = ca
        state[X_COEF + 3 * j + 1] = cd
        state[X_COEF + 3 * j + 2] = cr
    poly.tick_voices(state, params, sample_rate)
    for v in range(int(state[H_HI])):
        st = state[at(R_STATE, v)]
        if st == V_OFF and state[at(R_START, v)] == 0.0 and _silent(state, v, alg):
            poly.free_voice(state, v)
            st = V_IDLE
        if st == V_IDLE:
            _mute(state, v)
            continue
        if state[at(R_START, v)] != START_FRESH:
            mm.mod_voice_tick(state, params, N, MP, v)
        _plan(state, params, v, float(CHUNK), 0.0, sample_rate, True)
    poly.shrink(state)


@njit(**JIT)
def _mute(state, v):
    """An idle voice renders exact zeros (the voice loop runs over idle voices too)."""
    for j in range(OPS):
        state[at(F_G + j, v)] = 0.0
        state[at(F_GS + j, v)] = 0.0
    state[at(F_OL, v)] = state[at(F_OLS, v)] = 0.0
    state[at(F_OR, v)] = state[at(F_ORS, v)] = 0.0


@njit(**JIT)
def event(state, params, kind, a, b, c, sample_rate):
    sr = clampf(sample_rate, 1000.0, 1e6)
    stolen = poly.poly_event(state, params, kind, a, b, c, sr)
    cpos = clampf(state[H_CPOS], 0.0, CHUNK - 1.0)
    if cpos > 0.0:
        seg = CHUNK - cpos
        for v in range(int(state[H_HI])):
            if state[at(R_DIRTY, v)] != 0.0 and state[at(R_STATE, v)] != V_IDLE:
                _plan(state, params, v, seg, seg, sr, False)
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
