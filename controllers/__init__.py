"""Controllers (control side): what the musician plays, turned into mido messages for the engine.

    base.py      the Sink protocol the engine implements, source ids, the MIDI byte decoder
    midi_in.py   MidiInputs: MIDI ports (ALSA / JACK / CoreMIDI / Windows via python-rtmidi)
    keyboard.py  TerminalKeyboard: the computer keyboard as a piano (source 0)
    midifile.py  read_performance / read_notes / write_performance: Standard MIDI files
    fake.py      FakeBackend, FakePort, RecordingSink: in-memory doubles for tests
"""
