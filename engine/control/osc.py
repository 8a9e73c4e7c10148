"""OSC control over UDP (control side: the asyncio thread).

The session's one address space as OSC addresses, for TouchOSC, Max, Pure Data or any OSC
client (config `[osc]`; off by default):

    /bass/synth/cutoff_hz 800.0          set a parameter by its own address (a number, or a
                                         choice's word as a string)
    /bass/synth/cutoff_hz/norm 0.5       the same from 0..1 (a fader), on the parameter's range
                                         and curve (log for frequencies, steps for choices)
    /bandmate/set ADDRESS VALUE          the same two as commands (for clients with one
    /bandmate/norm ADDRESS X             output address)
    /bandmate/get ADDRESS...             replies the value on the address itself
                                         (`/bass/synth/cutoff_hz 800.0`, `.../norm 0.5`);
                                         `/bandmate/tempo` is one too
    /bandmate/memory                     replies what the progression memory has learned:
                                         `/bandmate/memory STATUS LOCKED NAME BARS DEPARTURES
                                         SUBSTITUTIONS RETURNS LIBRARY_SIZE LOOP [BEAT CHORD]...`
                                         (remote.memory_args); subscribe to /bandmate/memory to
                                         have it pushed whenever it changes
    /bandmate/subscribe ADDRESS...       replies now and whenever the value changes (polled
    /bandmate/unsubscribe [ADDRESS...]   `poll_hz` times a second); none: every subscription
    /bandmate/addresses [PREFIX]         replies `/bandmate/addresses CHUNK CHUNKS ADDRESS...`
    /bandmate/info ADDRESS               replies `/bandmate/info ADDRESS LO HI DEFAULT CURVE
                                         [CHOICE...]`
    /bandmate/tempo BPM                  from the next beat not yet scheduled
    /bandmate/note PART NOTE VELOCITY    PART a name (keys, bass, chords, lead, drums) or 0..4;
                                         VELOCITY 0..127, or a float 0..1; 0 is note-off.
                                         Notes on keys are the player's: the band follows them
    /bandmate/release                    every note released; /bandmate/panic: hard stop
    /bandmate/scene NAME [FADE_S]        recall a scene of the scene file (config [scenes]);
                                         FADE_S: glide that long instead of the scene's fade_s
    /transport/tap [VALUE]               one tap of tap tempo (a button's 0 = release: none)
    /bandmate/edit PART PHRASE           move a part's sound with words ("more air, less
                                         bite"), smoothed; replies `/bandmate/edit TEXT`
                                         saying what each word moved
    /bandmate/undo PART                  put back what the part's last edit moved
    /bandmate/prompt TEXT                the band from a style prompt ("funky, 96 bpm,
                                         sparse drums"), from its next bar
    /bandmate/do TEXT...                 a band command in words ("drop the drums for 4
                                         bars"; engine.agents.commands): replies
                                         `/bandmate/do WHAT_WAS_DONE`

Replies go to the sender's address and port (`reply_port` = another port on the sender's
host, as TouchOSC wants). Anything wrong (a garbage packet, an unknown address, a wrong type,
a value out of range) changes nothing, is counted (`OscServer.counters`) and answered with
`/bandmate/error OSC_ADDRESS REASON` (at most `ERROR_REPLIES_PER_S` a second; the rest are
counted as unreplied). Nothing raises out of the server.

Bundles honour their time tags on the sample clock: a tag (NTP, wall clock) becomes a sample
time through the audio thread's last (sample, CLOCK_MONOTONIC ns) pair and the offset between
the wall and the monotonic clocks (measured once), so parameter changes and notes of a bundle
land on their sample. The immediate tag (1), plain messages and tags already past apply at the
next block (a past one counts as late); a tag more than `max_ahead_s` ahead is refused.
Commands other than set/norm/note apply on arrival whatever their tag.

Events go to the audio thread through the scheduler queue, whose only producer is this thread
(the asyncio loop; MIDI input threads have the MIDI queue), so nothing here blocks the audio
and no lock is shared with it. The queue's fill and the number of timed events still waiting
are capped, so a flood is refused (counted, answered) before it can crowd out the band's notes.
The checks, notes and caps are engine.control.remote's, shared with MQTT (engine.control.mqtt).
"""
from __future__ import annotations

import asyncio
import math
import time
from typing import Callable

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.parsing import osc_types

from engine.control.remote import (
    QUEUE_HEADROOM, REASON_MAX, WORD_COMMANDS, CommandError, Remote, TimedCap, TokenBucket,
    memory_args, memory_state, now_sample, short as _short, to_unit,
)
from engine.control.session import TAP_ADDRESS, TEMPO_ADDRESS
from engine.control.state import QueueFull
from engine.rt.events import ASAP
from engine.rt.param import Param

__all__ = ["ERROR_REPLIES_PER_S", "OSC_SOURCE", "QUEUE_HEADROOM", "OscError", "OscServer",
           "server_from_config", "to_unit", "wall_minus_monotonic"]

MEMORY = "/bandmate/memory"     # the progression memory's state (a query, or subscribed)
OSC_SOURCE = 100_000            # the source id of notes played over OSC (controllers.base ids)
ERROR_REPLIES_PER_S = 200.0     # error replies (a burst of as many); the rest only counted
MAX_SUBSCRIPTIONS = 1024
MAX_TIMED_PENDING = 1024        # timed OSC events not yet due (the pending store holds 4096)
ADDRESSES_CHUNK_BYTES = 1000
TEMPO = "/bandmate/tempo"
BUNDLE = b"#bundle\x00"
OscError = CommandError         # a message that cannot be applied: the reason goes back


def wall_minus_monotonic(samples: int = 5) -> float:
    """time.time() - time.monotonic() in seconds, from the tightest of a few reads."""
    best = None
    for _ in range(samples):
        m0 = time.monotonic_ns()
        w = time.time_ns()
        m1 = time.monotonic_ns()
        if best is None or m1 - m0 < best[0]:
            best = (m1 - m0, w - (m0 + m1) // 2)
    return best[1] * 1e-9


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, server: "OscServer"):
        self.server = server

    def datagram_received(self, data, addr):
        self.server.packet(data, addr)

    def error_received(self, exc):
        self.server.counters["socket_errors"] += 1


class OscServer:
    """The OSC server of a `Session` (engine.control.session). `start()` binds (port 0: any
    free port; `address` then says which), `run(stopping)` serves until the event is set.

    `clock` (tests) returns the audio clock's anchor (sample, CLOCK_MONOTONIC ns) or None
    before audio runs; by default the audio thread's last block (`EngineState.sample_clock`).
    """

    def __init__(self, session, host: str = "127.0.0.1", port: int = 9000, reply_port: int = 0,
                 poll_hz: float = 20.0, max_ahead_s: float = 10.0,
                 log: Callable[[str], None] = print,
                 clock: Callable[[], tuple[int, int] | None] | None = None):
        self.session = session
        self.host, self.port, self.reply_port = host, int(port), int(reply_port)
        self.poll_s = 1.0 / poll_hz
        self.max_ahead = round(max_ahead_s * session.sample_rate)
        self.log = log
        self._clock = clock if clock is not None else session.state.sample_clock
        self.wall_offset_s = wall_minus_monotonic()
        self.transport: asyncio.DatagramTransport | None = None
        self.address: tuple[str, int] | None = None
        self.counters = {"packets": 0, "messages": 0, "applied": 0, "errors": 0,
                         "bad_packets": 0, "late": 0, "errors_unreplied": 0, "replies": 0,
                         "socket_errors": 0, "internal_errors": 0}
        self.last_error = ""
        self.last_time: float = ASAP        # the sample time of the last timed set or note
        self.subscriptions: dict[tuple, dict[str, list | None]] = {}
        self.remote = Remote(session, OSC_SOURCE)
        self.held = self.remote.held                # (part, note) sounding from OSC
        self._timed = TimedCap(MAX_TIMED_PENDING)   # timed events not yet due
        self._replies = TokenBucket(ERROR_REPLIES_PER_S)
        self._handlers = {
            "/bandmate/set": self._cmd_set, "/bandmate/norm": self._cmd_norm,
            "/bandmate/get": self._cmd_get, "/bandmate/subscribe": self._cmd_subscribe,
            "/bandmate/unsubscribe": self._cmd_unsubscribe,
            "/bandmate/addresses": self._cmd_addresses, "/bandmate/info": self._cmd_info,
            TEMPO: self._cmd_tempo, "/bandmate/note": self._cmd_note,
            "/bandmate/release": self._cmd_release, "/bandmate/panic": self._cmd_panic,
            "/bandmate/scene": self._cmd_scene, MEMORY: self._cmd_memory,
            TAP_ADDRESS: self._cmd_tap,
        }
        for name in WORD_COMMANDS:
            self._handlers[f"/bandmate/{name}"] = self._words_handler(name)

    # ---- lifetime ------------------------------------------------------------------------------
    async def start(self) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=(self.host, self.port))
        self.address = self.transport.get_extra_info("sockname")[:2]
        return self.address

    async def run(self, stopping: asyncio.Event) -> None:
        """Serve (binding first if `start` was not called) and poll the subscriptions until
        `stopping` is set; then release OSC's notes and close."""
        if self.transport is None:
            await self.start()
        self.log(f"OSC on udp://{self.address[0]}:{self.address[1]}")
        try:
            while not stopping.is_set():
                self.poll()
                try:
                    await asyncio.wait_for(stopping.wait(), self.poll_s)
                except asyncio.TimeoutError:
                    pass
        finally:
            self.close()

    def close(self) -> None:
        if self.held:
            self._release_held()
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    # ---- input ---------------------------------------------------------------------------------
    def packet(self, data: bytes, addr) -> None:
        """One datagram: never raises."""
        self.counters["packets"] += 1
        try:
            try:
                items = self._parse(data)
            except Exception as exc:  # noqa: BLE001 - any garbage is a bad packet
                self.counters["bad_packets"] += 1
                self._error(addr, "", f"bad packet ({len(data)} bytes): {_short(exc)}")
                return
            for tag, msg in items:
                self.counters["messages"] += 1
                try:
                    self.message(msg.address, list(msg.params), tag, addr)
                    self.counters["applied"] += 1
                except OscError as exc:
                    self._error(addr, msg.address, str(exc))
        except Exception as exc:  # noqa: BLE001 - the server must outlive any bug
            self.counters["internal_errors"] += 1
            self._error(addr, "", f"internal error: {_short(repr(exc))}")

    def _parse(self, data: bytes) -> list[tuple[float, OscMessage]]:
        """(time tag as unix seconds, or 0 = immediately; message) of every message."""
        if data.startswith(BUNDLE):
            out: list = []
            self._walk(data, out, 0)
            return out
        if data[:1] == b"/":
            return [(osc_types.IMMEDIATELY, OscMessage(data))]
        raise ValueError("neither an OSC message nor a bundle")

    def _walk(self, data: bytes, out: list, depth: int) -> None:
        """A bundle's messages, nested bundles with their own tags. Stricter than python-osc's
        OscBundle, which skips (and logs) elements it cannot read: here the packet is bad."""
        if depth > 8:
            raise ValueError("bundles nested too deep")
        if len(data) < 16 or len(data) % 4:
            raise ValueError("a bundle's length must be 16 + a multiple of 4 bytes")
        tag, i = osc_types.get_date(data, 8)
        while i < len(data):
            size, i = osc_types.get_int(data, i)
            if size <= 0 or size % 4 or i + size > len(data):
                raise ValueError(f"bundle element of {size} bytes at byte {i}")
            element = data[i:i + size]
            i += size
            if element.startswith(BUNDLE):
                self._walk(element, out, depth + 1)
            elif element[:1] == b"/":
                out.append((tag, OscMessage(element)))
            else:
                raise ValueError("a bundle element is neither a message nor a bundle")

    def message(self, address: str, args: list, tag: float, addr) -> None:
        """Apply one message (raises OscError with the reason)."""
        handler = self._handlers.get(address)
        if handler is not None:
            handler(args, tag, addr)
        elif address == TEMPO + "/norm":
            self._set(TEMPO, self._one(args), tag, norm=True)
        elif address.startswith("/bandmate/"):
            raise OscError(f"no such command; commands: {', '.join(sorted(self._handlers))}")
        elif address.endswith("/norm"):
            self._set(address[:-5], self._one(args), tag, norm=True)
        else:
            self._set(address, self._one(args), tag)

    @staticmethod
    def _one(args: list):
        if len(args) != 1:
            raise OscError(f"takes one value, got {len(args)}")
        return args[0]

    # ---- time ----------------------------------------------------------------------------------
    def sample_for(self, unix_s: float) -> float | None:
        """The engine's sample time of a wall-clock time (an OSC time tag), rounded to a whole
        sample; None before the audio clock runs."""
        anchor = self._clock()
        if anchor is None:
            return None
        sample, ns = anchor
        mono_ns = (unix_s - self.wall_offset_s) * 1e9
        return float(round(sample + (mono_ns - ns) * 1e-9 * self.session.sample_rate))

    def _when(self, tag: float) -> float:
        """The sample time of a time tag: ASAP for immediately or with no audio clock."""
        if tag == osc_types.IMMEDIATELY:
            return ASAP
        t = self.sample_for(tag)
        if t is None:
            return ASAP
        now = self.session.state.sample_time
        if t > now + self.max_ahead:
            raise OscError(f"time tag {t - now:.0f} samples ahead: more than max_ahead_s")
        if t < now:
            self.counters["late"] += 1
        return t

    def _room(self, t: float) -> None:
        """Raise OscError when the scheduler queue or the timed store is too full."""
        self.remote.room()
        if t != ASAP:
            self._timed.room(self.session.state.sample_time)

    def _timed_push(self, t: float) -> None:
        self._timed.add(t)
        self.last_time = t

    # ---- parameters ----------------------------------------------------------------------------
    def param(self, address: str) -> Param:
        """The Param of an address (OscError if there is none); `/bandmate/tempo` is the
        session's `/transport/tempo_bpm`."""
        return self.remote.param(TEMPO_ADDRESS if address == TEMPO else address)

    def value(self, address: str) -> float:
        """The current value (target) of an address, or of its `/norm` form as 0..1."""
        if address.endswith("/norm"):
            base = address[:-5]
            return to_unit(self.param(base), self.value(base))
        self.param(address)
        return self.session.value(TEMPO_ADDRESS if address == TEMPO else address)

    def _set(self, address: str, value, tag: float, norm: bool = False) -> None:
        target = TEMPO_ADDRESS if address == TEMPO else address
        self.remote.param(target)
        t = ASAP if target == TEMPO_ADDRESS else self._when(tag)
        self._room(t)
        self.remote.set(target, value, t, norm=norm, shown=address)
        if target != TEMPO_ADDRESS:
            self._timed_push(t)

    def _cmd_set(self, args, tag, addr):
        if len(args) != 2:
            raise OscError(f"takes an address and a value, got {len(args)} arguments")
        self._set(args[0], args[1], tag)

    def _cmd_norm(self, args, tag, addr):
        if len(args) != 2:
            raise OscError(f"takes an address and a value 0..1, got {len(args)} arguments")
        if not isinstance(args[0], str):
            raise OscError(f"not an address: {_short(args[0])!r}")
        self._set(args[0], args[1], tag, norm=True)

    def _addresses(self, args) -> list[str]:
        if not args or not all(isinstance(a, str) for a in args):
            raise OscError("takes one or more addresses (strings)")
        for a in args:
            if a != MEMORY:
                self.param(a[:-5] if a.endswith("/norm") else a)   # every one must exist
        return args

    def _current(self, address: str) -> list:
        """What a get or a subscription sends on `address`: its value, or the memory's state."""
        if address == MEMORY:
            return memory_args(memory_state(self.session))
        return [float(self.value(address))]

    def _cmd_get(self, args, tag, addr):
        for a in self._addresses(args):
            self._send(self._dest(addr), a, self._current(a))

    def _cmd_memory(self, args, tag, addr):
        if args:
            raise OscError("takes no arguments")
        self._send(self._dest(addr), MEMORY, self._current(MEMORY))

    def _cmd_subscribe(self, args, tag, addr):
        subs = self.subscriptions.setdefault(self._dest(addr), {})
        wanted = [a for a in self._addresses(args) if a not in subs]
        total = sum(len(s) for s in self.subscriptions.values())
        if total + len(wanted) > MAX_SUBSCRIPTIONS:
            raise OscError(f"at most {MAX_SUBSCRIPTIONS} subscriptions")
        for a in wanted:
            subs[a] = None
        self.poll()

    def _cmd_unsubscribe(self, args, tag, addr):
        dest = self._dest(addr)
        if not args:
            self.subscriptions.pop(dest, None)
            return
        subs = self.subscriptions.get(dest, {})
        for a in args:
            if not isinstance(a, str):
                raise OscError("takes addresses (strings)")
            subs.pop(a, None)
        if not subs:
            self.subscriptions.pop(dest, None)

    def poll(self) -> None:
        """Send every subscribed value that changed since it was last sent."""
        for dest, subs in list(self.subscriptions.items()):
            for a, last in list(subs.items()):
                try:
                    v = self._current(a)
                except OscError as exc:          # gone with a new graph
                    subs.pop(a, None)
                    self._error(dest, a, f"unsubscribed: {exc}", direct=True)
                    continue
                if last is None or v != last:
                    subs[a] = v
                    self._send(dest, a, v)
            if not subs:
                self.subscriptions.pop(dest, None)

    def _cmd_addresses(self, args, tag, addr):
        prefix = args[0] if args else ""
        if len(args) > 1 or not isinstance(prefix, str):
            raise OscError("takes an optional prefix (a string)")
        names = [a for a in self.session.addresses() if a.startswith(prefix)] + \
            ([TEMPO] if TEMPO.startswith(prefix) else [])
        chunks, cur, size = [], [], 0
        for a in names:
            if cur and size + len(a) + 4 > ADDRESSES_CHUNK_BYTES:
                chunks.append(cur)
                cur, size = [], 0
            cur.append(a)
            size += len(a) + 4
        chunks.append(cur)
        for i, chunk in enumerate(chunks):
            self._send(self._dest(addr), "/bandmate/addresses", [i, len(chunks), *chunk])

    def _cmd_info(self, args, tag, addr):
        if len(args) != 1 or not isinstance(args[0], str):
            raise OscError("takes one address")
        q = self.param(args[0])
        self._send(self._dest(addr), "/bandmate/info",
                   [args[0], float(q.lo), float(q.hi), float(q.default), q.curve,
                    *(q.choices or ())])

    def _cmd_tempo(self, args, tag, addr):
        self.remote.tempo(self._one(args))

    def _cmd_scene(self, args, tag, addr):
        if not 1 <= len(args) <= 2 or not isinstance(args[0], str):
            raise OscError("takes a scene name and an optional fade in seconds")
        fade = args[1] if len(args) == 2 else None
        if fade is not None and (isinstance(fade, bool) or not isinstance(fade, (int, float))
                                 or not math.isfinite(fade)):
            raise OscError(f"fade must be a number of seconds, got {_short(fade)!r}")
        self._room(ASAP)
        try:
            self.session.recall_scene(args[0], None if fade is None else float(fade))
        except (KeyError, ValueError) as exc:       # DataError: a broken scene file
            raise OscError(_short(exc.args[0] if exc.args else exc, REASON_MAX)) from None
        except QueueFull as exc:
            raise OscError(f"engine busy: {exc}") from None

    def _cmd_tap(self, args, tag, addr):
        """One tap of tap tempo: no argument, or a button's value (> 0 taps; its release, 0,
        does nothing)."""
        if len(args) > 1:
            raise OscError(f"takes no value or one (a button's), got {len(args)}")
        if args:
            v = args[0]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise OscError(f"takes a number, got {_short(v)!r}")
            if v <= 0:
                return
        self._room(ASAP)
        from engine.control.sync import tap
        tap(self.session)

    # ---- notes ---------------------------------------------------------------------------------
    def _cmd_note(self, args, tag, addr):
        if len(args) != 3:
            raise OscError(f"takes part, note, velocity; got {len(args)} arguments")
        p, note, v = self.remote.check_note(*args)
        t = self._when(tag)
        self._room(t)
        self.remote.note(p, note, v, t, self._now_sample() if t == ASAP else 0)
        self._timed_push(t)

    def _now_sample(self) -> int:
        return now_sample(self.session, self._clock)

    def _release_held(self) -> None:
        """Every note OSC started, released (as if its device were unplugged)."""
        if not self.remote.release_held():
            self.counters["internal_errors"] += 1

    def _cmd_release(self, args, tag, addr):
        self._release_held()
        self.session.release_all()

    def _cmd_panic(self, args, tag, addr):
        self._release_held()
        self.session.panic()

    # ---- words -------------------------------------------------------------------------------
    def _words_handler(self, name: str):
        """The handler of /bandmate/NAME, a words command (engine.control.remote)."""
        want = WORD_COMMANDS[name]

        def handler(args, tag, addr):
            n = len(want) - 1               # the last field's words may come as several strings
            if len(args) > len(want) and all(isinstance(a, str) for a in args[n:]):
                args = [*args[:n], " ".join(args[n:])]
            if len(args) != len(want):
                raise OscError(f"takes {', '.join(want)}; got {len(args)} arguments")
            reply = getattr(self.remote, name)(*args)
            self._send(self._dest(addr), f"/bandmate/{name}", [reply])
        return handler

    # ---- output --------------------------------------------------------------------------------
    def _dest(self, addr) -> tuple:
        host, port = addr[0], addr[1]
        return (host, self.reply_port or port)

    def _send(self, dest, address: str, args: list) -> None:
        if self.transport is None:
            return
        b = OscMessageBuilder(address)
        for a in args:
            b.add_arg(a)
        self.transport.sendto(b.build().dgram, dest)
        self.counters["replies"] += 1

    def _error(self, addr, address: str, reason: str, direct: bool = False) -> None:
        """Count an error and, within the reply rate, tell the sender."""
        self.counters["errors"] += 1
        self.last_error = f"{_short(address)}: {reason}" if address else reason
        if not self._replies.take():
            self.counters["errors_unreplied"] += 1
            return
        try:
            self._send(addr if direct else self._dest(addr), "/bandmate/error",
                       [_short(address), _short(reason, REASON_MAX)])
        except Exception:  # noqa: BLE001 - an unencodable reply is dropped, counted
            self.counters["errors_unreplied"] += 1


def server_from_config(session, cfg: dict, log=print) -> OscServer | None:
    """The OSC server `cfg["osc"]` describes, or None when it is off."""
    osc = cfg.get("osc", {})
    if not osc.get("enabled"):
        return None
    return OscServer(session, osc["host"], osc["port"], osc["reply_port"], osc["poll_hz"],
                     osc["max_ahead_s"], log=log)
