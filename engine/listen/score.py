"""A MIDI file read as a score (control side): when the player's part comes from a file, the
band knows all of it ahead, as an accompanist reading the score does.

`Score.read(path)` gives the file's tempo map (every set_tempo, in quarter-note beats), its
meter map (every time_signature: `meter`, an engine.meter.Meter in session beats, so the band's
bars fall on the file's bar lines through 4/4, 3/4, 6/8...; a time signature that is no meter
is skipped with a message in `meter_warnings`), where its first downbeat falls (a
pickup/anacrusis is found from the music, since a MIDI file does not say), its key (found from
the notes, engine.listen.key; and, for a piece that modulates, the key of each bar: `keys`)
and the harmony of every beat.

Session time: the file's first downbeat is the start of one of the band's bars; a pickup of p
beats starts p beats before a bar line (`offset_beats`: session beat = file beat + offset). A file that opens
with silence is taken to start on a bar line, as a sequencer writes it.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import mido

from controllers.midifile import DEFAULT_TEMPO_US, _load
from engine.harmony import Chord
from engine.listen.key import Key, find_key, histogram, key_scores
from engine.meter import Meter, check_signature

__all__ = ["Score", "ScoreNote", "find_pickup", "beat_chord"]


@dataclass(frozen=True, slots=True)
class ScoreNote:
    beat: Fraction        # onset, quarter-note beats from the file's start
    dur: Fraction
    note: int
    velocity: int         # 1..127


def find_pickup(notes: list[ScoreNote], beats_per_bar: int) -> Fraction:
    """How many beats before the first bar line the music starts (0 without a pickup).

    Long notes start on strong beats: each candidate phase (whole beats, 0..beats_per_bar-1)
    is scored by the summed squared duration of the notes starting on it. In an even meter the
    half-bar is strong as well, so a phase and the one half a bar later are scored together and
    the shorter pickup of the two is taken (a piece starts on its downbeat or just before it
    far more often than half a bar before it)."""
    if not notes:
        return Fraction(0)
    weight = [0.0] * beats_per_bar
    for n in notes:
        if n.beat.denominator == 1:
            weight[int(n.beat) % beats_per_bar] += float(n.dur) ** 2
    half = beats_per_bar // 2 if beats_per_bar % 2 == 0 else 0
    if half:
        weight = [weight[p] + weight[(p + half) % beats_per_bar] for p in range(half)]
    best = max(range(len(weight)), key=lambda p: (weight[p] > max(weight) * (1 - 1e-9), -p))
    return Fraction(best)


# qualities a beat of a score may be read as (most common first: ties go to the earlier)
_BEAT_QUALITIES = ("maj", "min", "7", "dim", "min7", "m7b5", "dim7", "maj7", "aug")


def beat_chord(weights: list[float], bass: int | None) -> Chord | None:
    """The chord best explaining a beat's pitch-class ``weights`` (12, summed duration, notes
    sounding at the beat's start counted double) with ``bass`` the lowest note at the start;
    None when fewer than two pitch classes sound (a unison keeps the harmony before)."""
    from engine.harmony import QUALITIES
    total = sum(weights)
    if total <= 0 or sum(1 for w in weights if w > 0) < 2:
        return None
    w = [x / total for x in weights]
    best, best_chord = None, None
    for root in range(12):
        for rank, q in enumerate(_BEAT_QUALITIES):
            ivs = QUALITIES[q][0]
            tones = {(root + i) % 12 for i in ivs}
            inside = sum(w[p] for p in tones)
            missing = sum(1 for p in tones if w[p] == 0)
            if len(ivs) > 3 and w[(root + ivs[3]) % 12] == 0:
                continue                  # a seventh chord needs its seventh
            score = 2 * inside - 1 - 0.2 * missing - 0.03 * rank
            if bass is not None:
                score += 0.12 if bass == root else (0.04 if bass in tones else -0.1)
            if best is None or score > best:
                best = score
                b = bass if bass is not None and bass in tones else None
                best_chord = Chord(root, q, bass=b)
    return best_chord


class Score:
    """A MIDI file's music known ahead: tempo map, meter, pickup, key, notes, harmony."""

    def __init__(self, path, ticks_per_beat: int, tempos: list[tuple[Fraction, float]],
                 beats_per_bar: int, notes: list[ScoreNote], key: Key | None,
                 signature: Key | None, messages: list[tuple[Fraction, mido.Message]],
                 end_beat: Fraction, meters: list[tuple[Fraction, int, int]] = (),
                 meter_warnings: list[str] = ()):
        self.path = path
        self.ticks_per_beat = ticks_per_beat
        self.tempos = tempos                   # [(file beat, bpm)], the first at beat 0
        self.beats_per_bar = beats_per_bar
        self.notes = notes
        self.key = key
        self.signature = signature            # the file's key_signature, if any
        self.messages = messages               # (file beat, channel message), time order
        self.end_beat = end_beat
        # (file beat, numerator, denominator) of every time signature read, the first at 0
        self.meters = list(meters) or [(Fraction(0), 4, 4)]
        self.meter_warnings = list(meter_warnings)
        # a file that opens with silence starts on a bar line (a sequencer's export: a pickup
        # is preceded by rests); one whose music starts at once may open with a pickup. The
        # pickup is looked for in the first meter's music; a file whose meter changes inside
        # its first bar wrote its pickup as a short bar of its own.
        change = self.meters[1][0] if len(self.meters) > 1 else None
        first = [n for n in notes if change is None or n.beat < change]
        starts_silent = bool(notes) and notes[0].beat >= Fraction(1, 4)
        short_first_bar = change is not None and \
            change < Fraction(4 * self.meters[0][1], self.meters[0][2])
        self.pickup_beats = Fraction(0) if starts_silent or short_first_bar \
            else find_pickup(first, beats_per_bar)
        self.offset_beats = (-self.pickup_beats) % beats_per_bar
        #: the meter map in session beats: the band's bars on the file's bar lines
        self.meter = Meter.from_changes(
            [(Fraction(0), self.meters[0][1], self.meters[0][2])]
            + [(self.session_beat(b), n, d) for b, n, d in self.meters[1:]])

    @classmethod
    def read(cls, path) -> Score:
        """Read a MIDI file (MidiFileError, naming it, when missing or broken)."""
        from controllers.base import DEFAULT_ACCEPT
        from controllers.midifile import _normalized
        mid, _ = _load(path)
        tpb = mid.ticks_per_beat
        tempos: dict[Fraction, float] = {Fraction(0): 60e6 / DEFAULT_TEMPO_US}
        signatures: dict[Fraction, tuple[int, int]] = {}
        warnings: list[str] = []
        key_name = None
        messages: list[tuple[Fraction, mido.Message]] = []
        open_notes: dict[tuple[int, int], list[tuple[Fraction, int]]] = {}
        notes: list[ScoreNote] = []
        tick = 0
        accept = frozenset(DEFAULT_ACCEPT)
        for msg in mido.merge_tracks(mid.tracks):
            tick += msg.time
            beat = Fraction(tick, tpb)
            if msg.type == "set_tempo":
                tempos[beat] = 60e6 / msg.tempo
            elif msg.type == "time_signature":
                try:
                    check_signature(msg.numerator, msg.denominator)
                except ValueError as e:
                    warnings.append(f"{path}: beat {float(beat):g}: {e}; the meter before "
                                    "it stays")
                else:
                    # a change is put on the sixteenth grid (a bar's length is on it)
                    signatures[Fraction(round(beat * 4), 4)] = (msg.numerator, msg.denominator)
            elif msg.type == "key_signature" and key_name is None:
                key_name = msg.key
            if msg.type in accept:
                m = _normalized(msg)
                messages.append((beat, m))
                if m.type == "note_on":
                    open_notes.setdefault((m.channel, m.note), []).append((beat, m.velocity))
                elif m.type == "note_off":
                    pending = open_notes.get((m.channel, m.note))
                    if pending:
                        start, vel = pending.pop(0)
                        notes.append(ScoreNote(start, beat - start, m.note, vel))
        end = Fraction(tick, tpb)
        for (_, n), pending in open_notes.items():
            notes.extend(ScoreNote(s, end - s, n, v) for s, v in pending)
        notes.sort(key=lambda n: (n.beat, n.note))
        if notes:
            end = max(n.beat + n.dur for n in notes)
        meters = [(b, n, d) for b, (n, d) in sorted(signatures.items())]
        if not meters or meters[0][0] > 0:
            meters.insert(0, (Fraction(0), 4, 4))          # MIDI's meter before any is 4/4
        # the same meter again is no change (an export restates it at each track's or
        # repeat's start, not always on a bar line)
        meters = [m for k, m in enumerate(meters) if k == 0 or m[1:] != meters[k - 1][1:]]
        num, den = meters[0][1:]
        quarters = Fraction(4 * num, den)
        # a meter of a fractional number of quarters (3/8, 5/8) counts two of its bars as one
        bpb = int(quarters if quarters.denominator == 1 else 2 * quarters)
        bpb = max(2, min(12, bpb if bpb >= 2 else 2 * bpb))
        signature = None
        if key_name:
            try:
                signature = Key.parse(key_name)
            except ValueError:
                signature = None
        # the key heard in the notes (a key signature does not tell a modal chorale's mode)
        key = find_key((n.note, float(n.dur)) for n in notes) or signature
        return cls(path, tpb, sorted(tempos.items()), bpb, notes, key, signature, messages,
                   end, meters, warnings)

    # ---- session time -----------------------------------------------------------------------
    def session_beat(self, file_beat: Fraction) -> Fraction:
        return Fraction(file_beat) + self.offset_beats

    @property
    def session_end(self) -> Fraction:
        return self.session_beat(self.end_beat)

    def tempo_map(self) -> list[tuple[Fraction, float]]:
        """(session beat, bpm) for every tempo change; the first also holds before the file."""
        clamp = lambda bpm: min(400.0, max(20.0, bpm))  # noqa: E731 - the clock's range
        out = [(Fraction(0), clamp(self.tempos[0][1]))]
        for beat, bpm in self.tempos[1:]:
            out.append((self.session_beat(beat), clamp(bpm)))
        return out

    def seconds(self) -> float:
        """How long the band plays the file for, from the session's start to the file's end."""
        total, tempos = 0.0, self.tempo_map() + [(self.session_end, 0.0)]
        for (b0, bpm), (b1, _) in zip(tempos, tempos[1:]):
            if b1 > b0:
                total += float(b1 - b0) * 60.0 / bpm
        return total

    # ---- keys -------------------------------------------------------------------------------------
    def keys(self, window_bars: int = 4, margin: float = 0.1) -> list[tuple[Fraction, Key]]:
        """The key of each bar where it changes, as (session beat, Key): the notes of a window
        of ``window_bars`` bars around the bar (duration-weighted), with hysteresis: the key in
        force (at first the file's key) stays until another one correlates better by
        ``margin`` (a modulation, not a passing secondary dominant)."""
        if self.key is None:
            return []
        bpb, meter = self.beats_per_bar, self.meter
        bars = meter.bar_at(self.session_end) + (meter.next_bar_line(self.session_end)
                                                  != self.session_end)
        out = [(Fraction(0), self.key)]
        current = self.key
        for bar in range(bars):
            lo = meter.bar_start(bar) - self.offset_beats - Fraction(window_bars * bpb, 2)
            hi = lo + window_bars * bpb
            h = histogram((n.note, float(min(n.beat + n.dur, hi) - max(n.beat, lo)))
                          for n in self.notes if n.beat < hi and n.beat + n.dur > lo)
            if sum(h) <= 0:
                continue
            scores = key_scores(h)
            best = max(scores, key=lambda k: (scores[k], -k.tonic, k.mode == "major"))
            if best != current and scores[best] >= scores[current] + margin:
                current = best
                out.append((meter.bar_start(bar), best))
        return out

    # ---- harmony ------------------------------------------------------------------------------
    def harmony(self) -> list[tuple[Fraction, Chord]]:
        """The chord of every beat where it changes, as (session beat, Chord): each beat's notes
        (sounding at its start counted double, the passing notes inside it once) read as the
        chord that explains most of them, the lowest note at its start as the bass (an
        inversion is a slash chord). A beat of a single pitch class keeps the chord before; the
        band's bar before a pickup plays the first chord."""
        first_beat = int(self.session_beat(Fraction(0)))
        last_beat = int(-(-self.session_end // 1))
        by_start = sorted(self.notes, key=lambda n: n.beat)
        changes: list[tuple[Fraction, Chord]] = []
        prev: Chord | None = None
        lo = 0
        for b in range(first_beat, last_beat):
            t0 = Fraction(b) - self.offset_beats
            t1 = t0 + 1
            while lo < len(by_start) and by_start[lo].beat + by_start[lo].dur <= t0 - 16:
                lo += 1
            weights = [0.0] * 12
            at_start = []
            for n in by_start[lo:]:
                if n.beat >= t1:
                    break
                end = n.beat + n.dur
                if end <= t0:
                    continue
                overlap = float(min(end, t1) - max(n.beat, t0))
                weights[n.note % 12] += overlap
                if n.beat <= t0 < end:
                    weights[n.note % 12] += overlap
                    at_start.append(n.note)
            bass_notes = at_start or [n.note for n in by_start[lo:]
                                      if n.beat < t1 and n.beat + n.dur > t0]
            chord = beat_chord(weights, min(bass_notes) % 12 if bass_notes else None)
            if chord is None:
                continue
            if prev is None or chord != prev or chord.bass != prev.bass:
                changes.append((Fraction(b), chord))
                prev = chord
        if changes and changes[0][0] > 0:
            changes.insert(0, (Fraction(0), changes[0][1]))
        return changes
