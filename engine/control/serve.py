"""Installation mode (control side): `bandmate serve` plays the jam session headless for days.

It is a `LiveRun` (the scheduler, the patch watcher, OSC and the other bridges the config turns
on) with the pieces a run nobody watches needs:

- `SceneSchedule` / `SceneScheduler`: scenes recalled at daily wall-clock times ([serve]
  schedule); at start the scene in force now is recalled. A scene set by MQTT/OSC in between
  stays until the next scheduled time.
- `AudioWatchdog`: when the audio stream stops (the JACK server went away, the PortAudio stream
  ended or failed, or the audio clock stood still for `stall_s`), it closes the stream, releases
  every note, and reopens the driver with backoff; the session (band, tempo map, parameters)
  carries on where the audio stopped. Each restart is logged and counted.
- `event_log`: one line per event in a rotating log file ([serve] log_file, log_max_bytes,
  log_backups), and `status_line` every `status_every_s`: xruns, late events, voices, memory.
- `MidiRoller`: the notes played are rolled into a MIDI file every `midi_roll_s` (the newest
  `midi_keep` files kept) or dropped, so nothing grows with the length of the run.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import sys
import threading
import time
from dataclasses import dataclass
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Callable

LOGGER_NAME = "bandmate.serve"
WATCH_S = 0.1
"""How often the watchdog looks at the stream and the audio clock."""
SLOW_DRIVER_S = 10.0
"""A driver call (close, open) taking longer than this is logged while it is waited for."""
MAX_SCHEDULE_WAIT_S = 30.0
"""The scene scheduler looks at the wall clock at least this often (the clock may be set)."""


# ---- the schedule ---------------------------------------------------------------------------
_AT = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$")


@dataclass(frozen=True, slots=True)
class Cue:
    """One scheduled scene change: `at_s` seconds after local midnight, every day."""
    at_s: int
    scene: str

    @property
    def at(self) -> str:
        h, rest = divmod(self.at_s, 3600)
        m, s = divmod(rest, 60)
        return f"{h:02d}:{m:02d}" + (f":{s:02d}" if s else "")


def _seconds_of(at, where: str) -> int:
    if isinstance(at, dt.time):                      # TOML's own local time: at = 08:00:00
        return at.hour * 3600 + at.minute * 60 + at.second
    m = _AT.match(at) if isinstance(at, str) else None
    if m is None:
        raise ValueError(f"{where}: at must be a time of day \"HH:MM\" or \"HH:MM:SS\" "
                         f"(00:00..23:59:59), got {at!r}")
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + int(m.group(3) or 0)


def parse_schedule(entries) -> tuple[Cue, ...]:
    """The cues of a [serve] schedule: a list of `{ at = "HH:MM", scene = "NAME" }` tables,
    each time at most once; sorted by time. Raises ValueError saying which entry is wrong."""
    if not isinstance(entries, list):
        raise ValueError(f"must be a list of {{ at = \"08:00\", scene = \"NAME\" }} tables, "
                         f"got {entries!r}")
    cues: dict[int, Cue] = {}
    for i, entry in enumerate(entries, 1):
        where = f"entry {i}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: must be a table {{ at = \"08:00\", scene = \"NAME\" }}, "
                             f"got {entry!r}")
        unknown = sorted(set(entry) - {"at", "scene"})
        if unknown:
            raise ValueError(f"{where}: unknown key {unknown[0]!r} (keys: at, scene)")
        if "at" not in entry or "scene" not in entry:
            raise ValueError(f"{where}: needs both at and scene")
        at_s = _seconds_of(entry["at"], where)
        scene = entry["scene"]
        if not isinstance(scene, str) or not scene.strip():
            raise ValueError(f"{where}: scene must be a scene's name, got {scene!r}")
        if at_s in cues:
            raise ValueError(f"{where}: {Cue(at_s, scene).at} is already the time of "
                             f"scene {cues[at_s].scene!r}")
        cues[at_s] = Cue(at_s, scene)
    return tuple(sorted(cues.values(), key=lambda c: c.at_s))


class SceneSchedule:
    """Daily scene changes at local wall-clock times."""

    def __init__(self, entries):
        self.cues = parse_schedule(entries)

    @staticmethod
    def _midnight(now: dt.datetime) -> dt.datetime:
        return now.replace(hour=0, minute=0, second=0, microsecond=0)

    def in_force(self, now: dt.datetime) -> tuple[dt.datetime, Cue] | None:
        """(when it took effect, cue) of the scene the schedule puts in force at `now`: the
        last cue at or before `now` today, else yesterday's last one. None: no schedule."""
        if not self.cues:
            return None
        midnight = self._midnight(now)
        since = (now - midnight).total_seconds()
        past = [c for c in self.cues if c.at_s <= since]
        if past:
            return midnight + dt.timedelta(seconds=past[-1].at_s), past[-1]
        last = self.cues[-1]
        return midnight - dt.timedelta(days=1) + dt.timedelta(seconds=last.at_s), last

    def next_change(self, now: dt.datetime) -> dt.datetime | None:
        """When the next cue after `now` takes effect (None: no schedule)."""
        if not self.cues:
            return None
        midnight = self._midnight(now)
        since = (now - midnight).total_seconds()
        for c in self.cues:
            if c.at_s > since:
                return midnight + dt.timedelta(seconds=c.at_s)
        return midnight + dt.timedelta(days=1, seconds=self.cues[0].at_s)


class SceneScheduler:
    """Recalls the schedule's scenes through `recall(name)` (the session's `recall_scene`):
    the scene in force at start, then each cue as its time comes. A scene that cannot be
    recalled is logged and counted, and the music plays on unchanged."""

    def __init__(self, schedule: SceneSchedule, recall: Callable[[str], object], log=print,
                 now: Callable[[], dt.datetime] = dt.datetime.now):
        self.schedule = schedule
        self.recall = recall
        self.log = log
        self.now = now
        self.scene: str | None = None     # the last scene the schedule recalled
        self.changes = 0
        self.errors = 0
        self._applied: dt.datetime | None = None

    def check(self) -> str | None:
        """Recall the cue in force now unless it was recalled already; returns its scene."""
        hit = self.schedule.in_force(self.now())
        if hit is None or hit[0] == self._applied:
            return None
        self._applied, cue = hit
        try:
            self.recall(cue.scene)
        except Exception as exc:  # noqa: BLE001 - a bad scene must not stop an installation
            self.errors += 1
            self.log(f"scene {cue.scene!r} (scheduled at {cue.at}) not recalled: "
                     f"{_one_line(exc)}")
            return None
        self.changes += 1
        self.scene = cue.scene
        self.log(f"scene {cue.scene} (scheduled at {cue.at})")
        return cue.scene

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            self.check()
            now = self.now()
            nxt = self.schedule.next_change(now)
            wait_s = MAX_SCHEDULE_WAIT_S if nxt is None else \
                min(MAX_SCHEDULE_WAIT_S, max(0.05, (nxt - now).total_seconds()))
            await _sleep_unless(stopping, wait_s)


# ---- the log ----------------------------------------------------------------------------------
def _one_line(what) -> str:
    return " | ".join(line for line in str(what).splitlines() if line.strip())


class EventLog:
    """One line per event on the `bandmate.serve` logger; callable like `print`."""

    def __init__(self, logger: logging.Logger):
        self.logger = logger

    def __call__(self, text) -> None:
        self.logger.info(_one_line(text))

    def warning(self, text) -> None:
        self.logger.warning(_one_line(text))


def event_log(serve_cfg: dict) -> EventLog:
    """The serve log: a RotatingFileHandler on `log_file` (rolled at `log_max_bytes`, keeping
    `log_backups` old files), or standard error when `log_file` is empty (systemd's journal)."""
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    path = serve_cfg["log_file"]
    if path:
        path = Path(path).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = RotatingFileHandler(path, maxBytes=serve_cfg["log_max_bytes"],
                                      backupCount=serve_cfg["log_backups"], encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return EventLog(logger)


def rss_bytes() -> int:
    """This process's resident memory (psutil)."""
    import psutil
    return int(psutil.Process().memory_info().rss)


# ---- the audio watchdog ----------------------------------------------------------------------
class AudioWatchdog:
    """Keeps the audio running under `run` (a LiveRun): when its stream stops, close it,
    release every note, and reopen the driver with `reopen(state)` (retried with backoff,
    `backoff_s` = (first, longest) wait); then `on_open(stream)` (hooks) and on it goes."""

    def __init__(self, run, reopen: Callable, log=print, stall_s: float = 5.0,
                 backoff_s: tuple[float, float] = (1.0, 30.0),
                 on_open: Callable | None = None, clock: Callable[[], float] = time.monotonic):
        self.run = run
        self.reopen = reopen
        self.log = log
        self.stall_s = float(stall_s)
        self.backoff_s = backoff_s
        self.on_open = on_open
        self.clock = clock
        self.restarts = 0          # successful reopenings
        self.failed_attempts = 0   # reopenings that failed (retried)
        self.down_s = 0.0          # time without audio in all
        self._last_sample = -1
        self._last_move = clock()

    def stopped(self) -> str | None:
        """Why the audio has stopped, or None while it runs."""
        stream = self.run.stream
        if not getattr(stream, "alive", True):
            return "the audio stream ended (device or server gone)"
        now = self.clock()
        sample = self.run.session.state.sample_time
        if sample != self._last_sample:
            self._last_sample, self._last_move = sample, now
            return None
        if now - self._last_move >= self.stall_s:
            return f"the audio clock has not advanced for {now - self._last_move:.1f} s"
        return None

    async def watch(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            why = self.stopped()
            if why is not None:
                await self.restart(why, stopping)
            await _sleep_unless(stopping, WATCH_S)

    def _release_notes(self) -> None:
        """Nothing may stick: every note off from the first block of the new stream, and
        the player's held chord forgotten (its JACK connection went with the server)."""
        session = self.run.session
        try:
            session.release_all()
        except Exception as exc:  # noqa: BLE001 - a full queue: panic comes from shutdown
            self.log(f"audio watchdog: could not queue note-offs: {_one_line(exc)}")
        if session.conductor is not None:
            from engine.drivers.jack import JACK_MIDI_SOURCE
            session.conductor.source_gone(JACK_MIDI_SOURCE)

    async def _driver_call(self, what: str, fn, *args):
        """`fn(*args)` on a thread of its own, so a driver that hangs (a JACK server that
        stopped answering) never blocks this loop: it is waited for, logged every
        SLOW_DRIVER_S, and raises what `fn` raises. One call at a time: the old stream is
        closed before a new one opens, so two streams never render the same state."""
        fut = _in_thread(fn, *args)
        waited = 0.0
        while True:
            try:
                done, _ = await asyncio.wait({fut}, timeout=SLOW_DRIVER_S)
            except asyncio.CancelledError:
                fut.cancel()                # what it opens later is closed (_in_thread)
                raise
            if done:
                return fut.result()
            waited += SLOW_DRIVER_S
            self.log(f"audio watchdog: still waiting for the driver to {what} "
                     f"({waited:.0f} s)")

    async def restart(self, why: str, stopping: asyncio.Event) -> bool:
        """Close the stream and reopen the driver until it works (or `stopping` is set)."""
        t0 = self.clock()
        self.log(f"audio stopped: {why}; restarting the audio driver")
        old, self.run.stream = self.run.stream, NO_STREAM     # shutdown meanwhile: nothing
        try:                                                 # to close twice
            await self._driver_call("close the stream", old.close)
        except Exception as exc:  # noqa: BLE001 - a dead stream may fail to close
            self.log(f"audio watchdog: closing the old stream: {_one_line(exc)}")
        self._release_notes()
        first, longest = self.backoff_s
        delay = min(first, longest)
        attempt = 0
        while not stopping.is_set():
            attempt += 1
            try:
                stream = await self._driver_call("open", self.reopen, self.run.session.state)
            except Exception as exc:  # noqa: BLE001 - no server yet, device busy: retry
                self.failed_attempts += 1
                self.log(f"audio restart attempt {attempt} failed: {_one_line(exc)}; "
                         f"next in {delay:g} s")
                await _sleep_unless(stopping, delay)
                delay = min(delay * 2.0, longest)
                continue
            if stopping.is_set():           # stopped while it opened: shutdown is done
                stream.close()
                return False
            self.run.stream = stream
            self.restarts += 1
            down = self.clock() - t0
            self.down_s += down
            self._last_sample, self._last_move = self.run.session.state.sample_time, self.clock()
            if self.on_open is not None:
                self.on_open(stream)
            self.log(f"audio restarted (restart {self.restarts}, {down:.1f} s without audio)")
            return True
        return False


class _NoStream:
    """Stands in for the stream while the watchdog replaces it (closing it does nothing)."""
    alive = False
    xruns = None

    def close(self) -> None:
        pass


NO_STREAM = _NoStream()


def _in_thread(fn, *args) -> asyncio.Future:
    """A future for `fn(*args)` run on a daemon thread (a hung call never blocks the loop or
    the process's exit). A stream it opens after its future was cancelled, or after the loop
    closed, is closed at once: nobody would ever close it, and it would render the state."""
    loop = asyncio.get_running_loop()
    fut = loop.create_future()

    def settle(result, exc):
        if fut.cancelled():
            if result is not None and hasattr(result, "close"):
                result.close()
        elif exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)

    def work():
        result, exc = None, None
        try:
            result = fn(*args)
        except BaseException as e:  # noqa: BLE001 - handed to the awaiting task
            exc = e
        try:
            loop.call_soon_threadsafe(settle, result, exc)
        except RuntimeError:              # the loop is closed: the run is over
            if result is not None and hasattr(result, "close"):
                result.close()

    threading.Thread(target=work, name="bandmate-audio-driver", daemon=True).start()
    return fut


# ---- the MIDI recording, rolled ---------------------------------------------------------------
class MidiRoller:
    """Hands the session's recorded notes to a MIDI file every roll (`folder` empty: drops
    them), keeping the newest `keep` files, so the recording never grows with the run."""

    PATTERN = "bandmate-*.mid"

    def __init__(self, session, folder: str, keep: int, log=print):
        self.session = session
        self.folder = Path(folder).expanduser() if folder else None
        self.keep = int(keep)
        self.log = log
        self.files = 0
        self.dropped_notes = 0
        self._origin_s = session.state.sample_time / session.sample_rate

    def roll(self, when: dt.datetime | None = None) -> Path | None:
        """Write (or drop) the notes recorded since the last roll; returns the file."""
        session = self.session
        now_s = session.state.sample_time / session.sample_rate
        notes = session.recorder.take()
        origin, self._origin_s = self._origin_s, now_s
        if self.folder is None:
            self.dropped_notes += len(notes)
            return None
        when = when or dt.datetime.now()
        path = self.folder / f"bandmate-{when:%Y%m%d-%H%M%S}.mid"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            session.recorder.write(path, session.clock.bpm, notes, origin_s=origin)
        except (OSError, ValueError) as exc:
            self.dropped_notes += len(notes)
            self.log(f"MIDI recording not written to {path}: {_one_line(exc)}")
            return None
        self.files += 1
        for old in sorted(self.folder.glob(self.PATTERN))[:-self.keep]:
            try:
                old.unlink()
            except OSError as exc:
                self.log(f"could not remove the old recording {old}: {_one_line(exc)}")
        self.log(f"wrote {path} ({len(notes)} notes)")
        return path

    async def run(self, stopping: asyncio.Event, every_s: float) -> None:
        while not stopping.is_set():
            await _sleep_unless(stopping, every_s)
            if not stopping.is_set():
                self.roll()


# ---- the installation -------------------------------------------------------------------------
def status_line(run, watchdog: AudioWatchdog, scenes: SceneScheduler | None,
                started: float) -> str:
    """One status line: uptime, position, scene, audio health, memory."""
    session = run.session
    c = session.state.counters()
    up = int(time.monotonic() - started)
    bar = session.clock.bar_at(session.clock.beat_at(session.state.sample_time))
    driver_xruns = getattr(run.stream, "xruns", None)
    scene = scenes.scene if scenes is not None and scenes.scene else "-"
    return (f"status: up {up // 3600}h{up % 3600 // 60:02d}m, bar {bar + 1}, "
            f"tempo {session.clock.bpm:g}, scene {scene}, voices {c['voices']}, "
            f"xruns {c['xruns']}" + (f" (driver {driver_xruns})" if driver_xruns is not None
                                     else "") +
            f", late {c['late_events']}, dropped {c['dropped_events']}, "
            f"audio restarts {watchdog.restarts}, rss {rss_bytes() / 2**20:.1f} MB")


class Installation:
    """A serve run: `run` (a LiveRun on a started stream) plus the schedule, the watchdog, the
    status lines and the rolled recording of `cfg["serve"]`. `reopen(state)` opens the driver
    again on the session's state (engine.commands.reopen_stream); `now` is the wall clock."""

    def __init__(self, run, cfg: dict, reopen: Callable, log=print,
                 on_open: Callable | None = None,
                 now: Callable[[], dt.datetime] = dt.datetime.now):
        serve = cfg["serve"]
        self.run = run
        self.cfg = cfg
        self.log = log
        self.watchdog = AudioWatchdog(run, reopen, log, serve["stall_s"],
                                      (serve["restart_min_s"], serve["restart_max_s"]),
                                      on_open)
        self.schedule = SceneSchedule(serve["schedule"])
        self.scenes = SceneScheduler(self.schedule, run.session.recall_scene, log, now) \
            if self.schedule.cues else None
        self.roller = MidiRoller(run.session, serve["midi_dir"], serve["midi_keep"], log)
        self.started = time.monotonic()

    def _check_scene_names(self) -> None:
        """Say at start (not at 22:00) which scheduled scenes the scene file lacks."""
        if not self.schedule.cues:
            return
        try:
            known = set(self.run.session.scenes())
        except Exception as exc:  # noqa: BLE001 - a broken scene file: said, and played on
            self.log(f"schedule: the scene file cannot be read: {_one_line(exc)}")
            return
        missing = sorted({c.scene for c in self.schedule.cues} - known)
        if missing:
            self.log(f"schedule: no scene {', '.join(map(repr, missing))} in "
                     f"{self.run.session.scenes_path()} (scenes: {', '.join(sorted(known))})")

    async def _status(self, stopping: asyncio.Event) -> None:
        every = self.cfg["serve"]["status_every_s"]
        while not stopping.is_set():
            await _sleep_unless(stopping, every)
            if not stopping.is_set():
                self.log(status_line(self.run, self.watchdog, self.scenes, self.started))

    async def run_for(self, seconds: float | None = None, extra=()) -> None:
        """Run until stopped (SIGINT/SIGTERM, `run.stop()`) or for `seconds`; then the
        LiveRun's clean shutdown, and the last of the recording rolled into its file."""
        stopping = self.run.stopping
        tasks = [self.watchdog.watch(stopping), self._status(stopping),
                 self.roller.run(stopping, self.cfg["serve"]["midi_roll_s"]), *extra]
        if self.scenes is not None:
            tasks.append(self.scenes.run(stopping))
        self.log(f"serving: {self.run.session.clock.bpm:g} BPM, "
                 f"{self.cfg['band']['style']}, schedule of {len(self.schedule.cues)} scenes")
        self._check_scene_names()
        try:
            await self.run.run(seconds, tasks)
        finally:
            self.roller.roll()
            self.log(f"stopped: {status_line(self.run, self.watchdog, self.scenes, self.started)}")


async def _sleep_unless(stopping: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds`, or less if `stopping` is set meanwhile."""
    try:
        await asyncio.wait_for(stopping.wait(), seconds)
    except asyncio.TimeoutError:
        pass
