"""The factory sample sets under samples/, synthesized (deterministic: fixed seeds, numpy only)
and written as 16-bit FLAC with the TOML sets that describe them.

    python tools/make_samples.py [--out samples]

* mallet: a marimba-like bar (partials 1 : 4 : 10, the upper ones dying faster, a felt or hard
  strike), roots C2 C3 C4 C5 C6 (36, 48, 60, 72, 84), two velocity layers (soft 1..79,
  hard 80..127): 10 one-shot files at 48 kHz, mono.
* pad: a warm detuned pad (band-limited saws, slowly beating), stereo, 44.1 kHz (the sampler
  resamples), roots C2 C3 C4 C5, each looped over its last 0.6 s with a 60 ms cross-fade.
* kit: General MIDI drums, one-shot, 48 kHz mono: kick 36 (3 round-robin takes), rim 37,
  snare 38 (3 takes), clap 39 (2), closed hat 42 (4), low tom 45, open hat 46 (2), high tom
  50, crash 49. Takes differ in pitch, decay and noise (the seeds).
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import soundfile

SR = 48000
PAD_SR = 44100


def _hz(note):
    return 440.0 * 2.0 ** ((note - 69) / 12.0)


def _fade_out(x, sr, ms=30.0):
    n = min(len(x), int(sr * ms * 1e-3))
    x = x.copy()
    x[-n:] *= np.cos(0.5 * np.pi * np.arange(n) / n) ** 2
    return x


def _onepole_lp(x, hz, sr):
    a = math.exp(-2.0 * math.pi * hz / sr)
    y = np.empty_like(x)
    s = 0.0
    for i, v in enumerate(x):
        s = (1.0 - a) * v + a * s
        y[i] = s
    return y


def _normalize(x, peak):
    return x * (peak / np.abs(x).max())


# ---- mallet -------------------------------------------------------------------------------------

def mallet(note, hard, seed):
    f0 = _hz(note)
    dur = min(1.6, 0.5 + 50.0 / f0)
    t = np.arange(int(dur * SR)) / SR
    rng = np.random.default_rng(seed)
    ratios = (1.0, 3.99, 9.94)
    amps = (1.0, 0.45, 0.2) if hard else (1.0, 0.12, 0.03)
    taus = (0.25 + 30.0 / f0, 0.08 + 6.0 / f0, 0.03 + 2.0 / f0)
    y = np.zeros_like(t)
    for r, a, tau in zip(ratios, amps, taus):
        if f0 * r < 0.45 * SR:
            y += a * np.exp(-t / tau) * np.sin(2 * np.pi * f0 * r * t)
    # the strike: a short burst of filtered noise
    n = int(0.004 * SR)
    burst = rng.standard_normal(n) * np.hanning(n)
    burst = _onepole_lp(burst, 6000.0 if hard else 1500.0, SR)
    y[:n] += (0.25 if hard else 0.06) * burst / np.abs(burst).max()
    attack = np.minimum(1.0, np.arange(len(t)) / (0.0008 * SR))
    y = _fade_out(y * attack, SR, 60.0)
    return _normalize(y, 0.9 if hard else 0.45)


# ---- pad ----------------------------------------------------------------------------------------

def pad(note, seed):
    f0 = _hz(note)
    dur = 1.2
    t = np.arange(int(dur * PAD_SR)) / PAD_SR
    rng = np.random.default_rng(seed)
    out = np.zeros((2, len(t)))
    for ch, cents in enumerate(((-7.0, 3.0), (-3.0, 7.0))):
        for c in cents:
            f = f0 * 2.0 ** (c / 1200.0)
            ph = rng.uniform(0, 2 * np.pi)
            for h in range(1, int(0.45 * PAD_SR / f) + 1):
                out[ch] += (1.0 / h) * np.exp(-h / 12.0) * np.sin(2 * np.pi * f * h * t + h * ph)
    attack = np.minimum(1.0, t / 0.15)
    out *= attack
    return _normalize(out, 0.7)


# ---- drums --------------------------------------------------------------------------------------

def kick(seed):
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.45 * SR)) / SR
    f_end = 48.0 * (1.0 + 0.04 * rng.standard_normal())
    f = f_end + 110.0 * np.exp(-t / 0.03)
    ph = 2 * np.pi * np.cumsum(f) / SR
    y = np.sin(ph) * np.exp(-t / (0.16 * (1.0 + 0.1 * rng.standard_normal())))
    click = rng.standard_normal(int(0.002 * SR)) * np.hanning(int(0.002 * SR))
    y[:len(click)] += 0.15 * click
    return _normalize(_fade_out(y, SR), 0.95)


def snare(seed):
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.3 * SR)) / SR
    tone = np.sin(2 * np.pi * 185.0 * (1.0 + 0.02 * rng.standard_normal()) * t) \
        * np.exp(-t / 0.05)
    noise = rng.standard_normal(len(t))
    noise = noise - _onepole_lp(noise, 1500.0, SR)        # the wires: high-passed
    noise *= np.exp(-t / (0.08 * (1.0 + 0.15 * rng.standard_normal())))
    return _normalize(_fade_out(0.7 * tone + 0.5 * noise, SR), 0.9)


def clap(seed):
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.3 * SR)) / SR
    env = np.zeros_like(t)
    for k, d in enumerate((0.0, 0.011, 0.022)):
        d += 0.002 * rng.random()
        on = t >= d
        env[on] = np.maximum(env[on], np.exp(-(t[on] - d) / (0.006 if k < 2 else 0.09)))
    noise = rng.standard_normal(len(t))
    noise = _onepole_lp(noise - _onepole_lp(noise, 800.0, SR), 5000.0, SR)
    return _normalize(_fade_out(noise * env, SR), 0.8)


def hat(seed, open_):
    rng = np.random.default_rng(seed)
    dur = 0.4 if open_ else 0.08
    t = np.arange(int(dur * SR)) / SR
    noise = rng.standard_normal(len(t))
    metal = sum(np.sign(np.sin(2 * np.pi * f * t + rng.uniform(0, 6.28)))
                for f in (205.3, 304.4, 369.6, 522.7, 540.0, 800.0))
    x = 0.6 * noise + 0.4 * metal
    for _ in range(2):
        x = x - _onepole_lp(x, 7000.0, SR)
    x *= np.exp(-t / ((0.12 if open_ else 0.018) * (1.0 + 0.1 * rng.standard_normal())))
    return _normalize(_fade_out(x, SR, 10.0), 0.6)


def tom(seed, hz):
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.4 * SR)) / SR
    f = hz * (1.0 + 0.3 * np.exp(-t / 0.05))
    y = np.sin(2 * np.pi * np.cumsum(f) / SR) * np.exp(-t / 0.14)
    y[:96] += 0.1 * rng.standard_normal(96) * np.hanning(96)
    return _normalize(_fade_out(y, SR), 0.85)


def rim(seed):
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.08 * SR)) / SR
    y = (np.sin(2 * np.pi * 1700.0 * t) + 0.5 * np.sin(2 * np.pi * 820.0 * t)) \
        * np.exp(-t / 0.01)
    y += 0.2 * rng.standard_normal(len(t)) * np.exp(-t / 0.003)
    return _normalize(_fade_out(y, SR, 5.0), 0.7)


def crash(seed):
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.9 * SR)) / SR
    x = rng.standard_normal(len(t))
    x = x - _onepole_lp(x, 3000.0, SR)
    x *= np.exp(-t / 0.35) * np.minimum(1.0, t / 0.002)
    return _normalize(_fade_out(x, SR, 80.0), 0.5)


# ---- writing ------------------------------------------------------------------------------------

def _write(out: Path, rel: str, x, sr):
    path = out / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    data = x.T if x.ndim == 2 else x
    soundfile.write(str(path), data, sr, format="FLAC", subtype="PCM_16")
    return rel


def _zone(file, root, **kw):
    lines = ["[[zone]]", f'file = "{file}"', f"root = {root}"]
    for k, v in kw.items():
        lines.append(f"{k} = {str(v).lower() if isinstance(v, bool) else v}")
    return "\n".join(lines)


def make(out: Path) -> dict[str, int]:
    """Write every set into `out`; returns bytes per set."""
    out.mkdir(parents=True, exist_ok=True)
    sizes = {}

    # mallet
    roots = (36, 48, 60, 72, 84)
    bounds = [0] + [(a + b) // 2 + 1 for a, b in zip(roots, roots[1:])] + [128]
    zones = []
    for k, root in enumerate(roots):
        for hard, (vlo, vhi) in ((False, (1, 79)), (True, (80, 127))):
            name = f"mallet/{root}_{'hard' if hard else 'soft'}.flac"
            _write(out, name, mallet(root, hard, seed=100 + 2 * k + hard), SR)
            zones.append(_zone(name, root, lo=bounds[k], hi=bounds[k + 1] - 1, vel_lo=vlo,
                               vel_hi=vhi, one_shot=True))
    head = ('[set]\nname = "mallet"\ndescription = "a marimba-like mallet: five roots, two '
            'velocity layers (soft 1..79, hard 80..127)"\n')
    (out / "mallet.toml").write_text(head + "\n" + "\n\n".join(zones) + "\n")

    # pad
    roots = (36, 48, 60, 72)
    bounds = [0] + [(a + b) // 2 + 1 for a, b in zip(roots, roots[1:])] + [128]
    zones = []
    for k, root in enumerate(roots):
        name = f"pad/{root}.flac"
        x = pad(root, seed=200 + k)
        _write(out, name, x, PAD_SR)
        n = x.shape[1]
        zones.append(_zone(name, root, lo=bounds[k], hi=bounds[k + 1] - 1,
                           loop_start=n - int(0.6 * PAD_SR), loop_end=n))
    head = ('[set]\nname = "pad"\ndescription = "a detuned stereo pad at 44.1 kHz, looped over '
            'its last 0.6 s"\nloop_crossfade_ms = 60.0\n')
    (out / "pad.toml").write_text(head + "\n" + "\n\n".join(zones) + "\n")

    # kit
    zones = []
    takes = [("kick", 36, 3, kick), ("rim", 37, 1, rim), ("snare", 38, 3, snare),
             ("clap", 39, 2, clap), ("closed_hat", 42, 4, lambda s: hat(s, False)),
             ("tom_low", 45, 1, lambda s: tom(s, 98.0)),
             ("open_hat", 46, 2, lambda s: hat(s, True)),
             ("crash", 49, 1, crash), ("tom_high", 50, 1, lambda s: tom(s, 165.0))]
    for g, (what, key, count, fn) in enumerate(takes, 1):
        for k in range(count):
            name = f"kit/{what}{k + 1}.flac"
            _write(out, name, fn(300 + 10 * g + k), SR)
            extra = dict(rr_group=g) if count > 1 else {}
            zones.append(_zone(name, key, one_shot=True, **extra))
    head = ('[set]\nname = "kit"\ndescription = "General MIDI drums; kick, snare, clap and the '
            'hats in round-robin takes"\n')
    (out / "kit.toml").write_text(head + "\n" + "\n\n".join(zones) + "\n")

    for s in ("mallet", "pad", "kit"):
        sizes[s] = sum(p.stat().st_size for p in (out / s).glob("*.flac"))
    return sizes


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "samples"))
    args = ap.parse_args(argv)
    sizes = make(Path(args.out))
    for name, n in sizes.items():
        print(f"{name}: {n / 1024:.0f} KiB")
    print(f"total: {sum(sizes.values()) / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
