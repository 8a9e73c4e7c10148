"""MIDI out, clock out and JACK MIDI in → control side, through a real JACK server (dummy
driver, 48 kHz, 64 frames).

The JACK-native engine's midi_out is recorded by a JACK-Client (python) client, each message at
its absolute frame; engine samples are frames minus the engine's frame offset. What does not
depend on wall-clock time runs in freewheel (no deadline: the Python recorder cannot miss a
cycle); the engine starts `LEAD_IN` samples before the session's sample 0, so the recorder is
connected before the first message. The rtmidi path is checked for content and order (its
timing is the host's: figures are printed, not asserted).
"""
from __future__ import annotations

import functools
import time
from fractions import Fraction

import jack
import numpy as np
import pytest
import rtmidi

from engine.control.live import LiveRun
from engine.control.midi_out import (PPQN, START, STOP, TICK, CaptureSink, EngineSink,
                                     RtMidiSender, open_rtmidi_out)
from engine.control.session import Session
from engine.control.warmup import warm_up
from engine.rt import layout as L
from tests import latencykit as lk
from tests.jackrig import Rig
from tests.test_midi_out import ROUTED, sounding_after

pytestmark = pytest.mark.jack

LEAD_IN = 24000


from tests.test_midi_out import _cfg  # noqa: E402  (a jam, every agent playing)


class Recorder:
    """A JACK-Client client with one MIDI input: every message with its absolute frame, and
    the first frame of every cycle (to see a missed one)."""

    def __init__(self, name="bm_mout_rec"):
        self.client = jack.Client(name, no_start_server=True)
        self.port = self.client.midi_inports.register("in")
        self.events: list[tuple[int, bytes]] = []
        self.cycles: list[int] = []

        @self.client.set_process_callback
        def process(frames):
            base = self.client.last_frame_time
            self.cycles.append(base)
            for offset, data in self.port.incoming_midi_events():
                self.events.append((base + offset, bytes(data)))

        self.client.activate()

    def gapless(self, since: int | None = None, until: int | None = None) -> bool:
        """No cycle missed between the frames `since` and `until` (default: all recorded)."""
        c = np.array(self.cycles)
        if since is not None:
            c = c[c >= since - self.client.blocksize]
        if until is not None:
            c = c[c <= until]
        steps = np.diff(c)
        return bool(len(steps)) and bool(np.all(steps == self.client.blocksize))

    def close(self):
        self.client.deactivate()
        self.client.close()


def rig_retry(test):
    """Run a recording test again (up to 3 times) when the host made the recorder miss a
    cycle of the span it checks (RigGap: the VM's stolen time, not the engine)."""
    @functools.wraps(test)
    def run(*args, **kw):
        for attempt in range(3):
            try:
                return test(*args, **kw)
            except lk.RigGap:
                if attempt == 2:
                    raise
    return run


def _engine(cfg, name):
    from engine.drivers.jack import JackClient
    warm_up(("jack",))
    client = JackClient(name, midi_out=True)
    session = Session(cfg, client.sample_rate, demo=False)
    session.midi_out.attach(EngineSink(session.state))
    session.state.ctl[L.C_SAMPLE_TIME] = -LEAD_IN     # silence first: time to connect
    return client, session


def _record(client, session, until: int, freewheel: bool = True, control=None):
    """Run the engine (its session already advanced, or `control` advancing it) and record its
    midi_out until engine sample `until`; returns [(engine sample, bytes)]."""
    rec = Recorder()
    try:
        client.start(session.state)
        rec.client.connect(client.port_name(client.midi_out), rec.port.name)
        assert session.state.sample_time < 0, "the lead-in ran out before the connection"
        if freewheel:
            rec.client.set_freewheel(True)
        if control is not None:
            control.start()
        deadline = time.monotonic() + 60
        while session.state.sample_time < until + 4800:
            assert time.monotonic() < deadline, "the engine did not get there"
            time.sleep(0.01)
        if control is not None:         # its last messages (the end's), then a few blocks
            control.join(timeout=30)
            last = session.state.sample_time
            while session.state.sample_time < last + 4800:
                assert time.monotonic() < deadline, "the engine stopped"
                time.sleep(0.01)
        if freewheel:
            rec.client.set_freewheel(False)
        time.sleep(0.05)
        offset = int(session.state.ctl[L.C_FRAME_OFFSET])
        events = [(f - offset, m) for f, m in rec.events]
        gapless = rec.gapless(since=offset)     # a cycle missed in the lead-in is harmless
    finally:
        if control is not None:
            control.join(timeout=10)
        rec.close()
        client.close()
    if not gapless:
        raise lk.RigGap("the recorder missed a cycle")
    return events


@rig_retry
def test_jack_midi_out_plays_the_routed_parts_at_the_scheduled_samples(jack_server):
    """Freewheel: the routed parts' notes leave midi_out at exactly the samples (and with the
    channels and velocities) the scheduler stamped: the same list as the session's own rows
    computed without any audio; nothing late, nothing dropped, nothing left sounding."""
    n = 6 * 48000
    cfg = _cfg(**ROUTED)
    ref = Session(cfg, 48000, demo=False)
    cap = CaptureSink()
    ref.midi_out.attach(cap)
    ref.advance(n)
    want = [(int(t), m) for t, m in cap.messages() if t < n]
    client, live = _engine(cfg, "bm_mout")
    live.advance(n)
    got = _record(client, live, n)
    got = [(t, m) for t, m in got if t < n]
    assert len(want) > 40
    assert got == want
    c = live.state.ctl
    assert c[L.C_MOUT_LATE] == 0 and c[L.C_MOUT_DROPPED] == 0 and c[L.C_MOUT_SENT] >= len(want)
    assert {m[0] for _, m in got} >= {0x91, 0x81, 0x92, 0x82, 0x99, 0x89}


@rig_retry
def test_jack_clock_out_is_24_ppqn_exact_across_a_tempo_change(jack_server):
    n = 6 * 48000
    client, live = _engine(_cfg(clock=True), "bm_mout_clock")
    live.advance(3 * 48000)
    live.set_tempo(150.0)
    live.advance(n)
    live.midi_out.stop_clock()
    got = _record(client, live, n + 48000)
    assert got[0] == (0, bytes([START])) and got[1] == (0, bytes([TICK]))
    ticks = [t for t, m in got if m == bytes([TICK])]
    assert ticks == [live.clock.sample_at(Fraction(k, PPQN)) for k in range(len(ticks))]
    spacing = np.diff(ticks)
    exact = np.array([60 * 48000 / (float(live.clock._segment_for_beat(
        Fraction(k, PPQN)).bpm) * PPQN) for k in range(len(ticks) - 1)])
    assert np.abs(spacing - exact).max() <= 1.0
    assert len(set(np.round(exact))) == 2                 # both tempi were played
    stop = [(t, m) for t, m in got if m == bytes([STOP])]
    assert stop == [(live.clock.sample_at(Fraction(len(ticks), PPQN)), bytes([STOP]))]
    assert got[-1][1] == bytes([STOP])
    assert live.state.ctl[L.C_MOUT_LATE] == 0


def _cut_script(session):
    """Schedule 1.5 s, a panic at 1.2 s (what was queued after it is dropped), schedule on to
    3 s, then the end at 3 s: clock Stop and every part cut."""
    session.advance(72000)
    session.midi_out.cut_all(at=57600)
    session.advance(3 * 48000)
    session.midi_out.stop_clock()
    session.midi_out.cut_all(at=3 * 48000)


@rig_retry
def test_jack_midi_out_panic_and_stop_leave_no_note_sounding(jack_server):
    """Freewheel: a panic mid-song and the end, each at its sample: the recording equals the
    session's own list; at each All Notes Off every note of its channel has had its note-off
    already, nothing sounds at the end, and the clock's last message is Stop. Then the
    session's release_all (at once, from the next block) ends what a new note started."""
    cfg = _cfg(clock=True, **ROUTED)
    ref = Session(cfg, 48000, demo=False)
    cap = CaptureSink()
    ref.midi_out.attach(cap)
    _cut_script(ref)
    want = [(int(t), m) for t, m in cap.messages()]
    client, live = _engine(cfg, "bm_mout_panic")
    _cut_script(live)
    got = _record(client, live, 4 * 48000)
    assert got == want
    for i, (t, m) in enumerate(got):
        if m[0] & 0xF0 == 0xB0 and m[1] == 123:
            assert sounding_after(got[:i]).get(m[0] & 0x0F) is None, (t, m)
    assert sounding_after(got) == {}
    cuts = [t for t, m in got if m[0] & 0xF0 == 0xB0 and m[1] == 123]
    assert cuts == [57600] * 3 + [3 * 48000] * 3                    # 3 channels, twice
    assert sounding_after([(t, m) for t, m in got if t < 57600]), "nothing sounded at the cut"
    assert [m for _, m in got if m[0] >= 0xF8][-1] == bytes([STOP])
    assert live.state.ctl[L.C_MOUT_LATE] == 0


def test_jack_session_release_all_ends_notes_at_once(jack_server):
    """The session's release_all while the JACK engine plays a held note on MIDI out: its
    note-off and All Notes Off go out from the next period, not at the note's own end."""
    got, t, released = lk.retry(_release_run)
    assert got[0] == (t, bytes([0x91, 40, round(0.8 * 127)]))
    assert [m for _, m in got[1:]] == [bytes([0x81, 40, 0]), bytes([0xB1, 123, 0])]
    assert released <= got[1][0] == got[2][0] < t + LONG


LONG = 600 * 48000


def _release_run():
    from engine.rt.events import K_NOTE_OFF, K_NOTE_ON
    cfg = _cfg(bass={"channel": 2, "internal": False})
    cfg["band"].update(drums=False, bass=False, chords=False, lead=False)
    client, live = _engine(cfg, "bm_mout_release")
    rec = Recorder()
    try:
        client.start(live.state)
        rec.client.connect(client.port_name(client.midi_out), rec.port.name)
        rec.client.set_freewheel(True)
        t = max(live.state.sample_time, 0) + 9600
        rows = np.zeros((2, 8))
        rows[0, :6] = (t, K_NOTE_ON, 1, 40, 0.8, 2001)
        rows[1, :6] = (t + LONG, K_NOTE_OFF, 1, 40, 0.0, 2001)     # 10 minutes later
        live._send(rows)            # as the scheduler sends the band's notes
        deadline = time.monotonic() + 10
        while not rec.events and time.monotonic() < deadline:
            time.sleep(0.001)
        live.release_all()
        released = live.state.sample_time
        while len(rec.events) < 3 and time.monotonic() < deadline:
            time.sleep(0.001)
        rec.client.set_freewheel(False)
        offset = int(live.state.ctl[L.C_FRAME_OFFSET])
        gapless = rec.gapless()
    finally:
        rec.close()
        client.close()
    if not gapless:
        raise lk.RigGap("the recorder missed a cycle")
    return [(f - offset, m) for f, m in rec.events], t, released


def test_rtmidi_out_sends_the_same_messages_in_order(jack_server):
    """Another driver's path: the sender thread, on an rtmidi output port (JACK API), timed
    from the running engine's clock anchor; an rtmidi input receives every message, in order,
    the same as the session's list (a JACK recorder on the same port tells a receiver's fault
    from the sender's)."""
    lk.retry(_rtmidi_run)


def _rtmidi_run():
    from engine.drivers.jack import JackClient
    warm_up(("jack",))
    cfg = _cfg(clock=True, **ROUTED)
    end = 2 * 48000
    ref = Session(cfg, 48000, demo=False)
    cap = CaptureSink()
    ref.midi_out.attach(cap)
    ref.advance(end)
    want = [m for t, m in cap.messages() if t < end]
    want_t = [t for t, m in cap.messages() if t < end]
    port = open_rtmidi_out("jack", "")
    inp = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="bm_mout_in")
    inp.ignore_types(sysex=False, timing=False, active_sense=False)
    names = inp.get_ports()
    ours = [i for i, p in enumerate(names) if p.endswith(":bandmate out")]
    assert len(ours) == 1, names
    inp.open_port(ours[0])
    # a second, independent receiver: a JACK-Client recorder (its Python callback can miss a
    # cycle on a busy host, which it shows; rtmidi's C input cannot, but its own queue once
    # handed over a corrupted message): the two together tell a host's fault from the sender's
    rec = Recorder("bm_mout_rtrec")
    client = JackClient("bm_mout_rt")           # audio only: the clock anchor
    try:
        rec.client.connect(rec.client.get_ports(name_pattern="bandmate out$", is_midi=True,
                                                is_output=True)[0], rec.port)
        live = Session(cfg, client.sample_rate, demo=False)
        sender = RtMidiSender(port, live.state)
        live.midi_out.attach(sender)
        live.advance(0)
        client.start(live.state)
        received = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < 20 and len(received) < len(want):
            now = live.state.sample_time
            if now < end:
                live.advance(now)
            msg = inp.get_message()
            while msg is not None:
                received.append(msg)
                msg = inp.get_message()
            time.sleep(0.002)
        time.sleep(0.05)
        sender.close(drain_s=0)
        recorded = [m for _, m in rec.events]
        gapless = rec.gapless()
    finally:
        client.close()
        rec.close()
        inp.delete()
        port.delete()
    if sender.stats["behind"]:      # messages handed over after their time: the host starved
        raise lk.RigGap("the control thread fell behind")      # this thread; measure again
    got = [bytes(m) for m, _ in received][:len(want)]
    if got != want:
        # the sender's fault only if the independent recorder, missing no cycle, saw it too
        assert not (gapless and recorded[:len(want)] != want), (recorded, want)
        raise lk.RigGap("a receiver lost or garbled a message the other had right")
    assert len(want) > 40
    # timing (the host's: reported, not asserted)
    deltas = np.array([d for _, d in received[1:len(want)]])
    exact = np.diff(want_t) / 48000
    err = np.abs(np.cumsum(deltas) - np.cumsum(exact)) * 48000
    late = np.array(sender.lateness_ns) / 1e6
    print(f"\nrtmidi out: {len(want)} messages; sender lateness median {np.median(late):.3f} "
          f"ms, p99 {np.percentile(late, 99):.3f} ms; arrival vs scheduled drift max "
          f"{err.max() / 48:.2f} ms (JACK period {64 / 48:.2f} ms)")


MAPPING = """
[[cc]]
control = 74
address = "/keys/synth/cutoff_hz"
min = 200.0
max = 8000.0
pickup = false

[[program]]
address = "/keys/mix/pan"
"""


def test_jack_midi_in_controls_reach_the_mapper_and_realtime_the_hook(jack_server):
    """CC and program change sent into the JACK driver's midi_in move the mapped parameters
    (through LiveRun's report drain); clock, start, song position... reach on_realtime with
    their exact sample times; garbage changes nothing and is counted."""
    from engine.control.mapping import Mapper, Mapping
    from engine.drivers.jack import JackClient
    warm_up(("jack",))
    client = JackClient("bm_min_map")
    try:
        session = Session(_cfg(), client.sample_rate)
        session.mapper = Mapper(session, Mapping.parse(MAPPING, session=session),
                                log=lambda s: None)
        run = LiveRun(session, client, log=lambda s: None)
        realtime = []
        run.on_realtime = lambda status, data, t: realtime.append((status, data, t))
        client.start(session.state)
        cutoff0 = session.value("/keys/synth/cutoff_hz")
        pan0 = session.value("/keys/mix/pan")
        with Rig(seconds=30) as rig:
            rig.connect(client.port_name(client.midi_in))
            garbage = [b"\xB0\x4A", b"\xB0\x4A\xC8", b"\xC0", b"\xF2\x10", b"\x4A\x40",
                       b"\xF2\x90\x01", b"\xF0" + bytes(range(40)) + b"\xF7", b"\xE0\x7F",
                       b"\xF4", b"\xFE"]
            t = rig.now() + 4800
            for i, g in enumerate(garbage):
                rig.send(g, t + 64 * i)
            rig.wait_until(t + 64 * len(garbage) + 4800)
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                run._drain_reports()
                time.sleep(0.01)
            assert session.value("/keys/synth/cutoff_hz") == cutoff0
            assert session.value("/keys/mix/pan") == pan0 and realtime == []
            assert session.state.counters()["midi_dropped"] >= 6
            good = [b"\xB0\x4A\x7F", b"\xC0\x7F", b"\xE0\x00\x60", b"\xFA", b"\xF8", b"\xF8",
                    b"\xFC", b"\xF2\x10\x01", b"\xFB"]
            t = rig.now() + 4800
            frames = [t + 100 * i + 7 * i for i in range(len(good))]
            for g, f in zip(good, frames):
                rig.send(g, f)
            rig.wait_until(frames[-1] + 4800)
            offset = int(session.state.ctl[L.C_FRAME_OFFSET])
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and (
                    session.value("/keys/synth/cutoff_hz") == cutoff0 or len(realtime) < 6):
                run._drain_reports()
                time.sleep(0.01)
            sent = [rig.sent_frame(k) for k in range(len(garbage), len(garbage) + len(good))]
    finally:
        client.close()
    assert session.value("/keys/synth/cutoff_hz") == pytest.approx(8000.0)
    assert session.value("/keys/mix/pan") == pytest.approx(1.0)
    assert [(s, d) for s, d, _ in realtime] == [(0xFA, b""), (0xF8, b""), (0xF8, b""),
                                                (0xFC, b""), (0xF2, b"\x10\x01"), (0xFB, b"")]
    assert [t for _, _, t in realtime] == [f - offset for f in sent[3:]]


def test_a_live_run_starts_the_clock_and_ends_with_stop_and_nothing_sounding(jack_server):
    """A whole LiveRun on the JACK driver (real time, its own asyncio scheduling): Start with
    the first tick, the routed parts' notes, and at the end the clock's Stop and every note
    ended (All Notes Off on each channel used). Every message the callback wrote is
    recorded (else the run is measured again)."""
    got = lk.retry(_live_run)
    # (real time: an xrun shifts frames against samples by whole periods, so sample times
    # are exact only in the freewheel tests above)
    clock = [(t, m) for t, m in got if m[0] >= 0xF8]
    assert got[0][1] == bytes([START])          # before the first beat's notes
    assert clock[:2] == [(clock[0][0], bytes([START])), (clock[0][0], bytes([TICK]))]
    clock = [m for _, m in clock]
    assert clock[-1] == bytes([STOP]) and clock.count(bytes([STOP])) == 1
    assert len(clock) > 24 * 2
    assert {m[0] & 0xF0 for _, m in got} >= {0x90, 0x80, 0xB0}
    assert sounding_after(got) == {}
    ends = {m[0] & 0x0F for _, m in got if m[0] & 0xF0 == 0xB0 and m[1] == 123}
    assert ends == {1, 2, 9}


def _live_run():
    import asyncio
    import sys
    client, live = _engine(_cfg(clock=True, **ROUTED), "bm_mout_liverun")
    rec = Recorder()
    try:
        client.start(live.state)
        rec.client.connect(client.port_name(client.midi_out), rec.port.name)
        run = LiveRun(live, client, log=lambda s: None)
        switch = sys.getswitchinterval()
        sys.setswitchinterval(0.0002)       # as `bandmate jam` does: the recorder's callback
        try:                                # is Python, it must get the GIL within a period
            asyncio.run(run.run(1.5))       # ends with shutdown(): it closes the client
        finally:
            sys.setswitchinterval(switch)
        offset = int(live.state.ctl[L.C_FRAME_OFFSET])
        time.sleep(0.05)
    finally:
        rec.close()
        client.close()
    sent = int(live.state.ctl[L.C_MOUT_SENT])
    if len(rec.events) != sent or live.state.counters()["late_events"]:
        # the host made the (Python) recorder miss a cycle, or the scheduling thread late
        raise lk.RigGap(f"recorded {len(rec.events)} of {sent} messages, "
                        f"{live.state.counters()['late_events']} late events")
    return [(f - offset, m) for f, m in rec.events]
