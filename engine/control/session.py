"""A session: the engine state, the clock, the band and its conductor, wired together
(control side). The same Session renders offline (`render`) or runs live (`engine.control.live`),
so an offline render and a live run with the same seed produce the same events.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from engine.agents.arrangement import Band, DemoSong
from engine.agents.base import LiveContext
from engine.agents.bass import BassAgent
from engine.agents.chords import ChordAgent
from engine.agents.drums import DrumAgent
from engine.agents.lead import LeadAgent
from engine.control.clock import Clock
from engine.control.scheduler import Played, Scheduler
from engine.control.state import EngineState, QueueFull
from engine.parts import PART_INDEX, PARTS
from engine.patch import read_patch
from engine.tomldata import DataError
from engine.patterns.pattern import silence
from engine.control.graph import Graph, check_spec, spec_from_config
from engine.rt import master
from engine.rt import layout as L
from engine.rt.param import Param
from engine.rt.events import (
    ASAP, FX_MASTER, K_ALL_NOTES_OFF, K_FX, K_NOTE_ON, K_PANIC, K_TEMPO,
)

TEMPO_ADDRESS = "/transport/tempo_bpm"
# the session's own controls beside the graph's units: the master limiter and the tempo
CONTROL_PARAMS = {"/master/limiter/gain_db": Param("gain_db", -60.0, 24.0, -2.0),
                  "/master/limiter/ceiling_db": Param("ceiling_db", -24.0, 0.0, -1.0),
                  TEMPO_ADDRESS: Param("tempo_bpm", 20.0, 400.0, 120.0)}


@dataclass
class Recorder:
    """Every note played in the session, for the MIDI file written at the end."""
    notes: list[Played] = field(default_factory=list)
    _open: dict = field(default_factory=dict)

    def add(self, played: Played) -> None:
        self.notes.append(played)

    def player_note(self, kind: int, note: int, velocity: float, seconds: float,
                    source: int) -> None:
        key = (source, note)
        if kind == K_NOTE_ON:
            if key in self._open:
                self._close(key, seconds)
            self._open[key] = (seconds, velocity)
        else:
            self._close(key, seconds)

    def _close(self, key, seconds: float) -> None:
        start = self._open.pop(key, None)
        if start is not None:
            self.notes.append(Played(start[0], max(seconds - start[0], 1e-3), "keys", key[1],
                                     start[1]))

    def finish(self, seconds: float) -> None:
        for key in list(self._open):
            self._close(key, seconds)

    def write(self, path: Path, tempo_bpm: float) -> None:
        from controllers.midifile import write_performance
        notes = sorted(self.notes, key=lambda n: (n.start_s, n.part, n.note))
        write_performance(path, [(n.start_s, n.dur_s, n.part, n.note, n.velocity)
                                 for n in notes], tempo_bpm)


class Conductor:
    """Follows the player: held notes → chords for the band, playing strength → intensity.
    Runs on the asyncio thread (live) or in the offline loop."""

    def __init__(self, ctx: LiveContext, clock: Clock, scheduler: Scheduler):
        self.ctx = ctx
        self.clock = clock
        self.scheduler = scheduler
        self.held: dict[int, set[int]] = {}
        self.chord = None

    def note(self, kind: int, note: int, velocity: float, at_sample: int, source: int,
             horizon: Fraction | None = None) -> None:
        """A player's note-on/off. `horizon`: the beat from which harmony may change (default:
        the scheduler's cursor, i.e. what it has not yet scheduled)."""
        notes = self.held.setdefault(source, set())
        if kind == K_NOTE_ON:
            notes.add(note)
            self.ctx.intensity = 0.8 * self.ctx.intensity + 0.2 * (0.3 + 0.7 * velocity)
        else:
            notes.discard(note)
        self._harmony(horizon)

    def source_gone(self, source: int, horizon: Fraction | None = None) -> None:
        self.held.pop(source, None)
        self._harmony(horizon)

    def _harmony(self, horizon: Fraction | None) -> None:
        horizon = self.scheduler.cursor if horizon is None else max(horizon, self.scheduler.cursor)
        held = set().union(*self.held.values()) if self.held else set()
        if held:
            chord = self.ctx.harmony.update(sorted(held), horizon)
            if chord is not None:
                self.chord = chord
        else:
            self.ctx.harmony.release(horizon)


class Session:
    """Everything one run needs. `demo=True` plays the arranged demo song; otherwise a jam
    where the band follows the player (config [band])."""

    def __init__(self, cfg: dict, sample_rate: int, demo: bool = False, root: Path | None = None):
        band_cfg = cfg["band"]
        self.cfg = cfg
        self.root = root or Path.cwd()
        self.sample_rate = int(sample_rate)
        self.polyphony = {"keys": cfg["audio"]["polyphony_keys"]}
        seed, style = band_cfg["seed"], band_cfg["style"]
        self.demo = demo
        if demo:
            song = DemoSong(style, tempo_bpm=band_cfg["tempo_bpm"])
            self.song = song
            self.band = song.band(seed)
            self.ctx = song.context(seed)
            self.length_s = song.duration_s
        else:
            self.song = None
            agents = [a for on, a in ((band_cfg["drums"], DrumAgent(style, seed)),
                                      (band_cfg["bass"], BassAgent(seed, style)),
                                      (band_cfg["chords"], ChordAgent(seed, style)),
                                      (band_cfg["lead"], LeadAgent(seed, style))) if on]
            # (no agent at all: the player alone; Band() with none would mean "all of them")
            self.band = Band(seed, style, *agents) if agents else silence()
            self.ctx = LiveContext(seed=seed, beats_per_bar=band_cfg["beats_per_bar"],
                                   style=style)
            self.length_s = None
        self.clock = Clock(self.sample_rate, band_cfg["tempo_bpm"], band_cfg["beats_per_bar"],
                           band_cfg["swing"])
        self.recorder = Recorder()
        self.scheduler = Scheduler(self.clock, self.band, self.ctx, self._send,
                                   band_cfg["lookahead_ms"] / 1000.0, on_played=self.recorder.add)
        self.conductor = Conductor(self.ctx, self.clock, self.scheduler) if not demo else None
        self.mapper = None      # the live input's MIDI mapper (engine.control.mapping), if any
        self._prepare()
        from engine.control.midi_out import MidiOut
        # config [midi_out]: parts on external synths, MIDI clock (None: nothing routed); its
        # sink is attached by the driver (engine.commands)
        self.midi_out = MidiOut.from_config(cfg, self.clock, self.sample_rate,
                                            self.scheduler.lookahead,
                                            now=lambda: self.state.sample_time)

    # ---- prepare time: write settings straight into the (not yet running) engine ------------
    def _prepare(self) -> None:
        self.patches = {part: read_patch(self.root / rel)
                        for part, rel in self.cfg["patches"].items() if rel}
        for part, patch in self.patches.items():
            self._check_engine(part, patch)
        mix = self.cfg["mix"]
        self.state = EngineState(self.sample_rate,
                                 spec_from_config(mix, self.patches, self.polyphony))
        self.graph = self.state.graph
        a = self.state.arrays
        a[L.S_MASTER_PARAMS][master.LIMITER_CEILING_DB] = mix["ceiling_db"]
        a[L.S_MASTER_PARAMS][master.MASTER_GAIN_DB] = mix["master_gain_db"]
        a[L.S_MASTER_PARAMS][master.LIMITER_MODE] = master.LIMITER_MODES[mix["limiter"]]
        a[L.S_GLOBAL][L.GL_TEMPO_BPM] = self.clock.bpm

    # ---- runtime controls (any time; through the queue) ----------------------------------------
    def advance(self, now_sample: int) -> None:
        """Schedule the band (and the MIDI clock) up to `now_sample` + the look-ahead."""
        self.scheduler.advance(now_sample)
        if self.midi_out is not None:
            self.midi_out.advance(now_sample, self.scheduler.cursor)

    def _send(self, rows: np.ndarray) -> None:
        if self.midi_out is not None:       # routed parts' notes to MIDI out
            rows = self.midi_out.route_rows(rows)
            if not len(rows):
                return
        if self.state.push_sched_rows(rows) != len(rows):
            raise QueueFull("the audio thread is not draining the scheduler queue")

    def set(self, address: str, value, time: float = ASAP) -> float:
        """Any parameter by its one address, checked, applied from the next block or from the
        sample `time` (smoothed where it is continuous): the graph's units
        (`/bass/synth/cutoff_hz`, `/bass/mix/pan`, `/bass/eq/low_cut_hz`,
        `/sends/reverb/reverb/decay_s`, `/master/eq/...`), the master's limiter
        (`/master/limiter/ceiling_db`) and the tempo (`/transport/tempo_bpm`, from the next beat
        not yet scheduled, whatever `time`). `addresses()` lists them all, `param(address)`
        gives each one's range, unit and curve, `value(address)` its current value."""
        if address in CONTROL_PARAMS:
            q = CONTROL_PARAMS[address]
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not q.lo <= value <= q.hi:
                raise ValueError(f"{address}: must be {q.lo:g}..{q.hi:g}, got {value!r}")
            if address == TEMPO_ADDRESS:
                self.set_tempo(float(value))
                return float(value)
            name = address.rsplit("/", 1)[1]
            self.state.push_sched(time, K_FX, FX_MASTER, master.MASTER_PARAM_NAMES[name],
                                  float(value))
            return float(value)
        parts = address.strip("/").split("/")
        if parts[:2] == ["master", "limiter"] and len(parts) == 3:
            raise KeyError(f"{address}: the limiter has gain_db, ceiling_db (its mode is "
                           f"set before a stream starts)")
        return self.graph.set(address, value, time)

    def param(self, address: str) -> Param:
        """The Param (range, default, curve, choices) of an address; KeyError if none."""
        if address in CONTROL_PARAMS:
            return CONTROL_PARAMS[address]
        return self.graph.program.resolve(address)[1]

    def value(self, address: str) -> float:
        """The current value (the target, where it glides) of an address; KeyError if none."""
        if address == TEMPO_ADDRESS:
            return float(self.clock.bpm)
        if address in CONTROL_PARAMS:
            name = address.rsplit("/", 1)[1]
            return float(self.state.arrays[L.S_MASTER_PARAMS][master.MASTER_PARAM_NAMES[name]])
        return self.graph.program.value_of(address)

    def addresses(self) -> list[str]:
        """Every parameter's address."""
        return sorted(list(self.graph.addresses()) + list(CONTROL_PARAMS))

    def set_fx(self, module: int, index: int, value: float) -> None:
        self.state.push_sched(ASAP, K_FX, module, index, value)

    def load_patch(self, part: str, path: Path) -> None:
        """Load a patch onto a part while playing. The file is validated first: a broken one
        raises DataError (file, line, field) and nothing changes. A changed patch is a graph
        swap, crossfaded: the part's instrument keeps its voices where the engine stays the same
        (its changed values glide from the old ones), a new engine or insert chain takes over
        within the crossfade (GraphBusy if the last swap is still fading: try again a moment
        later)."""
        patch = read_patch(path)
        self._check_engine(part, patch)
        patches = dict(self.patches, **{part: patch})
        spec = spec_from_config(self.cfg["mix"], patches, self.polyphony)
        if check_spec(spec)["parts"][part] != self.graph.spec["parts"][part]:
            self.graph.swap(spec)
        self.patches = patches

    @staticmethod
    def _check_engine(part: str, patch) -> None:
        where = f"{patch.path}: [patch] engine"
        if part != "drums" and patch.engine == "kit":
            raise DataError(f"{where}: a kit patch is for the drums part, not {part}")

    def set_tempo(self, bpm: float) -> None:
        """From the next beat not yet scheduled: nothing already scheduled moves."""
        at = Fraction(int(self.scheduler.cursor) + 1)
        self.clock.set_tempo(bpm, at)
        self.state.push_sched(self.clock.sample_at(at), K_TEMPO, -1, 0.0, bpm)

    def release_all(self) -> None:
        self.state.push_sched(ASAP, K_ALL_NOTES_OFF, -1)
        if self.midi_out is not None:       # and every note on the external synths
            self.midi_out.cut_all()

    def panic(self) -> None:
        self.state.push_sched(ASAP, K_PANIC, -1)
        if self.midi_out is not None:
            self.midi_out.cut_all()

    # ---- the player's notes --------------------------------------------------------------------
    def player_note(self, kind: int, note: int, velocity: float, at_sample: int, source: int,
                    horizon: Fraction | None = None) -> None:
        """A note the player played (any input path): follows harmony and records it."""
        seconds = max(at_sample, 0) / self.sample_rate
        self.recorder.player_note(kind, note, velocity, seconds, source)
        if self.conductor is not None:
            self.conductor.note(kind, note, velocity, at_sample, source, horizon)

    # ---- files ---------------------------------------------------------------------------------
    def write_midi(self, path: Path) -> Path:
        self.recorder.finish(self.state.sample_time / self.sample_rate)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.recorder.write(path, self.clock.bpm)
        return path

