"""Progression memory (engine.listen.progression): the band learns the loop the player repeats,
lands on its changes from then on, notices a departure, and with /band/memory off plays as it
did without it. The session tests feed the player's chord hand into a Session on the live path
(tests/progressionkit.py) and measure the bass notes the band actually scheduled."""
from fractions import Fraction as F

import pytest

from engine.config import load_config
from engine.harmony import Chord
from engine.listen.progression import ProgressionMemory, chord_class
from tests.progressionkit import hits_at_changes, jam, loop_changes, rate, voicing

FOUR = ["Am", "F", "C", "G"]
TWO_A_BAR = ["C", "Dm", "Em", "F", "G", "Am", "G", "F"]          # 2 beats each: a 4-bar loop
EIGHT = ["Am", "F", "C", "G", "Am", "F", "Dm", "E7"]
BLUES = ["A7", "D7", "A7", "A7", "D7", "D7", "A7", "A7", "E7", "D7", "A7", "E7"]


@pytest.fixture
def cfg(monkeypatch):
    monkeypatch.chdir(__import__("pathlib").Path(__file__).resolve().parent.parent)
    return load_config("config.toml", environ={})


# ---- the memory on its own: heard chords at beats, time ticking by ------------------------------
def feed(memory, changes, until, lookahead=F(1, 5), step=F(1, 8)):
    """Tick `memory` every `step` beats up to `until`, hearing each (beat, chord name) of
    `changes` when time reaches it; the scheduler's horizon is `lookahead` ahead of time. Returns
    the answers loop_at gave for every beat behind the horizon at each tick, {beat: chord}
    (checked never to change while they are within 64 beats of the horizon, the history the
    agents look back on)."""
    queue = sorted((F(b), n) for b, n in changes)
    answered = {}
    t = F(0)
    while t < until:
        while queue and queue[0][0] <= t:
            b, name = queue.pop(0)
            memory.hear(None if name is None else Chord.parse(name), b)
        horizon = t + lookahead
        memory.tick(t, horizon)
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
    in_bar = [n % 12 in dm for t, n in bass if at(switch + 2) <= t < at(switch + 4)]
    assert in_bar and all(in_bar)                    # the band plays Dm within the bar
    relearned = switch + 2 * 16
    assert rate(hits_at_changes(s, bass, changes, first_beat=relearned)) >= 0.9


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
    status and loop once locked, and "off" when the address turns it off."""
    import json
    from engine.control.mqtt import MqttBridge
    s, _ = jam(cfg, loop_changes(FOUR, 4, 4))
    bridge = MqttBridge(s, embedded_port=0, log=lambda t: None)
    state = {t: p for t, p, _ in bridge.state_messages()}
    memory = json.loads(state["bandmate/state/memory"])
    assert memory["status"].startswith("loop 4b") and memory["loop"].startswith("4 bars: ")
    assert memory["loop"] == s.ctx.memory.loop.describe()
    s.set("/band/memory", "off")
    state = {t: p for t, p, _ in bridge.state_messages()}
    assert json.loads(state["bandmate/state/memory"]) == {"status": "off", "loop": ""}
