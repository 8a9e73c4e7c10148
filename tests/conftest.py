import sys

import pytest

from tests.jackserver import JackServer


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
