"""PortAudio output through sounddevice's cffi handle, with a GIL-free compiled callback
(control side: opening, closing and device lookup; the callback is `engine.rt.callbacks`).

The stream is opened with `Pa_OpenStream` directly, handing PortAudio the address of the
compiled callback's C entry point (engine.rt.cfunc) and the engine's pointer table as
`userData`, so the audio thread never runs Python.
Where a platform refuses that (`callback="python"` in the config), a plain sounddevice
callback stream calls the same kernel, with the GIL.
"""
from __future__ import annotations

from engine.control.state import EngineState


class AudioDeviceError(RuntimeError):
    """No usable output device, or PortAudio refused the stream."""


def _sd():
    try:
        import sounddevice
    except OSError as exc:  # libportaudio missing
        raise AudioDeviceError(f"PortAudio is not available ({exc}); on Debian/Ubuntu: "
                               "apt-get install libportaudio2") from exc
    return sounddevice


def rescan() -> None:
    """Re-initialise PortAudio so devices (e.g. a JACK server started since) are seen."""
    sd = _sd()
    sd._terminate()
    sd._initialize()


def output_devices() -> list[dict]:
    """Every device with output channels: index, name, host API, channels, default rate."""
    sd = _sd()
    apis = sd.query_hostapis()
    out = []
    for i, dev in enumerate(sd.query_devices()):
        if dev["max_output_channels"] > 0:
            out.append({"index": i, "name": dev["name"], "hostapi": apis[dev["hostapi"]]["name"],
                        "channels": dev["max_output_channels"],
                        "default_samplerate": dev["default_samplerate"],
                        "default_low_latency_s": dev["default_low_output_latency"],
                        "default_high_latency_s": dev["default_high_output_latency"]})
    return out


def find_output(name: str | None) -> dict:
    """The output device called `name` (exact, else case-insensitive substring; "default" or
    None: PortAudio's default output). Raises AudioDeviceError with the list of devices."""
    sd = _sd()
    devices = output_devices()
    if not devices:
        raise AudioDeviceError("no audio output device found (no sound card, and no JACK or "
                               "PulseAudio server running)")
    if name in (None, "", "default"):
        idx = sd.default.device[1]
        if idx is None or idx < 0:
            idx = sd._lib.Pa_GetDefaultOutputDevice()
        for d in devices:
            if d["index"] == idx:
                return d
        return devices[0]
    for d in devices:
        if d["name"] == name:
            return d
    matches = [d for d in devices if name.lower() in d["name"].lower()]
    if len(matches) == 1:
        return matches[0]
    listing = "\n".join(f"  {d['index']}: {d['name']} ({d['hostapi']})" for d in devices)
    what = "matches several devices" if matches else "matches no device"
    raise AudioDeviceError(f"audio device {name!r} {what}; outputs are:\n{listing}")


class PortAudioStream:
    """A running output stream rendering `state`. Use `start()`/`close()` or `with`."""

    def __init__(self, state: EngineState, device: dict, block_size: int,
                 callback: str = "compiled", latency: str | float = "low"):
        self.state = state
        self.device = device
        self.block_size = block_size
        self.mode = callback
        self.latency = latency
        self._stream = None      # PaStream* (compiled) or sounddevice.OutputStream (python)
        self._keep = []          # cffi objects that must outlive the stream

    def start(self) -> "PortAudioStream":
        sd = _sd()
        if self.mode == "python":
            self._start_python(sd)
        else:
            self._start_compiled(sd)
        return self

    def _start_compiled(self, sd) -> None:
        from engine.rt.callbacks import portaudio_callback

        ffi, lib = sd._ffi, sd._lib
        cb = portaudio_callback()
        latency = (self.device["default_low_latency_s"] if self.latency == "low" else
                   self.device["default_high_latency_s"] if self.latency == "high" else
                   float(self.latency))
        params = ffi.new("PaStreamParameters*", {
            "device": self.device["index"], "channelCount": 2, "sampleFormat": lib.paFloat32,
            "suggestedLatency": latency, "hostApiSpecificStreamInfo": ffi.NULL})
        stream = ffi.new("PaStream**")
        cfn = ffi.cast("PaStreamCallback*", cb.address)
        userdata = ffi.cast("void*", self.state.address)
        err = lib.Pa_OpenStream(stream, ffi.NULL, params, float(self.state.sample_rate),
                                self.block_size, lib.paClipOff | lib.paDitherOff, cfn, userdata)
        if err:
            raise AudioDeviceError(f"PortAudio could not open {self.device['name']!r}: "
                                   f"{ffi.string(lib.Pa_GetErrorText(err)).decode()}")
        self._keep = [cb, params, cfn, userdata, stream]
        err = lib.Pa_StartStream(stream[0])
        if err:
            lib.Pa_CloseStream(stream[0])
            raise AudioDeviceError(f"PortAudio could not start the stream: "
                                   f"{ffi.string(lib.Pa_GetErrorText(err)).decode()}")
        self._stream = stream[0]

    def _start_python(self, sd) -> None:
        """Needs `warm_up(("python",))` first: a first call would compile in the callback."""
        from engine.rt.callbacks import pa_process
        table = self.state.table

        def callback(outdata, frames, time, status):
            flags = 0x4 if status.output_underflow else 0
            pa_process(table, outdata.ctypes.data, frames, flags)

        self._stream = sd.OutputStream(
            samplerate=self.state.sample_rate, blocksize=self.block_size,
            device=self.device["index"], channels=2, dtype="float32",
            latency=self.latency, callback=callback, clip_off=True, dither_off=True)
        self._stream.start()

    @property
    def output_latency_s(self) -> float:
        sd = _sd()
        if self._stream is None:
            return 0.0
        if self.mode == "python":
            return float(self._stream.latency)
        info = sd._lib.Pa_GetStreamInfo(self._stream)
        return float(info.outputLatency) if info != sd._ffi.NULL else 0.0

    @property
    def alive(self) -> bool:
        """False once the stream is closed or has stopped by itself (an error, the device
        gone): the installation mode's watchdog then reopens it."""
        if self._stream is None:
            return False
        if self.mode == "python":
            return bool(self._stream.active)
        return _sd()._lib.Pa_IsStreamActive(self._stream) == 1

    def close(self) -> None:
        """Stop (PortAudio waits for the last buffers to play) and close the stream."""
        if self._stream is None:
            return
        sd = _sd()
        if self.mode == "python":
            self._stream.stop()
            self._stream.close()
        else:
            sd._lib.Pa_StopStream(self._stream)
            sd._lib.Pa_CloseStream(self._stream)
        self._stream = None
        self._keep = []

    def __enter__(self) -> "PortAudioStream":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

