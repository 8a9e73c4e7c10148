"""The computer keyboard as a piano, for players without a MIDI keyboard (control side, asyncio).

    a w s e d f t g y h u j k o l p ; '      the keys, laid out like a piano:
    C C# D D# E F F# G G# A A# B C C# D D# E F      (white keys on the home row)
    z / x  octave down / up       c / v  velocity down / up       Ctrl-D  stop the keyboard
    :      a command line (when the owner gives `on_command`, e.g. `:learn /keys/synth/cutoff_hz`
           then Enter arms MIDI learn while jamming; Esc or an empty line cancels)

Messages go to the sink as source 0 (controllers.base.SOURCE_KEYBOARD), channel 1.

Terminals report key presses only: there is no key-up, and a held key auto-repeats after an
initial delay (typically 0.25-0.66 s) at 25-33 Hz. KeyHold turns that into notes:
  1. A key that is not sounding starts a note (note_on). It sounds `first_hold_s` (0.35 s) if
     nothing else happens.
  2. An event for a sounding key less than `repeat_gap_s` (0.1 s) after the previous one is
     auto-repeat (nobody re-strikes one key that fast): the note goes on and ends
     `repeat_hold_s` (0.15 s) after the last repeat, i.e. shortly after the key is let go.
  3. Any other event for a sounding key is a new strike: note_off then note_on (repeated
     notes, like the start of "Twinkle Twinkle", are re-attacked).
  The terminal's first auto-repeat, after its initial delay, looks like rule 3. To avoid
  re-attacking (or briefly silencing) every held note there, KeyHold learns the initial delay
  from the first long hold (a strike followed by a fast stream) and from then on:
  * a fresh note sounds at least `delay + 0.08 s`, so it is still sounding when repeats start;
  * an event `delay +- 0.04 s` after a strike counts as the first auto-repeat, not a strike.
  The cost: until the delay is learnt, the first long-held note re-attacks once; afterwards a
  tap sounds about the terminal's repeat delay, and re-striking a key exactly at that delay is
  heard as one longer note. `repeat_delay_s` presets the delay (no learning needed).
"""
from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from typing import IO

import mido

from controllers.base import SOURCE_KEYBOARD, Sink

PIANO_KEYS = "awsedftgyhujkolp;'"
KEY_OFFSETS = {ch: i for i, ch in enumerate(PIANO_KEYS)}
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
OCTAVE_MIN, OCTAVE_MAX = -1, 8
VELOCITIES = (20, 40, 64, 80, 100, 115, 127)
OCTAVE_DOWN, OCTAVE_UP, VELOCITY_DOWN, VELOCITY_UP = "z", "x", "c", "v"
CTRL_D = "\x04"


def key_to_note(ch: str, octave: int) -> int | None:
    """The MIDI note of piano key `ch` ('a' = C of `octave`, C4 = 60), or None for other keys
    or notes outside 0..127. Upper case (Shift, Caps Lock) plays the same note."""
    offset = KEY_OFFSETS.get(ch.lower()) if len(ch) == 1 else None
    if offset is None:
        return None
    note = 12 * (octave + 1) + offset
    return note if 0 <= note <= 127 else None


def note_name(note: int) -> str:
    """'C4' for 60."""
    return f"{NOTE_NAMES[note % 12]}{note // 12 - 1}"


@dataclass(slots=True)
class _Held:
    note: int
    t_strike: float
    t_last: float
    repeating: bool
    deadline: float
    delay_candidate: float | None  # time since this key's previous strike, if that had no repeats


class KeyHold:
    """Note on/off from press-only key events (see the module docstring). Pure: times are passed in.

    press(key, note, now) -> actions; expire(now) -> notes to release; release_all() -> notes.
    An action is (True, note) for note_on or (False, note) for note_off, in order.
    """

    def __init__(self, first_hold_s: float = 0.35, repeat_hold_s: float = 0.15,
                 repeat_gap_s: float = 0.1, repeat_delay_s: float | None = None,
                 delay_tolerance_s: float = 0.04):
        self.first_hold_s = first_hold_s
        self.repeat_hold_s = repeat_hold_s
        self.repeat_gap_s = repeat_gap_s
        self.repeat_delay_s = repeat_delay_s  # the terminal's auto-repeat delay, learnt if None
        self.delay_tolerance_s = delay_tolerance_s
        self.held: dict[str, _Held] = {}
        self._last_strike: dict[str, tuple[float, bool]] = {}  # key -> (time, repeats followed)

    @property
    def effective_first_hold_s(self) -> float:
        if self.repeat_delay_s is None:
            return self.first_hold_s
        return max(self.first_hold_s, self.repeat_delay_s + 2 * self.delay_tolerance_s)

    def _strike(self, key: str, note: int, now: float) -> _Held:
        last = self._last_strike.get(key)
        candidate = None
        if last is not None and not last[1] and 0.15 <= now - last[0] <= 1.2:
            candidate = now - last[0]
        self._last_strike[key] = (now, False)
        h = self.held[key] = _Held(note, now, now, False, now + self.effective_first_hold_s, candidate)
        return h

    def _repeat(self, key: str, h: _Held, now: float) -> None:
        h.repeating = True
        h.t_last = now
        h.deadline = now + self.repeat_hold_s
        self._last_strike[key] = (h.t_strike, True)

    def press(self, key: str, note: int, now: float) -> list[tuple[bool, int]]:
        h = self.held.get(key)
        if h is None:
            self._strike(key, note, now)
            return [(True, note)]
        if h.note != note:  # octave changed while the key was sounding
            del self.held[key]
            self._strike(key, note, now)
            return [(False, h.note), (True, note)]
        gap = now - h.t_last
        if gap < self.repeat_gap_s:
            if not h.repeating and h.delay_candidate is not None:
                # the strike before this fast stream was really the terminal's first repeat
                d = h.delay_candidate
                self.repeat_delay_s = d if self.repeat_delay_s is None else 0.5 * (self.repeat_delay_s + d)
            self._repeat(key, h, now)
            return []
        if (not h.repeating and self.repeat_delay_s is not None
                and abs(gap - self.repeat_delay_s) <= self.delay_tolerance_s):
            self._repeat(key, h, now)  # the terminal's first auto-repeat
            return []
        del self.held[key]
        self._strike(key, note, now)
        return [(False, note), (True, note)]

    def expire(self, now: float) -> list[int]:
        """Release the keys whose time is up; returns their notes."""
        done = [k for k, h in self.held.items() if h.deadline <= now]
        return [self.held.pop(k).note for k in done]

    def next_deadline(self) -> float | None:
        return min((h.deadline for h in self.held.values()), default=None)

    def release_all(self) -> list[int]:
        notes = [h.note for h in self.held.values()]
        self.held.clear()
        return notes


def _skip_escape(text: str, i: int) -> int:
    """Index after the escape sequence (arrow keys, F-keys, ...) starting at text[i] == ESC."""
    j = i + 1
    if j < len(text) and text[j] in "[O":
        j += 1
        while j < len(text) and not ("\x40" <= text[j] <= "\x7e"):
            j += 1
        return j + 1
    return j


class TerminalKeyboard:
    """Plays the sink from the terminal. `await run()` until stop(), Ctrl-D or cancellation.

    stdin: file or fd to read keys from (default sys.stdin); when it is not a terminal, run()
    logs why and returns at once. The terminal is put into cbreak mode (keys arrive one by one,
    no echo; Ctrl-C still raises KeyboardInterrupt) and restored on every way out of run();
    notes still sounding are released then.
    out: where the help line goes (default sys.stdout).
    hold: the KeyHold policy (timings); octave/velocity: the starting values.
    """

    def __init__(self, sink: Sink, *, source: int = SOURCE_KEYBOARD, channel: int = 0,
                 octave: int = 4, velocity: int = 100, stdin: IO | int | None = None,
                 out: IO | None = None, hold: KeyHold | None = None,
                 on_command=None):
        self.sink, self.source, self.channel = sink, source, channel
        self.on_command = on_command      # text -> reply, for ':' command lines
        self._command: str | None = None  # the command line being typed
        self.octave = max(OCTAVE_MIN, min(OCTAVE_MAX, octave))
        self._vel_index = min(range(len(VELOCITIES)), key=lambda i: abs(VELOCITIES[i] - velocity))
        self.hold = hold if hold is not None else KeyHold()
        self._stdin = sys.stdin if stdin is None else stdin
        self._out = out
        self._loop: asyncio.AbstractEventLoop | None = None
        self._done: asyncio.Event | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._stop_requested = False

    @property
    def velocity(self) -> int:
        return VELOCITIES[self._vel_index]

    def _fd(self) -> int | None:
        try:
            fd = self._stdin if isinstance(self._stdin, int) else self._stdin.fileno()
        except (AttributeError, OSError, ValueError):
            return None
        return fd if os.isatty(fd) else None

    def help_text(self) -> str:
        lo = 12 * (self.octave + 1)
        return (f"keyboard: a w s e d f t g y h u j k o l p ; ' = {note_name(lo)}..{note_name(lo + 17)}"
                f" | z/x octave -/+ | c/v velocity -/+ ({self.velocity}) | Ctrl-D stops")

    def _say(self, text: str) -> None:
        out = self._out if self._out is not None else sys.stdout
        try:
            out.write(text + "\n")
            out.flush()
        except (OSError, ValueError):
            pass

    async def run(self) -> None:
        fd = self._fd()
        if fd is None:
            self.sink.log("keyboard: stdin is not a terminal, so the computer-keyboard piano is off")
            return
        try:
            import termios
            import tty
        except ImportError:
            self.sink.log("keyboard: the computer-keyboard piano needs a Unix terminal (termios)")
            return
        self._loop = asyncio.get_running_loop()
        self._done = asyncio.Event()
        if self._stop_requested:  # stop() came before run()
            self._stop_requested = False
            self._loop = self._done = None
            return
        saved = termios.tcgetattr(fd)
        reading = False
        try:
            tty.setcbreak(fd, termios.TCSANOW)
            self._loop.add_reader(fd, self._on_readable, fd)
            reading = True
            self._say(self.help_text())
            await self._done.wait()
        finally:
            if reading:
                self._loop.remove_reader(fd)
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            try:
                for note in self.hold.release_all():
                    self._send(False, note)
            finally:
                termios.tcsetattr(fd, termios.TCSADRAIN, saved)
                self._loop = self._done = None
                self._stop_requested = False

    def stop(self) -> None:
        """End run() (thread-safe; before run() it makes run() return at once)."""
        self._stop_requested = True
        loop, done = self._loop, self._done
        if loop is None or done is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            done.set()
        elif not loop.is_closed():
            loop.call_soon_threadsafe(done.set)

    # -- input -----------------------------------------------------------------------------

    def _on_readable(self, fd: int) -> None:
        try:
            data = os.read(fd, 1024)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # EOF: the terminal went away
            self.stop()
            return
        self.handle_text(data.decode("utf-8", errors="ignore"), self._loop.time())

    def handle_text(self, text: str, now: float) -> None:
        """Act on typed characters at time `now` (loop.time() seconds)."""
        i = 0
        while i < len(text):
            ch = text[i]
            if self._command is not None:
                if ch == "\x1b":           # Esc (or an arrow key's sequence) cancels
                    i = _skip_escape(text, i)
                else:
                    i += 1
                self._command_key(ch)
                continue
            if ch == ":" and self.on_command is not None:
                i += 1
                self._command = ""
                self._echo(":")
                continue
            if ch == "\x1b":
                i = _skip_escape(text, i)
                continue
            i += 1
            note = key_to_note(ch, self.octave)
            if note is not None:
                for on, n in self.hold.press(ch.lower(), note, now):
                    self._send(on, n)
            elif ch in (OCTAVE_DOWN, OCTAVE_UP):
                step = -1 if ch == OCTAVE_DOWN else 1
                self.octave = max(OCTAVE_MIN, min(OCTAVE_MAX, self.octave + step))
                self._say(self.help_text())
            elif ch in (VELOCITY_DOWN, VELOCITY_UP):
                step = -1 if ch == VELOCITY_DOWN else 1
                self._vel_index = max(0, min(len(VELOCITIES) - 1, self._vel_index + step))
                self._say(self.help_text())
            elif ch == CTRL_D:
                self.stop()
        self._reschedule()

    def _echo(self, text: str) -> None:
        out = self._out if self._out is not None else sys.stdout
        try:
            out.write(text)
            out.flush()
        except (OSError, ValueError):
            pass

    def _command_key(self, ch: str) -> None:
        """One character of a ':' command line (no piano meanwhile)."""
        if ch in "\r\n":
            text, self._command = self._command, None
            self._echo("\n")
            if text.strip():
                try:
                    reply = self.on_command(text.strip())
                except Exception as exc:  # noqa: BLE001 - a command never ends the keyboard
                    reply = f"{text.split()[0]}: {exc!r}"
                if reply:
                    self._say(reply)
        elif ch == "\x1b" or ch == CTRL_D:
            self._command = None
            self._echo("\n")
        elif ch in "\x7f\b":
            if self._command:
                self._command = self._command[:-1]
                self._echo("\b \b")
        elif ch.isprintable():
            self._command += ch
            self._echo(ch)

    def _send(self, on: bool, note: int) -> None:
        if on:
            msg = mido.Message("note_on", channel=self.channel, note=note, velocity=self.velocity)
        else:
            msg = mido.Message("note_off", channel=self.channel, note=note, velocity=64)
        self.sink.feed(msg, self.source)

    def _reschedule(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.hold.next_deadline()
        if deadline is not None and self._loop is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        # +2 ms: asyncio may run a timer a hair before its time; never spin on it
        for note in self.hold.expire(self._loop.time() + 0.002):
            self._send(False, note)
        self._reschedule()
