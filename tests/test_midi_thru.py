"""MIDI thru (config [midi_out] thru) and the mapping's hold on CC 1/64/120/123.

Control side: the live input's own path (LiveInput.feed -> Mapper, Thru -> CaptureSink).
JACK-native: a real JACK server (dummy driver); MIDI goes into the engine's midi_in from the
frame-exact rig (tests.jackrig, sent at exact frames), the engine's midi_out is recorded by a
JACK-Client client (tests.test_midi_out_jack.Recorder), both in freewheel (no deadline: the
Python recorder cannot miss a cycle). rtmidi: real rtmidi ports on JACK's MIDI (a "keyboard"
port -> MidiInputs -> LiveInput -> thru -> RtMidiSender -> an rtmidi input).
"""
from __future__ import annotations

import time

import mido
import pytest

from engine.config import load_config
from engine.control.live_input import LiveInput
from engine.control.mapping import Mapper, Mapping
from engine.control.midi_out import CaptureSink, EngineSink, Thru, wanted
from engine.control.session import Session
from engine.rt import layout as L
from engine.rt.events import K_ALL_NOTES_OFF, K_MOD_WHEEL, K_SUSTAIN
from engine.tomldata import DataError
from tests.test_midi_out import sounding_after

SR = 48000
SUSTAIN_ON_CH1 = '[[cc]]\ncontrol = 64\nchannel = 1\naddress = "/keys/mix/pan"\npickup = false\n'


def _cfg(**midi_out):
    """The player alone (the band silent), [midi_out] as given."""
    return load_config("config.toml", environ={}, overrides={
        "midi_out": midi_out,
        "band": {p: False for p in ("drums", "bass", "chords", "lead")}})


def cc(control, value, channel=0):
    return mido.Message("control_change", channel=channel, control=control, value=value)


def on(note, channel=0, velocity=100):
    return mido.Message("note_on", channel=channel, note=note, velocity=velocity)


def off(note, channel=0):
    return mido.Message("note_off", channel=channel, note=note, velocity=0)


class Player:
    """A session with thru on (captured), its live input, optionally a mapping; every event
    the input pushes to the engine's MIDI queue is kept."""

    def __init__(self, mapping: str | None = None, **midi_out):
        self.session = Session(_cfg(thru=True, **midi_out), SR, demo=False)
        self.cap = CaptureSink()
        self.session.midi_out.attach(self.cap)
        self.live = LiveInput(self.session.state, "asap", log=lambda s: None)
        self.live.thru = self.session.midi_out.thru
        if mapping is not None:
            self.live.mapper = self.session.mapper = Mapper(
                self.session, Mapping.parse(mapping, session=self.session), log=lambda s: None)
        self.pushed = []
        push = self.session.state.push_midi

        def keep(*row):
            self.pushed.append(row)
            return push(*row)

        self.session.state.push_midi = keep

    def feed(self, *msgs, source=1):
        for m in msgs:
            self.live.feed(m, source)

    def echoed(self) -> list[bytes]:
        return [m for _, m in self.cap.messages()]


# ---- configuration ----------------------------------------------------------------------------

def test_thru_is_off_by_default_and_its_channel_is_checked():
    cfg = _cfg()
    assert cfg["midi_out"]["thru"] is False and not wanted(cfg)
    assert Session(cfg, SR, demo=False).midi_out is None
    on_cfg = _cfg(thru=True, thru_channel=5)
    assert wanted(on_cfg)
    thru = Session(on_cfg, SR, demo=False).midi_out.thru
    assert isinstance(thru, Thru) and thru.channel == 5
    for bad in (17, -1, "5", True):
        with pytest.raises(DataError, match="thru_channel"):
            _cfg(thru=True, thru_channel=bad)
    with pytest.raises(DataError, match="thru"):
        _cfg(thru="yes")


# ---- control side -----------------------------------------------------------------------------

def test_thru_echoes_notes_controls_and_bend_but_not_program_change_or_clock():
    p = Player()
    msgs = [on(60), cc(1, 50), mido.Message("pitchwheel", pitch=-4096),
            mido.Message("aftertouch", value=30), mido.Message("polytouch", note=60, value=9),
            cc(64, 127), off(60), cc(64, 0), on(62, channel=9), off(62, channel=9)]
    p.feed(mido.Message("program_change", program=3), mido.Message("clock"), *msgs)
    assert p.echoed() == [bytes(m.bytes()) for m in msgs]
    assert sounding_after([(0, m) for m in p.echoed()]) == {}


def test_thru_channel_puts_every_message_on_that_channel():
    p = Player(thru_channel=3)
    p.feed(on(60, channel=0), on(61, channel=9), cc(7, 100, channel=4), off(60), off(61, 9))
    assert [m[0] for m in p.echoed()] == [0x92, 0x92, 0xB2, 0x82, 0x82]
    assert [m[1] for m in p.echoed()] == [60, 61, 7, 60, 61]


def test_a_mapped_sustain_is_the_mappings_alone_an_unmapped_one_still_sustains():
    """One decoder, one behaviour (the rtmidi / PortAudio path): CC 64 on channel 1 is bound
    to /keys/mix/pan, so it moves the pan and neither sustains nor goes thru; CC 64 on
    channel 2 (unmapped) sustains and goes thru. The mapping also tells the JACK callback."""
    p = Player(SUSTAIN_ON_CH1)
    pan0 = p.session.value("/keys/mix/pan")
    p.feed(on(60), cc(64, 127), off(60))
    assert p.session.value("/keys/mix/pan") == pytest.approx(1.0) != pan0
    assert [r[1] for r in p.pushed].count(K_SUSTAIN) == 0
    assert b"\xB0\x40\x7F" not in p.echoed()
    p.feed(on(62, channel=1), cc(64, 127, channel=1), cc(1, 64, channel=0), cc(123, 0))
    kinds = [r[1] for r in p.pushed]
    assert kinds.count(K_SUSTAIN) == 1 and K_MOD_WHEEL in kinds and K_ALL_NOTES_OFF in kinds
    assert b"\xB1\x40\x7F" in p.echoed()
    mask = p.session.state.ctl[L.C_CC_MAPPED:L.C_CC_MAPPED + 32]
    assert mask[1] == 1 and not mask[0] and not any(mask[2:])    # channel 1, control 64
    assert p.session.mapper.binds_cc(1, 64) and not p.session.mapper.binds_cc(2, 64)
    p.session.mapper.set_mapping(Mapping())                       # a reload: all unbound
    assert not any(p.session.state.ctl[L.C_CC_MAPPED:L.C_CC_MAPPED + 32])


def test_a_14_bit_binding_takes_its_lsb_and_any_channel_bindings_take_every_channel():
    p = Player('[[cc]]\ncontrol = 1\nbits = 14\naddress = "/keys/mix/pan"\n'
               '[[cc]]\ncontrol = 64\naddress = "/keys/mix/gain_db"\n')
    mask = p.session.state.ctl[L.C_CC_MAPPED:L.C_CC_MAPPED + 32]
    for ch in range(16):        # 1 (the mod wheel) and its LSB 33, and 64, on every channel
        assert mask[2 * ch] == (1 << 1) | (1 << 33) and mask[2 * ch + 1] == 1
    p.feed(cc(64, 127, channel=5), cc(1, 127, channel=7), cc(33, 5, channel=7))
    assert not [r for r in p.pushed if r[1] in (K_SUSTAIN, K_MOD_WHEEL)]
    assert p.echoed() == []
    p.feed(cc(2, 5, channel=7))
    assert p.echoed() == [b"\xB7\x02\x05"]


def test_panic_stop_and_unplug_end_what_thru_left_sounding():
    p = Player()
    p.feed(on(60), on(64), cc(64, 127), source=1)
    p.feed(on(67, channel=2), source=2)
    p.live.source_gone(1)                       # source 1 unplugged: its notes and pedal
    tail = p.echoed()[4:]
    assert tail == [b"\xB0\x40\x00", b"\x80\x3C\x00", b"\x80\x40\x00"]
    assert sounding_after([(0, m) for m in p.echoed()]) == {2: {67: 1}}
    p.session.panic()
    assert p.echoed()[-1] == b"\x82\x43\x00"
    assert sounding_after([(0, m) for m in p.echoed()]) == {}
    n = len(p.echoed())
    p.session.panic()                           # nothing left: nothing more
    assert len(p.echoed()) == n
    p.feed(on(70), source=3)
    p.session.set("/transport/playing", 0.0)    # the transport stops: thru notes end too
    assert p.echoed()[-1] == b"\x80\x46\x00"


def test_garbage_changes_nothing():
    p = Player()
    t = p.live.thru
    for data in (b"", b"\x90", b"\x90\x3C", b"\xC0\x05", b"\xF8", b"\x3C\x40\x40",
                 b"\xF0\x01\x02\xF7", b"\xD0"):
        t.feed(data, 1)
    assert p.echoed() == []
    t.feed(b"\xD0\x20", 1)                      # channel pressure: two bytes
    assert p.echoed() == [b"\xD0\x20"]


def test_engine_sink_sets_and_releases_the_callbacks_thru():
    s = Session(_cfg(thru=True, thru_channel=0), SR, demo=False)
    s.midi_out.attach(EngineSink(s.state))
    assert s.state.ctl[L.C_THRU] == 17
    s.panic()
    assert s.state.ctl[L.C_THRU_REQ] == 1
    s2 = Session(_cfg(thru=True, thru_channel=16), SR, demo=False)
    s2.midi_out.attach(EngineSink(s2.state))
    assert s2.state.ctl[L.C_THRU] == 16


# ---- JACK-native ------------------------------------------------------------------------------

def _jack_session(name, mapping=None, **midi_out):
    from engine.control.warmup import warm_up
    from engine.drivers.jack import JackClient
    warm_up(("jack",))
    client = JackClient(name, midi_out=True)
    session = Session(_cfg(**midi_out), client.sample_rate, demo=False)
    if session.midi_out is not None:
        session.midi_out.attach(EngineSink(session.state))
    if mapping is not None:
        session.mapper = Mapper(session, Mapping.parse(mapping, session=session),
                                log=lambda s: None)
    return client, session


def _wait(cond, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


@pytest.mark.jack
def test_jack_thru_echoes_at_the_frame_sent_and_a_panic_or_unplug_ends_it(jack_server):
    """Freewheel: every channel message sent into midi_in leaves midi_out on the thru
    channel at the very frame it came in (one period after it, in the world: the period's
    output), program change excepted; a panic (the control side's release) ends the notes and
    sustain thru left, and so does pulling the cable."""
    from tests.jackrig import Rig
    from tests.test_midi_out_jack import Recorder
    client, session = _jack_session("bm_thru", thru=True, thru_channel=4)
    rec = Recorder("bm_thru_rec")
    try:
        client.start(session.state)
        midi_in = client.port_name(client.midi_in)
        rec.client.connect(client.port_name(client.midi_out), rec.port.name)
        with Rig(seconds=30) as rig:
            rig.connect(midi_in)
            rig.hold()
            sent = [b"\x90\x3C\x64", b"\xB0\x01\x20", b"\xE0\x00\x50", b"\xC0\x07",
                    b"\x91\x40\x50", b"\xB1\x40\x7F", b"\x80\x3C\x00", b"\xD1\x11",
                    b"\xF8", b"\x9F\x43\x70"]
            frames = [100 + 37 * i + (i // 3) * 64 for i in range(len(sent))]
            for m, f in zip(sent, frames):
                rig.send(m, f)
            with rig.freewheeling():
                rig.arm()
                t = rig.anchor()
                rig.wait_until(t + frames[-1] + 4800, timeout=30)
                echo = [(s, m) for s, m in zip(range(len(sent)), sent)
                        if m[0] & 0xF0 not in (0xC0, 0xF0)]
                _wait(lambda: len(rec.events) >= len(echo), 10, "the thru messages")
                got = list(rec.events)
                assert [m for _, m in got] == [bytes([m[0] & 0xF0 | 3]) + m[1:]
                                               for _, m in echo]
                assert [f for f, _ in got] == [rig.sent_frame(s) for s, _ in echo]
                assert sounding_after(got) == {3: {0x40: 1, 0x43: 1}}
                session.panic()                 # sustain up, then the held notes' note-offs
                _wait(lambda: len(rec.events) >= len(echo) + 3, 10, "the panic's note-offs")
                assert [m for _, m in rec.events[len(echo):]] == [
                    b"\xB3\x40\x00", b"\x83\x40\x00", b"\x83\x43\x00"]
                n = len(rec.events)
                rel = rig.recorded_until() - t + 4800
                rig.send(b"\x92\x30\x64", rel)
                rig.send(b"\xB2\x40\x7F", rel + 10)
                _wait(lambda: len(rec.events) >= n + 2, 10, "the new note")
                rig.disconnect_ports(rig.midi_out, midi_in)     # the cable is pulled
                _wait(lambda: len(rec.events) >= n + 4, 10, "the unplug's note-offs")
                assert [m for _, m in rec.events[n:]] == [
                    b"\x93\x30\x64", b"\xB3\x40\x7F", b"\xB3\x40\x00", b"\x83\x30\x00"]
                assert sounding_after(rec.events) == {}
        assert session.state.ctl[L.C_MOUT_DROPPED] == 0
    finally:
        rec.close()
        client.close()


@pytest.mark.jack
def test_jack_mapped_sustain_does_not_sustain_but_moves_its_parameter(jack_server):
    """The JACK callback applies CC 64 itself, sample-accurately, unless the mapping binds it:
    then only the mapping's action happens (the pan moves; the note is not held). On another
    channel the same pedal still sustains. (Waits count engine samples, not wall time.)"""
    from engine.control.live import LiveRun
    from tests.jackrig import Rig
    client, session = _jack_session("bm_cc_map", SUSTAIN_ON_CH1)
    run = LiveRun(session, client, log=lambda s: None)
    state = session.state

    def play(rig, msgs):
        """Send `msgs` a period apart, wait until all went out, then 1.5 s of engine samples
        (the keys' release is 0.35 s)."""
        t = rig.now() + 2400
        seqs = [rig.send(m, t + 64 * i) for i, m in enumerate(msgs)]
        _wait(lambda: rig.sent_frame(seqs[-1]) >= 0, 10, "the rig to send")
        until = state.sample_time + 3 * 64 + int(1.5 * SR)
        _wait(lambda: state.sample_time >= until, 20, "the engine to play on")

    try:
        client.start(state)
        pan0 = session.value("/keys/mix/pan")
        with Rig(seconds=30) as rig:
            rig.connect(client.port_name(client.midi_in))
            play(rig, [b"\x90\x3C\x64", b"\xB0\x40\x7F", b"\x80\x3C\x00"])   # channel 1
            assert state.counters()["voices"] == 0, "the mapped pedal sustained the note"
            _wait(lambda: (run._drain_reports(), session.value("/keys/mix/pan"))[1] != pan0,
                  5, "the mapped action")
            assert session.value("/keys/mix/pan") == pytest.approx(1.0)
            play(rig, [b"\x91\x3E\x64", b"\xB1\x40\x7F", b"\x81\x3E\x00"])   # channel 2
            assert state.counters()["voices"] == 1, "the unmapped pedal did not sustain"
            play(rig, [b"\xB1\x40\x00"])
            assert state.counters()["voices"] == 0
    finally:
        client.close()
    assert state.counters()["midi_dropped"] == 0


# ---- rtmidi ----------------------------------------------------------------------------------

@pytest.mark.jack
def test_rtmidi_thru_echoes_through_real_ports_and_ends_notes_on_unplug_and_panic(
        jack_server):
    """Another driver's path: a keyboard's rtmidi port -> MidiInputs -> the live input ->
    thru -> the rtmidi sender's virtual port -> an rtmidi input: every message, in order, the
    mapped pedal excepted; the keyboard unplugged: its held note ends; a panic ends the rest."""
    import rtmidi

    from controllers.midi_in import MidiInputs
    from engine.control.midi_out import RtMidiSender, open_rtmidi_out
    from tests.test_midi_jack import Sender
    p = Player(SUSTAIN_ON_CH1)
    port = open_rtmidi_out("jack", "")
    sender = RtMidiSender(port, p.session.state)
    p.session.midi_out.attach(sender)
    inp = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="bm_thru_in")
    kbd, kbd2 = Sender("bm_thru_kbd"), Sender("bm_thru_kbd2")
    received = []

    def take(n, what):
        def more():
            msg = inp.get_message()
            while msg is not None:
                received.append(bytes(msg[0]))
                msg = inp.get_message()
            return len(received) >= n
        _wait(more, 10, what)

    try:
        ours = [i for i, n in enumerate(inp.get_ports()) if n.endswith(":bandmate out")]
        assert len(ours) == 1, inp.get_ports()
        inp.open_port(ours[0])
        probe = MidiInputs(p.live, api="jack", ports=[])
        names = [kbd.full_name(probe), kbd2.full_name(probe)]
        probe.close()
        with MidiInputs(p.live, api="jack", ports=names) as inputs:
            time.sleep(0.05)
            msgs = [on(60), cc(64, 127), cc(1, 90), mido.Message("pitchwheel", pitch=1000),
                    on(64, channel=1)]
            for m in msgs:
                kbd.send(m)
            kbd2.send(on(72, channel=2))
            want = [bytes(m.bytes()) for m in msgs if m.type != "control_change"
                    or m.control != 64] + [b"\x92\x48\x64"]
            take(len(want), "the thru messages")
            assert sorted(received) == sorted(want)
            assert [m for m in received if m != b"\x92\x48\x64"] == want[:-1]
            assert p.session.value("/keys/mix/pan") == pytest.approx(1.0)
            kbd.close()                          # the first keyboard is unplugged
            _wait(lambda: inputs.poll_ports() is not None and len(inputs.sources) == 1, 5,
                  "the port to go")
            take(len(want) + 2, "the unplug's note-offs")
            assert sorted(received[len(want):]) == [b"\x80\x3C\x00", b"\x81\x40\x00"]
            p.session.panic()
            take(len(want) + 3, "the panic's note-off")
            assert received[-1] == b"\x82\x48\x00"
            assert sounding_after([(0, m) for m in received]) == {}
    finally:
        sender.close(drain_s=0.2)
        inp.delete()
        port.delete()
        kbd.close()
        kbd2.close()
