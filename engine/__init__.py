"""bandmate's engine.

`engine.rt` is the audio thread's code (compiled, GIL-free); everything else in `engine`
runs on the control side (asyncio thread, MIDI callback threads, CLI) and reaches the audio
thread only through the lock-free queues in `engine.rt.ringbuf`.
"""
import hashlib
import os
import sys
from pathlib import Path


AUTO = "_BANDMATE_NUMBA_CACHE_AUTO"     # set beside NUMBA_CACHE_DIR when this module chose it


def rt_digest() -> str:
    """A hash of engine/rt's sources (and of where they are): it names the compiled-kernel
    cache and the units' declaration cache (engine.declared)."""
    rt = Path(__file__).resolve().parent / "rt"
    digest = hashlib.sha256(str(rt).encode())    # one cache per checkout, too
    for path in sorted(rt.rglob("*.py")):      # engine/rt/units/ too
        digest.update(str(path.relative_to(rt)).encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def cache_root() -> Path:
    """bandmate's cache folder ($XDG_CACHE_HOME/bandmate, else ~/.cache/bandmate)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bandmate"


def _use_versioned_kernel_cache() -> None:
    """Keep Numba's compiled-kernel cache in a folder named after a hash of engine/rt's sources
    (and of where they are).

    Numba invalidates a cached kernel only when its own file changes, not when a function it
    inlines from another file does; keying the whole cache on every audio-thread source makes
    any change recompile everything once, and never run a stale kernel.

    Numba is not imported here (it takes seconds, and `bandmate patch from-text` never needs
    it): the folder goes in NUMBA_CACHE_DIR, which Numba reads when something imports it. A
    folder the user set is kept; one this module set (AUTO, inherited by a child process of
    another checkout) is replaced."""
    if os.environ.get("NUMBA_CACHE_DIR") and not os.environ.get(AUTO):
        return
    folder = str(cache_root() / "numba" / rt_digest())
    if "numba" in sys.modules:                  # imported before engine: set it directly
        sys.modules["numba"].config.CACHE_DIR = folder
    os.environ["NUMBA_CACHE_DIR"] = folder
    os.environ[AUTO] = "1"


_use_versioned_kernel_cache()
