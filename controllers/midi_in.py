"""MIDI input ports -> the engine's sink (control side; delivery on one reader thread).

How messages arrive: rtmidi's own MIDI threads (JACK: each client's process thread, which is
real-time; ALSA/CoreMIDI/WinMM: an input thread) put them into rtmidi's lock-free C++ queue, and
ONE Python thread ("bandmate-midi-in") drains every open port's queue each `poll_interval_s`
(1 ms) and calls sink.feed. No Python runs on rtmidi's threads. Measured on this machine
(JACK, 64-frame periods, one MIDI note every 10 ms for 3 s, another Python thread busy):
  * rtmidi callback mode: 600-730 JACK xruns, because the callback waits for the GIL inside
    the JACK process cycle (the whole graph gets the xrun notification, so the engine would count
    them). Reading the queue from our thread: 4-55, the noise of this loaded machine.
  * rtmidi callback mode crashed (SIGSEGV, gdb: _cb_func -> tupledealloc) when a port was
    closed while notes were streaming: python-rtmidi's cancel_callback frees the (func, data)
    tuple that a JACK thread already waiting for the GIL is about to use, and JACK cancels its
    process thread asynchronously (pthread_cancel) on close. With no callbacks, closing is a
    plain close_port/delete once the reader no longer touches the port.
  * latency through JACK: median 0.6 ms, p95 1.6 ms (callback mode: about 1.3 ms), for ~1.5 %
    of one core of polling.
Time stamps: rtmidi hands every message the delta time its backend measured on its own thread
(since the port's previous message). MidiInputs sums them into the port's timeline and passes it
to sink.feed as `at`, so the sink can place a message at the time the backend received it, not
when Python got round to reading it (engine.control.midi_time). How good that stamp is depends on
the backend: ALSA's sequencer stamps each event as it is delivered; rtmidi's JACK backend stamps
with jack_get_time() in its own process callback, the same time for every event of one JACK cycle.
Why python-rtmidi directly and not mido's rtmidi backend (`mido.Backend('mido.backends.rtmidi')`):
mido's Input always installs an rtmidi callback (into its ParserQueue, under an RLock), so it
cannot keep Python off the JACK thread; its `get_input_names()` builds a throw-away MidiIn and
MidiOut per call (two JACK clients, 10-20 ms each) where the watcher lists ports twice a second
(here: one long-lived probe MidiIn); it re-tokenizes bytes rtmidi already split and validates the
message again (here: controllers.base.decode_midi checks once, ~1.5 us per message end to end);
and a missing ALSA sequencer, a stopped JACK server or a port that vanished while opening come
out of it as exceptions from deep inside, where here each is one clear log line.
mido is still the message type (mido.Message) and the MIDI file parser.

Threads, for the engine:
  * sink.feed runs on the reader thread (all ports; never concurrently for two ports) - or, for
    the fake backend, on whoever calls FakePort.send. Nothing on that path logs per message,
    takes a contended lock or raises.
  * poll_ports, close and the constructor take an internal lock and may block for tens of ms
    (a JACK client starts per port); `watch()` runs poll_ports in a worker thread.
"""
from __future__ import annotations

import asyncio
import atexit
import functools
import os
import re
import sys
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from controllers.base import (
    DEFAULT_ACCEPT,
    FIRST_PORT_SOURCE,
    LAST_PORT_SOURCE,
    MidiBackend,
    MidiDecodeError,
    OnBytes,
    PortHandle,
    Sink,
    decode_midi,
    format_bytes,
)

try:
    import rtmidi
except ImportError:  # pragma: no cover - python-rtmidi is a dependency; keep the error readable
    rtmidi = None

API_NAMES = ("auto", "alsa", "jack", "coremidi", "windows")
VIRTUAL_PORT_NAME = "bandmate in"
# clock, start, continue, stop, song position: to the sink's optional `realtime` method
CLOCK_STATUS = frozenset({0xF8, 0xFA, 0xFB, 0xFC, 0xF2})
_RTMIDI_API_ATTR = {
    "alsa": "API_LINUX_ALSA",
    "jack": "API_UNIX_JACK",
    "coremidi": "API_MACOSX_CORE",
    "windows": "API_WINDOWS_MM",
}


class MidiUnavailable(RuntimeError):
    """No usable MIDI system (the message says why for each API tried)."""


# --- the python-rtmidi backend --------------------------------------------------------------


def _local_port_name(source_port: str) -> str:
    """Our receiving port's name, e.g. 'from Keystation 49' (no ':' - JACK separates with it)."""
    return ("from " + source_port.replace(":", " "))[:60]


class _RtmidiHandle:
    def __init__(self, backend: "RtmidiBackend", midi_in, on_bytes: OnBytes):
        self._backend, self.midi_in, self.on_bytes = backend, midi_in, on_bytes

    def close(self) -> None:
        self._backend._detach(self)


# APIs where rtmidi may drop sysex, clock and active sensing in C: their delta times stay
# right, because ALSA and WinMM advance the "previous message" time only for messages they
# deliver. rtmidi's JACK and CoreMIDI backends advance it for the messages they filter too (RtMidi
# 5/6: jackProcessIn stamps before its ignore checks), so each filtered clock or active-sensing
# message would cut time out of the port's timeline: there everything comes to Python, which
# ignores those messages itself (decode_midi; about 1 us each). MIDI clock (timing: 0xF8 and the
# other realtime bytes) always comes through, for the clock follower (engine.control.sync): ~50
# messages a second while a device sends clock.
_FILTER_IN_C = frozenset({"alsa", "windows"})


class RtmidiBackend:
    """One MIDI API through python-rtmidi, read by polling (see the module docstring).

    One rtmidi MidiIn (one ALSA/JACK client) per open port, with no callback: rtmidi queues
    messages with the delta time its backend measured (ALSA, WinMM: sysex and active sensing
    are dropped in C first, see _FILTER_IN_C) and one reader thread drains all queues
    every `poll_interval_s`. A long-lived probe MidiIn lists ports.
    Raises OSError (rtmidi.SystemError) when the API cannot start ("JACK server not running?").
    """

    def __init__(self, api: str, client_name: str = "bandmate", poll_interval_s: float = 0.001,
                 queue_size: int = 4096):
        if rtmidi is None:
            raise OSError("python-rtmidi is not installed")
        self.name = api
        self._api = getattr(rtmidi, _RTMIDI_API_ATTR[api])
        self._client_name = client_name
        self._queue_size = queue_size
        self.poll_interval_s = poll_interval_s
        self._probe = rtmidi.MidiIn(self._api, name=client_name)
        self._io_lock = threading.Lock()  # reader <-> attach/detach only; never a MIDI thread
        self._handles: tuple[_RtmidiHandle, ...] = ()
        self._reader: threading.Thread | None = None
        self._running = False

    def list_ports(self) -> list[str]:
        return list(self._probe.get_ports())

    def _new_in(self):
        mi = rtmidi.MidiIn(self._api, name=self._client_name, queue_size_limit=self._queue_size)
        if self.name in _FILTER_IN_C:
            mi.ignore_types(sysex=True, timing=False, active_sense=True)
        else:
            mi.ignore_types(sysex=False, timing=False, active_sense=False)
        return mi

    def open_port(self, name: str, on_bytes: OnBytes) -> PortHandle:
        mi = self._new_in()
        try:
            # rtmidi opens by index: look the index up on this client, just before opening.
            names = mi.get_ports()
            if name not in names:
                raise OSError(f"port {name!r} is gone")
            index = names.index(name)
            mi.open_port(index, _local_port_name(name))
            if mi.get_port_name(index) != name:  # the list changed under us
                raise OSError(f"port {name!r} moved while opening")
        except BaseException as exc:
            mi.close_port()
            mi.delete()
            if isinstance(exc, Exception) and not isinstance(exc, OSError):
                raise OSError(str(exc)) from exc
            raise
        return self._attach(mi, on_bytes)

    def open_virtual(self, name: str, on_bytes: OnBytes) -> PortHandle:
        mi = self._new_in()
        try:
            mi.open_virtual_port(name)
        except Exception as exc:  # Windows MM: NotImplementedError
            mi.delete()
            raise OSError(f"virtual ports are not supported with {self.name}: {exc}") from exc
        return self._attach(mi, on_bytes)

    def _attach(self, mi, on_bytes: OnBytes) -> _RtmidiHandle:
        handle = _RtmidiHandle(self, mi, on_bytes)
        with self._io_lock:
            self._handles += (handle,)
            if self._reader is None:
                self._running = True
                self._reader = threading.Thread(target=self._read_loop, name="bandmate-midi-in",
                                                daemon=True)
                self._reader.start()
        return handle

    def _detach(self, handle: _RtmidiHandle) -> None:
        with self._io_lock:
            if handle not in self._handles:
                return
            self._drain(handle)  # what arrived before the close is still delivered
            self._handles = tuple(h for h in self._handles if h is not handle)
        # The reader no longer sees this MidiIn and no rtmidi thread runs Python: safe to delete.
        handle.midi_in.close_port()
        handle.midi_in.delete()

    @staticmethod
    def _drain(handle: _RtmidiHandle, budget: int = 512) -> None:
        get, on_bytes = handle.midi_in.get_message, handle.on_bytes
        for _ in range(budget):  # a flooding port cannot starve the others
            event = get()
            if event is None:
                return
            on_bytes(event[0], event[1])  # bytes, delta time stamped on rtmidi's thread

    def _read_loop(self) -> None:
        sleep, interval, drain = time.sleep, self.poll_interval_s, self._drain
        while self._running:
            if not self._handles:
                sleep(0.05)
                continue
            with self._io_lock:
                for handle in self._handles:
                    try:
                        drain(handle)
                    except Exception:  # on_bytes never raises; never let the reader die anyway
                        pass
            sleep(interval)

    def close(self) -> None:
        """Stop the reader and release the probe (MidiInputs closes the ports first)."""
        with self._io_lock:
            self._running = False
            reader, self._reader = self._reader, None
            handles, self._handles = self._handles, ()
        if reader is not None and reader is not threading.current_thread():
            reader.join(timeout=1.0)
        for handle in handles:
            handle.midi_in.close_port()
            handle.midi_in.delete()
        probe, self._probe = self._probe, None
        if probe is not None:
            probe.delete()


def _platform_apis() -> tuple[str, ...]:
    if sys.platform.startswith("linux"):
        return ("alsa", "jack")
    if sys.platform == "darwin":
        return ("coremidi", "jack")
    if sys.platform.startswith(("win", "cygwin")):
        return ("windows",)
    return ("jack",)


def _compiled_apis() -> set[str]:
    if rtmidi is None:
        return set()
    ids = set(rtmidi.get_compiled_api())
    return {name for name, attr in _RTMIDI_API_ATTR.items() if getattr(rtmidi, attr) in ids}


def open_backend(api: str = "auto", client_name: str = "bandmate",
                 poll_interval_s: float = 0.001) -> tuple[RtmidiBackend, list[str]]:
    """Start the MIDI API named in the config. "auto": the platform's default, then JACK
    (Linux: ALSA, and JACK when there is no ALSA sequencer). Returns the backend and the notes on
    APIs skipped. Raises ValueError for an unknown name, MidiUnavailable when none starts."""
    if api not in API_NAMES:
        raise ValueError(f"unknown MIDI api {api!r}; use one of {', '.join(API_NAMES)}")
    candidates = _platform_apis() if api == "auto" else (api,)
    compiled = _compiled_apis()
    skipped: list[str] = []
    for name in candidates:
        if name not in compiled:
            skipped.append(f"{name}: not compiled into python-rtmidi")
            continue
        if name == "alsa" and not os.path.exists("/dev/snd/seq"):
            # checked up front: libasound prints its own error to stderr when it fails
            skipped.append("alsa: no ALSA sequencer (/dev/snd/seq missing; load the snd-seq module)")
            continue
        try:
            return RtmidiBackend(name, client_name, poll_interval_s), skipped
        except Exception as exc:  # rtmidi.SystemError (an OSError): e.g. "JACK server not running?"
            skipped.append(f"{name}: {exc}")
    raise MidiUnavailable("no MIDI input available (" + "; ".join(skipped) + ")")


# --- MidiInputs ------------------------------------------------------------------------------


@dataclass
class PortChanges:
    """What one poll_ports() did: port names opened and names that vanished (closed)."""

    opened: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.opened or self.gone)


def _close_at_exit(ref: "weakref.ref[MidiInputs]") -> None:
    inputs = ref()
    if inputs is not None:
        inputs.close()


class _Port:
    """One open port. Its counters are written only by the delivery (reader) thread."""

    __slots__ = ("name", "source", "virtual", "handle", "live", "received", "ignored",
                 "dropped", "reported", "feed_errors", "feed_reported", "last_bad", "clock")

    def __init__(self, name: str, source: int, virtual: bool):
        self.name, self.source, self.virtual = name, source, virtual
        self.handle: PortHandle | None = None
        self.live = True
        self.clock = 0.0  # the port's backend timeline: sum of its delta times (seconds)
        self.received = self.ignored = 0
        self.dropped = self.reported = 0
        self.feed_errors = self.feed_reported = 0
        self.last_bad = ""


class MidiInputs:
    """Opens MIDI input ports and feeds their messages to the engine's sink.

    sink:        the engine side (controllers.base.Sink)
    api:         "auto" | "alsa" | "jack" | "coremidi" | "windows" (config.toml)
    ports:       "all" (every source port except bandmate's own and "Midi Through"), or one name,
                 or a list of names. A name matches a port by exact name; if no port has exactly
                 that name, it matches every port whose name contains it, ignoring case
                 ("keystation" opens "Keystation 49:Keystation 49 MIDI 1 20:0"; with ALSA, whose
                 names end in changing client:port numbers, prefer such substrings). A name
                 matching nothing yet is opened when such a port appears (see poll_ports).
    client_name: our MIDI client name (JACK renames further clients bandmate-01, -02, ...)
    virtual:     also create an input port VIRTUAL_PORT_NAME ("bandmate in") others can connect to
    accept:      message types passed to the sink (controllers.base.DEFAULT_ACCEPT)
    backend:     a ready MidiBackend (tests: controllers.fake.FakeBackend); `api` is then unused
    poll_interval_s: how often the reader thread drains rtmidi's queues (adds <= this latency)
    drop_log_interval_s: at most one "dropped N malformed messages" line per this interval

    Raises MidiUnavailable when no MIDI system starts (the engine can go on without MIDI input).
    Each opened port gets a source id 1..999, not reused until the ids wrap around.
    """

    def __init__(
        self,
        sink: Sink,
        api: str = "auto",
        ports: Sequence[str] | str = "all",
        client_name: str = "bandmate",
        *,
        virtual: bool = False,
        accept: Iterable[str] = DEFAULT_ACCEPT,
        backend: MidiBackend | None = None,
        poll_interval_s: float = 0.001,
        drop_log_interval_s: float = 5.0,
    ):
        self._sink = sink
        self._client_name = client_name
        specs = [ports] if isinstance(ports, str) else list(ports)
        self._all = "all" in specs
        self._specs = [s for s in specs if s != "all"]
        self._accept = frozenset(accept)
        self._drop_log_interval_s = drop_log_interval_s
        self._next_drop_log = 0.0
        self._lock = threading.RLock()
        self._ports: dict[str, _Port] = {}      # by port name (virtual: by "virtual:<name>")
        self._port_list: tuple[_Port, ...] = ()  # snapshot for the delivery thread
        self._next_source = FIRST_PORT_SOURCE
        self._open_failed: set[str] = set()      # names whose opening failed (logged once)
        self._list_error_logged = False
        self._closed = False

        if backend is None:
            backend, skipped = open_backend(api, client_name, poll_interval_s)
            for note in skipped:
                sink.log(f"MIDI in: skipped {note}")
        self._backend = backend
        self.api: str = backend.name
        sink.log(f"MIDI in: using {self.api}")

        # close at interpreter exit if the owner did not (JACK clients, the reader thread)
        self._atexit = functools.partial(_close_at_exit, weakref.ref(self))
        atexit.register(self._atexit)
        try:
            if virtual:
                self._open_virtual(VIRTUAL_PORT_NAME)
            self.poll_ports()
            self._log_unmatched()
        except BaseException:
            self.close()
            raise

    # -- public -------------------------------------------------------------------------------

    def list_ports(self) -> list[str]:
        """Every source port the MIDI system shows now (ours included), in its order."""
        return self._backend.list_ports()

    @property
    def sources(self) -> dict[str, int]:
        """Open ports: name -> source id (the virtual port under its own name)."""
        return {p.name: p.source for p in self._port_list}

    def stats(self) -> dict[str, dict[str, int]]:
        """Per open port: messages received (passed on), ignored (filtered), dropped (malformed)."""
        return {
            p.name: {"source": p.source, "received": p.received, "ignored": p.ignored,
                     "dropped": p.dropped, "feed_errors": p.feed_errors}
            for p in self._port_list
        }

    def poll_ports(self) -> PortChanges:
        """Compare the port list with what is open: close ports that vanished (calling
        sink.source_gone for each) and open wanted ports that appeared. Thread-safe; may block
        for tens of ms (JACK client start), so call it from a worker thread when in asyncio."""
        changes = PortChanges()
        with self._lock:
            if self._closed:
                return changes
            self._flush_drop_report(time.monotonic())
            try:
                names = self._backend.list_ports()
            except Exception as exc:
                if not self._list_error_logged:
                    self._list_error_logged = True
                    self._sink.log(f"MIDI in: cannot list ports: {exc}")
                return changes
            self._list_error_logged = False
            present = set(names)

            for port in [p for p in self._ports.values() if not p.virtual and p.name not in present]:
                self._close_port(port)
                changes.gone.append(port.name)
                self._sink.log(f"MIDI in: {port.name!r} vanished, its notes released")
            self._open_failed &= present

            for name in self._wanted(names):
                if name in self._ports or name in self._open_failed:
                    continue
                if self._open(name):
                    changes.opened.append(name)
        return changes

    async def watch(self, interval_s: float = 0.5) -> None:
        """Poll for ports appearing and vanishing until close() or cancellation. Each poll runs
        in a worker thread (asyncio.to_thread) so opening a port never stalls the event loop."""
        while not self._closed:
            try:
                await asyncio.to_thread(self.poll_ports)
            except Exception as exc:  # never let the watcher die silently
                self._sink.log(f"MIDI in: port watcher error: {exc!r}")
            await asyncio.sleep(interval_s)

    def close(self) -> None:
        """Close every port (calling sink.source_gone for each, so held notes are released) and
        the backend. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            atexit.unregister(self._atexit)
            self._next_drop_log = 0.0
            self._flush_drop_report(time.monotonic())
            for port in list(self._ports.values()):
                self._close_port(port)
            try:
                self._backend.close()
            except Exception as exc:
                self._sink.log(f"MIDI in: error closing {self.api}: {exc}")

    def __enter__(self) -> "MidiInputs":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- matching -----------------------------------------------------------------------------

    def is_own_port(self, name: str) -> bool:
        """A port of one of bandmate's own clients ('bandmate:...', JACK's 'bandmate-01:...')."""
        client = name.split(":", 1)[0].strip()
        return re.fullmatch(re.escape(self._client_name) + r"(-\d+)?", client) is not None

    def _wanted(self, names: list[str]) -> list[str]:
        wanted: list[str] = []
        exact = {s for s in self._specs if s in names}
        for name in names:
            if self._all and not self.is_own_port(name) and "midi through" not in name.lower():
                wanted.append(name)
                continue
            low = name.lower()
            for spec in self._specs:
                if name == spec or (spec not in exact and spec.lower() in low):
                    wanted.append(name)
                    break
        return wanted

    def _log_unmatched(self) -> None:
        names = [p.name for p in self._port_list]
        for spec in self._specs:
            if not any(spec == n or spec.lower() in n.lower() for n in names):
                available = ", ".join(repr(n) for n in self._safe_list()) or "none"
                self._sink.log(f"MIDI in: no port matches {spec!r} yet (available: {available}); "
                               "it will be opened when it appears")
        if self._all and not any(not p.virtual for p in self._port_list):
            self._sink.log("MIDI in: no MIDI input ports found; plugged-in devices will be opened")

    def _safe_list(self) -> list[str]:
        try:
            return self._backend.list_ports()
        except Exception:
            return []

    # -- opening and closing ------------------------------------------------------------------

    def _take_source(self) -> int:
        in_use = {p.source for p in self._ports.values()}
        span = LAST_PORT_SOURCE - FIRST_PORT_SOURCE + 1
        for _ in range(span):
            src = self._next_source
            self._next_source = src + 1 if src < LAST_PORT_SOURCE else FIRST_PORT_SOURCE
            if src not in in_use:
                return src
        raise RuntimeError("more than 999 MIDI input ports open")

    def _publish(self) -> None:
        self._port_list = tuple(self._ports.values())

    def _open(self, name: str) -> bool:
        port = _Port(name, self._take_source(), virtual=False)
        try:
            port.handle = self._backend.open_port(name, self._make_on_bytes(port))
        except Exception as exc:
            self._open_failed.add(name)
            self._sink.log(f"MIDI in: could not open {name!r}: {exc}")
            return False
        self._ports[name] = port
        self._publish()
        self._sink.log(f"MIDI in: opened {name!r} (source {port.source})")
        return True

    def _open_virtual(self, name: str) -> None:
        port = _Port(name, self._take_source(), virtual=True)
        try:
            port.handle = self._backend.open_virtual(name, self._make_on_bytes(port))
        except Exception as exc:
            self._sink.log(f"MIDI in: could not create virtual port {name!r}: {exc}")
            return
        self._ports["virtual:" + name] = port
        self._publish()
        self._sink.log(f"MIDI in: virtual port {name!r} ready for connections (source {port.source})")

    def _close_port(self, port: _Port) -> None:
        key = ("virtual:" + port.name) if port.virtual else port.name
        self._ports.pop(key, None)
        try:
            if port.handle is not None:
                port.handle.close()  # delivers what is still queued, then no more
        except Exception as exc:
            self._sink.log(f"MIDI in: error closing {port.name!r}: {exc}")
        port.live = False  # belt and braces: nothing reaches the sink after source_gone
        self._publish()
        try:
            self._sink.source_gone(port.source)
        except Exception as exc:
            self._sink.log(f"MIDI in: sink.source_gone({port.source}) failed: {exc!r}")

    # -- the delivery path (the backend's reader thread) --------------------------------------

    def _make_on_bytes(self, port: _Port):
        feed = self._sink.feed
        realtime = getattr(self._sink, "realtime", None)   # optional: MIDI clock for sync
        accept = self._accept
        source = port.source
        decode = decode_midi

        def on_bytes(data: Sequence[int], delta: float | None = None) -> None:
            if not port.live:
                return
            # every message rtmidi queued moves the timeline, ignored and malformed ones too
            at = None
            if delta is not None:
                if delta > 0.0:
                    port.clock += delta
                at = port.clock
            if realtime is not None and data and data[0] in CLOCK_STATUS:
                self._realtime(port, data, at, realtime)
                return
            try:
                msg = decode(data)
            except MidiDecodeError as exc:
                self._dropped(port, data, str(exc))
                return
            except Exception as exc:  # not even a byte sequence
                self._dropped(port, data, repr(exc))
                return
            if msg is None or msg.type not in accept:
                port.ignored += 1
                return
            port.received += 1
            try:
                feed(msg, source, at)
            except Exception as exc:
                port.feed_errors += 1
                port.last_bad = f"sink.feed raised {exc!r}"
                self._maybe_report()

        return on_bytes

    def _realtime(self, port: _Port, data, at, realtime) -> None:
        """A clock, start, continue, stop or song position message: checked, then to
        sink.realtime(status, data, source, at) (data: the song position in 16ths, else 0)."""
        status = data[0]
        if status == 0xF2:
            if len(data) != 3 or (data[1] | data[2]) >> 7:
                self._dropped(port, data, "song position needs 2 data bytes 0..127")
                return
            value = data[1] | data[2] << 7
        elif len(data) != 1:
            self._dropped(port, data, f"0x{status:02X} is one byte, got {len(data)}")
            return
        else:
            value = 0
        port.received += 1
        try:
            realtime(status, value, port.source, at)
        except Exception as exc:
            port.feed_errors += 1
            port.last_bad = f"sink.realtime raised {exc!r}"
            self._maybe_report()

    def _dropped(self, port: _Port, data, reason: str) -> None:
        port.dropped += 1
        port.last_bad = f"{format_bytes(data)}: {reason}"
        self._maybe_report()

    def _maybe_report(self) -> None:
        now = time.monotonic()
        if now >= self._next_drop_log:
            self._flush_drop_report(now)

    def _flush_drop_report(self, now: float) -> None:
        """Log what was dropped since the last report; at most once per drop_log_interval_s."""
        if now < self._next_drop_log:
            return
        logged = False
        for port in self._port_list:
            dropped = port.dropped - port.reported
            failed = port.feed_errors - port.feed_reported
            if dropped <= 0 and failed <= 0:
                continue
            port.reported += dropped
            port.feed_reported += failed
            what = []
            if dropped > 0:
                what.append(f"dropped {dropped} malformed message{'s' if dropped != 1 else ''}")
            if failed > 0:
                what.append(f"{failed} message{'s' if failed != 1 else ''} the engine refused")
            self._sink.log(f"MIDI in: {port.name!r}: {', '.join(what)} (last: {port.last_bad})")
            logged = True
        if logged:
            self._next_drop_log = now + self._drop_log_interval_s
