"""A session: the engine state, the clock, the band and its conductor, wired together
(control side). The same Session renders offline (`render`) or runs live (`engine.control.live`),
so an offline render and a live run with the same seed produce the same events.

The session's one address space (`set`, `param`, `value`, `addresses`): the graph's units
(`/bass/synth/cutoff_hz`, `/bass/mix/pan`, ...), the mixer's mute and solo per part, the master
limiter, the transport (`/transport/tempo_bpm`, `/transport/playing`) and the band's steering
(`/band/style`, `/band/energy`, `/band/swing`, `/band/key`, `/band/memory`: the progression
memory, `/PART/agent/on|density|octave`, `/lead/agent/answer`: engine.agents.steer) with the
arpeggiator's `/arp/...` (engine.agents.arp). Scenes (engine.control.scenes) are named sets of
address -> value.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from engine.agents.arrangement import Band, DemoSong
from engine.agents.base import MEMORY, LiveContext
from engine.harmony import LiveHarmony, detect_chord
from engine.agents.bass import BassAgent
from engine.agents.chords import ChordAgent
from engine.agents.drums import DrumAgent
from engine.agents.answer import ANSWER, AnswerAgent, CallResponse
from engine.agents.arp import (ARP_AT_BAR, ARP_INPUT, ARP_PARAMS, CONFIG_KEYS, INPUTS,
                               Arpeggiator, ArpLayer)
from engine.agents.lead import LeadAgent
from engine.agents.steer import (AGENT_PARTS, PLAYING, STEER_PARAMS, SteeredBand, Steering,
                                 WHOLE, check_value)
from engine.control import midi_out
from engine.control.clock import Clock
from engine.listen.key import KeyTracker
from engine.meter import Meter, parse_jam_meter
from engine.listen.progression import ProgressionMemory
from engine.control.scheduler import Played, Scheduler
from engine.control.state import EngineState, QueueFull
from engine.parts import KEYS, PART_INDEX, PARTS
from engine.patch import read_patch
from engine.patterns.play import PatternParts
from engine.tomldata import DataError
from engine.control.graph import Graph, check_spec, spec_from_config
from engine.rt import master
from engine.rt import layout as L
from engine.rt.param import Param
from engine.rt.events import (
    ASAP, FX_MASTER, K_ALL_NOTES_OFF, K_FX, K_NOTE_OFF, K_NOTE_ON, K_PANIC, K_TEMPO,
)

TEMPO_ADDRESS = "/transport/tempo_bpm"
SWING_ADDRESS = "/band/swing"
TAP_ADDRESS = "/transport/tap"      # any value > 0 is one tap of tap tempo (engine.control.sync)
# the session's own controls beside the graph's units: the master limiter, tempo, swing, tap
CONTROL_PARAMS = {"/master/limiter/gain_db": Param("gain_db", -60.0, 24.0, -2.0),
                  "/master/limiter/ceiling_db": Param("ceiling_db", -24.0, 0.0, -1.0),
                  TEMPO_ADDRESS: Param("tempo_bpm", 20.0, 400.0, 120.0),
                  SWING_ADDRESS: Param("swing", 0.0, 0.5, 0.0, smooth_s=0.0,
                                       doc="delay of the off-beat eighths, from the next beat"),
                  TAP_ADDRESS: Param("tap", 0.0, 1.0, 0.0, smooth_s=0.0,
                                     doc="a value > 0 is one tap of tap tempo")}
#: /PART/mix/solo: beside the strip's own mute (the session mutes every part not soloed)
SOLO_PARAM = Param("solo", 0, 1, 0, curve="choice", choices=("off", "on"), smooth_s=0.0,
                   doc="only the soloed parts sound (mute still mutes a soloed part)")
GLIDE_STEP_S = 0.01     # a glide (a faded scene) sends a value this often; the units smooth it
MAX_NUDGE_S = 0.012     # the agents' largest humanising offset (engine.agents: +-12 ms)


def gliding(address: str, q: Param) -> bool:
    """Whether a fade glides `address` (a continuous value) or switches it (a choice, a whole
    number, the tempo, the swing, a tap)."""
    return q.curve != "choice" and address not in WHOLE \
        and address not in (TEMPO_ADDRESS, SWING_ADDRESS, TAP_ADDRESS)


@dataclass
class Recorder:
    """Every note played in the session, for the MIDI file written at the end."""
    notes: list[Played] = field(default_factory=list)
    _open: dict = field(default_factory=dict)

    def add(self, played: Played) -> None:
        self.notes.append(played)

    def take(self) -> list[Played]:
        """The notes recorded so far, handed over and forgotten (a run of days rolls them into
        files: engine.control.serve.MidiRoller). Notes still held stay open."""
        notes, self.notes = self.notes, []
        return notes

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

    def write(self, path: Path, tempo_bpm: float, notes: list[Played] | None = None,
              origin_s: float = 0.0) -> None:
        """`notes` (default: every note recorded) as a MIDI file whose time 0 is `origin_s`
        seconds into the session."""
        from controllers.midifile import write_performance
        notes = sorted(self.notes if notes is None else notes,
                       key=lambda n: (n.start_s, n.part, n.note))
        write_performance(path, [(max(n.start_s - origin_s, 0.0), n.dur_s, n.part, n.note,
                                  n.velocity) for n in notes], tempo_bpm)


class Conductor:
    """Follows the player: held notes → chords for the band, playing strength → intensity.
    Runs on the asyncio thread (live) or in the offline loop."""

    def __init__(self, ctx: LiveContext, clock: Clock, scheduler: Scheduler):
        self.ctx = ctx
        self.clock = clock
        self.scheduler = scheduler
        self.held: dict[int, set[int]] = {}
        self.chord = None
        self.follow_harmony = True   # False: the harmony is known ahead (a score), not heard
        self.keys = KeyTracker()     # the key heard in the player's notes (hysteresis)
        self._onsets: dict[tuple[int, int], Fraction] = {}

    def note(self, kind: int, note: int, velocity: float, at_sample: int, source: int,
             horizon: Fraction | None = None) -> None:
        """A player's note-on/off. `horizon`: the beat from which harmony may change (default:
        the scheduler's cursor, i.e. what it has not yet scheduled)."""
        notes = self.held.setdefault(source, set())
        beat = self.clock.beat_at(max(at_sample, 0))
        if kind == K_NOTE_ON:
            notes.add(note)
            self.ctx.intensity = 0.8 * self.ctx.intensity + 0.2 * (0.3 + 0.7 * velocity)
            self._onsets[source, note] = beat
        else:
            notes.discard(note)
            start = self._onsets.pop((source, note), None)
            if start is not None:
                self._key(note, beat - start, start, horizon)
        if self.ctx.answer is not None:
            self.ctx.answer.note(kind == K_NOTE_ON, note, velocity, beat, self.scheduler.cursor
                                 if horizon is None else max(horizon, self.scheduler.cursor),
                                 self.ctx)
        self._harmony(horizon)
        self._remember(kind == K_NOTE_ON, beat)

    def _remember(self, pressed: bool, beat: Fraction) -> None:
        """The progression memory hears the chord hand at `beat`: the chord a key pressed
        makes (or None: no chord), or None once keys let go leave no chord."""
        memory = self.ctx.memory
        if memory is None or not self.follow_harmony:
            return
        held = set().union(*self.held.values()) if self.held else set()
        chord = detect_chord(sorted(held))
        if pressed or chord is None:
            memory.hear(chord, beat)

    def tick(self, end_sample: int) -> None:
        """Before each scheduler query (its look-ahead ending at `end_sample`): the progression
        memory judges the time heard so far and locks or lets go of a loop from the first beat
        the scheduler has not queried."""
        memory = self.ctx.memory
        if memory is None or not self.follow_harmony:
            return
        now = self.clock.beat_at(max(end_sample - self.scheduler.lookahead, 0))
        memory.tick(now, self.scheduler.cursor)

    def _key(self, note: int, dur: Fraction, start: Fraction,
             horizon: Fraction | None) -> None:
        """A finished note feeds the key tracker; a new key is in force from the next bar the
        scheduler has not queried (a score brings its keys ahead instead)."""
        if not self.follow_harmony:
            return
        before = self.keys.key
        key = self.keys.add(note, float(dur), float(start))
        if key != before:
            horizon = self.scheduler.cursor if horizon is None else \
                max(horizon, self.scheduler.cursor)
            self.ctx.keys = tuple(k for k in self.ctx.keys if k[0] < horizon) + \
                ((self.clock.next_bar(horizon), key),)

    def source_gone(self, source: int, horizon: Fraction | None = None) -> None:
        gone = self.held.pop(source, set())
        if self.ctx.answer is not None:
            self.ctx.answer.forget_held(gone)
        self._harmony(horizon)
        # the memory hears its keys let go (at the first beat not scheduled: no sample time)
        self._remember(False, self.scheduler.cursor if horizon is None
                       else max(horizon, self.scheduler.cursor))

    def _harmony(self, horizon: Fraction | None) -> None:
        if not self.follow_harmony:
            return
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
        base = {"/band/style": style, "/band/groove": band_cfg["groove"]}
        # a jam's time signature ([band] meter, e.g. 6/8), else beats_per_bar quarter notes
        signature = None if demo else parse_jam_meter(band_cfg.get("meter", ""))
        meter = Meter.constant(*signature) if signature else None
        bpb = meter.beats_per_bar if meter else band_cfg["beats_per_bar"]
        if demo:
            song = DemoSong(style, tempo_bpm=band_cfg["tempo_bpm"])
            self.song = song
            self.band = song.band(seed)
            self.ctx = song.context(seed)
            self.length_s = song.duration_s
        else:
            self.song = None
            # every agent is there; the ones config.toml leaves out start switched off
            # (/PART/agent/on turns them on while playing)
            self.band = Band(seed, style, DrumAgent(style, seed), BassAgent(seed, style),
                             ChordAgent(seed, style), AnswerAgent(LeadAgent(seed, style)))
            base.update({f"/{part}/agent/on": float(band_cfg[part]) for part in AGENT_PARTS})
            base[ANSWER] = float(band_cfg["answer"])
            base[MEMORY] = float(band_cfg["memory"])
            self.ctx = LiveContext(seed=seed, beats_per_bar=bpb, style=style,
                                   harmony=LiveHarmony(beats_per_bar=bpb),
                                   answer=CallResponse(), memory=ProgressionMemory(bpb))
            self.length_s = None
        arp_cfg = cfg.get("arp", {})
        base.update({f"/arp/{k}": float(v) if isinstance(v, bool) else v
                     for k, v in arp_cfg.items() if k in CONFIG_KEYS})
        self.arp_channel = int(arp_cfg.get("channel", 0))    # 0: every MIDI channel
        self.steer = Steering(base)
        self.ctx.steer = self.steer
        self.clock = Clock(self.sample_rate, band_cfg["tempo_bpm"], bpb, band_cfg["swing"])
        if meter:
            self.clock.meter = self.ctx.meter = meter
        self.recorder = Recorder()
        # live-coded patterns on parts (Session.play), over the band, under /transport/playing
        self.patterns = PatternParts(self.band)
        # the arpeggiator (engine.agents.arp) plays over them through the same scheduler
        self.arp = Arpeggiator(self.steer, self.clock.swung)
        self.scheduler = Scheduler(self.clock, SteeredBand(ArpLayer(self.patterns, self.arp),
                                                           self.steer), self.ctx,
                                   self._send, band_cfg["lookahead_ms"] / 1000.0,
                                   on_played=self.recorder.add)
        self.scheduler.before_query = self._before_query
        self.score = None       # an engine.listen.score.Score the band reads ahead, if any
        self._tempo_due: list[tuple[int, float]] = []   # (sample, bpm) not yet sent
        self.conductor = Conductor(self.ctx, self.clock, self.scheduler) if not demo else None
        self.mapper = None      # the live input's MIDI mapper (engine.control.mapping), if any
        self.follower = None    # hears the player's notes: engine.control.sync.PlayerFollower
        self.form = None        # an engine.agents.form.FormPlay the band follows (follow_form)
        self.form_runner = None
        self._glides: dict[str, list] = {}     # address -> [times, values, next step]
        from engine.control.sync import TapTempo
        sync = cfg.get("sync", {})
        self.tapper = TapTempo(sync.get("tap_reset_s", 2.5), sync.get("tap_history", 8))
        self._prepare()
        self._mute = {p: self.graph.program.value_of(f"/{p}/mix/mute")
                      for p in self._mixed_parts()}       # as asked (solo mutes on top)
        self._solo = {p: 0.0 for p in self._mute}
        # config [midi_out]: parts on external synths, MIDI clock (None: nothing routed); its
        # sink is attached by the driver (engine.commands)
        self.midi_out = midi_out.MidiOut.from_config(cfg, self.clock, self.sample_rate,
                                            self.scheduler.lookahead,
                                            now=lambda: self.state.sample_time)
        self._route_arp()

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

    def set(self, address: str, value, time: float = ASAP, beat: Fraction | None = None) -> float:
        """Any parameter by its one address, checked (a bad value raises ValueError, an unknown
        address KeyError, and nothing changes), applied from the next block or from the sample
        `time` (smoothed where it is continuous): the graph's units (`/bass/synth/cutoff_hz`,
        `/bass/mix/pan`, `/bass/eq/low_cut_hz`, `/sends/reverb/reverb/decay_s`,
        `/master/eq/...`), the mixer's `/PART/mix/mute` and `/PART/mix/solo`, the master's
        limiter (`/master/limiter/ceiling_db`), the tempo (`/transport/tempo_bpm`) and swing
        (`/band/swing`) from the next beat not yet scheduled, and the band's steering
        (`/band/style`, `/band/energy`, `/band/key`, `/PART/agent/...`) from the next bar not
        yet scheduled; `/transport/playing` off stops the band at once (its notes released),
        on starts it at the next bar; `/transport/tap`: a value > 0 is one tap of tap tempo.
        `addresses()` lists them all, `param(address)` gives each one's range, unit and curve,
        `value(address)` its current value. Returns the value set (a choice as its number).
        A glide of the address (a faded scene) stops. `beat`: a steering change or the swing
        from that beat (a steering change from the bar it starts, never before the first beat
        not yet scheduled) instead of the next bar or beat: a command's change planned ahead
        (engine.agents.commands, "drop the drums for 4 bars")."""
        v = self._apply(address, value, time, beat)
        self._glides.pop(address, None)
        return v

    def _apply(self, address: str, value, time: float = ASAP,
               beat: Fraction | None = None) -> float:
        """`set` without stopping a glide; `beat`: where a beat-stamped change (steering,
        swing) takes effect instead of the next bar or beat after `time` (a scene's start)."""
        if address in STEER_PARAMS:
            return self._steer(address, value, time, beat)
        if address in CONTROL_PARAMS:
            v = check_value(address, CONTROL_PARAMS[address], value)
            if address == TEMPO_ADDRESS:
                self.set_tempo(v)
            elif address == SWING_ADDRESS:
                self.clock.set_swing(v, math.ceil(self._horizon(time)) if beat is None
                                     else max(beat, self.scheduler.cursor))
            elif address == TAP_ADDRESS:     # a pad's press taps, its release does nothing
                if v > 0:
                    from engine.control.sync import tap
                    tap(self)
            else:
                name = address.rsplit("/", 1)[1]
                self.state.push_sched(time, K_FX, FX_MASTER, master.MASTER_PARAM_NAMES[name], v)
            return v
        parts = address.strip("/").split("/")
        if parts[:2] == ["master", "limiter"] and len(parts) == 3:
            raise KeyError(f"{address}: the limiter has gain_db, ceiling_db (its mode is "
                           f"set before a stream starts)")
        if len(parts) == 3 and parts[1] == "mix" and parts[2] in ("mute", "solo") \
                and parts[0] in self._mute:
            return self._mute_solo(parts[0], parts[2], value, time)
        return self.graph.set(address, value, time)

    def _horizon(self, time: float) -> Fraction:
        """The first beat not yet scheduled when a change at sample `time` arrives (ASAP: now):
        the scheduler's cursor, or where a live scheduler's look-ahead stands at `time`."""
        cursor = self.scheduler.cursor
        if time == ASAP:
            return cursor
        return max(cursor, self.clock.beat_at(int(time) + self.scheduler.lookahead))

    def _steer(self, address: str, value, time: float, beat: Fraction | None = None) -> float:
        v = Steering.check(address, value)
        horizon = self._horizon(time) if beat is None else max(beat, self.scheduler.cursor)
        if address == PLAYING and v < 0.5:
            # stop: nothing from the cursor on; what is queued sounds and is released
            at = horizon
            if self.steer.latest(PLAYING) >= 0.5:
                off = self.clock.sample_at(at) + math.ceil(MAX_NUDGE_S * self.sample_rate) + 1
                for part in AGENT_PARTS:
                    self.state.push_sched(off, K_ALL_NOTES_OFF, PART_INDEX[part])
                midi_out.transport(self.midi_out, False, at, off, self._clock_out())
        elif address in ARP_PARAMS and address not in ARP_AT_BAR:
            at = horizon            # the arpeggiator's notes change from the next step
        else:
            at = self.clock.next_bar(horizon)
            if address == PLAYING and self.steer.latest(PLAYING) < 0.5:   # MIDI clock resumes
                midi_out.transport(self.midi_out, True, at, self.clock.sample_at(at),
                                   self._clock_out())
        v = self.steer.set(address, v, at)
        if address == "/arp/latch" and v < 0.5:
            self.arp.unlatch(at)
        elif address in ("/arp/on", "/arp/input"):
            self._route_arp()
        return v

    # ---- the arpeggiator's input ---------------------------------------------------------------
    def arp_takes(self, channel: int) -> bool:
        """Whether the player's notes of MIDI `channel` (1..16) for the keys part go to the
        arpeggiator now (/arp/on with /arp/input held, config [arp] channel) instead of the
        instrument."""
        held = self.steer.latest("/arp/input") == INPUTS.index("held")
        return self.steer.latest("/arp/on") >= 0.5 and held and self.arp_channel in (0, channel)

    def _route_arp(self) -> None:
        """The JACK callback's channel -> part table: the arpeggiator's channels to ARP_INPUT
        (no instrument plays them; they come back as reports), the others to keys."""
        table = self.state.ctl[L.C_CHAN_PART:L.C_CHAN_PART + 16]
        for ch in range(16):
            table[ch] = ARP_INPUT if self.arp_takes(ch + 1) else KEYS

    def _clock_out(self) -> bool:
        return bool(self.cfg.get("midi_out", {}).get("clock", False))

    def _mixed_parts(self) -> list[str]:
        return [p for p in PARTS if f"/{p}/mix/mute" in self.graph.program.addresses]

    def _mute_solo(self, part: str, what: str, value, time: float) -> float:
        """Mute and solo as asked; the strips get the mute that results (a part sounds when
        it is not muted and, if any part is soloed, soloed), smoothed by the strip."""
        address = f"/{part}/mix/{what}"
        v = check_value(address, self.param(address), value)
        (self._mute if what == "mute" else self._solo)[part] = v
        soloing = any(s >= 0.5 for s in self._solo.values())
        for p in self._mixed_parts():
            muted = self._mute.get(p, 0.0) >= 0.5 or (soloing and self._solo.get(p, 0.0) < 0.5)
            if self.graph.program.value_of(f"/{p}/mix/mute") != float(muted):
                self.graph.set(f"/{p}/mix/mute", float(muted), time)
        return v

    def param(self, address: str) -> Param:
        """The Param (range, default, curve, choices) of an address; KeyError if none."""
        if address in CONTROL_PARAMS:
            return CONTROL_PARAMS[address]
        if address in STEER_PARAMS:
            return STEER_PARAMS[address]
        if address.endswith("/mix/solo") and address.split("/")[1] in self._solo:
            return SOLO_PARAM
        return self.graph.program.resolve(address)[1]

    def value(self, address: str) -> float:
        """The current value (the target, where it glides or waits for its bar) of an
        address; KeyError if none."""
        if address == TEMPO_ADDRESS:
            return float(self.clock.bpm)
        if address == SWING_ADDRESS:
            return float(self.clock.swing_latest)
        if address == TAP_ADDRESS:
            return 0.0
        if address in STEER_PARAMS:
            return self.steer.latest(address)
        if address in CONTROL_PARAMS:
            name = address.rsplit("/", 1)[1]
            return float(self.state.arrays[L.S_MASTER_PARAMS][master.MASTER_PARAM_NAMES[name]])
        parts = address.split("/")
        if len(parts) == 4 and parts[2] == "mix" and parts[1] in self._mute:
            if parts[3] == "mute":
                return float(self._mute[parts[1]])
            if parts[3] == "solo":
                return float(self._solo[parts[1]])
        return self.graph.program.value_of(address)

    def addresses(self) -> list[str]:
        """Every parameter's address."""
        return sorted(list(self.graph.addresses()) + list(CONTROL_PARAMS) + list(STEER_PARAMS)
                      + [f"/{p}/mix/solo" for p in self._solo])

    # ---- glides and scenes ---------------------------------------------------------------------
    def glide(self, address: str, value, fade_s: float, time: float = ASAP) -> float:
        """Move a continuous address to `value` over `fade_s` seconds from sample `time` (ASAP:
        now): mixer and unit values in steps of GLIDE_STEP_S (each smoothed by its unit), the
        band's energy and densities bar by bar. Checked first; a choice, the tempo or the
        swing (or fade_s 0) switches at once. Returns the target."""
        return self._glide_to(address, value, fade_s, time, None)

    def _glide_to(self, address: str, value, fade_s: float, time: float,
                  beat: Fraction | None) -> float:
        q = self.param(address)
        target = check_value(address, q, value)
        if fade_s <= 0 or not gliding(address, q):
            v = self._apply(address, value, time, beat)
            self._glides.pop(address, None)
            return v
        start_v = self.value(address)
        if address in STEER_PARAMS:
            self._glides.pop(address, None)
            meter = self.clock.meter
            first = self.clock.next_bar(self._horizon(time) if beat is None
                                        else max(beat, self.scheduler.cursor))
            bar0 = meter.bar_at(first)
            bars = max(1, math.ceil(fade_s * self.clock.bpm / 60.0
                                    / float(meter.bar_length(bar0))))
            for k in range(1, bars + 1):
                self.steer.set(address, start_v + (target - start_v) * k / bars,
                               meter.bar_start(bar0 + k - 1))
            return target
        t0 = self.state.sample_time if time == ASAP else int(time)
        step = max(1, round(GLIDE_STEP_S * self.sample_rate))
        n = max(1, math.ceil(fade_s * self.sample_rate / step))
        times, values = [], []
        for k in range(1, n + 1):
            x = k / n
            if q.curve == "log" and start_v > 0:
                v = start_v * (target / start_v) ** x
            else:
                v = start_v + (target - start_v) * x
            times.append(t0 + k * step)
            values.append(target if k == n else min(q.hi, max(q.lo, v)))
        self._glides[address] = [times, values, 0]
        self._glide(self.state.sample_time + self.scheduler.lookahead)
        return target

    def _before_query(self, end: int) -> None:
        """Before each scheduler query: glide steps, and a score's tempo changes, due before
        sample `end` go to the engine; the conductor's progression memory catches up."""
        self._glide(end)
        if self.conductor is not None:
            self.conductor.tick(end)
        if self.form_runner is not None:    # a form's risers and the section playing
            self.form_runner.before_query(end)
        while self._tempo_due and self._tempo_due[0][0] < end:
            sample, bpm = self._tempo_due.pop(0)
            self.state.push_sched(sample, K_TEMPO, -1, 0.0, bpm)

    def follow_score(self, score) -> None:
        """Play in a score's time and read its harmony ahead (a MIDI file played as the
        player, engine.listen.score.Score); call it before the first query. The clock takes
        the file's tempo map and meter map (the file's first downbeat on a bar line, a pickup
        before it; every meter change on the file's bar lines), the band the harmony of every
        beat before it sounds and the file's key.
        The player's notes still set the band's intensity, not its chords."""
        if self.conductor is None:
            raise ValueError("the demo follows no one: a score needs a jam session")
        if self.scheduler.cursor > 0:
            raise ValueError("follow_score must come before the band is first queried")
        bpb = score.beats_per_bar
        tempos = score.tempo_map()
        clock = self.clock
        clock.meter = score.meter
        for beat, bpm in tempos:         # the first replaces the configured tempo at beat 0
            clock.set_tempo(bpm, beat)
        self.ctx.beats_per_bar = bpb
        self.ctx.meter = score.meter
        self.ctx.harmony.beats_per_bar = bpb
        self.ctx.harmony.load(score.harmony())
        self.ctx.key = score.key
        self.ctx.keys = tuple(score.keys())
        self.conductor.follow_harmony = False
        self.state.arrays[L.S_GLOBAL][L.GL_TEMPO_BPM] = float(clock.segments[0].bpm)
        self._tempo_due = [(clock.sample_at(seg.beat), float(seg.bpm))
                           for seg in clock.segments[1:]]
        self.score = score

    def follow_form(self, form, on_section=None) -> None:
        """Play through a song form (engine.agents.form.Form) from bar 0: its sections' parts,
        energy, progressions (the style's where it gives none) and transitions; call it
        before the first query. `on_section(bar, name)` is told each section as the scheduler
        reaches it (`self.form_runner.section`: the one playing); `self.form.jump` (the
        command "go to chorus") moves through it."""
        from engine.agents.base import STYLES
        from engine.agents.form import FormPlay, FormRunner
        if self.conductor is None:
            raise ValueError("the demo has its own form: a form needs a jam session")
        if self.scheduler.cursor > 0:
            raise ValueError("follow_form must come before the band is first queried")
        style = STYLES[int(self.steer.latest("/band/style"))]
        self.form = FormPlay(form, style)
        self.band.arrangement = self.form
        self.ctx.harmony.progression = self.form.progression
        self.form_runner = FormRunner(self.form, self, on_section)
        if not form.loop:           # the ending bar and its ring
            self.length_s = float(self.clock.sample_at(self.clock.meter.bar_start(
                form.length_bars + 2))) / self.sample_rate

    def _glide(self, end: int) -> None:
        """Push every glide step due before sample `end` (the scheduler calls it on each
        advance, so the steps land on the same samples live and offline)."""
        if not self._glides:
            return
        for address in list(self._glides):
            times, values, k = self._glides[address]
            try:
                while k < len(times) and times[k] < end:
                    self._apply(address, values[k], times[k])
                    k += 1
            except (KeyError, ValueError):      # gone with a new graph: the glide ends there
                k = len(times)
            if k == len(times):
                del self._glides[address]
            else:
                self._glides[address][2] = k

    def scenes_path(self) -> Path:
        """The scene file (config [scenes] file, relative to the session's root)."""
        rel = self.cfg.get("scenes", {}).get("file", "scenes.toml")
        return self.root / Path(rel).expanduser()

    def scenes(self) -> list[str]:
        """The names of the scenes in the scene file (checked: DataError if it is broken)."""
        from engine.control.scenes import load_scenes
        return list(load_scenes(self.scenes_path(), self.param))

    def recall_scene(self, name: str, fade_s: float | None = None,
                     quantise: str | None = None, time: float = ASAP):
        """Set every address of scene `name`: continuous values glide over `fade_s` seconds
        (None: the scene's own `fade_s`), choices switch; `quantise` ("bar", "beat", "none";
        None: the scene's own) starts it on the next bar or beat not yet scheduled. The file
        is read and checked first: a broken file or an unknown scene changes nothing
        (DataError / KeyError). Returns the Scene."""
        from engine.control.scenes import QUANTISE, load_scenes
        scenes = load_scenes(self.scenes_path(), self.param)
        if name not in scenes:
            raise KeyError(f"no scene {name!r}; scenes: {', '.join(scenes) or 'none'} "
                           f"(in {self.scenes_path()})")
        scene = scenes[name]
        fade = scene.fade_s if fade_s is None else fade_s
        if isinstance(fade, bool) or not isinstance(fade, (int, float)) \
                or not 0.0 <= fade <= 60.0:
            raise ValueError(f"fade_s must be 0..60 seconds, got {fade!r}")
        quantise = scene.quantise if quantise is None else quantise
        if quantise not in QUANTISE:
            raise ValueError(f"quantise must be one of {', '.join(QUANTISE)}, got {quantise!r}")
        beat = None
        if quantise != "none":
            h = self._horizon(time)
            beat = self.clock.next_bar(h) if quantise == "bar" else Fraction(math.ceil(h))
            time = self.clock.sample_at(beat)
        for address, value in scene.values.items():
            self._glide_to(address, value, float(fade), time, beat)
        return scene

    def save_scene(self, name: str, addresses: list[str] | None = None) -> Path:
        """Write the current values of `addresses` (default: every steering, transport and
        mixer address) into the scene file as scene `name` (replacing one of that name; the
        other scenes and the file's leading comments are kept). Returns the file."""
        from engine.control.scenes import Scene, load_scenes, save_scenes, snapshot_addresses
        path = self.scenes_path()
        scenes = load_scenes(path, self.param)
        wanted = snapshot_addresses(self.addresses()) if addresses is None else list(addresses)
        values = {}
        for a in wanted:
            q = self.param(a)
            v = self.value(a)
            values[a] = q.choices[int(v)] if q.curve == "choice" else v
        old = scenes.get(name)
        scenes[name] = Scene(name, values, old.fade_s if old else 0.0,
                             old.quantise if old else "none")
        return save_scenes(path, scenes)

    def set_fx(self, module: int, index: int, value: float) -> None:
        self.state.push_sched(ASAP, K_FX, module, index, value)

    def load_patch(self, part: str, path: Path) -> None:
        """Load a patch onto a part while playing. The file is validated first: a broken one
        raises DataError (file, line, field) and nothing changes. A changed patch is a graph
        swap, crossfaded: the part's instrument keeps its voices where the engine stays the same
        (its changed values glide from the old ones), a new engine or insert chain takes over
        within the crossfade (GraphBusy if the last swap is still fading: try again a moment
        later)."""
        self.load_patches({part: path})

    def load_patches(self, paths: dict[str, Path]) -> None:
        """`load_patch` for several parts at once ({part: path}), in one crossfaded swap (a
        style prompt changes several parts' patches together); all files are checked first."""
        loaded = {}
        for part, path in paths.items():
            loaded[part] = read_patch(path)
            self._check_engine(part, loaded[part])
        patches = dict(self.patches, **loaded)
        spec = spec_from_config(self.cfg["mix"], patches, self.polyphony)
        checked = check_spec(spec)["parts"]
        if any(checked[part] != self.graph.spec["parts"][part] for part in loaded):
            self.graph.swap(spec)
        self.patches = patches

    @staticmethod
    def _check_engine(part: str, patch) -> None:
        where = f"{patch.path}: [patch] engine"
        if part != "drums" and patch.engine == "kit":
            raise DataError(f"{where}: a kit patch is for the drums part, not {part}")

    def play(self, part: str, pattern, bar: int | None = None) -> Fraction:
        """Play `pattern` (an `engine.patterns.Pattern`, or mini-notation such as
        "c3 ~ [e3 g3] ~"; None gives the part back to its agent) on `part` from the start of
        `bar` (default: the next bar not yet scheduled), in place of the part's agent, in the
        band's time: one cycle is one bar. It replaces the pattern playing there from that
        bar on; notes already scheduled still end as they were scheduled, so nothing sticks.
        The pattern is queried for two bars first: one that cannot play (a bad mini-notation,
        a pitched note on the drums) raises ValueError/TypeError and nothing changes; one that
        fails later stops and is counted (`patterns.errors`). Returns the beat it starts on.
        The same calls at the same bars play the same notes live and offline."""
        from engine.patterns.pattern import as_pattern
        first = self.clock.next_bar(self.scheduler.cursor)
        if bar is None:
            at = first
        else:
            if isinstance(bar, bool) or not isinstance(bar, int):
                raise TypeError(f"bar must be a whole number, got {bar!r}")
            at = self.clock.meter.bar_start(bar)
            if at < first:
                raise ValueError(f"bar {bar} is already scheduled: the first bar free is "
                                 f"{self.clock.bar_at(first)}")
        if part not in PARTS:
            raise ValueError(f"no part {part!r}; parts: {', '.join(PARTS)}")
        pat = None if pattern is None else as_pattern(pattern)
        if pat is not None:
            self.patterns.check(part, pat, at, self.ctx)
        self.patterns.set(part, pat, at)
        return at

    def set_tempo(self, bpm: float) -> None:
        """From the next beat not yet scheduled: nothing already scheduled moves."""
        at = Fraction(int(self.scheduler.cursor) + 1)
        self.clock.set_tempo(bpm, at)
        self.state.push_sched(self.clock.sample_at(at), K_TEMPO, -1, 0.0, bpm)

    def trim_history(self, keep_beats: int = 64) -> int:
        """Forget the tempo map more than `keep_beats` before what is playing and scheduled
        (a long run changes tempo and swing without end); returns how many changes went."""
        playing = min(self.clock.beat_at(self.state.sample_time), self.scheduler.cursor)
        return self.clock.forget_before(playing - keep_beats)

    def release_all(self) -> None:
        self.arp.release(None, self.scheduler.cursor)     # nothing held, nothing latched
        self.state.push_sched(ASAP, K_ALL_NOTES_OFF, -1)
        if self.midi_out is not None:       # and every note on the external synths
            self.midi_out.cut_all()

    def panic(self) -> None:
        self.arp.release(None, self.scheduler.cursor)
        self.state.push_sched(ASAP, K_PANIC, -1)
        if self.midi_out is not None:
            self.midi_out.cut_all()

    # ---- the player's notes --------------------------------------------------------------------
    def player_note(self, kind: int, note: int, velocity: float, at_sample: int, source: int,
                    horizon: Fraction | None = None, arp: bool = False) -> None:
        """A note the player played (any input path): follows harmony, records it, and with
        `follower` set (config [sync] source = "player") goes to the tempo follower.
        `arp`: the input gave it to the arpeggiator (`arp_takes`) instead of the instrument:
        it is arpeggiated from the first step not yet scheduled (`horizon`, default the
        scheduler's cursor) and not recorded itself (its arpeggio is); K_ALL_NOTES_OFF then
        releases every arpeggiated key of `source`. A note-off always releases the key in the
        arpeggiator if it holds it, wherever the note went."""
        at = self.scheduler.cursor if horizon is None else max(horizon, self.scheduler.cursor)
        if arp and kind == K_ALL_NOTES_OFF:
            self.arp.release(source, at)
            if self.conductor is not None:
                self.conductor.source_gone(source, horizon)
            return
        if kind == K_NOTE_OFF and self.arp.holds(source, note):
            self.arp.lift(source, note, at)
        elif arp and kind == K_NOTE_OFF:
            # its note-on reached the instrument (the arpeggiator came on while it was held)
            self.state.push_sched(ASAP, K_NOTE_OFF, KEYS, note, 0.0, source)
        elif arp and kind == K_NOTE_ON:
            self.arp.press(source, note, velocity, at)
        if not arp:
            seconds = max(at_sample, 0) / self.sample_rate
            self.recorder.player_note(kind, note, velocity, seconds, source)
        if self.conductor is not None:
            self.conductor.note(kind, note, velocity, at_sample, source, horizon)
        if self.follower is not None:       # config [sync] source = "player"
            self.follower.note(kind, note, velocity, at_sample)

    def source_gone(self, source: int) -> None:
        """A player's MIDI source went away: its keys are up for the band and the
        arpeggiator (its latched notes too: nothing plays on for a keyboard that is gone)."""
        self.arp.release(source, self.scheduler.cursor)
        if self.conductor is not None:
            self.conductor.source_gone(source)

    # ---- files ---------------------------------------------------------------------------------
    def write_midi(self, path: Path) -> Path:
        self.recorder.finish(self.state.sample_time / self.sample_rate)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.recorder.write(path, self.clock.bpm)
        return path

