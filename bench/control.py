"""Network control figures: MQTT and OSC, command to audible change, and sustained rates.

bandmate runs a session on a JACK dummy server (48 kHz, 64 frames) with its MQTT bridge
(through a real mosquitto on loopback, with a password and the README's ACL) and its OSC
server; a rig client (tests.jackrig, compiled: no Python on JACK's threads) records its output.

- `mqtt_latency`, `osc_latency`: a client sends a note-on command; the time it was sent is read
  on the audio clock (JACK's frame time, `jack_frame_time`), the note's first sample is found in
  the recording (frames stamped by JACK): latency = onset frame - send frame, median and max
  over the repeats (ms). A repeat the host disturbed (an xrun, a gap in the recording) is
  measured again. The client runs in this process, on bandmate's asyncio loop, as a dashboard
  on the same machine would in its own.
- `mqtt_throughput`, `osc_throughput`: while the band plays (its scheduler running as in a live
  run), a separate process sends parameter changes at a fixed rate for a few seconds, at
  rising rates; for each rate: messages applied, the rate achieved, how long the backlog took
  to clear, and the engine's late events and xruns in that window. `sustained_per_s` is the
  highest rate with every message applied, the backlog cleared within `BACKLOG_S` and no late
  event. The backlog is the time from the sender's last message to the last one applied.

- `memory_day`: the installation mode's memory over `--hours` simulated hours (default a day;
  bench/serve_memory.py): traced Python memory and RSS after each hour, and the growth over the
  second half.

Prints one JSON object, a section per figure (more sections can be added to SECTIONS; those
that need no JACK or broker run without them).

    python bench/control.py [--json] [--repeats 30] [--seconds 2] [--rates 500 2000 ...]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BACKLOG_S = 0.5
THRESHOLD = 0.02
CLICK = {"osc1_wave": 1.0, "osc2_level": 0.0, "filter_type": 3.0, "cutoff_hz": 20.0,
         "resonance": 0.0, "filter_env_octaves": 0.0, "amp_attack_s": 0.0005,
         "amp_sustain": 1.0, "amp_release_s": 0.002, "velocity_sensitivity": 0.0}
"""The keys as a click (as tests.latencykit): the first sample of a note is above the floor."""


# ---- the sender process (throughput) ---------------------------------------------------------

def pace(proto: str, port: int, rate: float, seconds: float, user: str, password: str) -> None:
    """Send `rate` parameter changes a second for `seconds` (run in its own process)."""
    n = int(rate * seconds)
    values = [round(-1.0 + 2.0 * (i % 200) / 199, 4) for i in range(n)]
    if proto == "mqtt":
        import paho.mqtt.client as mqtt
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="pacer")
        c.username_pw_set(user, password)
        c.max_queued_messages_set(0)
        c.connect("127.0.0.1", port, keepalive=30)
        c.loop_start()

        def send(v):
            c.publish("bandmate/in/pacer/set", json.dumps({"address": "/keys/mix/pan",
                                                           "value": v}))
    else:
        from pythonosc.osc_message_builder import OscMessageBuilder
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

        def send(v):
            b = OscMessageBuilder("/keys/mix/pan")
            b.add_arg(float(v))
            s.sendto(b.build().dgram, ("127.0.0.1", port))
    start = time.monotonic()
    for i, v in enumerate(values):
        due = start + i / rate
        ahead = due - time.monotonic()
        if ahead > 0.002:
            time.sleep(ahead)
        send(v)
    took, end_wall = time.monotonic() - start, time.time()
    if proto == "mqtt":
        time.sleep(0.2)
        c.disconnect()
        c.loop_stop()
    print(json.dumps({"sent": n, "seconds": round(took, 4), "end_wall": end_wall}))


# ---- the stage: JACK, bandmate, mosquitto, the rig -------------------------------------------

class Stage:
    """Everything the sections share, started once (`async with Stage() as st`)."""

    async def __aenter__(self) -> "Stage":
        from engine.config import load_config
        from engine.control.mqtt import MqttBridge
        from engine.control.osc import OscServer
        from engine.control.session import Session
        from engine.control.warmup import warm_up
        from engine.drivers.jack import JackClient
        from tests.jackrig import Rig
        from tests.jackserver import JackServer
        from tests.mqttkit import USERS, Mosquitto
        warm_up(("jack",))
        self._tmp = tempfile.TemporaryDirectory(prefix="bandmate-bench-control-")
        self.server = JackServer(name=f"bandmate_bench_control_{os.getpid()}").start()
        self.mosquitto = Mosquitto(Path(self._tmp.name)).start()
        cfg = load_config(ROOT / "config.toml", environ={})
        for part in ("keys", "bass", "chords", "lead", "drums"):
            cfg["mix"][f"{part}_reverb_send"] = 0.0
            cfg["mix"][f"{part}_delay_send"] = 0.0
        self.client = JackClient("bandmate_control")
        self.session = s = Session(cfg, self.client.sample_rate, root=ROOT)
        for key, value in CLICK.items():
            s.set(f"/keys/synth/{key}", value)
        self.client.start(s.state)
        self.rig = Rig(seconds=60.0).activate()
        self.rig.connect(None, [self.client.port_name(self.client.out_l)])
        self.stopping = asyncio.Event()
        self.users = USERS
        self.bridge = MqttBridge(s, host="127.0.0.1", port=self.mosquitto.port,
                                 username="bandmate", password=USERS["bandmate"],
                                 rate_per_s=1e6, burst=1e6, log=lambda t: None)
        self.osc = OscServer(s, port=0, log=lambda t: None)
        await self.osc.start()
        self.tasks = [asyncio.create_task(self.bridge.run(self.stopping)),
                      asyncio.create_task(self.osc.run(self.stopping))]
        await asyncio.wait_for(self.bridge.connected.wait(), 10.0)
        self.band = False
        self.tasks.append(asyncio.create_task(self._schedule()))
        return self

    async def _schedule(self) -> None:
        """The live run's scheduler loop (engine.control.live), while `band` is on."""
        sched = self.session.scheduler
        while not self.stopping.is_set():
            if self.band:
                sched.advance(self.session.state.sample_time)
            await asyncio.sleep(0.01)

    async def __aexit__(self, *exc) -> None:
        self.stopping.set()
        await asyncio.wait(self.tasks, timeout=10.0)
        for t in self.tasks:
            t.cancel()
        self.rig.close()
        self.client.close()
        self.mosquitto.kill()
        self.server.stop()
        self._tmp.cleanup()


# ---- latency ---------------------------------------------------------------------------------

def send_frame(st: Stage) -> int:
    """The JACK frame playing now, by the audio clock: the engine's last block start (sample,
    CLOCK_MONOTONIC ns, stamped in the callback) plus the time since, mapped to JACK frames."""
    anchor = st.session.state.sample_clock()
    if anchor is None:
        return st.rig.now()
    sample, ns = anchor
    now = sample + round((time.monotonic_ns() - ns) * 1e-9 * st.session.sample_rate)
    return st.client.frame_of(now)


async def latency(st: Stage, proto: str, repeats: int, spacing_s: float = 0.12) -> dict:
    from pythonosc.osc_message_builder import OscMessageBuilder
    from tests.jackrig import RigGap, onset_frame
    from tests.mqttkit import Listener
    rig, rate = st.rig, st.rig.rate
    spacing = int(spacing_s * rate)
    frames, repeated = [], 0
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def osc(*args):
        b = OscMessageBuilder("/bandmate/note")
        for a in args:
            b.add_arg(a)
        sock.sendto(b.build().dgram, st.osc.address)

    async with Listener(st.mosquitto.port, "alice", "alice", st.users["alice"],
                        topics=()) as dash:
        mqtt_client = dash.client
        lat: list[int] = []
        i = 0
        while len(lat) < repeats and repeated <= 2 * repeats:
            note = 60 + i % 12
            i += 1
            xruns = st.client.xruns
            await asyncio.sleep(0.01 * (i % 7) / 7)       # random phase in the period
            sent = send_frame(st)
            if proto == "mqtt":
                await mqtt_client.publish("bandmate/in/alice/note", json.dumps(
                    {"part": "keys", "note": note, "velocity": 127, "duration_s": 0.04}))
            else:
                osc("keys", note, 127)
            await asyncio.sleep(0.04)
            if proto == "osc":
                osc("keys", note, 0)
            await asyncio.sleep(spacing_s - 0.04)
            try:
                rig.wait_until(sent + spacing, timeout=10)
                rec = rig.recording(since_frame=sent - 4 * rig.period)
            except RigGap:
                repeated += 1
                continue
            if st.client.xruns != xruns:
                repeated += 1
                continue
            onset = onset_frame(rec, sent - 4 * rig.period, THRESHOLD, channel=0,
                                before_frame=sent + spacing)
            if onset is None:
                repeated += 1
                continue
            lat.append(onset - sent - rig.loop_frames())
        frames.extend(lat)
    sock.close()
    ms = np.array(frames) / rate * 1000.0
    return {"repeats": len(frames), "median_ms": round(float(np.median(ms)), 3) if len(ms) else
            None, "max_ms": round(float(ms.max()), 3) if len(ms) else None,
            "min_ms": round(float(ms.min()), 3) if len(ms) else None,
            "period_ms": round(rig.period / rate * 1000.0, 3), "measured_again": repeated}


# ---- throughput ------------------------------------------------------------------------------

async def throughput(st: Stage, proto: str, rates: list[float], seconds: float) -> dict:
    applied = (lambda: st.bridge.counters["applied"]) if proto == "mqtt" else \
        (lambda: st.osc.counters["applied"])
    port = st.mosquitto.port if proto == "mqtt" else st.osc.address[1]
    st.band = True
    await asyncio.sleep(0.5)
    rows, sustained = [], 0.0
    try:
        for rate in rates:
            c0, a0 = st.session.state.counters(), applied()
            x0 = st.client.xruns
            changed = [a0, time.time()]         # the count, and when it last changed

            async def watch():
                while True:
                    if applied() != changed[0]:
                        changed[:] = [applied(), time.time()]
                    await asyncio.sleep(0.002)
            watcher = asyncio.create_task(watch())
            proc = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--pace", proto, str(port), str(rate), str(seconds),
                "alice", st.users["alice"], stdout=subprocess.PIPE, cwd=str(ROOT))
            out, _ = await asyncio.wait_for(proc.communicate(), seconds + 30.0)
            end = time.monotonic()
            report = json.loads(out.decode().strip().splitlines()[-1])
            sent = report["sent"]
            while applied() - a0 < sent and time.monotonic() - end < 5.0 \
                    and time.time() - changed[1] < 1.0:      # (else nothing more is coming)
                await asyncio.sleep(0.01)
            watcher.cancel()
            backlog = max(0.0, changed[1] - report["end_wall"]) if applied() - a0 else None
            c1 = st.session.state.counters()
            n = applied() - a0
            row = {"rate_per_s": rate, "sent": sent, "applied": n,
                   "achieved_per_s": round(n / (report["seconds"] + (backlog or 0.0)), 1),
                   "backlog_s": None if backlog is None else round(backlog, 3),
                   "late_events": c1["late_events"] - c0["late_events"],
                   "xruns": st.client.xruns - x0}
            rows.append(row)
            ok = n == sent and backlog is not None and backlog <= BACKLOG_S \
                and row["late_events"] == 0
            if ok:
                sustained = max(sustained, rate)
            elif n < 0.5 * sent:
                break
    finally:
        st.band = False
        await asyncio.sleep(0.3)
        st.session.release_all()
    extra = {"bridge_errors": st.bridge.counters["errors"]} if proto == "mqtt" else \
        {"osc_errors": st.osc.counters["errors"]}
    return {"sustained_per_s": sustained, "seconds_each": seconds, "by_rate": rows, **extra}


async def memory_day(_stage, args) -> dict:
    """Memory over a simulated day (bench/serve_memory.py: the installation mode's session,
    offline at a low rate, with scene, tempo and swing changes and the player's chords)."""
    from bench.serve_memory import simulate
    out = await asyncio.to_thread(simulate, args.hours, hour_s=args.hour_s,
                                  change_every_s=min(600.0, args.hour_s / 6))
    h = len(out["hours"])
    out["traced_growth_mb_second_half"] = round(
        out["traced_mb"][-1] - out["traced_mb"][h // 2 - 1], 3) if h >= 2 else 0.0
    return out


SECTIONS = {      # name: (async fn(stage, args) -> dict, whether it needs the Stage)
    "mqtt_latency": (lambda st, a: latency(st, "mqtt", a.repeats), True),
    "osc_latency": (lambda st, a: latency(st, "osc", a.repeats), True),
    "mqtt_throughput": (lambda st, a: throughput(st, "mqtt", a.rates, a.seconds), True),
    "osc_throughput": (lambda st, a: throughput(st, "osc", a.rates, a.seconds), True),
    "memory_day": (memory_day, False),
}


async def run(args) -> dict:
    """Every section asked for, in order; the Stage is started only if one needs it."""
    out: dict = {"sample_rate": 48000, "period_frames": 64}
    staged = [n for n in args.sections if SECTIONS[n][1]]
    for name in args.sections:
        if not SECTIONS[name][1]:
            out[name] = await SECTIONS[name][0](None, args)
    if staged:
        async with Stage() as st:
            for name in staged:
                out[name] = await SECTIONS[name][0](st, args)
    return {"sample_rate": out.pop("sample_rate"), "period_frames": out.pop("period_frames"),
            **{n: out[n] for n in args.sections}}


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--pace":
        proto, port, rate, seconds, user, password = sys.argv[2:8]
        pace(proto, int(port), float(rate), float(seconds), user, password)
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="one line of JSON")
    ap.add_argument("--repeats", type=int, default=30, help="latency measurements")
    ap.add_argument("--seconds", type=float, default=2.0, help="length of each rate")
    ap.add_argument("--rates", type=float, nargs="+",
                    default=[500, 2000, 8000, 16000, 32000])
    ap.add_argument("--hours", type=int, default=24,
                    help="simulated hours for memory_day (about 3 minutes each here)")
    ap.add_argument("--hour-s", type=float, default=3600.0,
                    help="seconds in a simulated hour (shorter: a quick look, not a day)")
    ap.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=list(SECTIONS))
    args = ap.parse_args()
    out = asyncio.run(run(args))
    print(json.dumps(out) if args.json else json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
