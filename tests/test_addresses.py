"""The session's one address space beyond the graph: the band's steering (style, energy, key,
swing, each agent's on/off, density and octave), the mixer's mute and solo, the transport.

Agent tests read the notes the agents produce (pure functions of the time span); session tests
run the real scheduler and, where the signal matters, the offline render kernel.
"""
from __future__ import annotations

import statistics
from fractions import Fraction as F

import numpy as np
import pytest

from tests.enginekit import SentRows, render_session
from engine.agents import Band, DemoSong, LiveContext, StaticContext
from engine.agents.drums import DRUM_STYLES
from engine.agents.steer import STEER_PARAMS, Steering
from engine.control.session import Session
from engine.harmony import Chord
from engine.parts import PART_INDEX
from engine.rt import layout as L
from engine.rt.events import K_ALL_NOTES_OFF

SR = 48000
BAR = 4


def band_notes(steer: Steering | None, bars=(0, 16), seed=1, intensity=0.6, style="rock",
               part=None):
    ctx = StaticContext(seed=seed, intensity=intensity, style=style, steer=steer)
    notes = Band(seed, style).query(F(bars[0] * BAR), F(bars[1] * BAR), ctx)
    return [n for n in notes if part is None or n.part == part]


# ---- agents --------------------------------------------------------------------------------------

def test_untouched_steering_plays_exactly_what_the_band_played_without_it():
    song = DemoSong("funk")
    plain = song.band(3).query(F(0), song.length_beats, song.context(3))
    ctx = song.context(3)
    ctx.steer = Steering({"/band/style": "funk"})
    assert song.band(3).query(F(0), song.length_beats, ctx) == plain
    assert band_notes(Steering()) == band_notes(None)


@pytest.mark.parametrize("part", ["drums", "bass", "chords", "lead"])
def test_density_up_gives_more_notes_per_bar(part):
    counts = []
    for d in (0.0, 0.5, 1.0):
        st = Steering()
        st.set(f"/{part}/agent/density", d, F(0))
        counts.append(len(band_notes(st, part=part)))
    assert counts[0] < counts[1] < counts[2] or (part == "lead" and counts[0] < counts[1]
                                                 <= counts[2]), counts
    assert counts[1] == len(band_notes(None, part=part))       # 0.5 is the style as it is


@pytest.mark.parametrize("part", ["bass", "chords", "lead"])
@pytest.mark.parametrize("octave", [-1, 1])
def test_octave_moves_every_note_by_twelve(part, octave):
    plain = band_notes(None, part=part)
    st = Steering()
    st.set(f"/{part}/agent/octave", octave, F(0))
    moved = band_notes(st, part=part)
    assert [n.note for n in moved] == [n.note + 12 * octave for n in plain]
    assert statistics.mean(n.note for n in moved) - statistics.mean(n.note for n in plain) \
        == pytest.approx(12 * octave)


def test_style_change_plays_the_new_styles_pattern_from_its_bar():
    st = Steering({"/band/style": "rock"})
    st.set("/band/style", "house", F(4 * BAR))
    steered = band_notes(st, bars=(0, 8), part="drums")
    rock = band_notes(None, bars=(0, 8), part="drums")
    house = band_notes(None, bars=(0, 8), style="house", part="drums")
    cut = F(4 * BAR)
    assert [n for n in steered if n.begin < cut] == [n for n in rock if n.begin < cut]
    assert [n for n in steered if n.begin >= cut] == [n for n in house if n.begin >= cut]
    # house: four on the floor
    kicks = {n.begin - cut for n in steered if n.begin >= cut and n.note == 36}
    assert {F(b) for b in range(4)} <= kicks
    assert "house" in DRUM_STYLES


def test_energy_pushes_the_bands_intensity_both_ways():
    def stats(e):
        st = Steering()
        st.set("/band/energy", e, F(0))
        notes = band_notes(st)
        downbeats = [n.velocity for n in notes if n.part == "bass" and n.begin % BAR == 0]
        return len(notes), statistics.mean(downbeats)    # louder: the same notes harder
    low, mid, high = stats(0.0), stats(0.5), stats(1.0)
    assert low[0] < mid[0] < high[0] and low[1] < mid[1] < high[1]
    assert mid[0] == len(band_notes(None))


def test_key_transposes_the_progression_but_not_the_players_chords():
    st = Steering()
    st.set("/band/key", "C", F(0))                       # A minor -> C minor: up 3 semitones
    plain = band_notes(None, bars=(0, 8), part="bass")
    moved = band_notes(st, bars=(0, 8), part="bass")
    roots = [n.note % 12 for n in plain if n.begin % BAR == 0]
    assert [n.note % 12 for n in moved if n.begin % BAR == 0] == [(r + 3) % 12 for r in roots]
    # the player's chord wins over the key
    ctx = LiveContext(seed=1, steer=st)
    ctx.harmony.set_chord(Chord.parse("E"), F(0))
    assert ctx.chord_at(F(2)) == Chord.parse("E")
    ctx2 = LiveContext(seed=1, steer=st)
    assert ctx2.chord_at(F(0)) == Chord.parse("Cm")      # Am transposed


def test_an_agent_switched_off_stops_from_its_bar_only():
    st = Steering()
    st.set("/lead/agent/on", "off", F(2 * BAR))
    plain = band_notes(None, bars=(0, 6), part="lead")
    steered = band_notes(st, bars=(0, 6), part="lead")
    assert steered == [n for n in plain if n.begin < 2 * BAR] and len(steered) < len(plain)


def test_steering_refuses_bad_values_and_keeps_its_map():
    st = Steering()
    for address, value, reason in [("/band/energy", 1.5, "0..1"),
                                   ("/band/style", "polka", "one of rock"),
                                   ("/band/key", "H", "one of C"),
                                   ("/drums/agent/on", 0.5, "whole number"),
                                   ("/bass/agent/octave", 3, "-2..2"),
                                   ("/band/energy", float("nan"), "0..1"),
                                   ("/band/energy", True, "0..1")]:
        with pytest.raises(ValueError, match=reason):
            st.set(address, value, F(0))
    with pytest.raises(KeyError, match="no such parameter"):
        st.set("/drums/agent/octave", 1, F(0))
    assert st.version == 0 and not any(st.changed(a) for a in STEER_PARAMS)


# ---- the session ---------------------------------------------------------------------------------

Rows = SentRows


render = render_session


def test_addresses_list_every_family_with_its_param(cfg):
    s = Session(cfg, SR)
    addrs = set(s.addresses())
    for a in ("/band/style", "/band/energy", "/band/swing", "/band/key", "/transport/playing",
              "/transport/tempo_bpm", "/drums/agent/density", "/bass/agent/octave",
              "/chords/agent/on", "/lead/agent/density", "/bass/mix/solo", "/bass/mix/mute",
              "/bass/mix/gain_db", "/bass/synth/cutoff_hz"):
        assert a in addrs, a
        s.param(a)
        s.value(a)
    assert s.param("/band/style").choices[int(s.value("/band/style"))] == cfg["band"]["style"]
    # config [band] chords/lead = false: those agents start switched off
    assert s.value("/chords/agent/on") == float(cfg["band"]["chords"])
    assert s.value("/drums/agent/on") == 1.0


def test_a_change_applies_from_the_next_unscheduled_bar_only(cfg):
    a, b = Session(cfg, SR), Session(cfg, SR)
    ra, rb = Rows(a), Rows(b)
    render(a, 1.3)
    render(b, 1.3)
    cursor = b.scheduler.cursor
    b.set("/drums/agent/density", 1.0)
    render(a, 6.0)
    render(b, 6.0)
    cut = b.clock.sample_at(b.clock.next_bar(cursor))
    da, db = ra.onsets("drums"), rb.onsets("drums")
    margin = round(0.013 * SR)                               # humanising nudges
    assert np.array_equal(da[da[:, 0] < cut - margin], db[db[:, 0] < cut - margin])
    assert (db[:, 0] >= cut - margin).sum() > (da[:, 0] >= cut - margin).sum()
    # the rest of the bar the cursor was in (queried after the change) is the old density's
    partly = (da[:, 0] >= b.clock.sample_at(cursor) + margin) & (da[:, 0] < cut - margin)
    assert partly.sum() > 0


def test_bad_values_are_refused_and_change_nothing(cfg):
    s = Session(cfg, SR)
    idx = s.state.arrays[L.S_QSCHED_IDX]
    before = {a: s.value(a) for a in s.addresses()}
    for address, value in [("/band/energy", 2.0), ("/band/style", "polka"),
                            ("/band/swing", 0.9), ("/bass/mix/solo", 3),
                            ("/transport/playing", "paused"), ("/bass/agent/octave", "up"),
                            ("/keys/agent/on", 1)]:
        with pytest.raises((ValueError, KeyError)) as exc:
            s.set(address, value)
        assert address in str(exc.value)
    assert {a: s.value(a) for a in s.addresses()} == before
    assert int(idx[0]) == 0 and s.steer.version == 0


def test_solo_mutes_the_others_and_mute_keeps_its_own_value(cfg):
    s = Session(cfg, SR)
    eff = s.graph.program.value_of
    s.set("/bass/mix/solo", "on")
    assert eff("/bass/mix/mute") == 0.0
    assert all(eff(f"/{p}/mix/mute") == 1.0 for p in ("keys", "drums", "chords", "lead"))
    assert s.value("/drums/mix/mute") == 0.0 and s.value("/bass/mix/solo") == 1.0
    s.set("/drums/mix/solo", 1)
    assert eff("/drums/mix/mute") == 0.0
    s.set("/bass/mix/mute", "on")                 # a soloed part muted is muted
    assert eff("/bass/mix/mute") == 1.0
    s.set("/bass/mix/solo", 0)
    s.set("/drums/mix/solo", 0)
    assert eff("/keys/mix/mute") == 0.0 and eff("/bass/mix/mute") == 1.0
    s.set("/bass/mix/mute", "off")
    assert all(eff(f"/{p}/mix/mute") == 0.0 for p in ("keys", "bass", "drums", "chords", "lead"))


def test_mute_silences_the_parts_bus_without_a_click(cfg):
    cfg["band"].update(drums=False, bass=True)
    s = Session(cfg, SR)
    before = render(s, 2.0, block=64)
    assert np.abs(before[SR:]).max() > 0.01                  # the bass plays
    s.set("/bass/mix/mute", "on")
    after = render(s, 1.0, block=64)
    peak = np.abs(before[SR:]).max()
    assert np.abs(after[round(0.1 * SR):]).max() < 2e-3 * peak     # -54 dB within 0.1 s
    assert np.abs(after[round(0.5 * SR):]).max() < 1e-9            # then silent (-180 dB)
    x = np.concatenate([before[:, 0], after[:, 0]]).astype(float)
    steps = np.abs(np.diff(x))
    seam = len(before)
    assert steps[seam - 2:seam + 2400].max() <= steps[seam - SR:seam - 2].max() * 1.05


def test_solo_renders_only_the_soloed_part(cfg):
    cfg["band"].update(drums=True, bass=True)
    s = Session(cfg, SR)
    s.set("/drums/mix/solo", "on")
    t = Session(cfg, SR)
    t.set("/bass/agent/on", "off")          # the same band with no bass at all
    out_s, out_t = render(s, 4.0), render(t, 4.0)
    assert np.abs(out_s).max() > 0.01
    # the bass strip is muted before it ever sounds: the soloed drums are the drums alone
    assert np.array_equal(out_s, out_t)


def test_stop_schedules_nothing_more_releases_the_band_and_start_waits_for_a_bar(cfg):
    s = Session(cfg, SR)
    rows = Rows(s)
    render(s, 2.0)
    stop_at = s.scheduler.cursor
    s.set("/transport/playing", "off")
    offs = s.state.arrays[L.S_QSCHED][:int(s.state.arrays[L.S_QSCHED_IDX][0])]
    released = {int(r[2]) for r in offs if r[1] == K_ALL_NOTES_OFF}
    assert released == {PART_INDEX[p] for p in ("drums", "bass", "chords", "lead")}
    n = len(rows.onsets())
    render(s, 2.0)
    assert len(rows.onsets()) == n                           # nothing further
    s.set("/transport/playing", "on")
    resume = s.clock.next_bar(s.scheduler.cursor)
    render(s, 3.0)
    later = rows.onsets()[n:]
    assert len(later) > 0 and later[:, 0].min() >= s.clock.sample_at(resume) - 0.013 * SR
    assert s.value("/transport/playing") == 1.0 and stop_at < resume


def test_swing_moves_the_offbeats_from_the_next_beat(cfg):
    s = Session(cfg, SR)
    rows = Rows(s)
    render(s, 1.0)
    first = -(-s.scheduler.cursor // 1)                  # the next beat not yet scheduled
    s.set("/band/swing", 0.4)
    assert s.value("/band/swing") == 0.4
    render(s, 5.0)
    hits = rows.onsets("drums")[:, 0]
    tol = 0.015 * SR                                     # humanising

    def near(beat):
        return int((np.abs(hits - s.clock.sample_at(beat)) < tol).sum())
    before = range(0, int(first) - 1)
    after = range(int(first), int(first) + 6)
    swing_delay = F(2, 5) * F(1, 2)
    assert sum(near(b + F(1, 2)) for b in before) > 0
    assert sum(near(b + F(1, 2) + swing_delay) for b in before) == 0
    assert sum(near(b + F(1, 2) + swing_delay) for b in after) > 0
    assert sum(near(b + F(1, 2)) for b in after) == 0


def test_osc_lists_describes_and_sets_the_new_addresses(cfg):
    import asyncio

    from tests.test_osc import WAIT_S, serve

    async def main():
        s = Session(cfg, SR)
        server, c = await serve(s)
        stopping = asyncio.Event()
        task = asyncio.create_task(server.run(stopping))
        c.send("/bandmate/addresses", "/band/")
        r = await c.recv("the band's addresses")
        assert set(r.params[2:]) == {"/band/style", "/band/energy", "/band/swing", "/band/key",
                                     "/band/memory", "/band/feel", "/band/groove"}
        c.send("/bandmate/addresses", "/drums/")
        r = await c.recv("the drums' addresses")
        got = list(r.params[2:])
        for i in range(1, r.params[1]):
            got += (await c.recv(f"chunk {i} of the drums' addresses")).params[2:]
        assert {"/drums/agent/on", "/drums/agent/density", "/drums/mix/solo",
                "/drums/mix/mute"} <= set(got)
        c.send("/bandmate/info", "/band/style")
        r = await c.recv("the style's info")
        assert r.params[0] == "/band/style" and r.params[4] == "choice"
        assert r.params[5:] == ["rock", "house", "funk", "hiphop", "bossa", "breakbeat", "dnb",
                                "jazz"]
        c.send("/bandmate/info", "/band/energy")
        r = await c.recv("the energy's info")
        assert r.params == ["/band/energy", 0.0, 1.0, 0.5, "lin"]
        c.send("/band/style", "funk")
        c.send("/bass/agent/octave/norm", 1.0)
        c.send("/bass/mix/solo", "on")
        c.send("/band/energy", 7.0)                     # refused, with its reason
        r = await c.recv("the error")
        assert r.address == "/bandmate/error" and "must be 0..1" in r.params[1]
        assert s.value("/band/style") == 2.0 and s.value("/bass/agent/octave") == 2.0
        assert s.value("/bass/mix/solo") == 1.0 and s.value("/band/energy") == 0.5
        c.send("/bandmate/get", "/band/style", "/transport/playing")
        r1, r2 = await c.recv("style"), await c.recv("playing")
        assert (r1.params, r2.params) == ([2.0], [1.0])
        stopping.set()
        await asyncio.wait_for(task, WAIT_S)
        c.close()
    asyncio.run(asyncio.wait_for(main(), 120))
