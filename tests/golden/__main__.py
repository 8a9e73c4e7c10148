"""``python -m tests.golden [--update]``: check (or rewrite) the golden agent snapshots."""
from __future__ import annotations

import argparse
import sys

from engine.agents import STYLES

from . import AGENTS, difference, update


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.golden", description=__doc__)
    ap.add_argument("--update", action="store_true", help="rewrite the snapshots")
    a = ap.parse_args(argv)
    if a.update:
        changed = update()
        print("rewrote: " + ", ".join(changed) if changed else "every snapshot was current")
        return 0
    diffs = [d for agent in AGENTS for style in STYLES
             if (d := difference(agent, style)) is not None]
    print("\n".join(diffs) if diffs else "every snapshot holds")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
