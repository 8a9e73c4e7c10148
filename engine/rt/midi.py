"""Raw MIDI bytes → engine events, inside the JACK process callback (AUDIO THREAD ONLY).

Only channel voice messages a player's controller sends are turned into events; everything
else (sysex, clock, active sensing, malformed data) is skipped and counted, never trusted.
"""
from numba import njit

from engine.rt.dsp import JIT
from engine.rt.events import (
    K_ALL_NOTES_OFF, K_MOD_WHEEL, K_NOTE_OFF, K_NOTE_ON, K_PITCH_BEND, K_SUSTAIN,
)

IGNORED = 0
MALFORMED = -1


@njit(**JIT)
def parse(data, size):
    """Decode one complete MIDI message `data[:size]` (uint8). Returns (kind, channel, a, b):
    kind is an events.K_* code, IGNORED (valid but not for us) or MALFORMED. For pitch bend,
    b is the bend in -1..1 (the caller scales it by the part's bend range)."""
    if size < 1:
        return MALFORMED, 0, 0.0, 0.0
    status = int(data[0])
    if status < 0x80:
        return MALFORMED, 0, 0.0, 0.0
    if status >= 0xF0:
        return IGNORED, 0, 0.0, 0.0
    kind = status & 0xF0
    ch = status & 0x0F
    need = 2 if (kind == 0xC0 or kind == 0xD0) else 3
    if size < need:
        return MALFORMED, ch, 0.0, 0.0
    d1 = int(data[1])
    d2 = int(data[2]) if need == 3 else 0
    if d1 > 127 or d2 > 127:
        return MALFORMED, ch, 0.0, 0.0
    if kind == 0x90 and d2 > 0:
        return K_NOTE_ON, ch, float(d1), d2 / 127.0
    if kind == 0x80 or kind == 0x90:
        return K_NOTE_OFF, ch, float(d1), 0.0
    if kind == 0xE0:
        return K_PITCH_BEND, ch, 0.0, max(((d2 << 7) | d1) - 8192, -8191) / 8191.0
    if kind == 0xB0:
        if d1 == 64:
            return K_SUSTAIN, ch, 0.0, 1.0 if d2 >= 64 else 0.0
        if d1 == 1:
            return K_MOD_WHEEL, ch, 0.0, d2 / 127.0
        if d1 == 120 or d1 == 123:
            return K_ALL_NOTES_OFF, ch, 0.0, 0.0
    return IGNORED, ch, 0.0, 0.0


@njit(inline="always", **JIT)
def message_size(status):
    """Bytes of a complete message with this status byte (channel voice, song position and
    select, realtime); what K_MIDI_OUT rows carry."""
    hi = status & 0xF0
    if hi == 0xC0 or hi == 0xD0 or status == 0xF1 or status == 0xF3:
        return 2
    if hi < 0xF0 or status == 0xF2:
        return 3
    return 1


@njit(**JIT)
def control_report(data, size):
    """Whether the control side needs message `data[:size]` raw (the MIDI mapper's controls:
    control change, program change, pitch bend; the clock follower's realtime and song
    position): 1 yes, 0 no, MALFORMED for a song position pointer without its two data bytes."""
    if size < 1:
        return 0
    status = int(data[0])
    hi = status & 0xF0
    if hi == 0xB0 or hi == 0xC0 or hi == 0xE0:
        return 1
    if status == 0xF8 or status == 0xFA or status == 0xFB or status == 0xFC:
        return 1
    if status == 0xF2:
        if size < 3 or int(data[1]) > 127 or int(data[2]) > 127:
            return MALFORMED
        return 1
    return 0
