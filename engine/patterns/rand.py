"""Stateless, stable randomness (control side).

Every random choice in bandmate's music is a pure function of integers and names, e.g.
``unit(seed, "drums", bar, "kick", step)``. No generator is carried from one query to the next, so
querying a stretch of music in any chunking gives the same notes, and the same seed gives the same
music in every process. Python's ``hash()`` of a str is salted per process, so it is never used:
the mix is BLAKE2b over a tagged text encoding of the parts.
"""

from __future__ import annotations

import hashlib
import random
from numbers import Integral

__all__ = ["mix", "unit", "rng"]

_SCALE = 1.0 / 18446744073709551616.0  # 2**-64


def _encode(parts: tuple) -> bytes:
    out = []
    for p in parts:
        t = type(p)
        if t is int:
            out.append("i%d" % p)
        elif t is str:
            out.append("s" + p)
        elif isinstance(p, Integral) and t is not bool:  # e.g. numpy integers
            out.append("i%d" % int(p))
        else:
            raise TypeError(f"random parts must be int or str, got {t.__name__} {p!r}")
    return "\x1f".join(out).encode()


def mix(*parts: int | str) -> int:
    """A stable unsigned 64-bit integer mixed from ``parts`` (ints and strs)."""
    return int.from_bytes(hashlib.blake2b(_encode(parts), digest_size=8).digest(), "little")


def unit(*parts: int | str) -> float:
    """A stable uniform draw in [0, 1) keyed by ``parts``."""
    return mix(*parts) * _SCALE


def rng(*parts: int | str) -> random.Random:
    """A fresh `random.Random` seeded from ``parts``; use it within one pure computation only
    (e.g. rendering one bar), never across queries."""
    return random.Random(mix(*parts))
