"""The `bandmate` command (control side).

    bandmate devices                 audio outputs and MIDI inputs
    bandmate jam                     play with the band (MIDI keyboard or computer keyboard)
    bandmate demo                    a one-minute arranged demo on the sound card (or a WAV)
    bandmate render -o out.wav       render offline: --seconds, --seed, --midi player.mid
                                     (`jam` and `render` take --prompt "funky, 96 bpm")
                                     (`jam` and `render` take --form "intro:4 verse:8 ...")
    bandmate learn ADDRESS           MIDI learn: the next control moved drives ADDRESS
    bandmate serve                   installation mode: headless for days ([serve] in config)
    bandmate patch from-text "a warm, ethereal pad" -o patches/mine.toml
    bandmate patch edit PATCH "more air, less bite"      (bandmate patch undo PATCH)

`jam` and `demo` take `--osc PORT`: steer the session over OSC (UDP) on that port, e.g.
`/bass/synth/cutoff_hz 800.0`, `/bandmate/note keys 60 100` (README: OSC; config [osc]),
and `--mqtt [HOST[:PORT]]`: MQTT control through that broker, or with no HOST through an
embedded one on 127.0.0.1:1883 (README: MQTT; config [mqtt]).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.config import load_config
from engine.tomldata import DataError


def _overrides(args) -> dict:
    o: dict = {}

    def put(section, key, value):
        if value is not None:
            o.setdefault(section, {})[key] = value

    put("audio", "driver", args.driver)
    put("audio", "device", args.device)
    put("audio", "sample_rate", args.sample_rate)
    put("audio", "block_size", args.block_size)
    put("band", "tempo_bpm", args.tempo)
    put("band", "seed", args.seed)
    put("band", "style", args.style)
    put("band", "meter", args.meter)
    put("midi", "latency_mode", args.latency_mode)
    if getattr(args, "arp", None) is not None:
        put("arp", "on", True)
        put("arp", "mode", args.arp)
    if getattr(args, "sync", None) is not None:
        put("sync", "source", {"midi": "midi_clock"}.get(args.sync, args.sync))
    if getattr(args, "osc", None) is not None:
        put("osc", "enabled", True)
        put("osc", "port", args.osc)
    if getattr(args, "mqtt", None) is not None:
        put("mqtt", "enabled", True)
        if args.mqtt:
            host, port = _host_port(args.mqtt)
            put("mqtt", "host", host)
            put("mqtt", "port", port)
    if args.command == "render":          # an offline render has its own rate and block size
        o.pop("audio", None)
        put("render", "sample_rate", args.sample_rate)
        put("render", "block_size", args.block_size)
    return o


def _host_port(text: str) -> tuple[str, int | None]:
    """HOST, HOST:PORT or [IPv6]:PORT."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, ""
    if not host or (port and not port.isdigit()):
        raise DataError(f"--mqtt: {text!r}: give HOST or HOST:PORT")
    return host, int(port) if port else None


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="bandmate", description="a real-time AI bandmate")
    ap.add_argument("--config", help="configuration file (default: ./config.toml if present)")
    sub = ap.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--driver", choices=("portaudio", "jack"))
    common.add_argument("--device", help="audio output device (name or part of it)")
    common.add_argument("--sample-rate", type=int)
    common.add_argument("--block-size", type=int)
    common.add_argument("--tempo", type=float, help="BPM")
    common.add_argument("--seed", type=int)
    common.add_argument("--style")
    common.add_argument("--meter", help="time signature to jam in: 4/4, 3/4, 6/8, 12/8, 5/4...")
    common.add_argument("--latency-mode", choices=("asap", "fixed"))
    sub.add_parser("devices", parents=[common], help="list audio outputs and MIDI inputs")
    sub.add_parser("units", parents=[common],
                   help="list the effect units and their parameters (for inserts)")
    sub.add_parser("patches", parents=[common],
                   help="list the patches (factory and your own) with their tags")
    prev = sub.add_parser("preview", parents=[common],
                          help="render a patch playing a phrase to a WAV and a spectrogram PNG")
    prev.add_argument("patch", help="a patch name (bandmate patches) or a .toml file")
    prev.add_argument("-o", "--output", help="WAV path (default out/preview-NAME.wav)")
    pat = sub.add_parser("patch", parents=[common],
                         help="patches from words: from-text, edit, undo (docs/words.md)")
    psub = pat.add_subparsers(dest="patch_command", required=True)
    ft = psub.add_parser("from-text", help="a patch from a description, e.g. \"a warm, "
                         "ethereal pad that shimmers like glass\"")
    ft.add_argument("text", help="the description (quote it)")
    ft.add_argument("-o", "--output", help="patch file to write (default: print it)")
    ed = psub.add_parser("edit", help="move a patch file with words: \"more air, less bite\"")
    ed.add_argument("patch", help="a patch name (bandmate patches) or a .toml file")
    ed.add_argument("text", help="the edit (quote it)")
    un = psub.add_parser("undo", help="put back a patch file as it was before its last edit")
    un.add_argument("patch", help="a patch name or a .toml file")
    for p in (ft, ed):
        p.add_argument("--no-model", action="store_true",
                       help="vocabulary only, even when the embedding extra is installed")
    jam = sub.add_parser("jam", parents=[common], help="play live with the band")
    jam.add_argument("--seconds", type=float, help="stop after this long")
    jam.add_argument("--no-keyboard", action="store_true", help="no computer-keyboard piano")
    prompt_help = ('a style prompt for the band, e.g. "funky, 96 bpm, sparse drums, dreamy '
                   'keys" or "70%% lofi, 30%% bossa" (README: Sound from words)')
    jam.add_argument("--prompt", metavar="TEXT", help=prompt_help)
    from engine.agents.arp import MODES
    arp_help = ("arpeggiate your held notes in this mode (config [arp]; `:arp` while "
                "jamming; README: Arpeggiator)")
    jam.add_argument("--arp", choices=MODES, metavar="MODE", help=arp_help)
    form_help = ('a song form: "intro:4 verse:8 chorus:8 bridge:4 chorus:8 outro:4" or a form '
                 '.toml file (README: Song form)')
    jam.add_argument("--form", metavar="FORM", help=form_help)
    lrn = sub.add_parser("learn", parents=[common],
                         help="MIDI learn: bind the next control you move to ADDRESS and save it "
                              "in the mapping file ([midi] mapping)")
    lrn.add_argument("address", help="a parameter address, e.g. /keys/synth/cutoff_hz")
    lrn.add_argument("--timeout", type=float, default=30.0, help="seconds to wait (default 30)")
    osc_help = ("serve OSC on this UDP port: /bass/synth/cutoff_hz 800, .../norm 0..1, "
                "/bandmate/note PART NOTE VEL, /bandmate/tempo BPM, /bandmate/get|subscribe "
                "ADDRESS, /bandmate/addresses; errors on /bandmate/error (README: OSC)")
    jam.add_argument("--osc", type=int, metavar="PORT", help=osc_help)
    mqtt_help = ("MQTT control through the broker at HOST[:PORT], or with no HOST an embedded "
                 "broker on 127.0.0.1:1883: commands on bandmate/in/CLIENT/set|tempo|note|..., "
                 "state on bandmate/state/... (README: MQTT)")
    jam.add_argument("--mqtt", nargs="?", const="", metavar="HOST[:PORT]", help=mqtt_help)
    jam.add_argument("--sync", choices=("internal", "midi", "link", "player"),
                     help="follow MIDI clock, an Ableton Link session or the player's own "
                          "timing (config [sync]; README: Tempo sync, Following the player)")
    srv = sub.add_parser("serve", parents=[common],
                         help="installation mode: play headless until SIGTERM, log to "
                              "[serve] log_file, scenes on [serve] schedule, audio restarted "
                              "when it stops (README: Installation mode)")
    srv.add_argument("--seconds", type=float, help="stop after this long")
    srv.add_argument("--osc", type=int, metavar="PORT", help=osc_help)
    srv.add_argument("--mqtt", nargs="?", const="", metavar="HOST[:PORT]", help=mqtt_help)
    srv.add_argument("--sync", choices=("internal", "midi", "link", "player"),
                     help="follow MIDI clock, an Ableton Link session or the player's timing "
                          "(config [sync])")
    demo = sub.add_parser("demo", parents=[common], help="play (or render) the demo song")
    demo.add_argument("-o", "--output", help="WAV path when rendering")
    demo.add_argument("--osc", type=int, metavar="PORT", help=osc_help)
    demo.add_argument("--mqtt", nargs="?", const="", metavar="HOST[:PORT]", help=mqtt_help)
    ren = sub.add_parser("render", parents=[common], help="render offline to a WAV file")
    ren.add_argument("--seconds", type=float)
    ren.add_argument("-o", "--output", help="WAV path (a .mid is written beside it)")
    ren.add_argument("--midi", help="a MIDI file played as the player's part")
    ren.add_argument("--demo", action="store_true", help="render the arranged demo song")
    ren.add_argument("--prompt", metavar="TEXT", help=prompt_help)
    ren.add_argument("--arp", choices=MODES, metavar="MODE",
                     help="arpeggiate the --midi file's notes in this mode (config [arp])")
    ren.add_argument("--sync", choices=("internal", "player"),
                     help="player: with --midi, the band follows the file's notes by ear (the "
                          "tempo and downbeat heard in them) instead of reading its tempo map")
    ren.add_argument("--form", metavar="FORM", help=form_help)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.config is not None and not Path(args.config).is_file():
        print(f"bandmate: {args.config}: no such configuration file", file=sys.stderr)
        return 2
    config = args.config or ("config.toml" if Path("config.toml").is_file() else None)
    try:
        cfg = load_config(config, _overrides(args))
    except DataError as exc:
        print(f"bandmate: {exc}", file=sys.stderr)
        return 2
    from engine import commands
    try:
        return getattr(commands, args.command)(cfg, args)
    except (DataError, commands.UserError) as exc:
        print(f"bandmate: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
