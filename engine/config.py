"""bandmate's configuration: `config.toml`, then environment variables, then CLI flags
(control side). Every value is validated; errors name the file, line and key.

Environment variables are `BANDMATE_<SECTION>_<KEY>`, e.g. `BANDMATE_AUDIO_DEVICE=system`,
`BANDMATE_BAND_TEMPO_BPM=96`; their values are parsed as TOML values when they can be
(numbers, booleans, lists) and taken as strings otherwise.
"""
from __future__ import annotations

import os
import tomllib
from pathlib import Path

from engine.agents.arp import INPUTS as ARP_INPUTS
from engine.agents.arp import MODES as ARP_MODES
from engine.agents.arp import ARP_PARTS
from engine.agents.arp import RATES as ARP_RATES
from engine.agents.arp import RETRIGGERS as ARP_RETRIGGERS
from engine.agents.arp import VELOCITY_MODES as ARP_VELOCITY_MODES
from engine.agents.base import STYLES
from engine.control.sync import SYNC_SOURCES
from engine.tomldata import DataError, Field, Schema, WordOrNumber, load, validate


class Chain(Field):
    """A list of unit tables (engine.declared.check_chain says what is valid)."""

    def check(self, value):
        from engine.declared import check_chain
        check_chain(value)
        return value


class ScheduleField(Field):
    """A list of `{ at = "HH:MM", scene = "NAME" }` tables (engine.control.serve says what is
    valid)."""

    def check(self, value):
        from engine.control.serve import parse_schedule
        parse_schedule(value)
        return value


class PartRoute(Field):
    """A part's MIDI out route: {} (not routed) or { channel = 1..16, internal = true|false }."""

    def check(self, value):
        if not isinstance(value, dict):
            raise ValueError(f"must be a table like {{ channel = 2, internal = false }}, "
                             f"got {value!r}")
        if not value:
            return {}
        unknown = set(value) - {"channel", "internal"}
        if unknown:
            raise ValueError(f"unknown key {sorted(unknown)[0]!r}; known: channel, internal")
        ch = value.get("channel")
        if isinstance(ch, bool) or not isinstance(ch, int) or not 1 <= ch <= 16:
            raise ValueError(f"channel must be 1..16, got {ch!r}")
        internal = value.get("internal", True)
        if not isinstance(internal, bool):
            raise ValueError(f"internal must be true or false, got {internal!r}")
        return {"channel": ch, "internal": internal}


# The default mix's width: the pads through a wide chorus, the kit in a small stereo room
# (inter-channel correlation of the demo about 0.8; every part still sums to mono within 1.3 dB).
DEFAULT_INSERTS = {
    "chords": [{"unit": "chorus", "spread": 1.0, "mix": 0.6, "voices": "3", "depth_ms": 4.0}],
    "drums": [{"unit": "reverb", "size": 0.3, "decay_s": 0.6, "predelay_ms": 3.0,
               "damping_hz": 7000.0, "wet_level": 0.45, "dry_level": 1.0}],
}

SCHEMA: Schema = {
    "audio": {
        "driver": Field("portaudio", "portaudio (any sound card) or jack (JACK/PipeWire)",
                        choices=("portaudio", "jack")),
        "device": Field("default", "output device name (or a unique part of it)"),
        "sample_rate": Field(0, "Hz; 0 = the device's own rate", lo=0, hi=192000),
        "block_size": Field(64, "frames per callback (PortAudio)", lo=16, hi=4096),
        "latency": WordOrNumber("low", "PortAudio suggested latency: low, high, or seconds",
                                lo=0.0005, hi=1.0, choices=("low", "high")),
        "callback": Field("compiled", "compiled (GIL-free) or python (fallback)",
                          choices=("compiled", "python")),
        "connect": Field(["auto"], "JACK ports to connect the outputs to (auto: system)"),
        "polyphony_keys": Field(64, "voices of the player's synth", lo=8, hi=256),
    },
    "midi": {
        "api": Field("auto", "rtmidi API", choices=("auto", "alsa", "jack", "coremidi",
                                                    "windows")),
        "inputs": Field(["all"], "MIDI inputs to open: all, or names / parts of names"),
        "latency_mode": Field("fixed", "asap: next block; fixed: a constant delay after the "
                              "MIDI backend's time stamp", choices=("asap", "fixed")),
        "fixed_latency_ms": Field(5.0, "the constant delay of the fixed mode", lo=0.5, hi=100.0),
        "virtual_port": Field(True, "open a 'bandmate in' port other programs can play"),
        "computer_keyboard": Field(True, "play notes from the terminal when it is a TTY"),
        "mapping": Field("", "MIDI mapping file (knobs -> parameters, splits, program "
                         "changes; `bandmate learn` writes it); empty: none"),
    },
    "band": {
        "tempo_bpm": Field(112.0, "tempo", lo=20.0, hi=400.0),
        "beats_per_bar": Field(4, "meter numerator (quarter-note beats)", lo=2, hi=12),
        "swing": Field(0.0, "0 straight .. 0.5 hard swing of the off-beat eighths",
                       lo=0.0, hi=0.5),
        "style": Field("rock", "drum and bass style", choices=tuple(STYLES)),
        "groove": Field(1.0, "how much of the style's groove template (timing, accents, "
                        "swing) the band plays with: 0 straight .. 1 as written", lo=0.0, hi=1.0),
        "seed": Field(1, "random seed: same seed, same music", lo=0, hi=2**31 - 1),
        "lookahead_ms": Field(80.0, "how far ahead the band is scheduled", lo=10.0, hi=1000.0),
        "drums": Field(True, "drum agent plays"),
        "bass": Field(True, "bass agent plays"),
        "chords": Field(False, "chord agent plays while jamming (the demo always has chords)"),
        "lead": Field(False, "lead agent plays while jamming"),
        "answer": Field(False, "the lead answers the player's phrases (call and response)"),
        "memory": Field(True, "the band learns the chord loop you repeat and plays its changes "
                        "with you (/band/memory)"),
    },
    "arp": {
        "on": Field(False, "the arpeggiator plays (/arp/on; README: Arpeggiator)"),
        "input": Field("held", "held: the player's held notes are arpeggiated instead of "
                       "sounding as chords; chords: it arpeggiates the harmony in force (the "
                       "player's chords, else the band's progression)", choices=ARP_INPUTS),
        "channel": Field(0, "the MIDI channel whose keys-part notes the arpeggiator takes "
                         "(input held); 0: every channel", lo=0, hi=16),
        "part": Field("keys", "the part the arpeggio plays on", choices=ARP_PARTS),
        "mode": Field("up", "note order", choices=ARP_MODES),
        "rate": Field("1/16", "one step: 1/4, 1/8, 1/16, 1/32, dotted (1/8d), triplet (1/8t)",
                      choices=ARP_RATES),
        "octaves": Field(1, "octaves the pattern climbs", lo=1, hi=4),
        "octave": Field(0, "the arpeggio moved by whole octaves", lo=-2, hi=2),
        "gate": Field(0.5, "note length, a share of the step", lo=0.01, hi=1.0),
        "latch": Field(False, "released notes play on until a new chord is played"),
        "retrigger": Field("chord", "the pattern restarts: off (never), chord (on a new "
                           "chord), bar (on every bar line)", choices=ARP_RETRIGGERS),
        "velocity_mode": Field("played", "played: each note's own velocity; fixed: velocity",
                               choices=ARP_VELOCITY_MODES),
        "velocity": Field(0.8, "every note's velocity when velocity_mode is fixed",
                          lo=0.0, hi=1.0),
    },
    "library": {
        "folders": Field(["patches"], "patch folders (your own beside the factory's): "
                         "`bandmate patches` lists them, `bandmate preview` finds names in "
                         "them, and a live run watches them (an edit is checked at once)"),
    },
    "patches": {
        "keys": Field("patches/keys.toml", "synth patch of the player's part"),
        "bass": Field("patches/bass.toml", ""),
        "chords": Field("patches/chords.toml", ""),
        "lead": Field("patches/lead.toml", ""),
        "drums": Field("", "a drum kit patch (engine = \"kit\"); empty: the kit's defaults"),
    },
    "mix": {
        f"{part}_{what}": Field(default, lo=lo, hi=hi)
        for part, sends in (("keys", (0.0, 0.0, 0.12, 0.25)), ("bass", (0.0, 0.0, 0.0, 0.02)),
                            ("chords", (0.0, -0.15, 0.0, 0.45)), ("lead", (0.0, 0.25, 0.3, 0.3)),
                            ("drums", (0.0, 0.0, 0.0, 0.12)))
        for (what, lo, hi), default in zip((("gain_db", -70.0, 12.0), ("pan", -1.0, 1.0),
                                            ("delay_send", 0.0, 1.0), ("reverb_send", 0.0, 1.0)),
                                           sends)
    } | {
        "ceiling_db": Field(-1.0, "limiter ceiling, dBFS", lo=-24.0, hi=0.0),
        "master_gain_db": Field(-2.0, "into the limiter", lo=-60.0, hi=24.0),
        "master_inserts": Chain([], "units on the master before the limiter, e.g. "
                                "[{ unit = \"eq\", low_shelf_gain_db = 2.0 }]"),
        "delay_chain": Chain([{"unit": "delay", "dry_level": 0.0}],
                             "the units of the delay send (wet only: dry_level 0)"),
        "reverb_chain": Chain([{"unit": "reverb", "dry_level": 0.0}],
                              "the units of the reverb send (wet only: dry_level 0)"),
    } | {
        f"{part}_inserts": Chain(DEFAULT_INSERTS.get(part, []),
                                 f"units on the {part} part before its fader, e.g. "
                                 "[{ unit = \"compressor\", sidechain = \"drums\" }]")
        for part in ("keys", "bass", "chords", "lead", "drums")
    } | {
        "limiter": Field("safety", "safety: no delay (live and offline alike); lookahead: "
                         "transparent, 1.5 ms later", choices=("safety", "lookahead")),
    },
    "osc": {
        "enabled": Field(False, "serve OSC over UDP (README: OSC)"),
        "host": Field("127.0.0.1", "address to listen on (0.0.0.0: every interface)"),
        "port": Field(9000, "UDP port to listen on", lo=0, hi=65535),
        "reply_port": Field(0, "replies to this port on the sender's host; 0: to the port "
                            "the message came from", lo=0, hi=65535),
        "poll_hz": Field(20.0, "how often subscribed values are checked for changes",
                         lo=1.0, hi=200.0),
        "max_ahead_s": Field(10.0, "a bundle's time tag may be this far ahead", lo=0.1,
                             hi=600.0),
    },
    "serve": {
        "log_file": Field("", "the installation log (rotated); empty: standard error "
                          "(systemd's journal)"),
        "log_max_bytes": Field(1_000_000, "a log file is rolled over at this size",
                               lo=1000, hi=2**31 - 1),
        "log_backups": Field(5, "rolled-over log files kept", lo=1, hi=1000),
        "status_every_s": Field(60.0, "a status line in the log this often", lo=0.1,
                                hi=86400.0),
        "schedule": ScheduleField([], "daily scene changes: [{ at = \"08:00\", scene = "
                                  "\"morning\" }, ...]; the one in force is recalled at start"),
        "stall_s": Field(5.0, "the audio is restarted when its clock stands still this long",
                         lo=0.2, hi=600.0),
        "restart_min_s": Field(1.0, "first wait before retrying to open the audio", lo=0.01,
                               hi=600.0),
        "restart_max_s": Field(30.0, "longest wait between retries (the wait doubles)",
                               lo=0.01, hi=3600.0),
        "midi_dir": Field("", "the notes played go to a MIDI file here every midi_roll_s; "
                          "empty: not kept"),
        "midi_roll_s": Field(3600.0, "how often the recording is rolled into a file",
                             lo=1.0, hi=86400.0),
        "midi_keep": Field(168, "MIDI files kept (the oldest are removed)", lo=1, hi=100000),
    },
    "scenes": {
        "file": Field("scenes.toml", "scene file: named sets of address = value, recalled with "
                      "`:scene NAME`, OSC /bandmate/scene or a program change (README: Address "
                      "space and scenes)"),
    },
    "mqtt": {
        "enabled": Field(False, "MQTT control and state (README: MQTT)"),
        "host": Field("", "the broker's host; empty: start the embedded broker"),
        "port": Field(1883, "the broker's port (with host)", lo=1, hi=65535),
        "embedded_host": Field("127.0.0.1", "where the embedded broker listens (0.0.0.0: "
                               "every interface)"),
        "embedded_port": Field(1883, "the embedded broker's port; 0: any free port",
                               lo=0, hi=65535),
        "prefix": Field("bandmate", "the topics' first level(s)"),
        "client_id": Field("bandmate", "bandmate's MQTT client id"),
        "username": Field("", "login (the embedded broker then asks every client for it)"),
        "password": Field(""),
        "tls": Field(False, "TLS to the broker (on with ca_file or cert_file too)"),
        "ca_file": Field("", "CA certificates (PEM); empty: the system's"),
        "cert_file": Field("", "client certificate (PEM)"),
        "key_file": Field("", "its private key"),
        "tls_insecure": Field(False, "do not check the broker's certificate (testing only)"),
        "keepalive_s": Field(30, "MQTT keepalive", lo=5, hi=3600),
        "reconnect_min_s": Field(0.5, "first wait before reconnecting", lo=0.05, hi=60.0),
        "reconnect_max_s": Field(30.0, "the wait doubles up to this", lo=0.1, hi=3600.0),
        "rate_per_s": Field(100.0, "commands a second per client (more: dropped, counted)",
                            lo=1.0, hi=100000.0),
        "burst": Field(200, "commands a client may send at once", lo=1, hi=100000),
        "publish_hz": Field(10.0, "how often state (position, levels, values) is published",
                            lo=0.5, hi=100.0),
    },
    "sync": {
        "source": Field("internal", "what drives the band's tempo: internal (bandmate's own), "
                        "midi_clock (24-ppqn clock, Start/Stop/Continue on a MIDI input), "
                        "link (an Ableton Link session on the local network) or player (the "
                        "tempo and downbeat heard in the player's notes)",
                        choices=SYNC_SOURCES),
        "window_ticks": Field(96, "MIDI clock ticks the tempo is fitted over (24 a beat): "
                              "more is steadier, fewer follows a tempo change sooner",
                              lo=12, hi=960),
        "max_nudge_pct": Field(4.0, "the most the tempo is bent (percent) to bring the band's "
                               "beat back onto the external one", lo=0.1, hi=20.0),
        "phase_gain": Field(0.5, "share of the phase error corrected per beat", lo=0.05,
                            hi=1.0),
        "min_change_bpm": Field(0.01, "tempo changes smaller than this are not sent",
                                lo=0.001, hi=5.0),
        "realign_beats": Field(0.25, "a phase error above this is not nudged away: the band "
                               "pauses and comes back in on the next bar line", lo=0.05,
                               hi=2.0),
        "latency_ms": Field(0.0, "the band's beats this much before the external ones (the "
                            "sound card's output latency)", lo=0.0, hi=500.0),
        "link_quantum": Field(0, "Link: beats of the phase aligned with the session; 0: "
                              "[band] beats_per_bar", lo=0, hi=64),
        "link_start_stop": Field(True, "Link: start and stop with the session's transport "
                                 "when a peer starts or stops it"),
        "player_chord_window_ms": Field(40.0, "player: notes this close together are one "
                                        "onset (a chord counts once)", lo=5.0, hi=150.0),
        "player_phase_gain": Field(0.8, "player: share of the phase error corrected per beat "
                                   "(the band's next beat is fixed a beat ahead, so it takes "
                                   "the freshest estimate more than the MIDI clock's)",
                                   lo=0.05, hi=1.0),
        "player_hold_beats": Field(4.0, "player: this many beats without a note and the band "
                                   "holds the last tempo until the player comes back", lo=1.0,
                                   hi=64.0),
        "tap_reset_s": Field(2.5, "tap tempo: a pause longer than this starts a new count",
                             lo=0.5, hi=10.0),
        "tap_history": Field(8, "tap tempo: intervals whose median is the tempo", lo=2,
                             hi=64),
    },
    "midi_out": {
        "port": Field("", "JACK driver: JACK MIDI inputs to connect midi_out to (names or "
                      "regexes, comma-separated; empty: none); other drivers: the rtmidi "
                      "output port to open (exact or unique part of its name; empty: a virtual "
                      "port 'bandmate out')"),
        "clock": Field(False, "send MIDI clock (24 ppqn), Start, Stop, Song Position"),
        "drum_gate_ms": Field(50.0, "length of the drums' notes on MIDI out (they have no "
                              "note-off of their own)", lo=1.0, hi=1000.0),
        "thru": Field(False, "MIDI thru: echo the player's notes, controls and pitch bend to "
                      "MIDI out (controls the MIDI mapping binds excepted)"),
        "thru_channel": Field(0, "MIDI thru's channel: 0 each message on its own, 1..16 all "
                              "on that one", lo=0, hi=16),
    } | {
        part: PartRoute({}, f"play {part} on MIDI out: {{ channel = 1..16, internal = "
                        "true|false }} (internal = false: its own instrument is silent)")
        for part in ("keys", "bass", "chords", "lead", "drums")
    },
    "render": {
        "seconds": Field(60.0, "length of `bandmate render` / the offline demo", lo=0.1,
                         hi=36000.0),
        "block_size": Field(512, "offline block size (does not change the output)",
                            lo=1, hi=4096),
        "sample_rate": Field(48000, "offline sample rate", lo=8000, hi=192000),
        "output": Field("out/bandmate.wav", "WAV path; a .mid of the notes is written beside"),
    },
}


def _env_value(raw: str, field: Field):
    """A variable's text as a value: a TOML value where it parses as one (numbers, booleans,
    lists, quoted strings), except that a string setting keeps the text as written (a device
    called 2 is a name)."""
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw
    if isinstance(field.default, str) and not isinstance(field, WordOrNumber) \
            and not isinstance(value, str):
        return raw
    return value


def load_config(path: str | Path | None = "config.toml", overrides: dict | None = None,
                environ: dict | None = None) -> dict:
    """The configuration: defaults < file < environment < `overrides` ({section: {key: v}})."""
    environ = os.environ if environ is None else environ
    cfg = validate({}, SCHEMA)
    if path is not None and Path(path).exists():
        for section, values in load(path, SCHEMA, partial=True).items():
            cfg[section].update(values)
    env: dict = {}
    for name, raw in environ.items():
        if not name.startswith("BANDMATE_"):
            continue
        rest = name[len("BANDMATE_"):].lower()
        # the section is a prefix (one may hold "_": BANDMATE_MIDI_OUT_CLOCK)
        found = [(sec, rest[len(sec) + 1:]) for sec in SCHEMA
                 if rest.startswith(sec + "_") and rest[len(sec) + 1:] in SCHEMA[sec]]
        if len(found) != 1:
            raise DataError(f"environment: {name}: no such setting" if not found else
                            f"environment: {name}: ambiguous ({found})")
        section, key = found[0]
        env.setdefault(section, {})[key] = _env_value(raw, SCHEMA[section][key])
    for source, data in (("environment", env), ("command line", overrides or {})):
        checked = validate(data, SCHEMA, where=source, partial=True)
        for section, values in checked.items():
            cfg[section].update(values)
    return cfg
