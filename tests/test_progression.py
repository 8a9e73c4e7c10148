"""Progression memory (engine.listen.progression): the band learns the loop the player repeats,
lands on its changes from then on, notices a departure, and with /band/memory off plays as it
did without it. The session tests feed the player's chord hand into a Session on the live path
(tests/progressionkit.py) and measure the bass notes the band actually scheduled."""
from fractions import Fraction as F

import pytest

from engine.config import load_config
from engine.harmony import Chord
from engine.listen.progression import ProgressionMemory, chord_class
from tests.progressionkit import (
    hits_at_changes, human, jam, loop_changes, rate, song, voicing,
)

FOUR = ["Am", "F", "C", "G"]
TWO_A_BAR = ["C", "Dm", "Em", "F", "G", "Am", "G", "F"]          # 2 beats each: a 4-bar loop
EIGHT = ["Am", "F", "C", "G", "Am", "F", "Dm", "E7"]
BLUES = ["A7", "D7", "A7", "A7", "D7", "D7", "A7", "A7", "E7", "D7", "A7", "E7"]


@pytest.fixture
def cfg(monkeypatch):
    monkeypatch.chdir(__import__("pathlib").Path(__file__).resolve().parent.parent)
    return load_config("config.toml", environ={})


# ---- the memory on its own: heard chords at beats, time ticking by ------------------------------
def feed(memory, changes, until, lookahead=F(1, 5), step=F(1, 8), noticed=None):
    """Tick `memory` every `step` beats up to `until`, hearing each (beat, chord name) of
    `changes` when time reaches it; the scheduler's horizon is `lookahead` ahead of time. Returns
    the answers loop_at gave for every beat behind the horizon at each tick, {beat: chord}
    (checked never to change while they are within 64 beats of the horizon, the history the
    agents look back on). `noticed`: a list that gets the time of each departure noticed."""
    queue = sorted((F(b), n) for b, n in changes)
    answered = {}
    t = F(0)
    while t < until:
        while queue and queue[0][0] <= t:
            b, name = queue.pop(0)
            memory.hear(None if name is None else Chord.parse(name), b)
        horizon = t + lookahead
        before = memory.departures
        memory.tick(t, horizon)
        if noticed is not None and memory.departures > before:
            noticed.append(t)
        for beat in range(max(0, int(horizon) - 64), int(horizon)):
            loop = memory.loop_at(F(beat))
            got = loop.chord_at(F(beat)) if loop is not None else None
            assert answered.setdefault(beat, got) == got, f"beat {beat} changed once queried"
        t += step
    return answered


def test_a_four_bar_loop_is_locked_before_its_third_round_and_predicted():
    m = ProgressionMemory(4)
    answered = feed(m, loop_changes(FOUR, 4, 4, start_beat=0), F(64))
    assert m.loop is not None and m.loop.bars == 4 and m.departures == 0
    assert [c.name for _, c in m.loop.changes()] == FOUR
    assert m.loop.confidence >= 0.95 and m.locks == 1 and 28 <= m.first_lock <= 32
    # in force before the third round's first downbeat (beat 32), and right from then on
    assert answered[32].name == "Am" and answered[36].name == "F" and answered[44].name == "G"
    assert all(answered[b] is None for b in range(0, 24))      # nothing predicted in round 1


@pytest.mark.parametrize("chords,bars", [(FOUR, 4), (EIGHT, 8), (BLUES, 12), (["C", "G"], 2)])
def test_the_shortest_loop_that_repeats_is_chosen(chords, bars):
    m = ProgressionMemory(4)
    feed(m, loop_changes(chords, 4, 3, start_beat=0), F(len(chords) * 4 * 3))
    assert m.loop is not None and m.loop.bars == bars
    assert [c.name for _, c in m.loop.changes()] == [c for i, c in enumerate(chords)
                                                     if i == 0 or chords[i - 1] != c]


def test_a_turnaround_loop_is_learned_at_its_full_length():
    # bars 5-8 differ from bars 1-4 only in the last chord: no 4-bar loop is taken (it repeats
    # only 7 bars in 8), the 8-bar one is, before its third round
    chords = ["Am", "F", "C", "G", "Am", "F", "C", "E"]
    m = ProgressionMemory(4)
    answered = feed(m, loop_changes(chords, 4, 4, start_beat=0), F(4 * 32))
    assert m.loop is not None and m.loop.bars == 8 and m.departures == 0 and m.locks == 1
    assert answered[64].name == "Am" and answered[92].name == "E"


def test_a_chord_held_throughout_is_followed_not_locked():
    m = ProgressionMemory(4)
    feed(m, [(0, "Dm")], F(64))
    assert m.loop is None and m.status() == "learning"


def test_extensions_inversions_and_a_missed_beat_do_not_break_the_loop():
    changes = loop_changes(FOUR, 4, 5, start_beat=0)
    noisy = []
    for i, (b, name) in enumerate(changes):
        if i == 6:
            b += 1                                  # round 2: the C comes a beat late
        name = {1: "Fmaj7", 8: "Am7", 11: "G/B", 14: "C/E", 15: "G7"}.get(i, name)
        noisy.append((b, name))
    noisy.insert(10, (F(41, 2), None))              # keys up for a moment
    m = ProgressionMemory(4)
    answered = feed(m, noisy, F(80))
    assert m.loop is not None and m.loop.bars == 4 and m.departures == 0
    assert [chord_class(answered[b]) for b in (64, 68, 72, 76)] == \
        [chord_class(Chord.parse(n)) for n in FOUR]


def test_a_departure_lets_go_and_the_new_loop_is_learned():
    first = loop_changes(FOUR, 4, 3, start_beat=0)
    second = loop_changes(["Dm", "Bb", "F", "C"], 4, 3, start_beat=48)
    m = ProgressionMemory(4)
    answered = feed(m, first + second, F(96))
    assert m.departures == 1 and m.locks == 2
    assert [c.name for _, c in m.loop.changes()] == ["Dm", "Bb", "F", "C"]
    gone = min(b for b in range(48, 96) if answered[b] is None)
    assert gone <= 50                               # let go within half a bar of the change
    assert answered[88].name == "F" and answered[92].name == "C"


VERSE = FOUR
CHORUS = ["Dm", "G", "C", "E7"]
BRIDGE = ["Bb", "C", "Am", "Dm"]
FORM = [(VERSE, 2), (CHORUS, 2), (VERSE, 1), (CHORUS, 1), (VERSE, 1)]


def expected(changes, beat):
    """The chord the player plays at `beat`."""
    return [n for b, n in changes if F(b) <= beat][-1]


@pytest.mark.parametrize("step", [F(1, 8), F(1, 32)])
def test_a_return_to_a_known_loop_is_recognised_within_two_bars_and_lands_on_its_changes(step):
    changes, starts, end = song(FORM, start_beat=0)
    m = ProgressionMemory(4)
    noticed = []
    answered = feed(m, changes, end, step=step, noticed=noticed)
    # two loops learned (each heard twice), in the library as A and B; three returns recognised
    assert m.locks == 2 and [x.name for x in sorted(m.library, key=lambda x: x.name)] == \
        ["A", "B"]
    returns = [(b, name) for b, kind, name in m.events if kind == "return"]
    assert [name for _, name in returns] == ["A", "B", "A"]
    for (at, _), start in zip(returns, starts[2:]):
        assert start < at <= start + 8                         # within two bars
        # from the second bar after the return to the section's end: the band has each change
        section = [b for b, _ in changes if start + 8 <= b < start + 16]
        assert section and all(chord_class(answered[int(b)]) ==
                               chord_class(Chord.parse(expected(changes, b))) for b in section)
    # each section change is noticed within 1.5 beats (the first: before any lock)
    for start in starts[1:]:
        assert any(start < t <= start + F(3, 2) for t in noticed), (start, noticed)


def test_a_bridge_played_twice_becomes_a_loop_of_its_own():
    changes, starts, end = song([(VERSE, 3), (BRIDGE, 2), (VERSE, 1), (BRIDGE, 1)],
                                start_beat=0)
    m = ProgressionMemory(4)
    answered = feed(m, changes, end)
    assert m.locks == 2 and len(m.library) == 2
    bridge = [x for x in m.library if x.name == "B"][0]
    assert [c.name for _, c in bridge.changes()] == BRIDGE
    assert [name for _, kind, name in m.events if kind == "return"] == ["A", "B"]
    last = starts[-1]
    assert all(answered[b].name == expected(changes, b) for b in range(int(last) + 8, int(end)))


def test_a_chorus_sharing_a_change_with_the_verse_is_learned_and_told_apart():
    # the chorus ends Am -> F, the verse's first change: inside the new chorus the band takes
    # the verse back for a moment, lets it go, and still learns the chorus from its first bar;
    # back in the verse, "Am F" fits both loops, so the band waits for the third chord
    chorus = ["F", "G", "Em", "Am"]
    changes, starts, end = song([(VERSE, 2), (chorus, 2), (VERSE, 1), (chorus, 1)],
                                start_beat=0)
    m = ProgressionMemory(4)
    answered = feed(m, changes, end)
    assert m.locks == 2 and [x.name for x in sorted(m.library, key=lambda x: x.name)] == \
        ["A", "B"]
    assert [c.name for _, c in [x for x in m.library if x.name == "B"][0].changes()] == chorus
    back = [(b, name) for b, kind, name in m.events if kind == "return" and b >= starts[2]]
    assert back[:2] == [(starts[2] + 9, "A"), (starts[3] + 5, "B")]
    for start in starts[2:]:
        assert all(answered[b].name == expected(changes, b)
                   for b in range(int(start) + 12, int(start) + 16))


@pytest.mark.parametrize("verse,chorus", [(EIGHT, ["C", "G", "Am", "F"]),
                                          (BLUES, ["F#m", "D", "A", "E"])])
def test_a_new_section_made_of_the_loops_chords_is_still_learned(verse, chorus):
    # the chorus is a fragment of the verse (C G Am F), or shares most of its chords (the
    # blues' D A E): the band may take the verse back on a fragment for a while, but the
    # chorus heard twice becomes a loop of its own, and the verse is recognised after it
    changes, starts, end = song([(verse, 2), (chorus, 2), (verse, 1)], start_beat=0)
    m = ProgressionMemory(4)
    answered = feed(m, changes, end)
    assert m.locks == 2
    assert [c.name for _, c in [x for x in m.library if x.name == "B"][0].changes()] == chorus
    assert m.events[-1][1:] == ("return", "A")
    wrong = [b for b in range(int(starts[2]), int(end))
             if answered[b] is not None and answered[b].name != expected(changes, b)]
    assert len(wrong) <= 4, wrong


def test_a_substituted_chord_keeps_the_loop():
    # round 3 plays Dm for a bar instead of F: the band lets go (within 1.5 beats), follows
    # the Dm, and is back on the loop at its next change without learning anything again
    changes = [(b, "Dm" if b == 36 else n) for b, n in loop_changes(VERSE, 4, 4, start_beat=0)]
    m = ProgressionMemory(4)
    noticed = []
    answered = feed(m, changes, F(64), noticed=noticed)
    assert m.locks == 1 and m.departures == 1 and m.substitutions == 1 and m.returns == 0
    assert len(noticed) == 1 and 36 < noticed[0] <= 36 + F(3, 2)
    assert answered[38] is None and answered[39] is None        # following the Dm
    assert [answered[b].name for b in (40, 44, 48, 52, 56, 60)] == \
        ["C", "G", "Am", "F", "C", "G"]
    assert m.state()["locked"] and m.state()["substitutions"] == 1


@pytest.mark.parametrize("seed", range(5))
def test_no_lock_on_a_progression_that_does_not_repeat(seed):
    import random
    rng = random.Random(seed)
    pool = ["C", "Dm", "Em", "F", "G", "Am", "Bb", "E7"]
    changes, b, last = [], F(0), None
    while b < 192:
        name = rng.choice([c for c in pool if c != last])
        changes.append((b, name))
        b += rng.choice((2, 4))
        last = name
    m = ProgressionMemory(4)
    answered = feed(m, changes, F(192))
    assert m.locks == 0 and m.returns == 0 and m.loop is None
    assert all(v is None for v in answered.values())


def test_the_library_keeps_the_loops_played_last():
    loops = [[a, b] for a, b in (("C", "G"), ("Dm", "Am"), ("F", "Bb"))]
    changes, _, end = song([(x, 3) for x in loops], start_beat=0)
    m = ProgressionMemory(4, library_size=2)
    feed(m, changes, end)
    assert m.locks == 3 and [x.name for x in m.library] == ["B", "C"]
    with pytest.raises(ValueError):
        ProgressionMemory(4, library_size=0)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        ProgressionMemory(4, min_agreement=0.2)
    with pytest.raises(ValueError):
        ProgressionMemory(4, miss_slots=0)


# ---- the session, on the live path ---------------------------------------------------------
@pytest.mark.parametrize("chords,beats_each,loop_bars,rounds", [
    (FOUR, 4, 4, 5), (TWO_A_BAR, 2, 4, 5), (EIGHT, 4, 8, 4), (BLUES, 4, 12, 3)])
def test_after_two_rounds_the_bass_lands_on_the_changes(cfg, chords, beats_each, loop_bars,
                                                        rounds):
    changes = loop_changes(chords, beats_each, rounds)
    s, bass = jam(cfg, changes)
    learned = 4 + 2 * loop_bars * 4                  # the player starts at beat 4
    before = hits_at_changes(s, bass, changes, last_beat=learned)
    after = hits_at_changes(s, bass, changes, first_beat=learned)
    assert len(after) >= 6 and len(before) >= 6
    assert rate(after) >= 0.9, (after, s.ctx.memory.status())
    assert rate(before) <= rate(after) - 0.3           # following alone is late
    memory = s.ctx.memory
    assert memory.loop.bars == loop_bars and memory.departures == 0


def test_a_human_player_early_late_and_rolling_chords_is_learned_too(cfg):
    # each chord up to 60 ms early or late (seeded), its notes rolled 12 ms apart, extended
    # and inverted in some rounds
    import random
    rng = random.Random(7)
    offsets = [rng.uniform(-0.06, 0.06) for _ in range(64)]
    names = {5: "Fmaj7", 8: "Am7", 11: "G/B", 14: "C/E", 19: "G7"}
    changes = [(b, names.get(i, n)) for i, (b, n) in enumerate(loop_changes(FOUR, 4, 5))]
    s, bass = jam(cfg, changes, early_s=offsets.__getitem__, spread_s=0.012)
    memory = s.ctx.memory
    assert memory.loop.bars == 4 and memory.departures == 0
    assert rate(hits_at_changes(s, bass, changes, first_beat=36)) >= 0.9


def test_memory_off_plays_as_the_band_without_memory(cfg, monkeypatch):
    changes = loop_changes(FOUR, 4, 4)
    s_off, bass_off = jam(cfg, changes, memory=False)
    after = hits_at_changes(s_off, bass_off, changes, first_beat=36)
    assert rate(after) <= 0.5                          # late at the changes, as ever
    assert s_off.ctx.memory.loop is not None           # it listened all the same

    cfg["band"]["memory"] = True
    from tests import progressionkit

    class Forgetful(progressionkit.Session):           # a band with no memory at all
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.ctx.memory = None
    monkeypatch.setattr(progressionkit, "Session", Forgetful)
    _, bass_none = jam(cfg, changes, memory=True)
    monkeypatch.undo()
    assert bass_off == bass_none
    # and on, same notes from the same seed (twice), landing on the changes
    s_on, bass_on = jam(cfg, changes)
    assert jam(cfg, changes)[1] == bass_on and bass_on != bass_off
    assert rate(hits_at_changes(s_on, bass_on, changes, first_beat=36)) >= 0.9


def test_the_band_follows_a_new_progression_within_a_bar_and_relearns_it(cfg):
    new = ["Dm", "Bb", "F", "C"]
    switch = F(4 + 3 * 16)
    changes = loop_changes(FOUR, 4, 3) + loop_changes(new, 4, 4, start_beat=switch)
    s, bass = jam(cfg, changes)
    memory = s.ctx.memory
    assert memory.departures == 1 and memory.locks == 2
    assert [c.name for _, c in memory.loop.changes()] == new
    at = s.clock.sample_at
    dm = set(Chord.parse("Dm").tones)
    # the band plays Dm within the bar (its last eighth approaches the loop's next chord: a
    # one-off substitution would be over by then)
    in_bar = [n % 12 in dm for t, n in bass if at(switch + 2) <= t < at(switch + 3.5)]
    assert in_bar and all(in_bar)
    relearned = switch + 2 * 16
    assert rate(hits_at_changes(s, bass, changes, first_beat=relearned)) >= 0.9


def returns_hit(session, bass, changes, starts):
    """The bass at each change from the second bar after each return (sections 3 on) to the
    section's end."""
    out = []
    for i, start in enumerate(starts[2:], 2):
        end = starts[i + 1] if i + 1 < len(starts) else None
        out += hits_at_changes(session, bass, changes, first_beat=start + 8, last_beat=end)
    return out


def test_a_human_player_through_a_song_form_the_band_lands_on_the_changes_of_each_return(cfg):
    # verse x2, chorus x2, verse, chorus, verse; each chord up to 60 ms early or late, rolled
    changes, starts, _ = song(FORM)
    play = dict(early_s=human(11), spread_s=0.012)
    s, bass = jam(cfg, changes, **play)
    memory = s.ctx.memory
    assert memory.locks == 2 and memory.returns == 3 and memory.departures == 4
    on = returns_hit(s, bass, changes, starts)
    assert len(on) == 6 and rate(on) >= 0.9, on
    s_off, bass_off = jam(cfg, changes, memory=False, **play)
    off = returns_hit(s_off, bass_off, changes, starts)
    assert rate(off) <= rate(on) - 0.3                   # following alone is late
    assert jam(cfg, changes, **play)[1] == bass          # seeded: the same notes again


def test_a_substituted_chord_in_the_session_keeps_the_band_on_the_loop(cfg):
    changes = [(b, "Dm" if i == 9 else n) for i, (b, n) in enumerate(loop_changes(VERSE, 4, 4))]
    s, bass = jam(cfg, changes, early_s=human(3), spread_s=0.012)
    memory = s.ctx.memory
    assert memory.locks == 1 and memory.substitutions == 1 and memory.returns == 0
    sub = changes[9][0]
    dm = set(Chord.parse("Dm").tones)
    at = s.clock.sample_at
    assert all(n % 12 in dm for t, n in bass if at(sub + 2) <= t < at(sub + 3.5))
    after = hits_at_changes(s, bass, changes, first_beat=sub + 4)
    assert len(after) == 6 and rate(after) >= 0.9, after


def test_the_address_switches_it_from_the_next_bar(cfg):
    changes = loop_changes(FOUR, 4, 4)
    s, _ = jam(cfg, changes)
    assert s.value("/band/memory") == 1.0
    s.set("/band/memory", "off")
    assert s.value("/band/memory") == 0.0
    bar = s.clock.next_bar(s.scheduler.cursor)
    loop = s.ctx.memory.loop_at(bar)
    assert loop is not None
    assert s.ctx.chord_at(bar - 4) == loop.chord_at(bar - 4)      # before: the loop
    memory, s.ctx.memory = s.ctx.memory, None
    following = s.ctx.chord_at(bar + 4)
    s.ctx.memory = memory
    assert s.ctx.chord_at(bar + 4) == following          # after: following
    for bad in ("maybe", 2, -1, 0.5):
        with pytest.raises(ValueError):
            s.set("/band/memory", bad)
    assert s.value("/band/memory") == 0.0
    assert "/band/memory" in s.addresses() and s.param("/band/memory").choices == ("off", "on")


def test_voicing_spells_the_chord():
    assert voicing("Am") == [57, 60, 64] and voicing("C/E") == [40, 48, 52, 55]


def test_a_keyboard_unplugged_with_keys_down_is_no_departure(cfg):
    from engine.rt.events import K_NOTE_ON
    changes = loop_changes(FOUR, 4, 3)
    s, _ = jam(cfg, changes)
    beat = F(4 + 3 * 16)                        # the next round's Am, pressed on its downbeat
    for p in voicing("Am"):
        s.player_note(K_NOTE_ON, p, 0.8, s.clock.sample_at(beat), 1)
    s.conductor.source_gone(1)
    now = s.clock.sample_at(beat)
    while now < s.clock.sample_at(beat + 16):
        now += 512
        s.advance(now)
    memory = s.ctx.memory
    assert memory.departures == 0 and memory.loop is not None
    assert s.ctx.chord_at(beat + 12).name == "G"      # the band keeps the loop going


def test_mqtt_publishes_the_learned_loop(cfg):
    """A performer's screen sees what the band has learned: the MQTT state carries the memory's
    status, the loop (name, bars, changes) once locked, the library and the departures, and
    "off" when the address turns it off."""
    import json
    from engine.control.mqtt import MqttBridge
    changes, _, _ = song([(VERSE, 2), (CHORUS, 2), (VERSE, 2)])
    s, _ = jam(cfg, changes)
    bridge = MqttBridge(s, embedded_port=0, log=lambda t: None)
    state = {t: p for t, p, _ in bridge.state_messages()}
    memory = json.loads(state["bandmate/state/memory"])
    assert memory["status"].startswith("loop A 4b") and memory["loop"].startswith("4 bars: ")
    assert memory["loop"] == s.ctx.memory.loop.describe() and memory["locked"]
    assert (memory["name"], memory["bars"]) == ("A", 4)
    assert memory["changes"] == [[0.0, "Am"], [4.0, "F"], [8.0, "C"], [12.0, "G"]]
    assert [x[:2] for x in memory["library"]] == [["A", 4], ["B", 4]]
    assert (memory["departures"], memory["returns"], memory["locks"]) == (2, 1, 2)
    s.set("/band/memory", "off")
    state = {t: p for t, p, _ in bridge.state_messages()}
    off = json.loads(state["bandmate/state/memory"])
    assert off["status"] == "off" and not off["locked"] and off["library"] == memory["library"]


def test_osc_answers_and_pushes_the_learned_loop(cfg):
    """`/bandmate/memory` replies the memory's state over real UDP; subscribing to it pushes it
    when it changes (here: /band/memory turned off)."""
    import asyncio
    from tests.test_osc import run, serve
    changes, _, _ = song([(VERSE, 2), (CHORUS, 2), (VERSE, 2)])
    s, _ = jam(cfg, changes)

    async def main():
        server, c = await serve(s, poll_hz=50.0)
        stopping = asyncio.Event()
        task = asyncio.create_task(server.run(stopping))
        c.send("/bandmate/memory")
        r = await c.recv("the memory's state")
        assert r.address == "/bandmate/memory"
        assert r.params[:9] == ["loop A 4b 100%", 1, "A", 4, 2, 0, 1, 2,
                                "4 bars: Am@0 F@4 C@8 G@12"]
        assert r.params[9:] == [0.0, "Am", 4.0, "F", 8.0, "C", 12.0, "G"]
        c.send("/bandmate/memory", 1)
        assert (await c.recv("an error")).address == "/bandmate/error"
        c.send("/bandmate/subscribe", "/bandmate/memory")
        assert (await c.recv("the state, subscribed")).params[:2] == ["loop A 4b 100%", 1]
        s.set("/band/memory", "off")
        r = await c.recv("the state pushed")
        assert r.address == "/bandmate/memory" and r.params[:2] == ["off", 0]
        stopping.set()
        await asyncio.wait_for(task, 5.0)
        c.close()
    run(main())


def test_the_console_shows_the_memory(cfg):
    from engine.commands import live_command
    changes, _, _ = song([(VERSE, 2), (CHORUS, 2), (VERSE, 2)])
    s, _ = jam(cfg, changes)
    text = live_command(s, "memory")
    assert text.splitlines()[0] == "memory: loop A 4b 100%, locked"
    assert "A  4 bars: Am@0 F@4 C@8 G@12" in text and "B  4 bars: Dm@0 G@4 C@8 E7@12" in text
    assert "2 departures (0 substitutions), 1 return" in text
    assert live_command(s, "memory now").startswith("commands:")
