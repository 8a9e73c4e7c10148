"""Event rows exchanged between the control side and the audio thread (AUDIO THREAD + control).

An event is one row of a float64[EVENT_WIDTH] array. float64 holds integer sample times exactly
up to 2**53 samples (thousands of years at 48 kHz), so the time of an event is exact data.

Columns:
    TIME   absolute sample time at which the event takes effect (its sample offset in the block
           is TIME - block_start; a late event applies at offset 0 and is counted as late;
           ASAP (-1) means "at the start of the next block", not late)
    KIND   one of the K_* codes below
    PART   part index (see engine.parts)
    A, B, C, D   kind-specific arguments (documented per kind)
"""

EVENT_WIDTH = 8
TIME, KIND, PART, A, B, C, D, SEQ = range(8)
ASAP = -1.0

# KIND codes ---------------------------------------------------------------------------
K_NOTE_ON = 1       # A=note (0..127, may be fractional for micro-tuning), B=velocity 0..1, C=source id
K_NOTE_OFF = 2      # A=note, C=source id (a note-off releases the voice its source started)
K_PITCH_BEND = 4    # B=bend -1..1 (the instrument scales it by its own bend range)
K_MOD_WHEEL = 5     # B=0..1
K_SUSTAIN = 6       # B=1 pedal down, 0 pedal up
K_ALL_NOTES_OFF = 7 # release every voice of PART (PART=-1: all parts); sustain is lifted
K_PANIC = 8         # hard stop: every voice fades out within a few ms, tails cleared
K_TEMPO = 9         # B=beats per minute (tempo-synced effects follow it, smoothed)
K_SOURCE_GONE = 11  # C=source id: release every note that source started (unplugged device)
K_FX = 12           # PART=FX_* module, A=param index in that module, B=value (smoothed there)
K_GRAPH = 15        # swap the graph: B=bank to play, A=crossfade samples, D=generation
                    # (engine.control.graph.Graph.swap)
K_AFTERTOUCH = 14   # B=0..1 (channel pressure; polyphonic: A=note)
K_UNIT_PARAM = 13   # A=index into the units' params pool (a target), B=value, C=graph bank (the
                    # unit smooths and clamps it; engine.control.graph gives each address's index)

K_MIDI_OUT = 16     # a MIDI message for the external synth (engine.control.midi_out), written
                    # to the driver's MIDI out at its sample: PART=part (-1: clock and transport,
                    # first at equal times), A=order at equal times, B=message packed status |
                    # data1 << 8 | data2 << 16, C=generation (dropped below the part's cut)
K_MIDI_OUT_CUT = 17 # PART=part (-1: the clock), C=generation: that part's K_MIDI_OUT rows of an
                    # older generation still queued are dropped (a panic, a stop, a re-route:
                    # their note-offs follow in the new generation, so nothing queued sounds)
K_MIDI_IN = 18      # report only (audio → control): a raw MIDI message read in the JACK callback
                    # that the control side needs (CC, program change, bend, realtime): A=status,
                    # B=data1, C=data2, D=source id

FX_MASTER = 2   # (0, 1, 3 were the sends and the drum kit, now units on the graph)
