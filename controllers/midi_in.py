"""MIDI input ports -> the engine's sink (control side; delivery runs on rtmidi's threads).

Why python-rtmidi directly and not mido's rtmidi backend (`mido.Backend('mido.backends.rtmidi')`):
  * Listing ports: mido's `get_input_names()` builds a throw-away rtmidi MidiIn *and* MidiOut per
    call. With JACK every one is a new JACK client (about 10-20 ms and a thread each), and the
    watcher lists ports twice a second. Here one long-lived "probe" MidiIn does the listing.
  * The hot path: mido's Input re-tokenizes the bytes rtmidi already split into messages, behind
    an RLock, then validates the message again. Here one function (controllers.base.decode_midi)
    checks the bytes once and builds the Message with skip_checks (~1.5 us), and the callback
    carries its port as the rtmidi callback `data`, so it needs no lookups or locks.
  * Closing safely: with JACK, rtmidi calls Python on the JACK process thread, which
    jack_client_close cancels (pthread_cancel) while closing. The port must stop calling into
    Python before it is closed (cancel_callback, then a short GIL-free grace period), which
    needs control over the close sequence that mido's port does not give.
  * Failures stay ours: a missing ALSA sequencer, a JACK server that is not running or a port
    that vanished between listing and opening all come out as one clear log line, not tracebacks.
mido is still the message type (mido.Message) and the parser of MIDI files.

Threads:
  * `feed` runs on rtmidi's input thread of each port (JACK: the JACK process thread of that
    port's client; ALSA/CoreMIDI/WinMM: rtmidi's or the OS's MIDI thread). Ports deliver
    concurrently. Nothing on that path logs per message, takes a lock or raises.
  * `poll_ports`, `close` and the constructor take an internal lock and may block for tens of
    ms (opening a JACK client); `watch()` therefore runs `poll_ports` in a worker thread.
"""
from __future__ import annotations

import asyncio
import os
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from controllers.base import (
    DEFAULT_ACCEPT,
    FIRST_PORT_SOURCE,
    LAST_PORT_SOURCE,
    MidiBackend,
    MidiDecodeError,
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
_RTMIDI_API_ATTR = {
    "alsa": "API_LINUX_ALSA",
    "jack": "API_UNIX_JACK",
    "coremidi": "API_MACOSX_CORE",
    "windows": "API_WINDOWS_MM",
}


class MidiUnavailable(RuntimeError):
    """No usable MIDI system (the message says why for each API tried)."""


# --- the python-rtmidi backend --------------------------------------------------------------


def _rtmidi_trampoline(event, on_bytes) -> None:
    """rtmidi callback: event = (message bytes, delta seconds); data = the port's on_bytes."""
    on_bytes(event[0])


def _local_port_name(source_port: str) -> str:
    """Our receiving port's name, e.g. 'from Keystation 49' (no ':' - JACK separates with it)."""
    return ("from " + source_port.replace(":", " "))[:60]


class _RtmidiHandle:
    def __init__(self, midi_in, grace_s: float):
        self._mi = midi_in
        self._grace_s = grace_s

    def close(self) -> None:
        mi, self._mi = self._mi, None
        if mi is None:
            return
        # Stop calling into Python first, then let an in-flight callback (which may be waiting
        # for the GIL on a JACK/ALSA thread) finish while we sleep without the GIL. Only then
        # close: JACK's client close cancels its process thread, ALSA's joins its input thread,
        # and neither may happen while that thread is inside (or waiting to enter) Python.
        mi.cancel_callback()
        time.sleep(self._grace_s)
        mi.close_port()
        mi.delete()


class RtmidiBackend:
    """One MIDI API through python-rtmidi. One rtmidi MidiIn (one ALSA/JACK client) per open port,
    plus a long-lived probe MidiIn that only lists ports. Raises OSError (rtmidi.SystemError)
    when the API cannot start, e.g. 'JACK server not running?'."""

    def __init__(self, api: str, client_name: str = "bandmate", close_grace_s: float = 0.01):
        if rtmidi is None:
            raise OSError("python-rtmidi is not installed")
        self.name = api
        self._api = getattr(rtmidi, _RTMIDI_API_ATTR[api])
        self._client_name = client_name
        self._grace_s = close_grace_s
        self._probe = rtmidi.MidiIn(self._api, name=client_name)

    def list_ports(self) -> list[str]:
        return list(self._probe.get_ports())

    def _new_in(self, on_bytes):
        mi = rtmidi.MidiIn(self._api, name=self._client_name)
        mi.ignore_types(sysex=True, timing=True, active_sense=True)  # dropped in C, never reach Python
        mi.set_callback(_rtmidi_trampoline, on_bytes)
        return mi

    def open_port(self, name: str, on_bytes) -> PortHandle:
        mi = self._new_in(on_bytes)
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
            mi.cancel_callback()
            mi.close_port()
            mi.delete()
            if isinstance(exc, OSError):
                raise
            if isinstance(exc, Exception):
                raise OSError(str(exc)) from exc
            raise
        return _RtmidiHandle(mi, self._grace_s)

    def open_virtual(self, name: str, on_bytes) -> PortHandle:
        mi = self._new_in(on_bytes)
        try:
            mi.open_virtual_port(name)
        except Exception as exc:  # Windows MM: NotImplementedError
            mi.cancel_callback()
            mi.delete()
            raise OSError(f"virtual ports are not supported with {self.name}: {exc}") from exc
        return _RtmidiHandle(mi, self._grace_s)

    def close(self) -> None:
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


def open_backend(api: str = "auto", client_name: str = "bandmate") -> tuple[RtmidiBackend, list[str]]:
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
            return RtmidiBackend(name, client_name), skipped
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


class _Port:
    """One open port. Counters are written only by that port's delivery thread."""

    __slots__ = ("name", "source", "virtual", "handle", "live", "received", "ignored",
                 "dropped", "reported", "feed_errors", "feed_reported", "last_bad")

    def __init__(self, name: str, source: int, virtual: bool):
        self.name, self.source, self.virtual = name, source, virtual
        self.handle: PortHandle | None = None
        self.live = True
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
        self._port_list: tuple[_Port, ...] = ()  # snapshot for the delivery threads
        self._next_source = FIRST_PORT_SOURCE
        self._open_failed: set[str] = set()      # names whose opening failed (logged once)
        self._unmatched_logged: set[str] = set()
        self._list_error_logged = False
        self._closed = False

        if backend is None:
            backend, skipped = open_backend(api, client_name)
            for note in skipped:
                sink.log(f"MIDI in: skipped {note}")
        self._backend = backend
        self.api: str = backend.name
        sink.log(f"MIDI in: using {self.api}")

        if virtual:
            self._open_virtual(VIRTUAL_PORT_NAME)
        self.poll_ports()
        self._log_unmatched()

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
        port.live = False  # late deliveries are dropped from here on
        key = ("virtual:" + port.name) if port.virtual else port.name
        self._ports.pop(key, None)
        self._publish()
        try:
            if port.handle is not None:
                port.handle.close()
        except Exception as exc:
            self._sink.log(f"MIDI in: error closing {port.name!r}: {exc}")
        try:
            self._sink.source_gone(port.source)
        except Exception as exc:
            self._sink.log(f"MIDI in: sink.source_gone({port.source}) failed: {exc!r}")

    # -- the delivery path (backend threads) --------------------------------------------------

    def _make_on_bytes(self, port: _Port):
        feed = self._sink.feed
        accept = self._accept
        source = port.source
        decode = decode_midi

        def on_bytes(data: Sequence[int]) -> None:
            if not port.live:
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
                feed(msg, source)
            except Exception as exc:
                port.feed_errors += 1
                port.last_bad = f"sink.feed raised {exc!r}"
                self._maybe_report()

        return on_bytes

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
