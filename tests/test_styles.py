"""The styles as music: each style's drum backbone over many seeds and energies, the style
fills, the groove templates on every part, the jazz walking bass, the dnb sub-bass, the jazz
and bossa comping, and the new styles through config, /band/style and `bandmate render`.

Golden snapshots of every agent and style are in tests/test_golden.py; these are the metrics.
"""
from dataclasses import dataclass
from fractions import Fraction as F

import pytest

from engine.agents import (STYLE_TEMPO_BPM, STYLES, Band, BassAgent, ChordAgent, DrumAgent,
                           LeadAgent, StaticContext)
from engine.agents.chords import CHORD_HIGH, CHORD_LOW, rootless_pcs
from engine.agents.drums import DRUM_STYLES, STYLE_FILLS
from engine.agents.groove import GROOVES
from engine.agents.steer import Steering
from engine.harmony import Chord, Progression
from engine.parts import DRUM_NOTES

KIT = {v: k for k, v in DRUM_NOTES.items()}
SEEDS = range(12)
ENERGIES = (0.1, 0.35, 0.6, 0.85, 1.0)
II_V_I = Progression(["Dm7", "G7", "Cmaj7", "A7", "Dm7", "G7", "Cmaj7", "Cmaj7"])


def ctx(style, seed=0, intensity=0.7, groove=None, **kw):
    steer = None
    if groove is not None:
        steer = Steering({"/band/groove": groove})
    return StaticContext(seed=seed, style=style, intensity=intensity, steer=steer, **kw)


def plain_bars(agent, c, bars=range(16)):
    """(bar, notes) of bars with neither a fill nor a crash (the groove as written)."""
    for bar in bars:
        info = agent.bar_info(bar, c)
        if agent.fill_for(info) is None and not agent.crash_for(info):
            yield bar, agent.bar(bar, c)


def hits(notes, bar, inst):
    """Onsets of `inst` in `bar`, in beats from the bar's start."""
    return sorted(n.begin - 4 * bar for n in notes if KIT[n.note] == inst)


# -- drum backbones ------------------------------------------------------------------------------
def test_jazz_ride_spang_a_lang_hat_foot_feathered_kick():
    """Ride on every beat with its skip note on the swung (triplet) off-beat of 2 and 4, the
    hat foot on exactly 2 and 4, a soft kick, and every hit on the triplet grid."""
    checked = 0
    for seed in SEEDS:
        d = DrumAgent("jazz", seed)
        for energy in ENERGIES:
            for bar, notes in plain_bars(d, ctx("jazz", seed, energy)):
                ride = hits(notes, bar, "open_hat")
                assert ride == [0, 1, F(5, 3), 2, 3, F(11, 3)], (seed, energy, bar, ride)
                assert hits(notes, bar, "closed_hat") == [1, 3]
                assert all(n.velocity < 0.5 for n in notes if KIT[n.note] == "kick")
                assert all((n.begin * 3).denominator == 1 for n in notes)   # triplet feel
                skips = [n.velocity for n in notes if KIT[n.note] == "open_hat"
                         and n.begin % 1 == F(2, 3)]
                backs = [n.velocity for n in notes if KIT[n.note] == "open_hat"
                         and n.begin % 2 == 1]
                assert sum(skips) < sum(backs)     # the skip notes are lighter than 2 and 4
                checked += 1
    assert checked > 400


def test_dnb_two_step_backbone():
    """Kick on 1, snare on 2 and 4 (nothing on 1 and 3 but the kick), the kick's "and" of 3
    (or its variation) and hats on every eighth."""
    checked = 0
    for seed in SEEDS:
        d = DrumAgent("dnb", seed)
        for energy in ENERGIES:
            for bar, notes in plain_bars(d, ctx("dnb", seed, energy)):
                snares = {t: n.velocity for n in notes if KIT[n.note] == "snare"
                          for t in [n.begin - 4 * bar]}
                assert {1, 3} <= set(snares) and not {0, 2} & set(snares)
                assert all(v < min(snares[1], snares[3]) for t, v in snares.items()
                           if t not in (1, 3))                       # the rest are ghosts
                kicks = hits(notes, bar, "kick")
                assert kicks[0] == 0 and any(F(3, 2) <= k < 3 for k in kicks)
                hats = set(hits(notes, bar, "closed_hat")) | set(hits(notes, bar, "open_hat"))
                assert {F(k, 2) for k in range(8)} <= hats
                checked += 1
    assert checked > 400


@pytest.mark.parametrize("style, inst, steps", [
    ("rock", "snare", {4, 12}), ("funk", "snare", {4, 12}), ("hiphop", "snare", {4, 12}),
    ("breakbeat", "snare", {4, 12}), ("house", "kick", {0, 4, 8, 12}),
    ("bossa", "rim", {0, 3, 6, 10, 13}),
])
def test_other_styles_keep_their_backbone(style, inst, steps):
    for seed in range(6):
        for energy in ENERGIES:
            d = DrumAgent(style, seed)
            for bar, notes in plain_bars(d, ctx(style, seed, energy), range(8)):
                got = {int(t * 4) for t in hits(notes, bar, inst) if (t * 4).denominator == 1}
                assert steps <= got, (style, seed, energy, bar)


def test_style_tempi():
    assert 160 <= STYLE_TEMPO_BPM["dnb"] <= 176
    assert set(STYLE_TEMPO_BPM) == set(STYLES) == set(DRUM_STYLES) == set(GROOVES)


# -- fills ---------------------------------------------------------------------------------------
def fill_tail(style, seed, energy, bar=7):
    d = DrumAgent(style, seed)
    notes = d.bar(bar, ctx(style, seed, energy))
    return [n for n in notes if n.begin >= 4 * bar + 2]


def test_fills_fit_the_style():
    for seed in SEEDS:
        rock = {KIT[n.note] for n in fill_tail("rock", seed, 0.6)}
        assert rock & {"tom_high", "tom_mid", "tom_low"}, seed       # a tom run
        dnb = fill_tail("dnb", seed, 0.6)
        assert {KIT[n.note] for n in dnb} == {"snare"} and len(dnb) >= 6   # a snare roll
        jazz = fill_tail("jazz", seed, 0.6)
        assert len(jazz) >= 4 and all((n.begin * 3).denominator == 1 for n in jazz)
        assert any((n.begin * 3) % 3 for n in jazz)                  # off the eighth grid
    rolls = [n for seed in SEEDS for n in fill_tail("dnb", seed, 0.6)]
    assert any((n.begin * 8).denominator == 1 and (n.begin * 4).denominator == 2
               for n in rolls)                                      # 32nd strokes in a roll
    assert STYLE_FILLS["jazz"].unit == F(4, 3)


@pytest.mark.parametrize("style", ["rock", "dnb", "jazz"])
def test_fills_grow_with_energy(style):
    """At high energy the fill into a new section takes the whole bar (no groove left in it);
    at a middle energy it takes the last two beats; a quiet band fills less often."""
    for seed in SEEDS:
        d = DrumAgent(style, seed)
        hot = d.bar(7, ctx(style, seed, 0.95))
        warm = d.bar(7, ctx(style, seed, 0.6))
        groove = {"closed_hat", "open_hat"}
        assert not {KIT[n.note] for n in hot} & groove
        assert {KIT[n.note] for n in warm if n.begin < 4 * 7 + 2} & groove
    fills = {e: sum(DrumAgent(style, s).fill_for(DrumAgent(style, s).bar_info(b, ctx(style, s, e)))
                    is not None for s in SEEDS for b in (3, 11, 19, 27)) for e in (0.35, 0.9)}
    assert fills[0.9] > fills[0.35]


# -- the groove templates -----------------------------------------------------------------------
def test_jazz_groove_swings_every_part_and_the_amount_straightens_it():
    band = Band(3, "jazz")
    swung = band.query(F(0), F(32), ctx("jazz", 3, 0.8, progression=II_V_I))
    parts = {n.part for n in swung if n.begin % 1 == F(2, 3)}
    assert {"drums", "chords", "lead"} <= parts
    assert not [n for n in swung if n.begin % 1 == F(1, 2)]        # no straight off-beat left
    for energy in (0.2, 0.6, 1.0):                   # every part of the band on the triplet grid
        notes = band.query(F(0), F(64), ctx("jazz", 3, energy))
        assert all((n.begin * 3).denominator == 1 for n in notes)
    straight = band.query(F(0), F(32), ctx("jazz", 3, 0.8, groove=0.0, progression=II_V_I))
    assert {n.part for n in straight if n.begin % 1 == F(1, 2)} >= {"drums", "chords"}
    half = band.query(F(0), F(32), ctx("jazz", 3, 0.8, groove=0.5, progression=II_V_I))
    assert any(n.begin % 1 == F(7, 12) for n in half)               # halfway to the triplet


def test_funk_groove_drags_the_sixteenths_and_softens_them():
    """The funk template's e and a sixteenths land ~9 ms late, louder notes stay on the beat;
    at amount 0 the e/a notes are as early as the beat (only the humanising jitter)."""
    def stats(groove):
        notes = Band(5, "funk").query(F(0), F(64), ctx("funk", 5, 0.8, groove=groove))
        ea = [n for n in notes if (n.begin * 4).denominator == 1 and (n.begin * 4) % 2 == 1]
        on = [n for n in notes if n.begin % 1 == 0]
        mean = lambda xs: sum(xs) / len(xs)
        return (mean([n.nudge_s for n in ea]) - mean([n.nudge_s for n in on]),
                mean([n.velocity for n in ea]), len(ea))
    late, vel_full, count = stats(1.0)
    flat, vel_none, _ = stats(0.0)
    assert count > 100
    assert 0.006 < late < 0.012 and abs(flat) < 0.002
    assert vel_full < vel_none


def test_groove_keeps_chunking_purity():
    band = Band(2, "jazz")
    c = ctx("jazz", 2, 0.9, progression=II_V_I)
    whole = band.query(F(0), F(16), c)
    pieces = [n for k in range(48) for n in band.query(F(k, 3), F(k + 1, 3), c)]
    assert whole == pieces


# -- the walking bass ----------------------------------------------------------------------------
@dataclass
class HalfBars:
    """A context whose chord changes every two beats (mid-bar changes for the walking bass)."""
    seed: int = 0
    style: str = "jazz"
    intensity: float = 0.7
    beats_per_bar: int = 4
    chords: tuple = tuple(Chord.parse(c) for c in ("Em7b5", "A7", "Dm7", "G7", "Cmaj7", "Am7",
                                                    "Fmaj7", "E7"))

    def chord_at(self, beat):
        return self.chords[int(beat // 2) % len(self.chords)]

    def intensity_at(self, beat):
        return self.intensity


def walk_contexts():
    for seed in SEEDS:
        for energy in (0.35, 0.6, 0.9):
            yield ctx("jazz", seed, energy, progression=II_V_I)
            yield ctx("jazz", seed, energy)                     # Am F C G
            yield HalfBars(seed=seed, intensity=energy)
            yield ctx("jazz", seed, energy, chord=Chord(9, "min7"))


def test_walking_bass_one_note_a_beat_chord_tones_and_steps_into_each_root():
    steps, total = [], 0
    for c in walk_contexts():
        notes = BassAgent(c.seed, "jazz").query(F(0), F(64), c)
        assert [n.begin for n in notes] == list(range(64))           # one note on every beat
        assert all(28 <= n.note <= 52 for n in notes)                 # the walking range
        for a, b in zip(notes, notes[1:]):
            assert a.note != b.note                                   # no repeated notes
        for n in notes:
            chord = c.chord_at(n.begin)
            beat = n.begin % 4
            if beat == 0:
                assert n.note % 12 == chord.root
            if beat == 2 and c.chord_at(n.begin + 1) == chord:
                assert n.note % 12 in chord.tones
        for k, n in enumerate(notes[:-1]):                             # into every new chord
            nxt = notes[k + 1]
            if c.chord_at(nxt.begin) != c.chord_at(n.begin) or nxt.begin % 4 == 0:
                d = abs(nxt.note - n.note)
                assert d <= 2 or n.note % 12 in c.chord_at(n.begin).tones, (n, nxt)
                steps.append(d)
        total += 1
    assert total == len(SEEDS) * 12
    assert sum(d <= 2 for d in steps) / len(steps) > 0.9


def test_walking_bass_two_feel_when_quiet_and_in_the_key():
    notes = BassAgent(1, "jazz").query(F(0), F(32), ctx("jazz", 1, 0.1, progression=II_V_I))
    assert [n.begin for n in notes] == [F(2 * k) for k in range(16)]   # half notes
    from engine.listen.key import Key
    key = Key(0, "major")
    live = ctx("jazz", 4, 0.7, progression=Progression(["Dm7", "G7", "Cmaj7", "Am7"]))
    live.key_at = lambda beat: key          # a key the band keeps to (as the conductor gives)
    notes = BassAgent(4, "jazz").query(F(0), F(32), live)
    assert all(n.note % 12 in key.scale for n in notes)


def test_dnb_sub_bass_long_roots_with_syncopated_moves():
    for seed in SEEDS:
        notes = BassAgent(seed, "dnb").query(F(0), F(32), ctx("dnb", seed, 0.8))
        for bar in range(8):
            b = [n for n in notes if 4 * bar <= n.begin < 4 * bar + 4]
            assert b[0].begin == 4 * bar and b[0].dur >= F(3, 2)         # a long root
            assert len(b) == 1 or any(n.begin.denominator > 1 for n in b[1:])  # off the beat
        assert any((n.begin - int(n.begin)) == F(1, 2) and n.begin % 4 == F(5, 2) for n in notes)


# -- comping -------------------------------------------------------------------------------------
def voicings_played(notes):
    """The chords struck, in order: (onset, sorted pitches)."""
    by = {}
    for n in notes:
        by.setdefault(n.begin, []).append(n.note)
    return [(t, tuple(sorted(v))) for t, v in sorted(by.items())]


def move(a, b):
    return sum(min(abs(x - y) for y in a) for x in b) / len(b)


def test_jazz_comping_rootless_charleston_and_anticipations():
    antic = 0
    for seed in SEEDS:
        c = ctx("jazz", seed, 0.7, progression=II_V_I)
        agent = ChordAgent(seed, "jazz")
        notes = agent.query(F(0), F(64), c)
        played = voicings_played(notes)
        for t, v in played:
            assert len(v) == 4 and CHORD_LOW <= v[0] and v[-1] <= CHORD_HIGH
            assert v[-1] - v[0] <= 12                                   # close, one hand
        for t, v in played:                 # the chord in force, or the next one pushed early
            pcs = {p % 12 for p in v}
            assert pcs in ({*rootless_pcs(c.chord_at(t))}, {*rootless_pcs(c.chord_at(t + 1))})
            assert c.chord_at(t).root not in pcs or c.chord_at(t + 1).root not in pcs
        for bar in range(0, 16, 2):                                      # even bars: Charleston
            onsets = [t - 4 * bar for t, _ in played if 4 * bar <= t < 4 * bar + 4]
            if bar % 4 != 2 or not agent.anticipated(agent.bar_info(bar, c)):
                assert onsets[:2] == [0, F(5, 3)], (seed, bar, onsets)
        for bar in range(1, 16, 4):
            info = agent.bar_info(bar, c)
            if agent.anticipates(info):
                antic += 1
                pushed = [v for t, v in played if t == 4 * bar + F(11, 3)]
                assert pushed and {p % 12 for p in pushed[0]} == set(
                    rootless_pcs(info.next_chord))
                assert not [t for t, _ in played if t == 4 * bar + 4]   # tied over the bar
        moves = [move(a, b) for (_, a), (_, b) in zip(played, played[1:]) if a != b]
        assert sum(moves) / len(moves) <= 2.5 and max(moves) <= 6, (seed, moves)
    assert antic >= 3


def test_rootless_voicings():
    assert set(rootless_pcs(Chord.parse("G7"))) == {11, 4, 5, 9}        # 3, 13, b7, 9
    assert set(rootless_pcs(Chord.parse("Dm7"))) == {5, 9, 0, 4}         # b3, 5, b7, 9
    assert set(rootless_pcs(Chord.parse("Cmaj7"))) == {4, 7, 11, 2}
    assert 8 not in rootless_pcs(Chord.parse("Em7b5"))          # no b9 over a half-diminished
    c_major = (0, 2, 4, 5, 7, 9, 11)
    assert set(rootless_pcs(Chord.parse("Em"), c_major)) <= set(c_major)  # F# gives way


def test_bossa_comp_is_the_two_bar_figure():
    for seed in range(4):
        notes = ChordAgent(seed, "bossa").query(F(0), F(32), ctx("bossa", seed, 0.7))
        for bar in range(8):
            steps = sorted({int((t - 4 * bar) * 4) for t, _ in voicings_played(notes)
                            if 4 * bar <= t < 4 * bar + 4})
            want = [0, 3, 6, 10, 13] if bar % 2 == 0 else [2, 5, 8, 12]
            assert [s for s in steps if s != 0 or bar % 2 == 0] == want or \
                set(want) <= set(steps), (bar, steps)


@pytest.mark.parametrize("style", STYLES)
def test_comping_voices_move_little_in_every_style(style):
    for seed in range(4):
        notes = ChordAgent(seed, style).query(F(0), F(64), ctx(style, seed, 0.7,
                                                               progression=II_V_I))
        played = [v for _, v in voicings_played(notes)]
        moves = [move(a[:4], b[:4]) for a, b in zip(played, played[1:]) if a != b]
        assert moves and sum(moves) / len(moves) <= 3.0, (style, moves)


def test_lead_plays_every_new_style():
    for style in ("dnb", "jazz"):
        notes = LeadAgent(1, style).query(F(0), F(32), ctx(style, 1, 0.7))
        assert len(notes) > 10 and all(60 <= n.note <= 84 for n in notes)


# -- the new styles through config, the session's address space and `bandmate render` ----------
def test_config_accepts_the_new_styles_and_the_groove(tmp_path):
    from engine.config import load_config
    from engine.tomldata import DataError
    path = tmp_path / "c.toml"
    path.write_text('[band]\nstyle = "jazz"\ngroove = 0.25\n')
    band = load_config(str(path), environ={})["band"]
    assert (band["style"], band["groove"]) == ("jazz", 0.25)
    path.write_text('[band]\nstyle = "dnb"\n')
    assert load_config(str(path), environ={})["band"]["groove"] == 1.0     # the default
    for text, what in (('style = "polka"', "[band] style"), ("groove = 1.5", "[band] groove")):
        path.write_text(f"[band]\n{text}\n")
        with pytest.raises(DataError) as e:
            load_config(str(path), environ={})
        assert f"{path}:2: {what}" in str(e.value)


def session(tmp_path, style="rock", **band):
    from pathlib import Path

    from engine.control.session import Session
    from tests.enginekit import SR, dry_config
    cfg = dry_config(Path(__file__).resolve().parents[1])
    cfg["band"].update(style=style, chords=True, **band)
    return Session(cfg, SR, root=Path(__file__).resolve().parents[1])


def test_session_steers_to_the_new_styles_and_refuses_bad_values(tmp_path):
    s = session(tmp_path)
    assert s.param("/band/style").choices[-2:] == ("dnb", "jazz")
    assert s.set("/band/style", "jazz") == 7.0 and s.value("/band/style") == 7.0
    assert s.set("/band/groove", 0.5) == 0.5
    for address, bad in (("/band/style", "polka"), ("/band/groove", 1.5), ("/band/groove", "x")):
        with pytest.raises(ValueError):
            s.set(address, bad)
    assert (s.value("/band/style"), s.value("/band/groove")) == (7.0, 0.5)
    assert {"/band/style", "/band/groove"} <= set(s.addresses())


def render_notes(tmp_path, *args):
    from engine.cli import main
    from controllers.midifile import read_notes
    wav = tmp_path / "out.wav"
    assert main(["render", "--seconds", "6", "--seed", "3", "-o", str(wav), *args]) == 0
    return wav, read_notes(wav.with_suffix(".mid"))


def test_render_dnb_at_174_bpm_keeps_the_half_time_backbeat(tmp_path, monkeypatch):
    """`bandmate render --style dnb --tempo 174`: the loud snares sound on beats 2 and 4 of
    each bar (every second beat, 0.69 s apart), heard in the MIDI file of the render."""
    import numpy as np
    import soundfile as sf
    from pathlib import Path
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    wav, notes = render_notes(tmp_path, "--style", "dnb", "--tempo", "174")
    beat_s = 60 / 174
    loud = [n.start_s / beat_s for n in notes if n.part == "drums"
            and n.note == DRUM_NOTES["snare"] and n.velocity > 0.6 and n.start_s < 12 * beat_s]
    assert len(loud) == 6                       # bars 0-2 (bar 3 may hold a fill)
    assert all(abs(b - round(b)) < 0.02 and round(b) % 2 == 1 for b in loud), loud
    audio, sr = sf.read(wav, always_2d=True)
    assert np.isfinite(audio).all() and 0.01 < np.abs(audio).max() <= 1.0


def test_render_jazz_swings_the_ride(tmp_path, monkeypatch):
    """`bandmate render --style jazz`: the ride's skip notes two thirds into beats 2 and 4
    (the triplet swing in seconds), the walking bass on every beat."""
    from pathlib import Path
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    _, notes = render_notes(tmp_path, "--style", "jazz", "--tempo", "140")
    beat_s = 60 / 140
    ride = [n.start_s / beat_s for n in notes if n.part == "drums"
            and n.note == DRUM_NOTES["open_hat"] and n.start_s < 8 * beat_s]
    skips = [b for b in ride if abs(b - round(b)) > 0.1]
    assert skips and all(abs(b % 1 - 2 / 3) < 0.03 and int(b) % 2 == 1 for b in skips), ride
    bass = [n.start_s / beat_s for n in notes if n.part == "bass"]
    assert len(bass) >= 12 and all(abs(b - round(b)) < 0.02 for b in bass)
