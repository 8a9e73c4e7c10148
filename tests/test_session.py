"""A whole session offline: tempo changes, patch changes while playing, following the player."""
from fractions import Fraction

import numpy as np
import pytest

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


class Recorder:
    """Wraps the scheduler's sink to keep every row it sends."""

    def __init__(self, session):
        self.rows = []
        send = session.scheduler.send

        def keep(rows):
            self.rows.append(rows.copy())
            send(rows)

        session.scheduler.send = keep

    def notes(self, part):
        rows = np.concatenate(self.rows)
        return rows[(rows[:, 1] == K_NOTE_ON) & (rows[:, 2] == part)]


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
    assert s.state.arrays[L.S_PART][L.GLOBAL_ROW, L.GL_TEMPO_BPM] == 140.0
    assert np.all(np.isfinite(out)) and s.state.counters()["late_events"] == 0


def test_loading_a_patch_while_a_note_sounds_does_not_click(cfg):
    cfg["band"].update(drums=False, bass=False)
    s = Session(cfg, SR)
    s.state.push_sched(0, K_NOTE_ON, KEYS, 57, 1.0, 1)
    a = run(s, 0.5)
    s.load_patch("keys", s.root / "patches/lead.toml")       # a very different sound
    b = run(s, 0.5)
    x = np.concatenate([a[:, 0], b[:, 0]])
    seam = len(a)
    normal = np.abs(np.diff(x[seam - 4800:seam])).max()
    across = np.abs(np.diff(x[seam - 10:seam + 2400])).max()
    assert across < 2.0 * normal
    assert not np.allclose(a[-4800:, 0], b[-4800:, 0], atol=1e-3)   # it did change the sound


def test_band_follows_the_chord_the_player_holds(cfg):
    s = Session(cfg, SR)
    rec = Recorder(s)
    run(s, 0.5)
    for note in (62, 65, 69):                                  # D minor in the player's hand
        s.player_note(K_NOTE_ON, note, 0.8, s.state.sample_time, 1)
    start = s.scheduler.cursor
    run(s, 4.0)
    bass = rec.notes(BASS)
    later = bass[bass[:, 0] >= s.clock.sample_at(Fraction(int(start) + 2))]
    on_beats = [int(n[3]) % 12 for n in later
                if s.clock.beat_at(int(n[0])) % 1 == 0 and s.clock.beat_at(int(n[0])) % 4 == 0]
    assert on_beats and all(pc == 2 for pc in on_beats)       # D on every downbeat
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
