"""What each `bandmate` subcommand does (control side).

The session, the drivers and the warm-up import the compiled audio kernels (Numba: seconds
on a cold start), so they are imported by the commands that play or render, not here: `bandmate
patch from-text` and `bandmate patches` answer without them."""
from __future__ import annotations

import asyncio
import math
import signal
import sys
import time
from pathlib import Path


class UserError(RuntimeError):
    """Something the user can fix (no device, a bad file); printed without a traceback."""


def _say(text: str) -> None:
    print(text, flush=True)


def units(cfg: dict, args) -> int:
    """Every registered unit with its parameters: range, default, choices, what it does."""
    from engine.rt.units import UNITS
    instruments = [u for u in UNITS if getattr(u, "INSTRUMENT", False)]
    effects = [u for u in UNITS if u not in instruments]
    for unit in effects + instruments:
        if unit is instruments[0]:
            _say("\ninstruments (a patch's engine = NAME, its [synth] table sets these):")
        doc = " ".join((unit.__doc__ or "").strip().split("\n\n")[0].split())
        _say(f"{unit.NAME}: {doc}")
        for p in unit.PARAMS:
            if p.choices:
                what = f"one of {', '.join(p.choices)}; default {p.choices[int(p.default)]}"
            else:
                what = f"{p.lo:g}..{p.hi:g}, default {p.default:g}"
            _say(f"    {p.name:22s} {what}" + (f"  ({p.doc})" if p.doc else ""))
    _say('effects go in config.toml ([mix] master_inserts = [{ unit = "eq", peak1_gain_db = 3.0 }],'
         ' bass_inserts, ...) or in a patch ([patch] inserts); every parameter has an address:'
         ' /PART/UNIT/PARAM')
    return 0


def _patch_files(cfg: dict) -> list[Path]:
    """The .toml files of the library's folders (config [library] folders), in order."""
    files = []
    for folder in cfg["library"]["folders"]:
        files += sorted(Path(folder).expanduser().glob("*.toml"))
    return files


def patches(cfg: dict, args) -> int:
    """Every patch: name, engine, tags, description (a broken file says why)."""
    from engine.patch import read_patch
    from engine.tomldata import DataError
    files = _patch_files(cfg)
    if not files:
        _say("no patches found in " + ", ".join(cfg["library"]["folders"]))
        return 1
    for path in files:
        try:
            p = read_patch(path)
        except DataError as exc:
            _say(f"{path.stem:22s} BROKEN: {exc}")
            continue
        tags = ", ".join(p.tags)
        _say(f"{path.stem:22s} {p.engine:10s} {tags:28s} {p.description}")
    _say("hear one: bandmate preview NAME  (a WAV and a spectrogram PNG)")
    return 0


def preview(cfg: dict, args) -> int:
    """Render a patch playing a phrase that suits it, to a WAV and a spectrogram PNG."""
    from engine.control import export
    from engine.control.warmup import warm_up
    from engine.control.preview import render_preview, spectrogram_png
    from engine.patch import read_patch
    path = _find_patch(cfg, args.patch)
    patch = read_patch(path)
    sr = cfg["render"]["sample_rate"]
    warm_up()
    audio = render_preview(patch, sr)
    out = Path(args.output or f"out/preview-{path.stem}.wav")
    out.parent.mkdir(parents=True, exist_ok=True)
    with export.open_wav(out, sr) as f:
        f.write(audio)
    png = spectrogram_png(audio, sr, out.with_suffix(".png"),
                          f"{patch.name or path.stem} ({patch.engine})")
    peak = float(abs(audio).max())
    _say(f"wrote {out} and {png}: {len(audio) / sr:.1f} s, peak {20 * math.log10(max(peak, 1e-9)):.1f} dBFS")
    return 0


def _find_patch(cfg: dict, name: str) -> Path:
    """A patch file given as a path or as a name in the library folders."""
    path = Path(name)
    if not path.is_file():
        hits = [p for p in _patch_files(cfg) if p.stem == name]
        if not hits:
            raise UserError(f"no patch {name!r}; `bandmate patches` lists them")
        path = hits[0]
    return path


def patch(cfg: dict, args) -> int:
    """Patches from words: `from-text`, `edit`, `undo` (engine.words.design)."""
    from engine.words import design
    if args.patch_command == "undo":
        path = _find_patch(cfg, args.patch)
        try:
            left = design.undo_file(path)
        except ValueError as exc:
            raise UserError(str(exc)) from exc
        _say(f"{path}: last edit undone ({left} earlier edit{'s' * (left != 1)} to undo)")
        return 0
    similar = None
    if not args.no_model:
        from engine.words.embed import load_similar
        similar = load_similar()
    if args.patch_command == "from-text":
        try:
            body, result = design.from_text(args.text, cfg["library"]["folders"], similar,
                                            args.output or "")
        except ValueError as exc:
            raise UserError(str(exc)) from exc
        if not args.output:
            sys.stdout.write(body)
        else:
            out = Path(args.output)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(body)
            _say(f"wrote {out} (from {result.base}):\n{design.summary(result)}")
        return 3 if not result.changes and not result.said and result.unknown else 0
    path = _find_patch(cfg, args.patch)
    try:
        result = design.edit_file(path, args.text, similar)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    _say(f"{path}: " + ("edited (`bandmate patch undo` puts it back)" if result.changes
                        else "nothing changed") + f"\n{design.summary(result)}")
    return 0 if result.changes else 3


def devices(cfg: dict, args) -> int:
    from engine.drivers import portaudio
    try:
        outs = portaudio.output_devices()
    except portaudio.AudioDeviceError as exc:
        outs = []
        _say(f"audio: {exc}")
    _say("audio outputs:" if outs else "audio outputs: none (bandmate demo renders to a WAV)")
    for d in outs:
        _say(f"  {d['index']:3d}  {d['name']}  ({d['hostapi']}, {d['channels']} ch, "
             f"{d['default_samplerate']:.0f} Hz)")
    from controllers.midi_in import MidiUnavailable, open_backend
    try:
        backend, skipped = open_backend(cfg["midi"]["api"], "bandmate-devices")
    except MidiUnavailable as exc:
        _say(f"MIDI inputs: none ({exc})")
        return 0
    ports = backend.list_ports()
    _say(f"MIDI inputs ({backend.name}):" + ("" if ports else " none"))
    for p in ports:
        _say(f"  {p}")
    backend.close()
    return 0


def _prompt(session, text: str | None, say=_say) -> None:
    """Set the band as a style prompt says (`--prompt`), before it plays."""
    if not text:
        return
    from engine.words.embed import load_similar
    from engine.words.prompt import apply_prompt, describe
    try:
        say(describe(apply_prompt(session, text, similar=load_similar())))
    except (KeyError, ValueError) as exc:
        raise UserError(f"--prompt: {str(exc).strip(chr(39))}") from exc


def _form(session, text: str | None, say=_say) -> None:
    """Make the band play through a song form (`--form`), saying each section as it comes."""
    if not text:
        return
    from engine.agents.form import form_from
    try:
        form = form_from(text)
        session.follow_form(form, on_section=lambda bar, name: say(
            f"section: {name} (bar {bar + 1})"))
    except ValueError as exc:       # DataError (a broken form file) included
        raise UserError(f"--form: {exc}") from exc
    say(f"form: {form} ({form.length_bars} bars)")


def _render(cfg: dict, demo: bool, seconds: float | None, output: str | None,
            midi: str | None, prompt: str | None = None, form: str | None = None) -> int:
    from engine.control import export
    from engine.control.session import Session
    from engine.control.warmup import warm_up
    sr = cfg["render"]["sample_rate"]
    t0 = time.perf_counter()
    warm_up(say=_say)
    session = Session(cfg, sr, demo=demo)
    _prompt(session, prompt)
    if cfg["band"]["meter"] and (demo or (midi and cfg["sync"]["source"] != "player")):
        _say(f"meter {cfg['band']['meter']}: not used; "
             + ("the demo has its own 4/4" if demo else "the file's own meters are played"))
    if form and demo:
        raise UserError("--form: the demo has its own form")
    _form(session, form)
    if seconds is None and session.length_s is not None and not demo:
        seconds = session.length_s + 1.0
    if midi and not demo and cfg["sync"]["source"] == "player":
        from controllers.midifile import read_performance
        try:
            played = read_performance(Path(midi))
        except OSError as exc:
            raise UserError(str(exc)) from exc
        _say(f"{midi}: played at its own times; the band follows it by ear (--sync player)")
        if seconds is None:
            seconds = (played[-1][0] if played else 0.0) + 2.0
    elif not demo and cfg["sync"]["source"] == "player":
        _say("--sync player without --midi: the band waits for a player that never comes")
    elif midi and not demo:
        from engine.listen.score import Score
        try:
            score = Score.read(Path(midi))
            session.follow_score(score)
        except (OSError, ValueError) as exc:
            raise UserError(str(exc)) from exc
        for warning in score.meter_warnings:
            _say(warning)
        _say(f"{midi}: {score.beats_per_bar} beats a bar, {score.tempos[0][1]:g} BPM"
             + (f" ({len(score.tempos)} tempos)" if len(score.tempos) > 1 else "")
             + (", meters " + " ".join(f"{n}/{d}" for _, n, d in score.meters)
                if len(score.meters) > 1 else "")
             + (f", a {score.pickup_beats}-beat pickup" if score.pickup_beats else "")
             + (f", {score.key}" if score.key else ""))
        if seconds is None:
            seconds = score.seconds() + 2.0
    if seconds is None:
        seconds = session.length_s + 3.0 if demo else cfg["render"]["seconds"]
    wav = Path(output or (Path(cfg["render"]["output"]).with_name("bandmate-demo.wav") if demo
                          else cfg["render"]["output"]))
    if midi and Path(midi).resolve() == wav.with_suffix(".mid").resolve():
        raise UserError(f"the render's notes go to {wav.with_suffix('.mid')}, which is the "
                        f"--midi file itself: choose another -o")
    try:
        result = export.render(session, seconds, wav, cfg["render"]["block_size"],
                               Path(midi) if midi else None)
    except OSError as exc:
        raise UserError(str(exc)) from exc
    _say(f"wrote {result.wav} ({result.seconds:.1f} s, peak {result.peak:.2f}, "
         f"{result.speed:.0f}x real time) and {result.midi} "
         f"[{time.perf_counter() - t0:.1f} s in all]")
    return 0


def render(cfg: dict, args) -> int:
    return _render(cfg, args.demo, args.seconds, args.output, args.midi, args.prompt,
                   args.form)


def _open_driver(cfg: dict, session_factory, say=_say):
    """(session, stream) on the configured live driver; raises AudioDeviceError/JackError."""
    from engine.control.warmup import warm_up
    if cfg["audio"]["driver"] == "jack":
        from engine.drivers.jack import JackClient
        warm_up(("jack",), say)
        from engine.control import midi_out
        client = JackClient(midi_out=midi_out.wanted(cfg))
        try:
            session = session_factory(client.sample_rate)
            if session.midi_out is not None:      # MIDI out written by the JACK callback
                session.midi_out.attach(midi_out.EngineSink(session.state))
            session.advance(0)                # the first look-ahead is queued before audio runs
            return session, _start_jack(cfg, client, session.state, say)
        except BaseException:
            client.close()
            raise
    from engine.drivers import portaudio
    portaudio.rescan()
    device = portaudio.find_output(cfg["audio"]["device"])
    sr = cfg["audio"]["sample_rate"] or int(device["default_samplerate"])
    warm_up(("portaudio",) if cfg["audio"]["callback"] == "compiled" else ("python",), say)
    session = session_factory(sr)
    sender = _rtmidi_out(cfg, session, say)
    session.advance(0)
    stream = _start_portaudio(cfg, device, session.state, say)
    if sender is not None:      # MIDI leaves with the audio it goes with
        sender.delay_ns = int(stream.output_latency_s * 1e9)
    return session, stream


def _rtmidi_out(cfg: dict, session, say=_say):
    """The rtmidi sender of config [midi_out] on a non-JACK driver (None: nothing routed, or
    no MIDI output: then said, and the band plays on without it)."""
    if session.midi_out is None:
        return None
    from controllers.midi_in import MidiUnavailable
    from engine.control.midi_out import RtMidiSender, open_rtmidi_out
    try:
        port = open_rtmidi_out(cfg["midi"]["api"], cfg["midi_out"]["port"])
    except MidiUnavailable as exc:
        say(f"MIDI out: {exc}")
        return None
    sender = RtMidiSender(port, session.state, log=say)
    session.midi_out.attach(sender)
    say(f"MIDI out: {cfg['midi_out']['port'] or 'virtual port'} (rtmidi)")
    return sender


def _start_jack(cfg: dict, client, state, say=_say):
    """Activate `client` on `state` and make the configured connections (audio, MIDI in, and
    MIDI out when the client has that port)."""
    client.start(state)
    targets = cfg["audio"]["connect"]
    client.connect_outputs("auto" if targets == ["auto"] else targets)
    inputs = cfg["midi"]["inputs"]
    client.connect_midi("all" if inputs == ["all"] else inputs)
    if client.midi_out:
        targets = [t.strip() for t in cfg["midi_out"]["port"].split(",") if t.strip()]
        done = client.connect_midi_out(targets)
        say(f"MIDI out: {client.port_name(client.midi_out)}"
            + (f" -> {', '.join(done)}" if done else ""))
    say(f"JACK: {client.name} at {client.sample_rate} Hz, {client.period} frames")
    return client


def _start_portaudio(cfg: dict, device: dict, state, say=_say):
    from engine.drivers import portaudio
    audio = cfg["audio"]
    stream = portaudio.PortAudioStream(state, device, audio["block_size"], audio["callback"],
                                       audio["latency"]).start()
    say(f"audio: {device['name']} ({device['hostapi']}) at {state.sample_rate} Hz, "
        f"{audio['block_size']} frames, output latency {stream.output_latency_s * 1000:.1f} ms")
    return stream


def reopen_stream(cfg: dict, state, say=_say):
    """The configured driver opened again on a running session's `state` (the installation
    mode's watchdog, after the audio stopped); raises what opening raises. MIDI out on JACK
    comes back with it (the session's sink writes into `state`); an rtmidi sender is the
    session's own and carries on."""
    if cfg["audio"]["driver"] == "jack":
        from engine.control import midi_out
        from engine.drivers.jack import JackClient
        client = JackClient(midi_out=midi_out.wanted(cfg))
        try:
            return _start_jack(cfg, client, state, say)
        except BaseException:
            client.close()
            raise
    from engine.drivers import portaudio
    portaudio.rescan()          # the device may be back under another index
    return _start_portaudio(cfg, portaudio.find_output(cfg["audio"]["device"]), state, say)


def _no_device(exc) -> bool:
    from engine.drivers.jack import JackError
    from engine.drivers.portaudio import AudioDeviceError
    return isinstance(exc, (AudioDeviceError, JackError))


def demo(cfg: dict, args) -> int:
    from engine.control.session import Session
    try:
        session, stream = _open_driver(cfg, lambda sr: Session(cfg, sr, demo=True))
    except Exception as exc:  # noqa: BLE001 - only "no device" falls back; others re-raise
        if not _no_device(exc):
            raise
        _say(f"no sound card to play on ({str(exc).splitlines()[0]}): rendering the demo "
             "to a WAV file instead")
        return _render(cfg, True, None, args.output, None)
    from engine.control.live import LiveRun
    _say(f"playing the demo ({session.length_s:.0f} s); Ctrl-C stops")
    run = LiveRun(session, stream, _say)

    async def main():
        if cfg["audio"]["driver"] == "jack":
            _stop_when_jack_quits(stream, run)
        await run.run(session.length_s + 2.0)

    asyncio.run(main())
    midi = session.write_midi(Path(cfg["render"]["output"]).with_name("bandmate-demo.mid"))
    _say(f"wrote {midi}")
    return 0


def _stop_when_jack_quits(client, run) -> None:
    """If the JACK server goes away, say so and end the run (notes, files) cleanly."""
    loop = asyncio.get_running_loop()

    def gone():
        loop.call_soon_threadsafe(_say, "JACK server went away: stopping")
        loop.call_soon_threadsafe(run.stop)

    client.on_shutdown = gone


def _player_inputs(cfg: dict, run, stream, say=_say, hint: str = ""):
    """The player's MIDI into `run`: (sink, coroutines to run, MidiInputs or None). On JACK
    the callback reads midi_in itself; otherwise rtmidi inputs (none is not an error)."""
    sink = run.player_input(cfg["midi"]["latency_mode"], cfg["midi"]["fixed_latency_ms"],
                            cfg["midi"]["mapping"])
    if cfg["audio"]["driver"] == "jack":
        _hook_jack_midi(stream, sink)
        return sink, [], None
    from controllers.midi_in import MidiInputs, MidiUnavailable
    inputs = cfg["midi"]["inputs"]
    try:
        midi = MidiInputs(sink, cfg["midi"]["api"], "all" if inputs == ["all"] else inputs,
                          virtual=cfg["midi"]["virtual_port"], accept=MIDI_ACCEPT)
    except MidiUnavailable as exc:
        say(f"MIDI in: {exc}{hint}")
        return sink, [], None
    return sink, [midi.watch()], midi


def _hook_jack_midi(client, sink) -> None:
    """A MIDI source unplugged from the JACK client's midi_in: its notes are gone."""
    from engine.drivers.jack import JACK_MIDI_SOURCE
    client.on_midi_disconnect = lambda: sink.source_gone(JACK_MIDI_SOURCE)


def jam(cfg: dict, args) -> int:
    from engine.control.session import Session
    sys.setswitchinterval(0.0002)   # keep MIDI delivery short whatever Python is doing
    if args.form:                   # checked before any device opens
        from engine.agents.form import form_from
        try:
            form_from(args.form)
        except ValueError as exc:
            raise UserError(f"--form: {exc}") from exc

    def make(sr):
        session = Session(cfg, sr)
        _form(session, args.form)   # before the driver queues the first look-ahead
        return session
    try:
        session, stream = _open_driver(cfg, make)
    except Exception as exc:  # noqa: BLE001
        if not _no_device(exc):
            raise
        raise UserError(f"{exc}\nwithout a sound card, try `bandmate render` or "
                        "`bandmate demo`") from exc
    _prompt(session, args.prompt)
    from engine.control.live import LiveRun
    run = LiveRun(session, stream, _say)

    async def main():
        sink, extra, midi = _player_inputs(cfg, run, stream,
                                           hint="; the computer keyboard still plays")
        if cfg["audio"]["driver"] == "jack":
            _stop_when_jack_quits(stream, run)
        if cfg["midi"]["computer_keyboard"] and not args.no_keyboard and sys.stdin.isatty():
            from controllers.keyboard import TerminalKeyboard
            kb = TerminalKeyboard(sink, on_command=lambda text: live_command(session, text))
            extra.append(kb.run())
        _say(f"jamming at {session.clock.bpm:g} BPM, {cfg['band']['style']}; Ctrl-C stops")
        try:
            await run.run(args.seconds, extra)
        finally:
            if midi is not None:
                midi.close()

    asyncio.run(main())
    path = session.write_midi(Path(cfg["render"]["output"]).with_name("bandmate-jam.mid"))
    _say(f"wrote {path}")
    return 0


def serve(cfg: dict, args) -> int:
    """Installation mode: the jam session headless until SIGTERM/SIGINT (or for `--seconds`
    once the audio runs), logged to [serve] log_file, scenes on [serve] schedule, the audio
    restarted whenever it stops (engine.control.serve). No audio at start is waited for (with
    `--seconds`, that long at most), not an error."""
    from engine.control.session import Session
    from engine.control.live import LiveRun
    from engine.control.serve import Installation, event_log
    log = event_log(cfg["serve"])
    sys.setswitchinterval(0.0002)
    serve_cfg = cfg["serve"]

    async def open_audio(stop: asyncio.Event, deadline: float):
        delay = min(serve_cfg["restart_min_s"], serve_cfg["restart_max_s"])
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                return _open_driver(cfg, lambda sr: Session(cfg, sr), log)
            except Exception as exc:  # noqa: BLE001 - only "no device" is waited for
                if not _no_device(exc):
                    raise
                log(f"no audio yet ({' | '.join(str(exc).splitlines())}); retrying in "
                    f"{delay:g} s")
            try:
                await asyncio.wait_for(stop.wait(), min(delay, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                pass
            delay = min(delay * 2.0, serve_cfg["restart_max_s"])
        return None

    async def main() -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        t0 = time.monotonic()
        deadline = math.inf if args.seconds is None else t0 + args.seconds
        log(f"bandmate serve starting (config {args.config or 'defaults'}, "
            f"driver {cfg['audio']['driver']})")
        opened = await open_audio(stop, deadline)
        if opened is None:
            log("stopped before any audio could be opened")
            return 0 if stop.is_set() else 1
        session, stream = opened
        run = LiveRun(session, stream, log, tty_status=False)
        sink, extra, midi = _player_inputs(cfg, run, stream, log)
        jack = cfg["audio"]["driver"] == "jack"
        inst = Installation(run, cfg, lambda state: reopen_stream(cfg, state, log), log,
                            on_open=(lambda client: _hook_jack_midi(client, sink)) if jack
                            else None)
        try:
            await inst.run_for(args.seconds, extra)
        finally:
            if midi is not None:
                midi.close()
        return 0

    return asyncio.run(main())


def _number_or_word(text: str):
    try:
        return float(text)
    except ValueError:
        return text             # a choice's word (`set /band/style funk`)


def live_command(session, text: str) -> str:
    """A command typed while jamming (`:` on the terminal piano): `learn ADDRESS` arms MIDI
    learn, `learn` alone cancels it; `set ADDRESS VALUE` sets a parameter (a number or a
    choice's word); `scene NAME [FADE_S]` recalls a scene, `scenes` lists them, `save NAME`
    saves the current values as a scene; `tap` is one tap of tap tempo (Enter is the tap),
    `tap BPM` sets the tempo; `edit PART WORDS` moves a part's sound with words ("edit keys
    darker, more air"), `undo PART` puts back what its last edit moved; `prompt TEXT` sets the
    band's style, tempo and parts from a style prompt ("prompt funky, 96 bpm, sparse drums,
    dreamy keys"; engine.words.prompt) from the next bar; `pattern PART MINI-NOTATION` plays a
    live-coded pattern on a part from the next bar ("pattern bass c2 ~ [eb2 g2] <bb1 f2>";
    docs/patterns.md), `pattern PART off` gives the part back to its agent; `do WORDS` is a
    band command in words ("do drop the drums for 4 bars", "do go to chorus";
    engine.agents.commands); `memory` shows what the progression memory has learned. Returns the
    reply."""
    words = text.split()
    if not words:
        return ""
    try:
        if words[0] == "scene" and len(words) in (2, 3):
            fade = float(words[2]) if len(words) == 3 else None
            scene = session.recall_scene(words[1], fade)
            fade = scene.fade_s if fade is None else fade
            return f"scene {words[1]}: {len(scene.values)} values" + \
                (f", fading {fade:g} s" if fade else "")
        if words[0] == "scenes" and len(words) == 1:
            return "scenes: " + (", ".join(session.scenes()) or "none")
        if words[0] == "save" and len(words) == 2:
            return f"scene {words[1]} saved in {session.save_scene(words[1])}"
        if words[0] == "learn":
            mapper = session.mapper
            if mapper is None:
                return "no MIDI mapping in use"
            if len(words) == 1:
                mapper.cancel_learn()
                return "MIDI learn cancelled"
            mapper.learn(words[1])
            return f"MIDI learn: move a control for {words[1]}"
        if words[0] == "tap" and len(words) <= 2:
            from engine.control.session import TEMPO_ADDRESS
            from engine.control.sync import tap
            if len(words) == 2:
                return f"tempo {session.set(TEMPO_ADDRESS, float(words[1])):g} BPM"
            bpm = tap(session)
            return f"tap: {bpm:.1f} BPM" if bpm is not None else "tap: keep tapping"
        if words[0] == "arp":
            return arp_command(session, words[1:])
        if words[0] == "memory" and len(words) == 1:
            return memory_view(session)
        if words[0] == "set" and len(words) == 3:
            return f"{words[1]} = {session.set(words[1], _number_or_word(words[2])):g}"
        if words[0] == "edit" and len(words) >= 3:
            from engine.words.design import edit_live, summary
            from engine.words.embed import load_similar
            phrase = text.split(None, 2)[2].strip().strip("\"'")
            sets, result = edit_live(session, words[1], phrase, load_similar())
            return (f"{words[1]}: {len(sets)} parameter{'s' * (len(sets) != 1)} moved\n"
                    + summary(result)).rstrip()
        if words[0] == "pattern" and len(words) >= 3:
            text = text.split(None, 2)[2].strip().strip("\"'")
            off = text == "off"
            at = session.play(words[1], None if off else text)
            bar = session.clock.bar_at(at) + 1
            return f"{words[1]}: " + ("back to its agent" if off else f"playing {text}") + \
                f" from bar {bar}"
        if words[0] == "undo" and len(words) == 2:
            from engine.words.design import undo_live
            sets, left = undo_live(session, words[1])
            return f"{words[1]}: last edit undone ({len(sets)} parameters back, {left} more " \
                   f"to undo)"
        if words[0] == "do" and len(words) >= 2:
            from engine.agents.commands import do
            return do(session, text.split(None, 1)[1])
        if words[0] == "prompt" and len(words) >= 2:
            from engine.words.embed import load_similar
            from engine.words.prompt import apply_prompt, describe
            text = text.split(None, 1)[1].strip().strip("\"'")
            return describe(apply_prompt(session, text, similar=load_similar()))
    except (KeyError, ValueError, TypeError) as exc:   # DataError (a broken scene file) too
        return f"{words[0]}: {str(exc).strip(chr(39))}"
    return ("commands: learn ADDRESS | learn (cancel) | set ADDRESS VALUE | scene NAME [FADE_S]"
            " | scenes | save NAME | tap | tap BPM | edit PART WORDS | undo PART | prompt TEXT"
            " | pattern PART MINI-NOTATION | pattern PART off"
            " | arp [on|off] [MODE] [RATE] [OCTAVES] [latch|unlatch] | do WORDS | memory")


def memory_view(session) -> str:
    """`memory`: the progression memory's status, the loops it has learned (the one played now
    marked) and how often the player left and came back (engine.control.remote.memory_state)."""
    from engine.control.remote import memory_state
    state = memory_state(session)
    if state is None:
        return "memory: none in this session"
    lines = [f"memory: {state['status']}" + (", locked" if state["locked"] else "")]
    for name, _, text in state["library"]:
        lines.append(f"{'>' if name == state['name'] else ' '} {name}  {text}")
    n = state["departures"]
    lines.append(f"{n} departure{'s' * (n != 1)} ({state['substitutions']} substitution"
                 f"{'s' * (state['substitutions'] != 1)}), {state['returns']} return"
                 f"{'s' * (state['returns'] != 1)}")
    return "\n".join(lines)


def arp_command(session, words: list[str]) -> str:
    """`arp` alone: the arpeggiator's settings; otherwise its words in any order: on, off, a
    mode (up, down, up_down, ...), a rate (1/16, 1/8t, 1/8d...), octaves 1..4, latch or
    unlatch; any setting but `off` turns it on. Every word is checked before anything is set
    (ValueError naming the word)."""
    from engine.agents.arp import MODES, RATES
    from engine.agents.steer import Steering
    sets: dict[str, object] = {}
    for w in words:
        if w in ("on", "off"):
            sets["/arp/on"] = w
        elif w in MODES:
            sets["/arp/mode"] = w
        elif w in RATES:
            sets["/arp/rate"] = w
        elif w.isdigit():
            sets["/arp/octaves"] = int(w)
        elif w in ("latch", "unlatch"):
            sets["/arp/latch"] = "on" if w == "latch" else "off"
        else:
            raise ValueError(f"{w!r} is not on, off, a mode ({', '.join(MODES)}), a rate "
                             f"({', '.join(RATES)}), octaves 1..4, latch or unlatch")
    if sets and "/arp/on" not in sets:
        sets["/arp/on"] = "on"
    for address, value in sets.items():
        Steering.check(address, value)          # all checked before any is set
    for address, value in sets.items():
        session.set(address, value)

    def word(address: str) -> str:
        q = session.param(address)
        v = session.value(address)
        return q.choices[int(v)] if q.choices else f"{v:g}"
    return (f"arp {word('/arp/on')}: {word('/arp/mode')} {word('/arp/rate')}, "
            f"{word('/arp/octaves')} octave(s), gate {word('/arp/gate')}, latch "
            f"{word('/arp/latch')}, {word('/arp/input')} notes on {word('/arp/part')}")


# what the live MIDI inputs pass on: the player's messages and program changes (mapped ones
# load patches)
MIDI_ACCEPT = frozenset({"note_on", "note_off", "control_change", "pitchwheel", "aftertouch",
                         "polytouch", "program_change"})


def learn(cfg: dict, args) -> int:
    """Bind the next control moved on any MIDI input to an address and save the mapping."""
    from engine.control.session import Session
    from engine.control.mapping import load_mapper
    from controllers.midi_in import MidiInputs, MidiUnavailable
    path = cfg["midi"]["mapping"]
    if not path:
        raise UserError('no mapping file: set [midi] mapping = "mappings/default.toml" in '
                        'config.toml (or BANDMATE_MIDI_MAPPING)')
    session = Session(cfg, cfg["render"]["sample_rate"])
    mapper = load_mapper(session, path, _say)
    learnt = []
    try:
        mapper.learn(args.address, on_learned=learnt.append)
    except (KeyError, ValueError) as exc:
        raise UserError(str(exc).strip("'")) from exc

    class _LearnSink:           # the mapper sees every message; nothing plays
        def feed(self, msg, source, at=None):
            mapper.events(msg, source)

        def source_gone(self, source):
            mapper.source_gone(source)

        def log(self, text):
            _say(text)

    inputs = cfg["midi"]["inputs"]
    try:
        midi = MidiInputs(_LearnSink(), cfg["midi"]["api"],
                          "all" if inputs == ["all"] else inputs,
                          virtual=cfg["midi"]["virtual_port"], accept=MIDI_ACCEPT)
    except MidiUnavailable as exc:
        raise UserError(f"MIDI in: {exc}") from exc
    _say(f"MIDI learn: move a knob, press a pad or send a program change for {args.address} "
         f"(waiting {args.timeout:g} s)")
    try:
        deadline = time.monotonic() + args.timeout
        next_poll = time.monotonic() + 0.5
        while not learnt and time.monotonic() < deadline:
            time.sleep(0.02)
            if time.monotonic() >= next_poll:       # a keyboard plugged in while waiting
                midi.poll_ports()
                next_poll += 0.5
    finally:
        midi.close()
    if not learnt:
        mapper.cancel_learn()
        _say(f"no control moved within {args.timeout:g} s: nothing learnt")
        return 1
    return 0
