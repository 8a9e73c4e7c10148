"""Hot reload: patch files watched while the music plays (control side, the asyncio thread).

`PatchWatcher.poll()` looks at every watched folder's `*.toml` files (modification time and
size): the library's folders (config [library] folders: the factory's and your own) and the
folder of every patch a part plays. A changed file is validated first; a broken one is reported with its file, line and
field and nothing changes (the part keeps its sound). A valid one that a part plays is loaded
onto that part (`Session.load_patch`: smoothed values, or a graph swap crossfaded at a block
boundary); if the last swap is still crossfading, it is tried again on the next poll.
`run()` polls every `interval_s` until stopped.
"""
from __future__ import annotations

import asyncio
from pathlib import Path

from engine.control.graph import GraphBusy
from engine.patch import read_patch
from engine.tomldata import DataError


class PatchWatcher:
    def __init__(self, session, folders=(), log=print, interval_s: float = 0.25):
        self.session = session
        self.log = log
        self.interval_s = interval_s
        root = session.root
        self.folders = []
        for f in folders:           # the library's folders ([library] folders)
            f = Path(f).expanduser()
            f = f if f.is_absolute() else root / f
            if f not in self.folders:
                self.folders.append(f)
        for part, rel in session.cfg["patches"].items():
            if not rel:
                continue
            folder = (root / rel).parent
            if folder not in self.folders:
                self.folders.append(folder)
        self._seen = self._scan()
        self._pending: set[Path] = set()
        self.reloads = 0
        self.errors = 0

    def _scan(self) -> dict[Path, tuple[int, int]]:
        out = {}
        for folder in self.folders:
            try:
                for path in folder.glob("*.toml"):
                    try:
                        st = path.stat()
                    except OSError:
                        continue
                    out[path.resolve()] = (st.st_mtime_ns, st.st_size)
            except OSError:
                continue
        return out

    def _parts_playing(self, path: Path) -> list[str]:
        root = self.session.root
        return [part for part, rel in self.session.cfg["patches"].items()
                if rel and (root / rel).resolve() == path]

    def poll(self) -> list[str]:
        """Check once; returns what happened, one line each (also logged)."""
        now = self._scan()
        changed = {p for p, sig in now.items() if self._seen.get(p) != sig} | self._pending
        self._seen = now
        self._pending = set()
        said = []
        for path in sorted(changed):
            if path not in now:
                continue
            try:
                patch = read_patch(path)
            except DataError as exc:
                self.errors += 1
                said.append(f"patch not loaded, the sound is unchanged: {exc}")
                continue
            for part in self._parts_playing(path):
                try:
                    self.session.load_patch(part, path)
                except GraphBusy:
                    self._pending.add(path)
                    continue
                except (DataError, ValueError) as exc:
                    self.errors += 1
                    said.append(f"patch not loaded, the sound is unchanged: {path}: {exc}")
                    continue
                self.reloads += 1
                said.append(f"{part}: {patch.name or path.stem} reloaded")
        for line in said:
            self.log(line)
        return said

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            await asyncio.sleep(self.interval_s)
            try:
                self.poll()
            except Exception as exc:  # noqa: BLE001 - a watcher never takes the music down
                self.log(f"patch watcher: {exc}")
