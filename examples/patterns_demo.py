"""Live-coded patterns playing with the band (docs/patterns.md).

Drums, bass and a lead written as patterns, with the chord agent comping the band's own
progression (Am F C G Am F Dm E7, a chord a bar): the bass spells each chord with `cat`, the lead
is written in scale degrees and snapped to the chord in force (`scale()`), and the parts change
at planned bars, as a live coder would change them, so the piece sounds the same live and
rendered. Plays on the sound card; without one (or with --render) it renders a WAV and a MIDI
file, as `bandmate demo` does.

    .venv/bin/python examples/patterns_demo.py                 # the sound card, or a WAV
    .venv/bin/python examples/patterns_demo.py --render -o out/patterns.wav --seconds 20
"""
from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:           # run from anywhere, with this checkout's engine
    sys.path.insert(0, str(ROOT))

from engine.patterns import Pattern, cat, degrees, mini  # noqa: E402

BARS = 16


def drums() -> Pattern:
    """Kick and snare with a ghosted kick, eighth hats; a fill in the last bar of four."""
    beat = mini("bd [~ bd] sd [~ bd?], hh*8", seed=4)
    return beat.every(4, lambda p: mini("bd sd [sd sd] [lt mt ht sd]"), offset=3) \
        .humanise(timing_ms=4, velocity=0.15, seed=1)


def bass() -> Pattern:
    """Each chord of the progression spelt root, octave, fifth: one bar each (`cat`)."""
    return cat("a1 ~ a2 [~ e2]", "f1 ~ f2 [~ c2]", "c2 ~ c3 [~ g2]", "g1 ~ g2 [~ d2]",
               "a1 ~ a2 [~ e2]", "f1 ~ f2 [~ c2]", "d2 ~ d3 [~ a2]", "e2 ~ e3 [~ b1]") \
        .legato("3/4")


def busy_bass() -> Pattern:
    """The same line, its notes doubled, an octave echo an eighth later now and then."""
    return bass().ply(2).sometimes(lambda p: p.off("1/2", lambda q: q.transpose(12)), 0.3,
                                   seed=5)


def lead() -> Pattern:
    """A motif in A minor's scale degrees, moved onto the chord in force (scale()), an
    octave up now and then, thinned, and backwards in the last bar of four."""
    motif = degrees("<[0 2 4 7] [4 ~ 2 0]> ~ [6 4] <2 [1 -1]>", "A minor", octave=4)
    return motif.scale().sometimes(lambda p: p.transpose(12), 0.2, seed=2) \
        .degrade(0.15, seed=3).every(4, lambda p: p.rev(), offset=3).velocity(0.7)


def answer() -> Pattern:
    """The motif turned upside down around E5 and played in the iterated order."""
    return lead().invert("e5").range("a4", "a5").iter(4)


#: (bar, part, pattern) in the order a live coder would type them
PLAN = (
    (0, "drums", drums),
    (0, "bass", bass),
    (4, "lead", lead),
    (8, "bass", busy_bass),
    (12, "lead", answer),
)


def arrange(session) -> None:
    """Put the plan on `session`: the chord agent on, each pattern from its bar."""
    session.set("/chords/agent/on", "on")
    for bar, part, make in PLAN:
        session.play(part, make(), bar=bar)


def main(argv: list[str] | None = None) -> int:
    from engine import commands
    from engine.config import load_config
    from engine.control import export
    from engine.control.session import Session

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--render", action="store_true", help="render a WAV, not the sound card")
    ap.add_argument("-o", "--output", default="out/patterns-demo.wav")
    ap.add_argument("--seconds", type=float, default=None, help="default: all 16 bars")
    args = ap.parse_args(argv)
    cfg = load_config(str(ROOT / "config.toml"), environ={})
    seconds = args.seconds if args.seconds is not None else \
        BARS * cfg["band"]["beats_per_bar"] * 60.0 / cfg["band"]["tempo_bpm"] + 2.0

    def make(sr: int) -> Session:
        s = Session(cfg, sr, root=ROOT)
        arrange(s)
        return s

    if not args.render:
        try:
            session, stream = commands._open_driver(cfg, make)
        except Exception as exc:  # noqa: BLE001 - only "no device" falls back to a WAV
            if not commands._no_device(exc):
                raise
            print(f"no sound card to play on ({str(exc).splitlines()[0]}): rendering instead")
        else:
            from engine.control.live import LiveRun
            print(f"playing {seconds:.0f} s of patterns; Ctrl-C stops")
            asyncio.run(LiveRun(session, stream, print).run(seconds))
            return 0
    from engine.control.warmup import warm_up
    warm_up()
    session = make(cfg["render"]["sample_rate"])
    result = export.render(session, seconds, Path(args.output), cfg["render"]["block_size"])
    print(f"wrote {result.wav} ({result.seconds:.1f} s, peak {result.peak:.2f}) and "
          f"{result.midi}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
