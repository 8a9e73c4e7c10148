"""Start and stop a real JACK server (dummy driver) for tests and benchmarks (control side).

The server gets its own name so it never collides with a user's JACK; every client in this
process (PortAudio's JACK host API, rtmidi's JACK API, JACK-Client) finds it through the
JACK_DEFAULT_SERVER environment variable, which `start()` sets.
"""
from __future__ import annotations

import atexit
import ctypes
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path


def _die_with_parent() -> None:
    """In the child: ask Linux to SIGTERM jackd when the test process dies, however it dies
    (a run killed by a timeout must not leave a server behind)."""
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class JackServer:
    """A `jackd -R -d dummy` process. Use as a context manager."""

    def __init__(self, name: str | None = None, rate: int = 48000, period: int = 64,
                 log_dir: str | os.PathLike | None = None):
        # a name of our own: never attach to another run's (or an orphaned) server
        self.name = name or f"bandmate_test_{os.getpid()}"
        self.rate, self.period = rate, period
        self.proc: subprocess.Popen | None = None
        # jackd writes a line per xrun: its output goes to a file, never to a pipe nobody
        # drains (a full pipe blocks jackd in write(), and every client with it)
        self.log_path = Path(log_dir or tempfile.gettempdir()) / f"{self.name}.log"
        self._log = None

    def log_tail(self, chars: int = 2000) -> str:
        """The end of jackd's output (for failure messages)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no jackd log)"
        return f"jackd log {self.log_path} (last {chars} chars):\n{text[-chars:]}"

    def xruns(self) -> int:
        """How many xruns jackd has reported so far (a line each in its log): a test compares
        the count before and after a span to tell the host's lost cycles from its own faults."""
        try:
            return self.log_path.read_text(errors="replace").count("XRun")
        except OSError:
            return 0

    def start(self) -> "JackServer":
        jackd = shutil.which("jackd")
        if jackd is None:
            raise RuntimeError("jackd is not installed (Debian: apt-get install jackd2)")
        os.environ["JACK_DEFAULT_SERVER"] = self.name
        os.environ.setdefault("JACK_NO_AUDIO_RESERVATION", "1")
        cmd = [jackd, "-n", self.name, "-R", "-d", "dummy", "-r", str(self.rate), "-p", str(self.period)]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        atexit.register(self.stop)
        deadline = time.monotonic() + 10.0
        import jack  # JACK-Client

        jack.set_error_function(lambda msg: None)  # the probe's "cannot connect" noise while jackd starts
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jackd exited at start\n{self.log_tail()}")
            try:
                probe = jack.Client("bandmate_probe", no_start_server=True, servername=self.name)
            except jack.JackError:
                time.sleep(0.05)
                continue
            probe.close()
            jack.set_error_function()
            if self.proc.poll() is not None:
                raise RuntimeError(f"jackd exited at start; a server named {self.name!r} "
                                   "is already running")
            return self
        self.stop()
        raise RuntimeError(f"jackd did not come up within 10 s\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> "JackServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
