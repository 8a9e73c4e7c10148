"""bench/scnrt.py and bench/peers.py: the SynthDef and NRT score writers behind the scsynth peer
figure, and the checks that every peer's render plays the reference voice's filter envelope.

The SynthDef bytes are read back by an independent parser written from SuperCollider's
"Synth Definition File Format" reference (SCgf version 2). The render test needs scsynth
(Debian: apt-get install --no-install-recommends supercollider-server) and skips without it."""
import math
import struct

import numpy as np
import pytest

from bench import peers, scnrt


# ---------------------------------------------------------------- an independent SCgf v2 reader
class Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, fmt: str):
        size = struct.calcsize(">" + fmt)
        assert self.pos + size <= len(self.data), "truncated"
        values = struct.unpack_from(">" + fmt, self.data, self.pos)
        self.pos += size
        return values if len(values) > 1 else values[0]

    def pstring(self) -> str:
        n = self.take("B")
        s = self.data[self.pos:self.pos + n]
        assert len(s) == n, "truncated string"
        self.pos += n
        return s.decode("ascii")


def parse_scgf(data: bytes) -> list[dict]:
    r = Reader(data)
    assert r.data[:4] == b"SCgf"
    r.pos = 4
    assert r.take("i") == 2
    defs = []
    for _ in range(r.take("h")):
        d = {"name": r.pstring()}
        d["constants"] = [r.take("f") for _ in range(r.take("i"))]
        d["params"] = [r.take("f") for _ in range(r.take("i"))]
        d["param_names"] = [(r.pstring(), r.take("i")) for _ in range(r.take("i"))]
        ugens = []
        for _ in range(r.take("i")):
            name = r.pstring()
            rate, n_in, n_out, special = r.take("b"), r.take("i"), r.take("i"), r.take("h")
            inputs = [r.take("ii") for _ in range(n_in)]
            outputs = [r.take("b") for _ in range(n_out)]
            ugens.append({"name": name, "rate": rate, "inputs": inputs, "outputs": outputs,
                          "special": special})
        d["ugens"] = ugens
        d["variants"] = [(r.pstring(), [r.take("f") for _ in d["params"]])
                         for _ in range(r.take("h"))]
        defs.append(d)
    assert r.pos == len(data), "bytes left over after the last definition"
    return defs


def value_of(d: dict, inp: tuple[int, int]):
    """A decoded input: ('const', value) or (ugen name, output index)."""
    src, index = inp
    return ("const", d["constants"][index]) if src == -1 else (d["ugens"][src]["name"], index)


@pytest.fixture(scope="module")
def voice():
    return peers.reference_voice()


def test_reference_patch_has_a_filter_envelope(voice):
    assert voice["filter_env_octaves"] != 0.0
    assert 0.0 < voice["filter_sustain"] < 1.0


def test_synthdef_decodes_back_to_the_graph(voice):
    sd = scnrt.reference_synthdef(voice)
    (d,) = parse_scgf(sd.encode())
    assert d["name"] == sd.name
    assert len(d["constants"]) == len(sd.constants) == len(set(sd.constants))
    assert len(d["ugens"]) == len(sd.ugens)
    assert d["variants"] == []
    assert [n for n, _ in d["param_names"]] == ["freq", "freq2", "cutoff", "amp", "gate"]
    assert sorted(i for _, i in d["param_names"]) == list(range(len(d["params"])))
    assert [u["name"] for u in d["ugens"]] == [
        "Control", "Saw", "Saw", "BinaryOpUGen", "EnvGen", "BinaryOpUGen", "BinaryOpUGen",
        "BinaryOpUGen", "BinaryOpUGen", "MoogFF", "EnvGen", "BinaryOpUGen", "Out"]
    for k, u in enumerate(d["ugens"]):
        assert u["rate"] in (0, 1, 2)
        assert all(r == u["rate"] for r in u["outputs"])
        for src, index in u["inputs"]:
            if src == -1:
                assert 0 <= index < len(d["constants"])
            else:       # an earlier UGen's existing output
                assert 0 <= src < k
                assert 0 <= index < len(d["ugens"][src]["outputs"])
    ctl = d["ugens"][0]
    assert (ctl["rate"], len(ctl["outputs"]), ctl["special"]) == (1, len(d["params"]), 0)
    assert d["params"][2] == pytest.approx(voice["cutoff_hz"])

    by_name = {}
    for u in d["ugens"]:
        by_name.setdefault(u["name"], []).append(u)
    saws = by_name["Saw"]
    assert [value_of(d, s["inputs"][0]) for s in saws] == [("Control", 0), ("Control", 1)]
    assert all(s["rate"] == 2 for s in saws)
    moog = by_name["MoogFF"][0]
    assert moog["rate"] == 2
    assert value_of(d, moog["inputs"][0])[0] == "BinaryOpUGen"
    assert value_of(d, moog["inputs"][2])[1] == pytest.approx(3.9 * voice["resonance"])
    # the cutoff: min(cutoff * 2 ** (octaves * filter env), max), at control rate
    hz = d["ugens"][moog["inputs"][1][0]]
    assert (hz["special"], hz["rate"]) == (scnrt.BINARY_OPS["min"], 1)
    assert value_of(d, hz["inputs"][1])[1] == pytest.approx(voice["cutoff_max_hz"])
    prod = d["ugens"][hz["inputs"][0][0]]
    assert prod["special"] == scnrt.BINARY_OPS["*"]
    assert value_of(d, prod["inputs"][1]) == ("Control", 2)
    power = d["ugens"][prod["inputs"][0][0]]
    assert power["special"] == scnrt.BINARY_OPS["pow"]
    assert value_of(d, power["inputs"][0])[1] == 2.0
    octs = d["ugens"][power["inputs"][1][0]]
    assert value_of(d, octs["inputs"][0])[0] == "EnvGen"
    assert value_of(d, octs["inputs"][1])[1] == pytest.approx(voice["filter_env_octaves"])
    # both envelopes: gate from the controls, Env.adsr's array
    fenv, aenv = by_name["EnvGen"]
    assert (fenv["rate"], aenv["rate"]) == (1, 2)
    for env, prefix in ((fenv, "filter"), (aenv, "amp")):
        assert value_of(d, env["inputs"][0]) == ("Control", 4)
        values = [value_of(d, i)[1] for i in env["inputs"][5:]]
        want = scnrt.env_adsr(voice[f"{prefix}_attack_s"], voice[f"{prefix}_decay_s"],
                              voice[f"{prefix}_sustain"], voice[f"{prefix}_release_s"])
        assert values == pytest.approx(want)
        assert values[:4] == [0.0, 3.0, 2.0, -99.0]
    assert value_of(d, aenv["inputs"][1]) == ("Control", 3)     # levelScale = amp
    assert value_of(d, aenv["inputs"][4])[1] == 2.0              # doneAction: free the synth
    out = by_name["Out"][0]
    assert out["outputs"] == [] and value_of(d, out["inputs"][0]) == ("const", 0.0)


def test_synthdef_refuses_an_input_from_a_later_ugen():
    sd = scnrt.SynthDef("x")
    sd.add("Saw", "ar", [440.0])
    with pytest.raises(ValueError):
        sd.add("Out", "ar", [0.0, scnrt.Ref(5)], n_outputs=0)
    with pytest.raises(ValueError):
        sd.add("Out", "ar", [0.0, scnrt.Ref(0, 1)], n_outputs=0)


def test_osc_message_and_score_layout():
    m = scnrt.osc_message("/s_new", "def", 1000, 0, 0, "freq", 440.0, b"\x01\x02\x03")
    assert len(m) % 4 == 0
    assert m.startswith(b"/s_new\0\0,siiisfb\0")
    assert m[-8:] == struct.pack(">i", 3) + b"\x01\x02\x03\0"
    score = scnrt.voices_score(b"SCgf", "def", [{"freq": 100.0}, {"freq": 200.0}], 2.5)
    pos, times, addresses = 0, [], []
    while pos < len(score):
        (size,) = struct.unpack_from(">i", score, pos)
        bundle = score[pos + 4:pos + 4 + size]
        assert len(bundle) == size and bundle.startswith(b"#bundle\0")
        times.append(struct.unpack_from(">Q", bundle, 8)[0] / 2 ** 32)
        (msize,) = struct.unpack_from(">i", bundle, 16)
        assert 20 + msize == size                     # one message a bundle
        addresses.append(bundle[20:bundle.index(b"\0", 20)].decode())
        pos += 4 + size
    assert pos == len(score)
    assert addresses == ["/d_recv", "/s_new", "/s_new", "/c_set"]
    assert times == [0.0, 0.0, 0.0, 2.5]
    with pytest.raises(ValueError):
        scnrt.nrt_score([(1.0, []), (0.5, [])])


def test_voice_controls_follow_bandmate(voice):
    c = peers.voice_controls(voice, 61)
    assert c[0]["freq"] == pytest.approx(440.0 * 2 ** ((36 - 69) / 12))
    assert c[60]["freq"] == pytest.approx(440.0 * 2 ** ((36.1 - 69) / 12))
    assert c[0]["freq2"] / c[0]["freq"] == pytest.approx(2 ** (7 / 1200))
    # key tracking over two octaves: voice 12 plays note 36 + 84 % 60 = 60
    assert c[12]["cutoff"] / c[0]["cutoff"] == pytest.approx(2 ** (voice["key_tracking"] * 2))
    assert len({round(x["amp"], 12) for x in c}) == 1


def test_peers_refuse_a_patch_they_cannot_model():
    with pytest.raises(ValueError):
        peers.reference_voice(peers.ROOT / "patches" / "bass.toml")   # pulse wave


def test_filter_env_check_tells_an_opening_filter_from_a_static_one():
    sr = 48000
    rng = np.random.default_rng(1)
    t = np.arange(int(1.5 * sr)) / sr
    low = np.sin(2 * np.pi * 220 * t)
    hiss = rng.standard_normal(len(t))
    hiss = hiss - np.convolve(hiss, np.ones(8) / 8, mode="same")  # mostly above 6 kHz
    static = low + 0.05 * hiss
    opening = low + 0.05 * hiss * np.exp(-t / 0.1) * 10
    yes = peers.filter_env_check(opening, static, sr)
    no = peers.filter_env_check(static, static, sr)
    assert yes["heard"] and yes["ratio"] > 10
    assert not no["heard"] and no["ratio"] == pytest.approx(1.0)
    assert peers.filter_env_opening(static[: sr // 2], sr) is None


@pytest.mark.skipif(scnrt.scsynth_path() is None,
                    reason="scsynth is not installed (Debian: apt-get install "
                           "--no-install-recommends supercollider-server)")
def test_scsynth_renders_the_reference_voice(voice, tmp_path):
    import soundfile as sf

    sd = scnrt.reference_synthdef(voice)
    controls = peers.voice_controls(voice, 4)
    scnrt.render_nrt(scnrt.voices_score(sd.encode(), sd.name, controls, 1.5),
                     tmp_path / "voices.wav", 48000)
    scnrt.render_nrt(scnrt.voices_score(sd.encode(), sd.name, [], 1.5),
                     tmp_path / "empty.wav", 48000)
    x, sr = sf.read(tmp_path / "voices.wav", dtype="float32")
    e, _ = sf.read(tmp_path / "empty.wav", dtype="float32")
    assert sr == 48000 and x.ndim == 1 and len(x) >= 1.5 * sr and len(e) == len(x)
    assert np.all(np.isfinite(x))
    assert math.sqrt(np.mean(x.astype(np.float64) ** 2)) > 1e-3
    assert not np.any(e)
    check = peers.scsynth_filter_env_check(voice, controls, 48000)
    assert check["heard"], check
    # a definition scsynth cannot load is an error, not a silent render
    with pytest.raises(RuntimeError):
        scnrt.render_nrt(scnrt.voices_score(sd.encode()[:-30], sd.name, controls, 0.2),
                         tmp_path / "broken.wav", 48000)
