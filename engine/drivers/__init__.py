"""Live audio drivers (control side): they open a device and hand it a compiled callback.

- `portaudio`: the cross-platform default, through sounddevice's own PortAudio binding.
- `jack`: JACK-native (Linux studios; PipeWire desktops through its JACK API), reading JACK
  MIDI in the process callback at exact frame offsets.
Both start only after `engine.control.warmup.warm_up` has compiled every kernel.
"""
