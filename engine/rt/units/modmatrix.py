"""The modulation matrix every instrument unit shares: three modulators (two LFOs and a random
sample-and-hold), a mod envelope, per-note sources and eight routing slots (AUDIO THREAD
kernels; the Params are declared on the control side).

(A module of its own beside engine.rt.units.poly: poly is about voices, this about what
moves them; both instruments import the two.)

Sources (`SOURCES`, each a value per voice, evaluated once per control period):
    mod_env     the mod ADSR (mod_attack_ms .. mod_release_ms), 0..1
    lfo1, lfo2  the LFOs, -1..1: `lfo_*` (LFO 1, also the one the instrument's own vibrato
                and position knobs use) and `lfo2_*`
    sh          the random sample-and-hold (`sh_*`): a new value in -1..1 every cycle,
                optionally gliding (`sh_smooth`: the share of a step spent moving)
    velocity    the note's, 0..1
    key         key tracking, (pitch - 60) / 12 (the gliding pitch: octaves from middle C)
    mod_wheel, aftertouch   0..1, smoothed (engine.rt.units.poly)
    random      one value per note in -1..1 (its unison voices share it), from `mod_seed`
                and the note's number among the unit's note-ons since reset (poly R_NKEY):
                the same for any block split, live or offline
An LFO (and the S&H) runs at `<name>_hz`, or (`<name>_sync` = beats) once every
`<name>_beats` beats at the tempo of the graph's context row (120 BPM without one). Its phase
(`<name>_trigger`): free (one phase for the unit: a note starts where it stands), note (each
note starts it at `<name>_phase`), or beat (locked to the context row's beat position:
phase = beats played x cycles per beat + `<name>_phase`; the unit's own sample clock at 120
BPM without a context row; with one, the beat is read at each span's start, so block cuts
move it by rounding only, and a cycle's start within 1e-9 of a whole number is snapped onto
it). Shapes: sine, triangle (both start at 0 rising), saw (-1 rising to 1), square (+1 then
-1), sample_hold (a new random value each cycle; free and beat LFOs give every voice the same
values, note LFOs each note its own).

Slots: `mod<k>_source`, `mod<k>_via`, `mod<k>_dest`, `mod<k>_amount` (k = 1..8): each period
every slot whose source is not off and whose amount is not 0 adds amount x source (x via,
when a via source is set: the mod wheel as via makes wheel-controlled vibrato) to its
destination. Amounts are in the destination's own unit (semitones, dB, octaves...) and are
smoothed like every parameter; at exactly 0 a slot is skipped, so it is bit for bit as if it
were not there. Destinations common to every instrument (`COMMON_DESTS`):
    pitch (semitones), amp (dB, at most +12), pan (-1..1 added to the voice's place), detune
    (cents added to unison_detune_cents), lfo1_rate, lfo2_rate, sh_rate (octaves, per voice:
    a free or note LFO whose rate is modulated runs its own phase; beat LFOs ignore it);
each instrument appends its own (cutoff, position, operator levels...).

Control rate: the unit's tick (engine.rt.units.poly) runs `mod_tick` (the modulators' unit
phases and values, the slot list, the envelope coefficients) and, per sounding voice,
`mod_voice_tick`; the instrument's plan of a voice runs `mod_env_step`, then `mod_eval` (the
destinations into the scratch slots MX_D + d), then `mod_voice_rates`. The instrument ramps
what it ramps per sample (levels, pan, the wavetable position) over the period and holds the
rest (pitch increments, filter coefficients) for its 16 samples. A free modulator keeps, per
voice, only its offset from the unit's phase (0 unless its rate was modulated), so a voice
costs nothing while its modulators are free, unread and at their own rate; a sine shared by
the voices is computed once per period for the unit. (FM's mod envelope, read by no fixed
knob, runs only while a slot reads it.)
"""
import math

import numpy as np
from numba import njit

from engine.rt.dsp import JIT
from engine.rt.units.base import Param, clampf
from engine.rt.units.poly import (CHUNK, H_AT_CUR, H_WHEEL_CUR, HDR, POLY_ROWS, R_NKEY, R_VEL,
                                  ST_ATTACK, X0, adsr_coefs, adsr_step, at, choice, rewind)

# ---- words ------------------------------------------------------------------------------------
SOURCES = ("off", "mod_env", "lfo1", "lfo2", "sh", "velocity", "key", "mod_wheel", "aftertouch",
           "random")
(S_OFF, S_ENV, S_LFO1, S_LFO2, S_SH, S_VEL, S_KEY, S_WHEEL, S_AT, S_RAND) = range(len(SOURCES))
NSRC = len(SOURCES)
COMMON_DESTS = ("off", "pitch", "amp", "pan", "detune", "lfo1_rate", "lfo2_rate", "sh_rate")
(D_OFF, D_PITCH, D_AMP, D_PAN, D_DETUNE, D_LFO1_RATE, D_LFO2_RATE, D_SH_RATE) = range(8)
NDEST_MAX = 24
NSLOTS = 8
SHAPES = ("sine", "triangle", "saw", "square", "sample_hold")
SH_SINE, SH_TRI, SH_SAW, SH_SQUARE, SH_SH = range(5)
TRIGGERS = ("free", "note", "beat")
T_FREE, T_NOTE, T_BEAT = range(3)
SYNCS = ("hz", "beats")
NGEN = 3                         # lfo1, lfo2, sh
GEN_NAMES = ("lfo", "lfo2", "sh")
AMP_MAX_DB = 12.0
RATE_OCT_MAX = 10.0
INC_MAX = 0.5                    # cycles per control period (a modulator at most fs / 32)

# ---- parameters ---------------------------------------------------------------------------------
# The matrix's parameters in its own order (MP_*); an instrument declares them where it likes
# (after its own, so that adding the matrix moved none of them) and hands the kernels `mp`,
# its `param_map`: mp[MP_x] is MP_x's index in the instrument's PARAMS.
G_HZ, G_SYNC, G_BEATS, G_SHAPE, G_TRIG, G_PHASE = range(6)
"""Fields of a modulator's parameters (the S&H's G_SHAPE field is `sh_smooth`)."""
NGF = 6
MP_GEN = 0                       # modulator j's field f: MP_GEN + NGF * j + f
MP_ENV = MP_GEN + NGF * NGEN     # mod envelope: attack, decay, sustain, release
MP_SEED = MP_ENV + 4
MP_SLOTS = MP_SEED + 1           # slot k (0..7): source, via, dest, amount
SL_SOURCE, SL_VIA, SL_DEST, SL_AMOUNT = range(4)
NMOD = MP_SLOTS + 4 * NSLOTS


def mod_params(lfo_hz=(0.01, 20.0, 1.0), dests=COMMON_DESTS, have=()):
    """Fresh Params for the matrix, in MP_* order, but for the names in `have` (parameters
    the instrument declared before it had a matrix, such as its LFO's rate `lfo_hz`).
    `lfo_hz`: LFO 1's rate range and default; `dests`: COMMON_DESTS, then the instrument's."""
    assert tuple(dests[:len(COMMON_DESTS)]) == COMMON_DESTS and len(dests) <= NDEST_MAX
    out = []
    for j, g in enumerate(GEN_NAMES):
        lo, hi, d = lfo_hz if j == 0 else ((0.01, 50.0, 1.0) if j == 1 else (0.01, 50.0, 4.0))
        what = ("LFO 1", "LFO 2", "the random S&H")[j]
        out += [
            Param(f"{g}_hz", lo, hi, d, curve="log", doc=f"{what}: rate (sync = hz)"),
            Param(f"{g}_sync", 0, 1, 0, curve="choice", smooth_s=0.0, choices=SYNCS,
                  doc=f"{what}: rate in Hz, or one cycle every {g}_beats beats"),
            Param(f"{g}_beats", 1.0 / 32.0, 64.0, 1.0 if j < 2 else 0.25, curve="log",
                  doc=f"{what}: cycle length in beats (sync = beats)"),
        ]
        if j < 2:
            out.append(Param(f"{g}_shape", 0, len(SHAPES) - 1, 0, curve="choice",
                             smooth_s=0.0, choices=SHAPES, doc=f"{what}: wave shape"))
        else:
            out.append(Param("sh_smooth", 0.0, 1.0, 0.0,
                             doc="share of each step the S&H spends gliding to its new value"))
        out += [
            Param(f"{g}_trigger", 0, 2, 0, curve="choice", smooth_s=0.0, choices=TRIGGERS,
                  doc=f"{what}: free running, restarted by each note, or locked to the beat"),
            Param(f"{g}_phase", 0.0, 1.0, 0.0, smooth_s=0.0,
                  doc=f"{what}: start phase (note) or offset from the beat (beat), cycles"),
        ]
    out += [
        Param("mod_attack_ms", 0.5, 10000.0, 3.0, curve="log", smooth_s=0.0),
        Param("mod_decay_ms", 1.0, 20000.0, 600.0, curve="log", smooth_s=0.0),
        Param("mod_sustain", 0.0, 1.0, 0.0),
        Param("mod_release_ms", 2.0, 20000.0, 300.0, curve="log", smooth_s=0.0),
        Param("mod_seed", 0.0, 65535.0, 0.0, smooth_s=0.0,
              doc="seed of the per-note random values and the sample-and-hold"),
    ]
    for k in range(1, NSLOTS + 1):
        out += [
            Param(f"mod{k}_source", 0, NSRC - 1, 0, curve="choice", smooth_s=0.0,
                  choices=SOURCES, doc=f"slot {k}: what modulates"),
            Param(f"mod{k}_via", 0, NSRC - 1, 0, curve="choice", smooth_s=0.0,
                  choices=SOURCES, doc=f"slot {k}: a second source scaling it (off: none)"),
            Param(f"mod{k}_dest", 0, len(dests) - 1, 0, curve="choice", smooth_s=0.0,
                  choices=tuple(dests), doc=f"slot {k}: what it modulates"),
            Param(f"mod{k}_amount", -48.0, 48.0, 0.0,
                  doc=f"slot {k}: destination units (semitones, dB, octaves...) per unit of "
                      f"source"),
        ]
    assert len(out) == NMOD
    return [p for p in out if p.name not in set(have)]


def param_map(params):
    """`mp` for an instrument's PARAMS (each matrix parameter found by its name)."""
    index = {p.name: p.index for p in params}
    return np.array([index[p.name] for p in mod_params()], dtype=np.int64)


# ---- header slots (after poly's) and voice rows (after poly's) -----------------------------------
MX_U = X0                        # modulator j: phase, increment, cycle, value, S&H glide coef
U_PH, U_INC, U_CYC, U_VAL, U_SHC = range(5)
MX_TRIG = MX_U + 5 * NGEN        # per modulator: trigger this period
MX_SHAPE = MX_TRIG + NGEN        # per modulator: shape this period
MX_NEED = MX_SHAPE + NGEN        # per modulator: 1.0 when its value is read this period
MX_NEED_RAND = MX_NEED + NGEN
MX_NEED_ENV = MX_NEED_RAND + 1   # 1.0 when a slot reads the mod envelope
MX_RATED = MX_NEED_ENV + 1       # per modulator: 1.0 when a slot modulates its rate
MX_WORK = MX_RATED + NGEN        # 1.0 when any voice's modulators need their own work
MX_SEED = MX_WORK + 1
MX_TICKS = MX_SEED + 1           # control periods since reset (the beat without a context row)
MX_ENV = MX_TICKS + 1            # mod envelope attack, decay, release coefficients (CHUNK)
MX_NACT = MX_ENV + 3
MX_ACT = MX_NACT + 1             # active slot a: source, via, dest, amount
MX_SRC = MX_ACT + 4 * NSLOTS     # scratch: one voice's sources
MX_D = MX_SRC + NSRC             # scratch: one voice's destinations (read by the instrument)
X_FREE = MX_D + NDEST_MAX        # the instrument's own header slots start here
assert X_FREE < HDR

L_PH = POLY_ROWS                 # modulator j's row: base + j. A note modulator: its phase,
L_INC = L_PH + NGEN              # increment per period and cycle; a free one: its offset from
L_CYC = L_INC + NGEN             # the unit's phase and cycle, and its extra increment (0 but
L_VAL = L_CYC + NGEN             # while its rate is modulated); a beat one: the unit's. Then
                                 # its value, when read
ME_LEV, ME_SL, ME_ST = range(L_VAL + NGEN, L_VAL + NGEN + 3)
ROWS_END = ME_ST + 1             # the instrument's own voice rows start here

TWO_PI = 2.0 * math.pi
CYC_WRAP = 4294967296.0          # cycle counters wrap at 2^32
_K1 = np.uint64(0x9E3779B97F4A7C15)
_K2 = np.uint64(0xBF58476D1CE4E5B9)
_K3 = np.uint64(0x94D049BB133111EB)


# ---- helpers ------------------------------------------------------------------------------------

@njit(inline="always", **JIT)
def _mix(z):
    """splitmix64's finaliser."""
    z = (z ^ (z >> np.uint64(30))) * _K2
    z = (z ^ (z >> np.uint64(27))) * _K3
    return z ^ (z >> np.uint64(31))


@njit(inline="always", **JIT)
def _u(x):
    """A whole number (a float) as a uint64 in 0..2^32 - 1, wrapped (NaN: 0)."""
    x = clampf(x, 0.0, 2.0 ** 53)
    return np.uint64(clampf(x - CYC_WRAP * math.floor(x / CYC_WRAP), 0.0, CYC_WRAP - 1.0))


@njit(**JIT)
def hash01(a, b, c, d):
    """A uniform value in [0, 1) from four whole numbers 0..2^32 - 1 (floats; clamped)."""
    z = _mix(_u(a) * _K1 + _u(b))
    z = _mix(z * _K1 + _u(c))
    z = _mix(z * _K1 + _u(d))
    return np.float64(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(inline="always", **JIT)
def shape_value(shape, ph, cyc, seed, key, j):
    """Modulator j's value at phase ph (0..1) of cycle cyc (key: the note, for note LFOs)."""
    if shape == SH_SINE:
        return math.sin(TWO_PI * ph)
    if shape == SH_TRI:
        return 4.0 * ph if ph < 0.25 else (2.0 - 4.0 * ph if ph < 0.75 else 4.0 * ph - 4.0)
    if shape == SH_SAW:
        return 2.0 * ph - 1.0
    if shape == SH_SQUARE:
        return 1.0 if ph < 0.5 else -1.0
    return 2.0 * hash01(seed, key, cyc, j + 1.0) - 1.0


@njit(inline="always", **JIT)
def _wrap(ph, cyc):
    """(phase in [0, 1), cycle count) after the phase moved past whole cycles."""
    f = math.floor(ph)
    if f != 0.0:
        ph -= f
        cyc += f
        cyc -= CYC_WRAP * math.floor(cyc / CYC_WRAP)
    return ph, cyc


@njit(inline="always", **JIT)
def _sh_coef(smooth, inc):
    """The S&H glide coefficient per period: 95 % of a step in `smooth` of its length."""
    if smooth <= 0.0 or inc <= 0.0:
        return 1.0
    return 1.0 - math.exp(-3.0 * inc / smooth)


@njit(**JIT)
def env_coefs(params, n, mp, seg, sample_rate):
    """The mod envelope's (attack, decay, release) coefficients for steps of seg samples."""
    c = params[n:]
    return adsr_coefs(c[mp[MP_ENV]], c[mp[MP_ENV + 1]], c[mp[MP_ENV + 3]], seg, sample_rate)


# ---- the unit's tick ------------------------------------------------------------------------

@njit(**JIT)
def mod_tick(state, params, n, mp, sample_rate, tempo, beat, need_lfo1):
    """The first sample of a control period (after the parameters' smoothing): the
    modulators' unit phases and values, the active slots, the envelope coefficients. `beat`:
    the beat position at this sample (NaN: none, the unit's own clock at `tempo`);
    `need_lfo1`: the instrument reads LFO 1 itself this period."""
    c = params[n:]
    if not beat == beat:
        beat = state[MX_TICKS] * CHUNK * tempo / (60.0 * sample_rate)
    ticks = state[MX_TICKS] + 1.0
    state[MX_TICKS] = ticks if ticks < 2.0 ** 52 else 0.0
    seed = float(int(clampf(c[mp[MP_SEED]], 0.0, 65535.0)))
    state[MX_SEED] = seed

    # the slots
    nact = 0
    need0 = need_lfo1
    need1 = need2 = needr = neede = False
    work = False
    for j in range(NGEN):
        work |= state[MX_RATED + j] != 0.0     # a rate modulation just ended: its voices reset
        state[MX_RATED + j] = 0.0
    for k in range(NSLOTS):
        b = MP_SLOTS + 4 * k
        src = choice(params, mp[b + SL_SOURCE], NSRC)
        amt = clampf(c[mp[b + SL_AMOUNT]], -48.0, 48.0)
        if src == S_OFF or amt == 0.0:
            continue
        via = choice(params, mp[b + SL_VIA], NSRC)
        dst = choice(params, mp[b + SL_DEST], NDEST_MAX)
        if dst == D_OFF:
            continue
        a = MX_ACT + 4 * nact
        state[a] = src
        state[a + 1] = via
        state[a + 2] = dst
        state[a + 3] = amt
        nact += 1
        need0 |= src == S_LFO1 or via == S_LFO1
        need1 |= src == S_LFO2 or via == S_LFO2
        need2 |= src == S_SH or via == S_SH
        needr |= src == S_RAND or via == S_RAND
        neede |= src == S_ENV or via == S_ENV
        if dst >= D_LFO1_RATE and dst < D_LFO1_RATE + NGEN:
            state[MX_RATED + dst - D_LFO1_RATE] = 1.0
            work = True
    state[MX_NACT] = nact
    state[MX_NEED_ENV] = 1.0 if neede else 0.0
    state[MX_NEED] = 1.0 if need0 else 0.0
    state[MX_NEED + 1] = 1.0 if need1 else 0.0
    state[MX_NEED + 2] = 1.0 if need2 else 0.0
    state[MX_NEED_RAND] = 1.0 if needr else 0.0
    for d in range(NDEST_MAX):
        state[MX_D + d] = 0.0

    # the modulators
    for j in range(NGEN):
        b = MP_GEN + NGF * j
        u = MX_U + 5 * j
        trig = choice(params, mp[b + G_TRIG], 3)
        if choice(params, mp[b + G_SYNC], 2) == 1:
            cpb = 1.0 / clampf(c[mp[b + G_BEATS]], 1.0 / 32.0, 64.0)     # cycles per beat
            cps = cpb * tempo / 60.0
        else:
            cps = clampf(c[mp[b + G_HZ]], 0.001, 100.0)
            cpb = cps * 60.0 / tempo
        inc = min(CHUNK * cps / sample_rate, INC_MAX)
        if trig == T_BEAT:
            x = beat * cpb + clampf(c[mp[b + G_PHASE]], 0.0, 1.0)
            if not abs(x) < 1e12:
                x = 0.0
            r = math.floor(x + 0.5)
            if abs(x - r) < 1e-9:       # exactly on a cycle's start whatever the block cuts
                x = r
            f = math.floor(x)
            ph = x - f
            cyc = f - CYC_WRAP * math.floor(f / CYC_WRAP)
        else:
            ph, cyc = _wrap(state[u + U_PH] + state[u + U_INC], state[u + U_CYC])
        state[u + U_PH] = ph
        state[u + U_CYC] = cyc
        state[u + U_INC] = inc
        state[MX_TRIG + j] = trig
        work |= trig == T_NOTE or state[MX_NEED + j] != 0.0
        if j < 2:
            shape = choice(params, mp[b + G_SHAPE], len(SHAPES))
            state[MX_SHAPE + j] = shape
            state[u + U_VAL] = shape_value(shape, ph, cyc, seed, 0.0, j)
        else:
            state[MX_SHAPE + j] = SH_SH
            shc = _sh_coef(clampf(c[mp[b + G_SHAPE]], 0.0, 1.0), inc)
            state[u + U_SHC] = shc
            target = shape_value(SH_SH, ph, cyc, seed, 0.0, j)
            val = state[u + U_VAL]
            state[u + U_VAL] = val + shc * (target - val)

    state[MX_WORK] = 1.0 if work else 0.0
    ma, md, mr = env_coefs(params, n, mp, CHUNK, sample_rate)
    state[MX_ENV] = ma
    state[MX_ENV + 1] = md
    state[MX_ENV + 2] = mr


# ---- per voice -------------------------------------------------------------------------------

@njit(inline="always", **JIT)
def mod_voice_tick(state, params, n, mp, v):
    """Voice v's modulators one period on (their phases, then the values read this period).
    Not for a voice about to start fresh (`mod_voice_start` sets it up). Nothing to do while
    every modulator is free (or beat-locked), unread and at its own rate: the voices' phases
    are then the unit's."""
    if state[MX_WORK] == 0.0:
        return
    c = params[n:]
    seed = state[MX_SEED]
    for j in range(NGEN):
        u = MX_U + 5 * j
        trig = state[MX_TRIG + j]
        if trig == T_NOTE or (trig == T_FREE and state[at(L_INC + j, v)] != 0.0):
            ph, cyc = _wrap(state[at(L_PH + j, v)] + state[at(L_INC + j, v)],
                            state[at(L_CYC + j, v)])
            state[at(L_PH + j, v)] = ph
            state[at(L_CYC + j, v)] = cyc
        if state[MX_NEED + j] == 0.0:
            continue
        key = 0.0
        inc = state[u + U_INC]
        if trig == T_NOTE:
            ph = state[at(L_PH + j, v)]
            cyc = state[at(L_CYC + j, v)]
            key = state[at(R_NKEY, v)]
            inc = state[at(L_INC + j, v)]
        elif trig == T_FREE and (state[at(L_PH + j, v)] != 0.0 or state[at(L_CYC + j, v)] != 0.0
                                 or state[at(L_INC + j, v)] != 0.0):
            cyc = state[u + U_CYC] + state[at(L_CYC + j, v)]
            ph, cyc = _wrap(state[u + U_PH] + state[at(L_PH + j, v)],
                            cyc - CYC_WRAP if cyc >= CYC_WRAP else cyc)
            inc += state[at(L_INC + j, v)]
        else:                               # the unit's phase: its value
            state[at(L_VAL + j, v)] = state[u + U_VAL]
            continue
        val = shape_value(state[MX_SHAPE + j], ph, cyc, seed, key, j)
        if j == 2:
            old = state[at(L_VAL + j, v)]
            shc = state[u + U_SHC] if inc == state[u + U_INC] else \
                _sh_coef(clampf(c[mp[MP_GEN + NGF * j + G_SHAPE]], 0.0, 1.0), inc)
            val = old + shc * (val - old)
        state[at(L_VAL + j, v)] = val


@njit(**JIT)
def mod_voice_start(state, params, n, mp, v, fresh):
    """A voice starts (fresh: from rest; else a retrigger): its note modulators restart at
    their phase, free ones join the unit's; a fresh voice's envelope starts from 0."""
    c = params[n:]
    seed = state[MX_SEED]
    for j in range(NGEN):
        u = MX_U + 5 * j
        if state[MX_TRIG + j] == T_NOTE:
            ph = clampf(c[mp[MP_GEN + NGF * j + G_PHASE]], 0.0, 1.0)
            ph = 0.0 if ph >= 1.0 else ph
            state[at(L_PH + j, v)] = ph
            state[at(L_CYC + j, v)] = 0.0
            state[at(L_INC + j, v)] = state[u + U_INC]
            state[at(L_VAL + j, v)] = shape_value(state[MX_SHAPE + j], ph, 0.0, seed,
                                                  state[at(R_NKEY, v)], j)
        elif fresh:
            state[at(L_PH + j, v)] = 0.0
            state[at(L_CYC + j, v)] = 0.0
            state[at(L_INC + j, v)] = 0.0
            state[at(L_VAL + j, v)] = state[u + U_VAL]
    if fresh:
        state[at(ME_LEV, v)] = state[at(ME_SL, v)] = 0.0
    state[at(ME_ST, v)] = ST_ATTACK


@njit(inline="always", **JIT)
def mod_env_step(state, params, n, mp, v, seg, r_left, gate, ma, md, mr):
    """Voice v's mod envelope over the next seg samples (rewound by r_left): its level at the
    end of them."""
    m = rewind(state[at(ME_LEV, v)], state[at(ME_SL, v)], r_left)
    m1, mst = adsr_step(m, state[at(ME_ST, v)], gate, ma, md, mr,
                        clampf(params[n + mp[MP_ENV + 2]], 0.0, 1.0))
    state[at(ME_LEV, v)] = m1
    state[at(ME_SL, v)] = (m1 - m) / seg
    state[at(ME_ST, v)] = mst
    return m1


@njit(inline="always", **JIT)
def mod_eval(state, v, env, pitch):
    """Voice v's destinations into MX_D + d (all 0 when no slot is active): `env` its mod
    envelope, `pitch` its pitch (semitones, gliding). Returns the number of active slots."""
    nact = int(state[MX_NACT])
    if nact == 0:
        return 0
    s = MX_SRC
    state[s + S_OFF] = 0.0
    state[s + S_ENV] = env
    state[s + S_LFO1] = state[at(L_VAL, v)]
    state[s + S_LFO2] = state[at(L_VAL + 1, v)]
    state[s + S_SH] = state[at(L_VAL + 2, v)]
    state[s + S_VEL] = state[at(R_VEL, v)]
    state[s + S_KEY] = (pitch - 60.0) * (1.0 / 12.0)
    state[s + S_WHEEL] = state[H_WHEEL_CUR]
    state[s + S_AT] = state[H_AT_CUR]
    state[s + S_RAND] = 0.0
    if state[MX_NEED_RAND] != 0.0:
        state[s + S_RAND] = 2.0 * hash01(state[MX_SEED], state[at(R_NKEY, v)], 0.0, 0.0) - 1.0
    for d in range(NDEST_MAX):
        state[MX_D + d] = 0.0
    for a in range(nact):
        b = MX_ACT + 4 * a
        m = state[b + 3] * state[s + int(state[b])]
        via = int(state[b + 1])
        if via != S_OFF:
            m *= state[s + via]
        d = MX_D + int(state[b + 2])
        state[d] = state[d] + m
    return nact


@njit(inline="always", **JIT)
def mod_voice_rates(state, v):
    """Voice v's modulator increments for this period (after `mod_eval`): a note
    modulator's own, a free one's extra (0 at its own rate)."""
    if state[MX_WORK] == 0.0:
        return
    for j in range(NGEN):
        trig = state[MX_TRIG + j]
        if trig == T_BEAT:
            continue
        inc = state[MX_U + 5 * j + U_INC]
        fast = inc
        rm = state[MX_D + D_LFO1_RATE + j]
        if rm != 0.0:
            fast = min(inc * math.exp(math.log(2.0) * clampf(rm, -RATE_OCT_MAX, RATE_OCT_MAX)),
                       INC_MAX)
        state[at(L_INC + j, v)] = fast if trig == T_NOTE else fast - inc


@njit(inline="always", **JIT)
def dest(state, d):
    """Destination d's value for the voice `mod_eval` last evaluated."""
    return state[MX_D + d]


@njit(inline="always", **JIT)
def amp_gain(db):
    """The level factor of an amp modulation in dB (exactly 1 at 0)."""
    if db == 0.0:
        return 1.0
    return math.exp(clampf(db, -240.0, AMP_MAX_DB) * (math.log(10.0) / 20.0))
