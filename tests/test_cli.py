"""engine.cli: `bandmate render` end to end (config, session, offline driver, WAV and MIDI),
run from the repository root as a user would (patch paths in config.toml are relative)."""
import os
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from controllers.midifile import read_notes, write_performance
from engine.cli import main

ROOT = Path(__file__).resolve().parents[1]
SR = 48000


@pytest.fixture(autouse=True)
def at_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)
    for name in list(os.environ):
        if name.startswith("BANDMATE_"):
            monkeypatch.delenv(name)


def render(tmp_path, name, *extra, seconds="3", seed="5"):
    wav = tmp_path / f"{name}.wav"
    rc = main(["render", "--seconds", seconds, "--seed", seed, "-o", str(wav), *extra])
    assert rc == 0
    return wav


def read(wav):
    data, sr = sf.read(wav, dtype="float32", always_2d=True)
    assert sr == SR
    return data


def test_render_writes_a_wav_and_a_midi_file(tmp_path, capsys):
    wav = render(tmp_path, "a")
    info = sf.info(wav)
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (SR, 2, 3 * SR, "FLOAT")
    data = read(wav)
    assert np.all(np.isfinite(data))
    assert 0.01 < np.abs(data).max() <= 10 ** (-1 / 20) + 1e-6      # under the -1 dB ceiling
    notes = read_notes(wav.with_suffix(".mid"))
    parts = {n.part for n in notes}
    assert {"drums", "bass"} <= parts and "keys" not in parts
    assert all(0 <= n.start_s < 3.0 + 0.1 for n in notes)
    out = capsys.readouterr().out
    assert f"wrote {wav}" in out and str(wav.with_suffix(".mid")) in out


def test_same_seed_is_bit_identical_and_another_seed_differs(tmp_path):
    a = render(tmp_path, "a")
    b = render(tmp_path, "b")
    c = render(tmp_path, "c", seed="6")
    assert a.read_bytes() == b.read_bytes()
    assert np.array_equal(read(a), read(b))
    assert not np.array_equal(read(a), read(c))
    assert wav_notes(a) == wav_notes(b) != wav_notes(c)


def test_identical_input_gives_byte_identical_files(tmp_path):
    """Nothing in the files depends on when they were written: the second render closes its
    WAV in a later second than the first (libsndfile's PEAK chunk carried a timestamp)."""
    a = render(tmp_path, "a", seconds="1")
    done = int(time.time())
    while int(time.time()) == done:
        time.sleep(0.02)
    b = render(tmp_path, "b", seconds="1")
    assert a.read_bytes() == b.read_bytes()
    assert a.with_suffix(".mid").read_bytes() == b.with_suffix(".mid").read_bytes()
    info = sf.info(a)                                    # still a plain float WAV
    assert (info.format, info.subtype, info.frames) == ("WAV", "FLOAT", SR)
    assert np.abs(read(a)).max() > 0.01


def wav_notes(wav):
    return read_notes(wav.with_suffix(".mid"))


def test_midi_file_plays_the_players_part(tmp_path):
    player = tmp_path / "player.mid"
    played = [(0.5, 1.0, "keys", 60, 0.8), (0.5, 1.0, "keys", 64, 0.8),
              (1.75, 0.5, "keys", 67, 0.6)]
    write_performance(player, played, 120)
    plain = read(render(tmp_path, "plain"))
    wav = render(tmp_path, "with", "--midi", str(player))
    data = read(wav)
    # the file is a score: the band plays in its tempo (120 BPM, not the configured 112) and
    # its harmony from the start, so the render differs from the plain one at once
    assert np.any(data[: round(0.5 * SR)] != plain[: round(0.5 * SR)])
    drums = [n.start_s for n in wav_notes(wav) if n.part == "drums"]
    sixteenth = 60 / 120 / 4
    assert drums and all(abs(t / sixteenth - round(t / sixteenth)) * sixteenth < 0.013
                         for t in drums)
    # the player's notes are in the session's MIDI file, on the keys part
    keys = [n for n in wav_notes(wav) if n.part == "keys"]
    assert [(n.note, round(n.start_s, 3), round(n.dur_s, 3)) for n in keys] == \
        [(60, 0.5, 1.0), (64, 0.5, 1.0), (67, 1.75, 0.5)]
    assert [round(n.velocity * 127) for n in keys] == [round(0.8 * 127)] * 2 + [round(0.6 * 127)]


def test_render_never_overwrites_its_midi_input(tmp_path, capsys):
    player = tmp_path / "song.mid"
    write_performance(player, [(0.0, 1.0, "keys", 60, 0.8)], 120)
    before = player.read_bytes()
    assert main(["render", "--seconds", "1", "--midi", str(player),
                 "-o", str(tmp_path / "song.wav")]) == 2
    assert "song.mid" in capsys.readouterr().err
    assert player.read_bytes() == before and not (tmp_path / "song.wav").exists()


def test_missing_midi_file_is_a_user_error(tmp_path, capsys):
    rc = main(["render", "--seconds", "1", "--midi", str(tmp_path / "nope.mid"),
               "-o", str(tmp_path / "x.wav")])
    assert rc == 2
    assert "nope.mid" in capsys.readouterr().err


def test_bad_config_file_exits_2_naming_the_line(tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[band]\ntempo_bpm = 100\n\n[render]\nblock_sise = 256\n")
    rc = main(["--config", str(cfg), "render", "--seconds", "1", "-o", str(tmp_path / "x.wav")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "bad.toml:5: [render] block_sise: unknown key" in err
    assert not (tmp_path / "x.wav").exists()


def test_bad_config_value_exits_2(tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[band]\nstyle = \"polka\"\n")
    assert main(["--config", str(cfg), "render", "--seconds", "1",
                 "-o", str(tmp_path / "x.wav")]) == 2
    assert "bad.toml:2: [band] style" in capsys.readouterr().err


def test_bad_flag_value_exits_2(tmp_path, capsys):
    assert main(["render", "--tempo", "1000", "--seconds", "1",
                 "-o", str(tmp_path / "x.wav")]) == 2
    assert "command line: [band] tempo_bpm: must be 20..400" in capsys.readouterr().err


def test_bad_env_exits_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BANDMATE_BAND_TEMPOO", "100")
    assert main(["render", "--seconds", "1", "-o", str(tmp_path / "x.wav")]) == 2
    assert "BANDMATE_BAND_TEMPOO" in capsys.readouterr().err


def test_tempo_flag_changes_the_music(tmp_path):
    import mido
    a = render(tmp_path, "a")
    b = render(tmp_path, "b", "--tempo", "140")
    tempos = [m.tempo for m in mido.MidiFile(b.with_suffix(".mid")).tracks[0]
              if m.type == "set_tempo"]
    assert tempos == [mido.bpm2tempo(140)]
    assert not np.array_equal(read(a), read(b))


def test_render_demo(tmp_path):
    wav = tmp_path / "demo.wav"
    assert main(["render", "--demo", "--seconds", "4", "-o", str(wav)]) == 0
    data = read(wav)
    assert data.shape == (4 * SR, 2)
    assert np.abs(data).max() > 0.01
    parts = {n.part for n in wav_notes(wav)}
    assert "drums" in parts and len(parts) >= 2


def test_render_block_size_does_not_change_the_output(tmp_path):
    wavs = []
    for block in (512, 4096):
        cfg = tmp_path / f"b{block}.toml"
        cfg.write_text(f"[render]\nblock_size = {block}\n")
        wav = tmp_path / f"b{block}.wav"
        assert main(["--config", str(cfg), "render", "--seconds", "3", "--seed", "5",
                     "-o", str(wav)]) == 0
        wavs.append(read(wav))
    assert np.array_equal(wavs[0], wavs[1])


def test_render_block_sizes_within_the_lookahead_agree(tmp_path):
    wavs = []
    for block in (1024, 512, 77):
        cfg = tmp_path / f"b{block}.toml"
        cfg.write_text(f"[render]\nblock_size = {block}\n")
        wav = tmp_path / f"b{block}.wav"
        assert main(["--config", str(cfg), "render", "--seconds", "2", "--seed", "5",
                     "-o", str(wav)]) == 0
        wavs.append(read(wav))
    assert np.array_equal(wavs[0], wavs[1]) and np.array_equal(wavs[0], wavs[2])


def test_render_sample_rate_flag(tmp_path):
    wav = tmp_path / "sr.wav"
    assert main(["render", "--seconds", "1", "--sample-rate", "44100", "-o", str(wav)]) == 0
    info = sf.info(wav)
    assert (info.samplerate, info.frames) == (44100, 44100)


def test_missing_explicit_config_file_is_an_error(tmp_path, capsys):
    rc = main(["--config", str(tmp_path / "nope.toml"), "render", "--seconds", "1",
               "-o", str(tmp_path / "x.wav")])
    assert rc == 2
    assert "nope.toml" in capsys.readouterr().err


def test_units_lists_every_unit_and_parameter(capsys):
    from engine.rt.units import UNITS
    assert main(["units"]) == 0
    out = capsys.readouterr().out
    for unit in UNITS:
        assert f"\n{unit.NAME}: " in "\n" + out
        for p in unit.PARAMS:
            assert f"    {p.name} " in out
    assert "one of tanh, soft, hard; default tanh" in out


def test_render_with_master_inserts_from_the_config(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[mix]\nmaster_inserts = [{ unit = "width", width = 0.0 }]\n')
    out = tmp_path / "mono.wav"
    assert main(["--config", str(cfg), "render", "--seconds", "1", "-o", str(out)]) == 0
    x, _ = sf.read(out)
    assert np.abs(x).max() > 0.01 and np.array_equal(x[:, 0], x[:, 1])
