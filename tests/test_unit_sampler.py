"""The sampler instrument against references: the recording itself at the root, octaves, the
aliasing of transposed bright sounds, loops without clicks, velocity layers, round robin,
notes that end, block-size invariance with real sets, and the noise colours' slopes.

Aliasing, measured (a saw band-limited to 0.45 fs, f0 120 Hz, transposed up; off-harmonic
energy relative to the fundamental, 64k-point Blackman-Harris FFT, as tests/synthkit.alias_db):
integer octaves -100 dB (every read lands on a stored sample of a level); inside a level's range
-65 to -92 dB; over the top third-octave of level 0 (0..+4 semitones) what folds lands above
20.8 kHz: -46 dB in all, below -78 dB under 20 kHz. Linear interpolation of the recording
without levels reads -7 to -37 dB the same way."""
import math

import numpy as np
import pytest
import soundfile
from scipy.signal import welch

from engine import samples as SM
from engine.rt.events import K_ALL_NOTES_OFF, K_NOTE_OFF, K_NOTE_ON, K_PITCH_BEND, K_SUSTAIN
from engine.rt.units import poly
from engine.rt.units import sampler as S
from engine.rt.units.base import default_params
from tests.synthkit import alias_db, pitch_at, semitones
from tests.test_units import SR, run, script

FLAT = dict(attack_ms=0.05, sustain=1.0, velocity_sens=0.0, gain_db=0.0, release_ms=20.0)
"""Full level from the end of the first control period, no filter, no velocity scaling."""
PL = math.sqrt(0.5)                  # the equal-power pan gain at the centre


def write_set(tmp_path, zones, head="", name="set.toml"):
    """A set in tmp_path: zones are dicts with `audio` ((channels, frames) or (frames,)) and
    `rate` written to `file` (FLOAT WAV unless it ends in .flac: 24-bit FLAC), the other keys
    go into the TOML as they are. Returns the TOML's path."""
    lines = [head] if head else []
    for z in zones:
        z = dict(z)
        audio, rate = np.asarray(z.pop("audio")), z.pop("rate", SR)
        path = tmp_path / z["file"]
        path.parent.mkdir(parents=True, exist_ok=True)
        data = audio.T if audio.ndim == 2 else audio
        if path.suffix == ".flac":
            soundfile.write(path, data, rate, subtype="PCM_24")
        else:
            soundfile.write(path, data, rate, subtype="FLOAT")
        lines.append("[[zone]]")
        for k, v in z.items():
            lines.append(f"{k} = {v!r}".replace("'", '"').replace("True", "true")
                         .replace("False", "false"))
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def make_with(samples, over=None):
    state = np.zeros(S.state_size(SR, samples))
    params = np.array(default_params(S.PARAMS))
    n = len(S.PARAMS)
    for k, v in (over or {}).items():
        i = next(p.index for p in S.PARAMS if p.name == k)
        params[i] = params[n + i] = v
    S.prepare(state, params, SR, samples)
    return state, params


def play(samples, n, events, over=None, cuts=()):
    state, params = make_with(samples, over)
    z = np.zeros(n)
    left, right = run(S, state, params, z, z, events=sorted(events, key=lambda e: e[0]),
                      cuts=cuts)
    return left, right, state


def sine(hz, seconds, rate=SR, phase=0.0):
    return np.sin(2 * np.pi * hz * np.arange(int(seconds * rate)) / rate + phase)


def zones_of(state):
    """The zone each voice plays."""
    return [int(state[poly.at(S.S_ZONE, v)]) for v in range(poly.NV)]


# ---- the recording, at its pitch and transposed --------------------------------------------

def test_a_note_at_the_root_plays_the_recording_bit_exact(tmp_path):
    """A 24-bit FLAC (noise and a chirp: every frequency) at the engine's rate: at its root,
    full level, centred, the output is each recorded sample times the pan gain, exactly, from
    the end of the attack (two control periods) to the end; a stereo file keeps its channels."""
    rng = np.random.default_rng(5)
    n = 24000
    chirp = np.sin(2 * np.pi * np.cumsum(np.linspace(20.0, 20000.0, n)) / SR)
    mono = 0.5 * chirp + 0.2 * rng.uniform(-1, 1, n)
    stereo = np.stack([mono, 0.3 * rng.uniform(-1, 1, n)])
    path = write_set(tmp_path, [dict(file="m.flac", audio=mono, root=60),
                                dict(file="s.flac", audio=stereo, root=62)])
    ss = SM.load_set(str(path))
    recorded, _ = soundfile.read(tmp_path / "m.flac", dtype="float64")
    left, right, _ = play(ss, n + 2000, [(0, K_NOTE_ON, 60.0, 1.0, 1.0)], FLAT)
    a = 2 * poly.CHUNK
    assert np.array_equal(left[a:n], recorded[a:] * PL)
    assert np.array_equal(right[a:n], recorded[a:] * PL)
    assert not np.any(left[n + 200:])                        # and then it is over
    recorded, _ = soundfile.read(tmp_path / "s.flac", dtype="float64", always_2d=True)
    left, right, _ = play(ss, n, [(0, K_NOTE_ON, 62.0, 1.0, 1.0)], FLAT)
    assert np.array_equal(left[a:n], recorded[a:, 0] * PL)
    assert np.array_equal(right[a:n], recorded[a:, 1] * PL)


@pytest.mark.parametrize("rate", [48000, 44100, 96000])
def test_an_octave_up_doubles_the_pitch_and_the_file_rate_is_honoured(tmp_path, rate):
    """A 330 Hz sine recorded at `rate`, root 60: the root plays 330 Hz, an octave up
    660 Hz, an octave down 165 Hz, a fifth up 330 * 2^(7/12), measured by zero crossings
    (to a thousandth of a cent)."""
    path = write_set(tmp_path, [dict(file="a.wav", audio=sine(330.0, 2.0, rate), rate=rate,
                                     root=60, lo=0, hi=127)])
    ss = SM.load_set(str(path))
    for note, hz in ((60.0, 330.0), (72.0, 660.0), (48.0, 165.0),
                     (67.0, 330.0 * 2 ** (7 / 12)), (84.0, 1320.0)):
        left, _, _ = play(ss, 20000, [(0, K_NOTE_ON, note, 1.0, 1.0)], FLAT)
        assert pitch_at(left, 2000, 20000) == pytest.approx(float(semitones(hz)), abs=2e-5)
        assert np.abs(left[2000:20000]).max() == pytest.approx(PL, rel=2e-3)


def _bright_saw(f0=120.0, periods=240):
    """A saw band-limited to 0.45 fs, looped on whole periods."""
    period = int(SR / f0)
    t = np.arange(period * periods) / SR
    x = sum(np.sin(2 * np.pi * h * f0 * t) / h for h in range(1, int(0.45 * SR / f0) + 1))
    return x / np.abs(x).max(), period


@pytest.mark.parametrize("semis", [0.0, 0.37, 3.0, 7.0, 12.0, 17.0, 19.0, 29.0, 31.0, 41.0,
                                   43.0, 55.0, 60.0, 67.0])
def test_a_bright_sound_transposed_up_octaves_hardly_aliases(semis):
    """Off-harmonic energy of a bright saw played up to 5.6 octaves above its root (see the
    module's docstring): below -60 dB in all, except over level 0's top third-octave, where
    what folds lands above 20.8 kHz (below -60 dB under 20 kHz there); linear interpolation
    of the raw recording, measured the same way, reads above -50 dB."""
    x, period = _bright_saw()
    ss = S.build_set([S.Zone(x, SR, 48, 0, 127, loop=(4 * period, len(x), 0))])
    f0 = 120.0 * 2 ** (semis / 12)
    left, _, _ = play(ss, 80000, [(0, K_NOTE_ON, 48.0 + semis, 1.0, 1.0)], FLAT)
    if 0.0 < semis / 12 <= S.BLEND:
        assert alias_db(left, f0) <= -40.0
        assert alias_db(left, f0, top_hz=20000.0) <= -60.0
    else:
        assert alias_db(left, f0) <= -60.0
    if semis % 12:
        pos = np.arange(80000) * 2 ** (semis / 12)
        pos = np.where(pos < len(x) - 1, pos, 4 * period + np.mod(pos - 4 * period,
                                                                len(x) - 4 * period))
        i = pos.astype(int)
        naive = x[i] + (pos - i) * (x[np.minimum(i + 1, len(x) - 1)] - x[i])
        assert alias_db(naive, f0) > -50.0


def test_glide_across_levels_has_no_steps():
    """A glide over five octaves (every level, each cross-fade) of a 100 Hz sine: no sample
    step beyond the sine's own steepest slope at the top pitch, plus 1 %."""
    x = sine(100.0, 1.0)
    ss = S.build_set([S.Zone(x, SR, 36, 0, 127, loop=(4800, 48000, 0))])
    n = 120000
    left, _, _ = play(ss, n, [(0, K_NOTE_ON, 36.0, 1.0, 1.0), (4800, K_NOTE_ON, 96.0, 1.0, 1.0)],
                      dict(FLAT, mode=2.0, glide_ms=1500.0))
    top = 100.0 * 2 ** 5
    steps = np.abs(np.diff(left[4 * poly.CHUNK:]))
    assert steps.max() <= 1.01 * PL * 2 * math.pi * top / SR
    assert pitch_at(left, n - 20000, n) == pytest.approx(float(semitones(top)), abs=1e-3)


# ---- loops -----------------------------------------------------------------------------------

def _loop_set(tmp_path, crossfade_ms, rate=SR):
    """A 220 Hz sine whose loop (0.1 s .. 0.2 s + 3.3 ms) is not a whole number of periods:
    without a cross-fade the wrap jumps."""
    x = sine(220.0, 0.5, rate, phase=0.3)
    start, end = int(0.1 * rate), int(0.2033 * rate)
    return SM.load_set(str(write_set(tmp_path, [dict(
        file="loop.wav", audio=x, rate=rate, root=57, lo=0, hi=127, loop_start=start,
        loop_end=end, loop_crossfade_ms=crossfade_ms)], name=f"l{crossfade_ms}.toml")))


@pytest.mark.parametrize("note", [57.0, 57.0 + 20.0, 57.0 - 12.0], ids=["root", "+20", "-12"])
def test_a_loop_sustains_without_a_click(tmp_path, note):
    """Two seconds of a looped sine (about 20 wraps): every sample step stays within the
    sine's own steepest slope plus what the 10 ms cross-fade adds (its weight moves pi / 2n a
    sample between two unit sines); the level holds. Without the cross-fade the wrap steps
    ten times further."""
    hz = 220.0 * 2 ** ((note - 57.0) / 12)
    n = 2 * SR
    left, _, _ = play(_loop_set(tmp_path, 10.0), n, [(0, K_NOTE_ON, note, 1.0, 1.0)], FLAT)
    xf = 0.01 * SR / 2 ** ((note - 57.0) / 12)            # the fade as heard, in samples
    bound = PL * (2 * math.pi * hz / SR + 2 * math.pi / (2 * xf)) * 1.02
    steps = np.abs(np.diff(left[4 * poly.CHUNK:]))
    assert steps.max() <= bound
    first = np.abs(left[SR // 10:SR // 2]).max()
    assert np.abs(left[-SR // 2:]).max() == pytest.approx(first, rel=0.02)
    assert first == pytest.approx(PL, rel=1e-3)
    if note == 57.0:
        raw, _, _ = play(_loop_set(tmp_path, 0.0), n, [(0, K_NOTE_ON, note, 1.0, 1.0)], FLAT)
        assert np.abs(np.diff(raw[4 * poly.CHUNK:])).max() > 10 * bound


def test_the_loop_plays_the_crossfaded_recording_then_wraps_by_whole_loops(tmp_path):
    """At the root, the first pass through the loop is the recording with its last 10 ms
    cross-faded into the frames before loop_start, and later passes repeat it exactly."""
    start, end = int(0.1 * SR), int(0.2033 * SR)
    ss = _loop_set(tmp_path, 10.0)
    x, _ = soundfile.read(tmp_path / "loop.wav", dtype="float64")
    left, _, _ = play(ss, SR, [(0, K_NOTE_ON, 57.0, 1.0, 1.0)], FLAT)
    xf = 480
    w = 0.5 - 0.5 * np.cos(np.pi * (np.arange(xf) + 1.0) / xf)
    ref = x[:end].copy()
    ref[end - xf:] = (1 - w) * x[end - xf:end] + w * x[start - xf:start]
    a = 2 * poly.CHUNK
    assert np.allclose(left[a:end] / PL, ref[a:], rtol=0, atol=1e-15)
    loop = left[start:end]
    for k in range(1, 8):
        assert np.allclose(left[start + k * (end - start):end + k * (end - start)], loop,
                           atol=1e-12)


# ---- choosing the zone -----------------------------------------------------------------------

def _tagged_set(tmp_path, zones, head=""):
    """Zones whose recordings are sines at 100 Hz + 50 Hz * index (which one played is heard
    in the pitch)."""
    out = []
    for i, z in enumerate(zones):
        out.append(dict(file=f"z{i}.wav", audio=sine(100.0 + 50.0 * i, 0.3), **z))
    return SM.load_set(str(write_set(tmp_path, out, head)))


def _which(left, count):
    hz = 440.0 * 2 ** ((pitch_at(left, 2000, 9000) - 69.0) / 12)
    return int(round((hz - 100.0) / 50.0)) if 0 < hz < 100.0 + 50.0 * count else -1


def test_velocity_layers_switch_at_the_stated_velocity(tmp_path):
    ss = _tagged_set(tmp_path, [dict(root=60, lo=0, hi=127, vel_lo=1, vel_hi=79),
                                dict(root=60, lo=0, hi=127, vel_lo=80, vel_hi=127)])
    for vel, zone in ((1, 0), (40, 0), (79, 0), (80, 1), (100, 1), (127, 1)):
        left, _, state = play(ss, 10000, [(0, K_NOTE_ON, 60.0, vel / 127.0, 1.0)], FLAT)
        assert _which(left, 2) == zone, vel
        assert zones_of(state)[0] == zone


def test_keys_outside_every_zone_play_nothing_and_end(tmp_path):
    ss = _tagged_set(tmp_path, [dict(root=60, lo=55, hi=65)])
    left, _, state = play(ss, 4800, [(0, K_NOTE_ON, 54.0, 1.0, 1.0),
                                     (10, K_NOTE_ON, 66.0, 1.0, 1.0)], FLAT)
    assert not np.any(left) and S.active_voices(state) == 0
    left, _, state = play(ss, 4800, [(0, K_NOTE_ON, 65.0, 1.0, 1.0)], FLAT)
    assert np.abs(left).max() > 0.5


def test_round_robin_cycles_per_group_and_replays_after_reset(tmp_path):
    """Three takes of group 1 on key 38, two of group 2 on key 42, one plain zone on 36: each
    group cycles through its takes in file order, independently; reset starts again."""
    ss = _tagged_set(tmp_path, [dict(root=38, rr_group=1), dict(root=36),
                                dict(root=38, rr_group=1), dict(root=42, rr_group=2),
                                dict(root=38, rr_group=1), dict(root=42, rr_group=2)])
    state, params = make_with(ss, dict(FLAT, polyphony=1.0))
    seq = [38, 42, 38, 36, 38, 42, 38, 38, 42]
    z = np.zeros(2400)

    def hit_all():
        got = []
        for note in seq:
            run(S, state, params, z, z, events=[(0, K_NOTE_ON, float(note), 1.0, 1.0)])
            got.append(max(zones_of(state)))
        return got
    expect = [0, 3, 2, 1, 4, 5, 0, 2, 3]
    assert hit_all() == expect
    S.reset(state, SR)
    assert hit_all() == expect
    # what sounds: each take at its own pitch, in turn
    ev = [(10000 * k, K_NOTE_ON, 38.0, 1.0, 1.0) for k in range(4)]
    left, _, _ = play(ss, 40000, ev, dict(FLAT, polyphony=1.0))
    heard = [_which(left[10000 * k:10000 * (k + 1)], 6) for k in range(4)]
    assert heard == [0, 2, 4, 0]


def test_unison_voices_of_a_note_play_the_same_take(tmp_path):
    ss = _tagged_set(tmp_path, [dict(root=38, rr_group=1), dict(root=38, rr_group=1)])
    _, _, state = play(ss, 2000, [(0, K_NOTE_ON, 38.0, 1.0, 1.0)], dict(FLAT, unison=3.0))
    assert sorted(zones_of(state))[-4:] == [0, 0, 0, 0]


# ---- notes end -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["kit", "mallet", "pad"])
def test_every_note_of_a_factory_set_ends(name):
    """Random notes over 24..108 (over the drums for the kit; a one-shot an octave down
    lasts twice as long) with random velocities, most released, some keys held,
    the pedal down and up, a bend: after an all-notes-off every voice is idle (within the
    300 ms release, or when a one-shot's recording ends) and the output exactly 0. One-shots
    alone (no note-off at all) end with their recordings."""
    ss = SM.load_set(name)
    rng = np.random.default_rng(7)
    ev = []
    for k in range(40):
        t = int(rng.integers(0, 3 * SR))
        note = float(rng.integers(24, 109) if name != "kit" else rng.integers(34, 52))
        ev.append((t, K_NOTE_ON, note, float(rng.uniform(0.05, 1.0)), 1.0))
        if rng.random() < 0.7:
            ev.append((t + int(rng.integers(100, SR)), K_NOTE_OFF, note, 0.0, 1.0))
    ev += [(SR, K_SUSTAIN, 0.0, 1.0, 0.0), (2 * SR, K_SUSTAIN, 0.0, 0.0, 0.0),
           (SR // 2, K_PITCH_BEND, 0.0, 1.0, 0.0)]
    ev.sort(key=lambda e: e[0])
    over = dict(release_ms=300.0, polyphony=24.0)
    state, params = make_with(ss, over)
    n = 3 * SR
    left, _ = run(S, state, params, np.zeros(n), np.zeros(n), events=ev)
    assert np.all(np.isfinite(left)) and np.abs(left).max() > 0.05
    z = np.zeros(4 * SR)           # the release, or a one-shot's recording (3.2 s at most)
    out = run(S, state, params, z, z, events=[(0, K_ALL_NOTES_OFF, 0.0, 0.0, 0.0)])
    assert S.active_voices(state) == 0
    assert not np.any(out[0][-SR // 4:]) and not np.any(out[1][-SR // 4:])
    if name != "pad":        # one-shots: over when their recordings are (1.6 s at most)
        ons = [e for e in ev if e[1] == K_NOTE_ON]
        done, _, state = play(ss, n + 4 * SR, ons, dict(polyphony=24.0))
        assert S.active_voices(state) == 0 and not np.any(done[-SR // 4:])


def test_a_one_shot_plays_to_its_end_whatever_the_key_does():
    ss = SM.load_set("kit")
    short, _, _ = play(ss, SR, [(0, K_NOTE_ON, 49.0, 1.0, 1.0), (100, K_NOTE_OFF, 49.0, 0.0, 1.0)])
    held, _, _ = play(ss, SR, [(0, K_NOTE_ON, 49.0, 1.0, 1.0)])
    assert np.array_equal(short, held)
    assert np.abs(short[SR // 2:SR // 2 + 4800]).max() > 1e-3      # the crash rings on


# ---- block-size invariance with real sets ----------------------------------------------------

@pytest.mark.parametrize("name, over", [
    ("kit", {}),
    ("pad", dict(filter=1.0, cutoff_hz=900.0, filter_env_oct=2.0, unison=2.0)),
    ("mallet", dict(noise=1.0, noise_level=0.3, mode=2.0, glide_ms=40.0)),
], ids=["kit", "pad", "mallet"])
def test_block_size_invariance_with_factory_sets(name, over):
    """The generic script (chords, pedal, bend, wheel, aftertouch, source gone, panic; events
    on block edges) over stereo, 44.1 kHz, looped, round-robin and one-shot zones: identical
    samples whether rendered in one go, per sample, in 7s, 64s or at random cuts."""
    ss = SM.load_set(name)
    n = 12000
    ev = script(n, seed=3)
    ev = [(t, k, 36.0 + (a % 30) if k == K_NOTE_ON else a, b, c) for t, k, a, b, c in ev] \
        if name == "kit" else ev
    ref = play(ss, n, ev, over)
    rng = np.random.default_rng(3)
    for cuts in (range(1, 600), range(7, n, 7), range(64, n, 64),
                 sorted(rng.integers(1, n - 1, 200).tolist())):
        got = play(ss, n, ev, over, cuts=list(cuts))
        assert np.array_equal(ref[0], got[0]) and np.array_equal(ref[1], got[1])
    assert np.abs(ref[0]).max() > 0.01


def test_extreme_notes_and_bends_stay_in_the_recording():
    """Notes 0 and 127 with a bend of 48 semitones either way, on every factory set: the reads
    stay inside the state (finite output, no garbage)."""
    for name in SM.factory_sets():
        ss = SM.load_set(name)
        ev = [(0, K_NOTE_ON, 0.0, 1.0, 1.0), (0, K_NOTE_ON, 127.0, 1.0, 1.0),
              (3000, K_PITCH_BEND, 0.0, 1.0, 0.0), (6000, K_PITCH_BEND, 0.0, -1.0, 0.0)]
        left, right, _ = play(ss, 12000, ev, dict(FLAT, tune_st=24.0, bend_range_st=48.0))
        assert np.all(np.isfinite(left)) and np.abs(left).max() < 4.0


# ---- noise -----------------------------------------------------------------------------------

@pytest.mark.parametrize("colour, slope", [("white", 0.0), ("pink", -3.0), ("brown", -6.0),
                                           ("blue", 3.0), ("violet", 6.0)])
def test_noise_colours_have_their_spectral_slopes(colour, slope):
    """A note of noise alone (sample_level 0): Welch's PSD over 2^20 samples, a line fitted
    to dB against octaves from 100 Hz to 10 kHz: the colour's slope within 0.5 dB/oct (each
    octave band too), RMS 0.25 before the pan."""
    k = S.NOISES.index(colour)
    n = 1 << 20
    left, right, _ = play(None, n, [(0, K_NOTE_ON, 60.0, 1.0, 1.0)],
                          dict(FLAT, sample_level=0.0, noise=float(k), noise_level=1.0))
    y = left[4800:] / PL
    f, p = welch(y, SR, nperseg=16384)
    band = (f >= 100.0) & (f <= 10000.0)
    fitted = np.polyfit(np.log2(f[band]), 10 * np.log10(p[band]), 1)[0]
    assert fitted == pytest.approx(slope, abs=0.5)
    octaves = [10 * np.log10(p[(f >= lo) & (f < 2 * lo)].mean())
               for lo in 100.0 * 2.0 ** np.arange(6)]
    assert np.allclose(np.diff(octaves), slope, atol=0.5)
    assert y.std() == pytest.approx(S.NOISE_RMS, rel=0.03)
    assert np.array_equal(left, right)


def test_noise_is_per_voice_repeatable_and_mixes_with_the_recording():
    """The same notes give the same noise (seeded by the note), two voices are not the same
    noise, and noise and recording add."""
    ev = [(0, K_NOTE_ON, 60.0, 1.0, 1.0), (0, K_NOTE_ON, 64.0, 1.0, 1.0)]
    over = dict(FLAT, noise=0.0, noise_level=0.5, builtin=1.0)
    a = play(None, 9600, ev, over)[0]
    b = play(None, 9600, ev, over)[0]
    assert np.array_equal(a, b)
    noise = play(None, 9600, ev, dict(over, sample_level=0.0))[0]
    tone = play(None, 9600, ev, dict(over, noise_level=0.0))[0]
    assert np.allclose(a, noise + tone, atol=1e-12)
    one = play(None, 9600, ev[:1], dict(over, sample_level=0.0))[0]
    other = noise - one
    corr = float(one[1000:] @ other[1000:] / np.sqrt((one[1000:] @ one[1000:])
                                                     * (other[1000:] @ other[1000:])))
    assert abs(corr) < 0.05


def test_without_a_set_the_builtin_plays_and_noise_needs_no_zone():
    """No set: the built-in saw (or sine) over the whole keyboard; with sample_level 0 and
    noise, the unit is a noise instrument; released, everything ends."""
    saw = play(None, 9600, [(0, K_NOTE_ON, 69.0, 1.0, 1.0)], FLAT)[0]
    assert pitch_at(saw, 2000, 9600) == pytest.approx(69.0, abs=1e-3)
    ev = [(0, K_NOTE_ON, 30.0, 1.0, 1.0), (9600, K_NOTE_OFF, 30.0, 0.0, 1.0)]
    left, _, state = play(None, 24000, ev, dict(FLAT, sample_level=0.0, noise_level=1.0))
    assert np.abs(left[:9600]).std() > 0.05
    assert S.active_voices(state) == 0 and not np.any(left[-4800:])
