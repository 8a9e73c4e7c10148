"""Test doubles for the controller layer (control side): an in-memory MIDI backend and a sink.

    backend = FakeBackend()
    keys = backend.plug("Keystation 49")          # a device appears
    sink = RecordingSink()
    inputs = MidiInputs(sink, backend=backend)     # opens it ("all")
    keys.send(mido.Message("note_on", note=60))    # delivered synchronously, like a port would
    keys.unplug()                                  # the device vanishes
    inputs.poll_ports()                            # -> sink.source_gone(1)

Delivery is synchronous (on the thread that calls send), so tests need no waiting; the bytes go
through the same decode/filter path as a real port's.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Sequence

import mido

from controllers.base import OnBytes


class FakePort:
    """A source port: whatever is sent into it reaches every MidiInputs that opened it."""

    def __init__(self, backend: "FakeBackend", name: str):
        self.backend, self.name = backend, name
        self.plugged = True
        self._listeners: list[OnBytes] = []

    @property
    def is_open(self) -> bool:
        """Someone is receiving from this port."""
        return bool(self._listeners)

    def send(self, msg: mido.Message, delta: float | None = None) -> None:
        self.send_bytes(msg.bytes(), delta)

    def send_bytes(self, data: Sequence[int], delta: float | None = None) -> None:
        """Deliver raw bytes, as one message - malformed ones included. `delta`: the backend's
        delta time (seconds since this port's previous message), as rtmidi gives it; None: a
        backend without times."""
        if not self.plugged:
            raise OSError(f"fake port {self.name!r} is unplugged")
        for on_bytes in list(self._listeners):
            on_bytes(data, delta)

    def unplug(self) -> None:
        """The device vanishes: it leaves the port list and delivers nothing more."""
        self.plugged = False
        self._listeners.clear()
        self.backend.ports.pop(self.name, None)


class _FakeConnection:
    def __init__(self, port: FakePort, on_bytes: OnBytes):
        self.port, self.on_bytes = port, on_bytes
        port._listeners.append(on_bytes)

    def close(self) -> None:
        if self.on_bytes in self.port._listeners:
            self.port._listeners.remove(self.on_bytes)


class FakeBackend:
    """A MidiBackend (controllers.base) held in memory. `plug(name)` makes a port appear."""

    name = "fake"

    def __init__(self, *names: str):
        self.ports: dict[str, FakePort] = {}
        self.virtual: dict[str, FakePort] = {}  # ports other programs could connect to
        self.closed = False
        for name in names:
            self.plug(name)

    def plug(self, name: str) -> FakePort:
        if name in self.ports:
            raise ValueError(f"fake port {name!r} exists")
        port = self.ports[name] = FakePort(self, name)
        return port

    def list_ports(self) -> list[str]:
        return list(self.ports)

    def open_port(self, name: str, on_bytes: OnBytes) -> _FakeConnection:
        port = self.ports.get(name)
        if port is None:
            raise OSError(f"port {name!r} is gone")
        return _FakeConnection(port, on_bytes)

    def open_virtual(self, name: str, on_bytes: OnBytes) -> _FakeConnection:
        port = FakePort(self, name)
        self.virtual[name] = port
        return _FakeConnection(port, on_bytes)

    def close(self) -> None:
        self.closed = True


class RecordingSink:
    """A Sink (controllers.base) that records every call, thread-safe, with arrival times.

    fed:   [(perf_counter time, source, msg)]    gone: [source]    logs: [text]
    stamps: [the backend time `at` of each fed message (None: none)], in the order of `fed`
    events: every call in order: ("feed", source, msg) | ("gone", source) | ("log", text)
    """

    def __init__(self, echo: Callable[[str], None] | None = None):
        self.fed: list[tuple[float, int, mido.Message]] = []
        self.stamps: list[float | None] = []
        self.gone: list[int] = []
        self.logs: list[str] = []
        self.events: list[tuple] = []
        self._echo = echo
        self._cond = threading.Condition()

    def feed(self, msg: mido.Message, source: int, at: float | None = None) -> None:
        t = time.perf_counter()
        with self._cond:
            self.fed.append((t, source, msg))
            self.stamps.append(at)
            self.events.append(("feed", source, msg))
            self._cond.notify_all()

    def source_gone(self, source: int) -> None:
        with self._cond:
            self.gone.append(source)
            self.events.append(("gone", source))
            self._cond.notify_all()

    def log(self, text: str) -> None:
        if self._echo is not None:
            self._echo(text)
        with self._cond:
            self.logs.append(text)
            self.events.append(("log", text))
            self._cond.notify_all()

    def messages(self, source: int | None = None) -> list[mido.Message]:
        with self._cond:
            return [m for _, s, m in self.fed if source is None or s == source]

    def wait_for(self, predicate: Callable[["RecordingSink"], bool], timeout: float = 1.0) -> bool:
        """Block until predicate(self) holds (checked under the lock) or timeout; returns it."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)
