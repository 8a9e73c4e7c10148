"""Controllers without hardware: byte decoding, MidiInputs on the fake backend, the computer keyboard."""
from __future__ import annotations

import asyncio
import io
import os

import mido
import pytest

from controllers.base import DEFAULT_ACCEPT, MidiDecodeError, Sink, decode_midi
from controllers.fake import FakeBackend, RecordingSink
from controllers.keyboard import KeyHold, TerminalKeyboard, key_to_note
from controllers.midi_in import MidiInputs, open_backend

# --- key_to_note --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ch, octave, note",
    [("a", 4, 60), ("w", 4, 61), ("d", 4, 64), ("f", 4, 65), ("j", 4, 71), ("k", 4, 72),
     (";", 4, 76), ("'", 4, 77), ("A", 4, 60), ("a", 3, 48), ("a", -1, 0), ("a", 9, 120)],
)
def test_key_to_note_maps_the_two_rows_like_a_piano(ch, octave, note):
    assert key_to_note(ch, octave) == note


@pytest.mark.parametrize("ch, octave", [("q", 4), ("z", 4), ("x", 4), ("1", 4), (" ", 4),
                                        ("", 4), ("aw", 4), ("'", 9), ("a", 10)])
def test_key_to_note_is_none_for_other_keys_and_out_of_range(ch, octave):
    assert key_to_note(ch, octave) is None


# --- KeyHold: press-only key events -> note on/off ------------------------------------------


def hold_key(hold: KeyHold, key: str, note: int, t0: float, t1: float, delay: float, rate_hz: float):
    """A key held from t0 to t1 on a terminal with auto-repeat `delay` and `rate_hz`: returns
    [(time, on, note)] for every action, including releases checked every 10 ms until t1+1."""
    events = [t0] + [t0 + delay + i / rate_hz for i in range(int((t1 - t0 - delay) * rate_hz) + 1)
                     if t0 + delay + i / rate_hz <= t1]
    actions = []
    t = t0
    for te in events + [t1 + 1.0]:
        while t < te:  # the timer, every 10 ms
            actions += [(round(t, 3), False, n) for n in hold.expire(t)]
            t += 0.01
        if te <= t1:
            actions += [(te, on, n) for on, n in hold.press(key, note, te)]
    return actions


def test_a_tap_sounds_first_hold_s():
    hold = KeyHold(first_hold_s=0.35)
    assert hold.press("a", 60, 10.0) == [(True, 60)]
    assert hold.expire(10.34) == []
    assert hold.expire(10.35) == [60]
    assert hold.next_deadline() is None


def test_a_second_strike_of_a_sounding_key_retriggers():
    hold = KeyHold()
    hold.press("a", 60, 0.0)
    assert hold.press("a", 60, 0.25) == [(False, 60), (True, 60)]  # C C at 240 bpm
    assert hold.expire(0.25 + 0.34) == []


def test_a_held_key_sustains_after_the_repeat_delay_is_learnt():
    hold = KeyHold(first_hold_s=0.35)
    # X11 defaults: 660 ms delay, 25 Hz. The first hold has a gap: released at 0.35, re-struck at 0.66
    first = hold_key(hold, "a", 60, 0.0, 2.0, delay=0.66, rate_hz=25)
    ons = [a for a in first if a[1]]
    assert [a[0] for a in ons] == [0.0, 0.66]
    assert hold.repeat_delay_s == pytest.approx(0.66)
    # from now on: one note for as long as the key is held, released ~repeat_hold_s after
    second = hold_key(hold, "a", 60, 10.0, 12.0, delay=0.66, rate_hz=25)
    assert [(on, n) for _, on, n in second] == [(True, 60), (False, 60)]
    t_off = second[-1][0]
    last_repeat = 10.0 + 0.66 + int((2.0 - 0.66) * 25) / 25
    assert last_repeat + 0.14 <= t_off <= last_repeat + 0.17


def test_a_short_repeat_delay_is_learnt_too():
    hold = KeyHold(first_hold_s=0.35)
    first = hold_key(hold, "a", 60, 0.0, 1.0, delay=0.225, rate_hz=30)  # macOS-like
    assert [a[0] for a in first if a[1]] == [0.0, 0.225]  # one re-attack while learning
    second = hold_key(hold, "a", 60, 5.0, 6.0, delay=0.225, rate_hz=30)
    assert [(on, n) for _, on, n in second] == [(True, 60), (False, 60)]


def test_changing_octave_while_a_key_sounds_moves_the_note():
    hold = KeyHold()
    hold.press("a", 60, 0.0)
    assert hold.press("a", 72, 0.05) == [(False, 60), (True, 72)]
    assert hold.release_all() == [72]


def test_keyboard_handle_text_plays_octave_velocity_and_skips_escape_sequences():
    sink = RecordingSink()
    kb = TerminalKeyboard(sink, out=io.StringIO())
    kb.handle_text("a", 0.0)
    kb.handle_text("\x1b[A\x1bOD", 1.0)  # arrow keys: nothing ('A', 'D' inside are not keys)
    kb.handle_text("xvk", 2.0)           # octave up, velocity up, then k = C6
    msgs = sink.messages(0)
    assert [(m.type, m.note, m.velocity) for m in msgs] == [("note_on", 60, 100), ("note_on", 84, 115)]
    assert kb.octave == 5


def test_keyboard_run_without_a_terminal_is_a_logged_noop():
    sink = RecordingSink()
    r, w = os.pipe()
    try:
        asyncio.run(asyncio.wait_for(TerminalKeyboard(sink, stdin=r).run(), 1.0))
    finally:
        os.close(r)
        os.close(w)
    assert sink.fed == []
    assert any("not a terminal" in line for line in sink.logs)


def test_keyboard_run_in_a_pty_plays_releases_and_restores_the_terminal():
    termios = pytest.importorskip("termios")
    master, slave = os.openpty()
    before = termios.tcgetattr(slave)
    sink = RecordingSink()
    out = io.StringIO()
    kb = TerminalKeyboard(sink, stdin=slave, out=out, hold=KeyHold(first_hold_s=0.05))

    async def until(n_messages):
        for _ in range(400):
            if len(sink.fed) >= n_messages:
                return
            await asyncio.sleep(0.005)
        raise AssertionError(f"expected {n_messages} messages, got {sink.messages()}")

    async def scenario():
        task = asyncio.create_task(kb.run())
        await asyncio.sleep(0.02)
        assert termios.tcgetattr(slave) != before  # cbreak while running
        os.write(master, b"a")
        await until(2)         # note on, then off after 50 ms
        os.write(master, b"s")  # held when the task is cancelled: released on the way out
        await until(3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # a second run ends with Ctrl-D
        task = asyncio.create_task(kb.run())
        await asyncio.sleep(0.02)
        os.write(master, b"\x04")
        await asyncio.wait_for(task, 1.0)

    try:
        asyncio.run(scenario())
        assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)
    assert [(m.type, m.note) for m in sink.messages(0)] == [
        ("note_on", 60), ("note_off", 60), ("note_on", 62), ("note_off", 62)]
    assert "z/x octave" in out.getvalue()


# --- decode_midi --------------------------------------------------------------------------


@pytest.mark.parametrize("msg", [
    mido.Message("note_on", channel=3, note=60, velocity=100),
    mido.Message("note_off", channel=0, note=61, velocity=10),
    mido.Message("control_change", channel=15, control=64, value=127),
    mido.Message("control_change", control=1, value=20),
    mido.Message("control_change", control=123, value=0),
    mido.Message("pitchwheel", channel=1, pitch=-8192),
    mido.Message("pitchwheel", pitch=8191),
    mido.Message("pitchwheel", pitch=0),
    mido.Message("aftertouch", channel=2, value=77),
    mido.Message("polytouch", note=60, value=5),
    mido.Message("program_change", program=4),
])
def test_decode_midi_round_trips_channel_messages(msg):
    assert decode_midi(msg.bytes()) == msg


def test_decode_midi_turns_note_on_velocity_0_into_note_off():
    assert decode_midi([0x92, 60, 0]) == mido.Message("note_off", channel=2, note=60, velocity=64)


@pytest.mark.parametrize("data", [[0xF0, 1, 2, 3, 0xF7], [0xF8], [0xFA], [0xFC], [0xFE], [0xFF],
                                  [0xF2, 0, 0], [0xF1, 0], [0xF7]])
def test_decode_midi_ignores_system_messages(data):
    assert decode_midi(data) is None


@pytest.mark.parametrize("data", [
    [], [0x3C, 0x40], [0x40], [0x90, 60], [0x90, 60, 100, 1], [0xC0], [0xC0, 1, 2],
    [0x90, 200, 1], [0xB0, 1, 128], [0xE0, 0, 0x80], [0xF4], [0xF5], [0xF9], [0xFD], [0x100],
    [0x90, -1, 0],
])
def test_decode_midi_rejects_malformed_bytes(data):
    with pytest.raises(MidiDecodeError):
        decode_midi(data)


# --- MidiInputs on the fake backend ---------------------------------------------------------


@pytest.fixture
def sink():
    return RecordingSink()


def test_recording_sink_is_a_sink(sink):
    assert isinstance(sink, Sink)


def test_all_mode_opens_every_port_but_our_own_and_midi_through(sink):
    backend = FakeBackend("Keystation 49:Keystation 49 MIDI 1 20:0", "bandmate-01:out",
                          "bandmate:synth out", "Midi Through:Midi Through Port-0 14:0", "pads:out")
    inputs = MidiInputs(sink, backend=backend)
    assert inputs.sources == {"Keystation 49:Keystation 49 MIDI 1 20:0": 1, "pads:out": 2}
    assert "MIDI in: opened 'pads:out' (source 2)" in sink.logs
    inputs.close()


def test_messages_reach_the_sink_in_order_with_their_source(sink):
    backend = FakeBackend("a:out", "b:out")
    inputs = MidiInputs(sink, backend=backend)
    a, b = backend.ports["a:out"], backend.ports["b:out"]
    sent = [mido.Message("note_on", note=60, velocity=90), mido.Message("control_change", control=64, value=127),
            mido.Message("pitchwheel", pitch=-1000), mido.Message("control_change", control=1, value=3),
            mido.Message("aftertouch", value=50), mido.Message("note_off", note=60, velocity=0),
            mido.Message("control_change", control=123, value=0)]
    for m in sent:
        a.send(m)
    b.send(mido.Message("note_on", note=40, velocity=1))
    assert sink.messages(1) == sent
    assert sink.messages(2) == [mido.Message("note_on", note=40, velocity=1)]
    inputs.close()


def test_sysex_clock_and_program_change_are_ignored_silently(sink):
    backend = FakeBackend("a:out")
    inputs = MidiInputs(sink, backend=backend)
    port = backend.ports["a:out"]
    port.send(mido.Message("sysex", data=[1, 2, 3]))
    port.send(mido.Message("clock"))
    port.send(mido.Message("active_sensing"))
    port.send(mido.Message("program_change", program=3))
    assert sink.fed == []
    assert inputs.stats()["a:out"]["ignored"] == 4
    assert not any("dropped" in line for line in sink.logs)
    inputs.close()


def test_accept_can_let_program_change_through(sink):
    backend = FakeBackend("a:out")
    inputs = MidiInputs(sink, backend=backend, accept=DEFAULT_ACCEPT | {"program_change"})
    backend.ports["a:out"].send(mido.Message("program_change", program=3))
    assert sink.messages() == [mido.Message("program_change", program=3)]
    inputs.close()


def test_malformed_bytes_are_dropped_with_one_rate_limited_log_line(sink):
    backend = FakeBackend("a:out")
    inputs = MidiInputs(sink, backend=backend, drop_log_interval_s=60.0)
    port = backend.ports["a:out"]
    garbage = [[0x3C, 0x40], [0x90, 60], [0xF4], [], [0x90, 300, 1], [0x80, 1, 2, 3], None, "xyz"]
    for _ in range(50):
        for data in garbage:
            port.send_bytes(data)  # never raises into the delivering thread
    port.send(mido.Message("note_on", note=64))
    assert sink.messages() == [mido.Message("note_on", note=64)]
    drops = [line for line in sink.logs if "dropped" in line]
    assert len(drops) == 1 and "'a:out': dropped 1 malformed message" in drops[0]
    assert inputs.stats()["a:out"]["dropped"] == 50 * len(garbage)
    inputs.close()  # reports what was not logged yet
    drops = [line for line in sink.logs if "dropped" in line]
    assert len(drops) == 2 and f"dropped {50 * len(garbage) - 1} malformed" in drops[1]


def test_a_sysex_flood_does_not_crash_and_is_dropped(sink):
    backend = FakeBackend("a:out")
    inputs = MidiInputs(sink, backend=backend)
    port = backend.ports["a:out"]
    big = [0xF0] + [0x11] * 4094 + [0xF7]
    for i in range(5000):
        port.send_bytes(big)
        if i % 100 == 0:
            port.send_bytes([0xF8])
            port.send_bytes([0xF0, 1, 2])  # a broken sysex fragment: ignored too
    port.send(mido.Message("note_on", note=61))
    assert sink.messages() == [mido.Message("note_on", note=61)]
    assert inputs.stats()["a:out"]["ignored"] == 5000 + 2 * 50
    inputs.close()


def test_a_failing_sink_does_not_raise_into_the_port(sink):
    class Refusing(RecordingSink):
        def feed(self, msg, source, at=None):
            raise RuntimeError("queue full")

    bad = Refusing()
    backend = FakeBackend("a:out")
    inputs = MidiInputs(bad, backend=backend)
    for _ in range(10):
        backend.ports["a:out"].send(mido.Message("note_on"))
    assert sum("the engine refused" in line for line in bad.logs) == 1
    assert inputs.stats()["a:out"]["feed_errors"] == 10
    inputs.close()


def test_unplugged_port_calls_source_gone_and_is_forgotten(sink):
    backend = FakeBackend("keys:out", "pads:out")
    inputs = MidiInputs(sink, backend=backend)
    keys = backend.ports["keys:out"]
    keys.send(mido.Message("note_on", note=60))  # held when the cable is pulled
    keys.unplug()
    changes = inputs.poll_ports()
    assert changes.gone == ["keys:out"] and changes.opened == []
    assert sink.gone == [1]
    assert sink.events.index(("gone", 1)) > sink.events.index(("feed", 1, mido.Message("note_on", note=60)))
    assert "MIDI in: 'keys:out' vanished, its notes released" in sink.logs
    assert inputs.sources == {"pads:out": 2}
    assert not inputs.poll_ports()  # nothing more to do
    backend.ports["pads:out"].send(mido.Message("note_on", note=30))
    assert sink.messages(2) == [mido.Message("note_on", note=30)]
    # plugged back in: a new source id, so a late release of the old one cannot hit it
    backend.plug("keys:out")
    assert inputs.poll_ports().opened == ["keys:out"]
    assert inputs.sources["keys:out"] == 3
    inputs.close()
    assert sorted(sink.gone) == [1, 2, 3]


def test_a_port_appearing_later_is_opened_in_all_mode(sink):
    backend = FakeBackend()
    inputs = MidiInputs(sink, backend=backend)
    assert any("no MIDI input ports found" in line for line in sink.logs)
    port = backend.plug("Launchkey:Launchkey MIDI 1")
    assert inputs.poll_ports().opened == ["Launchkey:Launchkey MIDI 1"]
    port.send(mido.Message("note_on", note=70))
    assert sink.messages(1) == [mido.Message("note_on", note=70)]
    inputs.close()


def test_named_ports_match_exactly_first_then_by_substring_ignoring_case(sink):
    backend = FakeBackend("Keys", "Keys 2", "KEYSTATION 49:port 1", "pads:out")
    inputs = MidiInputs(sink, backend=backend, ports=["Keys", "keystation"])
    assert set(inputs.sources) == {"Keys", "KEYSTATION 49:port 1"}
    inputs.close()


def test_a_requested_port_not_present_yet_is_opened_when_it_appears(sink):
    backend = FakeBackend("pads:out")
    inputs = MidiInputs(sink, backend=backend, ports="keystation")
    assert inputs.sources == {}
    assert any("no port matches 'keystation' yet (available: 'pads:out')" in line for line in sink.logs)
    backend.plug("Keystation 49:Keystation 49 MIDI 1 24:0")
    assert inputs.poll_ports().opened == ["Keystation 49:Keystation 49 MIDI 1 24:0"]
    inputs.close()


def test_a_port_that_fails_to_open_is_logged_once_and_retried_after_it_reappears(sink):
    class Flaky(FakeBackend):
        fail = True

        def open_port(self, name, on_bytes):
            if self.fail:
                raise OSError("device busy")
            return super().open_port(name, on_bytes)

    backend = Flaky("busy:out")
    inputs = MidiInputs(sink, backend=backend)
    for _ in range(3):
        inputs.poll_ports()
    assert sum("could not open 'busy:out': device busy" in line for line in sink.logs) == 1
    backend.fail = False
    backend.ports["busy:out"].unplug()
    inputs.poll_ports()
    backend.plug("busy:out")
    assert inputs.poll_ports().opened == ["busy:out"]
    inputs.close()


def test_virtual_port_delivers_and_is_never_polled_away(sink):
    backend = FakeBackend()
    inputs = MidiInputs(sink, backend=backend, ports=[], virtual=True)
    port = backend.virtual["bandmate in"]
    port.send(mido.Message("note_on", note=50))
    assert inputs.poll_ports().gone == []
    assert sink.messages(1) == [mido.Message("note_on", note=50)]
    assert inputs.sources == {"bandmate in": 1}
    inputs.close()
    assert sink.gone == [1]


def test_close_releases_every_source_and_is_idempotent(sink):
    backend = FakeBackend("a:out", "b:out")
    inputs = MidiInputs(sink, backend=backend)
    inputs.close()
    inputs.close()
    assert sorted(sink.gone) == [1, 2] and backend.closed
    assert not backend.ports["a:out"].is_open
    assert not inputs.poll_ports()


def test_watch_opens_ports_that_appear(sink):
    backend = FakeBackend()
    inputs = MidiInputs(sink, backend=backend)

    async def scenario():
        task = asyncio.create_task(inputs.watch(interval_s=0.01))
        backend.plug("late:out")
        for _ in range(200):
            if inputs.sources:
                break
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert inputs.sources == {"late:out": 1}
    inputs.close()


def test_unknown_api_name_is_a_value_error(sink):
    with pytest.raises(ValueError, match="coremidi"):
        MidiInputs(sink, api="pulse")


@pytest.mark.skipif(os.path.exists("/dev/snd/seq"), reason="this machine has an ALSA sequencer")
def test_alsa_without_a_sequencer_says_why():
    from controllers.midi_in import MidiUnavailable

    with pytest.raises(MidiUnavailable, match="/dev/snd/seq"):
        open_backend("alsa")
