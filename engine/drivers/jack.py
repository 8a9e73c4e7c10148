"""JACK-native driver (control side): a JACK client whose process callback is the compiled
`engine.rt.callbacks.jack_process`, bound to libjack through ctypes.

The callback reads the client's MIDI input port itself, so each note applies at its exact
frame offset in the period: note-to-sound is one period, with zero jitter, whatever Python
is doing. Outputs are connected to the system playback ports unless told otherwise.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import re

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
    lib.jack_set_port_connect_callback.argtypes = [vp, PORT_CONNECT_CB, vp]
    lib.jack_on_shutdown.argtypes = [vp, SHUTDOWN_CB, vp]
    lib.jack_port_by_id.argtypes = [vp, ctypes.c_uint32]
    lib.jack_port_by_id.restype = vp
    return lib


PORT_CONNECT_CB = ctypes.CFUNCTYPE(None, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_int,
                                   ctypes.c_void_p)
SHUTDOWN_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


def _address(fn) -> int:
    return int(ctypes.cast(fn, ctypes.c_void_p).value)


class JackClient:
    """Opens a JACK client; its sample rate and period are the server's. Then `start(state)`
    activates the compiled process callback over `state` (made at `sample_rate`)."""

    def __init__(self, name: str = "bandmate"):
        self.lib = _libjack()
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
        if not (self.midi_in and self.out_l and self.out_r):
            self.close()
            raise JackError("JACK refused to register bandmate's ports")
        self.state: EngineState | None = None
        self.active = False
        self.alive = True
        self.on_midi_disconnect = None   # called (JACK's notification thread) when a MIDI
        self.on_shutdown = None          # source leaves midi_in / when the server goes away
        self._connect_cb = PORT_CONNECT_CB(self._port_connect)
        self._shutdown_cb = SHUTDOWN_CB(self._server_shutdown)
        self.lib.jack_set_port_connect_callback(self.client, self._connect_cb, None)
        self.lib.jack_on_shutdown(self.client, self._shutdown_cb, None)

    def _port_connect(self, a: int, b: int, connect: int, arg) -> None:
        """JACK's notification thread (not the audio thread): a device unplugged or a cable
        pulled from midi_in must not leave its notes sounding."""
        if connect or self.on_midi_disconnect is None:
            return
        if self.lib.jack_port_by_id(self.client, b) == self.midi_in:
            self.on_midi_disconnect()

    def _server_shutdown(self, arg) -> None:
        self.alive = False
        if self.on_shutdown is not None:
            self.on_shutdown()

    def frame_of(self, sample: int) -> int:
        """The JACK frame at which engine sample `sample` is rendered (modulo 2**32)."""
        return (sample + int(self.state.ctl[L.C_FRAME_OFFSET])) & 0xFFFFFFFF

    def port_name(self, port) -> str:
        return self.lib.jack_port_name(port).decode()

    def ports(self, pattern: str = "", midi: bool = False, flags: int = 0) -> list[str]:
        names = self.lib.jack_get_ports(self.client, pattern.encode() or None,
                                        MIDI_TYPE if midi else AUDIO_TYPE, flags)
        out = []
        if names:
            i = 0
            while names[i]:
                out.append(names[i].decode())
                i += 1
            self.lib.jack_free(names)
        return out

    def start(self, state: EngineState) -> "JackClient":
        if state.sample_rate != self.sample_rate:
            raise JackError(f"engine at {state.sample_rate} Hz but JACK runs at {self.sample_rate}")
        self.state = state
        state.ctl[L.C_MIDI_SOURCE] = JACK_MIDI_SOURCE
        self._event = np.zeros(cb.EVENT_STRUCT_WORDS, np.int64)
        self._jt = np.zeros(cb.J_SIZE, np.int64)
        self._jt[cb.J_ENGINE] = state.address
        self._jt[cb.J_MIDI_PORT] = self.midi_in
        self._jt[cb.J_OUT_L] = self.out_l
        self._jt[cb.J_OUT_R] = self.out_r
        self._jt[cb.J_GET_BUFFER] = _address(self.lib.jack_port_get_buffer)
        self._jt[cb.J_EVENT_COUNT] = _address(self.lib.jack_midi_get_event_count)
        self._jt[cb.J_EVENT_GET] = _address(self.lib.jack_midi_event_get)
        self._jt[cb.J_EVENT] = self._event.ctypes.data
        self._jt[cb.J_CLIENT] = self.client
        self._jt[cb.J_LAST_FRAME_TIME] = _address(self.lib.jack_last_frame_time)
        self._process = cb.jack_callback()
        self._xrun = cb.jack_xrun_callback()
        arg = ctypes.c_void_p(self._jt.ctypes.data)
        if self.lib.jack_set_process_callback(self.client, self._process.address, arg) != 0:
            raise JackError("JACK refused the process callback")
        self.lib.jack_set_xrun_callback(self.client, self._xrun.address, arg)
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

    def close(self) -> None:
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
