"""What every controller shares (control side): the sink contract, source ids, the MIDI byte decoder.

A controller turns some input (a MIDI port, the computer keyboard, a MIDI file) into `mido.Message`s
and hands them to the engine's *sink*. Controllers never touch the audio thread; the sink stamps
arrival times and turns messages into engine events.

Source ids (the `source` argument of every sink call) are small ints:
    0          the computer keyboard (controllers.keyboard)
    1..999     MIDI input ports, one id per opened port (controllers.midi_in)
    1000..     MIDI files played back
A note-off releases the voice its *source* started, and `source_gone(source)` releases all of them.
"""
from __future__ import annotations

from typing import Callable, Protocol, Sequence, runtime_checkable

import mido

SOURCE_KEYBOARD = 0
FIRST_PORT_SOURCE = 1
LAST_PORT_SOURCE = 999
FIRST_FILE_SOURCE = 1000

# Channel messages a controller passes on to the engine. Everything else (sysex, clock, active
# sensing, song position, program change, ...) is ignored for now.
DEFAULT_ACCEPT: frozenset[str] = frozenset(
    {"note_on", "note_off", "control_change", "pitchwheel", "aftertouch", "polytouch"}
)

# Controller numbers the engine cares about (for reference; they all pass as control_change).
CC_MOD_WHEEL = 1
CC_SUSTAIN = 64
CC_ALL_SOUND_OFF = 120
CC_ALL_NOTES_OFF = 123


@runtime_checkable
class Sink(Protocol):
    """The engine's input side, as controllers see it.

    Threads: `feed` is called from whichever thread received the message: MidiInputs' reader
    thread "bandmate-midi-in" (every MIDI port, one message at a time), the asyncio thread
    (computer keyboard), a file player, a test. So calls for different sources can come from
    different threads at once; an implementation must be thread-safe, cheap, and must not block
    for long (it delays every MIDI port behind it).
    Ordering: for one source, `feed` calls arrive in order, and no `feed` for a source follows
    its `source_gone`.
    """

    def feed(self, msg: mido.Message, source: int, at: float | None = None) -> None:
        """One incoming message. `at`: when the MIDI backend received it, in seconds on that
        source's own timeline (the sum of the backend's delta times since the source's first
        message, stamped on the backend's thread, so not delayed by Python), or None when the
        source has no such stamp (the sink then stamps the arrival time itself)."""

    def source_gone(self, source: int) -> None:
        """The source vanished (port unplugged, controller closed): release every note it started."""

    def log(self, text: str) -> None:
        """A human-readable status line, e.g. "MIDI in: opened 'Keystation 49' (source 1)"."""

    # Optional: `realtime(status, data, source, at)` receives MIDI clock (0xF8), start (0xFA),
    # continue (0xFB), stop (0xFC) and song position (0xF2, `data` in 16ths; else 0) with the
    # same `at` as feed; a sink without it never sees them (engine.control.live_input has it).


# --- MIDI backends (port discovery and delivery of raw bytes) ---------------------------------

OnBytes = Callable[[Sequence[int], "float | None"], None]
"""A port's delivery function: called with the bytes of one complete MIDI message and the
backend's delta time (seconds since the port's previous message, measured on the backend's own
thread; 0 for the first; None if the backend has no times), on the backend's reader thread. It
does not raise (controllers.midi_in catches everything)."""


class PortHandle(Protocol):
    def close(self) -> None:
        """Stop delivery and release the port. After it returns, `on_bytes` is not called again."""


class MidiBackend(Protocol):
    """A MIDI system as MidiInputs uses it: list source ports, connect to one, make a virtual one.

    Implementations: controllers.midi_in.RtmidiBackend (ALSA, JACK, CoreMIDI, Windows MM via
    python-rtmidi) and controllers.fake.FakeBackend (in-memory, for tests).
    """

    name: str  # "alsa", "jack", "coremidi", "windows", "fake"

    def list_ports(self) -> list[str]:
        """Names of the ports we could receive from (other programs' and devices' outputs)."""

    def open_port(self, name: str, on_bytes: OnBytes) -> PortHandle:
        """Receive from port `name`; raise OSError if it does not exist (any more) or cannot open."""

    def open_virtual(self, name: str, on_bytes: OnBytes) -> PortHandle:
        """Create an input port `name` that other programs can connect to; OSError if unsupported."""

    def close(self) -> None:
        """Release the backend (open handles are closed by their owner first)."""


# --- decoding raw bytes -----------------------------------------------------------------------


class MidiDecodeError(ValueError):
    """Bytes that are not one well-formed MIDI message."""


# data bytes after the status byte, by the status byte's high nibble
_CHANNEL_LENGTH = {0x80: 3, 0x90: 3, 0xA0: 3, 0xB0: 3, 0xC0: 2, 0xD0: 2, 0xE0: 3}
# defined system messages: sysex, system common, real time (ignored, not passed on)
_SYSTEM_IGNORED = frozenset({0xF0, 0xF1, 0xF2, 0xF3, 0xF6, 0xF7, 0xF8, 0xFA, 0xFB, 0xFC, 0xFE, 0xFF})

_Message = mido.Message


def decode_midi(data: Sequence[int]) -> mido.Message | None:
    """Decode the bytes of ONE complete MIDI message, as rtmidi delivers them.

    Returns a mido.Message for a channel message; None for a well-formed system message we
    ignore (sysex, clock, start/stop, active sensing, system common). Raises MidiDecodeError for
    anything else: empty input, no status byte (running status is resolved by the MIDI driver,
    so a message starting with a data byte is garbage), the wrong number of bytes, a data byte
    >= 0x80, or an undefined status (0xF4, 0xF5, 0xF9, 0xFD).

    A note_on with velocity 0 is returned as note_off (velocity 64, "no release velocity"), so the
    engine sees one form of note-off. Messages are built with skip_checks: the checks here
    already guarantee valid values (about 1.5 us per message).
    """
    n = len(data)
    if n == 0:
        raise MidiDecodeError("empty message")
    status = data[0]
    if status < 0x80:
        raise MidiDecodeError("no status byte (stray data or running status)")
    if status >= 0xF0:
        if status in _SYSTEM_IGNORED:
            return None
        if status > 0xFF:
            raise MidiDecodeError(f"not a byte: {status}")
        raise MidiDecodeError(f"undefined status byte 0x{status:02X}")
    kind = status & 0xF0
    channel = status & 0x0F
    want = _CHANNEL_LENGTH[kind]
    if n != want:
        raise MidiDecodeError(f"status 0x{status:02X} needs {want} bytes, got {n}")
    d1 = data[1]
    d2 = data[2] if want == 3 else 0
    if (d1 | d2) >> 7:
        raise MidiDecodeError("data byte out of range 0..127")
    if kind == 0x90:
        if d2:
            return _Message("note_on", skip_checks=True, channel=channel, note=d1, velocity=d2)
        return _Message("note_off", skip_checks=True, channel=channel, note=d1, velocity=64)
    if kind == 0x80:
        return _Message("note_off", skip_checks=True, channel=channel, note=d1, velocity=d2)
    if kind == 0xB0:
        return _Message("control_change", skip_checks=True, channel=channel, control=d1, value=d2)
    if kind == 0xE0:
        return _Message("pitchwheel", skip_checks=True, channel=channel, pitch=(d1 | d2 << 7) - 8192)
    if kind == 0xD0:
        return _Message("aftertouch", skip_checks=True, channel=channel, value=d1)
    if kind == 0xA0:
        return _Message("polytouch", skip_checks=True, channel=channel, note=d1, value=d2)
    return _Message("program_change", skip_checks=True, channel=channel, program=d1)


def format_bytes(data: Sequence[int], limit: int = 8) -> str:
    """'90 3c 40' (at most `limit` bytes, then '...'), for log lines about bad input."""
    try:
        head = " ".join(f"{b:02x}" for b in list(data[:limit]))
    except (TypeError, ValueError):
        return repr(data)[:40]
    return head + (f" ... ({len(data)} bytes)" if len(data) > limit else "")
