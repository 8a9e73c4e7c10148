"""bandmate's JACK-native driver as a device under test in its own process (test helper).

    python -m tests.jack_dut NAME [--busy]

Starts the JACK driver on a click patch (tests.latencykit.CLICK), optionally with a pure-Python
thread spinning beside it, prints "ready <client name>" and runs until stdin closes; then
prints one JSON line of its counters and callback timings. In its own process, a busy Python
thread here can only disturb bandmate, never the measuring rig.
"""
import json
import sys

import numpy as np

from engine.control.warmup import warm_up
from engine.drivers.jack import JackClient
from engine.rt import layout as L
from tests.latencykit import busy_python, click_engine


def main() -> int:
    name = sys.argv[1]
    busy = "--busy" in sys.argv
    warm_up(("jack",))
    client = JackClient(name)
    state = click_engine(client.sample_rate)
    client.start(state)
    with busy_python(busy):
        print("ready", client.name, flush=True)
        sys.stdin.read()
    client.close()
    ring = state.arrays[L.S_CBTIME]
    us = ring[:min(int(state.ctl[L.C_CBTIME_W]), L.CBTIME_CAP)] / 1000.0
    print(json.dumps(dict(state.counters(), cb_us_median=float(np.median(us)),
                          cb_us_p99=float(np.percentile(us, 99)))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
