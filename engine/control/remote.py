"""What every network control (OSC over UDP, MQTT) shares (control side: the asyncio thread).

`Remote` applies a remote client's commands to a `Session` through its one address space: a
parameter by address (its own value, or 0..1 on its range and curve), the tempo, notes (held
notes tracked per remote, released when it closes), release and panic. Every command is checked
first and raises `CommandError` with a reason the caller sends back; a bad one changes nothing.

Words (engine.words) come through here too, the same for every network control: `edit` moves
a part's sound with a phrase ("more air, less bite"), smoothed like the terminal's `:edit`;
`undo` puts back what the part's last edit moved; `prompt` sets the band from a style prompt
("funky, 96 bpm, sparse drums"). Each returns the reply text; a phrase or prompt of which
nothing is understood is a CommandError naming the words.

A flood never crowds the band out: commands are refused (`CommandError`, counted by the caller)
while the scheduler queue is more than `QUEUE_HEADROOM` full, so the band's scheduler always
finds room for its notes. `TokenBucket` caps rates (error replies, a client's commands).
"""
from __future__ import annotations

import heapq
import math
import time

from engine.control.session import TEMPO_ADDRESS
from engine.control.state import QueueFull
from engine.parts import KEYS, PART_INDEX, PARTS
from engine.rt import layout as L
from engine.rt.events import ASAP, K_NOTE_OFF, K_NOTE_ON, K_SOURCE_GONE
from engine.rt.param import Param

QUEUE_HEADROOM = L.QCAP // 2    # refuse while the scheduler queue is this full
TEXT_MAX = 120                  # longest echo of a client's text in a reply
REASON_MAX = 400                # longest reason in an error reply
WORDS_MAX = 400                 # longest phrase or prompt a remote may send
# the words commands every network control has (OSC /bandmate/NAME, MQTT in/CLIENT/NAME): name ->
# its arguments, in order; each is the Remote method of that name and returns the reply text
WORD_COMMANDS = {"edit": ("part", "phrase"), "undo": ("part",), "prompt": ("text",),
                 "do": ("text",)}


class CommandError(Exception):
    """A command that cannot be applied: the reason goes back to the sender."""


def short(text, most: int = TEXT_MAX) -> str:
    """`text` cut to `most` characters (a client's text echoed in a reply never floods it)."""
    text = str(text)
    return text if len(text) <= most else text[:most] + "..."


def to_unit(q: Param, value: float) -> float:
    """The inverse of `Param.from_unit`: a value on q's range and curve as 0..1."""
    if q.curve == "choice":
        n = len(q.choices) - 1
        return 0.0 if n <= 0 else min(max(value / n, 0.0), 1.0)
    if q.hi == q.lo:
        return 0.0
    if q.curve == "log":
        x = math.log(value / q.lo) / math.log(q.hi / q.lo)
    else:
        x = (value - q.lo) / (q.hi - q.lo)
    return min(max(x, 0.0), 1.0)


def is_number(x) -> bool:
    """A finite int or float (a bool is not a number here)."""
    return not isinstance(x, bool) and isinstance(x, (int, float)) and math.isfinite(x)


class TokenBucket:
    """`rate_per_s` tokens a second, at most `burst` saved; `take()` spends one if there is."""

    def __init__(self, rate_per_s: float, burst: float | None = None):
        self.rate = float(rate_per_s)
        self.burst = float(rate_per_s if burst is None else burst)
        self.tokens = self.burst
        self.at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class TimedCap:
    """Caps the timed events a remote has sent that are not yet due (the engine's pending store
    is shared with the band): `room(now)` raises CommandError when `most` wait, `add(t)`."""

    def __init__(self, most: int):
        self.most = most
        self.times: list[float] = []        # a heap

    def room(self, now: int) -> None:
        while self.times and self.times[0] < now:
            heapq.heappop(self.times)
        if len(self.times) >= self.most:
            raise CommandError(f"more than {self.most} timed events waiting")

    def add(self, t: float) -> None:
        if t != ASAP:
            heapq.heappush(self.times, t)


def now_sample(session, clock) -> int:
    """The sample the audio is playing now: from the audio thread's last (sample, monotonic ns)
    anchor (`clock()`), or the next block's start before audio runs (offline)."""
    anchor = clock()
    if anchor is None:
        return session.state.sample_time
    sample, ns = anchor
    return round(sample + (time.monotonic_ns() - ns) * 1e-9 * session.sample_rate)


def memory_state(session) -> dict | None:
    """What the progression memory has learned (engine.listen.progression
    `ProgressionMemory.state`: status, locked, the loop's name, bars and changes, the library,
    departures...), status "off" and not locked while /band/memory is off; None for a session
    without one. What MQTT, OSC and the console publish."""
    memory = getattr(session.ctx, "memory", None)
    if memory is None:
        return None
    state = memory.state()
    if session.value("/band/memory") < 0.5:
        state.update(status="off", locked=False)
    return state


def memory_args(state: dict | None) -> list:
    """`memory_state` as OSC arguments: STATUS LOCKED(0/1) NAME BARS DEPARTURES SUBSTITUTIONS
    RETURNS LIBRARY_SIZE LOOP_TEXT, then BEAT CHORD for each change of the loop."""
    if state is None:
        return ["none", 0, "", 0, 0, 0, 0, 0, ""]
    out = [state["status"], int(state["locked"]), state["name"], state["bars"],
           state["departures"], state["substitutions"], state["returns"],
           len(state["library"]), state["loop"]]
    for beat, chord in state["changes"]:
        out += [float(beat), chord]
    return out


class Remote:
    """One network control's view of `session`; its notes carry the source id `source`
    (controllers.base ids), so they can all be released when it goes (`release_held`)."""

    def __init__(self, session, source: int):
        self.session = session
        self.source = source
        self.held: set[tuple[int, float]] = set()   # (part, note) sounding from this remote

    # ---- parameters ----------------------------------------------------------------------------
    def param(self, address: str) -> Param:
        """The Param of an address (CommandError if there is none)."""
        if not isinstance(address, str) or not address.startswith("/"):
            raise CommandError(f"not an address: {short(address)!r}")
        try:
            return self.session.param(address)
        except KeyError as exc:
            text = str(exc.args[0] if exc.args else exc)
            if text.startswith(address):        # the reason after a shortened address
                text = short(address, 60) + text[len(address):]
            raise CommandError(text) from None

    def value(self, address: str, norm: bool = False) -> float:
        """The current value (target) of an address, or as 0..1 on its range (`norm`)."""
        q = self.param(address)
        v = self.session.value(address)
        return to_unit(q, v) if norm else v

    def set(self, address: str, value, time: float = ASAP, norm: bool = False,
            shown: str | None = None) -> None:
        """Set an address to `value` (a number, or a choice's word), or to 0..1 on its range
        and curve (`norm`), from the sample `time`; the tempo from the next beat not yet
        scheduled. `shown`: the address as the client wrote it, for the reasons."""
        q = self.param(address)
        if norm:
            if not is_number(value) or not 0.0 <= value <= 1.0:
                raise CommandError(f"{shown or address}/norm: must be a number 0..1, "
                                   f"got {short(value)!r}")
            value = q.from_unit(value)
        if address == TEMPO_ADDRESS:
            self.tempo(value)
            return
        self.room()
        try:
            self.session.set(address, value, time=time)
        except (KeyError, ValueError, TypeError) as exc:
            raise CommandError(short(exc.args[0] if exc.args else exc)) from None
        except QueueFull as exc:
            raise CommandError(f"engine busy: {exc}") from None

    def tempo(self, bpm) -> None:
        q = self.session.param(TEMPO_ADDRESS)
        if not is_number(bpm) or not q.lo <= bpm <= q.hi:
            raise CommandError(f"tempo must be {q.lo:g}..{q.hi:g} BPM, got {short(bpm)!r}")
        self.room()
        try:
            self.session.set_tempo(float(bpm))
        except (ValueError, QueueFull) as exc:
            raise CommandError(short(exc)) from None

    def room(self) -> None:
        """CommandError while the scheduler queue is more than QUEUE_HEADROOM full."""
        idx = self.session.state.arrays[L.S_QSCHED_IDX]
        if int(idx[0]) - int(idx[8]) >= QUEUE_HEADROOM:
            raise CommandError("engine busy (queue full): try again")

    def do(self, text) -> str:
        """A band command in words (engine.agents.commands: "drop the drums for 4 bars",
        "half time", "go to chorus"): what was done, or CommandError saying what is
        understood (nothing changed)."""
        from engine.agents.commands import CommandError as WordsError, do
        if not isinstance(text, str) or not text.strip():
            raise CommandError(f"takes a command in words, got {short(text)!r}")
        self.room()
        try:
            return do(self.session, short(text, 400))
        except WordsError as exc:
            raise CommandError(short(exc, REASON_MAX)) from None
        except QueueFull as exc:
            raise CommandError(f"engine busy: {exc}") from None

    # ---- notes ---------------------------------------------------------------------------------
    @staticmethod
    def part(part) -> int:
        """A part's index from its name (keys, bass, chords, lead, drums) or index."""
        if isinstance(part, str) and part in PART_INDEX:
            return PART_INDEX[part]
        if isinstance(part, int) and not isinstance(part, bool) and 0 <= part < len(PARTS):
            return part
        raise CommandError(f"part must be one of {', '.join(PARTS)} or 0..{len(PARTS) - 1}, "
                           f"got {short(part)!r}")

    @staticmethod
    def velocity(vel) -> float:
        """0..127, or a float 0..1, as 0..1 (0: note-off)."""
        if not is_number(vel):
            raise CommandError(f"velocity must be a number, got {short(vel)!r}")
        if isinstance(vel, float) and 0.0 <= vel <= 1.0:
            return float(vel)
        if 0 <= vel <= 127:
            return vel / 127.0
        raise CommandError(f"velocity must be 0..127 (or a float 0..1), got {vel!r}")

    def check_note(self, part, note, vel) -> tuple[int, float, float]:
        """(part index, note, velocity 0..1) checked; CommandError with the reason."""
        p = self.part(part)
        if not is_number(note) or not 0 <= note <= 127:
            raise CommandError(f"note must be 0..127, got {short(note)!r}")
        return p, float(note), self.velocity(vel)

    def note(self, p: int, note: float, v: float, t: float, now_sample: int) -> None:
        """A checked note-on (v > 0) or note-off (v == 0) at sample `t` (ASAP: next block;
        `now_sample` is then its time for the conductor). Notes on keys are the player's:
        the band follows them and they are recorded."""
        self.room()
        kind = K_NOTE_ON if v > 0.0 else K_NOTE_OFF
        s = self.session
        if p == KEYS and (s.arp.holds(self.source, int(note)) if kind == K_NOTE_OFF
                          else s.arp_takes(0)):
            # the arpeggiator takes a remote's keys notes when it takes every channel
            s.player_note(kind, int(note), v, int(t) if t != ASAP else now_sample,
                          self.source, arp=True)
            return
        try:
            self.session.state.push_sched(t, kind, p, note, v, float(self.source))
        except QueueFull as exc:
            raise CommandError(f"engine busy: {exc}") from None
        if kind == K_NOTE_ON:
            self.held.add((p, note))
        else:
            self.held.discard((p, note))
        if p == KEYS:
            when = int(t) if t != ASAP else now_sample
            self.session.player_note(kind, int(note), v, when, self.source)

    def release_held(self) -> bool:
        """Every note this remote started, released (as if its device were unplugged).
        False if the engine's queue had no room for the release."""
        self.held.clear()
        ok = True
        try:
            self.session.state.push_sched(ASAP, K_SOURCE_GONE, -1, 0.0, 0.0, float(self.source))
        except QueueFull:
            ok = False
        self.session.source_gone(self.source)       # the band's and the arpeggiator's
        return ok

    def release(self) -> bool:
        """Every note released (the band's too): they ring out."""
        ok = self.release_held()
        self.session.release_all()
        return ok

    def panic(self) -> bool:
        """A hard stop: every voice silenced."""
        ok = self.release_held()
        self.session.panic()
        return ok

    # ---- words ---------------------------------------------------------------------------------
    @staticmethod
    def _words_text(text, what: str) -> str:
        if not isinstance(text, str) or not text.strip():
            raise CommandError(f"{what} must be words, got {short(text)!r}")
        if len(text) > WORDS_MAX:
            raise CommandError(f"{what}: at most {WORDS_MAX} characters, got {len(text)}")
        return " ".join(text.split())

    def edit(self, part, phrase) -> str:
        """Move `part`'s sound as `phrase` says ("more air, less bite"): the reply says
        which words moved what and which were not understood."""
        from engine.words.design import edit_live, summary
        from engine.words.embed import load_similar
        name = PARTS[self.part(part)]
        phrase = self._words_text(phrase, "phrase")
        self.room()
        try:
            sets, result = edit_live(self.session, name, phrase, load_similar())
        except (KeyError, ValueError) as exc:
            raise CommandError(short(str(exc).strip("'"), REASON_MAX)) from None
        except QueueFull as exc:
            raise CommandError(f"engine busy: {exc}") from None
        if not sets:
            raise CommandError(short(f"{name}: nothing moved: " + (summary(result).replace(
                "\n", "; ") or "no words"), REASON_MAX))
        return short(f"{name}: {len(sets)} moved; " + summary(result).replace("\n", "; "),
                     REASON_MAX)

    def undo(self, part) -> str:
        """Put back what `part`'s last live edit moved."""
        from engine.words.design import undo_live
        name = PARTS[self.part(part)]
        self.room()
        try:
            sets, left = undo_live(self.session, name)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        except QueueFull as exc:
            raise CommandError(f"engine busy: {exc}") from None
        return f"{name}: last edit undone ({len(sets)} back, {left} more to undo)"

    def prompt(self, text) -> str:
        """Set the band from a style prompt, from its next bar."""
        from engine.words.embed import load_similar
        from engine.words.prompt import apply_prompt, describe
        text = self._words_text(text, "prompt")
        self.room()
        try:
            applied = apply_prompt(self.session, text, similar=load_similar())
        except (KeyError, ValueError) as exc:
            raise CommandError(short(str(exc).strip("'"), REASON_MAX)) from None
        except QueueFull as exc:
            raise CommandError(f"engine busy: {exc}") from None
        return short(describe(applied).replace("\n", "; "), REASON_MAX)
