"""bandmate as a device under test, in its own process (test and benchmark helper).

    python -m tests.jack_dut jack [--busy]
    python -m tests.jack_dut portaudio asap|fixed [--busy]

Starts bandmate's JACK driver, or the PortAudio driver with MIDI through rtmidi's JACK API, on
a click patch (tests.latencykit.CLICK), optionally with a pure-Python thread spinning beside
it; prints "ready<TAB>MIDI input port<TAB>audio output port" and runs until stdin closes, then
prints one JSON line of its counters and callback timings. In its own process, a busy Python
thread (or bandmate's MIDI thread) can disturb only bandmate, never the measuring rig.
"""
import json
import sys
import time

import numpy as np

from engine.control.live_input import LiveInput
from engine.control.warmup import warm_up
from engine.rt import layout as L
from tests.latencykit import busy_python, click_engine


def _jack():
    from engine.drivers.jack import JackClient
    warm_up(("jack",))
    client = JackClient("bandmate_dut")
    state = click_engine(client.sample_rate)
    client.start(state)
    return state, client.port_name(client.midi_in), client.port_name(client.out_l), \
        [client.close]


def _portaudio(mode):
    import jack

    from controllers.midi_in import MidiInputs
    from engine.drivers import portaudio
    warm_up(("portaudio",))
    portaudio.rescan()
    device = portaudio.find_output("system")
    state = click_engine(int(device["default_samplerate"]))
    stream = portaudio.PortAudioStream(state, device, 64).start()
    midi = MidiInputs(LiveInput(state, mode, 5.0, log=lambda s: None), "jack", [],
                      client_name="bandmate_dut", virtual=True)
    time.sleep(0.2)
    probe = jack.Client("bandmate_dut_probe", no_start_server=True)
    try:
        midi_in = next(p.name for p in probe.get_ports(is_midi=True, is_input=True)
                       if p.name.endswith("bandmate in"))
        own = [p.name for p in probe.get_ports(is_audio=True, is_output=True)
               if not p.name.startswith("system:")]
    finally:
        probe.close()
    return state, midi_in, own[0], [midi.close, stream.close]


def main() -> int:
    driver = sys.argv[1]
    state, midi_in, audio_out, closers = (_jack() if driver == "jack"
                                          else _portaudio(sys.argv[2]))
    with busy_python("--busy" in sys.argv):
        print("ready", midi_in, audio_out, sep="\t", flush=True)   # names may hold spaces
        sys.stdin.read()
    for close in closers:
        close()
    ring = state.arrays[L.S_CBTIME]
    us = ring[:min(int(state.ctl[L.C_CBTIME_W]), L.CBTIME_CAP)] / 1000.0
    print(json.dumps(dict(state.counters(), cb_us_median=float(np.median(us)),
                          cb_us_p99=float(np.percentile(us, 99)))), flush=True)
    if driver != "jack":
        from engine.drivers import portaudio
        portaudio._sd()._terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
