import pytest

from tests.jackserver import JackServer


@pytest.fixture(scope="session")
def jack_server():
    """A real JACK server (dummy driver, 48 kHz, 64 frames) for the whole test session."""
    with JackServer() as server:
        yield server
