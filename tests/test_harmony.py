"""engine.harmony: chords, chord detection, progressions and the live chord timeline."""

from fractions import Fraction as F

import pytest

from engine.harmony import (
    DEFAULT_PROGRESSION,
    QUALITIES,
    Chord,
    LiveHarmony,
    Progression,
    chord_scale,
    detect_chord,
)


@pytest.mark.parametrize(
    "held, name",
    [
        ([57, 60, 64], "Am"),  # root position
        ([60, 64, 69], "Am/C"),  # first inversion
        ([52, 57, 60], "Am/E"),  # second inversion
        ([48, 52, 55], "C"),
        ([52, 55, 60], "C/E"),
        ([55, 60, 64], "C/G"),
        ([54, 58, 61], "F#"),
        ([58, 62, 65], "Bb"),
        ([60, 64, 67, 70], "C7"),
        ([52, 60, 64, 67, 70], "C7/E"),
        ([60, 64, 67, 71], "Cmaj7"),
        ([57, 60, 64, 67], "Am7"),  # same notes as C6: the bass decides
        ([60, 64, 67, 69], "C6"),
        ([50, 53, 57, 60], "Dm7"),
        ([59, 62, 65, 69], "Bm7b5"),
        ([59, 62, 65], "Bdim"),
        ([60, 63, 66, 69], "Cdim7"),
        ([60, 64, 68], "Caug"),
        ([52, 56, 60], "Eaug"),  # symmetric: the bass decides
        ([60, 62, 67], "Csus2"),
        ([60, 65, 67], "Csus4"),
        ([65, 67, 72], "Fsus2"),  # F G C: Fsus2 or Csus4/F; the bass decides
        ([55, 60, 62, 65], "G7sus4"),
        ([60, 64, 70], "C7"),  # fifth left out
        ([60, 63, 70], "Cm7"),
        ([60, 64, 67, 74], "Cadd9"),
        ([48, 52, 55, 59, 62], "Cmaj9"),
        ([40, 47], "E5"),  # power chord
        ([40, 47, 52], "E5"),
        ([43, 48], "C5/G"),  # a fourth is an inverted fifth
        ([60, 64], "C"),  # major third dyad
        ([45, 60], "Am"),  # minor third (as a sixth) dyad
    ],
)
def test_detect_chord(held, name):
    chord = detect_chord(held)
    assert chord is not None and chord.name == name


@pytest.mark.parametrize("held", [[], [60], [48, 60, 72], [60, 61], [60, 66], [60, 62, 64, 65]])
def test_detect_chord_none(held):
    assert detect_chord(held) is None


def test_detect_chord_order_and_octaves_do_not_matter():
    assert detect_chord([76, 57, 72, 60]) == detect_chord([57, 60, 64])
    assert detect_chord(iter([69, 48, 64])) == Chord(9, "min")  # any iterable


def test_inversions_are_the_same_harmony():
    c, c_e = detect_chord([48, 52, 55]), detect_chord([52, 55, 60])
    assert c == c_e and hash(c) == hash(c_e)
    assert c_e.bass == 4 and c.bass is None


def test_chord_tones_and_names():
    am7 = Chord(9, "min7")
    assert am7.tones == (9, 0, 4, 7)
    assert am7.name == "Am7" and str(am7) == "Am7"
    assert Chord(6, "maj").name == "F#"
    assert Chord(10, "maj7").name == "Bbmaj7"
    assert am7.third == 0 and am7.fifth == 4 and am7.is_minor
    assert Chord(0, "5").third is None and Chord(0, "5").fifth == 7
    assert Chord(11, "dim").fifth == 5


@pytest.mark.parametrize("quality", sorted(QUALITIES))
def test_parse_round_trips_every_quality(quality):
    for root in range(12):
        c = Chord(root, quality)
        assert Chord.parse(c.name) == c


def test_parse_aliases_and_slash():
    assert Chord.parse("Dbmaj7") == Chord(1, "maj7")
    assert Chord.parse("C#m") == Chord(1, "min")
    assert Chord.parse("G/B").bass == 11
    with pytest.raises(ValueError):
        Chord.parse("H7")
    with pytest.raises(ValueError):
        Chord.parse("Cwhatever")


def test_chord_validation():
    with pytest.raises(ValueError):
        Chord(12, "maj")
    with pytest.raises(ValueError):
        Chord(0, "major")
    with pytest.raises(ValueError):
        Chord(0, "maj", (0, 3, 7))


def test_chord_scale_stays_in_key():
    # over F in A minor a melody gets F G A C D: no Bb, no B
    assert chord_scale(Chord.parse("F")) == (0, 2, 5, 7, 9)
    assert chord_scale(Chord.parse("Am")) == (0, 2, 4, 7, 9)
    for chord in DEFAULT_PROGRESSION.chords:
        assert set(chord.tones) <= set(chord_scale(chord))


def test_progression_cycles():
    p = Progression.parse("Am F C G")
    assert [p.chord_at(b).name for b in range(6)] == ["Am", "F", "C", "G", "Am", "F"]
    q = Progression(["C", "G"], bars=[3, 1])
    assert [q.chord_at(b).name for b in range(5)] == ["C", "C", "C", "G", "C"]
    assert q.length_bars == 4
    assert DEFAULT_PROGRESSION.length_bars == 8
    assert DEFAULT_PROGRESSION.chord_at(0).name == "Am"
    with pytest.raises(ValueError):
        Progression([])


# -- the live timeline ---------------------------------------------------------------------------------
def test_progression_rules_before_the_player_plays():
    h = LiveHarmony()
    assert [h.chord_at(F(4 * b)).name for b in range(3)] == ["Am", "F", "C"]


def test_new_chord_takes_effect_on_the_next_beat_after_the_horizon():
    h = LiveHarmony(DEFAULT_PROGRESSION)
    assert h.update([55, 59, 62], horizon=F(13, 10)).name == "G"
    assert h.chord_at(F(1)).name == "Am"  # already queried: unchanged
    assert h.chord_at(F(19, 10)).name == "Am"
    assert h.chord_at(F(2)).name == "G"
    assert h.chord_at(F(40)).name == "G"  # held until something else happens
    assert h.update([55, 59, 62], horizon=F(3)).name == "G"  # no change point added
    assert len(h.changes()) == 1


def test_quantum_of_half_a_bar():
    h = LiveHarmony(quantum_beats=2)
    assert h.effective_beat(F(1, 10)) == 2
    assert h.effective_beat(F(2)) == 2
    assert h.effective_beat(F(0)) == 0


def test_a_later_request_replaces_a_pending_one():
    h = LiveHarmony()
    h.update([60, 64], horizon=F(41, 10))  # C (two notes down so far), pending at beat 5
    h.update([60, 64, 67, 71], horizon=F(42, 10))  # the full Cmaj7 before beat 5
    assert h.chord_at(F(5)).name == "Cmaj7"
    assert [(b, c.name) for b, c in h.changes()] == [(5, "Cmaj7")]


def test_single_notes_keep_the_harmony():
    h = LiveHarmony()
    h.update([57, 60, 64], horizon=F(0))
    assert h.update([72], horizon=F(3)) is None
    assert h.chord_at(F(10)).name == "Am"


def test_release_resumes_the_progression_unless_the_player_plays_again():
    h = LiveHarmony(resume_after_bars=2)
    h.update([55, 59, 62], horizon=F(0))  # G from beat 0
    assert h.release(horizon=F(5)) == 16  # next bar (8) + 2 bars
    assert h.chord_at(F(15)).name == "G"
    assert h.chord_at(F(16)).name == "Am"  # progression bar 4
    assert h.chord_at(F(20)).name == "F"
    h.update([55, 59, 62], horizon=F(9))  # plays again before the resume
    assert h.chord_at(F(16)).name == "G"
    assert LiveHarmony(resume_after_bars=None).release(F(0)) is None


def test_history_is_pruned_but_the_chord_in_force_is_kept():
    h = LiveHarmony(keep_history_beats=8)
    for k, notes in enumerate([[57, 60, 64], [53, 57, 60], [48, 52, 55]] * 5):
        h.update(notes, horizon=F(4 * k))
    assert len(h.changes()) <= 4
    assert h.chord_at(F(56)).name == "C"
