"""The engine's memory layout, shared by the audio thread and the control side.

All audio-thread state lives in a handful of preallocated numpy arrays. Their addresses and
shapes are written into one int64 *pointer table* (`TABLE_WIDTH` entries per slot:
address, dim0, dim1); the callbacks receive the table's address and rebuild each array with
`carray` (see `engine.rt.render.unpack`). The control side allocates everything once
(`engine.control.state.EngineState`) and never reallocates while a stream runs.
"""
import numpy as np

# ---- pointer table slots (slot, dtype) ------------------------------------------------
TABLE_WIDTH = 3
S_CTL = 0          # int64[CTL_SIZE]             counters, clock, flags
S_QSCHED = 1       # float64[QCAP, EVENT_WIDTH]   scheduler → audio queue slots
S_QSCHED_IDX = 2   # int64[16]                    [0]=write index, [8]=read index (separate lines)
S_QMIDI = 3        # float64[QCAP, EVENT_WIDTH]   MIDI thread → audio queue slots
S_QMIDI_IDX = 4    # int64[16]
S_PENDING = 5      # float64[PCAP, EVENT_WIDTH]   drained events not yet due
S_GLOBAL = 6       # float64[GL_SIZE]             engine-wide runtime values (tempo anchor)
S_MASTER_STATE = 7
S_MASTER_PARAMS = 8
S_BUS = 9          # float64[BUS_ROWS, MAXBLOCK]  the graph's rows (parts, sends), stereo out
S_METER = 10       # float64[METER_SIZE]          levels and timings for the control side
S_CBTIME = 11      # int64[CBTIME_CAP]            callback durations (ns), a ring
S_QOUT = 12        # float64[QCAP, EVENT_WIDTH]   audio → control: MIDI read in the callback
S_QOUT_IDX = 13    # int64[16]
# The graph (engine.control.graph): two banks, each a compiled program and its pools. One bank
# plays; the control side allocates a new program into the other and swaps it in with an event
# (allocate → swap → free after the audio thread acknowledges, as scsynth does).
S_BANK0 = 14
BANK_STRIDE = 4
G_PROG, G_USTATE, G_UPARAMS, G_UIO = range(4)
#   bank b, slot S_BANK0 + b * BANK_STRIDE + G_*:
#   G_PROG    int64[ops, PR_WIDTH]   the unit program (engine.rt.units.dispatch)
#   G_USTATE  float64[...]           the units' state pool
#   G_UPARAMS float64[...]           the units' params pool (targets | current, per unit)
#   G_UIO     int64[ops * IO_WIDTH]  the units' bus rows
S_PROG, S_USTATE, S_UPARAMS, S_UIO = (S_BANK0 + k for k in range(4))   # bank 0
N_BANKS = 2
S_MOUT = S_BANK0 + N_BANKS * BANK_STRIDE   # float64[MOUT_CAP, 2]  MIDI out of the callback so
#   far (sample time, packed message: engine.rt.events K_MIDI_OUT), C_MOUT_COUNT rows; the JACK
#   callback empties it each period into its midi_out port
S_THRU = S_MOUT + 1        # int64[THRU_CAP, 2]  MIDI thru of this JACK period (frame offset,
#   packed message), C_THRU_COUNT rows: the player's messages the JACK callback echoes to its
#   midi_out port (merged with S_MOUT's rows in time order), written and emptied by it
N_SLOTS = S_THRU + 1

_BANK_DTYPES = (np.int64, np.float64, np.float64, np.int64)
SLOT_DTYPES = {
    S_CTL: np.int64, S_QSCHED: np.float64, S_QSCHED_IDX: np.int64, S_QMIDI: np.float64,
    S_QMIDI_IDX: np.int64, S_PENDING: np.float64, S_GLOBAL: np.float64,
    S_MASTER_STATE: np.float64,
    S_MASTER_PARAMS: np.float64, S_BUS: np.float64, S_METER: np.float64, S_CBTIME: np.int64,
    S_QOUT: np.float64, S_QOUT_IDX: np.int64, S_MOUT: np.float64, S_THRU: np.int64,
} | {S_BANK0 + b * BANK_STRIDE + k: _BANK_DTYPES[k] for b in range(N_BANKS) for k in range(4)}


def bank_slot(bank: int, what: int) -> int:
    """The pointer-table slot of `what` (G_*) of graph bank `bank`."""
    return S_BANK0 + bank * BANK_STRIDE + what


# ---- capacities -----------------------------------------------------------------------
QCAP = 4096          # queue slots (power of two)
PCAP = 4096          # pending events
MAXBLOCK = 4096      # largest block a driver may ask for
CBTIME_CAP = 8192    # callback timing ring
MAX_OPS = 256        # unit instances in one program
MOUT_CAP = 1024      # MIDI out messages in one callback
THRU_CAP = 512       # MIDI thru messages in one JACK period

# ---- ctl: int64 counters and clock ------------------------------------------------------
C_SAMPLE_TIME = 0     # absolute sample time of the next block's first sample
C_BLOCKS = 1          # blocks rendered
C_LATE = 2            # events that arrived after their time (applied at offset 0)
C_DROPPED = 3         # events dropped because the pending store was full
C_PENDING = 4         # events in the pending store
C_SEQ = 5             # arrival sequence counter (ties at equal times keep arrival order)
C_SAMPLE_RATE = 6
C_NONFINITE = 7       # non-finite samples caught by the master guard (mirrored from master)
C_XRUNS = 8           # driver-reported under/overflows (PortAudio status flags, JACK)
C_VOICES_ACTIVE = 9
C_STEALS = 10
C_LAST_NOTE_ON = 11   # sample time at which the last note-on was applied (latency tests)
C_CBTIME_W = 12       # write index into the callback-time ring
C_MIDI_DROPPED = 14   # malformed / unparseable JACK MIDI events skipped
C_CLOCK_FN = 15       # address of clock_gettime (0: callbacks are not timed)
C_MIDI_SOURCE = 16    # source id stamped on MIDI read inside the JACK callback
C_CLOCK_SEQ = 17      # seqlock over the two below: odd while the audio thread writes them
C_BLOCK_NS = 18       # CLOCK_MONOTONIC time (ns) at which the last block started rendering
C_BLOCK_SAMPLE = 19   # the sample time of that block's first sample
C_FRAME_OFFSET = 20   # JACK driver: JACK frame time minus engine sample time (for alignment)
C_BANK_OPS = 21       # 2 entries: unit instances in each bank's program
C_BANK = 23           # the bank playing
C_XFADE_LEFT = 24     # samples left of the crossfade from the other bank (0: none)
C_XFADE_LEN = 25      # that crossfade's length
C_GRAPH_GEN = 26      # generation of the last swap applied (the event's D column)
C_GRAPH_ACK = 27      # generation whose crossfade has finished: the old bank may be freed
C_GRAPH_BAD = 28      # swap events refused (an empty or unknown bank)
C_PART_OP = 52        # 2 x NPARTS entries: per bank, the program row of each part's instrument
                      #   unit (-1: the part has none and is silent)
C_CHAN_PART = 32      # 16 entries: part played by each MIDI channel read in the callback
C_TIMESPEC = 48       # 2 entries: struct timespec scratch for clock_gettime
C_MOUT_ON = 64        # 1: K_MIDI_OUT events are written to S_MOUT (a driver with a MIDI out port)
C_MOUT_COUNT = 65     # rows in S_MOUT
C_MOUT_LATE = 66      # MIDI out messages applied after their time (sent at the block's start)
C_MOUT_DROPPED = 67   # MIDI out messages with no room (S_MOUT full, or the JACK port buffer)
C_MOUT_SENT = 68      # MIDI out messages written to the driver's port
C_MOUT_GEN = 70       # NPARTS + 1 entries: per part (and last: the clock), the oldest generation
                      #   of K_MIDI_OUT rows still sent (K_MIDI_OUT_CUT raises it)
C_CC_MAPPED = 80      # 32 entries, bit cc % 64 of entry 2 * channel + cc // 64 (channel 0..15):
                      #   the MIDI mapping binds that control (engine.control.mapping), so the
                      #   JACK callback neither applies its own action (CC 1, 64, 120, 123) nor
                      #   echoes it thru; the mapper alone acts on it. Set by the control side.
C_THRU = 112          # MIDI thru in the JACK callback: 0 off, 1..16 every message to that
                      #   channel, 17 each message on its own channel (set by the control side)
C_THRU_COUNT = 113    # rows in S_THRU
C_THRU_REQ = 114      # control side: thru releases asked (a panic, a stop), counted up
C_THRU_DONE = 115     # JACK callback: the thru releases answered
C_THRU_PENDING = 116  # JACK callback: 1 while the thru notes sounding are still to be ended
C_THRU_PEDAL = 117    # bit c: sustain down was echoed on MIDI channel c (0..15)
C_THRU_HELD = 120     # 32 entries, as C_CC_MAPPED for notes: thru notes sounding
CTL_SIZE = 152

# ---- parts ------------------------------------------------------------------------------
NPARTS = 5            # keys, bass, chords, lead, drums (engine.parts); each plays an instrument
                      # unit of the graph (engine.control.graph)

# ---- the analog voice (engine.rt.voice; the `analog` instrument unit, engine.rt.units.analog)
# Its voice DSP state is one flat float32 array of rows, NVMAX voices per row, inside the unit's
# state. A compile-time row stride lets LLVM prove that rows never overlap, so the voice loops
# vectorize without runtime alias checks. The stride is 1056 bytes: rows a multiple of 4 KiB
# apart share an L1 set (and look alike to the load-store unit), and the voice stages touch
# 20-odd rows at the same column (at a 4096-byte stride they thrashed one set and the voices ran
# 20 % slower).
NVMAX = 264
"""Voices one analog unit can sound (its `polyphony` is at most MAX_POLYPHONY)."""
MAX_POLYPHONY = 256
(VF_PHASE1, VF_PHASE2, VF_INC, VF_AENV, VF_ASTAGE, VF_FENV, VF_FSTAGE, VF_S1, VF_S2, VF_S3,
 VF_S4, VF_VEL, VF_KEYOCT, VF_GAIN, VF_OSC, VF_G, VF_OUT) = range(17)
VF_CHUNK = 32
"""Samples a part renders stage by stage (engine.rt.voice): each stage runs over up to VF_CHUNK
samples before the next, its per-sample results kept in the chunk rows below."""
VF_C_OSC = 17                      # rows VF_C_OSC + t: oscillator sum at sample t of the chunk
VF_C_G = VF_C_OSC + VF_CHUNK       # rows VF_C_G + t: filter coefficient at sample t
VF_C_OUT = VF_C_G + VF_CHUNK       # rows VF_C_OUT + t: filter output at sample t
VF_C_SCALAR = VF_C_OUT + VF_CHUNK  # one row of per-sample part values (engine.rt.voice CS_*)
VF_ROWS = VF_C_SCALAR + 1
# VF_INC: oscillator 1 phase increment at zero bend (cycles per sample)
# VF_KEYOCT: (note - 60) / 12, for key tracking
# VF_GAIN: velocity-scaled amplitude
# VF_OSC, VF_G, VF_OUT: per-sample scratch (oscillator sum, filter coefficient, filter out);
#   VF_G also keeps the coefficients while they need no recomputing (PS_G_DIRTY); the chunk
#   path keeps each voice's own cutoff offset (key tracking, velocity) in VF_OUT

# stage codes (both envelopes)
ST_IDLE, ST_ATTACK, ST_DECAY, ST_RELEASE, ST_STEAL = 0.0, 1.0, 2.0, 3.0, 4.0

# ---- voice bookkeeping (float64) ------------------------------------------------------------
(VM_NOTE, VM_SOURCE, VM_START, VM_HELD, VM_SUSTAINED, VM_PEND_NOTE, VM_PEND_VEL,
 VM_PEND_SOURCE, VM_FADE_STEP, VM_FADE_LEFT) = range(10)
VM_SIZE = 10
# VM_HELD: 1 while the key is down; VM_SUSTAINED: released by the key but held by the pedal
# VM_PEND_*: the note a stolen voice will play once its fade-out is done (VM_PEND_NOTE<0: none)
# VM_FADE_STEP, VM_FADE_LEFT: a fading (stolen) voice's linear fade: level lost per sample, and
#   samples left after the current one (-1: the fade starts at the next sample rendered)

# ---- the analog unit's runtime values (float64) ------------------------------------------
(PS_VLO, PS_VHI, PS_NACTIVE, PS_SETTLING, PS_SUSTAIN, PS_LFO_PHASE, PS_A_COEF, PS_D_COEF,
 PS_R_COEF, PS_FA_COEF, PS_FD_COEF, PS_FR_COEF, PS_COEF_DIRTY, PS_NSTEAL, PS_RATIO2,
 PS_LOG2_CUTOFF, PS_GAIN, PS_G_DIRTY, PS_SWITCH, PS_DUCK, PS_SEED, PS_NOW, PS_NOISE0) = range(23)
PS_NOISE_N = 7        # PS_NOISE0 .. PS_NOISE0 + 6
PS_SIZE = PS_NOISE0 + PS_NOISE_N
# PS_VLO/PS_VHI: the voices a note-on may take (PS_VHI - PS_VLO: the polyphony, a multiple of
#   LANES); PS_NACTIVE: 1 + highest active voice offset (every voice at or above it is idle);
# PS_NSTEAL: voices fading out for a thief (the per-sample steal check runs only then);
# PS_SETTLING: 1 while smoothed parameters move toward new targets (0: all settled, so the
#   per-sample smoothing and the values derived from parameters are skipped)
# PS_RATIO2, PS_LOG2_CUTOFF, PS_GAIN: values derived from the smoothed parameters
# PS_G_DIRTY: per-voice filter coefficients must be recomputed (new note, moving parameters)
# PS_SWITCH: 0, or 1 while the part dips to apply a waveform/filter change, 2 while it comes back
# PS_DUCK: the level of that dip (1 = none)
# PS_SEED: the noise generator's seed (the unit's part index: parts never share one noise)
# PS_NOW: the unit's own sample clock (samples rendered; a voice's age for stealing)
# PS_NOISE0..: the noise colour's filter memories (engine.rt.noise: pink seven, brown the first)

# ---- S_GLOBAL: engine-wide runtime values ----------------------------------------------------
GL_TEMPO_BPM = 0
GL_ANCHOR_SAMPLE = 1  # the beat position is GL_ANCHOR_BEAT at sample GL_ANCHOR_SAMPLE, then
GL_ANCHOR_BEAT = 2    #   advances at the tempo (re-anchored at each tempo change)
GL_SIZE = 8

# ---- bus rows -----------------------------------------------------------------------------
# The graph's program writes them all: each part's stereo pair (its instrument, then its
# inserts in place), the send pairs, the stereo out.
B_OUT_L = 0
B_OUT_R = 1
B_CTX = 2                 # the context row (engine.rt.units.base CTX_*): tempo, sample time
B_XFADE_L = 3             # the outgoing program's output during a crossfade
B_XFADE_R = 4
N_SENDS = 4
B_SEND0 = 5               # send k: rows B_SEND0 + 2k, + 2k + 1
B_PART0 = B_SEND0 + 2 * N_SENDS   # part p: rows B_PART0 + 2p, + 2p + 1
BUS_ROWS = B_PART0 + 2 * NPARTS
B_GRAPH_FIRST = B_OUT_L   # rows a program writes (cleared before it runs), except the three
B_GRAPH_END = BUS_ROWS    # it reads: B_CTX and the crossfade pair

# ---- meters -----------------------------------------------------------------------------
M_PEAK_L, M_PEAK_R, M_PART_PEAK = 0, 1, 2   # M_PART_PEAK + part: peak since last read
METER_SIZE = 16
