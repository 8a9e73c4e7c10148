"""Band commands in words (engine.agents.commands) and /band/feel: each command's effect
measured on the notes the session's real scheduler sends, from the bar it names."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.agents.commands import CommandError, do, parse
from engine.agents.steer import AGENT_PARTS
from engine.control.session import Session
from engine.parts import DRUM_NOTES, PART_INDEX
from engine.rt.events import K_NOTE_ON
from tests.enginekit import dry_config

SR = 48000
ROOT = Path(__file__).resolve().parents[1]
KICK, SNARE = DRUM_NOTES["kick"], DRUM_NOTES["snare"]


@pytest.fixture
def cfg():
    c = dry_config(ROOT)
    c["band"].update(chords=True, lead=True, style="rock", tempo_bpm=120.0, seed=3)
    return c


class Run:
    """A jam session advanced offline the way the live loop does (`Session.advance` every
    `tick` samples); the rows its scheduler sends are kept (and not played: no audio here)."""

    def __init__(self, cfg, tick: int = 480):
        self.s = Session(cfg, SR)
        self.rows: list[np.ndarray] = []
        self.s.scheduler.send = lambda r: self.rows.append(r.copy())
        self.t = 0
        self.tick = tick

    def to_bar(self, bar: float) -> None:
        """Advance until the look-ahead has passed `bar` (beats / 4)."""
        end = self.s.clock.sample_at(bar * 4)
        while self.t < end:
            self.s.advance(self.t)
            self.t += self.tick

    def onsets(self, part: str) -> np.ndarray:
        r = np.concatenate(self.rows)
        return r[(r[:, 1] == K_NOTE_ON) & (r[:, 2] == PART_INDEX[part])]

    def beats(self, part: str, note: int | None = None) -> np.ndarray:
        """Each onset's beat on the sixteenth grid (the agents' nudges are at most 12 ms)."""
        r = self.onsets(part)
        if note is not None:
            r = r[r[:, 3] == note]
        return np.round(np.array([float(self.s.clock.beat_at(int(t))) for t in r[:, 0]])
                        * 4) / 4

    def per_bar(self, part: str, bars: int) -> np.ndarray:
        b = np.floor(self.beats(part) / 4 + 0.01).astype(int)
        return np.bincount(b[b >= 0], minlength=bars)[:bars]


def test_drop_the_drums_for_4_bars_silences_exactly_those_bars(cfg):
    run = Run(cfg)
    run.to_bar(2.5)
    reply = do(run.s, "drop the drums for 4 bars")
    assert reply.startswith("from bar ") and "back at bar" in reply
    first = int(reply.split()[2].rstrip(":")) - 1
    run.to_bar(first + 8)
    per = run.per_bar("drums", first + 7)
    assert all(per[b] > 0 for b in range(first)), per
    assert all(per[b] == 0 for b in range(first, first + 4)), per
    assert all(per[b] > 0 for b in range(first + 4, first + 7)), per
    assert run.per_bar("bass", first + 4)[first:first + 4].min() > 0     # the rest play on


def test_sparser_and_busier_change_the_density_from_the_next_bar(cfg):
    counts = {}
    for words in ("sparser", "busier"):
        run = Run(cfg)
        run.to_bar(3.5)
        do(run.s, words)
        do(run.s, words)
        run.to_bar(12)
        per = run.per_bar("drums", 12) + run.per_bar("bass", 12) + run.per_bar("chords", 12)
        counts[words] = (per[:4].sum(), per[4:12].sum() / 2)     # 4 bars before, 4 after
        assert run.s.value("/drums/agent/density") == pytest.approx(
            0.1 if words == "sparser" else 0.9)
    before, after = counts["sparser"]
    assert after < 0.8 * before
    before, after = counts["busier"]
    assert after > 1.1 * before


def test_half_time_moves_the_backbeat_to_beat_three_and_normal_time_brings_it_back(cfg):
    run = Run(cfg)
    run.to_bar(1.5)
    assert do(run.s, "half time") == "from bar 3: half time"
    run.to_bar(5.5)
    do(run.s, "normal time")
    run.to_bar(9)
    snare = run.beats("drums", SNARE)
    vel = run.onsets("drums")
    loud = snare[vel[vel[:, 3] == SNARE][:, 4] > 0.5]        # the backbeat, not the ghosts
    in_bar = np.round(loud % 4, 1)
    bar = np.floor(loud / 4 + 0.01)
    for b in range(9):
        beats = set(in_bar[bar == b]) - {3.5, 2.5}             # fills sit on the last beats
        if 2 <= b <= 5:
            assert 2.0 in beats and 1.0 not in beats, (b, beats)
        else:
            assert {1.0} <= beats and 2.0 not in beats or b % 4 == 3, (b, beats)
    kicks = run.beats("drums", KICK)
    assert not any((kicks >= 8) & (kicks < 24) & (np.round(kicks % 4, 2) == 2.5)), \
        "the half-time kick keeps the first half of the pattern"


def test_double_time_puts_the_snare_on_every_offbeat_eighth(cfg):
    run = Run(cfg)
    do(run.s, "double time")
    run.to_bar(4)
    vel = run.onsets("drums")
    snare = run.beats("drums", SNARE)[vel[vel[:, 3] == SNARE][:, 4] > 0.5]
    bar1 = np.round(snare[(snare >= 4) & (snare < 7)] % 4, 2)
    assert set(bar1) >= {0.5, 1.5, 2.5}


def test_bass_follows_half_time(cfg):
    run = Run(cfg)
    run.to_bar(1.5)
    do(run.s, "half time")
    run.to_bar(6)
    normal, half = run.per_bar("bass", 6)[:2].sum(), run.per_bar("bass", 6)[2:4].sum()
    assert half < normal


def test_bass_only_and_solo_keys(cfg):
    run = Run(cfg)
    run.to_bar(1.5)
    do(run.s, "bass only for 2 bars")
    run.to_bar(4.5)
    do(run.s, "solo keys")
    run.to_bar(8)
    for part in AGENT_PARTS:
        per = run.per_bar(part, 8)
        assert per[:2].min() > 0 or part == "lead"
        assert (per[2:4].min() > 0) if part == "bass" else per[2:4].sum() == 0, (part, per)
        assert per[5:8].sum() == 0, (part, per)
    do(run.s, "bring back everyone")
    assert all(run.s.value(f"/{p}/agent/on") == 1.0 for p in AGENT_PARTS)


def test_key_of_d_minor_moves_the_bass_roots_by_a_fourth(cfg):
    a, b = Run(cfg), Run(cfg)
    assert "(/band/key D)" in do(b.s, "key of D minor")
    assert "(/band/key D)" in do(Run(cfg).s, "key of F major")     # its relative minor
    for r in (a, b):
        r.to_bar(8)
    first = [r.onsets("bass")[0, 3] % 12 for r in (a, b)]
    assert first == [9, 2]          # A minor's tonic, then D minor's


def test_tempo_faster_slower_and_swing(cfg):
    run = Run(cfg)
    do(run.s, "tempo 100")
    run.to_bar(1)
    assert run.s.clock.bpm == 100.0
    do(run.s, "faster, faster")
    assert run.s.clock.bpm == 110.0
    do(run.s, "slower")
    assert run.s.clock.bpm == 105.0
    do(run.s, "swing more then swing more")
    assert run.s.value("/band/swing") == pytest.approx(0.16)
    do(run.s, "straight")
    assert run.s.value("/band/swing") == 0.0


def test_louder_moves_every_band_fader_from_the_next_bar(cfg):
    run = Run(cfg)
    before = {p: run.s.value(f"/{p}/mix/gain_db") for p in AGENT_PARTS}
    do(run.s, "louder")
    assert all(run.s.value(f"/{p}/mix/gain_db") == pytest.approx(before[p] + 3.0)
               for p in AGENT_PARTS)
    do(run.s, "softer, softer")
    assert all(run.s.value(f"/{p}/mix/gain_db") == pytest.approx(before[p] - 3.0)
               for p in AGENT_PARTS)


def test_more_energy_plays_louder_and_busier_and_calm_down_the_opposite(cfg):
    means = {}
    for words in ("more energy", "calm down"):
        run = Run(cfg)
        run.to_bar(3.5)
        do(run.s, f"{words}, {words}")
        run.to_bar(8)
        d = run.onsets("drums")
        beats = run.beats("drums")
        kick = d[:, 3] == KICK          # on every bar's pattern: louder with more energy
        means[words] = (d[(beats < 16) & kick][:, 4].mean(),
                        d[(beats >= 16) & kick][:, 4].mean(),
                        (beats < 16).sum(), (beats >= 16).sum())
    b, a, nb, na = means["more energy"]
    assert a > b and na > nb
    b, a, nb, na = means["calm down"]
    assert a < b and na < nb


def test_fill_plays_a_fill_in_the_bar_before_the_next_bar_line(cfg):
    run = Run(cfg)
    run.to_bar(1.1)
    reply = do(run.s, "fill")
    bar = int(reply.split()[-1]) - 1
    run.to_bar(bar + 2)
    beats = run.beats("drums")
    notes = run.onsets("drums")[:, 3]
    fills = {SNARE, DRUM_NOTES["tom_high"], DRUM_NOTES["tom_mid"], DRUM_NOTES["tom_low"]}
    last = (beats >= bar * 4 + 2) & (beats < bar * 4 + 4)
    assert sum(n in fills for n in notes[last]) >= 4


def test_end_plays_an_ending_and_then_nothing(cfg):
    run = Run(cfg)
    run.to_bar(2.2)
    reply = do(run.s, "end")
    bar = int(reply.split()[-1]) - 1
    run.to_bar(bar + 4)
    for part in AGENT_PARTS:
        beats = run.beats(part)
        assert not any(beats >= bar * 4 + 1 - 0.05), part     # one hit on the downbeat only
    drums = run.beats("drums")
    assert any(abs(drums - bar * 4) < 0.05)


def test_the_same_command_gives_the_same_notes(cfg):
    out = []
    for _ in range(2):
        run = Run(cfg)
        run.to_bar(2.3)
        do(run.s, "sparser drums, half time for 2 bars; drop the bass for 1 bar")
        run.to_bar(8)
        out.append(np.concatenate(run.rows))
    assert np.array_equal(out[0], out[1])
    assert parse("Drop the drums for four bars!") == parse("drop drums for 4 bars")


@pytest.mark.parametrize("words, said", [
    ("make it groovy", "'make', 'it', 'groovy'"),
    ("drop the banjo", "'banjo' is not a part"),
    ("tempo fast", "write 'tempo 100'"),
    ("louder for 4 bars", "'for N bars' goes with"),
    ("half time, dance", "'dance'"),
    ("go to chorus", "no song form playing"),
    ("tempo 1000", "must be 20..400"),
])
def test_words_not_understood_say_what_is_and_change_nothing(cfg, words, said):
    run = Run(cfg)
    run.to_bar(1)
    version, bpm = run.s.steer.version, run.s.clock.bpm
    with pytest.raises(CommandError) as exc:
        do(run.s, words)
    assert said in str(exc.value)
    if "not understood" in str(exc.value) or "is not a part" in str(exc.value):
        assert "understood: sparser | busier" in str(exc.value)
    assert run.s.steer.version == version and run.s.clock.bpm == bpm
    assert run.s.value("/band/feel") == 0.0


def test_reachable_from_the_jam_prompt_osc_and_mqtt(cfg):
    import asyncio
    from engine.commands import live_command
    from engine.control.mqtt import MqttBridge
    from engine.control.osc import OscError, OscServer
    run = Run(cfg)
    assert live_command(run.s, "do half time").endswith("half time")
    assert run.s.value("/band/feel") == 1.0
    assert "understood:" in live_command(run.s, "do frobnicate")

    async def osc():
        server = OscServer(run.s, port=0, log=lambda t: None)
        await server.start()
        server.message("/bandmate/do", ["double", "time"], 1.0, ("127.0.0.1", 9))
        assert run.s.value("/band/feel") == 2.0
        with pytest.raises(OscError, match="understood:"):
            server.message("/bandmate/do", ["wobble"], 1.0, ("127.0.0.1", 9))
        server.close()
    asyncio.run(asyncio.wait_for(osc(), 30))

    bridge = MqttBridge(run.s, embedded_port=0, log=lambda t: None)
    bridge.handle("bandmate/in/c1/do", b'{"text": "normal time"}')
    assert run.s.value("/band/feel") == 0.0 and bridge.counters["applied"] == 1
    bridge.handle("bandmate/in/c1/do", b'"sing"')
    assert bridge.counters["errors"] == 1 and "understood" in bridge.last_error
