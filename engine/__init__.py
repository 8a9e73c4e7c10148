"""bandmate's engine.

`engine.rt` is the audio thread's code (compiled, GIL-free); everything else in `engine`
runs on the control side (asyncio thread, MIDI callback threads, CLI) and reaches the audio
thread only through the lock-free queues in `engine.rt.ringbuf`.
"""
import hashlib
import os
from pathlib import Path


def _use_versioned_kernel_cache() -> None:
    """Keep Numba's compiled-kernel cache in a folder named after a hash of engine/rt's sources
    (and of where they are).

    Numba invalidates a cached kernel only when its own file changes, not when a function it
    inlines from another file does; keying the whole cache on every audio-thread source makes
    any change recompile everything once, and never run a stale kernel."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    rt = Path(__file__).resolve().parent / "rt"
    digest = hashlib.sha256(str(rt).encode())    # one cache per checkout, too
    for path in sorted(rt.rglob("*.py")):       # engine/rt/units too
        if "__pycache__" in path.parts:
            continue
        digest.update(str(path.relative_to(rt)).encode() + path.read_bytes())
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    import numba

    numba.config.CACHE_DIR = str(base / "bandmate" / "numba" / digest.hexdigest()[:16])


_use_versioned_kernel_cache()
