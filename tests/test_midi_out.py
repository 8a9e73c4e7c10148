"""MIDI out and clock, on the control side and through the offline render (no JACK here:
tests/test_midi_out_jack.py plays the same through a real JACK server and rtmidi port)."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from engine.config import load_config
from engine.control.midi_out import (CaptureSink, PPQN, Route, START, STOP, TICK,
                                     unpack)
from engine.control.offline import OfflineDriver
from engine.control.session import Session
from engine.parts import BASS, DRUMS, PART_INDEX
from engine.rt import layout as L
from engine.tomldata import DataError

ROUTED = {"bass": {"channel": 2, "internal": False}, "drums": {"channel": 10},
          "chords": {"channel": 3}}


def _cfg(**midi_out):
    """A jam (the band from its first beat) with every agent playing."""
    return load_config("config.toml", overrides={"midi_out": midi_out, "band": {
        "chords": True, "lead": True}}, environ={})


def _session(demo=False, sink=None, **midi_out) -> tuple[Session, CaptureSink]:
    s = Session(_cfg(**midi_out), 48000, demo=demo)
    sink = sink or CaptureSink()
    if s.midi_out is not None:
        s.midi_out.attach(sink)
    return s, sink


def sounding_after(messages) -> dict:
    """Play the messages on an imaginary synth: {channel: notes still sounding}."""
    on: dict[int, dict[int, int]] = {}
    for _, m in messages:
        kind, ch = m[0] & 0xF0, m[0] & 0x0F
        if kind == 0x90 and m[2] > 0:
            on.setdefault(ch, {})[m[1]] = on.get(ch, {}).get(m[1], 0) + 1
        elif kind == 0x80 or kind == 0x90:
            on.get(ch, {}).pop(m[1], None)
        elif kind == 0xB0 and m[1] in (120, 123):
            on.pop(ch, None)
    return {ch: notes for ch, notes in on.items() if notes}


def test_off_by_default_and_config_checked():
    assert Session(_cfg(), 48000).midi_out is None
    for bad, words in (({"bass": {"channel": 17}}, "channel must be 1..16"),
                       ({"bass": {"channel": 2, "internal": "no"}}, "internal must be"),
                       ({"bass": {"chanel": 2}}, "unknown key 'chanel'"),
                       ({"bass": 2}, "must be a table"),
                       ({"clock": "yes"}, "must be bool")):
        with pytest.raises(DataError, match=words) as exc:
            _cfg(**bad)
        assert "[midi_out]" in str(exc.value)


def test_routed_parts_become_messages_at_the_scheduler_samples():
    """Each routed part's notes, at the very samples the scheduler stamped, on its channel;
    every note-on is ended (the drums by their gate)."""
    s, sink = _session(**ROUTED)
    rows = []
    real_push = s.state.push_sched_rows
    s.state.push_sched_rows = lambda r: (rows.extend(np.array(r)), real_push(r))[1]
    plain, _ = _session()
    plain_rows = []
    real_plain = plain.state.push_sched_rows
    plain.state.push_sched_rows = lambda r: (plain_rows.extend(np.array(r)), real_plain(r))[1]
    for now in range(0, 8 * 48000, 4800):
        s.advance(now)
        plain.advance(now)
    msgs = sink.messages()
    assert len(msgs) > 50
    gate = round(0.05 * 48000)
    for part, ch in (("bass", 1), ("chords", 2), ("drums", 9)):
        p = PART_INDEX[part]
        want = []
        for r in plain_rows:
            if int(r[2]) != p:
                continue
            status = (0x90 if int(r[1]) == 1 else 0x80) | ch
            vel = min(max(round(r[4] * 127), 1), 127) if status & 0xF0 == 0x90 else 0
            want.append((float(r[0]), bytes([status, int(r[3]), vel])))
            if part == "drums":
                want.append((float(r[0]) + gate, bytes([0x80 | ch, int(r[3]), 0])))
        got = [(t, m) for t, m in msgs if m[0] & 0x0F == ch]
        assert sorted(got) == sorted(want) and got, part
    assert sounding_after(msgs) == {}
    # internal = false: the bass rows never reach the engine; the others still do
    kinds = {int(r[2]) for r in rows if int(r[1]) in (1, 2)}
    assert BASS not in kinds and DRUMS in kinds and PART_INDEX["chords"] in kinds


def test_internal_false_silences_the_part_in_the_render_only():
    """Offline render: with internal = false the bass part's own signal is silent; with the
    default (internal = true) it plays. The other parts are unchanged either way."""
    peaks = {}
    for internal in (False, True):
        s, sink = _session(bass={"channel": 2, "internal": internal})
        OfflineDriver(s.state, 256, s.advance).render(6 * 48000)
        peaks[internal] = s.state.arrays[L.S_METER][L.M_PART_PEAK:L.M_PART_PEAK + 5].copy()
        assert sum(1 for _, m in sink.messages() if m[0] == 0x91) > 5
    assert peaks[False][BASS] == 0.0 and peaks[True][BASS] > 0.01
    others = [p for p in range(5) if p != BASS]
    assert np.array_equal(peaks[False][others], peaks[True][others])


def test_cut_ends_every_sounding_note_then_all_notes_off():
    s, sink = _session(**ROUTED)
    s.advance(0)
    s.advance(48000)
    sent = sink.messages()
    assert sounding_after([(t, m) for t, m in sent if t < 30000])    # something is held
    s.state.ctl[L.C_SAMPLE_TIME] = 30000          # where the audio thread is (no audio here)
    s.release_all()
    cuts = {p: g for p, g, _ in sink.cuts}
    assert set(cuts) == {PART_INDEX[p] for p in ROUTED}
    asap = [m for r in sink.rows if r[0] == -1.0 for m in [unpack(int(r[4]))]]
    # note-offs for every note that may sound, then CC 123 on each channel used
    for ch in (1, 2, 9):
        at = asap.index(bytes([0xB0 | ch, 123, 0]))
        assert all(i < at for i, m in enumerate(asap) if m[0] == 0x80 | ch)
    held = sounding_after([(t, m) for t, m in sent if t < 30000])
    offs = {(m[0] & 0x0F, m[1]) for m in asap if m[0] & 0xF0 == 0x80}
    assert {(ch, n) for ch, notes in held.items() for n in notes} <= offs
    # after the cut only the new generation plays: nothing queued sounds
    assert sounding_after(sink.messages()) == {}


def test_reroute_moves_a_part_and_ends_its_notes_on_the_old_channel():
    s, sink = _session(bass={"channel": 2})
    s.advance(0)
    s.midi_out.reroute("bass", Route(5, internal=True))
    s.advance(96000)
    msgs = sink.messages()
    old = [m for t, m in msgs if m[0] & 0x0F == 1]
    new = [m for t, m in msgs if m[0] & 0x0F == 4]
    assert bytes([0xB1, 123, 0]) in old and new and all(m[0] != 0x91 for m in old)
    s.midi_out.reroute("bass", None)
    s.advance(2 * 96000)
    assert sounding_after(sink.messages()) == {}
    assert not [m for t, m in sink.messages()[len(msgs):] if m[0] & 0xF0 == 0x90]


def test_clock_ticks_at_exact_samples_across_a_tempo_change():
    s, sink = _session(clock=True)
    for now in range(0, 3 * 48000, 1000):
        s.advance(now)
    s.set_tempo(150.0)
    for now in range(3 * 48000, 6 * 48000, 1000):
        s.advance(now)
    s.midi_out.stop_clock()
    msgs = sink.messages()
    assert msgs[0] == (0.0, bytes([START])) and msgs[1] == (0.0, bytes([TICK]))
    ticks = [t for t, m in msgs if m == bytes([TICK])]
    assert ticks == [s.clock.sample_at(Fraction(k, PPQN)) for k in range(len(ticks))]
    assert msgs[-1][1] == bytes([STOP]) and msgs[-1][0] == s.clock.sample_at(
        Fraction(len(ticks), PPQN))
    spacing = np.diff(ticks)
    exact = [60 * 48000 / (float(s.clock._segment_for_beat(Fraction(k, PPQN)).bpm) * PPQN)
             for k in range(len(ticks) - 1)]
    assert np.abs(spacing - np.array(exact)).max() <= 1.0
    assert {round(e) for e in exact} == {round(60 * 48000 / (112 * 24)), 800}   # both tempi


def test_clock_stop_and_continue_with_song_position():
    s, sink = _session(clock=True)
    for now in range(0, 48000, 4800):
        s.advance(now)
    s.midi_out.stop_clock()
    n = len(sink.messages())
    for now in range(48000, 96000, 4800):
        s.advance(now)
    assert len(sink.messages()) == n + 0                  # stopped: nothing
    s.midi_out.start_clock()
    for now in range(96000, 2 * 96000, 4800):
        s.advance(now)
    rest = sink.messages()[n:]
    (t0, spp), (t1, cont), (t2, tick) = rest[:3]
    assert spp[0] == 0xF2 and cont == bytes([0xFB]) and tick == bytes([TICK])
    sixteenths = spp[1] | spp[2] << 7
    assert t0 == t1 == t2 == s.clock.sample_at(Fraction(sixteenths, 4))
    assert t0 > 96000     # resumes after what was already scheduled, on a sixteenth


def test_transport_playing_stops_and_resumes_notes_and_clock():
    """/transport/playing off: the routed parts' notes end (note-offs, All Notes Off) where the
    band stops and the clock stops; on: the clock resumes at the band's bar with Song Position
    and Continue, and the notes come back."""
    s, sink = _session(clock=True, bass={"channel": 2}, chords={"channel": 3})
    for now in range(0, 2 * 48000, 2400):
        s.advance(now)
    s.set("/transport/playing", 0)
    for now in range(2 * 48000, 4 * 48000, 2400):
        s.advance(now)
    s.set("/transport/playing", 1)
    for now in range(4 * 48000, 8 * 48000, 2400):
        s.advance(now)
    msgs = sink.messages()
    stop = next(t for t, m in msgs if m == bytes([STOP]))
    spp, cont = [(t, m) for t, m in msgs if m[0] in (0xF2, 0xFB)]
    assert spp[0] == cont[0] > stop
    bar = Fraction(spp[1][1] | spp[1][2] << 7, 4)
    assert bar % 4 == 0 and s.clock.sample_at(bar) == spp[0]
    ends = [t for t, m in msgs if m[0] & 0xF0 == 0xB0 and m[1] == 123]
    assert len(ends) == 2 and ends[0] == ends[1] <= spp[0]
    assert sounding_after([(t, m) for t, m in msgs if t <= ends[0]]) == {}
    silent = [m for t, m in msgs if ends[0] < t < spp[0] and m[0] & 0xF0 == 0x90]
    assert silent == [] and any(m[0] & 0xF0 == 0x90 for t, m in msgs if t >= spp[0])
    ticks = [t for t, m in msgs if m == bytes([TICK])]
    assert not [t for t in ticks if stop <= t < spp[0]] and ticks[-1] > spp[0]
