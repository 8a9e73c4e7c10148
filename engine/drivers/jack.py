"""JACK-native driver (control side): a JACK client whose process callback is the compiled
`engine.rt.callbacks.jack_process`, bound to libjack through ctypes.

The callback reads the client's MIDI input port itself (and, with `midi_out`, writes the band's
MIDI out port: engine.control.midi_out), so each note applies at its exact frame offset in the
period: note-to-sound is one period (plus the master limiter's look-ahead
when the look-ahead limiter is chosen), with zero jitter, whatever Python is doing. Outputs are
connected to the system playback ports unless told otherwise.

Every callback JACK calls (process, xrun, port connect, shutdown) is compiled code
(engine.rt.callbacks): JACK may call the shutdown callback from its process thread, so none of
them is Python. They set counters in the driver's table; a small watcher thread of ours polls
those and calls `on_midi_disconnect` / `on_shutdown` (the notes of an unplugged source are
already released by then, in the audio thread).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import re
import threading

import numpy as np

from engine.control.state import EngineState
from engine.rt import callbacks as cb
from engine.rt import layout as L

AUDIO_TYPE = b"32 bit float mono audio"
MIDI_TYPE = b"8 bit raw midi"
PORT_IS_INPUT, PORT_IS_OUTPUT, PORT_IS_PHYSICAL = 0x1, 0x2, 0x4
NO_START_SERVER = 0x01
JACK_MIDI_SOURCE = 900
"""Source id of notes read from JACK MIDI in the callback."""


class JackError(RuntimeError):
    """libjack missing, no server, or the server refused us."""


def _libjack():
    name = ctypes.util.find_library("jack") or "libjack.so.0"
    try:
        lib = ctypes.CDLL(name)
    except OSError as exc:
        raise JackError(f"libjack is not installed ({exc}); Debian/Ubuntu: apt-get install "
                        "libjack-jackd2-0 (or pipewire-jack)") from exc
    vp, c = ctypes.c_void_p, ctypes.c_char_p
    lib.jack_client_open.restype = vp
    lib.jack_client_open.argtypes = [c, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    lib.jack_port_register.restype = vp
    lib.jack_port_register.argtypes = [vp, c, c, ctypes.c_ulong, ctypes.c_ulong]
    lib.jack_set_process_callback.argtypes = [vp, vp, vp]
    lib.jack_set_xrun_callback.argtypes = [vp, vp, vp]
    lib.jack_activate.argtypes = [vp]
    lib.jack_deactivate.argtypes = [vp]
    lib.jack_client_close.argtypes = [vp]
    lib.jack_get_sample_rate.argtypes = [vp]
    lib.jack_get_sample_rate.restype = ctypes.c_uint32
    lib.jack_get_buffer_size.argtypes = [vp]
    lib.jack_get_buffer_size.restype = ctypes.c_uint32
    lib.jack_port_name.argtypes = [vp]
    lib.jack_port_name.restype = c
    lib.jack_connect.argtypes = [vp, c, c]
    lib.jack_get_ports.argtypes = [vp, c, c, ctypes.c_ulong]
    lib.jack_get_ports.restype = ctypes.POINTER(c)
    lib.jack_free.argtypes = [vp]
    lib.jack_get_client_name.argtypes = [vp]
    lib.jack_get_client_name.restype = c
    lib.jack_set_port_connect_callback.argtypes = [vp, vp, vp]
    lib.jack_on_shutdown.argtypes = [vp, vp, vp]
    lib.jack_port_by_id.argtypes = [vp, ctypes.c_uint32]
    lib.jack_port_by_id.restype = vp
    return lib


WATCH_S = 0.02
"""How often the watcher thread looks at the compiled callbacks' counters."""


def port_names(lib, names) -> list[str]:
    """The strings of a NULL-terminated `const char **` that libjack returned, freed after."""
    out = []
    if names:
        i = 0
        while names[i]:
            out.append(names[i].decode())
            i += 1
        lib.jack_free(names)
    return out


def _address(fn) -> int:
    return int(ctypes.cast(fn, ctypes.c_void_p).value)


class JackClient:
    """Opens a JACK client; its sample rate and period are the server's. Then `start(state)`
    activates the compiled process callback over `state` (made at `sample_rate`)."""

    def __init__(self, name: str = "bandmate", midi_out: bool = False):
        self.lib = _libjack()
        self.active = False
        self._watch_stop = threading.Event()
        self._watcher: threading.Thread | None = None
        status = ctypes.c_int(0)
        self.client = self.lib.jack_client_open(name.encode(), NO_START_SERVER,
                                                ctypes.byref(status))
        if not self.client:
            raise JackError(f"no JACK server to connect to (status 0x{status.value:x}); start "
                            "one (e.g. `jackd -d alsa`) or use the PortAudio driver")
        self.name = self.lib.jack_get_client_name(self.client).decode()
        self.sample_rate = int(self.lib.jack_get_sample_rate(self.client))
        self.period = int(self.lib.jack_get_buffer_size(self.client))
        reg = self.lib.jack_port_register
        self.midi_in = reg(self.client, b"midi_in", MIDI_TYPE, PORT_IS_INPUT, 0)
        self.out_l = reg(self.client, b"out_l", AUDIO_TYPE, PORT_IS_OUTPUT, 0)
        self.out_r = reg(self.client, b"out_r", AUDIO_TYPE, PORT_IS_OUTPUT, 0)
        # midi_out (config [midi_out]): the band's parts and clock, written in the callback
        self.midi_out = reg(self.client, b"midi_out", MIDI_TYPE, PORT_IS_OUTPUT, 0) \
            if midi_out else None
        if not (self.midi_in and self.out_l and self.out_r) or (midi_out and not self.midi_out):
            self.close()
            raise JackError("JACK refused to register bandmate's ports")
        self.state: EngineState | None = None
        self.on_midi_disconnect = None   # called from our watcher thread when a MIDI source
        self.on_shutdown = None          # leaves midi_in / when the server goes away
        # the compiled callbacks' table (engine.rt.callbacks J_*): allocated once, before any
        # callback is registered, and kept until the client is closed
        self._jt = np.zeros(cb.J_SIZE, np.int64)
        self._event = np.zeros(cb.EVENT_STRUCT_WORDS, np.int64)
        self._jt[cb.J_MIDI_PORT] = self.midi_in
        self._jt[cb.J_OUT_L] = self.out_l
        self._jt[cb.J_OUT_R] = self.out_r
        self._jt[cb.J_GET_BUFFER] = _address(self.lib.jack_port_get_buffer)
        self._jt[cb.J_EVENT_COUNT] = _address(self.lib.jack_midi_get_event_count)
        self._jt[cb.J_EVENT_GET] = _address(self.lib.jack_midi_event_get)
        self._jt[cb.J_EVENT] = self._event.ctypes.data
        self._jt[cb.J_CLIENT] = self.client
        self._jt[cb.J_LAST_FRAME_TIME] = _address(self.lib.jack_last_frame_time)
        self._jt[cb.J_PORT_BY_ID] = _address(self.lib.jack_port_by_id)
        if self.midi_out:
            self._jt[cb.J_MIDI_OUT_PORT] = self.midi_out
            self._jt[cb.J_CLEAR_BUFFER] = _address(self.lib.jack_midi_clear_buffer)
            self._jt[cb.J_EVENT_RESERVE] = _address(self.lib.jack_midi_event_reserve)
        self._arg = ctypes.c_void_p(self._jt.ctypes.data)
        self._callbacks = [cb.jack_port_connect_callback(), cb.jack_shutdown_callback()]
        self.lib.jack_set_port_connect_callback(self.client, self._callbacks[0].address,
                                                self._arg)
        self.lib.jack_on_shutdown(self.client, self._callbacks[1].address, self._arg)
        self._seen_unplugs = 0
        self._told_shutdown = False
        self._watcher = threading.Thread(target=self._watch, name="bandmate-jack-watch",
                                         daemon=True)
        self._watcher.start()

    @property
    def alive(self) -> bool:
        """False once the JACK server has shut this client down."""
        return self._jt[cb.J_SHUTDOWN] == 0

    @property
    def xruns(self) -> int:
        """xruns JACK reported to this client since it started."""
        return int(self._jt[cb.J_XRUNS])

    def _watch(self) -> None:
        """Our thread (never JACK's): turn the compiled callbacks' counters into calls."""
        while not self._watch_stop.wait(WATCH_S):
            self.poll()

    def poll(self) -> None:
        """Call on_midi_disconnect once per MIDI source that left midi_in, and on_shutdown once
        when the server went away, since the last poll (the watcher thread does this)."""
        unplugs = int(self._jt[cb.J_UNPLUGS])
        while self._seen_unplugs < unplugs:
            self._seen_unplugs += 1
            if self.on_midi_disconnect is not None:
                self.on_midi_disconnect()
        if not self.alive and not self._told_shutdown:
            self._told_shutdown = True
            if self.on_shutdown is not None:
                self.on_shutdown()

    def frame_of(self, sample: int) -> int:
        """The JACK frame at which engine sample `sample` is rendered (modulo 2**32)."""
        return (sample + int(self.state.ctl[L.C_FRAME_OFFSET])) & 0xFFFFFFFF

    def port_name(self, port) -> str:
        return self.lib.jack_port_name(port).decode()

    def ports(self, pattern: str = "", midi: bool = False, flags: int = 0) -> list[str]:
        return port_names(self.lib, self.lib.jack_get_ports(
            self.client, pattern.encode() or None, MIDI_TYPE if midi else AUDIO_TYPE, flags))

    def start(self, state: EngineState) -> "JackClient":
        if state.sample_rate != self.sample_rate:
            raise JackError(f"engine at {state.sample_rate} Hz but JACK runs at {self.sample_rate}")
        self.state = state
        state.ctl[L.C_MIDI_SOURCE] = JACK_MIDI_SOURCE
        state.ctl[L.C_MOUT_ON] = 1 if self.midi_out else 0
        self._jt[cb.J_ENGINE] = state.address
        self._jt[cb.J_UNPLUGS_DONE] = self._jt[cb.J_UNPLUGS]
        self._process = cb.jack_callback()
        self._xrun = cb.jack_xrun_callback()
        if self.lib.jack_set_process_callback(self.client, self._process.address,
                                              self._arg) != 0:
            raise JackError("JACK refused the process callback")
        self.lib.jack_set_xrun_callback(self.client, self._xrun.address, self._arg)
        if self.lib.jack_activate(self.client) != 0:
            raise JackError("JACK refused to activate bandmate")
        self.active = True
        return self

    def connect(self, src: str, dst: str) -> bool:
        return self.lib.jack_connect(self.client, src.encode(), dst.encode()) == 0

    def connect_outputs(self, targets: list[str] | str = "auto") -> list[str]:
        """Connect out_l/out_r to `targets` ("auto": the first two physical playback ports)."""
        if targets == "auto":
            targets = self.ports(midi=False, flags=PORT_IS_INPUT | PORT_IS_PHYSICAL)[:2]
        done = []
        for port, dst in zip((self.out_l, self.out_r), targets):
            if self.connect(self.port_name(port), dst):
                done.append(dst)
        return done

    def connect_midi(self, sources: list[str] | str = "all") -> list[str]:
        """Connect MIDI sources to midi_in: "all" physical MIDI capture ports, or names/regexes."""
        found = self.ports(midi=True, flags=PORT_IS_OUTPUT)
        if sources == "all":
            chosen = self.ports(midi=True, flags=PORT_IS_OUTPUT | PORT_IS_PHYSICAL)
        else:
            chosen = [p for p in found if any(p == s or re.search(s, p) for s in sources)]
        mine = self.port_name(self.midi_in)
        return [p for p in chosen if self.connect(p, mine)]

    def connect_midi_out(self, targets: list[str]) -> list[str]:
        """Connect midi_out to the JACK MIDI inputs named (or matched as regexes) in `targets`."""
        if not self.midi_out:
            return []
        found = self.ports(midi=True, flags=PORT_IS_INPUT)
        mine = self.port_name(self.midi_out)
        chosen = [p for p in found if any(p == t or re.search(t, p) for t in targets if t)]
        return [p for p in chosen if self.connect(mine, p)]

    def close(self) -> None:
        self._watch_stop.set()
        w = self._watcher
        if w is not None and w.is_alive() and w is not threading.current_thread():
            w.join(timeout=1.0)
        if self.client:
            if self.active:
                self.lib.jack_deactivate(self.client)
                self.active = False
            self.lib.jack_client_close(self.client)
            self.client = None

    def __enter__(self) -> "JackClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
