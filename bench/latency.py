"""Latency, jitter, callback load and xruns through a JACK dummy server (64 frames, 48 kHz).

- note-to-sound: a rig client sends note-ons at random frame offsets and records bandmate's
  output in the same process; frames from the MIDI event to bandmate's first output sample,
  for the JACK-native driver and for PortAudio in "asap" and "fixed" modes (median, jitter),
  with and without the master limiter's constant look-ahead;
- scheduled events: events pushed ahead with absolute sample times, their onset vs the frame
  their time maps to (jitter target 0);
- callback time per block as a share of the 1.33 ms period (median, p99);
- xruns during a soak (default 60 s) of the live demo on each driver while the control thread
  runs the agents and another Python thread spins (target 0);
- event flood (first, offline, no JACK needed): one render_block with the pending store full,
  4096 events due in that block (bench/flood.py), and the old linear-scan loop for comparison.

    python bench/latency.py [--json] [--soak-seconds 60] [--flood-only]
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.config import load_config  # noqa: E402
from engine.control.session import Session  # noqa: E402
from engine.control.warmup import warm_up  # noqa: E402
from engine.rt import layout as L  # noqa: E402
from engine.rt import master  # noqa: E402
from engine.rt.events import K_NOTE_OFF, K_NOTE_ON  # noqa: E402
from bench import flood  # noqa: E402
from tests import latencykit as lk  # noqa: E402
from tests.jackrig import Rig, onset_frame  # noqa: E402
from tests.jackserver import JackServer  # noqa: E402

PERIOD_US = 64 / 48000 * 1e6


def _figures(r: lk.Result) -> dict:
    la = master.lookahead_samples(48000)
    return {"median_frames": r.own_median, "median_frames_without_limiter": r.own_median - la,
            "median_ms": round(r.own_median / 48, 3), "jitter_frames": r.jitter,
            "missing": r.missing, "late_events": r.late_events,
            "rig_repeated_notes": r.repeated_notes,
            "callback_share_median": round(r.callback_us_median / PERIOD_US, 4),
            "callback_share_p99": round(r.callback_us_p99 / PERIOD_US, 4)}


def scheduled_jitter(n: int = 40) -> dict:
    """Events pushed ahead with sample times, rendered by the JACK driver: onset - frame."""
    from engine.drivers.jack import JackClient
    client = JackClient("bandmate_sched")
    try:
        state = lk.click_engine(client.sample_rate)
        client.start(state)
        with Rig(seconds=n * 0.05 + 5) as rig:
            rig.connect(None, [client.port_name(client.out_l)])
            time.sleep(0.3)
            t0 = state.sample_time + 24000
            rng = np.random.default_rng(5)
            times = t0 + np.arange(n) * 2400 + rng.integers(0, 64, n)
            for t in times:
                state.push_sched(int(t), K_NOTE_ON, 0, 60, 1.0, 1)
                state.push_sched(int(t) + 1200, K_NOTE_OFF, 0, 60, 0.0, 1)
            rig.wait_until(client.frame_of(int(times[-1]) + 4800), timeout=30)
            frames = [client.frame_of(int(t)) for t in times]
            rec = rig.recording(since_frame=frames[0] - 64)
            onsets = [onset_frame(rec, f, 0.02, channel=0, before_frame=f + 1000) for f in frames]
            lat = np.array([o - f - rig.loop_frames() for o, f in zip(onsets, frames)])
        return {"offset_frames": int(np.median(lat)), "jitter_frames": int(lat.max() - lat.min()),
                "late_events": state.counters()["late_events"]}
    finally:
        client.close()


def soak(driver: str, seconds: float) -> dict:
    """The live demo on `driver` with the scheduler running and a Python thread spinning."""
    cfg = load_config(ROOT / "config.toml")
    if driver == "jack":
        from engine.drivers.jack import JackClient
        client = JackClient("bandmate_soak")
        session = Session(cfg, client.sample_rate, demo=True, root=ROOT)
        session.scheduler.advance(0)
        stream = client.start(session.state)
        client.connect_outputs()
    else:
        from engine.drivers import portaudio
        portaudio.rescan()
        device = portaudio.find_output("system")
        session = Session(cfg, 48000, demo=True, root=ROOT)
        session.scheduler.advance(0)
        stream = portaudio.PortAudioStream(session.state, device, 64).start()
    state = session.state
    stop = threading.Event()

    def control():   # the asyncio loop's job, in a plain thread: schedule ahead every 10 ms
        while not stop.is_set():
            session.scheduler.advance(state.sample_time)
            time.sleep(0.01)

    threads = [threading.Thread(target=control, daemon=True)]
    with lk.busy_python(True):
        for th in threads:
            th.start()
        time.sleep(0.5)
        x0 = state.counters()["xruns"]
        b0 = state.counters()["blocks"]
        time.sleep(seconds)
        c = state.counters()
        stop.set()
        for th in threads:
            th.join()
    stream.close()
    ring = state.arrays[L.S_CBTIME]
    n = int(state.ctl[L.C_CBTIME_W])
    us = ring[:min(n, L.CBTIME_CAP)] / 1000.0
    return {"seconds": seconds, "xruns": c["xruns"] - x0, "blocks": c["blocks"] - b0,
            "expected_blocks": int(seconds * 48000 / 64), "late_events": c["late_events"],
            "callback_share_median": round(float(np.median(us)) / PERIOD_US, 4),
            "callback_share_p99": round(float(np.percentile(us, 99)) / PERIOD_US, 4)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--notes", type=int, default=40)
    ap.add_argument("--soak-seconds", type=float, default=60.0)
    ap.add_argument("--flood-only", action="store_true",
                    help="only the event-flood figure (offline, no JACK)")
    args = ap.parse_args()
    out: dict = {"period_frames": 64, "sample_rate": 48000,
                 "limiter_lookahead_frames": master.lookahead_samples(48000)}
    out["event_flood"] = flood.measure()
    if args.flood_only:
        print(json.dumps(out) if args.json else json.dumps(out, indent=2))
        return 0
    warm_up(("jack", "portaudio"))
    with JackServer(name="bandmate_bench_latency"):
        try:
            out["jack_native"] = _figures(lk.retry(lk.jack_native, args.notes))
            out["jack_native_busy_python"] = _figures(lk.retry(lk.jack_native, args.notes,
                                                               busy=True))
            out["portaudio_asap"] = _figures(lk.retry(lk.portaudio_rtmidi, "asap", args.notes))
            out["portaudio_fixed"] = _figures(lk.retry(lk.portaudio_rtmidi, "fixed", args.notes))
            out["portaudio_fixed_busy_python"] = _figures(lk.retry(
                lk.portaudio_rtmidi, "fixed", args.notes, busy=True))
            out["scheduled_events"] = lk.retry(scheduled_jitter)
            out["soak_jack_native"] = soak("jack", args.soak_seconds)
            out["soak_portaudio"] = soak("portaudio", args.soak_seconds)
        finally:
            from engine.drivers import portaudio
            portaudio._sd()._terminate()   # while the server still runs
    print(json.dumps(out) if args.json else json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
