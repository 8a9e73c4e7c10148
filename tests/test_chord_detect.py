"""Chord recognition (engine.harmony.detect_chord): every quality, on every root, in every
inversion, spelled in close position and spread over two octaves, is recognised; inversions
are named as slash chords."""
import pytest

from engine.harmony import QUALITIES, Chord, detect_chord

# pitch-class sets that spell two chords (a chord and an inversion of another): recognising
# either is right, as long as the notes and the bass are the same
SYMMETRIC = {"aug", "dim7"}


def _voicing(order, base=48, spread=False):
    notes = []
    n = base + order[0]
    for k, pc in enumerate(order):
        while n % 12 != pc or (notes and n <= notes[-1]):
            n += 1
        notes.append(n + (12 if spread and k % 2 == 1 and k > 0 else 0))
        n = notes[-1] - (12 if spread and k % 2 == 1 and k > 0 else 0)
    return notes


@pytest.mark.parametrize("quality", list(QUALITIES))
@pytest.mark.parametrize("spread", [False, True])
def test_every_quality_and_inversion_recognised(quality, spread):
    ivs = QUALITIES[quality][0]
    exact = total = 0
    for root in range(12):
        tones = [(root + i) % 12 for i in ivs]
        for inv in range(len(tones)):
            order = tones[inv:] + tones[:inv]
            notes = _voicing(order, spread=spread)
            c = detect_chord(notes)
            assert c is not None, (quality, root, inv, notes)
            assert set(c.tones) == set(tones), (quality, root, inv, c.name)
            lowest = c.root if c.bass is None else c.bass
            assert lowest == min(notes) % 12, (quality, root, inv, c.name)
            total += 1
            exact += c.root == root and c.quality == quality
            if inv == 0 and quality not in SYMMETRIC:
                assert (c.root, c.quality) == (root, quality), (quality, root, c.name)
    # in inversions a few sets spell a commoner chord (Am7/C is C6, Csus2/D is Gsus4/D):
    # still many are exact
    assert exact / total >= (0.25 if quality in SYMMETRIC or quality in ("6", "min6", "5",
                                                                        "sus2", "sus4")
                             else 0.5), (quality, exact, total)


@pytest.mark.parametrize("notes,name", [
    ([52, 55, 60], "C/E"), ([55, 60, 64], "C/G"), ([52, 57, 60, 67], "Am7/E"),
    ([46, 50, 53, 57], "Bbmaj7"), ([53, 55, 60], "Fsus2"), ([48, 53, 55], "Csus4"),
    ([43, 59, 62, 65, 69], "G9"), ([48, 52, 55, 58, 61], "C7b9"),
    ([48, 52, 58, 63, 67], "C7#9"), ([48, 52, 55, 57, 62], "C69"),
    ([45, 48, 52, 55, 59, 62], "Am11"), ([43, 47, 53, 57, 64, 62], "G13"),
])
def test_slash_and_extended_chords_named(notes, name):
    assert detect_chord(notes).name == name


def test_names_parse_back():
    for q in QUALITIES:
        for root in range(12):
            for bass in (None, (root + 4) % 12):
                c = Chord(root, q, bass=bass)
                back = Chord.parse(c.name)
                assert back == c and back.bass == c.bass, c.name
