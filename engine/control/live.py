"""Running a session live on a sound card (control side: the asyncio thread).

The audio runs on the driver's real-time thread in compiled code; this loop only feeds it:
the scheduler wakes every few milliseconds and pushes the band's next events, MIDI arrives
through controllers (or, on the JACK driver, is read in the callback and reported back here),
and a status line shows what is happening. Ctrl-C stops cleanly: the band stops, every note is
released and given time to ring out, the stream closes and the MIDI file is written in full.
"""
from __future__ import annotations

import asyncio
import signal
import sys

import numpy as np

from engine.control.live_input import LiveInput
from engine.control.session import Session
from engine.rt import layout as L
from engine.agents.arp import ARP_INPUT
from engine.rt.events import EVENT_WIDTH, K_ALL_NOTES_OFF, K_MIDI_IN, K_NOTE_OFF, K_NOTE_ON
from engine.rt.ringbuf import pop

REALTIME = frozenset({0xF2, 0xF8, 0xFA, 0xFB, 0xFC})
"""Song position, clock, start, continue, stop: for `LiveRun.on_realtime`."""

TICK_S = 0.01
RELEASE_TAIL_S = 0.8


class LiveRun:
    """One live run of `session` on an already-started driver (`stream` has `.close()`)."""

    def __init__(self, session: Session, stream, log=print, tty_status: bool = True):
        self.session = session
        self.tty_status = tty_status    # the status line on a terminal (not when headless)
        self.stream = stream
        self.log = log
        session.patterns.log = log      # a live-coded pattern that fails says why
        self.stopping = asyncio.Event()
        self._qout = np.zeros((L.QCAP, EVENT_WIDTH))    # a whole queue: nothing dropped
        self.tasks: list[asyncio.Task] = []
        self.osc = None     # engine.control.osc.OscServer while config [osc] enables it
        self.mqtt = None    # engine.control.mqtt.MqttBridge while config [mqtt] enables it
        self._mqtt_task: asyncio.Task | None = None
        self.sync = None    # engine.control.sync follower while config [sync] asks for one
        # JACK-native MIDI in: realtime messages (clock 0xF8, start 0xFA, continue 0xFB, stop
        # 0xFC, song position 0xF2) go to on_realtime(status, data: bytes, sample_time), on
        # this loop, in order (the MIDI clock follower, when config [sync] has one)
        self.on_realtime = None

    def player_input(self, mode: str, fixed_latency_ms: float,
                     mapping: str | None = None) -> LiveInput:
        """The sink for controllers; player notes hop to this loop for the conductor.
        `mapping`: a MIDI mapping file (engine.control.mapping; "" an empty one): its mapper
        routes the notes and applies mapped controls on this loop (`session.mapper`, whose
        `learn(address)` arms MIDI learn)."""
        loop = asyncio.get_running_loop()

        def on_note(kind, note, velocity, t, source):
            loop.call_soon_threadsafe(self.session.player_note, kind, note, velocity, t, source)

        def on_gone(source):
            loop.call_soon_threadsafe(self.session.source_gone, source)

        def on_arp(kind, note, velocity, t, source):       # notes the arpeggiator took
            loop.call_soon_threadsafe(self.session.player_note, kind, note, velocity, t,
                                      source, None, True)

        def on_realtime(status, data, sample_time):
            loop.call_soon_threadsafe(self.midi_realtime, status, data, sample_time)

        live = LiveInput(self.session.state, mode, fixed_latency_ms, on_note=on_note,
                         on_gone=on_gone, log=self.log, on_realtime=on_realtime)
        live.divert, live.on_arp = self.session.arp_takes, on_arp
        live.thru = getattr(self.session.midi_out, "thru", None)    # config [midi_out] thru
        if mapping is not None:
            from engine.control.mapping import Mapper, load_mapper
            from engine.tomldata import DataError
            hop = dict(post=loop.call_soon_threadsafe, later=loop.call_later)
            try:
                mapper = load_mapper(self.session, mapping, self.log, **hop)
            except DataError as exc:    # the music plays on, unmapped (the file is left as is)
                self.log(f"MIDI mapping not used: {exc}")
                mapper = Mapper(self.session, None, self.log, **hop)
            live.mapper = self.session.mapper = mapper
        return live

    def midi_realtime(self, status: int, data: int, sample_time: int) -> None:
        """A MIDI clock byte (0xF8 clock, 0xFA start, 0xFB continue, 0xFC stop; 0xF2 song
        position with `data` in 16ths) at `sample_time`, on this loop: to the MIDI clock
        follower when config [sync] source is midi_clock (else ignored)."""
        feed = getattr(self.sync, "feed", None)
        if feed is not None:
            feed(status, data, sample_time)

    async def _schedule(self) -> None:
        while not self.stopping.is_set():
            if self.sync is not None:
                try:
                    self.sync.update()          # tempo nudges act before the next query
                except Exception as exc:  # noqa: BLE001 - the band plays on, unsynced
                    self.log(f"sync stopped: {exc!r}")
                    self.sync.lock.release()
                    self.sync = None
            self.session.advance(self.session.state.sample_time)
            self._drain_reports()
            await asyncio.sleep(TICK_S)

    def _drain_reports(self) -> None:
        """MIDI read in the JACK callback comes back here: notes for the conductor and the
        recording; controls (CC, program change, pitch bend) for the MIDI mapper, which
        applies the mapped ones (the callback already played the rest); realtime messages for
        `on_realtime`."""
        a = self.session.state.arrays
        n, _, _ = pop(a[L.S_QOUT], a[L.S_QOUT_IDX], self._qout, 0, 0.0)
        for row in self._qout[:n]:
            kind = int(row[1])
            if kind in (K_NOTE_ON, K_NOTE_OFF):      # ARP_INPUT: the arpeggiator's notes
                self.session.player_note(kind, int(row[3]), float(row[4]), int(row[0]),
                                         int(row[5]), arp=int(row[2]) == ARP_INPUT)
            elif kind == K_ALL_NOTES_OFF and int(row[2]) == ARP_INPUT:
                self.session.player_note(kind, 0, 0.0, int(row[0]), int(row[5]), arp=True)
            elif kind == K_MIDI_IN:
                self._midi_in(int(row[3]), int(row[4]), int(row[5]), int(row[0]), int(row[6]))

    def _midi_in(self, status: int, data1: int, data2: int, sample: int, source: int) -> None:
        """A raw message the JACK callback reported (it checked the bytes already)."""
        if status in REALTIME:            # the clock follower ([sync] midi_clock), then hook
            self.midi_realtime(status, data1 | data2 << 7 if status == 0xF2 else 0, sample)
            if self.on_realtime is not None:
                data = bytes((data1, data2)) if status == 0xF2 else b""
                self.on_realtime(status, data, sample)
            return
        mapper = self.session.mapper
        if mapper is None:
            return
        import mido
        try:
            msg = mido.Message.from_bytes([status, data1] if status & 0xF0 == 0xC0
                                          else [status, data1, data2])
        except ValueError:
            return
        mapper.events(msg, source)      # its note events: the callback played them

    async def _status(self) -> None:
        state = self.session.state
        while not self.stopping.is_set():
            self.session.trim_history()     # a run of days: the tempo map stays short
            c = state.counters()
            cond = self.session.conductor
            chord = cond.chord.name if cond is not None and cond.chord is not None else "-"
            beat = self.session.clock.beat_at(state.sample_time)
            bar = self.session.clock.bar_at(beat) + 1
            sync = f"  {self.sync.status()}" if self.sync is not None else ""
            memory = getattr(self.session.ctx, "memory", None)
            if memory is not None:      # the progression memory: its loop, or learning / off
                sync += "  memory " + (memory.status() if self.session.value("/band/memory")
                                       >= 0.5 else "off")
            form = self.session.form_runner
            if form is not None and form.section is not None:
                sync += f"  {form.section}"
            if self.tty_status and sys.stdout.isatty():
                sys.stdout.write(f"\rbar {bar:4d}  chord {chord:6s}  voices {c['voices']:3d}  "
                                 f"xruns {c['xruns']}  late {c['late_events']}{sync}   ")
                sys.stdout.flush()
            await asyncio.sleep(0.25)

    def stop(self) -> None:
        self.stopping.set()

    async def run(self, seconds: float | None = None, extra=()) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.stop)
            except (NotImplementedError, RuntimeError):
                pass
        from engine.control.hotreload import PatchWatcher
        watcher = PatchWatcher(self.session, self.session.cfg["library"]["folders"],
                               log=self.log)
        self.tasks = [asyncio.create_task(self._schedule()), asyncio.create_task(self._status()),
                      asyncio.create_task(watcher.run(self.stopping))]
        self.tasks += [asyncio.create_task(coro) for coro in extra]
        await self._start_osc()
        self._start_mqtt()
        self._start_sync()
        try:
            if seconds is None:
                await self.stopping.wait()
            else:
                try:
                    await asyncio.wait_for(self.stopping.wait(), seconds)
                except asyncio.TimeoutError:
                    pass
        finally:
            await self.shutdown()

    async def _start_osc(self) -> None:
        """The OSC server when config [osc] enables it (a port in use is reported, not fatal)."""
        from engine.control.osc import server_from_config
        self.osc = server_from_config(self.session, self.session.cfg, log=self.log)
        if self.osc is None:
            return
        try:
            await self.osc.start()
        except OSError as exc:
            self.log(f"OSC: cannot listen on {self.osc.host}:{self.osc.port}: {exc}")
            self.osc = None
            return
        self.tasks.append(asyncio.create_task(self.osc.run(self.stopping)))

    def _start_mqtt(self) -> None:
        """The MQTT bridge when config [mqtt] enables it: it connects (starting the embedded
        broker first when no host is set) and reconnects on its own; failures are logged."""
        from engine.control.mqtt import bridge_from_config
        from engine.tomldata import DataError
        try:
            self.mqtt = bridge_from_config(self.session, self.session.cfg, log=self.log)
        except DataError as exc:
            self.log(f"MQTT not started: {exc}")
            return
        if self.mqtt is not None:
            self._mqtt_task = asyncio.create_task(self._run_mqtt())
            self.tasks.append(self._mqtt_task)

    async def _run_mqtt(self) -> None:
        from engine.control.mqtt import BrokerStartError
        from engine.control.remote import short
        try:
            await self.mqtt.run(self.stopping)
        except BrokerStartError as exc:
            self.log(f"MQTT: {exc}")
        except Exception as exc:  # noqa: BLE001 - e.g. the embedded broker's port is taken
            self.log(f"MQTT stopped: {short(repr(exc))}")

    def _start_sync(self) -> None:
        """The tempo follower config [sync] asks for (Link not available: reported, not fatal)."""
        from engine.control.sync import sync_from_config
        try:
            self.sync = sync_from_config(self.session, self.session.cfg, log=self.log)
            if self.sync is not None and hasattr(self.sync, "start"):
                self.sync.start()
        except (ImportError, OSError, RuntimeError) as exc:
            self.log(f"sync: cannot start {self.session.cfg['sync']['source']}: {exc}")
            if self.sync is not None:
                self.sync.lock.release()
            self.sync = None
            return
        if self.sync is not None:
            self.tasks.append(asyncio.create_task(self.sync.run(self.stopping)))

    async def shutdown(self) -> None:
        """Stop the band, release every note, let the tails ring, then close the stream."""
        self.stopping.set()
        if self._mqtt_task is not None:     # MQTT says goodbye (online "false") first
            await asyncio.wait([self._mqtt_task], timeout=3.0)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.session.midi_out is not None:    # clock Stop (release_all ends the notes)
            self.session.midi_out.stop_clock()
        self.session.release_all()
        await asyncio.sleep(RELEASE_TAIL_S)
        self.session.panic()
        await asyncio.sleep(0.05)
        self._drain_reports()
        self.stream.close()
        sender = getattr(self.session.midi_out, "sink", None)
        if sender is not None and hasattr(sender, "close"):
            sender.close()
        if self.tty_status and sys.stdout.isatty():
            sys.stdout.write("\n")

