"""The factory library: every patch loads, renders its preview through the real engine and
sounds sane (not silent, finite, a safe peak, a sensible loudness, no DC), has a description
and tags, and the library covers what a musician expects."""
from pathlib import Path

import numpy as np
import pytest

from engine.control.preview import render_preview, spectrogram_png
from engine.patch import read_patch

ROOT = Path(__file__).resolve().parents[1]
PATCHES = sorted((ROOT / "patches").glob("*.toml"))
SR = 48000
CATEGORIES = ("keys", "pad", "bass", "lead", "pluck", "bell", "strings", "choir", "drums", "fx")


def test_the_library_is_big_and_covers_every_category():
    assert len(PATCHES) >= 24
    tags = [set(read_patch(p).tags) for p in PATCHES]
    for cat in CATEGORIES:
        assert sum(cat in t for t in tags) >= 1, cat
    engines = {read_patch(p).engine for p in PATCHES}
    assert {"analog", "wavetable", "fm", "kit", "sampler"} <= engines


def _lufs(x):
    import pyloudnorm
    return pyloudnorm.Meter(SR).integrated_loudness(x.astype(np.float64))


@pytest.mark.parametrize("path", PATCHES, ids=lambda p: p.stem)
def test_every_patch_renders_sane(path):
    p = read_patch(path)
    assert p.name and len(p.description) > 20 and p.tags, path.name
    x = render_preview(p, SR)
    assert np.all(np.isfinite(x))
    peak = np.abs(x).max()
    assert 10 ** (-30 / 20) < peak <= 10 ** (-1 / 20) + 1e-6, (path.name, peak)
    assert -36.0 < _lufs(x) < -8.0, (path.name, _lufs(x))
    assert np.abs(x.mean(axis=0)).max() < 2e-3                       # no DC
    # it sounds for most of the phrase, not a blip
    frames = np.sqrt(np.mean(x[: len(x) // 4800 * 4800, 0].reshape(-1, 4800) ** 2, axis=1))
    assert np.mean(frames > 1e-3) > 0.5, path.name


@pytest.mark.parametrize("path", PATCHES, ids=lambda p: p.stem)
def test_every_patch_round_trips(path, tmp_path):
    from engine.tomldata import dump
    p = read_patch(path)
    again = tmp_path / path.name
    again.write_text(dump(p.data))
    assert read_patch(again).data == p.data


def test_preview_png_is_written(tmp_path):
    x = render_preview(PATCHES[0], SR)
    png = spectrogram_png(x, SR, tmp_path / "a.png", "a")
    assert png.stat().st_size > 10000 and png.read_bytes()[:4] == b"\x89PNG"
