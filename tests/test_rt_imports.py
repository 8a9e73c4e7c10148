"""engine/rt is the audio thread's code: it may import only numpy, numba, llvmlite, math,
ctypes and engine.rt itself, so nothing from the control side (asyncio, tomllib, mido,
agents...) can end up in or near a real-time callback. Checked on the source with `ast`,
imports inside functions included."""
import ast
from pathlib import Path

import pytest

RT = Path(__file__).resolve().parents[1] / "engine" / "rt"
ALLOWED = {"numpy", "numba", "llvmlite", "math", "ctypes"}
MODULES = sorted(RT.rglob("*.py"))


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ["engine", "rt"][: max(0, 3 - node.level)]
                if node.level > 2:
                    base = []
                name = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:   # from . import x  -> engine.rt.x
                    out.extend((node.lineno, f"{name}.{a.name}") for a in node.names)
                    continue
                out.append((node.lineno, name))
            else:
                out.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
            out.append((node.lineno, "__import__"))
    return out


def allowed(name: str) -> bool:
    return name.split(".")[0] in ALLOWED or name == "engine.rt" or name.startswith("engine.rt.")


def test_the_checker_catches_what_it_should(tmp_path):
    f = tmp_path / "bad.py"
    f.write_text("import os\nfrom engine.control import clock\nfrom . import dsp\n"
                 "from .. import parts\ndef f():\n    import asyncio\n    __import__('x')\n"
                 "import numpy.linalg\nfrom numba.core import types\n")
    bad = sorted((line, name) for line, name in imports_of(f) if not allowed(name))
    assert bad == [(1, "os"), (2, "engine.control"), (4, "engine.parts"), (6, "asyncio"),
                   (7, "__import__")]


def test_every_rt_module_is_checked():
    names = {p.stem for p in MODULES}
    assert {"render", "ringbuf", "events", "voice", "drums", "master", "layout",
            "callbacks", "ptr", "params", "dsp"} <= names


def _param(path):
    return pytest.param(path, id=path.name)


@pytest.mark.parametrize("path", [_param(p) for p in MODULES])
def test_rt_module_imports_only_allowed_modules(path):
    bad = [f"{path.name}:{line}: {name}" for line, name in imports_of(path) if not allowed(name)]
    assert bad == []
