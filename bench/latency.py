"""Latency, jitter, callback load and xruns through a JACK dummy server (64 frames, 48 kHz).

- note-to-sound: a compiled rig client sends note-ons at random frame offsets and records
  bandmate's output in the same process; frames from the MIDI event to bandmate's first output
  sample (the rig's own loop subtracted), for the JACK-native driver (in freewheel mode, where
  the figure cannot depend on the host, and in real time with and without the look-ahead
  limiter) and for PortAudio in "asap" and "fixed" modes (median, jitter), idle and with a
  busy Python thread;
- scheduled events: events pushed ahead with absolute sample times, their onset vs the frame
  their time maps to (jitter target 0);
- callback time per block as a share of the 1.33 ms period (median, p99);
- xruns: the same JACK server, the same run, alternating windows: JACK's own C example client
  `jack_metro` alone (the reference: what this host does to any client), then bandmate's live
  demo on each driver with the agents scheduling and a Python thread spinning; xruns counted by
  one compiled counting client throughout; the ratio bandmate / reference (target <= 1);
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
from tests.jackc import CClient  # noqa: E402
from tests.jackrig import Rig, onset_frame  # noqa: E402
from tests.jackserver import JackServer  # noqa: E402

PERIOD_US = 64 / 48000 * 1e6


def _figures(r: lk.Result) -> dict:
    return {"median_frames": r.own_median, "median_ms": round(r.own_median / 48, 3),
            "jitter_frames": r.jitter, "min_frames": int(r.latencies.min()),
            "max_frames": int(r.latencies.max()), "missing": r.missing,
            "late_events": r.late_events, "notes_measured_again": r.repeated_notes,
            "xruns": r.xruns,
            "callback_share_median": round(r.callback_us_median / PERIOD_US, 4),
            "callback_share_p99": round(r.callback_us_p99 / PERIOD_US, 4)}


def scheduled_jitter(n: int = 40) -> dict:
    """Events pushed ahead with sample times, rendered by the JACK driver in freewheel mode:
    onset - the frame the event's time maps to."""
    from engine.drivers.jack import JackClient
    client = JackClient("bandmate_sched")
    try:
        state = lk.click_engine(client.sample_rate)
        client.start(state)
        with Rig(seconds=120) as rig:
            rig.connect(None, [client.port_name(client.out_l)])
            t0 = state.sample_time + 48000          # 1 s ahead: queued long before it is due
            rng = np.random.default_rng(5)
            times = t0 + np.arange(n) * 2400 + rng.integers(0, 64, n)
            for t in times:
                state.push_sched(int(t), K_NOTE_ON, 0, 60, 1.0, 1)
                state.push_sched(int(t) + 1200, K_NOTE_OFF, 0, 60, 0.0, 1)
            with rig.freewheeling():
                rig.wait_until(client.frame_of(int(times[-1]) + 4800), timeout=60)
            frames = [client.frame_of(int(t)) for t in times]
            rec = rig.recording(since_frame=frames[0] - 64)
            onsets = [onset_frame(rec, f, 0.02, channel=0, before_frame=f + 1000) for f in frames]
            lat = np.array([o - f - rig.loop_frames() for o, f in zip(onsets, frames)])
        return {"offset_frames": int(np.median(lat)), "jitter_frames": int(lat.max() - lat.min()),
                "late_events": state.counters()["late_events"]}
    finally:
        client.close()


class LiveDemo:
    """The live demo on `driver`, its scheduler advanced by a control thread every 10 ms (the
    asyncio loop's job) and a pure-Python thread spinning beside it."""

    def __init__(self, driver: str):
        cfg = load_config(ROOT / "config.toml")
        if driver == "jack":
            from engine.drivers.jack import JackClient
            self.client = JackClient("bandmate_soak")
            self.session = Session(cfg, self.client.sample_rate, demo=True, root=ROOT)
            self.session.scheduler.advance(0)
            self.stream = self.client.start(self.session.state)
            self.client.connect_outputs()
        else:
            from engine.drivers import portaudio
            portaudio.rescan()
            device = portaudio.find_output("system")
            self.session = Session(cfg, 48000, demo=True, root=ROOT)
            self.session.scheduler.advance(0)
            self.stream = portaudio.PortAudioStream(self.session.state, device, 64).start()
        self.state = self.session.state
        self._stop = threading.Event()
        self._control = threading.Thread(target=self._advance, daemon=True)
        self._busy = lk.busy_python(True)

    def _advance(self):
        while not self._stop.is_set():
            self.session.scheduler.advance(self.state.sample_time)
            time.sleep(0.01)

    def __enter__(self):
        self._busy.__enter__()
        self._control.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._control.join(timeout=10)
        self._busy.__exit__(None, None, None)
        self.stream.close()

    def figures(self, c0: dict, c1: dict, seconds: float) -> dict:
        ring = self.state.arrays[L.S_CBTIME]
        n = int(self.state.ctl[L.C_CBTIME_W])
        us = ring[:min(n, L.CBTIME_CAP)] / 1000.0
        return {"seconds": seconds, "blocks": c1["blocks"] - c0["blocks"],
                "expected_blocks": int(seconds * 48000 / 64),
                "late_events": c1["late_events"] - c0["late_events"],
                "driver_xruns": c1["xruns"] - c0["xruns"],
                "callback_share_median": round(float(np.median(us)) / PERIOD_US, 4),
                "callback_share_p99": round(float(np.percentile(us, 99)) / PERIOD_US, 4),
                "callback_share_max": round(float(us.max()) / PERIOD_US, 4)}


def xrun_soak(seconds: float, rounds: int = 3) -> dict:
    """xruns of the server while jack_metro runs alone vs while bandmate's live demo runs,
    alternating windows of seconds / rounds each, counted by one compiled client."""
    import os
    import shutil
    import subprocess
    window = seconds / rounds
    counter = CClient("bandmate_xrun_counter").activate()
    totals = {"jack_metro": 0, "jack": 0, "portaudio": 0}
    details: dict = {"jack": [], "portaudio": []}
    metro_bin = shutil.which("jack_metro")
    try:
        for _ in range(rounds):
            if metro_bin is not None:
                metro = subprocess.Popen([metro_bin, "-b", "120"], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                         env=dict(os.environ))
                try:
                    time.sleep(0.5)
                    x0 = counter.xruns
                    time.sleep(window)
                    totals["jack_metro"] += counter.xruns - x0
                finally:
                    metro.terminate()
                    metro.wait(timeout=10)
            for driver in ("jack", "portaudio"):
                with LiveDemo(driver) as demo:
                    time.sleep(0.5)
                    x0, c0 = counter.xruns, demo.state.counters()
                    time.sleep(window)
                    totals[driver] += counter.xruns - x0
                    details[driver].append(demo.figures(c0, demo.state.counters(), window))
    finally:
        counter.close()
    ref = totals["jack_metro"] if metro_bin is not None else None

    def ratio(x):
        if ref is None:
            return None
        return round(x / ref, 3) if ref else (0.0 if x == 0 else None)

    return {"seconds_each": round(window * rounds, 1), "rounds": rounds,
            "xruns_jack_metro": ref, "xruns_bandmate_jack": totals["jack"],
            "xruns_bandmate_portaudio": totals["portaudio"],
            "ratio_jack_vs_metro": ratio(totals["jack"]),
            "ratio_portaudio_vs_metro": ratio(totals["portaudio"]),
            "jack_native": details["jack"], "portaudio": details["portaudio"],
            "note": None if metro_bin else "jack_metro not installed (Debian: jackd2)"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--notes", type=int, default=40)
    ap.add_argument("--soak-seconds", type=float, default=60.0)
    ap.add_argument("--flood-only", action="store_true",
                    help="only the event-flood figure (offline, no JACK)")
    args = ap.parse_args()
    out: dict = {"period_frames": 64, "sample_rate": 48000,
                 "master_delay_frames": master.latency_samples(master.master_default_params(),
                                                               48000),
                 "lookahead_limiter_frames": master.lookahead_samples(48000)}
    out["event_flood"] = flood.measure()
    if args.flood_only:
        print(json.dumps(out) if args.json else json.dumps(out, indent=2))
        return 0
    warm_up(("jack", "portaudio"))
    with JackServer(name="bandmate_bench_latency"):
        try:
            out["jack_native"] = _figures(lk.jack_native(args.notes))
            out["jack_native_busy_python"] = _figures(lk.jack_native(args.notes, busy=True))
            out["jack_native_real_time"] = _figures(lk.jack_native(args.notes, freewheel=False))
            out["jack_native_lookahead_limiter"] = _figures(lk.jack_native(
                args.notes, limiter=master.LOOKAHEAD))
            out["portaudio_asap"] = _figures(lk.retry(lk.portaudio_rtmidi, "asap", args.notes))
            out["portaudio_fixed"] = _figures(lk.retry(lk.portaudio_rtmidi, "fixed", args.notes))
            out["portaudio_asap_busy_python"] = _figures(lk.retry(
                lk.portaudio_rtmidi, "asap", args.notes, busy=True))
            out["portaudio_fixed_busy_python"] = _figures(lk.retry(
                lk.portaudio_rtmidi, "fixed", args.notes, busy=True))
            out["scheduled_events"] = scheduled_jitter()
            out["xruns"] = xrun_soak(args.soak_seconds)
        finally:
            from engine.drivers import portaudio
            portaudio._sd()._terminate()   # while the server still runs
    print(json.dumps(out) if args.json else json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
