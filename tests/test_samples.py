"""Sample sets (engine.samples): the TOML format, errors that name the file, the line and the
field, the factory sets, and how a set reaches the sampler unit: the graph's data hook and the
patch's `samples` key."""
import numpy as np
import pytest
import soundfile

from engine import samples as SM
from engine.control.graph import Graph, Program
from engine.control.offline import OfflineDriver
from engine.patch import read_patch
from engine.rt import layout as L
from engine.rt.units import sampler as S
from engine.tomldata import DataError
from tests.test_units import SR

GOOD = """\
[set]
name = "two"
loop_crossfade_ms = 5.0

[[zone]]
file = "a.wav"
root = 60
lo = 0
hi = 64

[[zone]]
file = "b.flac"
root = 72
lo = 65
hi = 127
loop_start = 1000
loop_end = 4000
"""


@pytest.fixture
def setdir(tmp_path):
    x = np.sin(2 * np.pi * 440.0 * np.arange(4800) / SR)
    soundfile.write(tmp_path / "a.wav", 0.5 * x, SR, subtype="PCM_16")
    soundfile.write(tmp_path / "b.flac", np.stack([x, -x]).T * 0.5, 44100, subtype="PCM_24")
    (tmp_path / "good.toml").write_text(GOOD)
    return tmp_path


def test_a_set_loads_with_its_zones(setdir):
    ss = SM.load_set(str(setdir / "good.toml"))
    assert ss.zones == 2 and ss.stereo and ss.name == "two"
    t = ss.table
    assert list(t[:, S.Z_ROOT]) == [60, 72] and list(t[:, S.Z_HI]) == [64, 127]
    assert list(t[:, S.Z_RATE]) == [48000.0, 44100.0]
    assert t[0, S.Z_END] == 2 * 4800 and t[0, S.Z_WL] == 0.0          # one pass
    assert t[1, S.Z_WL] == 2 * 3000 and t[1, S.Z_END] == S.NEVER       # looped
    assert SM.load_set(str(setdir / "good.toml")) is ss                # cached
    (setdir / "good.toml").write_text(GOOD.replace("hi = 64", "hi = 63"))
    assert SM.load_set(str(setdir / "good.toml")) is not ss            # changed: read again


def _error(setdir, text, files=None):
    path = setdir / "bad.toml"
    path.write_text(text)
    with pytest.raises(DataError) as exc:
        SM.load_set(str(path))
    return str(exc.value)


def _line(text, needle, nth=1):
    """The line number of the nth line containing `needle`."""
    hits = [n for n, s in enumerate(text.splitlines(), 1) if needle in s]
    return hits[nth - 1]


@pytest.mark.parametrize("change, needle, nth, field, words", [
    (("root = 72", "root = 200"), "root = 200", 1, "zone 2 (b.flac) root", "0..127"),
    (("hi = 64", "hi = 64\nvelocity = 3"), "velocity", 1, "zone 1 (a.wav) velocity",
     "unknown key"),
    (("lo = 65", "lo = 65\nrr_group = 99"), "rr_group", 1, "zone 2 (b.flac) rr_group", "0..63"),
    (("loop_end = 4000", "loop_end = 9000"), "loop_end", 1, "zone 2 (b.flac) loop_end",
     "beyond the end of b.flac (4800 frames)"),
    (("loop_end = 4000", "loop_end = 1004"), "loop_end", 1, "zone 2 (b.flac) loop_end",
     "at least 8 frames"),
    (("loop_end = 4000\n", ""), "loop_start", 1, "zone 2 (b.flac) loop_start",
     "needs both loop_start and loop_end"),
    (("loop_end = 4000", "loop_end = 4000\none_shot = true"), "one_shot", 1,
     "zone 2 (b.flac) one_shot", "cannot be one_shot"),
    (("lo = 0\nhi = 64", "lo = 64\nhi = 0"), "hi = 0", 1, "zone 1 (a.wav) hi", ">= lo"),
    (('file = "a.wav"', 'file = "gone.wav"'), "gone.wav", 1, "zone 1 (gone.wav) file",
     "no such file"),
    (('file = "a.wav"', 'file = "junk.flac"'), "junk.flac", 1, "zone 1 (junk.flac) file",
     "as audio"),
    (('file = "a.wav"', 'file = "quad.wav"'), "quad.wav", 1, "zone 1 (quad.wav) file",
     "4 channels"),
    (("root = 60\n", ""), "[[zone]]", 1, "zone 1 (a.wav)", "root is missing"),
    (('loop_crossfade_ms = 5.0', 'loop_crossfade_ms = "long"'), "loop_crossfade_ms", 1,
     "[set] loop_crossfade_ms", "must be float"),
    (("hi = 127", "hi = 127.5"), "hi = 127.5", 1, "zone 2 (b.flac) hi", "must be int"),
], ids=["range", "unknown", "rr", "loop-beyond", "loop-short", "loop-half", "loop-oneshot",
        "lo-hi", "missing-file", "broken-file", "channels", "required", "set-type", "int"])
def test_a_bad_set_names_its_file_line_and_field(setdir, change, needle, nth, field, words):
    (setdir / "junk.flac").write_bytes(b"fLaC but not really" + bytes(range(200)))
    soundfile.write(setdir / "quad.wav", np.zeros((100, 4)), SR)
    text = GOOD.replace(*change)
    msg = _error(setdir, text)
    where = f"{setdir / 'bad.toml'}:{_line(text, needle, nth)}: {field}"
    assert msg.startswith(where), msg
    assert words in msg, msg


def test_broken_toml_and_empty_sets_are_named(setdir):
    text = GOOD.replace("root = 72", "root = = 72")
    msg = _error(setdir, text)
    assert msg.startswith(f"{setdir / 'bad.toml'}:{_line(text, 'root = = 72')}: not valid TOML")
    assert "no [[zone]]" in _error(setdir, '[set]\nname = "x"\n')
    assert "unknown" in _error(setdir, GOOD + "\n[extra]\nx = 1\n")
    with pytest.raises(DataError, match="no factory set 'nonesuch'; factory sets: kit, "
                                        "mallet, pad"):
        SM.load_set("nonesuch")
    with pytest.raises(DataError, match="cannot read"):
        SM.load_set(str(setdir / "absent.toml"))


def test_the_factory_sets_are_small_and_complete():
    """Three sets, under 2 MB of FLAC in all; the kit has round-robin takes, the mallet two
    velocity layers over the keyboard, the pad stereo loops at 44.1 kHz."""
    assert SM.factory_sets() == ["kit", "mallet", "pad"]
    total = sum(p.stat().st_size for p in SM.FACTORY.rglob("*.flac"))
    assert total < 2_000_000
    kit, mallet, pad = (SM.load_set(n) for n in SM.factory_sets())
    groups = kit.table[:, S.Z_RR]
    assert {int(g): int((groups == g).sum()) for g in set(groups) if g > 0} == \
        {1: 3, 3: 3, 4: 2, 5: 4, 7: 2}
    assert (kit.table[:, S.Z_ONESHOT] == 1).all()
    assert sorted(set(mallet.table[:, S.Z_VLO])) == [1, 80]
    for vel in range(1, 128):                          # every key and velocity has one zone
        for key in range(128):
            hit = ((mallet.table[:, S.Z_LO] <= key) & (key <= mallet.table[:, S.Z_HI])
                   & (mallet.table[:, S.Z_VLO] <= vel) & (vel <= mallet.table[:, S.Z_VHI]))
            assert hit.sum() == 1
    assert pad.stereo and (pad.table[:, S.Z_RATE] == 44100).all()
    assert (pad.table[:, S.Z_WL] > 0).all()


# ---- through the graph and patches -----------------------------------------------------------

def test_a_part_plays_a_sample_set_through_the_graph():
    """`samples = "kit"` in a part's instrument table: the graph loads the set when it is
    built (the state holds it), notes play it, a bad name is an error naming the place, and a
    swap to the same set carries the voices over while another set starts fresh."""
    from engine.control.state import EngineState
    from engine.rt.events import K_NOTE_ON
    spec = {"parts": {"drums": {"instrument": {"unit": "sampler", "samples": "kit"}}}}
    prog = Program(spec, SR)
    op = prog.ops[prog.part_op[4]]
    kit = SM.load_set("kit")
    assert op.data["samples"] is kit and op.state_len == S.state_size(SR, kit)
    st = EngineState(SR)
    st.graph = Graph(st, spec, SR)
    for k, key in enumerate((36, 38, 42, 38)):
        st.push_sched(1000 + 4800 * k, K_NOTE_ON, 4, key, 0.9, 1)
    drv = OfflineDriver(st, 256)
    out = drv.render(SR)
    assert np.abs(out[:1000]).max() == 0.0 and np.abs(out[1000:1100]).max() > 0.01
    assert int(st.ctl[L.C_VOICES_ACTIVE]) == 0           # one-shots, all over in a second
    with pytest.raises(ValueError, match=r"parts\.drums\.instrument\.samples: samples: no "
                                         r"factory set 'kick'"):
        Program({"parts": {"drums": {"instrument": {"unit": "sampler", "samples": "kick"}}}},
                SR)
    same = Program(spec, SR)
    assert same.carry_from(prog) == len(prog.ops)
    other = Program({"parts": {"drums": {"instrument": {"unit": "sampler",
                                                        "samples": "mallet"}}}}, SR)
    assert other.prog[other.part_op[4], 6] == -1 or other.carry_from(prog) < len(prog.ops)


def test_a_patch_names_its_samples_relative_to_itself(setdir):
    (setdir / "p.toml").write_text('[patch]\nname = "x"\nengine = "sampler"\n\n[synth]\n'
                                   'samples = "good.toml"\nrelease_ms = 500.0\n')
    inst = read_patch(setdir / "p.toml").instrument()
    assert inst["samples"] == str(setdir / "good.toml") and inst["release_ms"] == 500.0
    prog = Program({"parts": {"keys": {"instrument": inst}}}, SR)
    assert prog.ops[0].data["samples"].name == "two"
    (setdir / "q.toml").write_text('[patch]\nengine = "sampler"\n[synth]\nsamples = "pad"\n')
    assert read_patch(setdir / "q.toml").instrument()["samples"] == "pad"
    (setdir / "r.toml").write_text('[patch]\nengine = "sampler"\n')
    assert "samples" not in read_patch(setdir / "r.toml").instrument()     # the built-in
