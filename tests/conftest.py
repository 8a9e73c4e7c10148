import sys
from pathlib import Path

import pytest

from tests.enginekit import dry_config
from tests.jackserver import JackServer

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def jack_server():
    """A real JACK server (dummy driver, 48 kHz, 64 frames) for the whole test session."""
    with JackServer() as server:
        yield server
        # PortAudio keeps a JACK client until it terminates: close it while the server lives
        # (libportaudio aborts the process if its server vanished first)
        sd = sys.modules.get("sounddevice")
        if sd is not None:
            sd._terminate()


@pytest.fixture
def cfg(monkeypatch):
    """The repository's config.toml with the sends off (tests/enginekit.dry_config), run from
    the repository root; a test file that needs another configuration defines its own `cfg`."""
    monkeypatch.chdir(ROOT)
    return dry_config(ROOT)
