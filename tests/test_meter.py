"""The meter map (engine.meter): a MIDI file played as the player brings its meter changes, and
the band plays bars of the file's lengths on the file's bar lines (4/4, 3/4, 6/8, 5/4, 7/8...).
"""
from fractions import Fraction
from pathlib import Path

import mido
import pytest

from bench.chorales import band_and_player
from engine.agents.drums import DrumAgent
from engine.config import load_config
from engine.control.session import Session
from engine.listen.metrics import on_grid
from engine.listen.score import Score
from engine.meter import Meter, pulses_for, step_source
from engine.parts import DRUM_NOTES
from tests.enginekit import write_midi

ROOT = Path(__file__).resolve().parent.parent
F = Fraction

#: (numerator, denominator, bars): the chorale-like file's meters
CHANGES = ((4, 4, 2), (3, 4, 3), (6, 8, 2), (5, 4, 2), (7, 8, 2), (4, 4, 2))
PROG = [(48, 64, 67), (53, 65, 69), (43, 62, 71), (48, 64, 72), (45, 64, 69), (50, 65, 69)]


def _meter_file(path, changes=CHANGES, pickup=0, tempo_bpm=100, extra_meta=()):
    """A chorale-like file in the meters of ``changes``: a long bass on every downbeat, the
    upper voices a chord on each pulse of the bar (engine.meter.pulses_for), a chord a bar;
    a melody note of ``pickup`` beats before the first downbeat; ``extra_meta``: (beat,
    MetaMessage) put in as they are. Returns the file's bar lines (file beats) and the bar
    lengths."""
    tpb = 480
    events = [(0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm)))]
    events += [(int(b * tpb), m) for b, m in extra_meta]
    notes, lines, lengths = [], [], []
    t = F(pickup)
    if pickup:
        notes.append((F(0), F(pickup), 67))
    k = 0
    for num, den, bars in changes:
        events.append((int(t * tpb), mido.MetaMessage("time_signature", numerator=num,
                                                      denominator=den)))
        length = F(4 * num, den)
        for _ in range(bars):
            chord = PROG[k % len(PROG)]
            k += 1
            lines.append(t)
            lengths.append(length)
            notes.append((t, length, chord[0]))
            at = t
            for p in pulses_for(num, den):
                for n in chord[1:]:
                    notes.append((at, F(p, 4), n))
                at += F(p, 4)
            t += length
    if pickup:        # the pickup's time signature is the first bar's, at tick 0
        events = [(0 if isinstance(m, mido.MetaMessage) and m.type == "time_signature"
                   and tick == pickup * tpb else tick, m) for tick, m in events]
    write_midi(path, events, [(start * tpb, (start + dur) * tpb, n) for start, dur, n in notes],
               tpb)
    return lines, lengths


def _session(style="rock"):
    cfg = load_config(ROOT / "config.toml", {"band": {
        "seed": 3, "style": style, "drums": True, "bass": True, "chords": True,
        "lead": True}}, environ={})
    return Session(cfg, 48000, root=ROOT)


# ---- the map ----------------------------------------------------------------------------------
def test_a_constant_meter_counts_the_bars_the_band_always_counted():
    for n in (2, 3, 4, 5, 7, 12):
        m = Meter.constant(n)
        assert m.is_constant and m.beats_per_bar == n
        for bar in range(-3, 40):
            assert m.bar_start(bar) == bar * n and m.bar_length(bar) == n
        for beat in (F(0), F(1, 3), F(n), F(7 * n - 1, 2), F(-1)):
            assert m.bar_at(beat) == beat // n
            assert m.next_bar_line(beat) == -(-beat // n) * n
        assert m.bars_in(F(0), F(n)) == range(0, 1)
        assert m.bars_in(F(1), F(2 * n + 1)) == range(0, 3)


def test_the_map_follows_changes_and_cuts_a_bar_a_change_falls_inside():
    m = Meter.from_changes([(0, 4, 4), (8, 3, 4), (14, 6, 8), (20, 7, 8), (27, 4, 4)])
    starts = [m.bar_start(b) for b in range(10)]
    assert starts == [0, 4, 8, 11, 14, 17, 20, F(47, 2), 27, 31]
    assert [m.bar_length(b) for b in range(9)] == [4, 4, 3, 3, 3, 3, F(7, 2), F(7, 2), 4]
    for b in range(-2, 12):                       # bar_at inverts bar_start
        assert m.bar_at(m.bar_start(b)) == b
        assert m.bar_at(m.bar_start(b + 1) - F(1, 64)) == b
    assert m.signature(5) == (6, 8) and m.pulses(5) == (6, 6)
    assert m.pulses(7) == (4, 4, 6) and m.next_bar_line(F(21)) == F(47, 2)
    cut = Meter.from_changes([(0, 4, 4), (6, 3, 4)])      # a change inside bar 1
    assert [(cut.bar_start(b), cut.bar_length(b)) for b in range(3)] == [(0, 4), (4, 2), (6, 3)]
    assert cut.pulses(1) == (4, 4)
    same = Meter.from_changes([(0, 3, 4), (6, 3, 4)])     # the same meter again: no change
    assert same.is_constant


def test_pulses_and_the_4_4_steps_each_meter_plays():
    assert pulses_for(3, 4) == (4, 4, 4) and pulses_for(6, 8) == (6, 6)
    assert pulses_for(9, 8) == (6, 6, 6) and pulses_for(12, 8) == (6, 6, 6, 6)
    assert pulses_for(5, 8) == (4, 6) and pulses_for(7, 8) == (4, 4, 6)
    assert pulses_for(3, 2) == (4,) * 6 and pulses_for(7, 16) == (4, 3)
    # 3/4: beats 1, 2 and 4 of the 4/4 pattern; 6/8: beats 1 and 4, their eighths on every
    # eighth of a dotted quarter
    assert [step_source((4, 4, 4), s) for s in range(12)] == [0, 1, 2, 3, 4, 5, 6, 7,
                                                               12, 13, 14, 15]
    assert [step_source((6, 6), s) for s in (0, 2, 4, 6, 8, 10)] == [0, 2, 2, 12, 14, 14]
    assert [step_source((4,) * 4, s) for s in range(16)] == list(range(16))


@pytest.mark.parametrize("sig,why", [((0, 4), "numerator"), ((255, 4), "longer than 16"),
                                     ((7, 32), "denominator"), ((4, 1024), "denominator"),
                                     ((4, 3), "denominator")])
def test_a_signature_that_is_no_meter_is_refused_with_its_reason(sig, why):
    with pytest.raises(ValueError, match=why):
        Meter.from_changes([(0, 4, 4), (4, *sig)])


def test_changes_out_of_order_are_refused():
    with pytest.raises(ValueError, match="beat 0"):
        Meter.from_changes([(4, 3, 4)])
    with pytest.raises(ValueError, match="not after"):
        Meter.from_changes([(0, 4, 4), (8, 3, 4), (8, 6, 8)])


# ---- a score's meter --------------------------------------------------------------------------
def test_the_scores_meter_map_is_the_files_time_signatures(tmp_path):
    lines, lengths = _meter_file(tmp_path / "m.mid")
    score = Score.read(tmp_path / "m.mid")
    beat = F(0)
    want = []
    for num, den, bars in CHANGES:
        want.append((beat, num, den))
        beat += bars * F(4 * num, den)
    assert score.meters == want and score.meter_warnings == []
    assert score.pickup_beats == 0
    m = score.meter
    for bar, (line, length) in enumerate(zip(lines, lengths)):
        assert m.bar_start(bar) == score.session_beat(line) and m.bar_length(bar) == length
        assert m.signature(bar) == next(
            (n, d) for b, n, d in reversed(want) if b <= line)


def test_a_pickup_keeps_the_changes_on_the_files_bar_lines(tmp_path):
    changes = ((4, 4, 3), (3, 4, 3), (4, 4, 2))
    lines, lengths = _meter_file(tmp_path / "p.mid", changes, pickup=1)
    score = Score.read(tmp_path / "p.mid")
    assert score.pickup_beats == 1 and score.offset_beats == 3
    m = score.meter
    first = m.bar_at(score.session_beat(lines[0]))
    assert first == 1                              # bar 0 is the band's count-in bar
    for k, (line, length) in enumerate(zip(lines, lengths)):
        assert m.bar_start(first + k) == score.session_beat(line)
        assert m.bar_length(first + k) == length


def test_odd_time_signatures_are_read_sensibly_or_skipped_with_a_message(tmp_path):
    odd = [(F(8), mido.MetaMessage("time_signature", numerator=0, denominator=4)),
           (F(8), mido.MetaMessage("time_signature", numerator=255, denominator=4)),
           (F(16), mido.MetaMessage("time_signature", numerator=7, denominator=32))]
    _meter_file(tmp_path / "o.mid", ((4, 4, 4), (2, 2, 2), (3, 16, 2), (4, 4, 2)),
                extra_meta=odd)
    score = Score.read(tmp_path / "o.mid")
    assert len(score.meter_warnings) == 3
    assert all("o.mid" in w and "the meter before it stays" in w
               for w in score.meter_warnings)
    assert any("0/4" in w for w in score.meter_warnings)
    assert any("255/4" in w and "longer than 16" in w for w in score.meter_warnings)
    # 2/2: bars of four beats (no change from 4/4's bar lines); 3/16: bars of 3/4 of a beat
    assert [(n, d) for _, n, d in score.meters] == [(4, 4), (2, 2), (3, 16), (4, 4)]
    m = score.meter
    assert [m.bar_length(b) for b in range(8)] == [4, 4, 4, 4, 4, 4, F(3, 4), F(3, 4)]
    session = _session()
    session.follow_score(score)
    notes = band_and_player(session, score)            # the band plays through it all
    band = [n for n in notes if n.part != "keys"]
    assert band and max(n.start_s for n in band) > session.clock.sample_at(F(26)) / 48000


# ---- the band in the file's meters -----------------------------------------------------------
def _bar_starts(session, score, lines):
    return [score.session_beat(b) for b in lines]


@pytest.mark.parametrize("style", ["rock", "jazz", "bossa"])
def test_the_band_plays_the_files_bars(tmp_path, style):
    lines, lengths = _meter_file(tmp_path / "m.mid")
    score = Score.read(tmp_path / "m.mid")
    session = _session(style)
    session.follow_score(score)
    ctx, clock = session.ctx, session.clock
    band = session.scheduler.band
    end = clock.next_bar(score.session_end)
    notes = band.query(F(0), end, ctx)
    starts = _bar_starts(session, score, lines)
    kick = DRUM_NOTES["kick"]
    for bar, (start, length) in enumerate(zip(starts, lengths)):
        # every agent's bar is the file's bar: its start and length
        for agent in session.band.agents:
            info = agent.bar_info(bar, ctx)
            assert (info.start, info.beats) == (start, length), (agent.name, bar)
            assert sum(info.beat_pulses) == info.steps == 4 * length
        here = [n for n in notes if start <= n.begin < start + length]
        # the downbeat: the kick (the jazz drummer's ride: its kick feathers) and the bass on
        # the file's bar line
        assert any(n.part == "drums" and (n.note == kick or style == "jazz")
                   and n.begin == start for n in here), (style, bar)
        assert any(n.part == "bass" and n.begin == start for n in here), (style, bar)
    # the player's onsets on the band's sixteenth grid
    played = band_and_player(session, score)
    player = [n.start_s for n in played if n.part == "keys"]
    assert on_grid(player, clock) >= 0.95


def test_the_drums_keep_the_backbone_of_each_meter(tmp_path):
    """Rock: the snare's backbeat where the meter's strong beats have it (3/4 on beats 2 and
    3, 6/8 on the second dotted quarter, 5/4 on 2, 4 and 5), a hat on every eighth; no bar
    borrows a beat of the next."""
    lines, lengths = _meter_file(tmp_path / "m.mid")
    score = Score.read(tmp_path / "m.mid")
    session = _session("rock")
    session.follow_score(score)
    ctx = session.ctx
    drums = DrumAgent(None, None)
    snare, hat = DRUM_NOTES["snare"], (DRUM_NOTES["closed_hat"], DRUM_NOTES["open_hat"])
    expect = {F(3): {F(1), F(2)}, F(5): {F(1), F(3), F(4)}, F(4): {F(1), F(3)}}
    checked = set()
    for bar, length in enumerate(lengths):
        info = drums.bar_info(bar, ctx)
        if drums.fill_for(info) is not None or info.intensity < 0.3:
            continue
        got = drums.bar(bar, ctx)
        rel_snare = {n.begin - info.start for n in got if n.note == snare and n.velocity > 0.5}
        sig = ctx.meter.signature(bar)
        if sig == (6, 8):
            assert F(3, 2) in rel_snare and F(0) not in rel_snare
        elif length in expect:
            assert expect[length] <= rel_snare, (bar, sig, rel_snare)
        hats = {n.begin - info.start for n in got if n.note in hat}
        assert {F(k, 2) for k in range(int(2 * length))} - hats <= {F(0)}, (bar, hats)
        checked.add(sig)
    assert {(3, 4), (6, 8), (5, 4)} <= checked


def test_the_render_plays_the_files_bars_the_same_in_any_block_size(tmp_path):
    """The whole offline render (the file through the MIDI queue, the band through the
    scheduler's windows): the bass and the kick sound on every bar line of the file, in every
    meter, and blocks of 64 or 1000 samples give the same notes (the meter map is a pure
    function, as the live scheduler needs)."""
    from engine.control import export
    lines, _ = _meter_file(tmp_path / "m.mid", tempo_bpm=132)
    runs = []
    for block in (64, 1000):
        score = Score.read(tmp_path / "m.mid")
        session = _session("funk")
        session.follow_score(score)
        export.render(session, score.seconds() + 0.5, tmp_path / f"m{block}.wav",
                      block_size=block, progress=False, midi_in=tmp_path / "m.mid")
        runs.append([(n.part, n.note, n.start_s, n.dur_s) for n in session.recorder.notes])
    assert len(runs[0]) > 100 and runs[0] == runs[1]
    clock, sr = session.clock, session.sample_rate
    for line in lines:
        t = clock.sample_at(score.session_beat(line)) / sr
        for part, note in (("bass", None), ("drums", DRUM_NOTES["kick"])):
            assert any(p == part and (note is None or n == note) and abs(t0 - t) < 0.015
                       for p, n, t0, _ in runs[0]), (part, line)
    player = [t0 for p, _, t0, _ in runs[0] if p == "keys"]
    assert on_grid(player, clock) >= 0.95


@pytest.mark.parametrize("name,measures", [("bach/bwv27.6", range(0, 999)),
                                           ("bach/bwv171.6", range(24, 40))])
def test_a_chorale_that_changes_meter(tmp_path, name, measures):
    """music21's corpus: bwv27.6 goes from 4/4 to 3/2, bwv171.6 from 4/4 to 3/4 (its
    closing 4/4 is written at beat 144 in some tracks and 146 in others: the measures
    checked are its 3/4 verse). Each of music21's measures starts one of the band's bars, of
    the measure's length; the kick and the bass play on it."""
    from bench.chorales import export_chorale
    m21 = export_chorale(name, 96, tmp_path / "c.mid")
    score = Score.read(tmp_path / "c.mid")
    assert len(score.meters) >= 2
    session = _session("rock")
    session.follow_score(score)
    meter, ctx = session.clock.meter, session.ctx
    notes = session.scheduler.band.query(F(0), session.clock.next_bar(score.session_end), ctx)
    downbeats = {(n.part, n.begin) for n in notes if n.part == "bass"
                 or (n.part == "drums" and n.note == DRUM_NOTES["kick"])}
    checked = 0
    for m in m21.parts[0].getElementsByClass("Measure"):
        if m.number not in measures or m.offset == 0:
            continue
        at = score.session_beat(F(m.offset).limit_denominator(64))
        bar = meter.bar_at(at)
        assert meter.bar_start(bar) == at, (m.number, at)
        ts = m.getContextByClass("TimeSignature")
        if F(m.duration.quarterLength) == F(ts.barDuration.quarterLength):
            assert meter.bar_length(bar) == F(ts.barDuration.quarterLength), m.number
        assert ("bass", at) in downbeats and ("drums", at) in downbeats, m.number
        checked += 1
    assert checked >= 12
    played = band_and_player(session, score)
    assert on_grid([n.start_s for n in played if n.part == "keys"], session.clock) >= 0.95


def test_fills_end_on_the_real_bar_line_and_the_crash_lands_on_the_next_downbeat():
    """A cued fill in a 3/4, a 6/8, a 5/4 and a 7/8 bar covers the bar's last two beats up to
    its own end; the next bar (another meter) opens with the crash on its downbeat."""
    from engine.agents.base import StaticContext
    meter = Meter.from_changes([(0, 3, 4), (6, 6, 8), (12, 5, 4), (22, 7, 8), (29, 4, 4)])
    fills = {1, 3, 5, 7}
    ctx = StaticContext(seed=2, style="rock", meter=meter, intensity=0.6,
                        cues={b: "fill" for b in fills})
    drums = DrumAgent(None, None)
    toms = {DRUM_NOTES[k] for k in ("tom_low", "tom_mid", "tom_high")}
    for bar in fills:
        start, length = meter.bar_start(bar), meter.bar_length(bar)
        fill = [n for n in drums.bar(bar, ctx) if n.note in toms or n.note == DRUM_NOTES["snare"]
                and n.begin >= start + length - 2]
        assert fill and max(n.begin for n in fill) >= start + length - 1, bar
        assert min(n.begin for n in fill) >= start + length - 2, bar
        nxt = drums.bar(bar + 1, ctx)
        assert any(n.begin == meter.bar_start(bar + 1) and n.note == DRUM_NOTES["open_hat"]
                   and n.dur >= 2 for n in nxt), bar


@pytest.mark.parametrize("style", ["rock", "jazz", "funk", "bossa", "dnb"])
def test_every_agent_plays_every_meter_inside_its_bars(style):
    """Bars of every kind (1/4 to 12/8, x/16, a bar cut short by a change) with every cue:
    each agent's notes start inside its bar (BarPattern checks it) and the drums hit its
    downbeat."""
    from engine.agents.arrangement import Band
    from engine.agents.base import StaticContext
    sigs = [(4, 4), (3, 4), (6, 8), (5, 4), (7, 8), (1, 4), (3, 16), (12, 8), (9, 8), (5, 8),
            (2, 2), (3, 2), (7, 16), (2, 4)]
    changes, beat = [], F(0)
    for k, (n, d) in enumerate(sigs):
        changes.append((beat, n, d))
        beat += 2 * F(4 * n, d) - (F(1, 4) if k == 3 else 0)    # 5/4's last bar cut short
    meter = Meter.from_changes(changes)
    cues = {b: c for b, c in zip(range(0, 40, 3), ["fill", "build", "crash", "fill", "ending"]
                                 * 3)}
    ctx = StaticContext(seed=5, style=style, meter=meter, intensity=lambda b: 0.2 + 0.1 * (b % 8),
                        cues=cues)
    band = Band(5, style)
    last = meter.bar_at(beat)
    notes = band.query(F(0), meter.bar_start(last), ctx)
    for bar in range(last):
        start, length = meter.bar_start(bar), meter.bar_length(bar)
        here = [n for n in notes if start <= n.begin < start + length]
        assert any(n.part == "drums" and n.begin == start for n in here), (bar, style)
        for agent in band.agents:
            assert agent.bar_info(bar, ctx).steps == 4 * length


def test_render_command_names_the_meters_and_the_skipped_signatures(tmp_path, capsys,
                                                                     monkeypatch):
    """`bandmate render --midi` on a file with meter changes and a time signature that is no
    meter: it says which meters it plays and why it skipped the other, and renders."""
    from engine.cli import main
    monkeypatch.chdir(ROOT)
    bad = [(F(4), mido.MetaMessage("time_signature", numerator=0, denominator=4))]
    _meter_file(tmp_path / "m.mid", ((4, 4, 1), (3, 4, 1), (6, 8, 1)), extra_meta=bad)
    assert main(["render", "--seconds", "2", "--midi", str(tmp_path / "m.mid"),
                 "-o", str(tmp_path / "out.wav")]) == 0
    said = capsys.readouterr()
    text = said.out + said.err
    assert "meters 4/4 3/4 6/8" in text
    assert "0/4" in text and "numerator" in text and "the meter before it stays" in text
    assert (tmp_path / "out.wav").stat().st_size > 1000
