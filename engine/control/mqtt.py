"""MQTT control (control side: the asyncio thread), for home automation, dashboards (Node-RED,
Home Assistant) or any MQTT client: the session's one address space plus tempo, patches, mutes,
scenes and notes as JSON commands, and the band's state published back (config `[mqtt]`; off by
default). README: MQTT has the topic table.

Topics, under `prefix` (default `bandmate`); CLIENT is the publisher's MQTT client id:

    bandmate/in/CLIENT/set       {"address": "/bass/synth/cutoff_hz", "value": 800}
                                 {"address": "/bass/synth/cutoff_hz", "norm": 0.5}  (0..1)
    bandmate/in/CLIENT/tempo     {"bpm": 96} (or 96): from the next beat not yet scheduled
    bandmate/in/CLIENT/key       {"key": ...}: `/band/key` where the address space has it
    bandmate/in/CLIENT/patch     {"part": "bass", "patch": "bass-acid"} (a library name)
    bandmate/in/CLIENT/mute      {"part": "drums", "mute": true}  (the address /drums/mix/mute)
    bandmate/in/CLIENT/scene     {"name": "groove"} (+ "fade_s": seconds)
    bandmate/in/CLIENT/note      {"part": "keys", "note": 60, "velocity": 100,
                                  "duration_s": 0.5}  (no duration: held until velocity 0)
    bandmate/in/CLIENT/release   every note released; .../panic: a hard stop
    bandmate/in/CLIENT/get       {"address": ...}: replies on bandmate/out/CLIENT/value
    bandmate/in/CLIENT/edit      {"part": "bass", "phrase": "rounder, less bite"}: the part's
                                 sound moved by words, smoothed; replies on out/CLIENT/edit
                                 {"reply": "what each word moved"}
    bandmate/in/CLIENT/undo      {"part": "bass"}: back before the part's last edit
    bandmate/in/CLIENT/prompt    {"text": "funky, 96 bpm, sparse drums"} (or the bare string):
                                 the band from a style prompt, from its next bar
    bandmate/in/CLIENT/do        {"text": "half time"} (or the bare string): a band command
                                 in words (engine.agents.commands); replies on out/CLIENT/do
                                 {"reply": "what was done"}
    bandmate/out/CLIENT/error    {"topic": ..., "reason": ...}: a command that did nothing
    bandmate/online              "true" / "false" (retained; "false" is the last will)
    bandmate/state/tempo_bpm     96.0 (retained)
    bandmate/state/patch/PART    the part's patch name (retained)
    bandmate/param/ADDRESS       each parameter's current value (retained), e.g.
                                 bandmate/param/bass/synth/cutoff_hz 800.0
    bandmate/state/position      {"bar": 12, "beat": 3}
    bandmate/state/chord         "Am7" (retained)
    bandmate/state/section       the song form's section playing, e.g. "chorus" (retained)
    bandmate/state/memory        the progression memory: {"status": "loop A 4b 100%" |
                                 "learning" | "listening" | "off", "locked": true, "name":
                                 "A", "bars": 4, "changes": [[0.0, "Am"], [4.0, "F"], ...],
                                 "loop": "4 bars: Am@0 F@4 C@8 G@12" or "", "library":
                                 [["A", 4, "4 bars: ..."], ...], "locks", "returns",
                                 "departures", "substitutions": counts} (retained)
    bandmate/state/levels        {"peak_db": [l, r], "parts": {"keys": dB, ...}} (since the last)
    bandmate/state/engine        the audio thread's counters (xruns, late_events, ...)
    bandmate/state/bridge        this bridge's counters (messages, applied, errors, ...)

Commands come under `in/CLIENT/` because MQTT does not tell a subscriber who published: with the
broker's ACL `pattern write bandmate/in/%c/#` (mosquitto; the embedded broker has the same rule)
a client can write only its own subtree, so the per-client token bucket (`rate_per_s`, `burst`)
holds; commands over the rate are dropped and counted. Every message is checked (size, JSON,
types, ranges); a bad one changes nothing, is counted and answered on `out/CLIENT/error`
(at most `ERROR_REPLIES_PER_S` replies a second). Nothing raises out of the bridge. Commands
that reach the engine share OSC's checks and caps (engine.control.remote): a flood is refused
before it can crowd the band's notes out of the scheduler queue, and the loop yields every
`YIELD_EVERY` messages so the band's scheduler keeps its turn.

With no `host`, an embedded amqtt broker starts (engine.control.mqtt_broker) and the bridge
connects to it. The connection uses username/password, TLS (ca/cert/key files, `tls_insecure`),
`keepalive_s`, and reconnects with exponential backoff (`reconnect_min_s` doubling up to
`reconnect_max_s`); notes held over MQTT are released whenever the connection is lost.
"""
from __future__ import annotations

import asyncio
import json
import math
import ssl
import time
from pathlib import Path
from typing import Callable

import aiomqtt

from engine.control.remote import (
    REASON_MAX, WORD_COMMANDS, CommandError, Remote, TimedCap, TokenBucket, is_number,
    memory_state, now_sample, short,
)
from engine.control.session import TEMPO_ADDRESS
from engine.parts import PARTS
from engine.rt import layout as L
from engine.rt.events import ASAP
from engine.tomldata import DataError

MQTT_SOURCE = 100_001           # the source id of notes played over MQTT (controllers.base ids)
KEY_ADDRESS = "/band/key"
MAX_PAYLOAD_BYTES = 4096
MAX_TEXT = 256                  # longest string field (an address, a patch or scene name)
MAX_CLIENTS = 1024              # rate buckets kept (idle ones are forgotten first)
MAX_TIMED_PENDING = 1024        # note-offs of notes with a duration not yet due
MAX_DURATION_S = 60.0
ERROR_REPLIES_PER_S = 200.0
OUT_QUEUE = 4096                # replies waiting to be published (more: dropped, counted)
YIELD_EVERY = 32                # messages handled before the loop lets other tasks run
PATCH_RETRIES = 20              # a patch change waits this many times 30 ms for a crossfade
LEVEL_FLOOR_DB = -120.0
STABLE_S = 10.0                 # a connection this old resets the reconnect backoff
GOODBYE_WAIT_S = 2.0            # a clean stop waits this long for its "offline" to go out


class BrokerStartError(RuntimeError):
    """The embedded broker cannot listen (its port is taken)."""


def check_prefix(prefix: str) -> str:
    """A topic prefix: levels of letters, digits, - _ . separated by /; no wildcards."""
    parts = prefix.split("/")
    if not prefix or any(not p or any(c in p for c in "+#\0") for p in parts):
        raise ValueError(f"not a topic prefix: {prefix!r} (e.g. \"bandmate\" or \"home/band\")")
    return prefix


class MqttBridge:
    """The MQTT bridge of a `Session`: `run(stopping)` connects (starting the embedded broker
    first when `host` is None) and serves until the event is set, reconnecting as needed.
    `handle(topic, payload)` applies one message (tests may call it directly); it never raises.
    """

    def __init__(self, session, host: str | None = None, port: int = 1883,
                 prefix: str = "bandmate", client_id: str = "bandmate", username: str = "",
                 password: str = "", tls: bool = False, ca_file: str = "", cert_file: str = "",
                 key_file: str = "", tls_insecure: bool = False, keepalive_s: int = 30,
                 reconnect_min_s: float = 0.5, reconnect_max_s: float = 30.0,
                 rate_per_s: float = 100.0, burst: int = 200, publish_hz: float = 10.0,
                 embedded_host: str = "127.0.0.1", embedded_port: int = 0,
                 log: Callable[[str], None] = print,
                 clock: Callable[[], tuple[int, int] | None] | None = None):
        self.session = session
        self.host, self.port = (host or None), int(port)
        self.prefix = check_prefix(prefix)
        self.client_id = client_id
        self.username, self.password = username, password
        self.tls, self.ca_file, self.cert_file, self.key_file = tls, ca_file, cert_file, key_file
        self.tls_insecure = tls_insecure
        self.keepalive_s = int(keepalive_s)
        self.reconnect_min_s, self.reconnect_max_s = reconnect_min_s, reconnect_max_s
        self.rate_per_s, self.burst = float(rate_per_s), float(burst)
        self.publish_s = 1.0 / publish_hz
        self.embedded_host, self.embedded_port = embedded_host, int(embedded_port)
        self.log = log
        self._clock = clock if clock is not None else session.state.sample_clock
        self.remote = Remote(session, MQTT_SOURCE)
        self.held = self.remote.held
        self._timed = TimedCap(MAX_TIMED_PENDING)
        self._buckets: dict[str, TokenBucket] = {}
        self._replies = TokenBucket(ERROR_REPLIES_PER_S)
        self._out: asyncio.Queue | None = None
        self._published: dict[str, str] = {}     # topic -> last payload sent (state, params)
        self.broker = None                       # the EmbeddedBroker, when there is no host
        self.client: aiomqtt.Client | None = None
        self._serving: aiomqtt.Client | None = None     # while its tasks should run
        self.connected = asyncio.Event()
        self.counters = {"messages": 0, "applied": 0, "errors": 0, "rate_limited": 0,
                         "errors_unreplied": 0, "replies": 0, "replies_dropped": 0,
                         "connects": 0, "disconnects": 0, "internal_errors": 0}
        self.last_error = ""
        self._commands = {
            "set": self._cmd_set, "tempo": self._cmd_tempo, "key": self._cmd_key,
            "patch": self._cmd_patch, "mute": self._cmd_mute, "scene": self._cmd_scene,
            "note": self._cmd_note, "release": self._cmd_release, "panic": self._cmd_panic,
            "get": self._cmd_get,
        }
        for name in WORD_COMMANDS:
            self._commands[name] = self._words_handler(name)

    def topic(self, *levels: str) -> str:
        return "/".join((self.prefix, *levels))

    # ---- lifetime ------------------------------------------------------------------------------
    async def start_broker(self) -> None:
        """The embedded broker when no host is configured (its port: `self.port`)."""
        if self.host is not None or self.broker is not None:
            return
        from engine.control.mqtt_broker import EmbeddedBroker
        broker = EmbeddedBroker(self.embedded_host, self.embedded_port, self.prefix,
                                self.client_id, self.username, self.password)
        try:
            self.broker = await broker.start()
        except Exception as exc:  # noqa: BLE001 - amqtt's BrokerError wraps the OSError
            raise BrokerStartError(
                f"cannot start the embedded broker on {self.embedded_host}:{broker.port} "
                f"({short(exc, 200)}); set [mqtt] embedded_port = 0 for any free port, or "
                f"host = \"localhost\" to use the broker already there") from None
        self.log(f"MQTT: embedded broker on mqtt://{self.embedded_host}:{self.broker.port}")

    @property
    def broker_address(self) -> tuple[str, int]:
        if self.host is not None:
            return self.host, self.port
        return self.embedded_host, self.broker.port

    async def run(self, stopping: asyncio.Event) -> None:
        """Connect, serve, reconnect with backoff until `stopping` is set; then say goodbye
        (online "false"), release MQTT's notes and stop the embedded broker."""
        self._out = asyncio.Queue(OUT_QUEUE)
        delay = self.reconnect_min_s
        loop = asyncio.get_running_loop()
        try:
            await self.start_broker()
            while not stopping.is_set():
                try:
                    async with self._client() as client:
                        since = loop.time()
                        await self._serve(client, stopping)
                except aiomqtt.MqttError as exc:
                    if self.client is not None and loop.time() - since > STABLE_S:
                        delay = self.reconnect_min_s    # (a connection that keeps dropping
                    self.counters["disconnects"] += 1   # at once keeps backing off)
                    host, port = self.broker_address
                    self.log(f"MQTT: {host}:{port}: {short(exc)}; again in {delay:g} s")
                except Exception as exc:  # noqa: BLE001 - a bug: reported, and serve again
                    self.counters["internal_errors"] += 1
                    self.log(f"MQTT: internal error {short(repr(exc))}; again in {delay:g} s")
                finally:
                    self._lost()
                if stopping.is_set():
                    break
                try:
                    await asyncio.wait_for(stopping.wait(), delay)
                except asyncio.TimeoutError:
                    pass
                delay = min(delay * 2.0, self.reconnect_max_s)
        finally:
            self._lost()
            if self.broker is not None:
                await self.broker.stop()
                self.broker = None

    def _lost(self) -> None:
        """The connection is gone: nobody can send MQTT's note-offs now."""
        self.client = None
        self.connected.clear()
        if self.held and not self.remote.release_held():
            self.counters["internal_errors"] += 1

    def _client(self) -> aiomqtt.Client:
        host, port = self.broker_address
        kw: dict = {}
        if self.tls or self.ca_file or self.cert_file:
            kw["tls_params"] = aiomqtt.TLSParameters(
                ca_certs=self.ca_file or None, certfile=self.cert_file or None,
                keyfile=self.key_file or None,
                cert_reqs=ssl.CERT_NONE if self.tls_insecure else ssl.CERT_REQUIRED)
            kw["tls_insecure"] = self.tls_insecure
        return aiomqtt.Client(
            host, port, identifier=self.client_id, username=self.username or None,
            password=self.password or None, keepalive=self.keepalive_s, timeout=10.0,
            will=aiomqtt.Will(self.topic("online"), "false", qos=1, retain=True),
            max_queued_incoming_messages=100_000, **kw)

    async def _serve(self, client: aiomqtt.Client, stopping: asyncio.Event) -> None:
        self.client = self._serving = client
        self.counters["connects"] += 1
        self._published.clear()            # a new connection: every retained state again
        await client.subscribe(self.topic("in", "+", "#"))
        await client.subscribe(self.topic("online"))      # to see the goodbye go out
        await client.publish(self.topic("online"), "true", qos=1, retain=True)
        self.connected.set()
        host, port = self.broker_address
        self.log(f"MQTT: connected to {host}:{port} as {self.client_id}; commands on "
                 f"{self.topic('in', 'CLIENT', '...')}")
        tasks = [asyncio.create_task(self._read(client)),
                 asyncio.create_task(self._publish_loop(client)),
                 asyncio.create_task(self._send_loop(client)),
                 asyncio.create_task(stopping.wait())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._serving = None        # (Python 3.11's wait_for, inside aiomqtt's publish,
            for t in tasks:             # can swallow a cancel: the loops check this too)
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for t in done:
            if not t.cancelled() and t.exception() is not None:
                raise t.exception()
        if stopping.is_set():                      # a clean stop: goodbye, then disconnect
            self.connected.clear()
            if self.held:
                self.remote.release_held()
            await client.publish(self.topic("online"), "false", qos=1, retain=True)
            try:        # the broker has passed it on (the embedded one stops next)
                await asyncio.wait_for(self._goodbye_seen(client), GOODBYE_WAIT_S)
            except asyncio.TimeoutError:
                pass

    async def _goodbye_seen(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            if str(message.topic) == self.topic("online") and message.payload == b"false":
                return

    async def _read(self, client: aiomqtt.Client) -> None:
        n = 0
        online = self.topic("online")
        async for message in client.messages:
            if self._serving is not client:
                return
            topic = str(message.topic)
            if topic != online:
                self.handle(topic, message.payload)
            n += 1
            if n % YIELD_EVERY == 0:
                await asyncio.sleep(0)

    async def _send_loop(self, client: aiomqtt.Client) -> None:
        while self._serving is client:
            topic, payload, retain = await self._out.get()
            if self._serving is not client:
                return
            await client.publish(topic, payload, retain=retain)
            self.counters["replies"] += 1

    def _reply(self, topic: str, payload: str, retain: bool = False) -> bool:
        if self._out is None or self.client is None:
            return False
        try:
            self._out.put_nowait((topic, payload, retain))
            return True
        except asyncio.QueueFull:
            self.counters["replies_dropped"] += 1
            return False

    # ---- input ---------------------------------------------------------------------------------
    def handle(self, topic: str, payload) -> None:
        """One message on `{prefix}/in/CLIENT/COMMAND`: never raises."""
        self.counters["messages"] += 1
        client = ""
        try:
            levels = topic[len(self.prefix) + 1:].split("/", 2) \
                if topic.startswith(self.prefix + "/") else []
            if len(levels) < 2 or levels[0] != "in" or not levels[1]:
                self._error("", topic, "not a command topic: commands go to "
                            f"{self.topic('in', 'CLIENT', 'COMMAND')}")
                return
            client = levels[1]
            if not self._bucket(client).take():
                self.counters["rate_limited"] += 1
                return
            command = levels[2] if len(levels) == 3 else ""
            handler = self._commands.get(command)
            if handler is None:
                raise CommandError(f"no such command {short(command, 40)!r}; commands: "
                                   f"{', '.join(sorted(self._commands))}")
            handler(client, self._decode(payload))
            self.counters["applied"] += 1
        except CommandError as exc:
            self._error(client, topic, str(exc))
        except Exception as exc:  # noqa: BLE001 - the bridge must outlive any bug
            self.counters["internal_errors"] += 1
            self._error(client, topic, f"internal error: {short(repr(exc))}")

    def _bucket(self, client: str) -> TokenBucket:
        b = self._buckets.get(client)
        if b is None:
            if len(self._buckets) >= MAX_CLIENTS:     # forget the idle ones (full buckets)
                now = time.monotonic()
                idle = [k for k, v in self._buckets.items()
                        if v.tokens + (now - v.at) * v.rate >= v.burst]
                for k in idle or list(self._buckets)[:MAX_CLIENTS // 4]:
                    del self._buckets[k]
            b = self._buckets[client] = TokenBucket(self.rate_per_s, self.burst)
        return b

    @staticmethod
    def _decode(payload):
        """The JSON value of a payload (None for an empty one)."""
        if payload is None:
            return None
        if isinstance(payload, (int, float)):
            return payload
        if isinstance(payload, str):
            payload = payload.encode()
        if not isinstance(payload, (bytes, bytearray)):
            raise CommandError("payload must be JSON text")
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise CommandError(f"payload of {len(payload)} bytes: at most {MAX_PAYLOAD_BYTES}")
        if not payload.strip():
            return None
        try:
            text = bytes(payload).decode("utf-8")
            return json.loads(text, parse_constant=_no_constant)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise CommandError(f"payload is not JSON: {short(exc, 80)}") from None

    # ---- commands ------------------------------------------------------------------------------
    def _cmd_set(self, client, data):
        obj = _fields(data, "address", ("value", "norm"))
        address = _text(obj, "address")
        if ("value" in obj) == ("norm" in obj):
            raise CommandError('give one of "value" or "norm" (0..1)')
        if "norm" in obj:
            self.remote.set(address, obj["norm"], norm=True)
        else:
            value = obj["value"]
            if isinstance(value, str):
                value = _text(obj, "value")
            elif not is_number(value):
                raise CommandError(f"value must be a number or a choice's word, "
                                   f"got {short(json.dumps(value), 60)}")
            self.remote.set(address, value)

    def _cmd_tempo(self, client, data):
        bpm = data if is_number(data) else _fields(data, "bpm")["bpm"]
        self.remote.tempo(bpm)

    def _cmd_key(self, client, data):
        obj = _fields(data, "key")
        key = obj["key"]
        if not (is_number(key) or isinstance(key, str)):
            raise CommandError("key must be a number or a word")
        self.remote.set(KEY_ADDRESS, _text(obj, "key") if isinstance(key, str) else key)

    def _part_name(self, obj) -> str:
        return PARTS[self.remote.part(obj["part"])]

    def _cmd_mute(self, client, data):
        obj = _fields(data, ("part", "mute"))
        if not isinstance(obj["mute"], bool):
            raise CommandError("mute must be true or false")
        self.remote.set(f"/{self._part_name(obj)}/mix/mute", 1.0 if obj["mute"] else 0.0)

    def _cmd_patch(self, client, data):
        obj = _fields(data, ("part", "patch"))
        part, name = self._part_name(obj), _text(obj, "patch")
        if not name or any(c in name for c in "/\\") or name.startswith(".") \
                or name.endswith(".toml"):
            raise CommandError(f"patch must be a name in the library folders, "
                               f"got {short(name, 60)!r}")
        from engine.control.mapping import patch_finder
        path = patch_finder(self.session, None)(name)
        if path is None:
            raise CommandError(f"no patch {short(name, 60)!r} in the library folders "
                               f"{self.session.cfg['library']['folders']}")
        self.remote.room()
        self._load_patch(client, part, name, path, 0)

    def _load_patch(self, client: str, part: str, name: str, path: Path, tries: int) -> None:
        from engine.control.graph import GraphBusy
        try:
            self.session.load_patch(part, path)
            self.log(f"MQTT: {client}: patch {name} -> {part}")
        except GraphBusy:
            if tries >= PATCH_RETRIES:
                raise CommandError(f"{part}: a patch change is still crossfading: try again")
            asyncio.get_running_loop().call_later(
                0.03, self._retry_patch, client, part, name, path, tries + 1)
        except (DataError, OSError, ValueError, KeyError) as exc:
            raise CommandError(f"patch {name}: {short(exc, 300)}") from None

    def _retry_patch(self, client, part, name, path, tries) -> None:
        try:
            self._load_patch(client, part, name, path, tries)
        except CommandError as exc:
            self._error(client, self.topic("in", client, "patch"), str(exc))
        except Exception as exc:  # noqa: BLE001
            self.counters["internal_errors"] += 1
            self._error(client, self.topic("in", client, "patch"), f"internal error: {exc!r}")

    def _cmd_scene(self, client, data):
        obj = _fields(data, ("name",), ("fade_s",))
        name = _text(obj, "name")
        fade = obj.get("fade_s")
        if fade is not None and (not is_number(fade) or not 0.0 <= fade <= 600.0):
            raise CommandError(f"fade_s must be a number 0..600, got {short(fade)!r}")
        self.remote.room()
        try:
            self.session.recall_scene(name, None if fade is None else float(fade))
        except (KeyError, ValueError, DataError) as exc:
            raise CommandError(f"scene {short(name, 60)!r}: "
                               f"{short(exc.args[0] if exc.args else exc)}") from None

    def _cmd_note(self, client, data):
        obj = _fields(data, ("part", "note", "velocity"), ("duration_s",))
        p, note, v = self.remote.check_note(obj["part"], obj["note"], obj["velocity"])
        dur = obj.get("duration_s")
        if dur is not None and (not is_number(dur) or not 0.0 < dur <= MAX_DURATION_S):
            raise CommandError(f"duration_s must be a number 0..{MAX_DURATION_S:g}, "
                               f"got {short(json.dumps(dur), 40)}")
        now = now_sample(self.session, self._clock)
        if dur is not None and v > 0.0:
            off = float(now + max(1, round(dur * self.session.sample_rate)))
            self._timed.room(self.session.state.sample_time)
            self.remote.room()
            self.remote.note(p, note, v, ASAP, now)
            self.remote.note(p, note, 0.0, off, 0)
            self._timed.add(off)
        else:
            self.remote.note(p, note, v, ASAP, now)

    def _cmd_release(self, client, data):
        self.remote.release()

    def _cmd_panic(self, client, data):
        self.remote.panic()

    def _cmd_get(self, client, data):
        address = _text(_fields(data, "address"), "address")
        q = self.remote.param(address)
        v = self.remote.value(address)
        self._reply(self.topic("out", client, "value"), json.dumps(
            {"address": address, "value": v, "norm": self.remote.value(address, norm=True),
             "lo": q.lo, "hi": q.hi, "default": q.default, "curve": q.curve,
             "choices": list(q.choices or ())}))

    def _words_handler(self, name: str):
        """The handler of in/CLIENT/NAME, a words command (engine.control.remote): a JSON
        object with its fields (one field: the bare string too)."""
        want = WORD_COMMANDS[name]

        def handler(client, data):
            if len(want) == 1 and isinstance(data, str):
                data = {want[0]: data}
            obj = _fields(data, want)
            args = [_words(obj, k) if k != "part" else obj[k] for k in want]
            reply = getattr(self.remote, name)(*args)
            self._reply(self.topic("out", client, name), json.dumps({"reply": reply}))
        return handler

    # ---- errors --------------------------------------------------------------------------------
    def _error(self, client: str, topic: str, reason: str) -> None:
        """Count an error and, within the reply rate, tell the client."""
        self.counters["errors"] += 1
        self.last_error = f"{short(topic)}: {reason}"
        if not client or not self._replies.take():
            self.counters["errors_unreplied"] += 1
            return
        ok = self._reply(self.topic("out", client, "error"),
                         json.dumps({"topic": short(topic), "reason": short(reason, REASON_MAX)}))
        if not ok:
            self.counters["errors_unreplied"] += 1

    # ---- state ---------------------------------------------------------------------------------
    async def _publish_loop(self, client: aiomqtt.Client) -> None:
        while self._serving is client:
            for topic, payload, retain in self.state_messages():
                await client.publish(topic, payload, retain=retain)
                if self._serving is not client:
                    return
            await asyncio.sleep(self.publish_s)

    def _changed(self, topic: str, payload: str) -> bool:
        if self._published.get(topic) == payload:
            return False
        self._published[topic] = payload
        return True

    def state_messages(self) -> list[tuple[str, str, bool]]:
        """What changed since it was last published: (topic, payload, retained)."""
        s, out = self.session, []

        def put(topic: str, payload, retain: bool) -> None:
            text = payload if isinstance(payload, str) else json.dumps(payload)
            if self._changed(topic, text):
                out.append((topic, text, retain))

        put(self.topic("state", "tempo_bpm"), float(s.clock.bpm), True)
        for part in PARTS:
            patch = s.patches.get(part)
            put(self.topic("state", "patch", part), Path(patch.path).stem if patch else "", True)
        for address in s.addresses():
            if address == TEMPO_ADDRESS:
                continue
            try:
                put(self.topic("param") + address, float(s.value(address)), True)
            except (KeyError, ValueError, TypeError):
                continue
        cond = s.conductor
        chord = cond.chord.name if cond is not None and cond.chord is not None else ""
        put(self.topic("state", "chord"), chord, True)
        runner = getattr(s, "form_runner", None)
        if runner is not None and runner.section is not None:
            put(self.topic("state", "section"), runner.section, True)
        memory = memory_state(s)
        if memory is not None:
            put(self.topic("state", "memory"), memory, True)
        beat = s.clock.beat_at(s.state.sample_time)
        bar = s.clock.bar_at(beat)
        put(self.topic("state", "position"),
            {"bar": bar + 1, "beat": int(beat - s.clock.meter.bar_start(bar)) + 1}, False)
        put(self.topic("state", "levels"), self._levels(), False)
        put(self.topic("state", "engine"), s.state.counters(), False)
        put(self.topic("state", "bridge"), dict(self.counters, last_error=self.last_error),
            False)
        return out

    def _levels(self) -> dict:
        """Peaks since the last read, in dBFS (the audio thread keeps the maximum; the reset
        may lose one block's peak to a race, which a meter can afford)."""
        m = self.session.state.arrays[L.S_METER]

        def db(x: float) -> float:
            return round(max(20.0 * math.log10(x), LEVEL_FLOOR_DB), 1) if x > 0 else \
                LEVEL_FLOOR_DB
        out = {"peak_db": [db(float(m[L.M_PEAK_L])), db(float(m[L.M_PEAK_R]))],
               "parts": {p: db(float(m[L.M_PART_PEAK + i])) for i, p in enumerate(PARTS)}}
        m[L.M_PEAK_L] = m[L.M_PEAK_R] = 0.0
        m[L.M_PART_PEAK:L.M_PART_PEAK + len(PARTS)] = 0.0
        return out


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number here")


def _fields(data, required, optional=()) -> dict:
    """`data` as a JSON object with the `required` keys and no keys but those and `optional`."""
    required = (required,) if isinstance(required, str) else tuple(required)
    optional = (optional,) if isinstance(optional, str) else tuple(optional)
    if not isinstance(data, dict):
        want = ", ".join(f'"{k}"' for k in required + optional)
        raise CommandError(f"payload must be a JSON object with {want}")
    missing = [k for k in required if k not in data]
    if missing:
        raise CommandError(f"missing {', '.join(map(repr, missing))}")
    extra = [k for k in data if k not in required + optional]
    if extra:
        raise CommandError(f"unknown field(s) {short(', '.join(map(repr, extra)), 80)}; "
                           f"fields: {', '.join(required + optional)}")
    return data


def _text(obj: dict, key: str) -> str:
    v = obj[key]
    if not isinstance(v, str):
        raise CommandError(f"{key} must be a string, got {short(json.dumps(v), 40)}")
    if len(v) > MAX_TEXT:
        raise CommandError(f"{key}: at most {MAX_TEXT} characters, got {len(v)}")
    return v


def _words(obj: dict, key: str) -> str:
    """A phrase or prompt field: a string (its length is checked by engine.control.remote)."""
    v = obj[key]
    if not isinstance(v, str):
        raise CommandError(f"{key} must be a string, got {short(json.dumps(v), 40)}")
    return v


def bridge_from_config(session, cfg: dict, log=print) -> MqttBridge | None:
    """The MQTT bridge `cfg["mqtt"]` describes, or None when it is off."""
    m = cfg.get("mqtt", {})
    if not m.get("enabled"):
        return None
    try:
        check_prefix(m["prefix"])
    except ValueError as exc:
        raise DataError(f"[mqtt] prefix: {exc}") from None
    return MqttBridge(
        session, host=m["host"] or None, port=m["port"], prefix=m["prefix"],
        client_id=m["client_id"], username=m["username"], password=m["password"], tls=m["tls"],
        ca_file=m["ca_file"], cert_file=m["cert_file"], key_file=m["key_file"],
        tls_insecure=m["tls_insecure"], keepalive_s=m["keepalive_s"],
        reconnect_min_s=m["reconnect_min_s"], reconnect_max_s=m["reconnect_max_s"],
        rate_per_s=m["rate_per_s"], burst=m["burst"], publish_hz=m["publish_hz"],
        embedded_host=m["embedded_host"], embedded_port=m["embedded_port"], log=log)
