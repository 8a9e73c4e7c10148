"""engine.patterns for live coders: the combinators' laws, the mini-notation, seeded chance."""
import re
from collections import Counter
from fractions import Fraction as F

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.harmony import Chord, chord_scale
from engine.listen.key import Key
from engine.parts import DRUM_NOTES
from engine.patterns import (Note, Pattern, cat, cycle_beats, degrees, euclid, mini,
                             note_sort_key, pure, sequence, silence, stack, steps)
from engine.patterns.pitch import degree_note, note_number


class Ctx:
    beats_per_bar = 4


class Waltz:
    beats_per_bar = 3


CTX = Ctx()


def q(p, a=0, b=4, ctx=CTX):
    return p.query(F(a), F(b), ctx)


def onsets(p, a=0, b=4, ctx=CTX):
    return [(n.begin, n.note) for n in q(p, a, b, ctx)]


MELODY = mini("c4 e4 [g4 b4] ~ <d5 [f5 a4]>")
BEAT = mini("bd [~ bd] sd [~ bd?], hh*8", seed=3)
SHAPES = {
    "melody": MELODY,
    "beat": BEAT,
    "euclid": mini("c3(3,8,1) e3(5,8)"),
    "weights": mini("c4@3 e4 g4!2 [a4 b4]*2"),
    "slow": mini("<c4 e4 g4>/2 d4"),
    "steps": steps("x.x.xx.x", step=F(1, 2), part="lead", note=60),
}


# -- laws ------------------------------------------------------------------------------------------
times = st.fractions(min_value=0, max_value=40, max_denominator=24)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_fast_then_slow_by_the_same_factor_is_the_identity(name):
    p = SHAPES[name]
    for f in (2, 3, F(3, 2)):
        assert q(p.fast(f).slow(f), 0, 24) == q(p, 0, 24)
        assert q(p.slow(f).fast(f), 0, 24) == q(p, 0, 24)


@pytest.mark.parametrize("name", ["melody", "euclid", "weights", "steps"])
def test_rev_twice_is_the_identity_and_rev_reverses_each_cycle(name):
    p = SHAPES[name]
    assert q(p.rev().rev(), 0, 24) == q(p, 0, 24)
    for c in range(4):
        fwd = [n.note for n in q(p, 4 * c, 4 * c + 4)]
        back = [n.note for n in q(p.rev(), 4 * c, 4 * c + 4)]
        # notes at one onset keep their (sorted) order; the onsets come backwards
        assert Counter(back) == Counter(fwd)
        fwd_on = sorted({n.begin - 4 * c for n in q(p, 4 * c, 4 * c + 4)})
        back_ends = sorted({4 * c + 4 - n.end for n in q(p.rev(), 4 * c, 4 * c + 4)})
        assert back_ends == fwd_on


def test_rev_plays_a_sequence_backwards():
    assert [n.note for n in q(mini("c4 e4 g4").rev())] == [67, 64, 60]


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_every_one_is_the_transform_itself(name):
    p = SHAPES[name]
    for f in (lambda x: x.rev(), lambda x: x.fast(2), lambda x: x.transpose(7)):
        assert q(p.every(1, f), 0, 16) == q(f(p), 0, 16)


def test_every_n_applies_in_one_cycle_of_n():
    p = MELODY.every(3, lambda x: x.transpose(12))
    for c in range(6):
        want = q(MELODY.transpose(12) if c % 3 == 0 else MELODY, 4 * c, 4 * c + 4)
        assert q(p, 4 * c, 4 * c + 4) == want


def test_stack_has_every_note_of_its_layers():
    layers = list(SHAPES.values())
    for a, b in [(0, 4), (3, 17), (F(1, 3), F(29, 3))]:
        assert len(q(stack(*layers), a, b)) == sum(len(q(p, a, b)) for p in layers)
        assert q(stack(*layers), a, b) == sorted(q(stack(*layers), a, b), key=note_sort_key)


def test_sequence_squeezes_each_item_into_its_share():
    items = [SHAPES["melody"], SHAPES["beat"], SHAPES["euclid"]]
    p = sequence(*items)
    for c in range(6):
        got = q(p, 4 * c, 4 * c + 4)
        assert len(got) == sum(len(q(i, 4 * c, 4 * c + 4)) for i in items)
        for k, item in enumerate(items):     # item k's cycle c, squeezed into its third
            lo = 4 * c + F(4 * k, 3)
            mine = [n for n in got if lo <= n.begin < lo + F(4, 3)]
            want = q(item, 4 * c, 4 * c + 4)
            assert [(n.begin - lo) * 3 for n in mine] == [n.begin - 4 * c for n in want]
            assert [n.dur * 3 for n in mine] == [n.dur for n in want]


def test_cat_plays_one_item_per_cycle_each_from_its_own_start():
    a, b = mini("c4 e4"), mini("g4*3")
    p = cat(a, b)
    for c in range(8):
        got = q(p, 4 * c, 4 * c + 4)
        item, its = (a, b)[c % 2], c // 2
        want = [n.shifted(F(4 * (c - its))) for n in q(item, 4 * its, 4 * its + 4)]
        assert got == want
    assert len(q(p, 0, 32)) == 4 * (2 + 3)


def test_sequence_of_notes_is_the_mini_notation():
    assert q(sequence("c4", "e4", sequence("g4", "b4"), silence()), 0, 12) == \
        q(mini("c4 e4 [g4 b4] ~"), 0, 12)
    assert onsets(mini("c4 e4 [g4 b4] ~")) == [(0, 60), (1, 64), (2, 67), (F(5, 2), 71)]


def test_a_cycle_is_a_bar_of_the_context():
    assert cycle_beats(None) == 4 and cycle_beats(Waltz()) == 3
    assert [n.begin for n in q(mini("c4 e4 g4"), 0, 6, Waltz())] == [0, 1, 2, 3, 4, 5]
    assert [n.begin for n in mini("c4 e4").query(F(0), F(8))] == [0, 2, 4, 6]


# -- chunking: any split of a span gives the same notes --------------------------------------------
EVERYTHING = stack(
    MELODY.rev().every(3, lambda x: x.iter(4), offset=1),
    BEAT.degrade(0.3, seed=9).humanise(6, 0.2, seed=2),
    mini("c3 e3 g3").ply(3).sometimes(lambda x: x.transpose(12), 0.4, seed=1),
    mini("c4 d4 e4 f4").euclid(5, 8, 2).off("1/3", lambda x: x.invert("c4")),
    cat("a2 c3", "e3*3").fast(F(3, 2)).legato(F(1, 2)).range("c3", "b3"),
    degrees("0 2 <4 6> -1", "A minor", 3).scale("A minor").late(F(1, 5)),
)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a=times, b=times, cuts=st.lists(times, max_size=6))
def test_querying_in_pieces_is_querying_whole(a, b, cuts):
    a, b = min(a, b), max(a, b)
    points = sorted({a, b, *[c for c in cuts if a < c < b]})
    whole = EVERYTHING.query(a, b, CTX)
    pieces = [n for lo, hi in zip(points, points[1:]) for n in EVERYTHING.query(lo, hi, CTX)]
    assert pieces == whole
    assert all(a <= n.begin < b for n in whole)
    assert whole == sorted(whole, key=note_sort_key)


def test_the_chunking_composite_is_not_empty():
    got = q(EVERYTHING, 0, 24)
    assert len(got) > 150 and {n.part for n in got} == {"lead", "drums"}


# -- seeded chance ---------------------------------------------------------------------------------
def test_the_same_seed_gives_the_same_notes_and_another_seed_others():
    def make(seed):
        return mini("c4*16").degrade(0.5, seed).humanise(10, 0.3, seed) \
            .sometimes(lambda x: x.transpose(7), 0.5, seed)
    a, b, c = (q(make(s), 0, 64) for s in (1, 1, 2))
    assert a == b
    assert a != c
    assert q(mini("c4*8?", seed=1), 0, 64) == q(mini("c4*8?", seed=1), 0, 64)
    assert q(mini("c4*8?", seed=1), 0, 64) != q(mini("c4*8?", seed=2), 0, 64)


@pytest.mark.parametrize("amount", [0.1, 0.25, 0.5, 0.8])
def test_degrade_drops_its_share_over_many_cycles(amount):
    p = mini("c4*16")
    n = 16 * 1000
    kept = q(p.degrade(amount, seed=7), 0, 4 * 1000)
    sd = (amount * (1 - amount) / n) ** 0.5
    assert abs((n - len(kept)) / n - amount) < 4 * sd      # within 4 standard deviations
    # and it is spread out: each quarter of the run keeps about the same share
    quarters = Counter(int(m.begin // 1000) for m in kept)
    assert max(quarters.values()) - min(quarters.values()) < 8 * sd * n / 4 + 1


def test_mini_question_mark_drops_half_with_its_own_stream_per_mark():
    got = q(mini("c4*16?", seed=0), 0, 4 * 500)
    assert abs(len(got) / 8000 - 0.5) < 0.03
    two = q(mini("[c4*16?, e4*16?]", seed=0), 0, 400)
    c4 = {n.begin for n in two if n.note == 60}
    e4 = {n.begin for n in two if n.note == 64}
    assert c4 != e4          # each '?' draws on its own


def test_sometimes_changes_exactly_what_degrade_drops():
    p = mini("c4 e4 g4 b4*2")
    assert q(p.sometimes(lambda x: x, 0.5, seed=3), 0, 64) == q(p, 0, 64)
    up = q(p.sometimes(lambda x: x.transpose(12), 0.5, seed=3), 0, 64)
    kept = q(p.degrade(0.5, seed=3), 0, 64)
    assert [n for n in up if n.note < 72] == kept
    assert len(up) == len(q(p, 0, 64))
    assert 0.35 < sum(n.note >= 72 for n in up) / len(up) < 0.65


def test_a_chord_is_kept_or_dropped_whole():
    p = mini("[c4, e4, g4]*4").degrade(0.5, seed=1)
    by_onset = Counter(n.begin for n in q(p, 0, 200))
    assert set(by_onset.values()) == {3} and 0 < len(by_onset) < 200


def test_humanise_nudges_within_bounds_and_keeps_the_grid():
    p = mini("c4*16")
    h = q(p.humanise(timing_ms=8, velocity=0.25, seed=4), 0, 400)
    assert [n.begin for n in h] == [n.begin for n in q(p, 0, 400)]
    nudges = [n.nudge_s for n in h]
    vels = [n.velocity for n in h]
    assert max(abs(x) for x in nudges) <= 0.008 and abs(sum(nudges) / len(nudges)) < 0.0005
    assert max(nudges) > 0.007 and min(nudges) < -0.007
    assert all(0.8 * 0.75 <= v <= 0.8 * 1.25 for v in vels) and len(set(vels)) > 100
    with pytest.raises(ValueError, match="timing_ms"):
        p.humanise(timing_ms=40)
    with pytest.raises(ValueError, match="velocity"):
        p.humanise(velocity=2)


# -- pitch -----------------------------------------------------------------------------------------
def test_transpose_and_invert_move_pitches_and_leave_drums():
    p = stack(mini("c4 e4 g4"), mini("bd sd"))
    up = q(p.transpose(5))
    assert sorted(n.note for n in up if n.part == "lead") == [65, 69, 72]
    assert sorted(n.note for n in up if n.part == "drums") == [36, 38]
    inv = q(mini("c4 e4 g4").invert("e4"))
    assert [n.note for n in inv] == [68, 64, 61]        # 4 below, the axis, 3 above mirrored
    assert q(MELODY.invert(62).invert(62), 0, 16) == q(MELODY, 0, 16)
    assert q(mini("c4 g9").transpose(12)) == q(mini("c5 ~"))    # g10 is past 127: dropped


def test_range_folds_into_a_register_keeping_pitch_classes():
    p = mini("c1 e7 g4 b2 f5")
    got = q(p.range("c3", "b3"))
    assert [n.note % 12 for n in got] == [n.note % 12 for n in q(p)]
    assert all(48 <= n.note <= 59 for n in got)
    with pytest.raises(ValueError, match="11"):
        p.range("c3", "g3")


def test_scale_to_a_key_or_to_the_bands_chords():
    line = sequence(*[str(60 + k) for k in range(12)])
    a_minor = Key.parse("A minor")
    got = q(line.scale("A minor"))
    assert all(n.note % 12 in a_minor.scale for n in got)
    assert all(abs(n.note - m.note) <= 1 for n, m in zip(got, q(line)))

    class Changes(Ctx):
        def chord_at(self, beat):
            return Chord.parse("Am" if beat < 2 else "E7")
    got = q(line.scale(), ctx=Changes())
    for n in got:
        assert n.note % 12 in chord_scale(Changes().chord_at(n.begin))
    with pytest.raises(ValueError, match="chord_at"):
        q(line.scale())


def test_degrees_count_in_the_keys_scale():
    assert [n.note for n in q(degrees("0 2 4 -1", "A minor", 3))] == [57, 60, 64, 55]
    assert [n.note for n in q(degrees("0 1 2 3 4 5 6 7", "C", 4))] == \
        [60, 62, 64, 65, 67, 69, 71, 72]
    assert degree_note(Key.parse("Eb"), 9, 3) == 51 + 12 + 4
    with pytest.raises(ValueError, match="column 3"):
        degrees("0 x 2")


# -- rhythm ----------------------------------------------------------------------------------------
def test_euclid_plays_the_pattern_on_the_euclidean_steps():
    got = q(pure("bd").euclid(3, 8))
    assert [n.begin for n in got] == [F(i, 2) for i, on in enumerate(euclid(3, 8)) if on]
    assert q(mini("bd(5,8,2)"), 0, 8) == q(pure("bd").euclid(5, 8, 2), 0, 8)
    # a melody: each step takes the note sounding then
    assert [n.note for n in q(mini("c4 e4 g4 b4").euclid(3, 8))] == [60, 64, 71]


def test_ply_iter_off_legato_velocity():
    assert onsets(mini("c4 e4").ply(2)) == [(0, 60), (1, 60), (2, 64), (3, 64)]
    it = mini("c4 d4 e4 f4").iter(4)
    firsts = [q(it, 4 * c, 4 * c + 4)[0].note for c in range(5)]
    assert firsts == [60, 62, 64, 65, 60]
    assert sorted(n.note for n in q(it, 4, 8)) == [60, 62, 64, 65]
    off = q(mini("c4 e4").off("1/2", lambda x: x.transpose(12)))
    assert [(n.begin, n.note) for n in off] == [(0, 60), (F(1, 2), 72), (2, 64), (F(5, 2), 76)]
    assert [n.dur for n in q(mini("c4 e4").legato("1/2"))] == [1, 1]
    assert {n.velocity for n in q(MELODY.velocity(0.3))} == {0.3}


# -- mini-notation ---------------------------------------------------------------------------------
def test_mini_notation_reads_what_live_coders_type():
    assert onsets(mini("c4 e4 g4")) == [(0, 60), (F(4, 3), 64), (F(8, 3), 67)]
    assert onsets(mini("[c4, e4] g4")) == [(0, 60), (0, 64), (2, 67)]
    assert onsets(mini("<c4 e4> g4"), 0, 8) == [(0, 60), (2, 67), (4, 64), (6, 67)]
    assert onsets(mini("c4*2 e4/2"), 0, 8) == [(0, 60), (1, 60), (2, 64), (4, 60), (5, 60)]
    assert onsets(mini("c4@3 e4")) == [(0, 60), (3, 64)]
    assert onsets(mini("c4!3 e4")) == onsets(mini("c4 c4 c4 e4")) == onsets(mini("c4 ! ! e4"))
    assert onsets(mini("bd hh sd oh")) == [(0, 36), (1, 42), (2, 38), (3, 46)]
    assert onsets(mini("60 eb3 f#2 a")) == [(0, 60), (1, 51), (2, 42), (3, 57)]
    assert {n.part for n in q(mini("bd c4"))} == {"drums", "lead"}
    assert note_number("c4") == 60 and note_number("bs3") == 60


@pytest.mark.parametrize("text, where", [
    ("c4 e4]", "column 6"), ("[c4 e4", "expected ']'"), ("c4 zz4", "column 4"),
    ("", "empty"), ("c4*0", "> 0"), ("c4(9,8)", "k <= n"), ("c4(3)", "expected ','"),
    ("c4?2", "0..1"), ("<>", "empty <>"), ("c4 [ ] e4", "empty sequence"), ("c11", "outside"),
    ("! c4", "nothing before"),
])
def test_bad_mini_notation_says_where(text, where):
    with pytest.raises(ValueError, match=r"mini-notation.*" + re.escape(where)):
        mini(text)


def test_bad_arguments_raise_before_anything_plays():
    for bad in (lambda: MELODY.degrade(1.5), lambda: MELODY.degrade(0.5, seed=1.5),
                lambda: MELODY.ply(0), lambda: MELODY.iter(-1), lambda: MELODY.legato(0),
                lambda: MELODY.transpose(1.5), lambda: MELODY.velocity(2),
                lambda: MELODY.euclid(5, 3), lambda: pure("xyz"), lambda: pure(200),
                lambda: sequence("c4", "e4", weights=[1]), lambda: MELODY.scale("H minor")):
        with pytest.raises((TypeError, ValueError)):
            bad()


def test_on_puts_notes_on_a_part_and_refuses_pitches_on_drums():
    assert {n.part for n in q(MELODY.on("bass"), 0, 8)} == {"bass"}
    assert {n.note for n in q(mini("bd sd").on("drums"))} == {DRUM_NOTES["kick"],
                                                              DRUM_NOTES["snare"]}
    with pytest.raises(ValueError, match="drums part plays drums"):
        q(mini("c4").on("drums"))


def test_any_pure_query_composes():
    p = Pattern(lambda b, e, ctx: [Note(F(0), F(4), "keys", 60, 0.5)] if b <= 0 < e else [])
    assert onsets(p.ply(4).transpose(2)) == [(0, 62), (1, 62), (2, 62), (3, 62)]
