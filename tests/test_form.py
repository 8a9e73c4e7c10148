"""Song form (engine.agents.form): sections at their bars, energy rising into choruses,
transitions (a fill before each section, the drop and the riser before a chorus, a crash on
its downbeat), jumps, the TOML file's checks, and live equal to offline."""
from __future__ import annotations

from fractions import Fraction as F
from pathlib import Path

import numpy as np
import pytest

from engine.agents import Band, StaticContext
from engine.agents.commands import do
from engine.agents.form import FormPlay, load_form, parse_form, style_progression
from engine.control.session import Session
from engine.parts import DRUM_NOTES
from engine.tomldata import DataError
from tests.enginekit import dry_config, render_session
from tests.test_commands import SNARE, Run

SR = 48000
ROOT = Path(__file__).resolve().parents[1]
SONG = "intro:4 verse:8 chorus:8 bridge:4 chorus:8 outro:4"
KICK = DRUM_NOTES["kick"]
FILL_NOTES = {SNARE, DRUM_NOTES["tom_high"], DRUM_NOTES["tom_mid"], DRUM_NOTES["tom_low"]}


@pytest.fixture
def cfg():
    c = dry_config(ROOT)
    c["band"].update(chords=True, lead=True, style="rock", tempo_bpm=140.0, seed=5)
    return c


def formed(cfg, form=SONG, tick=480):
    run = Run(cfg, tick)
    run.sections = []
    run.s.follow_form(parse_form(form) if isinstance(form, str) else form,
                      on_section=lambda bar, name: run.sections.append((bar, name)))
    return run


def test_sections_start_at_their_bars_and_the_song_ends():
    play = FormPlay(parse_form(SONG))
    starts = {0: "intro", 4: "verse", 12: "chorus", 20: "bridge", 24: "chorus", 32: "outro",
              36: "ending"}
    for bar in range(40):
        name = play.name_at(bar)
        if bar in starts:
            assert name == starts[bar]
        assert (name is None) == (bar > 36)
    assert play.locate(27) == (4, 3)


def test_the_band_goes_through_the_form_with_its_parts_and_progressions(cfg):
    run = formed(cfg)
    run.to_bar(38)
    assert run.sections == [(0, "intro"), (4, "verse"), (12, "chorus"), (20, "bridge"),
                            (24, "chorus"), (32, "outro"), (36, "ending")]
    bass, lead = run.per_bar("bass", 40), run.per_bar("lead", 40)
    assert bass[:4].sum() == 0 and bass[4:36].min() > 0       # the bass comes in with the verse
    assert lead[:12].sum() == 0 and lead[12:20].sum() > 0
    for part in ("drums", "bass", "chords", "lead"):
        assert run.per_bar(part, 40)[37:].sum() == 0          # after the final hit: nothing
    # each section plays its own progression (rock: the default chorus is F G Am Am)
    roots = {int(np.floor(b / 4 + 0.01)): int(n) % 12
             for b, n in zip(run.beats("bass"), run.onsets("bass")[:, 3]) if b % 4 == 0}
    chorus = style_progression("rock", "chorus")
    for k in range(4):
        assert roots[12 + k] == chorus.chord_at(k).root
        assert roots[24 + k] == chorus.chord_at(k).root
    assert roots[20] == style_progression("rock", "bridge").chord_at(0).root


def test_energy_rises_into_each_chorus():
    play = FormPlay(parse_form(SONG))
    for chorus in (12, 24):
        before = [play.intensity(b) for b in range(chorus - 4, chorus)]
        assert play.intensity(chorus) > max(before)
    verse = [play.intensity(b) for b in range(4, 12)]
    assert verse == sorted(verse) and verse[-1] > verse[0]        # the verse builds
    # on the notes: the drums hit harder in the chorus than in the verse before it
    ctx = StaticContext(seed=5, progression=play.progression)
    notes = Band(5, "rock", arrangement=play).query(F(0), F(4 * 36), ctx)
    kicks = [(int(n.begin // 4), n.velocity) for n in notes if n.part == "drums"
             and n.note == KICK]
    verse_v = np.mean([v for b, v in kicks if 4 <= b < 11])
    chorus_v = np.mean([v for b, v in kicks if 12 <= b < 20])
    assert chorus_v > verse_v


def test_a_fill_in_the_bar_before_each_section_then_a_drop_and_a_crash_at_the_chorus(cfg):
    run = formed(cfg)
    run.to_bar(37)
    beats, notes = run.beats("drums"), run.onsets("drums")[:, 3]
    for change in (4, 12, 20, 24, 32):
        last = (beats >= change * 4 - 2) & (beats < change * 4)
        assert sum(n in FILL_NOTES for n in notes[last]) >= 4, change
        assert any((beats == change * 4) & (notes == DRUM_NOTES["open_hat"])), change
    for chorus in (12, 24):         # the drop: no kick in the bar before the chorus
        bar = (beats >= chorus * 4 - 4) & (beats < chorus * 4)
        assert KICK not in notes[bar] and KICK in notes[(beats >= chorus * 4 - 8)
                                                        & (beats < chorus * 4 - 4)]
        assert KICK in notes[beats == chorus * 4]


def test_a_riser_sweeps_the_filters_up_before_a_chorus_and_snaps_back_on_it(cfg):
    run = formed(cfg, "verse:2 chorus:2")
    address = "/chords/synth/cutoff_hz"
    base = run.s.value(address)
    seen = []
    for k in range(1, 25):
        run.to_bar(1 + k / 12)            # through the verse's last bar and into the chorus
        seen.append(run.s.value(address))
    rising = seen[:10]
    assert all(b >= a for a, b in zip(rising, rising[1:])) and rising[-1] > 2.5 * base
    assert seen[-1] == base               # back on the chorus downbeat


def test_go_to_chorus_jumps_at_the_next_bar_line_with_a_fill_before_it(cfg):
    run = formed(cfg)
    run.to_bar(5.2)                        # in the verse
    reply = do(run.s, "go to chorus")
    bar = int(reply.split()[-1]) - 1
    assert reply.startswith("chorus from bar") and bar in (6, 7)
    run.to_bar(bar + 9)
    assert (bar, "chorus") in run.sections and run.sections[-1] == (bar + 8, "bridge")
    beats, notes = run.beats("drums"), run.onsets("drums")[:, 3]
    last = (beats >= bar * 4 - 2) & (beats < bar * 4)
    assert sum(n in FILL_NOTES for n in notes[last]) >= 4
    assert run.per_bar("lead", bar + 8)[bar:].min() > 0      # the chorus's parts
    reply = do(run.s, "go to verse next phrase")
    assert int(reply.split()[-1]) % 4 == 1       # a bar 1, 5, 9, ... (a four-bar phrase)


def test_a_form_file_is_read_and_its_errors_name_file_line_and_field(tmp_path):
    path = tmp_path / "song.toml"
    path.write_text('[form]\nkey = "C major"\nloop = true\n\n[[section]]\nname = "verse"\n'
                    'bars = 4\nprogression = "C G Am F"\nenergy = 0.5\n\n[[section]]\n'
                    'name = "chorus"\nbars = 4\ndrop = "bar"\nparts = ["drums", "bass"]\n')
    form = load_form(path)
    assert str(form) == "verse:4 chorus:4" and form.loop and form.key.name == "C"
    play = FormPlay(form)
    assert play.name_at(8) == "verse" and play.chord_at_bar(1).name == "G"
    assert play.parts_active(3) == {"chords"}             # drop "bar": no drums, no bass
    bad = [('energy = 0.5', 'energy = 3', r"song.toml:9: \[\[section\]\] 1 energy: must be "
            r"0..1, got 3"),
           ('drop = "bar"', 'drop = "big"', r"song.toml:14: \[\[section\]\] 2 drop: must be "
            r"one of none, kick, bar"),
           ('name = "chorus"', 'name = "solo"', r"song.toml:12: \[\[section\]\] 2 name: "
            r"section 'solo': a section is one of intro, verse"),
           ('bars = 4\nprog', 'bars = 0\nprog', r"song.toml:7: \[\[section\]\] 1 bars: "),
           ('loop = true', 'loop = 1', r"song.toml:3: \[form\] loop: must be true or false"),
           ('energy = 0.5', 'energy = 0.5\ncolour = "red"', r"song.toml:10: \[\[section\]\] "
            r"1 colour: unknown field"),
           ('progression = "C G Am F"', 'progression = "C Q"', r"song.toml:8: \[\[section\]\] "
            r"1 progression: ")]
    for old, new, said in bad:
        path.write_text(path.read_text().replace(old, new) if old in path.read_text()
                        else pytest.fail(old))
        with pytest.raises(DataError, match=said):
            load_form(path)
        path.write_text(path.read_text().replace(new, old))
    with pytest.raises(ValueError, match="write NAME:BARS"):
        parse_form("intro verse:8")
    with pytest.raises(ValueError, match="a section is one of"):
        parse_form("intro:4 solo:8")


def test_live_ticks_and_offline_blocks_schedule_the_same_form_and_jump(cfg):
    out = []
    for tick in (441, 6000):
        run = formed(cfg, "intro:2 verse:4 chorus:4 outro:2", tick)
        while run.t < run.s.clock.sample_at(F(21, 2)):
            run.s.advance(run.t)
            run.t += tick
        # a jump asked at the same sample (as a command arrives live) lands on the same bar
        run.s.advance(run.s.clock.sample_at(F(11)) - run.s.scheduler.lookahead)
        assert run.s.scheduler.cursor <= 11
        assert do(run.s, "go to chorus") == "chorus from bar 5"     # from the verse's 1st bar
        run.t = run.s.clock.sample_at(F(11))
        run.to_bar(13)
        out.append((np.concatenate(run.rows), run.sections))
    assert out[0][1] == [(0, "intro"), (2, "verse"), (4, "chorus"), (8, "outro"),
                         (10, "ending")]
    rows = [np.asarray(sorted(map(tuple, r))) for r, _ in out]
    assert np.array_equal(rows[0], rows[1]) and out[0][1] == out[1][1]


def test_rendered_form_is_the_same_in_any_block_size(cfg):
    outs = []
    for block in (64, 1000):
        s = Session(cfg, SR)
        s.follow_form(parse_form("intro:1 verse:1 chorus:2"))
        outs.append(render_session(s, 6.0, block))
    assert np.abs(outs[0]).max() > 0.01 and np.array_equal(outs[0], outs[1])


def test_render_form_from_the_command_line(tmp_path, monkeypatch, capsys):
    """`bandmate render --form` plays the form to its end (the length follows from it) and
    says each section; a bad form is a clear error, not a traceback."""
    import soundfile as sf
    from controllers.midifile import read_notes
    from engine.cli import main
    monkeypatch.chdir(ROOT)
    wav = tmp_path / "song.wav"
    assert main(["render", "--tempo", "240", "--form", "intro:1 verse:2 chorus:1",
                 "-o", str(wav)]) == 0
    out = capsys.readouterr().out
    assert "form: intro:1 verse:2 chorus:1 (4 bars)" in out
    assert "section: verse (bar 2)" in out and "section: ending (bar 5)" in out
    info = sf.info(wav)
    assert info.duration == pytest.approx((4 + 2) * 4 * 60 / 240 + 1.0, abs=0.05)
    assert read_notes(wav.with_suffix(".mid"))
    assert main(["render", "--form", "intro:4 solo:8", "-o", str(wav)]) == 2
    assert "--form: section 'solo': a section is one of" in capsys.readouterr().err
