"""MQTT control (engine.control.mqtt) through real brokers: a mosquitto started here (its own
port, password file, ACL) and the embedded amqtt broker. Commands change the engine (its values
and the rendered signal), state is published (retained for late subscribers), logins and the
ACL hold, bandmate reconnects after the broker dies and says "offline" by its last will, and
garbage and floods change nothing but the counters while the audio plays on.

The bridge and the offline renders share one thread (the asyncio loop), as the live run's
scheduler and bridge do. Every wait has a timeout and names what it waited for.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import socket
from pathlib import Path

import numpy as np
import pytest

from engine.control.mqtt import (
    MAX_PAYLOAD_BYTES, BrokerStartError, MqttBridge, bridge_from_config,
)
from engine.control.offline import OfflineDriver
from engine.control.remote import QUEUE_HEADROOM
from engine.control.session import Session
from engine.parts import BASS, KEYS
from engine.rt import layout as L
from tests import mqttkit
from tests.mqttkit import USERS, Listener, Mosquitto

SR = 48000
ROOT = Path(__file__).resolve().parents[1]
WAIT_S = 10.0

needs_mosquitto = pytest.mark.skipif(
    mqttkit.MOSQUITTO is None or mqttkit.MOSQUITTO_PASSWD is None,
    reason="mosquitto and mosquitto_passwd are not installed (Debian package: mosquitto)")


def run(coro, timeout: float = 60.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def until(pred, what: str, timeout: float = WAIT_S):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        r = pred()
        if r:
            return r
        if loop.time() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.005)


class Broker:
    """One kind of broker for a test: `mosquitto` (started here) or `embedded` (the bridge
    starts it). `bridge(session)` runs a bridge on it; `client(name)` logs a client in."""

    def __init__(self, kind: str, folder: Path):
        self.kind = kind
        self.mosquitto = Mosquitto(folder).start() if kind == "mosquitto" else None
        self.bridges: list[tuple[MqttBridge, asyncio.Event, asyncio.Task]] = []

    @property
    def port(self) -> int:
        if self.mosquitto is not None:
            return self.mosquitto.port
        return self.bridges[0][0].broker_address[1]

    async def bridge(self, session, **kw) -> MqttBridge:
        kw = dict(dict(username="bandmate", password=USERS["bandmate"], publish_hz=50.0,
                       reconnect_min_s=0.05, reconnect_max_s=0.4, log=lambda s: None), **kw)
        if self.mosquitto is not None:
            b = MqttBridge(session, host="127.0.0.1", port=self.mosquitto.port, **kw)
        else:       # the embedded broker asks every client for bandmate's one login
            b = MqttBridge(session, embedded_port=0, **kw)
        stopping = asyncio.Event()
        task = asyncio.create_task(b.run(stopping))
        self.bridges.append((b, stopping, task))
        await asyncio.wait_for(b.connected.wait(), WAIT_S)
        return b

    def login(self, user: str) -> tuple[str, str]:
        if self.mosquitto is not None:
            return user, USERS[user]
        return "bandmate", USERS["bandmate"]

    def client(self, client_id: str, user: str | None = None, **kw) -> Listener:
        u, p = self.login(user or client_id)
        return Listener(self.port, client_id, u, p, **kw)

    async def close(self) -> None:
        for b, stopping, task in self.bridges:
            stopping.set()
            await asyncio.wait_for(task, WAIT_S)
        if self.mosquitto is not None:
            self.mosquitto.kill()


@pytest.fixture(params=["mosquitto", "embedded"])
def broker_kind(request):
    if request.param == "mosquitto" and (mqttkit.MOSQUITTO is None
                                         or mqttkit.MOSQUITTO_PASSWD is None):
        pytest.skip("mosquitto and mosquitto_passwd are not installed (Debian: mosquitto)")
    return request.param


def render(session, drv: OfflineDriver, frames: int, part: int = KEYS, block: int = 64):
    """Render `frames`; returns (stereo out, |left| + |right| of the part's pair)."""
    out = np.zeros((frames, 2), np.float32)
    row = np.zeros(frames)
    bus = session.state.arrays[L.S_BUS]
    done = 0
    while done < frames:
        n = min(block, frames - done)
        drv.render(n, out[done:done + n])
        row[done:done + n] = np.abs(bus[L.B_PART0 + 2 * part, :n]) + \
            np.abs(bus[L.B_PART0 + 2 * part + 1, :n])
        done += n
    return out, row


def rms(x) -> np.ndarray:
    return np.sqrt(np.mean(np.asarray(x, float) ** 2, axis=0))


def snapshot(session) -> dict:
    return {a: session.value(a) for a in session.addresses()}


# ---- commands change the engine -------------------------------------------------------------

def test_commands_change_the_engine(cfg, broker_kind, tmp_path):
    """Through each broker: set by value, by word and by 0..1, tempo, mute, a patch by name,
    a note that sounds (and stops after its duration), get's reply, and scenes answered."""
    async def main():
        s = Session(cfg, SR)
        br = Broker(broker_kind, tmp_path)
        try:
            bridge = await br.bridge(s)
            drv = OfflineDriver(s.state, 64)
            async with br.client("alice") as c:
                cmd = "bandmate/in/alice/"
                await c.send(cmd + "patch", {"part": "bass", "patch": "bass-acid"})
                await c.send(cmd + "set", {"address": "/bass/synth/cutoff_hz", "value": 800})
                await c.send(cmd + "set", {"address": "/keys/mix/pan", "norm": 0.0})
                await c.send(cmd + "tempo", {"bpm": 96.5})
                await c.send(cmd + "mute", {"part": "drums", "mute": True})
                await c.send(cmd + "note", {"part": "keys", "note": 57, "velocity": 100,
                                            "duration_s": 0.3})
                await until(lambda: bridge.counters["messages"] >= 6, "6 commands")
                assert bridge.counters["errors"] == 0, bridge.last_error
                assert bridge.counters["applied"] == 6
                assert s.value("/bass/synth/cutoff_hz") == 800.0
                assert s.value("/keys/mix/pan") == -1.0
                assert s.value("/drums/mix/mute") == 1.0
                assert s.clock.bpm == 96.5
                assert Path(s.patches["bass"].path).stem == "bass-acid"
                # the note plays (panned hard left: the right channel silent), then stops
                out, row = render(s, drv, SR // 5)
                assert row.max() > 1e-3
                level = rms(out[-SR // 10:])
                assert level[0] > 1e-3 and level[1] < 0.01 * level[0], level
                out, row = render(s, drv, 2 * SR)
                assert row[-SR // 10:].max() < 1e-6 and not bridge.held
                # get replies on the client's own out topic; scenes say what they can
                await c.send(cmd + "get", {"address": "/bass/synth/cutoff_hz"})
                await c.send(cmd + "scene", {"name": "verse"})        # not in scenes.toml
                await c.send(cmd + "scene", {"name": "breakdown", "fade_s": 0.0})
                r = json.loads(await c.wait_for(lambda: c.last("bandmate/out/alice/value"),
                                                "get's reply"))
                assert r["address"] == "/bass/synth/cutoff_hz" and r["value"] == 800.0
                assert 0.0 < r["norm"] < 1.0 and r["curve"] == "log"
                e = json.loads(await c.wait_for(lambda: c.last("bandmate/out/alice/error"),
                                                "the unknown scene's answer"))
                assert "verse" in e["reason"]
                await until(lambda: bridge.counters["messages"] >= 9, "the scenes")
                assert s.value("/bass/agent/octave") == 1.0          # scenes.toml [breakdown]
                assert s.value("/lead/agent/on") == 1.0
        finally:
            await br.close()
    run(main())


def test_state_is_published_and_retained_for_a_late_subscriber(cfg, broker_kind, tmp_path):
    """A client that subscribes after the fact gets online, the tempo, the patches and every
    value from the broker's retained store; position, levels and counters flow while playing."""
    async def main():
        s = Session(cfg, SR)
        br = Broker(broker_kind, tmp_path)
        try:
            await br.bridge(s)
            s.set("/bass/mix/pan", 0.25)
            async with br.client("alice") as c:
                await c.send("bandmate/in/alice/tempo", 101)
                await until(lambda: s.clock.bpm == 101.0, "the tempo")
                await c.wait_for(lambda: c.last("bandmate/state/tempo_bpm") == "101.0" and
                                 c.last("bandmate/param/bass/mix/pan") == "0.25",
                                 "the new tempo and pan published")
            drv = OfflineDriver(s.state, 64)
            s.scheduler.advance(0)
            for _ in range(20):
                s.scheduler.advance(s.state.sample_time)
                render(s, drv, SR // 20)
            await asyncio.sleep(0.2)                            # a few publish rounds
            async with br.client("bob", user="alice") as late:
                n_params = len(s.addresses()) - 1              # (the tempo has its own)
                retained = await late.wait_for(
                    lambda: (r := {t: p for t, p, k in late.got if k}) and sum(
                        t.startswith("bandmate/param/") for t in r) == n_params and r,
                    "every retained value")
                assert retained["bandmate/online"] == "true"
                assert float(retained["bandmate/state/tempo_bpm"]) == 101.0
                assert retained["bandmate/state/patch/bass"] == \
                    Path(s.patches["bass"].path).stem
                assert float(retained["bandmate/param/bass/mix/pan"]) == 0.25
                # live state: play on, the position and the levels and counters come
                for _ in range(10):
                    s.scheduler.advance(s.state.sample_time)
                    render(s, drv, SR // 20)
                    await asyncio.sleep(0.03)
                pos = json.loads(await late.wait_for(
                    lambda: late.last("bandmate/state/position"), "the position"))
                assert pos["bar"] >= 1 and 1 <= pos["beat"] <= 4
                levels = await late.wait_for(
                    lambda: [json.loads(p) for p in late.on("bandmate/state/levels")],
                    "the levels")
                assert set(levels[0]["parts"]) == {"keys", "bass", "chords", "lead", "drums"}
                assert max(max(lv["peak_db"]) for lv in levels) > -60.0   # the band plays
                eng = json.loads(await late.wait_for(
                    lambda: late.last("bandmate/state/engine"), "the engine's counters"))
                assert {"xruns", "late_events"} <= set(eng) and eng["blocks"] > 0
        finally:
            await br.close()
    run(main())


# ---- who may connect and steer ---------------------------------------------------------------

@needs_mosquitto
def test_mosquitto_refuses_a_wrong_login_and_the_acl_keeps_clients_in_their_subtree(
        cfg, tmp_path):
    import aiomqtt

    async def main():
        s = Session(cfg, SR)
        br = Broker("mosquitto", tmp_path)
        try:
            bridge = await br.bridge(s)
            for user, password in ((None, None), ("alice", "wrong"), ("nobody", "x")):
                with pytest.raises(aiomqtt.MqttError):
                    async with aiomqtt.Client("127.0.0.1", br.port, identifier="alice",
                                              username=user, password=password, timeout=5):
                        pass
            before = snapshot(s)
            # mallory logs in but writes into alice's subtree and bandmate's state: dropped
            async with br.client("mallory") as m:
                await m.send("bandmate/in/alice/set",
                             {"address": "/bass/synth/cutoff_hz", "value": 300}, qos=1)
                await m.send("bandmate/state/tempo_bpm", "300", qos=1)
                await m.send("bandmate/in/mallory/get", {"address": "/bass/mix/pan"}, qos=1)
                await m.wait_for(lambda: m.last("bandmate/out/mallory/value"),
                                 "the reply to mallory's own command")
            assert bridge.counters["messages"] == 1 and bridge.counters["applied"] == 1
            assert snapshot(s) == before
        finally:
            await br.close()
    run(main())


def test_the_embedded_broker_asks_for_the_login_and_keeps_clients_in_their_subtree(
        cfg, tmp_path):
    import aiomqtt

    async def main():
        s = Session(cfg, SR)
        br = Broker("embedded", tmp_path)
        try:
            bridge = await br.bridge(s)
            assert bridge.broker_address[0] == "127.0.0.1"          # loopback by default
            for user, password in ((None, None), ("bandmate", "wrong")):
                with pytest.raises(aiomqtt.MqttError):
                    async with aiomqtt.Client("127.0.0.1", br.port, identifier="eve",
                                              username=user, password=password, timeout=5):
                        pass
            before = snapshot(s)
            async with br.client("mallory") as m:
                await m.send("bandmate/in/alice/set",
                             {"address": "/bass/synth/cutoff_hz", "value": 300}, qos=1)
                await m.send("bandmate/in/mallory/get", {"address": "/bass/mix/pan"}, qos=1)
                await m.wait_for(lambda: m.last("bandmate/out/mallory/value"),
                                 "the reply to mallory's own command")
            assert bridge.counters["messages"] == 1 and bridge.counters["applied"] == 1
            assert snapshot(s) == before
        finally:
            await br.close()
    run(main())


@needs_mosquitto
def test_tls_to_mosquitto_checks_the_brokers_certificate(cfg, tmp_path):
    """mosquitto with a certificate from a test CA: bandmate connects over TLS given the CA
    file; without it the certificate is refused (it keeps retrying, logged); `tls_insecure`
    connects without the check."""
    import shutil
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")

    async def main():
        s = Session(cfg, SR)
        mq = Mosquitto(tmp_path, tls=True).start()
        login = dict(host="127.0.0.1", port=mq.port, username="bandmate",
                     password=USERS["bandmate"], reconnect_min_s=0.05, reconnect_max_s=0.2)
        try:
            for kw, connects in ((dict(ca_file=str(mq.ca_file)), True),
                                 (dict(tls=True), False),
                                 (dict(tls=True, tls_insecure=True), True)):
                lines: list[str] = []
                b = MqttBridge(s, log=lines.append, **login, **kw)
                stopping = asyncio.Event()
                task = asyncio.create_task(b.run(stopping))
                if connects:
                    await asyncio.wait_for(b.connected.wait(), WAIT_S)
                    b.handle("bandmate/in/alice/set", b'{"address": "/bass/mix/pan", '
                                                      b'"value": 0.5}')
                    assert s.value("/bass/mix/pan") == 0.5
                else:
                    await until(lambda: len(lines) >= 2, "two refused connections")
                    assert not b.connected.is_set() and b.counters["connects"] == 0
                    assert "certificate" in " ".join(lines).lower(), lines
                stopping.set()
                await asyncio.wait_for(task, WAIT_S)
                s.set("/bass/mix/pan", 0.0)
        finally:
            mq.kill()
    run(main())


# ---- connection loss -------------------------------------------------------------------------

@needs_mosquitto
def test_bandmate_reconnects_after_the_broker_restarts(cfg, tmp_path):
    """mosquitto is killed (SIGKILL) while a note is held and started again on the same port:
    the held note is released at once, and bandmate reconnects and takes commands again."""
    async def main():
        s = Session(cfg, SR)
        br = Broker("mosquitto", tmp_path)
        try:
            bridge = await br.bridge(s)
            drv = OfflineDriver(s.state, 64)
            async with br.client("alice") as c:
                await c.send("bandmate/in/alice/note", {"part": "keys", "note": 60,
                                                        "velocity": 90})
                await until(lambda: bridge.held, "the held note")
            _, row = render(s, drv, SR // 10)
            assert row.max() > 1e-3
            br.mosquitto.kill()
            await until(lambda: not bridge.connected.is_set(), "bandmate to see the loss")
            assert not bridge.held                       # nobody could send its note-off
            _, row = render(s, drv, 2 * SR)
            assert row[-SR // 10:].max() < 1e-6
            br.mosquitto.start()
            await asyncio.wait_for(bridge.connected.wait(), WAIT_S)
            assert bridge.counters["connects"] == 2 and bridge.counters["disconnects"] >= 1
            async with br.client("alice") as c:
                await c.send("bandmate/in/alice/set", {"address": "/bass/mix/pan",
                                                       "value": -0.5})
                await until(lambda: s.value("/bass/mix/pan") == -0.5, "a command again")
                assert await c.wait_for(lambda: c.last("bandmate/online") == "true",
                                        "online again (retained)")
        finally:
            await br.close()
    run(main())


@needs_mosquitto
def test_the_last_will_says_offline_when_bandmate_dies_uncleanly(cfg, tmp_path):
    """bandmate's TCP connection is cut without an MQTT goodbye: the broker publishes its will,
    online "false" (retained); after it reconnects, "true" again. A clean stop says "false"."""
    async def main():
        s = Session(cfg, SR)
        br = Broker("mosquitto", tmp_path)
        try:
            bridge = await br.bridge(s, reconnect_min_s=0.5)
            async with br.client("alice", topics=("bandmate/online",)) as c:
                await c.wait_for(lambda: c.on("bandmate/online") == ["true"], "online")
                # paho's socket: shut down under the bridge, as when its process is killed
                bridge.client._client.socket().shutdown(2)
                await c.wait_for(lambda: c.on("bandmate/online")[1:2] == ["false"],
                                 "the last will")
                await c.wait_for(lambda: c.on("bandmate/online")[2:3] == ["true"],
                                 "online after reconnecting")
                b, stopping, task = br.bridges[0]
                stopping.set()
                await asyncio.wait_for(task, WAIT_S)
                await c.wait_for(lambda: c.on("bandmate/online")[3:] == ["false"],
                                 "offline after a clean stop")
            br.bridges.clear()
            async with br.client("bob", user="alice", topics=("bandmate/online",)) as late:
                await late.wait_for(lambda: late.got, "the retained flag")
                assert late.got == [("bandmate/online", "false", True)]
        finally:
            await br.close()
    run(main())


def test_reconnect_waits_double_up_to_the_cap_and_a_taken_port_is_a_clear_error(cfg):
    async def main():
        s = Session(cfg, SR)
        lines: list[str] = []
        nobody = mqttkit.free_port()                       # nothing listens there
        b = MqttBridge(s, host="127.0.0.1", port=nobody, reconnect_min_s=0.05,
                       reconnect_max_s=0.3, log=lines.append)
        stopping = asyncio.Event()
        task = asyncio.create_task(b.run(stopping))
        await until(lambda: len(lines) >= 6, "six failed connections")
        stopping.set()
        await asyncio.wait_for(task, WAIT_S)
        waits = [float(re.search(r"again in ([0-9.]+) s", x).group(1)) for x in lines[:6]]
        assert waits == [0.05, 0.1, 0.2, 0.3, 0.3, 0.3], lines
        assert b.counters["connects"] == 0 and b.counters["disconnects"] >= 6
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            b = MqttBridge(s, embedded_port=taken.getsockname()[1], log=lambda text: None)
            with pytest.raises(BrokerStartError, match="embedded_port = 0"):
                await asyncio.wait_for(b.run(asyncio.Event()), WAIT_S)
    run(main())


# ---- bad input and floods --------------------------------------------------------------------

BAD = [
    ("set", b"not json", "not JSON"),
    ("set", b"\xff\xfe\x00", "not JSON"),
    ("set", b'{"address": "/bass/synth/cutoff_hz", "value": NaN}', "not a number"),
    ("set", b"[1, 2]", "JSON object"),
    ("set", {"address": "/bass/synth/cutoff_hz"}, "one of"),
    ("set", {"address": "/bass/synth/cutoff_hz", "value": 1, "norm": 0.5}, "one of"),
    ("set", {"address": "/bass/synth/nope_hz", "value": 1.0}, "no such parameter"),
    ("set", {"address": 5, "value": 1.0}, "must be a string"),
    ("set", {"address": "bass", "value": 1.0}, "not an address"),
    ("set", {"address": "/bass/synth/cutoff_hz", "value": 1e9}, "must be"),
    ("set", {"address": "/bass/synth/cutoff_hz", "value": True}, "must be a number"),
    ("set", {"address": "/bass/synth/cutoff_hz", "value": [1]}, "must be a number"),
    ("set", {"address": "/bass/synth/cutoff_hz", "value": "loud"}, "must be a number"),
    ("set", {"address": "/bass/synth/cutoff_hz", "norm": 1.5}, "0..1"),
    ("set", {"address": "/x" * 300, "value": 1.0}, "at most 256"),
    ("set", {"address": "/bass/mix/pan", "value": 0.1, "extra": 1}, "unknown field"),
    ("set", b"[" * 3000 + b"]" * 3000, "at most 4096"),
    ("set", b"[" * 2000 + b"]" * 2000, "not JSON"),
    ("set", b" " * (MAX_PAYLOAD_BYTES + 1), "at most 4096"),
    ("tempo", {"bpm": 1000}, "20..400"),
    ("tempo", b'"fast"', "JSON object"),
    ("tempo", None, "JSON object"),
    ("key", {"key": None}, "number or a word"),
    ("patch", {"part": "bass", "patch": "../../etc/passwd"}, "a name in the library"),
    ("patch", {"part": "bass", "patch": "no-such-patch"}, "no patch"),
    ("patch", {"part": "guitar", "patch": "bass-acid"}, "part must be"),
    ("patch", {"part": "keys", "patch": "kit-808"}, "kit"),
    ("mute", {"part": "drums", "mute": "yes"}, "true or false"),
    ("scene", {"name": 3}, "must be a string"),
    ("note", {"part": "keys", "note": 200, "velocity": 100}, "note must be"),
    ("note", {"part": "keys", "note": 60, "velocity": 500}, "velocity"),
    ("note", {"part": "keys", "note": 60}, "missing"),
    ("note", {"part": "keys", "note": 60, "velocity": 100, "duration_s": -1}, "duration_s"),
    ("note", {"part": "keys", "note": 60, "velocity": 100, "duration_s": 1e6}, "duration_s"),
    ("nope", {}, "no such command"),
    ("", {}, "no such command"),
]


@pytest.mark.parametrize("command,payload,reason", BAD,
                         ids=[f"{c}-{str(p)[:24]}" for c, p, _ in BAD])
def test_a_bad_command_changes_nothing_and_gets_its_reason(cfg, command, payload, reason):
    """Straight into the bridge's handler (the topic and payload a broker delivers)."""
    s = Session(cfg, SR)
    b = MqttBridge(s, log=lambda text: None)
    before, bpm, patches = snapshot(s), s.clock.bpm, dict(s.patches)
    data = payload if isinstance(payload, (bytes, type(None))) else json.dumps(payload).encode()
    b.handle(f"bandmate/in/alice/{command}".rstrip("/"), data)
    assert b.counters["errors"] == 1 and b.counters["applied"] == 0, b.counters
    assert reason in b.last_error, b.last_error
    assert len(b.last_error) < 700                       # never echoes a flood
    assert snapshot(s) == before and s.clock.bpm == bpm and s.patches == patches
    assert not b.held and s.state.arrays[L.S_QSCHED_IDX][0] == 0    # nothing reached the engine
    assert b.counters["internal_errors"] == 0


def test_errors_are_answered_on_the_clients_own_topic(cfg, broker_kind, tmp_path):
    async def main():
        s = Session(cfg, SR)
        br = Broker(broker_kind, tmp_path)
        try:
            bridge = await br.bridge(s)
            async with br.client("alice") as c:
                await c.send("bandmate/in/alice/set", b"{oops")
                await c.send("bandmate/in/alice/tempo", {"bpm": 9999})
                errors = await c.wait_for(
                    lambda: (e := c.on("bandmate/out/alice/error")) and len(e) >= 2 and e,
                    "two error replies")
                reasons = [json.loads(e)["reason"] for e in errors]
                assert "not JSON" in reasons[0] and "20..400" in reasons[1]
                assert json.loads(errors[0])["topic"] == "bandmate/in/alice/set"
                state = json.loads(await c.wait_for(
                    lambda: (p := c.last("bandmate/state/bridge")) and
                    json.loads(p)["errors"] == 2 and p, "the error count published"))
                assert "20..400" in state["last_error"]
            assert bridge.counters["errors"] == 2
        finally:
            await br.close()
    run(main())


def test_fuzz_and_floods_through_the_broker_leave_the_music_playing(cfg, broker_kind, tmp_path):
    """Random bytes, non-JSON, wrong types, huge payloads and good notes, thousands of
    messages from two clients as fast as they go: every message is counted as applied, an
    error or rate-limited; the values stay, the audio keeps coming, the other client's commands
    land through the flood, and when the input stops no note sounds."""
    async def main():
        rng = np.random.default_rng(7)
        s = Session(cfg, SR)
        br = Broker(broker_kind, tmp_path)
        try:
            bridge = await br.bridge(s, rate_per_s=1000.0, burst=1000)
            drv = OfflineDriver(s.state, 64)
            watched = [a for a in s.addresses() if a != "/bass/synth/cutoff_hz"]
            before = {a: s.value(a) for a in watched}
            good = json.dumps({"part": "keys", "note": 60, "velocity": 100,
                               "duration_s": 0.05}).encode()
            kinds = [lambda: rng.bytes(int(rng.integers(0, 300))),
                     lambda: b"{" + rng.bytes(20).hex().encode(),
                     lambda: json.dumps({"address": "/bass/mix/pan",
                                         "value": rng.bytes(4).hex()}).encode(),
                     lambda: json.dumps({"address": ["/bass/mix/pan"], "value": 1}).encode(),
                     lambda: b"x" * int(rng.integers(MAX_PAYLOAD_BYTES + 1, 12000)),
                     lambda: json.dumps([{"a": 1}] * int(rng.integers(1, 5))).encode(),
                     lambda: good]
            commands = ["set", "note", "tempo", "patch", "zzz", "note/extra"]
            sent = 0
            async with br.client("flood", user="alice") as f, br.client("alice") as c:
                for burst in range(6):
                    for _ in range(250):
                        k = int(rng.integers(len(kinds)))
                        cmd = "note" if k == len(kinds) - 1 else \
                            commands[int(rng.integers(len(commands)))]
                        await f.send(f"bandmate/in/flood/{cmd}", kinds[k]())
                        sent += 1
                    # the other client's command lands through the flood
                    await c.send("bandmate/in/alice/set", {"address": "/bass/synth/cutoff_hz",
                                                           "value": 300.0 + burst})
                    s.scheduler.advance(s.state.sample_time)
                    out, _ = render(s, drv, 512)
                    assert np.all(np.isfinite(out))
                await until(lambda: bridge.counters["messages"] >= sent + 6,
                            f"{sent + 6} messages handled", timeout=30)
                await until(lambda: s.value("/bass/synth/cutoff_hz") == 305.0,
                            "alice's last command")
            cnt = bridge.counters
            assert cnt["messages"] == sent + 6
            assert cnt["applied"] + cnt["errors"] + cnt["rate_limited"] == cnt["messages"]
            assert cnt["errors"] > 300 and cnt["applied"] > 30
            assert cnt["internal_errors"] == 0
            assert {a: s.value(a) for a in watched} == before
            assert s.state.counters()["dropped_events"] == 0
            # the input stops: the notes end on their own (a duration) and nothing sounds
            s.scheduler.advance(s.state.sample_time)
            out, row = render(s, drv, 2 * SR)
            assert np.all(np.isfinite(out)) and row[-SR // 10:].max() < 1e-6
        finally:
            await br.close()
    run(main())


def test_a_flood_is_rate_limited_per_client_and_never_crowds_out_the_band(cfg):
    """10000 notes straight into the handler with no audio draining the queue: one client's
    bucket stops it after its burst; many clients together stop at the queue's headroom, so
    the band's scheduler still finds half the queue free. Held notes go when it stops."""
    s = Session(cfg, SR)
    b = MqttBridge(s, rate_per_s=1e-3, burst=50, log=lambda text: None)
    note = json.dumps({"part": "bass", "note": 40, "velocity": 100}).encode()
    for _ in range(10000):
        b.handle("bandmate/in/flood/note", note)
    assert b.counters["applied"] == 50 and b.counters["rate_limited"] == 9950
    idx = s.state.arrays[L.S_QSCHED_IDX]
    for i in range(10000):
        b.handle(f"bandmate/in/c{i}/note", note)
    fill = int(idx[0]) - int(idx[8])
    assert fill == QUEUE_HEADROOM and b.counters["errors"] > 0
    assert "engine busy" in b.last_error and b.counters["internal_errors"] == 0
    s.scheduler.advance(0)                       # the band still has room for its notes
    assert int(idx[0]) - int(idx[8]) > fill
    drv = OfflineDriver(s.state, 64)
    render(s, drv, 4096, part=BASS)
    assert b.held
    b._lost()                                    # the connection goes: its notes are released
    _, row = render(s, drv, 2 * SR, part=BASS)
    assert not b.held and row[-SR // 10:].max() < 1e-6


# ---- config, command line, live run ----------------------------------------------------------

def test_config_turns_it_on(cfg):
    assert cfg["mqtt"]["enabled"] is False
    s = Session(cfg, SR)
    assert bridge_from_config(s, cfg) is None
    cfg["mqtt"].update(enabled=True, host="broker.local", port=8883, tls=True)
    b = bridge_from_config(s, cfg)
    assert isinstance(b, MqttBridge) and b.broker_address == ("broker.local", 8883)
    cfg["mqtt"].update(host="", prefix="home/band")
    b = bridge_from_config(s, cfg)
    assert b.host is None and b.topic("online") == "home/band/online"
    from engine.tomldata import DataError
    cfg["mqtt"].update(prefix="band/#")
    with pytest.raises(DataError, match="prefix"):
        bridge_from_config(s, cfg)


def test_cli_mqtt_flag():
    from engine.cli import _overrides, _parser
    o = _overrides(_parser().parse_args(["jam", "--mqtt"]))
    assert o["mqtt"] == {"enabled": True}
    o = _overrides(_parser().parse_args(["demo", "--mqtt", "broker.lan:1884"]))
    assert o["mqtt"] == {"enabled": True, "host": "broker.lan", "port": 1884}
    o = _overrides(_parser().parse_args(["jam", "--mqtt", "broker.lan"]))
    assert o["mqtt"] == {"enabled": True, "host": "broker.lan"}
    assert "mqtt" not in _overrides(_parser().parse_args(["jam"]))
    from engine.tomldata import DataError
    with pytest.raises(DataError, match="HOST"):
        _overrides(_parser().parse_args(["jam", "--mqtt", "host:port"]))


def test_the_live_run_starts_the_embedded_broker_and_says_goodbye(cfg):
    from engine.control import live

    from tests.enginekit import NullStream as Stream

    async def main():
        cfg["mqtt"].update(enabled=True, embedded_port=0, username="", password="")
        s = Session(cfg, SR)
        stream = Stream()
        lr = live.LiveRun(s, stream, log=lambda text: None)
        task = asyncio.create_task(lr.run(30.0))
        await until(lambda: lr.mqtt is not None and lr.mqtt.connected.is_set(),
                    "the live run's MQTT bridge")
        port = lr.mqtt.broker_address[1]
        async with Listener(port, "alice", topics=("bandmate/online",
                                                   "bandmate/out/#")) as c:
            await c.send("bandmate/in/alice/get", {"address": "/bass/mix/pan"})
            r = json.loads(await c.wait_for(lambda: c.last("bandmate/out/alice/value"),
                                            "the live run's reply"))
            assert r["value"] == s.value("/bass/mix/pan")
            lr.stop()
            await asyncio.wait_for(task, 15.0)
            assert c.on("bandmate/online")[-1] == "false", c.got
        assert stream.closed and lr.mqtt.broker is None
    run(main())


def test_bandmate_jam_mqtt_end_to_end(jack_server, tmp_path):
    """`bandmate jam --driver jack --mqtt` as a user runs it (its own process, the JACK dummy
    server): the embedded broker takes a client's commands, bandmate answers and publishes
    its state, and says offline when Ctrl-C ends the jam."""
    import signal
    import subprocess
    import sys
    port = mqttkit.free_port()
    conf = tmp_path / "config.toml"
    conf.write_text((ROOT / "config.toml").read_text().replace(
        "embedded_port = 1883", f"embedded_port = {port}"))
    env = dict(os.environ, JACK_DEFAULT_SERVER=jack_server.name, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "--config", str(conf), "jam",
                             "--driver", "jack", "--mqtt", "--seconds", "120", "--no-keyboard"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    async def main():
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, mqttkit.wait_port, port, 60.0)
        async with Listener(port, "alice") as c:
            await c.wait_for(lambda: c.last("bandmate/online") == "true", "online",
                             timeout=30)
            await c.send("bandmate/in/alice/tempo", {"bpm": 133})
            await c.send("bandmate/in/alice/get", {"address": "/bass/mix/pan"})
            r = json.loads(await c.wait_for(lambda: c.last("bandmate/out/alice/value"),
                                            "the reply"))
            assert r["address"] == "/bass/mix/pan"
            await c.wait_for(lambda: c.last("bandmate/state/tempo_bpm") == "133.0",
                             "the new tempo published")
            await c.wait_for(lambda: c.last("bandmate/state/position"), "the position")
            proc.send_signal(signal.SIGINT)
            await c.wait_for(lambda: c.last("bandmate/online") == "false",
                             "offline when the jam ends", timeout=20)
    try:
        run(main(), timeout=90)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out.decode()[-2000:]
        assert b"MQTT: embedded broker on mqtt://127.0.0.1:" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_the_embedded_broker_survives_subscriptions_during_a_broadcast():
    """amqtt's broadcast loop awaits the topic filter at each matching subscription: a client
    subscribing meanwhile broke the loop ("dictionary changed size during iteration"), and
    the message never reached the subscriptions after that point. A watcher subscribed after
    the first filters must hear every message published while others keep subscribing."""
    import aiomqtt
    from engine.control.mqtt_broker import EmbeddedBroker

    async def main():
        br = await EmbeddedBroker(bridge_id="bm").start()
        first = [asyncio.Event() for _ in range(8)]
        watching_now, stop = asyncio.Event(), asyncio.Event()
        heard = 0
        try:
            async with aiomqtt.Client("127.0.0.1", br.port, identifier="bm") as pub:
                async def subscriber(i):
                    async with aiomqtt.Client("127.0.0.1", br.port, identifier=f"s{i}") as c:
                        for k in range(10):         # the filters the flood matches
                            await c.subscribe(f"bandmate/state/s{i}/t{k}")
                        first[i].set()
                        await watching_now.wait()
                        for k in range(10, 60):     # new filters while broadcasts run
                            await c.subscribe(f"bandmate/state/s{i}/t{k}")

                async def watcher():
                    nonlocal heard
                    async with aiomqtt.Client("127.0.0.1", br.port, identifier="w") as c:
                        await c.subscribe("bandmate/state/+/+")     # after the first filters
                        watching_now.set()
                        async for _ in c.messages:
                            heard += 1

                async def flood():
                    k = 0
                    while not stop.is_set():
                        await pub.publish(f"bandmate/state/s{k % 8}/t{k % 10}", b"1")
                        k += 1
                        if k % 4 == 0:
                            await asyncio.sleep(0)
                    return k
                subs = [asyncio.create_task(subscriber(i)) for i in range(8)]
                await asyncio.wait_for(asyncio.gather(*(e.wait() for e in first)), 10)
                listening = asyncio.create_task(watcher())
                await asyncio.wait_for(watching_now.wait(), 10)
                flooding = asyncio.create_task(flood())
                await asyncio.wait_for(asyncio.gather(*subs), 20)
                stop.set()
                sent = await flooding
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 10
                while heard < sent and loop.time() < deadline:
                    await asyncio.sleep(0.05)
                listening.cancel()
                assert heard == sent, f"the broker forwarded {heard} of {sent} messages"
        finally:
            await br.stop()
    run(main())
