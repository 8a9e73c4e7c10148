"""OSC control (engine.control.osc) over real UDP on loopback: parameters by address and 0..1,
replies and subscriptions, notes, bundles landing on their sample, and garbage changing nothing.

The server and the offline renders share one thread (the asyncio loop), as the live run's
scheduler and server do: the scheduler queue keeps its single producer. Every wait has a
timeout and names what it waited for; no test assumes the host keeps a deadline.
"""
from __future__ import annotations

import asyncio
import math
import socket
import struct
import time

import numpy as np
import pytest
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_bundle_builder import OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.parsing import osc_types

from engine.control.offline import OfflineDriver
from engine.control.osc import (
    ERROR_REPLIES_PER_S, OSC_SOURCE, OscServer, server_from_config, to_unit,
)
from engine.control.session import Session
from engine.parts import DRUMS, KEYS
from engine.rt import layout as L
from engine.rt import master

SR = 48000
WAIT_S = 5.0


def message(address: str, *args) -> bytes:
    b = OscMessageBuilder(address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


class Client:
    """A UDP socket on loopback that sends OSC and receives the replies."""

    def __init__(self, server: OscServer):
        self.to = server.address
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]

    def send(self, address: str, *args) -> None:
        self.raw(message(address, *args))

    def raw(self, data: bytes) -> None:
        self.sock.sendto(data, self.to)

    async def recv(self, what: str, timeout: float = WAIT_S) -> OscMessage:
        loop = asyncio.get_running_loop()
        try:
            data = await asyncio.wait_for(loop.sock_recv(self.sock, 65536), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"no reply within {timeout} s: waiting for {what}") from None
        return OscMessage(data)

    async def nothing(self, seconds: float) -> None:
        """No datagram arrives within `seconds`."""
        loop = asyncio.get_running_loop()
        try:
            data = await asyncio.wait_for(loop.sock_recv(self.sock, 65536), seconds)
        except asyncio.TimeoutError:
            return
        raise AssertionError(f"unexpected reply {OscMessage(data).address} "
                             f"{OscMessage(data).params}")

    def close(self):
        self.sock.close()


async def until(pred, what: str, timeout: float = WAIT_S) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.001)


async def handled(server: OscServer, n: int) -> None:
    """Wait until the server has taken `n` packets in all."""
    await until(lambda: server.counters["packets"] >= n, f"{n} packets handled")


def run(coro, timeout: float = 120.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def serve(session, **kw) -> tuple[OscServer, Client]:
    server = OscServer(session, port=0, log=lambda s: None, **kw)
    await server.start()
    return server, Client(server)


def render_rows(session, frames: int, drv: OfflineDriver, parts=(KEYS,), block: int = 64):
    """Render `frames`; returns (stereo out, {part: |left| + |right| of its pair})."""
    out = np.zeros((frames, 2), np.float32)
    rows = {p: np.zeros(frames) for p in parts}
    bus = session.state.arrays[L.S_BUS]
    done = 0
    while done < frames:
        n = min(block, frames - done)
        drv.render(n, out[done:done + n])
        for p in parts:
            rows[p][done:done + n] = np.abs(bus[L.B_PART0 + 2 * p, :n]) + \
                np.abs(bus[L.B_PART0 + 2 * p + 1, :n])
        done += n
    return out, rows


def first_nonzero(x) -> int | None:
    nz = np.flatnonzero(x)
    return int(nz[0]) if len(nz) else None


def a_choice(session) -> tuple[str, object]:
    """A choice parameter that may be set while playing."""
    prog = session.graph.program
    for a in session.graph.addresses():
        q = prog.resolve(a)[1]
        unit = prog.ops[prog.addresses[a][0]].unit
        if q.curve == "choice" and q.name not in getattr(unit, "PREPARE_PARAMS", ()):
            return a, q
    raise AssertionError("no settable choice parameter")


def snapshot(session) -> dict:
    prog = session.graph.program
    return {a: prog.value_of(a) for a in session.graph.addresses()}


# ---- parameters ----------------------------------------------------------------------------------

def test_set_by_address_by_command_and_by_word(cfg):
    async def main():
        s = Session(cfg, SR)
        server, c = await serve(s)
        value = s.graph.program.value_of
        c.send("/bass/synth/cutoff_hz", 800.0)
        c.send("/bandmate/set", "/bass/mix/pan", -0.5)
        c.send("/keys/mix/gain_db", -6)                       # an int is a number too
        address, q = a_choice(s)
        c.send(address, q.choices[1])                         # a choice by its word
        c.send("/master/limiter/ceiling_db", -3.0)
        await handled(server, 5)
        assert server.counters["errors"] == 0, server.last_error
        assert value("/bass/synth/cutoff_hz") == 800.0
        assert value("/bass/mix/pan") == -0.5
        assert value("/keys/mix/gain_db") == -6.0
        assert value(address) == 1.0
        assert server.counters["applied"] == 5
        # the master's limiter goes through its own event: the engine has it after a block
        OfflineDriver(s.state, 64).render(64)
        assert server.value("/master/limiter/ceiling_db") == -3.0
        server.close()
        c.close()
    run(main())


def test_a_set_changes_the_rendered_signal(cfg):
    """Pan the keys hard left over OSC while a note (also over OSC) plays: the right channel
    of the output falls silent."""
    async def main():
        s = Session(cfg, SR)
        server, c = await serve(s)
        drv = OfflineDriver(s.state, 64)
        c.send("/bandmate/note", "keys", 57, 100)
        await handled(server, 1)
        out, _ = render_rows(s, SR // 5, drv)
        before = np.sqrt(np.mean(out[-SR // 10:].astype(float) ** 2, axis=0))
        assert before[0] > 1e-3 and before[1] > 0.3 * before[0]
        c.send("/keys/mix/pan", -1.0)
        await handled(server, 2)
        out, _ = render_rows(s, SR // 5, drv)
        after = np.sqrt(np.mean(out[-SR // 10:].astype(float) ** 2, axis=0))
        assert after[0] > 1e-3 and after[1] < 0.01 * after[0], (before, after)
        assert server.counters["errors"] == 0, server.last_error
        server.close()
        c.close()
    run(main())


def test_normalized_values_follow_the_parameters_curve(cfg):
    async def main():
        s = Session(cfg, SR)
        server, c = await serve(s)
        prog = s.graph.program
        q = prog.resolve("/bass/synth/cutoff_hz")[1]
        assert q.curve == "log"
        c.send("/bass/synth/cutoff_hz/norm", 0.5)
        c.send("/bandmate/norm", "/bass/mix/pan", 0.25)
        address, choice = a_choice(s)
        c.send(address + "/norm", 1.0)
        await handled(server, 3)
        assert server.counters["errors"] == 0, server.last_error
        assert prog.value_of("/bass/synth/cutoff_hz") == pytest.approx(math.sqrt(q.lo * q.hi))
        assert prog.value_of("/bass/mix/pan") == pytest.approx(-0.5)
        assert prog.value_of(address) == len(choice.choices) - 1
        # and back: get the /norm form
        c.send("/bandmate/get", "/bass/synth/cutoff_hz/norm")
        r = await c.recv("the cutoff's /norm value")
        assert r.address == "/bass/synth/cutoff_hz/norm"
        assert r.params[0] == pytest.approx(0.5, abs=1e-6)
        for x in (0.0, 0.3, 1.0):
            assert to_unit(q, q.from_unit(x)) == pytest.approx(x)
        server.close()
        c.close()
    run(main())


# ---- replies -------------------------------------------------------------------------------------

def test_get_subscribe_addresses_and_info(cfg):
    async def main():
        s = Session(cfg, SR)
        server, c = await serve(s, poll_hz=50.0)
        stopping = asyncio.Event()
        task = asyncio.create_task(server.run(stopping))
        c.send("/bandmate/get", "/bass/mix/pan", "/bandmate/tempo")
        r1, r2 = await c.recv("pan"), await c.recv("tempo")
        assert (r1.address, r1.params) == ("/bass/mix/pan", [s.graph.program.value_of(
            "/bass/mix/pan")])
        assert (r2.address, r2.params) == ("/bandmate/tempo", [s.clock.bpm])
        # subscribe: the value now, then on each change, and nothing while it stays
        c.send("/bandmate/subscribe", "/bass/synth/cutoff_hz")
        r = await c.recv("the subscription's first value")
        assert r.address == "/bass/synth/cutoff_hz"
        s.set("/bass/synth/cutoff_hz", 1234.0)            # another controller changes it
        r = await c.recv("the changed value")
        assert r.params == [1234.0]
        await c.nothing(0.15)
        c.send("/bandmate/unsubscribe")
        await handled(server, 3)
        s.set("/bass/synth/cutoff_hz", 999.0)
        await c.nothing(0.15)
        # the address list, in chunks that fit a datagram
        c.send("/bandmate/addresses")
        first = await c.recv("the first chunk of addresses")
        chunks = first.params[1]
        got = list(first.params[2:])
        for i in range(1, chunks):
            got += (await c.recv(f"chunk {i} of the addresses")).params[2:]
        assert set(got) == set(s.addresses()) | {"/bandmate/tempo"}
        c.send("/bandmate/addresses", "/bass/mix")
        r = await c.recv("the bass strip's addresses")
        assert r.params[2:] and all(a.startswith("/bass/mix/") for a in r.params[2:])
        address, q = a_choice(s)
        c.send("/bandmate/info", address)
        r = await c.recv("info")
        assert r.params[:2] == [address, q.lo] and r.params[4] == "choice"
        assert r.params[5:] == list(q.choices)
        stopping.set()
        await asyncio.wait_for(task, WAIT_S)
        c.close()
    run(main())


def test_reply_port_sends_replies_to_another_port_on_the_senders_host(cfg):
    async def main():
        s = Session(cfg, SR)
        listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        listener.bind(("127.0.0.1", 0))
        listener.setblocking(False)
        server, c = await serve(s, reply_port=listener.getsockname()[1])
        c.send("/bandmate/get", "/bass/mix/pan")
        loop = asyncio.get_running_loop()
        data = await asyncio.wait_for(loop.sock_recv(listener, 65536), WAIT_S)
        assert OscMessage(data).address == "/bass/mix/pan"
        await c.nothing(0.05)
        server.close()
        c.close()
        listener.close()
    run(main())


# ---- notes and tempo -----------------------------------------------------------------------------

def test_note_on_sounds_and_note_off_leaves_silence(cfg):
    async def main():
        s = Session(cfg, SR)
        server, c = await serve(s)
        drv = OfflineDriver(s.state, 64)
        c.send("/bandmate/note", "keys", 60, 100)
        await handled(server, 1)
        _, rows = render_rows(s, SR // 4, drv)
        assert rows[KEYS][-SR // 10:].max() > 1e-3
        assert s.state.counters()["voices"] >= 1
        assert s.conductor.held[OSC_SOURCE] == {60}          # the band follows keys notes
        c.send("/bandmate/note", 0, 60.0, 0)                 # part by index, velocity 0: off
        await handled(server, 2)
        _, rows = render_rows(s, 3 * SR, drv)
        assert s.state.counters()["voices"] == 0
        assert rows[KEYS][-SR // 10:].max() < 1e-6
        assert server.counters["errors"] == 0, server.last_error
        server.close()
        c.close()
    run(main())


def test_tempo_release_and_panic(cfg):
    async def main():
        s = Session(cfg, SR)
        server, c = await serve(s)
        drv = OfflineDriver(s.state, 64)
        c.send("/bandmate/tempo", 96.0)
        c.send("/bandmate/note", "lead", 72, 0.8)
        await handled(server, 2)
        assert s.clock.segments[-1].bpm == 96
        render_rows(s, SR // 10, drv)
        assert s.state.counters()["voices"] >= 1
        c.send("/bandmate/panic")
        await handled(server, 3)
        render_rows(s, SR // 2, drv)
        assert s.state.counters()["voices"] == 0 and not server.held
        assert server.counters["errors"] == 0, server.last_error
        server.close()
        c.close()
    run(main())


# ---- bundles on the sample clock -----------------------------------------------------------------

def bundle(tag: float, *contents) -> bytes:
    b = OscBundleBuilder(tag)
    for item in contents:
        b.add_content(item)
    return b.build().dgram


def parsed_tag(dgram: bytes) -> float:
    """The time tag as the server reads it (NTP fixed point → seconds)."""
    return OscBundle(dgram).timestamp


def test_a_bundles_time_tag_lands_on_its_sample(cfg):
    """With the audio clock anchored at (0, T0): a note at T0 + 0.25 s lands on sample 12000
    (± the rounding of the NTP tag), two parameters at T0 + 0.5 s on their sample, exactly."""
    async def main():
        s = Session(cfg, SR)
        t0 = time.monotonic_ns()
        server, c = await serve(s, clock=lambda: (0, t0))
        wall0 = server.wall_offset_s + t0 * 1e-9
        inner = bundle(wall0 + 0.5, _msg("/drums/mix/gain_db", -30.0),
                       _msg("/master/limiter/ceiling_db", -6.0))
        dgram = bundle(wall0 + 0.25, _msg("/bandmate/note", "drums", 36, 127),
                       OscBundle(inner))
        note_at = server.sample_for(parsed_tag(dgram))
        gain_at = server.sample_for(parsed_tag(inner))
        assert abs(note_at - 0.25 * SR) <= 1 and abs(gain_at - 0.5 * SR) <= 1
        c.raw(dgram)
        await handled(server, 1)
        assert server.counters["errors"] == 0, server.last_error
        drv = OfflineDriver(s.state, 64)
        _, rows = render_rows(s, int(gain_at), drv, parts=(DRUMS,))
        assert first_nonzero(rows[DRUMS]) == note_at
        assert s.state.ctl[L.C_LAST_NOTE_ON] == note_at
        index = s.graph.program.resolve("/drums/mix/gain_db")[0]
        pool = s.state.arrays[L.bank_slot(s.graph.bank, L.G_UPARAMS)]
        ceiling = s.state.arrays[L.S_MASTER_PARAMS][master.LIMITER_CEILING_DB:][:1]
        assert pool[index] == 0.0 and ceiling[0] == -1.0    # not yet at gain_at
        drv.render(1)
        assert pool[index] == -30.0 and ceiling[0] == -6.0  # from their own sample on
        assert s.state.counters()["late_events"] == 0
        server.close()
        c.close()
    run(main())


def _msg(address, *args):
    b = OscMessageBuilder(address)
    for a in args:
        b.add_arg(a)
    return b.build()


def test_time_tags_on_the_running_audio_clock(cfg):
    """The real anchor (the offline blocks stamp CLOCK_MONOTONIC as the live callback does): a
    tag 0.2 s ahead lands at least 0.2 s after the last block's start, on the sample the server
    computed; an immediate tag plays at the next block; a past tag plays at once, counted."""
    async def main():
        s = Session(cfg, SR)
        server, c = await serve(s)
        drv = OfflineDriver(s.state, 64)
        render_rows(s, SR // 10, drv, parts=(DRUMS,))
        anchor = s.state.sample_clock()
        assert anchor is not None
        c.raw(bundle(time.time() + 0.2, _msg("/bandmate/note", "drums", 38, 127)))
        await handled(server, 1)
        at = server.last_time
        assert at >= anchor[0] + 0.2 * SR - 1
        assert server.counters["errors"] == 0, server.last_error
        ahead = int(at) - s.state.sample_time
        _, rows = render_rows(s, ahead + 4800, drv, parts=(DRUMS,))
        assert first_nonzero(rows[DRUMS]) == ahead
        # immediately: at the next block
        c.raw(bundle(osc_types.IMMEDIATELY, _msg("/bandmate/note", "drums", 36, 127)))
        await handled(server, 2)
        assert server.last_time == -1.0
        # a tag in the past: at once, counted as late by the server and the engine
        c.raw(bundle(time.time() - 1.0, _msg("/bandmate/note", "drums", 36, 127)))
        await handled(server, 3)
        render_rows(s, 64, drv, parts=(DRUMS,))
        assert server.counters["late"] == 1 and s.state.counters()["late_events"] == 1
        # too far ahead: refused
        c.raw(bundle(time.time() + 3600.0, _msg("/bandmate/note", "drums", 36, 127)))
        r = await c.recv("the too-far-ahead error")
        assert r.address == "/bandmate/error" and "ahead" in r.params[1]
        server.close()
        c.close()
    run(main())


# ---- errors and fuzz -----------------------------------------------------------------------------

BAD = [
    (("/bass/synth/nope_hz", 1.0), "no such parameter"),
    (("/nowhere/at/all", 1.0), "no such parameter"),
    (("/bandmate/nope",), "no such command"),
    (("/bass/synth/cutoff_hz", "loud"), "must be a number"),
    (("/bass/synth/cutoff_hz", 1e9), "must be"),
    (("/bass/synth/cutoff_hz", float("nan")), "must be a number"),
    (("/bass/synth/cutoff_hz",), "one value"),
    (("/bass/synth/cutoff_hz", 1.0, 2.0), "one value"),
    (("/bass/synth/cutoff_hz", True), "must be a number"),
    (("/bass/synth/cutoff_hz/norm", 1.5), "0..1"),
    (("/bandmate/set", "/bass/mix/pan"), "address and a value"),
    (("/bandmate/set", 3, 0.0), "not an address"),
    (("/bandmate/note", "guitar", 60, 100), "part must be"),
    (("/bandmate/note", "keys", 200, 100), "note must be"),
    (("/bandmate/note", "keys", 60, -1), "velocity"),
    (("/bandmate/note", "keys", 60, 500), "velocity"),
    (("/bandmate/note", "keys", 60), "part, note, velocity"),
    (("/bandmate/tempo", 1000.0), "20..400"),
    (("/bandmate/tempo", "fast"), "20..400"),
    (("/bandmate/get", "/no/such/thing"), "no such parameter"),
    (("/bandmate/get",), "addresses"),
    (("/bandmate/subscribe", 5), "addresses"),
    (("/bandmate/info", "/x"), "no such parameter"),
    (("/bandmate/addresses", 3), "prefix"),
    (("/" + "x" * 60000, 1.0), "no such parameter"),
    (("/bass/mix/pan", "y" * 60000), "must be a number"),
]


@pytest.mark.parametrize("args,reason", BAD, ids=[str(a[0])[:30] for a, _ in BAD])
def test_a_bad_message_changes_nothing_and_gets_its_reason(cfg, args, reason):
    async def main():
        s = Session(cfg, SR)
        server, c = await serve(s)
        before = snapshot(s)
        bpm = s.clock.bpm
        c.send(*args)
        r = await c.recv(f"the error for {str(args)[:60]}")
        assert r.address == "/bandmate/error"
        assert reason in r.params[1], r.params
        assert len(r.params[0]) < 200 and len(r.params[1]) < 500   # never echoes a flood
        assert server.counters["errors"] == 1 and server.counters["applied"] == 0
        assert snapshot(s) == before and s.clock.bpm == bpm and not server.held
        idx = s.state.arrays[L.S_QSCHED_IDX]
        assert idx[0] == 0                                   # nothing went to the engine
        server.close()
        c.close()
    run(main())


def test_garbage_floods_and_notes_without_offs_leave_the_music_playing(cfg):
    """Random bytes, truncated messages, wrong types, 1000 messages in bursts: every error is
    counted (and answered within the reply rate), the parameters keep their values, the engine
    keeps rendering finite audio, and the notes left on stop when OSC closes."""
    async def main():
        rng = np.random.default_rng(9)
        s = Session(cfg, SR)
        server, c = await serve(s)
        drv = OfflineDriver(s.state, 64)
        before = snapshot(s)
        good = message("/bandmate/note", "keys", 60, 100)
        sent = bad = 0
        for burst in range(20):
            for _ in range(50):
                k = rng.integers(5)
                if k == 0:
                    data = rng.bytes(int(rng.integers(0, 2000)))
                elif k == 1:
                    data = good[:int(rng.integers(1, len(good)))]        # truncated
                elif k == 2:
                    data = message("/bass/synth/cutoff_hz", rng.bytes(8).hex())
                elif k == 3:
                    # (with exactly 8 bytes it would be a valid, empty bundle)
                    data = b"#bundle\x00" + rng.bytes(int(rng.integers(9, 64)))
                else:
                    data = message("/bandmate/note", "keys", int(rng.integers(30, 90)),
                                   int(rng.integers(1, 128)))              # no note-offs
                    bad -= 1
                bad += 1
                c.raw(data)
                sent += 1
            await handled(server, sent)
            out, _ = render_rows(s, 256, drv)
            assert np.all(np.isfinite(out))
        cnt = server.counters
        assert cnt["packets"] == 1000
        assert cnt["errors"] == bad and cnt["applied"] == 1000 - bad
        assert cnt["internal_errors"] == 0
        assert cnt["errors_unreplied"] + cnt["replies"] == cnt["errors"]
        assert snapshot(s) == before
        assert s.state.counters()["dropped_events"] == 0
        replies = 0
        loop = asyncio.get_running_loop()
        while True:                                   # the error replies that came back
            try:
                await asyncio.wait_for(loop.sock_recv(c.sock, 65536), 0.05)
                replies += 1
            except asyncio.TimeoutError:
                break
        assert replies >= min(cnt["errors"], ERROR_REPLIES_PER_S) * 0.5
        # the input stops: closing OSC releases its notes, the parts fall silent
        server.close()
        out, rows = render_rows(s, 3 * SR, drv)
        assert np.all(np.isfinite(out))
        assert s.state.counters()["voices"] == 0 and rows[KEYS][-SR // 10:].max() < 1e-6
        c.close()
    run(main())


def test_bundle_garbage_is_one_error(cfg):
    async def main():
        s = Session(cfg, SR)
        server, c = await serve(s)
        good = bundle(osc_types.IMMEDIATELY, _msg("/bass/mix/pan", 0.5))
        c.raw(good[:-3])                                       # truncated inside
        c.raw(good[:8] + struct.pack(">Q", 1) + struct.pack(">i", 10 ** 6) + b"\0" * 8)
        c.raw(b"")
        for i in range(3):
            r = await c.recv(f"bad packet error {i}")
            assert r.address == "/bandmate/error" and "bad packet" in r.params[1]
        assert server.counters["bad_packets"] == 3
        assert s.graph.program.value_of("/bass/mix/pan") != 0.5
        server.close()
        c.close()
    run(main())


# ---- config and the live run ---------------------------------------------------------------------

def test_config_turns_it_on(cfg):
    assert cfg["osc"]["enabled"] is False
    s = Session(cfg, SR)
    assert server_from_config(s, cfg) is None
    cfg["osc"].update(enabled=True, port=0)
    server = server_from_config(s, cfg)
    assert isinstance(server, OscServer) and server.port == 0


def test_the_live_run_serves_osc_when_enabled(cfg):
    from engine.control import live

    from tests.enginekit import NullStream as Stream

    async def main():
        cfg["osc"].update(enabled=True, port=0, host="127.0.0.1")
        s = Session(cfg, SR)
        stream = Stream()
        lr = live.LiveRun(s, stream, log=lambda text: None)
        task = asyncio.create_task(lr.run(30.0))
        await until(lambda: lr.osc is not None and lr.osc.address is not None,
                    "the live run's OSC server")
        c = Client(lr.osc)
        c.send("/bass/mix/pan", 0.75)
        c.send("/bandmate/get", "/bass/mix/pan")
        r = await c.recv("the live run's reply")
        assert r.params == [0.75]
        lr.stop()
        await asyncio.wait_for(task, 10.0)
        assert stream.closed and lr.osc.transport is None
        c.close()
    run(main())


def test_cli_osc_flag_turns_it_on():
    from engine.cli import _overrides, _parser
    args = _parser().parse_args(["jam", "--osc", "9100"])
    assert _overrides(args)["osc"] == {"enabled": True, "port": 9100}
    assert "osc" not in _overrides(_parser().parse_args(["jam"]))


def test_a_bundle_lands_on_its_sample_while_audio_runs_on_its_own_thread(cfg):
    """As live: a thread renders blocks paced by the wall clock (the audio thread: it drains
    the queues and stamps the clock anchor), the server runs on the asyncio thread. A note
    tagged 0.3 s ahead sounds on the sample the server computed (unless the host stalled this
    loop past it: then at once, counted late)."""
    import threading
    from engine.rt.render import run_block

    async def main():
        s = Session(cfg, SR)
        server, c = await serve(s)
        block, frames = 256, SR * 4
        rec = np.zeros(frames + block)
        stop = threading.Event()

        def audio():
            table, bus = s.state.table, s.state.arrays[L.S_BUS]
            done, start = 0, time.monotonic()
            while done < frames and not stop.is_set():
                run_block(table, block)
                row = L.B_PART0 + 2 * DRUMS
                rec[done:done + block] = np.abs(bus[row, :block]) + np.abs(bus[row + 1, :block])
                done += block
                ahead = start + done / SR - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)

        thread = threading.Thread(target=audio, daemon=True)
        thread.start()
        try:
            await until(lambda: s.state.sample_clock() is not None, "the audio clock")
            await asyncio.sleep(0.2)
            c.raw(bundle(time.time() + 0.3, _msg("/bandmate/note", "drums", 36, 127)))
            await handled(server, 1)
            at = int(server.last_time)
            assert server.counters["errors"] == 0, server.last_error
            await until(lambda: s.state.sample_time > at + block, "the audio past the note",
                        timeout=30.0)
        finally:
            stop.set()
            await asyncio.get_running_loop().run_in_executor(None, thread.join, 10.0)
        if s.state.counters()["late_events"] == 0:
            assert first_nonzero(rec) == at
        else:       # the host stalled the loop past the tag: it played at once, counted
            assert s.state.counters()["late_events"] == 1 and first_nonzero(rec) > at
        server.close()
        c.close()
    run(main())
