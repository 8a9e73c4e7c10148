"""MidiInputs through a real JACK server (dummy driver) and rtmidi's JACK API.

The "devices" are rtmidi virtual output ports created by the test. JACK may rename clients
(name-01, ...), so ports are looked up by their unique short name, never hard-coded.
"""
from __future__ import annotations

import itertools
import os
import time

import mido
import pytest
import rtmidi  # a hard dependency (pyproject): if it is missing, these tests must fail, not skip

from controllers.fake import RecordingSink
from controllers.midi_in import VIRTUAL_PORT_NAME, MidiInputs, open_backend

pytestmark = pytest.mark.jack

_serial = itertools.count()


class Sender:
    """A MIDI device stand-in: an rtmidi JACK client with one virtual output port."""

    def __init__(self, client: str = "bm_test_sender"):
        self.short = f"kbd{os.getpid()}_{next(_serial)}"
        self.out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name=client)
        self.out.open_virtual_port(self.short)

    def full_name(self, inputs: MidiInputs) -> str:
        matches = [n for n in inputs.list_ports() if n.endswith(":" + self.short)]
        assert len(matches) == 1, (self.short, inputs.list_ports())
        return matches[0]

    def send(self, msg: mido.Message) -> None:
        self.out.send_message(msg.bytes())

    def close(self) -> None:
        if self.out is not None:
            self.out.delete()  # the port vanishes, like an unplugged device
            self.out = None


@pytest.fixture
def sender(jack_server):
    made: list[Sender] = []

    def make(client: str = "bm_test_sender") -> Sender:
        made.append(Sender(client))
        return made[-1]

    yield make
    for s in made:
        s.close()


@pytest.fixture
def sink():
    return RecordingSink()


def test_named_port_delivers_everything_in_order(jack_server, sender, sink):
    dev = sender()
    probe = MidiInputs(sink, api="jack", ports=[])  # just to look the name up
    name = dev.full_name(probe)
    probe.close()
    with MidiInputs(sink, api="jack", ports=name) as inputs:
        assert inputs.api == "jack"
        src = inputs.sources[name]
        time.sleep(0.05)  # the connection is made on the JACK server's next cycle
        sent = [mido.Message("note_on", note=60, velocity=100),
                mido.Message("control_change", control=64, value=127),
                mido.Message("pitchwheel", pitch=-4096),
                mido.Message("control_change", control=1, value=64),
                mido.Message("note_off", note=60, velocity=0),
                mido.Message("control_change", control=64, value=0)]
        sent_at = []
        for msg in sent:
            sent_at.append(time.perf_counter())
            dev.send(msg)
            time.sleep(0.002)
        assert sink.wait_for(lambda s: len(s.fed) >= len(sent), timeout=1.0)
        assert [m for _, s, m in sink.fed] == sent
        assert all(s == src for _, s, _ in sink.fed)
        # (how fast Python reads them depends on the host: bench/latency.py reports it)
        assert all(t >= t0 for (t, _, _), t0 in zip(sink.fed, sent_at))


def test_a_vanished_port_is_released_and_forgotten(jack_server, sender, sink):
    dev = sender()
    with MidiInputs(sink, api="jack", ports=dev.short) as inputs:  # by substring
        name = dev.full_name(inputs)
        src = inputs.sources[name]
        time.sleep(0.05)
        dev.send(mido.Message("note_on", note=64, velocity=90))  # held...
        assert sink.wait_for(lambda s: len(s.fed) == 1, timeout=1.0)
        dev.close()  # ...when the device goes away
        changes = inputs.poll_ports()
        assert changes.gone == [name]
        assert sink.gone == [src]
        assert name not in inputs.sources
        assert any("vanished, its notes released" in line for line in sink.logs)
        assert not inputs.poll_ports()


def test_all_mode_opens_a_port_that_appears_later(jack_server, sender, sink):
    with MidiInputs(sink, api="jack", ports="all") as inputs:
        before = set(inputs.sources)
        own = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="bandmate")  # one of ours: never opened
        own.open_virtual_port("synth out")
        try:
            dev = sender()
            changes = inputs.poll_ports()
            name = dev.full_name(inputs)
            assert name in changes.opened and name not in before
            assert not any(inputs.is_own_port(n) for n in inputs.sources)
            assert any(n.endswith(":synth out") for n in inputs.list_ports())
            time.sleep(0.05)
            dev.send(mido.Message("note_on", note=72, velocity=1))
            src = inputs.sources[name]
            assert sink.wait_for(lambda s: s.messages(src) == [mido.Message("note_on", note=72, velocity=1)])
        finally:
            own.delete()


def test_sysex_and_clock_floods_are_ignored_without_losing_time(jack_server, sender, sink):
    """rtmidi's JACK backend moves its delta-time reference on messages it filters itself, so
    they come to Python, which ignores them but counts their time into the port's timeline."""
    dev = sender()
    with MidiInputs(sink, api="jack", ports=dev.short) as inputs:
        time.sleep(0.05)
        dev.send(mido.Message("note_on", note=60))
        time.sleep(0.05)
        t0 = time.perf_counter()
        for _ in range(100):
            dev.out.send_message([0xF0] + [0x22] * 1000 + [0xF7])
            dev.out.send_message([0xF8])
            time.sleep(0.001)
        dev.out.send_message([0x3C, 0x40])  # garbage: dropped and logged
        time.sleep(0.05)
        dev.send(mido.Message("note_on", note=61))
        spacing = time.perf_counter() - t0 + 0.05
        assert sink.wait_for(lambda s: len(s.fed) == 2, timeout=1.0)
        assert sink.messages() == [mido.Message("note_on", note=60),
                                   mido.Message("note_on", note=61)]
        assert any("dropped 1 malformed message" in line for line in sink.logs)
        assert inputs.stats()[dev.full_name(inputs)]["ignored"] == 200
        # the two notes' stamps are as far apart as they were sent (within a few JACK periods,
        # and room for a host hiccup): had rtmidi filtered the clock in C, nearly all of the
        # ~0.2 s would be missing
        assert abs((sink.stamps[1] - sink.stamps[0]) - spacing) < 0.02


def test_stamps_are_taken_on_rtmidis_thread_not_when_python_reads(jack_server, sender, sink):
    """Each message waits in rtmidi's queue while this thread holds the GIL for 10, 25 or 40 ms
    (the reader cannot run), yet the stamps keep the spacing they were sent with, to within a
    few JACK cycles (stamps taken when Python reads would be 15 to 30 ms off)."""
    import ctypes

    import numpy as np
    hold_gil = ctypes.PyDLL(None).usleep   # a PyDLL call keeps the GIL
    dev = sender()
    with MidiInputs(sink, api="jack", ports=dev.short):
        # the connection is made when a probe arrives (a busy host may take longer than a
        # fixed sleep to connect the ports, and a message sent before that is lost)
        deadline = time.monotonic() + 10.0
        while not sink.wait_for(lambda s: len(s.fed) > 0, timeout=0.1):
            assert time.monotonic() < deadline, "the MIDI ports never connected"
            dev.send(mido.Message("note_on", note=40))
        time.sleep(0.05)
        with sink._cond:
            sink.fed.clear()
            sink.stamps.clear()
        sent = []
        for i in range(8):
            sent.append(time.perf_counter())
            dev.send(mido.Message("note_on", note=60 + i))
            hold_gil(10000 + 15000 * (i % 3))
        assert sink.wait_for(lambda s: len(s.fed) == 8, timeout=10.0)
    stamps = np.array(sink.stamps)
    read = np.array([t for t, _, _ in sink.fed])
    period = jack_server.period / jack_server.rate
    late = read - np.array(sent)
    assert late.min() > 0.010 and np.ptp(np.diff(late)) > 0.012   # read late, unevenly
    assert np.abs(np.diff(stamps) - np.diff(sent)).max() < 4 * period + 0.003


def test_virtual_input_port_accepts_connections(jack_server, sink):
    with MidiInputs(sink, api="jack", ports=[], virtual=True) as inputs:
        out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="bm_test_app")
        try:
            ports = out.get_ports()
            ours = [i for i, n in enumerate(ports) if n.endswith(":" + VIRTUAL_PORT_NAME)]
            assert len(ours) == 1, ports
            out.open_port(ours[0])
            time.sleep(0.05)
            out.send_message([0x90, 48, 80])
            src = inputs.sources[VIRTUAL_PORT_NAME]
            assert sink.wait_for(lambda s: s.messages(src) == [mido.Message("note_on", note=48, velocity=80)])
        finally:
            out.delete()


@pytest.mark.skipif(os.path.exists("/dev/snd/seq"), reason="this machine has an ALSA sequencer")
def test_auto_falls_back_to_jack_without_an_alsa_sequencer(jack_server, sink):
    backend, skipped = open_backend("auto")
    try:
        assert backend.name == "jack"
        assert any("/dev/snd/seq" in note for note in skipped)
    finally:
        backend.close()
    with MidiInputs(sink, api="auto", ports=[]) as inputs:
        assert inputs.api == "jack"
    assert any("skipped alsa: no ALSA sequencer" in line for line in sink.logs)


def test_closing_while_notes_stream_in_is_safe_and_ordered(jack_server, sender, sink):
    """Regression: with rtmidi callbacks, closing a port mid-stream crashed (use after free)."""
    import threading

    dev = sender()
    inputs = MidiInputs(sink, api="jack", ports=dev.short)
    src = inputs.sources[dev.full_name(inputs)]
    stop = threading.Event()

    def blast():
        while not stop.is_set():
            dev.out.send_message([0x90, 60, 100])
            dev.out.send_message([0x80, 60, 0])
            time.sleep(0.0002)

    blaster = threading.Thread(target=blast)
    blaster.start()
    try:
        assert sink.wait_for(lambda s: len(s.fed) > 50, timeout=2.0)
        inputs.close()
        time.sleep(0.02)
    finally:
        stop.set()
        blaster.join(timeout=10)
    assert sink.gone == [src]
    gone_at = sink.events.index(("gone", src))
    assert all(ev[0] != "feed" for ev in sink.events[gone_at:])
    assert inputs.sources == {}
