"""Patterns as band parts: Session.play and `:pattern`, in the band's time, swapped at a bar,
the same live and offline, never leaving a note unended; and the example that plays them."""
import importlib.util
import random
from fractions import Fraction as F
from pathlib import Path

import numpy as np
import pytest

from engine.commands import live_command
from engine.config import load_config
from engine.control.session import Session
from engine.parts import PART_INDEX
from engine.patterns import Pattern, mini
from engine.rt.events import K_NOTE_OFF, K_NOTE_ON

SR = 48000
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def cfg(monkeypatch):
    monkeypatch.chdir(ROOT)
    return load_config("config.toml", environ={})


class Rows:
    """Every row the session's scheduler sends, kept instead of queued (no engine runs:
    these tests are about what is scheduled and when)."""

    def __init__(self, session):
        self.rows: list[np.ndarray] = []
        session.scheduler.send = lambda rows: self.rows.append(rows.copy())

    def all(self) -> np.ndarray:
        return np.concatenate(self.rows) if self.rows else np.zeros((0, 8))

    def part(self, part: str, kind: int) -> np.ndarray:
        r = self.all()
        return r[(r[:, 2] == PART_INDEX[part]) & (r[:, 1] == kind)]


def advance(session, until_s: float, block: int = 256) -> None:
    for t in range(0, round(until_s * SR), block):
        session.advance(t + block)


def expected(session, pattern, part: str, begin, end) -> tuple[list, list]:
    """(note-on samples, note-off samples) of `pattern` on `part` over beats [begin, end),
    as the clock places them (swing off: config's default)."""
    clock = session.clock
    notes = pattern.on(part).query(F(begin), F(end), session.ctx)
    ons = [max(clock.sample_at(n.begin) + round(n.nudge_s * SR), 0) for n in notes]
    offs = [clock.sample_at(n.end) + round(n.nudge_s * SR) for n in notes]
    return ons, offs


BASS = mini("c2 ~ [eb2 g2] <bb1 f2>").humanise(5, 0.1, seed=2)


def test_a_pattern_plays_its_part_on_the_samples_its_onsets_say(cfg):
    plain, s = Session(cfg, SR), Session(cfg, SR)
    assert s.play("bass", BASS) == 0
    a, b = Rows(plain), Rows(s)
    advance(plain, 10.0)
    advance(s, 10.0)
    end = s.scheduler.cursor
    ons, offs = expected(s, BASS, "bass", 0, end)
    assert len(ons) >= 18          # 4 bars and a half at 112 BPM, 4 notes a bar
    assert sorted(b.part("bass", K_NOTE_ON)[:, 0]) == sorted(ons)
    assert sorted(b.part("bass", K_NOTE_OFF)[:, 0]) == sorted(offs)
    assert sorted(b.part("bass", K_NOTE_ON)[:, 3]) == \
        sorted(n.note for n in BASS.query(F(0), end, s.ctx))
    # the agent that played the bass is silent, the drums play as before
    assert len(a.part("bass", K_NOTE_ON)) > 0
    assert np.array_equal(a.part("drums", K_NOTE_ON), b.part("drums", K_NOTE_ON))


def test_a_replaced_pattern_changes_at_the_next_bar_and_leaves_no_note_unended(cfg):
    s = Session(cfg, SR)
    rows = Rows(s)
    long = mini("c3 e3 g3 b3").legato(3)        # each note rings over the next three
    s.play("lead", long)
    advance(s, 5.3)                             # part-way into bar 2 (112 BPM)
    cursor = s.scheduler.cursor
    assert cursor % 4 != 0
    at = s.play("lead", mini("c5*8"))
    assert at == s.clock.next_bar(cursor) and at > cursor
    advance(s, 12.0)
    back = s.play("lead", None)
    advance(s, 16.0)
    on, off = rows.part("lead", K_NOTE_ON), rows.part("lead", K_NOTE_OFF)
    first, second = s.clock.sample_at(at), s.clock.sample_at(back)
    assert set(on[on[:, 0] < first, 3]) == {48, 52, 55, 59}
    assert set(on[(on[:, 0] >= first) & (on[:, 0] < second), 3]) == {72}
    assert len(on[(on[:, 0] >= first) & (on[:, 0] < second)]) == 8 * int(back - at) // 4
    assert not len(on[on[:, 0] >= second])      # the lead agent is off in config.toml
    # every note-on has its note-off (same note, later), the ringing ones across the change too
    assert len(on) == len(off)
    for note in set(on[:, 3]):
        t_on, t_off = sorted(on[on[:, 3] == note, 0]), sorted(off[off[:, 3] == note, 0])
        assert all(b > a for a, b in zip(t_on, t_off))
    assert max(off[:, 0]) > first               # a long note crossed the change and ended


def test_live_and_offline_schedule_the_same_rows(cfg):
    """Live, the scheduler wakes at uneven times and the pattern is typed at some moment; it
    takes effect at a bar. Offline the same pattern at the same bar, in blocks, or a bar per
    query (as `bandmate render` does): the same rows."""
    live = Session(cfg, SR)
    rows_live = Rows(live)
    live.play("bass", BASS)
    rnd = random.Random(5)
    t, typed_at, bar = 0, 4.1 * SR, None
    while t < 14 * SR:
        t += rnd.randint(1, 2400)               # 0.02 .. 50 ms between wake-ups
        live.advance(t)
        if bar is None and t >= typed_at:
            bar = int(live.play("lead", mini("<c5 e5>*4 [g5 a5]").degrade(0.3, seed=4))
                      // 4)
    for reach in (0, 1):
        off = Session(cfg, SR)
        off.scheduler.reach_bars = reach
        rows_off = Rows(off)
        off.play("bass", BASS)
        off.play("lead", mini("<c5 e5>*4 [g5 a5]").degrade(0.3, seed=4), bar=bar)
        advance(off, 20.0, block=512)
        end = min(live.scheduler.cursor, off.scheduler.cursor)
        cut = live.clock.sample_at(end)

        def upto(r):
            r = r[r[:, 1] == K_NOTE_ON]
            r = r[r[:, 0] < cut]
            return r[np.lexsort(r[:, :4].T[::-1])]
        a, b = upto(rows_live.all()), upto(rows_off.all())
        assert len(a) > 50 and np.array_equal(a, b)
        assert len(a[a[:, 2] == PART_INDEX["lead"]]) > 10


def test_a_pattern_that_fails_later_stops_and_the_agent_plays_on(cfg):
    said = []
    s = Session(cfg, SR)
    s.patterns.log = said.append
    plain = Session(cfg, SR)

    def q(begin, end, ctx):
        if end > 24:
            raise RuntimeError("boom")
        return mini("c2*4").query(begin, end, ctx)
    s.play("bass", Pattern(q))
    rows, ref = Rows(s), Rows(plain)
    advance(s, 20.0)
    advance(plain, 20.0)
    assert s.patterns.errors == 1 and len(said) == 1 and "boom" in said[0]
    assert s.patterns.latest("bass") is None
    mine, agent = rows.part("bass", K_NOTE_ON), ref.part("bass", K_NOTE_ON)
    stop = s.clock.sample_at(F(24))
    assert set(mine[mine[:, 0] < s.clock.sample_at(F(20)), 3]) == {36}
    # from where it failed (the window that reached beat 24) the agent's notes are back
    late = stop + SR
    assert np.array_equal(mine[mine[:, 0] >= late], agent[agent[:, 0] >= late])
    assert len(mine[mine[:, 0] >= late]) > 5


def test_play_checks_first_and_bad_input_changes_nothing(cfg):
    s = Session(cfg, SR)
    s.play("bass", BASS)
    advance(s, 3.0)
    for part, pattern, bar, error, match in [
        ("drums", "c4 e4", None, ValueError, "drums part plays drums"),
        ("guitar", "c4", None, ValueError, "no part"),
        ("bass", "c4 ]", None, ValueError, "column 4"),
        ("bass", "c4", 0, ValueError, "already scheduled"),
        ("bass", 3.5, None, TypeError, "not a pattern"),
        ("bass", "c4", 1.5, TypeError, "whole number"),
    ]:
        with pytest.raises(error, match=match):
            s.play(part, pattern, bar=bar)
        assert s.patterns.latest("bass") is not None and s.patterns.latest("drums") is None
    assert s.patterns.errors == 0


def test_the_jam_command_plays_and_gives_back(cfg):
    s = Session(cfg, SR)
    advance(s, 1.0)
    assert live_command(s, 'pattern bass "c2 ~ eb2 [g2 bb2]"') == \
        "bass: playing c2 ~ eb2 [g2 bb2] from bar 2"
    assert s.patterns.at("bass", F(4)) is not None and s.patterns.at("bass", F(3)) is None
    assert live_command(s, "pattern drums bd(3,8), hh*8").startswith("drums: playing")
    assert "drums part plays drums" in live_command(s, "pattern drums c4 e4")
    assert "column" in live_command(s, "pattern lead c4 [e4")
    assert live_command(s, "pattern bass off") == "bass: back to its agent from bar 2"
    assert s.patterns.latest("bass") is None and s.patterns.latest("drums") is not None
    assert "pattern PART" in live_command(s, "pattern")


def test_stopping_the_band_stops_its_patterns(cfg):
    s = Session(cfg, SR)
    rows = Rows(s)
    s.play("lead", mini("c5*4"))
    advance(s, 2.0)
    s.set("/transport/playing", "off")
    stop = s.scheduler.cursor
    advance(s, 6.0)
    on = rows.part("lead", K_NOTE_ON)
    assert len(on) > 0 and max(on[:, 0]) < s.clock.sample_at(stop)


# -- through the engine: the sound and the example ----------------------------------------------
def _example():
    spec = importlib.util.spec_from_file_location("patterns_demo",
                                                  ROOT / "examples" / "patterns_demo.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _bus_render(session, seconds, *parts: str, block=256):
    """Render; the left row of each part's bus (its instrument, then its inserts)."""
    from engine.control.offline import OfflineDriver
    from engine.rt import layout as L
    drv = OfflineDriver(session.state, block, session.scheduler.advance)
    frames = round(seconds * SR)
    out = np.zeros((len(parts), frames))
    rows = [L.B_PART0 + 2 * PART_INDEX[part] for part in parts]
    for done in range(0, frames, block):
        n = min(block, frames - done)
        drv.render(n, np.zeros((n, 2), np.float32))
        out[:, done:done + n] = session.state.arrays[L.S_BUS][rows, :n]
    return out[0] if len(parts) == 1 else out


def test_a_stopped_pattern_leaves_its_part_silent(cfg):
    s = Session(cfg, SR)
    s.play("lead", mini("c4 e4 g4 b4").legato(2))
    x = _bus_render(s, 4.0, "lead")
    assert np.abs(x).max() > 0.01
    at = s.play("lead", None)                      # the lead agent is off: nothing plays
    y = _bus_render(s, 4.0, "lead")
    # the last note ends by 2 beats after the change; a second of release, then silence
    quiet = s.clock.sample_at(at + 2) + SR - round(4.0 * SR)
    assert 0 < quiet < len(y) - SR // 2
    assert np.abs(y[quiet:]).max() < 1e-4
    assert s.state.counters()["late_events"] == 0


def test_the_example_renders_notes_where_its_patterns_say(cfg, tmp_path):
    """The example's plan, rendered offline: each part's notes at the samples its patterns
    give, the first drum hit heard on its own (humanised) sample, the bass sounding."""
    demo = _example()
    s = Session(cfg, SR, root=ROOT)
    demo.arrange(s)
    played = []
    s.scheduler.on_played = played.append
    drums, bass = _bus_render(s, 10.0, "drums", "bass")
    end = s.clock.beat_at(round(10.0 * SR) - s.scheduler.lookahead)
    for part in ("drums", "bass", "lead"):
        pattern = s.patterns.at(part, end - 1)
        assert pattern is not None
        ons, _ = expected(s, pattern, part, F(16) if part == "lead" else 0, end)
        got = sorted(round(p.start_s * SR) for p in played if p.part == part)
        assert [t for t in got if t < s.clock.sample_at(end)] == sorted(ons), part
        assert len(ons) > 3
    first = min(expected(s, s.patterns.at("drums", F(0)), "drums", 0, 4)[0])
    assert np.flatnonzero(np.abs(drums) > 1e-6)[0] == first
    assert np.abs(bass).max() > 0.01


def test_the_example_script_writes_a_wav(cfg, tmp_path):
    import soundfile as sf
    demo = _example()
    out = tmp_path / "patterns.wav"
    assert demo.main(["--render", "-o", str(out), "--seconds", "3"]) == 0
    audio, sr = sf.read(out)
    assert sr == cfg["render"]["sample_rate"] and len(audio) == round(3 * sr)
    assert np.abs(audio).max() > 0.01 and out.with_suffix(".mid").exists()


def test_a_live_run_plays_what_an_offline_render_plays(cfg):
    """The real live loop (LiveRun's scheduler task every 10 ms) beside an audio thread paced
    by the wall clock; a pattern typed as a jam command part-way. Offline, the same pattern
    put on the bar the live one started on: the same rows, whatever the host's timing."""
    import asyncio
    import threading
    import time

    from engine.control.live import LiveRun
    from engine.rt.render import run_block
    from tests.enginekit import NullStream, SentRows

    async def main():
        s = Session(cfg, SR)
        sent = SentRows(s)
        run = LiveRun(s, NullStream(), log=lambda text: None, tty_status=False)
        stop = threading.Event()

        def audio():
            block, start, done = 256, time.monotonic(), 0
            while not stop.is_set() and done < 12 * SR:
                run_block(s.state.table, block)
                done += block
                ahead = start + done / SR - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)

        task = asyncio.create_task(run.run(30.0))
        thread = threading.Thread(target=audio, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 60
            while s.state.sample_time < SR and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            reply = live_command(s, "pattern bass c2 [~ eb2] <g2 bb1> c3?")
            while s.state.sample_time < 8 * SR and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            cursor = s.scheduler.cursor
        finally:
            stop.set()
            run.stop()
            await asyncio.wait_for(task, 20.0)
            await asyncio.get_running_loop().run_in_executor(None, thread.join, 10.0)
        return s, sent, reply, cursor

    live, sent, reply, cursor = asyncio.run(main())
    bar = int(reply.rsplit(" ", 1)[1]) - 1
    assert reply.startswith("bass: playing") and cursor >= (bar + 2) * 4
    off = Session(cfg, SR)
    off.scheduler.reach_bars = 1
    rows = Rows(off)
    off.play("bass", "c2 [~ eb2] <g2 bb1> c3?", bar=bar)
    advance(off, 10.0, block=512)
    cut = live.clock.sample_at(cursor)

    def ons(r):
        r = r[(r[:, 1] == K_NOTE_ON) & (r[:, 0] < cut)]
        return r[np.lexsort(r[:, :4].T[::-1])][:, :5]
    a, b = ons(sent.onsets()), ons(rows.all())
    assert np.array_equal(a, b)
    bass = a[a[:, 2] == PART_INDEX["bass"]]
    start = live.clock.sample_at(F(bar * 4))
    assert set(bass[bass[:, 0] >= start, 3]) <= {36, 39, 43, 34, 48}
    assert len(bass[bass[:, 0] >= start]) >= 4
