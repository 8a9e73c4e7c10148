"""A whole session offline: tempo changes, patch changes while playing, following the player."""
from fractions import Fraction

import numpy as np
import pytest

from tests.enginekit import SentRows
from engine.config import load_config
from engine.control.offline import OfflineDriver
from engine.control.session import Session
from engine.parts import BASS, KEYS
from engine.rt import layout as L
from engine.rt.events import K_NOTE_OFF, K_NOTE_ON

SR = 48000


@pytest.fixture
def cfg(monkeypatch):
    monkeypatch.chdir(__import__("pathlib").Path(__file__).resolve().parent.parent)
    return load_config("config.toml", environ={})


def run(session, seconds, block=256):
    drv = OfflineDriver(session.state, block, session.scheduler.advance)
    return drv.render(int(seconds * SR))


class Recorder(SentRows):
    """Every row the scheduler sends; `notes(part)`: the note-ons of a part (its index)."""
    notes = SentRows.onsets


def test_tempo_change_moves_only_the_future_onto_the_new_grid(cfg):
    s = Session(cfg, SR)
    rec = Recorder(s)
    run(s, 2.0)
    at = Fraction(int(s.scheduler.cursor) + 1)
    before = s.clock.sample_at(at)
    s.set_tempo(140.0)
    out = run(s, 4.0)
    assert s.clock.sample_at(at) == before                     # the past did not move
    assert s.clock.sample_at(at + 1) - before == round(SR * 60 / 140)
    onsets = rec.notes(4)[:, 0]                                # drum hits
    hits = sorted(t for t in onsets if t >= before + round(0.015 * SR))
    assert len(hits) > 8
    # every hit after the change sits on the new tempo's sixteenth grid (within humanising)
    grid = np.array([s.clock.sample_at(Fraction(b, 4)) for b in range(4 * int(at), 4 * int(at) + 64)])
    old = np.array([before + round(b * SR * 60 / 112 / 4) for b in range(64)])
    assert all(np.abs(grid - t).min() <= round(0.015 * SR) for t in hits[:20])
    assert not all(np.abs(old - t).min() <= round(0.002 * SR) for t in hits[:20])
    assert s.state.arrays[L.S_GLOBAL][L.GL_TEMPO_BPM] == 140.0
    assert np.all(np.isfinite(out)) and s.state.counters()["late_events"] == 0


def _seam_jump(a, b):
    """Largest sample-to-sample step across the seam of two renders, and the largest in the
    steady sound on either side (a click is a step bigger than the sound ever makes)."""
    x = np.concatenate([a[:, 0], b[:, 0]]).astype(float)
    seam = len(a)
    steps = np.abs(np.diff(x))
    return steps[seam - 10:seam + 2400].max(), max(steps[seam - 9600:seam - 10].max(),
                                                   steps[seam + 9600:seam + 19200].max())


def dry_keys(cfg):
    """Only the player's part, with no delay or reverb (an echo of the attack is no click)."""
    cfg["band"].update(drums=False, bass=False)
    cfg["mix"].update(keys_delay_send=0.0, keys_reverb_send=0.0)


def test_loading_a_patch_while_a_note_sounds_does_not_click(cfg):
    dry_keys(cfg)
    s = Session(cfg, SR)
    s.state.push_sched(0, K_NOTE_ON, KEYS, 57, 1.0, 1)
    a = run(s, 0.5)
    s.load_patch("keys", s.root / "patches/lead.toml")       # a very different sound
    b = run(s, 0.5)
    across, steady = _seam_jump(a, b)
    assert across <= 1.05 * steady
    assert not np.allclose(a[-4800:, 0], b[-4800:, 0], atol=1e-3)   # it did change the sound


@pytest.mark.parametrize("param,value", [("osc1_wave", 2.0), ("filter_type", 1.0)])
def test_switching_waveform_or_filter_mid_note_dips_instead_of_clicking(cfg, param, value):
    dry_keys(cfg)
    s = Session(cfg, SR)
    for name, v in (("osc1_wave", 3.0), ("osc2_level", 0.0), ("cutoff_hz", 20000.0),
                    ("filter_env_octaves", 0.0), ("resonance", 0.0)):
        s.set(f"/keys/synth/{name}", v)
    s.state.push_sched(0, K_NOTE_ON, KEYS, 57, 1.0, 1)
    a = run(s, 0.5)
    s.set(f"/keys/synth/{param}", value)      # sine -> triangle / ladder -> SVF
    b = run(s, 0.5)
    across, steady = _seam_jump(a, b)
    assert across <= 1.05 * steady


def test_band_follows_the_chord_the_player_holds(cfg):
    s = Session(cfg, SR)
    rec = Recorder(s)
    run(s, 0.5)
    for note in (62, 65, 69):                                  # D minor in the player's hand
        s.player_note(K_NOTE_ON, note, 0.8, s.state.sample_time, 1)
    start = s.scheduler.cursor
    run(s, 12.0)
    bass = rec.notes(BASS)
    first_bar = int(start) // 4 + 2                     # the chord takes over within a bar
    downbeats = [s.clock.sample_at(Fraction(4 * bar)) for bar in range(first_bar, first_bar + 5)]
    near = round(0.015 * SR)                            # humanised timing
    on_beats = [int(n[3]) % 12 for n in bass if min(abs(n[0] - d) for d in downbeats) <= near]
    assert len(on_beats) >= 4 and all(pc == 2 for pc in on_beats)   # D on every downbeat
    assert s.conductor.chord.name == "Dm"
    for note in (62, 65, 69):
        s.player_note(K_NOTE_OFF, note, 0.0, s.state.sample_time, 1)


def test_the_session_midi_file_has_the_band_and_the_player(cfg, tmp_path):
    from controllers.midifile import read_notes
    s = Session(cfg, SR)
    run(s, 1.0)
    s.player_note(K_NOTE_ON, 64, 0.9, s.state.sample_time, 1)
    run(s, 0.5)
    s.player_note(K_NOTE_OFF, 64, 0.0, s.state.sample_time, 1)
    run(s, 1.0)
    notes = read_notes(s.write_midi(tmp_path / "jam.mid"))
    keys = [n for n in notes if n.part == "keys"]
    assert len(keys) == 1 and keys[0].note == 64
    assert keys[0].start_s == pytest.approx(1.0, abs=0.01)
    assert keys[0].dur_s == pytest.approx(0.5, abs=0.01)
    assert {n.part for n in notes} >= {"keys", "drums", "bass"}


def test_mixer_and_effect_controls_take_effect_smoothly(cfg):
    from engine.rt import master
    from engine.rt.events import FX_MASTER
    dry_keys(cfg)
    s = Session(cfg, SR)
    s.state.push_sched(0, K_NOTE_ON, KEYS, 57, 1.0, 1)
    a = run(s, 0.4)
    s.set_fx(FX_MASTER, master.MASTER_GAIN_DB, -20.0)       # master down 18 dB
    b = run(s, 0.4)
    assert np.abs(b[-4800:]).max() < 0.2 * np.abs(a[-4800:]).max()
    s.set("/keys/mix/mute", "on")
    c = run(s, 0.2)
    assert np.abs(c[-2400:]).max() < 1e-4                    # muted (after a smooth fade)
    across, steady = _seam_jump(a, b)
    assert across <= 1.05 * steady                           # the gain change did not click
