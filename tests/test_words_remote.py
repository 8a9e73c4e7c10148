"""Words over the network (engine.control.remote's WORD_COMMANDS): `/bandmate/edit PART PHRASE`,
`/bandmate/undo PART` and `/bandmate/prompt TEXT` over real UDP, the same as MQTT commands
through a real mosquitto and the embedded broker. An edit sets exactly what the terminal's
`:edit` sets (the same session calls, smoothed by the graph), undo puts every value back, and a
bad command gets its reason, is counted and changes nothing. Every wait has a timeout."""
from __future__ import annotations

import json

import pytest

from engine.commands import live_command
from engine.control.session import Session
from engine.words.design import live_words
from tests.test_mqtt import Broker, until
from tests.test_mqtt import broker_kind  # noqa: F401 - the broker fixture
from tests.test_osc import handled, run, serve

SR = 48000
PHRASE = "darker, more air, less bite"


def snapshot(session) -> dict:
    return {a: session.value(a) for a in session.addresses()}


def changed(before: dict, after: dict) -> dict:
    return {a: v for a, v in after.items() if before[a] != v}


def terminal_edit(cfg, part: str, phrase: str) -> dict:
    """What the terminal's `:edit` changes on a fresh session."""
    s = Session(cfg, SR)
    before = snapshot(s)
    reply = live_command(s, f"edit {part} {phrase}")
    assert reply.startswith(f"{part}: "), reply
    return changed(before, snapshot(s))


def test_osc_edit_undo_and_prompt(cfg):
    want = terminal_edit(cfg, "keys", PHRASE)
    assert "/keys/synth/cutoff_hz" in want

    async def main():
        s = Session(cfg, SR)
        server, c = await serve(s)
        try:
            original = snapshot(s)
            c.send("/bandmate/edit", "keys", PHRASE)
            reply = await c.recv("the edit's reply")
            assert reply.address == "/bandmate/edit" and reply.params[0].startswith("keys: ")
            assert "dark" in reply.params[0]
            assert changed(original, snapshot(s)) == want     # exactly the terminal's edit
            c.send("/bandmate/edit", "keys", "much brighter")
            await c.recv("the second edit's reply")
            assert s.value("/keys/synth/cutoff_hz") > want["/keys/synth/cutoff_hz"]
            c.send("/bandmate/undo", "keys")
            reply = await c.recv("the undo's reply")
            assert "1 more to undo" in reply.params[0]
            assert changed(original, snapshot(s)) == want
            c.send("/bandmate/undo", "keys")
            await c.recv("the second undo's reply")
            assert snapshot(s) == original
            c.send("/bandmate/prompt", "96 bpm, sparse drums")
            reply = await c.recv("the prompt's reply")
            assert reply.address == "/bandmate/prompt" and "96" in reply.params[0]
            assert s.value("/transport/tempo_bpm") == 96.0
            assert s.value("/drums/agent/density") == 0.2
            assert server.counters["errors"] == 0, server.last_error
            counts = live_words(s).counts
            assert (counts["edits"], counts["undos"], counts["prompts"]) == (2, 2, 1)
        finally:
            server.close()
            c.close()
    run(main())


@pytest.mark.parametrize("address, args, reason", [
    ("/bandmate/edit", ["nope", "darker"], "part must be one of"),
    ("/bandmate/edit", ["keys", "zorblax"], "nothing moved"),
    ("/bandmate/edit", ["keys", ""], "phrase must be words"),
    ("/bandmate/edit", ["keys", "dark " * 100], "at most 400 characters"),
    ("/bandmate/edit", ["keys"], "takes part, phrase"),
    ("/bandmate/edit", ["keys", 3.0], "phrase must be words"),
    ("/bandmate/undo", ["bass"], "bass: no live edits to undo"),
    ("/bandmate/prompt", ["zorblax flibber"], "nothing understood"),
    ("/bandmate/prompt", ["9999 bpm"], "tempo_bpm"),
])
def test_a_bad_osc_words_command_changes_nothing(cfg, address, args, reason):
    async def main():
        s = Session(cfg, SR)
        server, c = await serve(s)
        try:
            before = snapshot(s)
            c.send(address, *args)
            reply = await c.recv("the error")
            assert reply.address == "/bandmate/error" and reply.params[0] == address
            assert reason in reply.params[1], reply.params
            await handled(server, 1)
            assert server.counters["errors"] == 1 and snapshot(s) == before
        finally:
            server.close()
            c.close()
    run(main())


def test_mqtt_edit_undo_and_prompt(cfg, broker_kind, tmp_path):  # noqa: F811
    want = terminal_edit(cfg, "bass", "rounder, less bite")

    async def main():
        s = Session(cfg, SR)
        br = Broker(broker_kind, tmp_path)
        try:
            bridge = await br.bridge(s)
            original = snapshot(s)
            async with br.client("alice") as c:
                cmd = "bandmate/in/alice/"
                await c.send(cmd + "edit", {"part": "bass", "phrase": "rounder, less bite"})
                r = json.loads(await c.wait_for(lambda: c.last("bandmate/out/alice/edit"),
                                                "the edit's reply"))
                assert r["reply"].startswith("bass: ")
                assert changed(original, snapshot(s)) == want
                await c.send(cmd + "undo", {"part": "bass"})
                await c.wait_for(lambda: c.last("bandmate/out/alice/undo"), "the undo's reply")
                assert snapshot(s) == original
                await c.send(cmd + "prompt", json.dumps("70 bpm, busy drums"))   # a JSON string
                await c.wait_for(lambda: c.last("bandmate/out/alice/prompt"), "the prompt")
                assert s.value("/transport/tempo_bpm") == 70.0
                assert s.value("/drums/agent/density") == 0.8
                assert bridge.counters["errors"] == 0, bridge.last_error
                # bad ones: answered on the client's error topic, counted, nothing changed
                before = snapshot(s)
                for command, payload in (("edit", {"part": "bass"}),
                                         ("edit", {"part": "bass", "phrase": ["dark"]}),
                                         ("undo", {"part": "bass"}),
                                         ("prompt", {"text": "qwzx"})):
                    await c.send(cmd + command, payload)
                await until(lambda: bridge.counters["errors"] >= 4, "four errors")
                await c.wait_for(lambda: len(c.on("bandmate/out/alice/error")) >= 4,
                                 "four error replies")
                reasons = [json.loads(m)["reason"] for m in c.on("bandmate/out/alice/error")]
                assert "missing 'phrase'" in reasons[0] and "phrase must be a string" in \
                    reasons[1] and "no live edits" in reasons[2] and "qwzx" in reasons[3]
                assert snapshot(s) == before and bridge.counters["errors"] == 4
        finally:
            await br.close()
    run(main())
