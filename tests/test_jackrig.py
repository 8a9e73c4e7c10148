"""Validate the frame-exact JACK rig (tests/jackrig.py) against a reference instrument.

The reference instrument is a JACK client with a compiled callback (tests.jackc): a note-on at
offset k of a period makes a 1.0 impulse at sample k of the same period, i.e. a DUT with zero
latency of its own. It also
logs the absolute frame at which each note-on reached it, which shows JACK2's graph order:

* MIDI connected first (what `Rig.connect` does): JACK runs rig -> instrument each cycle, the
  instrument gets the note in the cycle it was sent, and the instrument's audio reaches the
  rig one cycle later through the loop's feedback connection.
* audio connected first: JACK runs instrument -> rig, the note reaches the instrument one
  cycle late, and its audio reaches the rig in that same cycle.

Either way a zero-latency DUT measures exactly one period (RIG_LOOP_PERIODS * period = 64
frames at -p 64), with zero jitter, and Rig.loop_frames() reports those 64 frames as the rig's.

A DUT split into a MIDI client and an audio client with no JACK path between them closes no
cycle: the rig adds nothing (loop_frames() == 0) and the period it measures is the DUT's own.
"""
from __future__ import annotations

import random
import re
import subprocess

import numpy as np
import pytest

from tests.jackc import CClient
from tests.jackrig import RIG_LOOP_PERIODS, Rig, RigError, RigGap, measure, onset_frame

NOTE_ON = b"\x90\x3c\x64"
N_NOTES = 50
SPACING = 1000  # frames between notes: not a multiple of 64, so offsets wander too


class RefInstrument:
    """note-on at offset k -> a 1.0 impulse at sample k of the same period (compiled)."""

    def __init__(self, name: str = "ref_instrument"):
        self.client = CClient(name, midi_in=True, audio_out=True, instant=True).activate()
        self.name = self.client.name  # JACK appends -01 etc. if the name is taken

    @property
    def n(self) -> int:
        return len(self.client.arrivals())

    def arrivals_since(self, n0: int) -> list[int]:
        return self.client.arrivals()[n0:]

    def close(self) -> None:
        self.client.close()


_checked_jackd: list[int] = []


@pytest.fixture
def own_jack(jack_server):
    """The session's jackd, checked to be *our* process: if its name was already taken (another
    test run, or an orphaned jackd), our jackd exits at once while the start-up probe happily
    connects to the stranger's server, whose state and clients would skew every frame count."""
    proc = jack_server.proc
    if proc is not None and not _checked_jackd:
        try:  # a jackd that lost the name race exits within a moment of its start
            proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            _checked_jackd.append(proc.pid)
    if proc is None or proc.poll() is not None:
        pytest.fail(f"our jackd '{jack_server.name}' is not running: another JACK server holds "
                    "that name (stop it, or give the test server a unique name)")
    return jack_server


@pytest.fixture
def ref_instrument(own_jack):
    inst = RefInstrument()
    yield inst
    inst.close()


def _run_notes(rig: Rig, inst: RefInstrument, seed: int):
    """Send N_NOTES note-ons at random offsets; return (scheduled, sent, onsets, arrivals,
    recording)."""
    rng = random.Random(seed)
    first = rig.now() + rig.rate // 10  # 100 ms ahead: sends are never late unless starved
    scheduled = [first + i * SPACING + rng.randrange(rig.period) for i in range(N_NOTES)]
    n0 = inst.n
    xruns0, late0 = rig.xruns, rig.late_messages
    seqs = [rig.send(NOTE_ON, at) for at in scheduled]
    rig.wait_until(scheduled[-1] + SPACING)
    rec = rig.recording(since_frame=scheduled[0] - rig.period)
    if rig.xruns != xruns0:
        raise RigGap(f"{rig.xruns - xruns0} xrun(s) during the measurement")
    if rig.late_messages != late0:
        raise RigGap(f"{rig.late_messages - late0} message(s) scheduled too late (test starved)")
    sent = [rig.sent_frame(s) for s in seqs]
    bounds = sent[1:] + [sent[-1] + SPACING]
    onsets = [onset_frame(rec, s, threshold=0.5, before_frame=b) for s, b in zip(sent, bounds)]
    arrivals = inst.arrivals_since(n0)
    return scheduled, sent, onsets, arrivals, rec


def _measure_with_retries(rig: Rig, inst: RefInstrument, attempts: int = 8):
    """An xrun of the host (a VM's stolen time) or a starved test thread (late sends) makes a
    real-time run unmeasurable, not wrong: retry it. Exactness is asserted on the first clean
    run; if the host never gives one, the same run in freewheel mode (no deadlines) decides."""
    last = None
    for attempt in range(attempts):
        try:
            return _run_notes(rig, inst, seed=attempt)
        except RigGap as exc:
            last = exc
    with rig.freewheeling():
        return _run_notes_freewheel(rig, inst, seed=attempts, why=last)


def _run_notes_freewheel(rig: Rig, inst: RefInstrument, seed: int, why):
    rng = random.Random(seed)
    rel = [i * SPACING + rng.randrange(rig.period) for i in range(N_NOTES)]
    n0 = inst.n
    rig.hold()
    seqs = [rig.send(NOTE_ON, at) for at in rel]
    rig.arm()
    anchor = rig.anchor()
    scheduled = [anchor + r for r in rel]
    rig.wait_until(scheduled[-1] + SPACING, timeout=30)
    rec = rig.recording(since_frame=scheduled[0] - rig.period)
    sent = [rig.sent_frame(s) for s in seqs]
    bounds = sent[1:] + [sent[-1] + SPACING]
    onsets = [onset_frame(rec, s, threshold=0.5, before_frame=b) for s, b in zip(sent, bounds)]
    return scheduled, sent, onsets, inst.arrivals_since(n0), rec


@pytest.mark.jack
def test_rig_measures_reference_instrument_exactly(ref_instrument):
    with Rig(audio_inputs=2) as rig:
        name = re.escape(ref_instrument.name)
        midi = rig.find_port(rf"^{name}:midi_in$", is_midi=True, is_input=True)
        audio = rig.find_ports(rf"^{name}:out$", is_midi=False, is_input=False)
        rig.connect(midi_to=midi, audio_from=audio)
        scheduled, sent, onsets, arrivals, rec = _measure_with_retries(rig, ref_instrument)

        assert sent == scheduled, "every message went out at exactly its scheduled frame"
        offsets = {s % rig.period for s in sent}
        assert len(offsets) > 20, "notes landed at many different offsets in the period"
        # graph order rig -> instrument: each note-on arrives in the very cycle it was sent
        assert arrivals == sent
        assert rig.loop_frames() == RIG_LOOP_PERIODS * rig.period == 64
        m = measure(sent, onsets, loop_frames=rig.loop_frames())
        assert m.missing == 0
        assert m.jitter == 0
        assert m.median == RIG_LOOP_PERIODS * rig.period == 64
        assert set(m.latencies.tolist()) == {64}
        assert m.own_median == 0
        # channel 2 is unconnected: silence; channel 1 is exactly the 50 impulses
        assert not np.any(rec[1][:, 1])
        assert np.count_nonzero(rec[1][:, 0]) == N_NOTES


@pytest.mark.jack
def test_audio_first_connection_moves_the_loop_delay_to_midi(ref_instrument):
    """Connecting the audio before the MIDI reverses JACK's order: same total, other edge."""
    with Rig(audio_inputs=1) as rig:
        name = re.escape(ref_instrument.name)
        rig.connect(midi_to=None,
                    audio_from=rig.find_ports(rf"^{name}:out$", is_midi=False, is_input=False))
        rig.connect_ports(rig.midi_out, rig.find_port(rf"^{name}:midi_in$"))
        scheduled, sent, onsets, arrivals, _ = _measure_with_retries(rig, ref_instrument)

        assert sent == scheduled
        assert [a - s for a, s in zip(arrivals, sent)] == [rig.period] * N_NOTES
        assert rig.loop_frames() == 64
        m = measure(sent, onsets, loop_frames=rig.loop_frames())
        assert (m.median, m.jitter, m.missing, m.own_median) == (64, 0, 0, 0)


class SplitInstrument:
    """A DUT whose MIDI input and audio output are two JACK clients with no JACK path between
    them (like rtmidi's input client feeding a separate audio client): the MIDI client logs
    each note-on's absolute frame; the audio client renders it at the same offset in the first
    period it runs after that (the next cycle: JACK runs it before the rig, the MIDI client
    after). Both compiled."""

    def __init__(self, name: str = "split_instrument"):
        self.midi = CClient(name + "_midi", midi_in=True).activate()
        self.audio = CClient(name + "_audio", audio_out=True, play_from=self.midi).activate()

    def close(self) -> None:
        for c in (self.audio, self.midi):
            c.close()


@pytest.mark.jack
def test_split_dut_no_graph_cycle_rig_adds_nothing(own_jack):
    """No JACK cycle -> no feedback edge: the rig records the DUT's audio in the cycle it was
    written, loop_frames() is 0, and the one period measured is the DUT's own."""
    dut = SplitInstrument()
    try:
        with Rig(audio_inputs=1) as rig:
            rig.connect(midi_to=rig.find_port(rf"^{re.escape(dut.midi.name)}:midi_in$"),
                        audio_from=[rig.find_port(rf"^{re.escape(dut.audio.name)}:out$")])
            assert rig.loop_frames() == 0
            last = None
            for attempt in range(8):
                xruns0, late0 = rig.xruns, rig.late_messages
                rng = random.Random(attempt)
                first = rig.now() + rig.rate // 10
                sched = [first + i * SPACING + rng.randrange(rig.period) for i in range(N_NOTES)]
                seqs = [rig.send(NOTE_ON, t) for t in sched]
                rig.wait_until(sched[-1] + SPACING)
                try:
                    rec = rig.recording(since_frame=sched[0] - rig.period)
                except RigGap as exc:
                    last = exc
                    continue
                if rig.xruns == xruns0 and rig.late_messages == late0:
                    break
                last = f"xruns {rig.xruns - xruns0}, late {rig.late_messages - late0}"
            else:
                pytest.fail(f"no clean run in 8 attempts: {last}")
            sent = [rig.sent_frame(q) for q in seqs]
            assert sent == sched
            onsets = [onset_frame(rec, t, 0.5, before_frame=t + SPACING - 1) for t in sent]
            m = measure(sent, onsets, loop_frames=rig.loop_frames())
            assert (m.median, m.jitter, m.missing) == (64, 0, 0)
            assert m.own_median == 64  # one period, the DUT's own: as from a hardware MIDI port
    finally:
        dut.close()


@pytest.mark.jack
def test_recording_detects_a_missed_cycle(own_jack):
    rig = Rig(audio_inputs=1, seconds=1.0)
    try:
        rig.activate()
        rig.wait_until(rig.now() + 8 * rig.period)
        rig.c.lib.jack_deactivate(rig.c.client)   # the ring is frozen from here on
        rig.c.active = False
        # Lay clean stamps over the last 8 periods (so a real startup glitch cannot interfere),
        # check them, then forge a missed cycle before the last two.
        stamps, slots = rig.c._stamps, rig.c.slots
        n = rig.c.cycles
        assert n >= 8
        idx = np.arange(n - 8, n) % slots
        base = int(stamps.max()) + 1000 * rig.period     # later than anything recorded
        stamps[idx] = base + rig.period * np.arange(8)
        start, audio = rig.recording(since_frame=base)
        assert start == base and len(audio) == 8 * rig.period
        last_two = idx[-2:]
        stamps[last_two] += rig.period
        with pytest.raises(RigGap):
            rig.recording()
        start, audio = rig.recording(since_frame=int(stamps[last_two[0]]))
        assert start == stamps[last_two[0]] and len(audio) == 2 * rig.period
    finally:
        rig.close()


@pytest.mark.jack
def test_find_ports(own_jack):
    with Rig(name="bandmate_rig", audio_inputs=2) as rig:
        me = rig.name  # "bandmate_rig", or "bandmate_rig-01" if another rig holds the name
        pre = f"^{re.escape(me)}:"
        assert rig.find_ports(pre + "in_", is_midi=False, is_input=True) == [
            f"{me}:in_1", f"{me}:in_2"]
        assert rig.find_ports(pre, is_midi=True) == [f"{me}:midi_out"]
        assert rig.find_ports(pre, is_input=False) == [f"{me}:midi_out"]
        assert rig.find_ports(pre, is_midi=False, is_input=False) == []
        with pytest.raises(RigError):
            rig.find_port(pre + "in_")


def test_onset_frame_and_measure():
    audio = np.zeros((1000, 2), dtype=np.float32)
    audio[100, 1] = -0.8
    audio[500, 0] = 0.9
    rec = (10_000, audio)
    assert onset_frame(rec, 10_000, 0.5) == 10_100
    assert onset_frame(rec, 10_000, 0.5, channel=0) == 10_500
    assert onset_frame(rec, 10_101, 0.5) == 10_500
    assert onset_frame(rec, 10_101, 0.5, before_frame=10_500) is None
    assert onset_frame(rec, 10_000, 0.95) is None
    m = measure([10, 20, 30, 40], [74, 84, None, 106], loop_frames=64)
    assert m.latencies.tolist() == [64, 64, 66]
    assert (m.median, m.jitter, m.min, m.max, m.missing, m.own_median) == (64, 2, 64, 66, 1, 0)


@pytest.mark.jack
def test_rig_in_freewheel_mode_is_exact_with_no_deadline(ref_instrument):
    """Freewheel: the server runs cycles back to back; nothing depends on the host's timing."""
    with Rig(audio_inputs=1) as rig:
        name = re.escape(ref_instrument.name)
        rig.connect(midi_to=rig.find_port(rf"^{name}:midi_in$"),
                    audio_from=[rig.find_port(rf"^{name}:out$")])
        xruns0 = rig.xruns
        with rig.freewheeling():
            scheduled, sent, onsets, arrivals, rec = _run_notes_freewheel(rig, ref_instrument,
                                                                          seed=99, why=None)
        assert rig.xruns == xruns0
        assert rig.late_messages == 0
        assert sent == scheduled and arrivals == sent
        m = measure(sent, onsets, loop_frames=rig.loop_frames())
        assert (m.median, m.jitter, m.missing, m.own_median) == (64, 0, 0, 0)
