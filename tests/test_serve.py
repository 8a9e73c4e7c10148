"""Installation mode (`bandmate serve`, engine.control.serve): the CLI runs headless and stops
cleanly on SIGTERM, the schedule recalls the right scene at the right time, the watchdog brings
the audio back after the JACK server died and came back, the log rotates, and memory stays flat
over simulated hours."""
import asyncio
import datetime as dt
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine import cli
from engine.config import load_config
from engine.control.serve import (
    MidiRoller, SceneSchedule, SceneScheduler, event_log,
    parse_schedule,
)
from engine.tomldata import DataError

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def _wait(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def _at(text: str, day: int = 1) -> dt.datetime:
    return dt.datetime.combine(dt.date(2026, 6, day), dt.time.fromisoformat(text))


# ---- the schedule ---------------------------------------------------------------------------
SCHEDULE = [{"at": "22:00", "scene": "night"}, {"at": "08:00", "scene": "morning"},
            {"at": "12:30:15", "scene": "noon"}]


@pytest.mark.parametrize("now, scene, since", [
    ("00:00", "night", "22:00"), ("07:59:59", "night", "22:00"), ("08:00", "morning", "08:00"),
    ("12:30:14", "morning", "08:00"), ("12:30:15", "noon", "12:30:15"),
    ("21:59:59", "noon", "12:30:15"), ("22:00", "night", "22:00"), ("23:59:59", "night", "22:00"),
])
def test_the_scene_in_force_is_the_last_cue_at_or_before_now(now, scene, since):
    when, cue = SceneSchedule(SCHEDULE).in_force(_at(now, day=2))
    assert cue.scene == scene
    day = 1 if now < "08:00" else 2          # before the first cue: yesterday's last one
    assert when == _at(since, day)


def test_the_next_change_wraps_to_tomorrows_first_cue():
    s = SceneSchedule(SCHEDULE)
    assert s.next_change(_at("07:00")) == _at("08:00")
    assert s.next_change(_at("12:30:15")) == _at("22:00")
    assert s.next_change(_at("22:00")) == _at("08:00", day=2)
    assert SceneSchedule([]).in_force(_at("12:00")) is None


@pytest.mark.parametrize("entries, message", [
    ([{"at": "24:00", "scene": "x"}], "entry 1: at must be a time of day"),
    ([{"at": "8h", "scene": "x"}], "entry 1: at must be a time of day"),
    ([{"at": "08:00", "scene": ""}], "entry 1: scene must be"),
    ([{"at": "08:00"}], "entry 1: needs both at and scene"),
    ([{"at": "08:00", "scene": "a"}, {"at": "8:00", "scene": "b"}],
     "entry 2: 08:00 is already the time of scene 'a'"),
    ([{"at": "08:00", "scene": "a", "fade": 2}], "entry 1: unknown key 'fade'"),
    (["08:00 morning"], "entry 1: must be a table"),
    ({"at": "08:00"}, "must be a list"),
])
def test_a_bad_schedule_is_refused_saying_which_entry(entries, message):
    with pytest.raises(ValueError, match=message):
        parse_schedule(entries)


def test_a_bad_schedule_in_the_config_names_file_line_and_field(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[serve]\nlog_backups = 2\nschedule = [{ at = "08:00", scene = "a" },'
                    ' { at = "08:00", scene = "b" }]\n')
    with pytest.raises(DataError, match=r"c.toml:3: \[serve\] schedule: entry 2"):
        load_config(path)
    path.write_text('[serve]\nschedule = [{ at = 08:00:00, scene = "a" }, '
                    '{ at = "22:00", scene = "b" }]\n')          # TOML's own local time too
    cues = SceneSchedule(load_config(path)["serve"]["schedule"]).cues
    assert [(c.at, c.scene) for c in cues] == [("08:00", "a"), ("22:00", "b")]


def test_the_scheduler_recalls_the_scene_in_force_at_start_then_each_change_once():
    clock = [_at("09:00")]
    recalled, lines = [], []
    sched = SceneScheduler(SceneSchedule(SCHEDULE), recalled.append, lines.append,
                           now=lambda: clock[0])
    assert sched.check() == "morning"             # at start: the scene in force now
    assert sched.check() is None                  # not again
    clock[0] = _at("12:30:14")
    assert sched.check() is None
    clock[0] = _at("12:30:15")
    assert sched.check() == "noon"
    clock[0] = _at("23:00")
    assert sched.check() == "night"
    clock[0] = _at("12:31", day=2)                # a day later (the service slept through
    assert sched.check() == "noon"                # 08:00): only the one in force now
    assert recalled == ["morning", "noon", "night", "noon"]
    assert sched.changes == 4 and sched.scene == "noon"
    assert lines[0] == "scene morning (scheduled at 08:00)"


def test_a_scene_that_cannot_be_recalled_is_logged_counted_and_the_next_still_comes():
    clock = [_at("09:00")]
    lines, recalled = [], []

    def recall(name):
        if name == "morning":
            raise KeyError("no scene 'morning'")
        recalled.append(name)

    sched = SceneScheduler(SceneSchedule(SCHEDULE), recall, lines.append, now=lambda: clock[0])
    assert sched.check() is None
    assert sched.errors == 1 and sched.scene is None
    assert "scene 'morning' (scheduled at 08:00) not recalled" in lines[0]
    assert sched.check() is None and sched.errors == 1     # not retried every tick
    clock[0] = _at("13:00")
    assert sched.check() == "noon" and recalled == ["noon"]


def test_the_scheduler_task_recalls_a_cue_when_the_wall_clock_reaches_it():
    """Real time: a cue two seconds ahead is recalled by the running task."""
    start = dt.datetime.now().replace(microsecond=0)
    soon = start + dt.timedelta(seconds=2)
    entries = [{"at": (start - dt.timedelta(hours=1)).strftime("%H:%M:%S"), "scene": "before"},
               {"at": soon.strftime("%H:%M:%S"), "scene": "after"}]
    recalled = []
    sched = SceneScheduler(SceneSchedule(entries), recalled.append, lambda text: None)

    async def main():
        stopping = asyncio.Event()
        task = asyncio.create_task(sched.run(stopping))
        deadline = time.monotonic() + 10
        while recalled != ["before", "after"] and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        stopping.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(main())
    assert recalled == ["before", "after"]


# ---- the log ----------------------------------------------------------------------------------
def test_the_log_rotates_at_its_size_and_keeps_its_backups(tmp_path):
    path = tmp_path / "logs" / "serve.log"
    cfg = load_config(None, {"serve": {"log_file": str(path), "log_max_bytes": 2000,
                                       "log_backups": 2}})
    log = event_log(cfg["serve"])
    for i in range(300):
        log(f"event {i:04d}\nwith a second line")
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["serve.log", "serve.log.1", "serve.log.2"]
    for p in path.parent.iterdir():
        assert 0 < p.stat().st_size <= 2000
    lines = path.read_text().splitlines()
    assert lines[-1].endswith("INFO event 0299 | with a second line")   # one line per event
    numbers = [int(line.split("event ")[1][:4]) for p in ("serve.log.2", "serve.log.1",
                                                          "serve.log")
               for line in (path.parent / p).read_text().splitlines()]
    assert numbers == list(range(numbers[0], 300))          # the newest kept, in order
    event_log(load_config(None)["serve"])                   # back to standard error


# ---- the recording, rolled --------------------------------------------------------------------
def test_the_recording_rolls_into_files_keeping_the_newest(tmp_path):
    import mido

    from engine.control.scheduler import Played
    from engine.control.session import Session
    cfg = load_config(None)
    session = Session(cfg, 8000, root=ROOT)
    roller = MidiRoller(session, str(tmp_path / "midi"), keep=2, log=lambda text: None)
    for k in range(3):
        session.recorder.add(Played(k * 10.0 + 0.5, 0.25, "bass", 40 + k, 0.8))
        assert roller.roll(_at(f"0{k}:00")).name == f"bandmate-20260601-0{k}0000.mid"
        assert session.recorder.notes == []
    files = sorted(p.name for p in (tmp_path / "midi").iterdir())
    assert files == ["bandmate-20260601-010000.mid", "bandmate-20260601-020000.mid"]
    mid = mido.MidiFile(tmp_path / "midi" / files[-1])
    notes = [m.note for t in mid.tracks for m in t if m.type == "note_on" and m.velocity]
    assert notes == [42]
    dropper = MidiRoller(session, "", keep=1, log=lambda text: None)
    session.recorder.add(Played(1.0, 0.25, "bass", 40, 0.8))
    assert dropper.roll() is None and dropper.dropped_notes == 1
    assert session.recorder.notes == []


# ---- memory over simulated hours -------------------------------------------------------------
def test_memory_stays_flat_over_simulated_hours():
    """An hour of music in six 10-minute "hours" (8 kHz, every agent, a scene and a tempo
    change every 2 minutes, the player's chords every 4 s, the recording rolled each "hour" as
    serve rolls it hourly): Python's traced memory after period 6 is that after period 3.
    (`python bench/serve_memory.py` runs real hours.)"""
    from bench.serve_memory import simulate
    out = simulate(hours=6, hour_s=600.0, change_every_s=120.0)
    traced = out["traced_mb"]
    assert out["scheduled_notes"] > 5 * 3600          # the band played all along
    assert out["notes_rolled"] >= out["scheduled_notes"]   # and the player's notes too
    assert max(out["clock_segments"]) <= 3            # 30 tempo changes, the map stays short
    assert len(out["scenes"]) >= 3                    # scenes.toml's, recalled in turn
    assert abs(traced[5] - traced[2]) < 0.1, traced
    assert out["counters"]["nonfinite"] == 0 and out["counters"]["dropped_events"] == 0


def test_a_recording_left_unrolled_is_what_the_memory_check_sees(monkeypatch):
    """The check above can fail: without the hourly roll the recorder's notes pile up."""
    from bench.serve_memory import simulate
    monkeypatch.setattr(MidiRoller, "roll", lambda self, when=None: None)
    out = simulate(hours=2, hour_s=300.0, change_every_s=120.0)
    assert out["traced_mb"][1] - out["traced_mb"][0] > 0.25, out["traced_mb"]


# ---- through a real JACK server -------------------------------------------------------------
def _serve_config(tmp_path, **serve) -> Path:
    """A config for serve on JACK: no connections, no MIDI, the log in tmp_path."""
    path = tmp_path / "serve.toml"
    body = "\n".join(f"{k} = {v}" if k == "schedule" else
                     f'{k} = "{v}"' if isinstance(v, str) else f"{k} = {v}"
                     for k, v in serve.items())
    path.write_text(f'[audio]\ndriver = "jack"\nconnect = []\n[midi]\ninputs = []\n'
                    f'mapping = ""\n[serve]\nlog_file = "{tmp_path / "serve.log"}"\n{body}\n')
    return path


@pytest.mark.jack
def test_serve_runs_headless_for_its_seconds_and_stops_cleanly(jack_server, tmp_path, capsys):
    """A schedule naming a scene the scene file lacks is said at start and when it is due,
    counted, and the music plays on."""
    cfg = _serve_config(tmp_path, status_every_s=0.5, midi_dir=str(tmp_path / "midi"),
                        schedule='[{ at = "00:00", scene = "nowhere" }]')
    assert cli.main(["--config", str(cfg), "serve", "--seconds", "3"]) == 0
    text = (tmp_path / "serve.log").read_text()
    assert "schedule: no scene 'nowhere' in " in text
    assert "scene 'nowhere' (scheduled at 00:00) not recalled: \"no scene 'nowhere'" in text
    log = text.splitlines()
    assert "bandmate serve starting" in log[0]
    assert any("serving: 112 BPM, rock" in line for line in log)
    status = [line for line in log if " INFO status: " in line]
    assert len(status) >= 3
    assert "audio restarts 0" in status[-1] and " MB" in status[-1]
    assert "stopped: status:" in log[-1]
    assert "\r" not in capsys.readouterr().out            # no terminal status line
    assert len(list((tmp_path / "midi").glob("bandmate-*.mid"))) == 1   # the last roll


@pytest.mark.jack
def test_serve_stops_cleanly_on_sigterm(jack_server, tmp_path):
    """Run as systemd runs it; the scene in force (the only cue: always) recalled at start."""
    cfg = _serve_config(tmp_path, status_every_s=0.3,
                        schedule='[{ at = "00:00", scene = "groove" }]')
    proc = subprocess.Popen([PY, "-m", "engine.cli", "--config", str(cfg), "serve"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        logfile = tmp_path / "serve.log"
        _wait(lambda: logfile.exists() and " status: " in logfile.read_text(), 300,
              "serve's first status line")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 0, out.decode(errors="replace")[-2000:]
    text = logfile.read_text()
    assert "INFO scene groove (scheduled at 00:00)" in text
    assert "scene groove, voices" in text                     # the status line has it
    assert "stopped: status:" in text.splitlines()[-1]


def _watchdog_scenario(mode: str, tmp_path) -> tuple[dict, list[str]]:
    """tests/serve_watchdog.py in a process of its own (a second JACK server started beside
    the suite's crashes JACK clients other tests left in this process): what it saw, and its
    log."""
    proc = subprocess.run([PY, "-m", "tests.serve_watchdog", mode, str(tmp_path)], cwd=ROOT,
                          capture_output=True, timeout=400)
    report = tmp_path / "report.json"
    assert proc.returncode == 0 and report.exists(), \
        proc.stdout.decode(errors="replace")[-3000:] + proc.stderr.decode(errors="replace")[-3000:]
    import json
    seen = json.loads(report.read_text())
    lines = seen.pop("lines")
    assert seen["before_peak"] > 0.01
    assert seen["restarts"] == 1
    assert seen["resumed_at"] >= seen["stopped_at"] + 48000   # the clock runs on from there
    assert seen["after_peak"] > 0.01                # the band is heard again
    assert seen["status_while_down"] >= 2           # the loop never blocked meanwhile
    assert seen["nonfinite"] == 0
    assert "audio restarted (restart 1," in "\n".join(lines)
    return seen, lines


@pytest.mark.jack
def test_the_watchdog_brings_the_audio_back_after_the_jack_server_died(tmp_path):
    """A JACK server of our own is killed (SIGKILL) under a running serve and stays away a
    while (reopening fails and is retried), then comes back: the session plays on, on a new
    client, its sample clock running on from where it stopped, and a JACK client records the
    band again."""
    seen, lines = _watchdog_scenario("kill", tmp_path)
    assert seen["failed"] >= 2                      # no server: retried, counted, no crash
    text = "\n".join(lines)
    assert "audio stopped: " in text and "audio restart attempt 1 failed" in text


@pytest.mark.jack
def test_the_watchdog_restarts_audio_whose_clock_stood_still(tmp_path):
    """The server stops answering (SIGSTOP): the audio clock stands still for stall_s, the
    watchdog closes and reopens the driver on threads of their own while the loop goes on
    logging; the server continues (SIGCONT) and the audio with it."""
    seen, lines = _watchdog_scenario("stop", tmp_path)
    assert any("the audio clock has not advanced for" in line for line in lines)


# ---- the tempo map, trimmed -------------------------------------------------------------------
def test_trimming_the_tempo_map_changes_no_time_after_the_cut():
    """A run of days changes tempo and swing without end: forgetting the changes before a beat
    keeps every conversion from that beat on exactly as it was."""
    from fractions import Fraction as F

    from engine.control.clock import Clock
    trimmed, ref = Clock(48000, 120), Clock(48000, 120)
    for k in range(1, 200):
        for clock in (trimmed, ref):
            clock.set_tempo((96, 112.5, 131, 88)[k % 4], F(4 * k))
            clock.set_swing((0.0, 0.2, 0.33)[k % 3], F(4 * k))
    assert trimmed.forget_before(F(700)) > 300
    assert len(trimmed.segments) == 25                 # from beat 700 (4 × 175) on
    for n in range(3 * 700, 3 * 800):
        beat = F(n, 3)
        assert trimmed.sample_at(beat) == ref.sample_at(beat)
        assert trimmed.swung(beat) == ref.swung(beat)
    # (beat 700 lies a fraction past the start of sample_at(700): from the next sample on)
    for sample in range(ref.sample_at(F(700)) + 1, ref.sample_at(F(790)), 997):
        assert trimmed.beat_at(sample) == ref.beat_at(sample)
    assert trimmed.forget_before(F(700)) == 0          # nothing more to forget there
