"""Synth-part and mixer parameters: indices used by the kernels, and their specs.

Every parameter has a name with its unit, a default, a valid range and whether the kernel
smooths it. The kernels clamp to the range too, so no value can make the audio unsafe.
Patches (`patches/*.toml`) are validated against `SYNTH_SPECS` on the control side before
they reach the audio thread. (The mixer is units on the graph: engine.control.graph.)
"""


class Spec:
    """One parameter: name (with its unit), index, default, valid range, choice words."""
    __slots__ = ("name", "index", "default", "lo", "hi", "choices")

    def __init__(self, name, index, default, lo, hi, choices):
        self.name, self.index, self.default = name, index, default
        self.lo, self.hi, self.choices = lo, hi, choices

    def __repr__(self):
        return f"Spec({self.name!r}, {self.index}, {self.default}, {self.lo}..{self.hi})"

WAVES = ("saw", "pulse", "triangle", "sine")
FILTERS = ("ladder", "svf_lowpass", "svf_bandpass", "svf_highpass")
LFO_SHAPES = ("sine", "triangle")

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
]
SYNTH_SPECS = {n: Spec(n, i, d, lo, hi, ch) for i, (n, d, lo, hi, ch) in enumerate(_SYNTH)}
# Two performance controls live beside the patch parameters and are smoothed like them, but
# are played rather than saved in a patch: pitch bend (semitones) and the mod wheel (0..1).
P_BEND_ST = len(_SYNTH)
P_MOD = P_BEND_ST + 1
NPARAMS = P_MOD + 1

(P_OSC1_WAVE, P_OSC2_WAVE, P_OSC2_SEMI, P_DETUNE_CENTS, P_OSC2_LEVEL, P_PULSE_WIDTH, P_NOISE,
 P_FILTER_TYPE, P_CUTOFF_HZ, P_RESONANCE, P_DRIVE, P_KEY_TRACKING, P_FENV_OCT, P_VEL_CUTOFF_OCT,
 P_AMP_A, P_AMP_D, P_AMP_S, P_AMP_R, P_FLT_A, P_FLT_D, P_FLT_S, P_FLT_R, P_LFO_RATE,
 P_LFO_SHAPE, P_LFO_PITCH, P_LFO_CUTOFF, P_MOD_VIBRATO, P_VEL_SENS, P_GAIN_DB,
 P_BEND_RANGE) = range(len(_SYNTH))

# Parameters that select code paths or shape envelopes apply at once; all others are
# smoothed per sample in the kernel (SMOOTH_S time constant).
SWITCHED = frozenset({P_OSC1_WAVE, P_OSC2_WAVE, P_FILTER_TYPE})
"""Parameters that change the voice's circuit: applied at the bottom of a short dip of the
part's level (SWITCH_S down, then up again), so a waveform or filter change never clicks."""
SWITCH_S = 0.003
STEPPED = frozenset({P_OSC1_WAVE, P_OSC2_WAVE, P_FILTER_TYPE, P_LFO_SHAPE, P_AMP_A, P_AMP_D,
                     P_AMP_R, P_FLT_A, P_FLT_D, P_FLT_R, P_BEND_RANGE})
SMOOTH_S = 0.015
