"""Scenes (engine.control.scenes): named sets of address -> value in a checked TOML file,
recalled at once, faded or on the next bar, saved back; through `:scene`, OSC and MIDI."""
from __future__ import annotations

import asyncio
import shutil
from fractions import Fraction as F
from pathlib import Path

import mido
import numpy as np
import pytest

from engine.commands import live_command
from engine.config import load_config
from engine.control.mapping import Mapper, Mapping
from engine.control.offline import OfflineDriver
from engine.control.scenes import dumps_scenes, load_scenes, parse_scenes
from engine.control.session import Session
from engine.parts import KEYS
from engine.rt.events import K_NOTE_ON
from engine.tomldata import DataError

SR = 48000
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cfg(monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    c = load_config("config.toml", environ={})
    for part in ("keys", "bass", "chords", "lead", "drums"):
        c["mix"][f"{part}_reverb_send"] = 0.0
        c["mix"][f"{part}_delay_send"] = 0.0
    shutil.copy(ROOT / "scenes.toml", tmp_path / "scenes.toml")
    c["scenes"]["file"] = str(tmp_path / "scenes.toml")
    return c


def render(session, seconds, block=256):
    drv = OfflineDriver(session.state, block, session.scheduler.advance)
    return drv.render(round(seconds * SR))


def test_the_factory_scenes_load_and_recall(cfg):
    s = Session(cfg, SR)
    assert s.scenes() == ["intro", "groove", "breakdown"]
    render(s, 0.5)
    s.recall_scene("breakdown")
    for address, value in load_scenes(s.scenes_path(), s.param)["breakdown"].values.items():
        q = s.param(address)
        want = q.choices.index(value) if isinstance(value, str) else value
        assert s.value(address) == want, address
    # quantise = "bar": the band's part of it waits for the next bar not yet scheduled
    bar = s.clock.next_bar(s.scheduler.cursor)
    assert s.steer.at("/band/energy", bar - F(1, 4)) == 0.5
    assert s.steer.at("/band/energy", bar) == 0.25


def test_a_scene_file_round_trips(cfg, tmp_path):
    s = Session(cfg, SR)
    s.set("/band/style", "funk")
    s.set("/bass/mix/gain_db", -4.5)
    s.set("/lead/agent/density", 0.8)
    s.set("/drums/mix/solo", "on")
    path = s.save_scene("mine")
    text = path.read_text()
    assert text.startswith("# bandmate's scenes")             # the comment block is kept
    scenes = load_scenes(path, s.param)
    assert list(scenes) == ["intro", "groove", "breakdown", "mine"]
    mine = scenes["mine"].values
    assert mine["/band/style"] == "funk" and mine["/bass/mix/gain_db"] == -4.5
    assert mine["/lead/agent/density"] == 0.8 and mine["/drums/mix/solo"] == "on"
    assert "/transport/playing" not in mine and "/bass/synth/cutoff_hz" not in mine
    again = parse_scenes(dumps_scenes(scenes), "x.toml", s.param)
    assert again == scenes
    # a fresh session recalls it to the same values
    t = Session(cfg, SR)
    t.recall_scene("mine")
    assert all(t.value(a) == s.value(a) for a in mine)
    # saving only some addresses; saving again replaces the scene
    s.save_scene("mine", ["/band/energy"])
    assert load_scenes(path, s.param)["mine"].values == {"/band/energy": 0.5}


BROKEN = [
    ('[groove]\n"/band/energy" = 3.0\n', 2, "[groove] /band/energy: must be 0..1"),
    ('[a]\nfade_s = 1.0\n"/no/such/thing" = 1.0\n', 3, "[a] /no/such/thing: no such parameter"),
    ('[a]\nfade_s = -1.0\n', 2, "[a] fade_s: must be 0..60"),
    ('[a]\nquantise = "bars"\n', 2, "[a] quantise: must be one of none, beat, bar"),
    ('[a]\ncolour = "red"\n', 2, "[a] colour: unknown setting"),
    ('[a]\n"/band/style" = "polka"\n', 2, "[a] /band/style: must be one of rock"),
    ('[a]\n"/band/key" = 2.5\n', 2, "[a] /band/key: must be a whole number"),
    ('[a]\n"/band/energy" = \n', 2, "not valid TOML"),
]


@pytest.mark.parametrize("text,line,reason", BROKEN, ids=[b[2][:24] for b in BROKEN])
def test_a_broken_scene_file_names_file_line_and_field_and_changes_nothing(cfg, text, line,
                                                                          reason):
    s = Session(cfg, SR)
    path = Path(cfg["scenes"]["file"])
    path.write_text(text)
    before = {a: s.value(a) for a in s.addresses()}
    with pytest.raises(DataError) as exc:
        s.recall_scene("a")
    assert str(exc.value).startswith(f"{path}:{line}: ") and reason in str(exc.value)
    assert {a: s.value(a) for a in s.addresses()} == before and s.steer.version == 0
    assert live_command(s, "scene a").startswith(f"scene: {path}:{line}: ")


def test_unknown_scene_and_bad_fade_change_nothing(cfg):
    s = Session(cfg, SR)
    with pytest.raises(KeyError, match="no scene 'nope'; scenes: intro, groove, breakdown"):
        s.recall_scene("nope")
    with pytest.raises(ValueError, match="fade_s must be 0..60"):
        s.recall_scene("groove", fade_s=-2)
    assert s.steer.version == 0 and not s._glides


def _level_db(out, window):
    x = out[:, 0].astype(float)
    n = len(x) // window
    rms = np.sqrt(np.mean(x[:n * window].reshape(n, window) ** 2, axis=1))
    return 20 * np.log10(np.maximum(rms, 1e-9))


def held_note_session(cfg, scene_text):
    cfg["band"].update(drums=False, bass=False)
    Path(cfg["scenes"]["file"]).write_text(scene_text)
    s = Session(cfg, SR)
    s.state.push_sched(0, K_NOTE_ON, KEYS, 57, 0.8, 1.0)     # a held A3 on the player's part
    return s


def test_a_faded_recall_glides_without_a_step(cfg):
    text = '[down]\nfade_s = 1.0\n"/keys/mix/gain_db" = -30.0\n'

    def gain_db(fade_s):
        """The keys' level against the same held note untouched (the patch's own movement
        cancels out), in 10 ms windows, from the recall on."""
        s, ref = held_note_session(cfg, text), held_note_session(cfg, text)
        render(s, 1.0)
        render(ref, 1.0)
        s.recall_scene("down", fade_s)
        out, plain = render(s, 1.5), render(ref, 1.5)
        return _level_db(out, SR // 100) - _level_db(plain, SR // 100), s
    glide, s = gain_db(None)                                  # the scene's own 1 s fade
    assert abs(glide[0]) < 1.0 and glide[-10:].mean() == pytest.approx(-30.0, abs=0.5)
    assert np.abs(np.diff(glide)).max() < 1.0                 # 0.3 dB a window: no step
    assert glide[50] == pytest.approx(-15.0, abs=2.0)          # half way at half time
    assert s.value("/keys/mix/gain_db") == -30.0 and not s._glides
    switch, _ = gain_db(0.0)                                  # no fade: it steps
    assert switch[0] - switch[8] > 25.0


def test_a_quantised_recall_starts_on_the_next_bar(cfg):
    text = '[q]\nquantise = "bar"\nfade_s = 0.5\n"/keys/mix/gain_db" = -20.0\n' \
           '"/band/energy" = 0.9\n'
    s = held_note_session(cfg, text)
    render(s, 1.0)
    bar = s.clock.next_bar(s.scheduler.cursor)
    s.recall_scene("q")
    times = s._glides["/keys/mix/gain_db"][0]
    assert times[0] > s.clock.sample_at(bar) and times[-1] == pytest.approx(
        s.clock.sample_at(bar) + 0.5 * SR, abs=SR // 100)
    assert s.steer.at("/band/energy", bar - F(1, 4)) == 0.5 and s.steer.latest(
        "/band/energy") == 0.9


def test_recall_by_command_osc_and_program_change(cfg):
    from engine.control.osc import OscServer
    s = Session(cfg, SR)
    assert live_command(s, "scenes") == "scenes: intro, groove, breakdown"
    assert live_command(s, "scene intro").startswith("scene intro: ")
    assert s.value("/band/energy") == 0.3
    assert "saved" in live_command(s, "save here")
    assert "here" in s.scenes()

    async def osc():
        server = OscServer(s, port=0, log=lambda t: None)
        await server.start()
        server.message("/bandmate/scene", ["groove"], 1.0, ("127.0.0.1", 9))
        assert s.value("/band/energy") == 0.6
        from engine.control.osc import OscError
        with pytest.raises(OscError, match="no scene 'x'"):
            server.message("/bandmate/scene", ["x"], 1.0, ("127.0.0.1", 9))
        server.close()
    asyncio.run(asyncio.wait_for(osc(), 30))

    mapping = Mapping.parse('[[program]]\nscenes = ["intro", "breakdown"]\n', "m.toml", s)
    assert Mapping.parse(mapping.dumps(), "m.toml", s) == mapping
    mapper = Mapper(s, mapping, log=lambda t: None)
    mapper.events(mido.Message("program_change", program=1), 0)
    assert s.value("/band/energy") == 0.25 and mapper.stats["scenes"] == 1
    mapper.events(mido.Message("program_change", program=5), 0)
    assert mapper.stats["ignored"] == 1
    with pytest.raises(DataError, match=r"m.toml:2: \[\[program\]\] #1 scenes: no scene 'nope'"):
        Mapping.parse('[[program]]\nscenes = ["nope"]\n', "m.toml", s)


def test_live_equals_offline_with_scenes_and_steering(cfg):
    """The same changes at the same samples give the same audio whatever the block size."""
    outs = []
    for block in (64, 1000):
        s = Session(cfg, SR)
        a = render(s, 1.0, block)
        s.recall_scene("groove")
        b = render(s, 2.0, block)
        s.set("/drums/agent/density", 0.9)
        s.set("/band/style", "house")
        c = render(s, 3.0, block)
        outs.append(np.concatenate([a, b, c]))
    assert np.abs(outs[0]).max() > 0.01 and np.array_equal(outs[0], outs[1])
