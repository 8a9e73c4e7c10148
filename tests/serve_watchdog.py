"""serve's audio watchdog against a JACK server of its own (test code, run by tests/test_serve.py
in a process of its own: `python -m tests.serve_watchdog kill|stop DIR`).

serve's pieces (a LiveRun and an Installation, as `bandmate serve` builds them) play on a
`jackd -d dummy` started here; a second of audio is recorded by a JACK client (tests.jackrig);
then the server is broken (`kill`: SIGKILL, and started again after the watchdog has failed to
reopen twice; `stop`: SIGSTOP until the watchdog has given up on the stream, then SIGCONT);
once the watchdog has restarted the audio, a second more is recorded. DIR/report.json says what
was seen (peaks, sample clock, counts, the log lines).
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np

from engine.commands import _open_driver, reopen_stream
from engine.config import load_config
from engine.control.live import LiveRun
from engine.control.serve import Installation
from engine.control.session import Session
from engine.control.warmup import warm_up
from tests.jackrig import Rig
from tests.jackserver import JackServer


def _kill(server: JackServer) -> None:
    server.proc.kill()
    server.proc.wait(timeout=10)
    server.stop()


MODES = {
    # break the server, when the watchdog has seen enough, mend it
    "kill": (_kill, lambda dog: dog.failed_attempts >= 2, lambda server: server.start()),
    "stop": (lambda server: server.proc.send_signal(signal.SIGSTOP),
             lambda dog: not dog.run.stream.alive and dog.restarts == 0,
             lambda server: server.proc.send_signal(signal.SIGCONT)),
}


def record_band(client) -> float:
    """The peak of two seconds of `client`'s output, recorded by a JACK client."""
    with Rig("serve_rig", seconds=10) as rig:
        rig.connect(None, [client.port_name(client.out_l), client.port_name(client.out_r)])
        since = rig.recorded_until() + 2 * rig.period
        rig.wait_until(since + 2 * rig.rate, timeout=30)
        _, rec = rig.segments(since_frame=since)[-1]
    return float(np.abs(rec).max())


def scenario(mode: str, out_dir: Path) -> dict:
    break_server, broken, mend_server = MODES[mode]
    warm_up(("jack",))
    server = JackServer(name=f"bandmate_serve_{os.getpid()}", log_dir=out_dir).start()
    lines: list[str] = []
    cfg = load_config(None, {"audio": {"driver": "jack", "connect": []},
                             "midi": {"inputs": [], "mapping": ""},
                             "serve": {"stall_s": 2.0, "restart_min_s": 0.2,
                                       "restart_max_s": 0.5, "status_every_s": 0.25}})
    seen: dict = {}

    async def until(cond, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}; log:\n"
                                     + "\n".join(lines[-20:]))
            await asyncio.sleep(0.05)

    def statuses() -> int:
        return sum(line.startswith("status: ") for line in lines)

    try:
        session, stream = _open_driver(cfg, lambda sr: Session(cfg, sr), lines.append)
        run = LiveRun(session, stream, lines.append, tty_status=False)
        inst = Installation(run, cfg, lambda state: reopen_stream(cfg, state, lines.append),
                            lines.append)
        dog = inst.watchdog

        async def main():
            task = asyncio.create_task(inst.run_for(None))
            try:
                await until(lambda: session.state.sample_time >= 48000, 30, "a second of audio")
                seen["before_peak"] = await asyncio.to_thread(record_band, run.stream)
                break_server(server)
                await until(lambda: broken(dog), 30, "the watchdog to see the audio stop")
                seen["stopped_at"] = session.state.sample_time
                n = statuses()
                await asyncio.sleep(1.0)
                seen["status_while_down"] = statuses() - n
                seen["failed"] = dog.failed_attempts
                await asyncio.to_thread(mend_server, server)
                await until(lambda: dog.restarts >= 1, 60, "the audio restart")
                await until(lambda: session.state.sample_time >= seen["stopped_at"] + 48000, 30,
                            "a second of audio after the restart")
                seen["resumed_at"] = session.state.sample_time
                seen["restarts"] = dog.restarts
                seen["after_peak"] = await asyncio.to_thread(record_band, run.stream)
            finally:
                run.stop()
                await asyncio.wait_for(task, 30)

        asyncio.run(main())
        seen["nonfinite"] = session.state.counters()["nonfinite"]
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.proc.send_signal(signal.SIGCONT)
        server.stop()
    seen["lines"] = lines
    return seen


def main() -> int:
    mode, out_dir = sys.argv[1], Path(sys.argv[2])
    seen = scenario(mode, out_dir)
    (out_dir / "report.json").write_text(json.dumps(seen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
