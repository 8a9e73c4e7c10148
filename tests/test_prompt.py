"""Style prompts (engine.words.prompt): "funky, 96 bpm, sparse drums, dreamy keys" parsed,
weighted styles blended (numbers: weighted mean; choices: the heaviest style), applied through
the session's address space from the next bar not yet scheduled.

Agent tests read the notes the agents produce under the prompt's settings; session tests run
the real scheduler and the offline render kernel.
"""
from __future__ import annotations

from fractions import Fraction as F
from pathlib import Path

import numpy as np
import pytest

from tests.enginekit import SentRows, render_session
from engine.agents import Band, StaticContext
from engine.agents.steer import STEER_PARAMS, Steering
from engine.commands import live_command
from engine.control.session import Session
from engine.words.prompt import apply_prompt, parse, settings, styles

SR = 48000
ROOT = Path(__file__).resolve().parents[1]
BAR = 4
TEMPO = "/transport/tempo_bpm"


# ---- parsing and blending ------------------------------------------------------------------------

def test_parse_styles_weights_tempo_and_part_words():
    p = parse("funky, 96 bpm, sparse drums, dreamy keys")
    assert p.weights == [("funky", 1.0)] and p.tempo_bpm == 96.0
    assert p.parts == [("drums", "sparse"), ("keys", "dreamy")] and p.unknown == []
    assert parse("70% lofi, 30% bossa").weights == [("lofi", 0.7), ("bossa", 0.3)]
    assert parse("lofi:0.7 bossa:0.3").weights == [("lofi", 0.7), ("bossa", 0.3)]
    assert parse("funk").weights == [("funky", 1.0)]                 # an alias
    assert settings("70% lofi, 30% bossa") == settings("lofi:0.7 bossa:0.3")
    # weights are normalised: 7:3 is 70%:30%
    assert settings("lofi:7 bossa:3").values == settings("lofi:0.7 bossa:0.3").values


def test_blend_numbers_are_the_weighted_mean_choices_the_heaviest_style():
    t = styles().styles
    s = settings("70% lofi, 30% bossa")
    lofi, bossa = t["lofi"], t["bossa"]
    assert s.values[TEMPO] == pytest.approx(0.7 * lofi["tempo_bpm"] + 0.3 * bossa["tempo_bpm"])
    assert s.values["/band/energy"] == pytest.approx(0.7 * lofi["energy"] + 0.3 * bossa["energy"])
    # bossa leaves the bass density out: it counts as the neutral default
    neutral = STEER_PARAMS["/bass/agent/density"].default
    assert s.values["/bass/agent/density"] == pytest.approx(
        0.7 * lofi["parts"]["bass"]["density"] + 0.3 * neutral)
    assert s.values["/band/style"] == lofi["style"]
    assert settings("30% lofi, 70% bossa").values["/band/style"] == bossa["style"]
    assert settings("lofi bossa").values["/band/style"] == lofi["style"]    # a tie: the first
    # patches: the heaviest style naming one for the part
    assert s.patches["drums"] == lofi["patches"]["drums"]
    assert settings("30% lofi, 70% bossa").patches["keys"] == bossa["patches"]["keys"]
    assert settings("30% lofi, 70% bossa").patches["drums"] == lofi["patches"]["drums"]


def test_a_weighted_blend_lands_between_its_parts():
    a, b, mid = settings("lofi"), settings("house"), settings("lofi:0.5 house:0.5")
    for address in (TEMPO, "/band/energy", "/band/swing", "/drums/agent/density"):
        lo, hi = sorted((a.values[address], b.values[address]))
        assert lo < mid.values[address] < hi, address


def test_96_bpm_sets_the_tempo_and_words_given_outright_override_the_blend():
    assert settings("funky, 96 bpm").values[TEMPO] == 96.0
    assert settings("96 bpm").values == {TEMPO: 96.0}
    assert settings("lofi, busy drums").values["/drums/agent/density"] == 0.8
    assert settings("lofi, energetic").values["/band/energy"] == 0.8
    lo, hi = styles().styles["jazzy"]["tempo_range_bpm"]
    assert settings("fast jazzy").values[TEMPO] == hi
    assert settings("slow jazzy").values[TEMPO] == lo
    s = settings("rock, no lead, low bass, sparse")
    assert s.values["/lead/agent/on"] == "off" and s.values["/bass/agent/octave"] == -1
    assert all(s.values[f"/{p}/agent/density"] == 0.2 for p in ("drums", "bass", "chords"))


def test_same_prompt_same_settings():
    text = "60% funky, 40% jazzy, 100 bpm, sparse drums, dreamy keys, calm"
    assert settings(text) == settings(text)
    assert parse(text) == parse(text)


def test_unknown_words_are_reported():
    s = settings("funky, flurble drums, 12, zork, lofi:0, sparse keys, low drums")
    assert "flurble" in s.unknown and "12" in s.unknown and "zork" in s.unknown
    assert any(u.startswith("lofi:0") for u in s.unknown)
    assert any("keys has no agent" in u for u in s.unknown)
    assert any("no octave" in u for u in s.unknown)
    assert s.values["/band/style"] == "funk"          # the rest still applies


# ---- on the agents' notes ------------------------------------------------------------------------

def band_notes(text, part, bars=(0, 16)):
    st = Steering()
    for address, value in settings(text).values.items():
        if address in STEER_PARAMS:
            st.set(address, value, F(0))
    ctx = StaticContext(seed=1, intensity=0.6, style="rock", steer=st)
    notes = Band(1, "rock").query(F(bars[0] * BAR), F(bars[1] * BAR), ctx)
    return [n for n in notes if n.part == part]


@pytest.mark.parametrize("style", ["funky", "rock", "lofi", "house"])
def test_sparse_drums_give_fewer_onsets_per_bar_than_busy_drums(style):
    sparse = band_notes(f"{style}, sparse drums", "drums")
    busy = band_notes(f"{style}, busy drums", "drums")
    assert 0 < len(sparse) / 16 < len(busy) / 16


# ---- on a session --------------------------------------------------------------------------------

Rows = SentRows


render = render_session


def test_applying_live_leaves_already_scheduled_bars_alone(cfg):
    a, b = Session(cfg, SR), Session(cfg, SR)
    ra, rb = Rows(a), Rows(b)
    render(a, 1.3)
    render(b, 1.3)
    cursor = b.scheduler.cursor
    applied = apply_prompt(b, "house, 96 bpm, busy drums", load_patches=False)
    assert b.value(TEMPO) == 96.0 and b.value("/drums/agent/density") == 0.8
    assert b.param("/band/style").choices[int(b.value("/band/style"))] == "house"
    assert (TEMPO, 96.0) in applied.sets
    render(a, 8.0)
    render(b, 8.0)
    sent = b.clock.sample_at(cursor)          # everything before it was scheduled already
    da, db = ra.onsets("drums"), rb.onsets("drums")
    assert np.array_equal(da[da[:, 0] < sent], db[db[:, 0] < sent])
    assert (db[:, 0] < sent).sum() > 0
    # from the next bar: the new style, busier, at the new tempo
    bar = b.clock.next_bar(cursor)
    assert b.clock.bpm == 96.0 and b.steer.at("/drums/agent/density", bar) == 0.8
    assert b.steer.at("/drums/agent/density", bar - F(1, 4)) == 0.5
    cut = b.clock.sample_at(bar)
    assert not np.array_equal(da[da[:, 0] >= cut][:8], db[db[:, 0] >= cut][:8])


def test_same_prompt_same_session_values_and_a_bad_one_changes_nothing(cfg):
    a, b = Session(cfg, SR), Session(cfg, SR)
    text = "70% lofi, 30% bossa, dreamy keys"
    apply_prompt(a, text, load_patches=False)
    apply_prompt(b, text, load_patches=False)
    assert {x: a.value(x) for x in a.addresses()} == {x: b.value(x) for x in b.addresses()}
    before = {x: a.value(x) for x in a.addresses()}
    with pytest.raises(ValueError):
        apply_prompt(a, "funky, 900 bpm", load_patches=False)     # out of range: checked first
    assert {x: a.value(x) for x in a.addresses()} == before


def test_dreamy_keys_moves_the_keys_sound(cfg):
    s = Session(cfg, SR)
    before = {x: s.value(x) for x in s.addresses() if x.startswith("/keys/")}
    applied = apply_prompt(s, "dreamy keys", load_patches=False)
    assert applied.timbre["keys"]
    moved = {x for x in before if s.value(x) != before[x]}
    assert moved and moved == {x for x, _ in applied.timbre["keys"]}


def test_prompt_loads_the_styles_patches(cfg):
    s = Session(cfg, SR)
    applied = apply_prompt(s, "lofi")
    assert applied.patches == settings("lofi").patches and not applied.skipped
    assert all(s.patches[p].path.stem == n for p, n in applied.patches.items())
    render(s, 0.5)
    # a swap still crossfading: the next prompt's patches are reported, not lost silently
    s.load_patch("keys", ROOT / "patches" / "keys.toml")
    applied = apply_prompt(s, "funky")
    assert not applied.patches and len(applied.skipped) == len(settings("funky").patches)
    assert s.patches["bass"].path.stem != settings("funky").patches["bass"]


def test_prompt_command_line_and_fade(cfg):
    s = Session(cfg, SR)
    render(s, 0.5)
    reply = live_command(s, 'prompt "ambient, 70 bpm, sparse drums, qwzx"')
    assert "unknown: qwzx" in reply and s.value(TEMPO) == 70.0
    assert s.value("/drums/agent/density") == 0.2
    reply = live_command(s, "prompt funky, 900 bpm")
    assert reply.startswith("prompt:") and s.value(TEMPO) == 70.0
    # a fade glides the energy bar by bar
    apply_prompt(s, "intense", fade_s=8.0, load_patches=False)
    bar = s.clock.next_bar(s.scheduler.cursor)
    assert 0.15 < s.steer.at("/band/energy", bar) < 0.9
    assert s.value("/band/energy") == 0.9


# ---- a broken styles file, bad prompts -----------------------------------------------------------
@pytest.mark.parametrize("old, new, field", [
    ('parts.drums = { density = 0.35 }', 'parts.drums = { density = 1.5 }',
     "[styles.lofi] parts.drums.density: must be a number 0..1, got 1.5"),
    ('tempo_bpm = 78.0', 'tempo_bpm = "slow"', "[styles.lofi] tempo_bpm: must be a number"),
    ('style = "house"', 'style = "polka"', "[styles.house] style: must be one of"),
    ('calm = 0.25', 'calm = 2.0', "[band_words] energy.calm: must be a number 0..1"),
    ('sparse = 0.2,', 'sparse = "x",', "[part_words] density.sparse: must be a number"),
    ('patches = { keys = "ep-tines" }', 'patches = { kazoo = "ep-tines" }',
     "[styles.bossa] patches.kazoo: no part 'kazoo'"),
    ('style = "jazz"\n', 'style = "jazz"\nswung = 1\n', "[styles.jazzy] swung: unknown key"),
    ('aliases = ["breaks"]', 'aliases = ["breaks", "funk"]',
     "'funk' is already a word of [styles.funky]"),
])
def test_a_broken_styles_file_names_its_file_line_and_field(tmp_path, old, new, field):
    from engine.tomldata import DataError
    from engine.words.prompt import PATH
    text = PATH.read_text()
    bad = text.replace(old, new, 1)
    assert bad != text
    path = tmp_path / "styles.toml"
    path.write_text(bad)
    needle = new.rstrip("\n").splitlines()[-1]
    line = next(i for i, ln in enumerate(bad.splitlines(), 1) if needle in ln)
    with pytest.raises(DataError) as err:
        styles(str(path))
    assert str(err.value).startswith(f"{path}:{line}: ") and field in str(err.value), err.value


def test_a_prompt_of_which_nothing_is_understood_is_refused_and_counted(cfg):
    from engine.words.design import live_words
    s = Session(cfg, SR)
    before = {x: s.value(x) for x in s.addresses()}
    with pytest.raises(ValueError, match="nothing understood.*qwzx, flurble"):
        apply_prompt(s, "qwzx flurble", load_patches=False)
    with pytest.raises(ValueError):
        apply_prompt(s, "funky, 900 bpm", load_patches=False)
    apply_prompt(s, "96 bpm, zork", load_patches=False)
    counts = live_words(s).counts
    assert (counts["prompts"], counts["prompts_refused"], counts["unknown_words"]) == (3, 2, 3)
    assert s.value(TEMPO) == 96.0
    assert {x: s.value(x) for x in s.addresses() if x != TEMPO} == \
        {x: v for x, v in before.items() if x != TEMPO}
