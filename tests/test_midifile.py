"""MIDI files: write_performance -> read_notes / read_performance round trips, tempo maps, errors."""
from __future__ import annotations

import random

import mido
import pytest

from controllers.midifile import (
    DRUM_CHANNEL,
    MidiFileError,
    NoteRecord,
    read_notes,
    read_performance,
    write_performance,
)


def make_notes(seed: int = 7, n: int = 200) -> list[tuple[float, float, str, int, float]]:
    rng = random.Random(seed)
    parts = ["keys", "bass", "chords", "lead", "drums", "pad"]
    notes = []
    busy: dict[tuple[str, int], list[tuple[float, float]]] = {}
    while len(notes) < n:
        part = rng.choice(parts)
        start = rng.uniform(0, 60)
        dur = rng.choice([0.0, 0.01, rng.uniform(0.05, 2.0)])
        note = rng.choice([36, 38, 42]) if part == "drums" else rng.randrange(24, 100)
        # MIDI cannot tell overlapping notes of one pitch on one channel apart: keep them apart
        span = (start - 0.05, start + dur + 0.05)
        if any(a < span[1] and span[0] < b for a, b in busy.get((part, note), [])):
            continue
        busy.setdefault((part, note), []).append(span)
        notes.append((start, dur, part, note, rng.uniform(0.01, 1.0)))
    return notes


@pytest.mark.parametrize("tempo_bpm, tpb", [(123.0, 480), (90.0, 96), (174.5, 960)])
def test_write_then_read_gives_the_same_notes_within_one_tick(tmp_path, tempo_bpm, tpb):
    notes = make_notes()
    path = tmp_path / "take.mid"
    write_performance(path, notes, tempo_bpm=tempo_bpm, ticks_per_beat=tpb)
    tick_s = 60.0 / (tempo_bpm * tpb)
    got = read_notes(path)
    assert len(got) == len(notes)

    def key(r):
        return (r[2], r[3], round(r[0] / tick_s))

    for want, have in zip(sorted(notes, key=key), sorted(got, key=key)):
        assert isinstance(have, NoteRecord)
        assert have.part == want[2] and have.note == want[3]
        assert abs(have.start_s - want[0]) <= tick_s
        assert abs(have.dur_s - want[1]) <= tick_s or (want[1] < tick_s and have.dur_s <= 1.5 * tick_s)
        assert abs(have.velocity - want[4]) <= 0.5 / 127 + 1e-9


def test_written_file_layout(tmp_path):
    path = tmp_path / "take.mid"
    write_performance(path, [(0.0, 0.5, "drums", 36, 1.0), (0.5, 0.5, "bass", 40, 0.5),
                             (1.0, 0.5, "keys", 60, 0.8), (1.0, 0.5, "pad", 64, 0.8)], tempo_bpm=100)
    mid = mido.MidiFile(path)
    assert mid.type == 1
    names = [next(m.name for m in t if m.type == "track_name") for t in mid.tracks]
    assert names == ["bandmate", "keys", "bass", "drums", "pad"]
    assert [m.tempo for m in mid.tracks[0] if m.type == "set_tempo"] == [mido.bpm2tempo(100)]
    channels = {name: {m.channel for m in t if hasattr(m, "channel")} for name, t in zip(names, mid.tracks)}
    assert channels["drums"] == {DRUM_CHANNEL}
    assert channels["keys"] == {0} and channels["bass"] == {1} and channels["pad"] == {4}
    programs = {name: [m.program for m in t if m.type == "program_change"] for name, t in zip(names, mid.tracks)}
    assert programs["bass"] == [33] and programs["keys"] == [0] and programs["drums"] == [0]


def test_read_performance_merges_tracks_in_seconds(tmp_path):
    path = tmp_path / "take.mid"
    write_performance(path, [(0.0, 1.0, "keys", 60, 0.5), (0.5, 1.0, "bass", 36, 1.0)], tempo_bpm=120)
    events = read_performance(path)
    assert [(round(t, 6), m.type, m.note) for t, m in events] == [
        (0.0, "note_on", 60), (0.5, "note_on", 36), (1.0, "note_off", 60), (1.5, "note_off", 36)]
    assert all(m.time == 0 for _, m in events)
    # a constant tempo instead of the file's: twice as fast
    assert [round(t, 6) for t, _ in read_performance(path, tempo_bpm=240)] == [0.0, 0.25, 0.5, 0.75]


def test_read_follows_the_tempo_map_and_normalizes_note_off(tmp_path):
    mid = mido.MidiFile(type=1, ticks_per_beat=100)
    conductor = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500_000, time=0),
                                mido.MetaMessage("set_tempo", tempo=1_000_000, time=200)])
    notes = mido.MidiTrack([
        mido.Message("note_on", note=60, velocity=100, time=0),
        mido.Message("control_change", control=64, value=127, time=100),   # beat 1: 0.5 s
        mido.Message("note_on", note=60, velocity=0, time=100),            # beat 2: 1.0 s
        mido.Message("pitchwheel", pitch=100, time=100),                   # beat 3: 2.0 s
        mido.Message("sysex", data=[1, 2], time=0),
        mido.Message("program_change", program=5, time=0),
    ])
    mid.tracks += [conductor, notes]
    path = tmp_path / "map.mid"
    mid.save(path)
    events = read_performance(path)
    assert [(round(t, 6), m) for t, m in events] == [
        (0.0, mido.Message("note_on", note=60, velocity=100)),
        (0.5, mido.Message("control_change", control=64, value=127)),
        (1.0, mido.Message("note_off", note=60, velocity=64)),
        (2.0, mido.Message("pitchwheel", pitch=100)),
    ]
    assert read_notes(path) == [NoteRecord(0.0, 1.0, "track 1", 60, 100 / 127)]


def test_missing_file_error_names_the_path(tmp_path):
    path = tmp_path / "nope.mid"
    with pytest.raises(MidiFileError, match="nope.mid") as info:
        read_performance(path)
    assert isinstance(info.value, OSError) and info.value.path == str(path)


@pytest.mark.parametrize("content", [b"", b"not a midi file at all", b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0"
                                     b"MTrk\x00\x00\x00\x20\x00\x90\x3c"])
def test_broken_file_error_names_the_path(tmp_path, content):
    path = tmp_path / "broken.mid"
    path.write_bytes(content)
    with pytest.raises(MidiFileError, match=str(path)):
        read_performance(path)
    with pytest.raises(MidiFileError, match="broken.mid"):
        read_notes(path)


def test_truncated_file_error_names_the_path(tmp_path):
    path = tmp_path / "cut.mid"
    write_performance(path, make_notes(n=20), tempo_bpm=120)
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(MidiFileError, match="cut.mid"):
        read_performance(path)


def test_unwritable_path_error_names_it(tmp_path):
    with pytest.raises(MidiFileError, match="no_dir"):
        write_performance(tmp_path / "no_dir" / "x.mid", [(0.0, 1.0, "keys", 60, 1.0)], tempo_bpm=120)


@pytest.mark.parametrize("record", [(-1.0, 1.0, "keys", 60, 1.0), (0.0, -1.0, "keys", 60, 1.0),
                                    (0.0, 1.0, "keys", 128, 1.0), (0.0, 1.0, "keys", 60, 100.0),
                                    (0.0, 1.0, "keys", 60)])
def test_bad_records_are_value_errors(tmp_path, record):
    with pytest.raises(ValueError):
        write_performance(tmp_path / "x.mid", [record], tempo_bpm=120)
