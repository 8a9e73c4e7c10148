"""Hot reload: a patch edited while the music plays takes over smoothly; a broken edit is
reported with file, line and field and the sound does not change."""
import shutil
import time

import numpy as np
import pytest

from engine.config import load_config
from engine.control.hotreload import PatchWatcher
from engine.control.offline import OfflineDriver
from engine.control.session import Session
from engine.parts import KEYS
from engine.patch import read_patch
from engine.rt import layout as L
from tests.enginekit import analog_targets
from engine.rt.events import K_NOTE_ON
from engine.tomldata import dump

SR = 48000


@pytest.fixture
def studio(tmp_path):
    """A session whose keys patch lives in a folder of ours, with only the keys playing."""
    root = tmp_path
    (root / "patches").mkdir()
    for name in ("keys", "bass", "chords", "lead"):
        shutil.copy(f"patches/{name}.toml", root / "patches" / f"{name}.toml")
    s = _session(root)
    lines = []
    w = PatchWatcher(s, log=lines.append)
    drv = OfflineDriver(s.state, 256, s.scheduler.advance)
    return s, w, drv, root / "patches" / "keys.toml", lines


def _session(root):
    cfg = load_config("config.toml", environ={})
    cfg["band"].update(drums=False, bass=False)
    cfg["mix"].update(keys_delay_send=0.0, keys_reverb_send=0.0)
    s = Session(cfg, SR, root=root)
    s.state.push_sched(0, K_NOTE_ON, KEYS, 57, 1.0, 1)
    return s


def _edit(path, text):
    before = path.stat().st_mtime_ns
    path.write_text(text)
    while path.stat().st_mtime_ns == before:      # a coarse file-system clock: write again
        time.sleep(0.01)
        path.write_text(text)


def _seam(a, b):
    x = np.concatenate([a[:, 0], b[:, 0]])
    steps = np.abs(np.diff(x))
    return steps[len(a) - 50:len(a) + 2400].max(), steps[len(a) - 9600:len(a) - 50].max()


def test_an_edit_reloads_smoothly_and_a_broken_one_changes_nothing(studio):
    s, w, drv, path, lines = studio
    a = drv.render(SR // 2)
    assert w.poll() == []                                  # nothing changed yet
    text = path.read_text()
    _edit(path, text.replace("cutoff_hz = 1400.0", "cutoff_hz = 400.0"))
    assert w.poll() == ["keys: warm keys reloaded"]
    b = drv.render(SR // 2)
    across, steady = _seam(a, b)
    assert across <= 1.05 * steady                         # no click at the reload
    assert np.sqrt(np.mean(b[-4800:] ** 2)) < 0.8 * np.sqrt(np.mean(a[-4800:] ** 2))  # darker
    # a broken edit of every kind: reported with file, line and field; the sound goes on
    for bad, words in (("cutoff_hz = 400.0", "cutoff_hz = 99999.0"),
                       ("cutoff_hz = 400.0", "cutof_hz = 400.0"),
                       ("cutoff_hz = 400.0", "cutoff_hz = \"low\""),
                       ("[filter]", "[filter"),
                       ('name = "warm keys"', 'engine = "theremin"')):
        good = path.read_text()
        targets = analog_targets(s.state, "keys").copy()
        program = s.graph.program
        _edit(path, good.replace(bad, words))
        said = w.poll()
        assert len(said) == 1 and "unchanged" in said[0] and "keys.toml" in said[0], said
        line = said[0].split("keys.toml:")[1].split(":")[0]
        assert line.isdigit(), said                             # a line number
        if bad != "[filter]":                                   # (TOML syntax: its own words)
            assert "[filter]" in said[0] or "[patch]" in said[0], said     # and the field
        c = drv.render(SR // 4)
        assert np.array_equal(analog_targets(s.state, "keys"), targets)   # nothing changed
        assert s.graph.program is program
        assert np.abs(c[-2400:]).max() > 0.01                   # still playing
        _edit(path, good)
        assert w.poll() == ["keys: warm keys reloaded"]
    assert w.errors == 5


def test_a_new_engine_or_insert_chain_is_a_crossfaded_graph_swap(studio):
    s, w, drv, path, lines = studio
    ref = _session(s.root)
    plain = OfflineDriver(ref.state, 256, ref.scheduler.advance).render(SR)
    a = drv.render(SR // 2)
    _edit(path, path.read_text().replace('[patch]\n', '[patch]\ninserts = [{ unit = "width", '
                                                      'gain_db = -6.0 }]\n', 1))
    assert w.poll() == ["keys: warm keys reloaded"]
    assert [op.path for op in s.graph.program.ops][:3] == ["/keys/synth", "/keys/width", "/keys/mix"]
    b = drv.render(SR // 2)
    across, steady = _seam(a, b)
    assert across <= 1.05 * steady
    assert np.array_equal(a, plain[:SR // 2])
    ratio = np.sqrt(np.mean(b[-4800:] ** 2)) / np.sqrt(np.mean(plain[-4800:] ** 2))
    assert abs(ratio - 10 ** (-6 / 20)) < 0.01              # the -6 dB insert is playing
    # an edit while the last swap still crossfades waits for the next poll, then loads
    _edit(path, path.read_text().replace("gain_db = -6.0", "gain_db = -12.0"))
    assert w.poll() == ["keys: warm keys reloaded"]
    assert s.graph.busy()
    _edit(path, path.read_text().replace("gain_db = -12.0", "gain_db = -3.0"))
    assert w.poll() == []
    drv.render(SR // 10)
    assert not s.graph.busy()
    assert w.poll() == ["keys: warm keys reloaded"]
    assert s.graph.program.value_of("/keys/width/gain_db") == -3.0


def test_load_save_load_round_trips(tmp_path):
    for name in ("keys", "bass", "chords", "lead"):
        p = read_patch(f"patches/{name}.toml")
        again = tmp_path / f"{name}.toml"
        again.write_text(dump(p.data))
        assert read_patch(again).data == p.data


def _centroid(x):
    mag = np.abs(np.fft.rfft(x[:, 0] * np.hanning(len(x))))
    f = np.fft.rfftfreq(len(x), 1 / SR)
    return float((mag * f).sum() / mag.sum())


def test_editing_an_instrument_unit_patch_keeps_the_held_notes(tmp_path):
    """A wavetable patch edited while a chord is held: the new values glide in on the same
    voices (the instrument's state is carried into the new graph), no click, no note lost;
    a changed table is a new instrument, crossfaded."""
    root = tmp_path
    (root / "patches").mkdir()
    for name in ("bass", "chords", "lead"):
        shutil.copy(f"patches/{name}.toml", root / "patches" / f"{name}.toml")
    path = root / "patches" / "keys.toml"
    shutil.copy("patches/pad-glass.toml", path)
    s = _session(root)
    for n in (60, 64, 67):
        s.state.push_sched(100, K_NOTE_ON, KEYS, n, 0.8, 1)
    w = PatchWatcher(s, log=lambda _: None)
    other = _session(root)                                 # the same, never edited
    for n in (60, 64, 67):
        other.state.push_sched(100, K_NOTE_ON, KEYS, n, 0.8, 1)
    ref = OfflineDriver(other.state, 256, other.scheduler.advance).render(SR + SR // 2)
    drv = OfflineDriver(s.state, 256, s.scheduler.advance)
    a = drv.render(SR)
    voices = int(s.state.ctl[L.C_VOICES_ACTIVE])
    assert voices >= 3 * 4                                 # three notes, four unison voices
    _edit(path, path.read_text().replace("cutoff_hz = 3500.0", "cutoff_hz = 900.0"))
    assert w.poll() == ["keys: glass pad reloaded"]
    assert s.graph.program.prog[0, 6] == 0                 # the instrument carried over
    b = drv.render(SR // 2)
    assert int(s.state.ctl[L.C_VOICES_ACTIVE]) == voices
    across, _ = _seam(a, b)
    steady = max(np.abs(np.diff(a[-24000:, 0])).max(), np.abs(np.diff(b[2400:, 0])).max())
    assert across <= 1.05 * steady          # no step beyond what the pad itself makes
    assert _centroid(b[-12000:]) < 0.8 * _centroid(ref[-12000:])      # darker than unedited
    while s.graph.busy():
        drv.render(256)
    _edit(path, path.read_text().replace('table = "sine_saw"', 'table = "square"'))
    assert w.poll() == ["keys: glass pad reloaded"]
    assert s.graph.program.prog[0, 6] == -1                # a new table: a new instrument


def test_a_user_folder_of_the_library_is_watched_too(studio, tmp_path_factory):
    """A folder in [library] folders that no part plays from: an edit there is checked at once
    (a broken one reported with file and line), and nothing the band plays changes."""
    s, _, drv, _, _ = studio
    mine = tmp_path_factory.mktemp("my-patches")
    shutil.copy("patches/lead.toml", mine / "screamer.toml")
    lines = []
    w = PatchWatcher(s, [str(mine)], log=lines.append)
    assert mine in w.folders and w.poll() == []
    program = s.graph.program
    path = mine / "screamer.toml"
    _edit(path, path.read_text().replace("cutoff_hz = 2200.0", "cutoff_hz = -3.0"))
    said = w.poll()
    assert len(said) == 1 and "screamer.toml:" in said[0] and "cutoff_hz" in said[0], said
    _edit(path, path.read_text().replace("cutoff_hz = -3.0", "cutoff_hz = 900.0"))
    assert w.poll() == []                     # valid, and no part plays it: nothing to load
    drv.render(512)
    assert s.graph.program is program and w.errors == 1
