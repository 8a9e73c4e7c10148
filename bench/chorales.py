"""Musicianship figures on the Bach chorales of music21's corpus (needs music21, the `test`
extra).

- follow: chorales exported to MIDI at a given tempo and played as the player
  (`bandmate render --midi`, every agent on): the player's onsets on the band's sixteenth grid,
  the bass's onsets on a pitch class the player sounds at that moment, the band's notes (drums
  aside) in the file's key (and in the key or doubling the player).
- meter: chorales whose meter changes (4/4 to 3/4 or 3/2) played as the player: the share of
  music21's measures that start one of the band's bars (engine.meter: the file's time
  signatures read as a meter map; a measure shorter than its meter that no time signature
  marks cannot be known from the MIDI file).
- pickup: how often the file's first downbeat is found (music21's first measure as reference).
- key: key-finding accuracy over every chorale, per profile (engine.listen.key). The reference
  key is the score's key signature, its mode decided by the final bass note: the major tonic of
  the signature -> major, its relative minor -> minor; a chorale ending on neither (a modal or
  a half-cadence ending) has no reference and is left out (counted as `unreferenced`). It is
  NOT music21's own `analyze('key')`, itself a profile method.

    python bench/chorales.py [--json] [--render] [--no-key]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.listen.key import PROFILES, Key, find_key  # noqa: E402

#: chorales whose meter changes (music21's corpus)
METER_SET = ("bach/bwv27.6", "bach/bwv171.6", "bach/bwv304")

#: (chorale, tempo BPM): a minor one, a major one, one in A major, at various tempos
FOLLOW_SET = (("bach/bwv66.6", 96), ("bach/bwv269", 66), ("bach/bwv3.6", 132),
              ("bach/bwv145.5", 96))


def export_chorale(name: str, tempo_bpm: float, path: Path):
    """Write chorale `name` as a MIDI file at `tempo_bpm` (its own marks replaced); returns the
    music21 score."""
    from music21 import corpus, tempo
    score = corpus.parse(name)
    for mark in list(score.recurse().getElementsByClass(tempo.MetronomeMark)):
        mark.activeSite.remove(mark)
    score.insert(0, tempo.MetronomeMark(number=tempo_bpm))
    score.write("midi", fp=str(path))
    return score


def reference_pickup(score) -> Fraction:
    """The pickup (quarter notes) music21 reads in the score: what its first measure lacks."""
    part = score.parts[0]
    first = part.getElementsByClass("Measure")[0]
    ts = first.timeSignature or part.recurse().getElementsByClass("TimeSignature").first()
    bar = Fraction(ts.barDuration.quarterLength) if ts else Fraction(4)
    have = Fraction(first.duration.quarterLength)
    return have % bar if have < bar else Fraction(0)


def reference_key(score) -> Key | None:
    """Key signature + final bass note (see the module's docstring); None when undecided."""
    from music21 import key as m21key
    ks = score.recurse().getElementsByClass(m21key.KeySignature).first()
    if ks is None:
        return None
    major = ks.asKey("major").tonic.pitchClass
    minor = ks.asKey("minor").tonic.pitchClass
    notes = list(score.parts[-1].recurse().notes)
    if not notes:
        return None
    last = notes[-1]
    low = min(p.midi for p in last.pitches)
    if low % 12 == major:
        return Key(major, "major")
    if low % 12 == minor:
        return Key(minor, "minor")
    return None


def key_accuracy(limit: int | None = None) -> dict:
    """Accuracy of find_key (each profile) against reference_key over the corpus."""
    from music21 import corpus
    names = sorted({str(p) for p in corpus.getComposer("bach")
                    if "bwv" in str(p) and str(p).endswith((".mxl", ".xml", ".krn"))})
    right = {p: 0 for p in PROFILES}
    n = unreferenced = 0
    for path in names[:limit]:
        try:
            score = corpus.parse(path)
        except Exception:  # noqa: BLE001 - an unreadable corpus file is left out
            continue
        if len(score.parts) < 4:
            continue
        ref = reference_key(score)
        if ref is None:
            unreferenced += 1
            continue
        notes = [(p.midi, float(n_.duration.quarterLength)) for n_ in score.recurse().notes
                 for p in n_.pitches]
        n += 1
        for profile in PROFILES:
            right[profile] += find_key(notes, profile) == ref
    return {"chorales": n, "unreferenced": unreferenced,
            **{f"key_accuracy_{p}": round(right[p] / max(n, 1), 4) for p in PROFILES}}


def follow(name: str, tempo_bpm: float, render: bool = False, seed: int = 1) -> dict:
    """Play chorale `name` at `tempo_bpm` as the player with every agent on; its figures.
    `render`: through the whole offline render (audio kernel included) rather than the band's
    notes alone (the same notes either way)."""
    from engine.config import load_config
    from engine.control import export
    from engine.control.session import Session
    from engine.listen.metrics import bass_on_player, in_key, on_grid
    from engine.listen.score import Score
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        mid = Path(tmp) / "chorale.mid"
        m21 = export_chorale(name, tempo_bpm, mid)
        cfg = load_config(root / "config.toml", {"band": {
            "seed": seed, "drums": True, "bass": True, "chords": True, "lead": True}},
            environ={})
        session = Session(cfg, 48000, root=root)
        score = Score.read(mid)
        session.follow_score(score)
        if render:
            export.render(session, score.seconds() + 1.0, Path(tmp) / "chorale.wav",
                          progress=False, midi_in=mid)
            notes = list(session.recorder.notes)
        else:
            notes = band_and_player(session, score)
    player = [n for n in notes if n.part == "keys"]
    # "in the key": the reference key (signature + final bass) where it is decided, else the
    # key the band found
    key = reference_key(m21) or score.key
    return {
        "chorale": name, "tempo_bpm": tempo_bpm, "key": str(key), "key_found": str(score.key),
        "pickup_beats": float(score.pickup_beats),
        "pickup_right": score.pickup_beats == reference_pickup(m21),
        "player_on_grid": round(on_grid([n.start_s for n in player], session.clock), 4),
        "bass_on_player": round(bass_on_player(notes), 4),
        "band_in_key": round(in_key(notes, key.scale), 4),
        "band_in_local_key": round(in_key(notes, local_scale(session, score)), 4),
        "player_in_key": round(in_key(notes, key.scale, parts=("keys",)), 4),
        "band_in_key_or_player": round(in_key(notes, key.scale, or_player=True), 4),
    }


def local_scale(session, score):
    """The scale of the score's key in force at a time (seconds): Score.keys."""
    from bisect import bisect_right
    keys = score.keys()
    starts = [session.clock.sample_at(b) / session.sample_rate for b, _ in keys]
    return lambda t: keys[max(0, bisect_right(starts, t + 0.03) - 1)][1].scale


def band_and_player(session, score) -> list:
    """The band's notes over the whole score (queried as the scheduler would, without audio)
    and the file's notes, as seconds records."""
    from engine.control.scheduler import Played
    clock = session.clock
    end = clock.next_bar(score.session_end)
    sr = session.sample_rate
    notes = session.scheduler.band.query(Fraction(0), end, session.ctx)
    out = []
    for n in notes:
        t0 = clock.sample_at(n.begin) / sr + n.nudge_s
        out.append(Played(t0, clock.sample_at(n.begin + n.dur) / sr - t0, n.part, n.note,
                          n.velocity))
    for s in score.notes:
        b = score.session_beat(s.beat)
        t0 = clock.sample_at(b) / sr
        out.append(Played(t0, clock.sample_at(b + s.dur) / sr - t0, "keys", s.note,
                          s.velocity / 127))
    return out


def meter_follow(name: str, tempo_bpm: float = 96) -> dict:
    """Chorale `name` (its meter changes) as the player: the meters read from its MIDI file,
    and the share of music21's measures (after the first) that start a bar of the band."""
    from engine.config import load_config
    from engine.control.session import Session
    from engine.listen.metrics import on_grid
    from engine.listen.score import Score
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        mid = Path(tmp) / "chorale.mid"
        m21 = export_chorale(name, tempo_bpm, mid)
        score = Score.read(mid)
    cfg = load_config(root / "config.toml", {"band": {"seed": 1}}, environ={})
    session = Session(cfg, 48000, root=root)
    session.follow_score(score)
    meter = session.clock.meter
    offsets = [Fraction(m.offset).limit_denominator(64)
               for m in m21.parts[0].getElementsByClass("Measure") if m.offset > 0]
    on_bar = sum(meter.bar_start(meter.bar_at(b)) == b
                 for b in map(score.session_beat, offsets))
    played = band_and_player(session, score)
    return {"chorale": name, "meters": " ".join(f"{n}/{d}@{float(b):g}"
                                                for b, n, d in score.meters),
            "measures_on_band_bars": round(on_bar / max(len(offsets), 1), 4),
            "player_on_grid": round(on_grid([n.start_s for n in played if n.part == "keys"],
                                            session.clock), 4)}


def pickup_accuracy(limit: int | None = None) -> dict:
    """How often Score finds music21's pickup, over the corpus's chorales exported to MIDI."""
    from music21 import corpus
    from engine.listen.score import Score
    names = sorted({str(p) for p in corpus.getComposer("bach") if "bwv" in str(p)})
    right = n = 0
    with tempfile.TemporaryDirectory() as tmp:
        for path in names[:limit]:
            try:
                m21 = corpus.parse(path)
                if len(m21.parts) < 4:
                    continue
                mid = Path(tmp) / "c.mid"
                m21.write("midi", fp=str(mid))
                ref = reference_pickup(m21)
            except Exception:  # noqa: BLE001 - an unreadable corpus file is left out
                continue
            n += 1
            right += Score.read(mid).pickup_beats == ref
    return {"pickup_chorales": n, "pickup_accuracy": round(right / max(n, 1), 4)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--render", action="store_true", help="through the audio render")
    ap.add_argument("--no-key", action="store_true", help="skip the corpus-wide figures")
    args = ap.parse_args()
    out: dict = {"follow": [follow(n, t, args.render) for n, t in FOLLOW_SET]
                 + [meter_follow(n) for n in METER_SET]}
    if not args.no_key:
        out.update(key_accuracy())
        out.update(pickup_accuracy())
    if args.json:
        print(json.dumps(out))
    else:
        for row in out.pop("follow"):
            print("  ".join(f"{k}={v}" for k, v in row.items()))
        print("\n".join(f"{k}: {v}" for k, v in out.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
