"""The analog voice's parameters (engine.rt.voice, played as the `analog` instrument unit,
engine.rt.units.analog): their indices for the kernels, and their declarations.

They are `engine.rt.units.base.Param`s like every unit's (one parameter system): a name with its
unit, range, default, curve and smoothing. The kernels clamp to the range too, so no value can
make the audio unsafe. Patches (`patches/*.toml`) are validated against `SYNTH_SPECS` on the
control side before they reach the audio thread.
"""
from engine.rt.layout import MAX_POLYPHONY
from engine.rt.param import Param, declare

WAVES = ("saw", "pulse", "triangle", "sine")
FILTERS = ("ladder", "svf_lowpass", "svf_bandpass", "svf_highpass")
LFO_SHAPES = ("sine", "triangle")
NOISE_COLORS = ("white", "pink", "brown")

_SYNTH = [
    # name                  default  lo      hi       choices
    ("osc1_wave",            0.0,    0.0,    3.0,     WAVES),
    ("osc2_wave",            0.0,    0.0,    3.0,     WAVES),
    ("osc2_semitones",       0.0,  -24.0,   24.0,     None),
    ("detune_cents",         7.0,    0.0,  100.0,     None),
    ("osc2_level",           1.0,    0.0,    1.0,     None),
    ("pulse_width",          0.5,   0.05,   0.95,     None),
    ("noise_level",          0.0,    0.0,    1.0,     None),
    ("filter_type",          0.0,    0.0,    3.0,     FILTERS),
    ("cutoff_hz",         2000.0,   20.0, 20000.0,    None),
    ("resonance",            0.2,    0.0,    1.0,     None),
    ("drive",                1.0,    0.1,   10.0,     None),
    ("key_tracking",         0.5,    0.0,    1.0,     None),
    ("filter_env_octaves",   2.0,   -8.0,    8.0,     None),
    ("velocity_to_cutoff_octaves", 1.0, 0.0,  4.0,    None),
    ("amp_attack_s",        0.005, 0.0005,  10.0,     None),
    ("amp_decay_s",          0.3,  0.001,   20.0,     None),
    ("amp_sustain",          0.7,    0.0,    1.0,     None),
    ("amp_release_s",        0.3,  0.002,   20.0,     None),
    ("filter_attack_s",     0.005, 0.0005,  10.0,     None),
    ("filter_decay_s",       0.4,  0.001,   20.0,     None),
    ("filter_sustain",       0.3,    0.0,    1.0,     None),
    ("filter_release_s",     0.4,  0.002,   20.0,     None),
    ("lfo_rate_hz",          5.0,   0.01,   40.0,     None),
    ("lfo_shape",            0.0,    0.0,    1.0,     LFO_SHAPES),
    ("lfo_to_pitch_semitones", 0.0,  0.0,   12.0,     None),
    ("lfo_to_cutoff_octaves", 0.0,   0.0,    4.0,     None),
    ("mod_wheel_to_vibrato_semitones", 0.5, 0.0, 2.0, None),
    ("velocity_sensitivity", 0.7,    0.0,    1.0,     None),
    ("gain_db",            -12.0,  -60.0,   12.0,     None),
    ("pitch_bend_range_semitones", 2.0, 0.0, 24.0,    None),
    ("noise_color",          0.0,    0.0,    2.0,     NOISE_COLORS),
]
(P_OSC1_WAVE, P_OSC2_WAVE, P_OSC2_SEMI, P_DETUNE_CENTS, P_OSC2_LEVEL, P_PULSE_WIDTH, P_NOISE,
 P_FILTER_TYPE, P_CUTOFF_HZ, P_RESONANCE, P_DRIVE, P_KEY_TRACKING, P_FENV_OCT, P_VEL_CUTOFF_OCT,
 P_AMP_A, P_AMP_D, P_AMP_S, P_AMP_R, P_FLT_A, P_FLT_D, P_FLT_S, P_FLT_R, P_LFO_RATE,
 P_LFO_SHAPE, P_LFO_PITCH, P_LFO_CUTOFF, P_MOD_VIBRATO, P_VEL_SENS, P_GAIN_DB,
 P_BEND_RANGE, P_NOISE_COLOR) = range(len(_SYNTH))

# Parameters that select code paths or shape envelopes apply at once; all others are
# smoothed per sample in the kernel (SMOOTH_S time constant).
SWITCHED = frozenset({P_OSC1_WAVE, P_OSC2_WAVE, P_FILTER_TYPE})
"""Parameters that change the voice's circuit: applied at the bottom of a short dip of the
part's level (SWITCH_S down, then up again), so a waveform or filter change never clicks."""
SWITCH_S = 0.003
SMOOTH_S = 0.015

_LOG = {"cutoff_hz", "amp_attack_s", "amp_decay_s", "amp_release_s", "filter_attack_s",
        "filter_decay_s", "filter_release_s", "lfo_rate_hz", "drive"}
P_BEND_ST = len(_SYNTH)
P_MOD = P_BEND_ST + 1
P_POLYPHONY = P_MOD + 1
NPARAMS = P_POLYPHONY + 1
STEPPED = frozenset({P_OSC1_WAVE, P_OSC2_WAVE, P_FILTER_TYPE, P_LFO_SHAPE, P_AMP_A, P_AMP_D,
                     P_AMP_R, P_FLT_A, P_FLT_D, P_FLT_R, P_BEND_RANGE, P_POLYPHONY,
                     P_NOISE_COLOR})


def _param(k, name, default, lo, hi, choices):
    return Param(name, lo, hi, default,
                 curve="choice" if choices else "log" if name in _LOG else "lin",
                 smooth_s=0.0 if k in STEPPED else SMOOTH_S, choices=choices)


PARAMS = declare([_param(k, *row) for k, row in enumerate(_SYNTH)] + [
    # Two performance controls live beside the patch parameters and are smoothed like them,
    # but are played rather than saved in a patch: pitch bend (semitones; a K_PITCH_BEND
    # event sets it to its -1..1 times pitch_bend_range_semitones) and the mod wheel (0..1).
    Param("bend_st", -48.0, 48.0, 0.0, smooth_s=SMOOTH_S,
          doc="pitch bend now, in semitones (played: pitch-bend events set it)"),
    Param("mod_wheel", 0.0, 1.0, 0.0, smooth_s=SMOOTH_S,
          doc="mod wheel now (played: mod-wheel events set it)"),
    Param("polyphony", 1.0, float(MAX_POLYPHONY), 16.0, smooth_s=0.0,
          doc="voices a note-on may use before it steals (rounded up to a multiple of 8)"),
])
assert [q.index for q in PARAMS[P_BEND_ST:]] == [P_BEND_ST, P_MOD, P_POLYPHONY]
SYNTH_SPECS = {q.name: q for q in PARAMS[:len(_SYNTH)]}
"""The patch parameters (what an analog patch file sets), by name."""
