"""Validated TOML data with errors that name the file, line and field (control side).

Configuration, patches and mappings are TOML files checked against a schema of `Field`s; a
bad file raises `DataError("config.toml:12: [audio] block_size: must be 16..4096, got 7")`.
Values round-trip: `dump(load(text)) == load(text)` for any valid file.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class DataError(ValueError):
    """A TOML file (or override) that does not fit its schema."""


@dataclass(frozen=True)
class Field:
    """One setting: its type, default, range or choices, and what it means."""
    default: Any
    help: str = ""
    lo: float | None = None
    hi: float | None = None
    choices: tuple | None = None

    def check(self, value: Any) -> Any:
        want = type(self.default)
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(self.default, list):
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"must be a list of strings, got {value!r}")
            return value
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise ValueError(f"must be {want.__name__}, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"must be one of {', '.join(map(str, self.choices))}; got {value!r}")
        if self.lo is not None and value < self.lo or self.hi is not None and value > self.hi:
            raise ValueError(f"must be {self.lo:g}..{self.hi:g}, got {value!r}")
        return value


@dataclass(frozen=True)
class WordOrNumber(Field):
    """A setting that is one of `choices` (words) or a number in lo..hi (e.g. a latency)."""

    def check(self, value: Any) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not self.lo <= value <= self.hi:
                raise ValueError(f"must be {self.lo:g}..{self.hi:g}, got {value!r}")
            return float(value)
        if value not in self.choices:
            raise ValueError(f"must be one of {', '.join(self.choices)} or a number "
                             f"{self.lo:g}..{self.hi:g}; got {value!r}")
        return value


Schema = dict[str, dict[str, Field]]


def line_of(text: str, section: str | None, key: str | None) -> int | None:
    """1-based line of `key` inside `[section]` (or of the section header) in TOML `text`."""
    current = None
    header_line = None
    for n, line in enumerate(text.splitlines(), 1):
        m = re.match(r"\s*\[\s*([^\]]+?)\s*\]", line)
        if m:
            current = m.group(1)
            if current == section:
                header_line = n
            continue
        if current == section and key is not None and re.match(
                rf"\s*\"?{re.escape(key)}\"?\s*=", line):
            return n
    return header_line


def parse(text: str, where: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        at = f"{where}:{m.group(1)}" if m else where
        raise DataError(f"{at}: not valid TOML: {exc}") from exc


def validate(data: dict, schema: Schema, text: str = "", where: str = "<data>",
             partial: bool = False) -> dict:
    """Check `data` against `schema`; fill defaults unless `partial`. Unknown sections and keys
    are errors (a typo must never be silently ignored)."""
    out: dict = {}

    def fail(section, key, msg):
        line = line_of(text, section, key) if text else None
        loc = f"{where}:{line}" if line else where
        field = f"[{section}] {key}" if key else f"[{section}]"
        raise DataError(f"{loc}: {field}: {msg}")

    for section, values in data.items():
        if section not in schema:
            fail(section, None, f"unknown section; known: {', '.join(schema)}")
        if not isinstance(values, dict):
            fail(section, None, "must be a table")
        for key, value in values.items():
            if key not in schema[section]:
                fail(section, key, f"unknown key; known: {', '.join(schema[section])}")
            try:
                out.setdefault(section, {})[key] = schema[section][key].check(value)
            except ValueError as exc:
                fail(section, key, str(exc))
    if not partial:
        for section, fields in schema.items():
            for key, f in fields.items():
                out.setdefault(section, {}).setdefault(
                    key, list(f.default) if isinstance(f.default, list) else f.default)
    return out


def load(path: str | Path, schema: Schema, partial: bool = False) -> dict:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror}") from exc
    return validate(parse(text, str(path)), schema, text, str(path), partial)


def leading_comments(text: str) -> str:
    """The comment block at the top of a file (kept when a program saves it)."""
    lines = []
    for line in text.splitlines():
        if line.startswith("#") or (lines and not line.strip()):
            lines.append(line)
        else:
            break
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines)


def dump(data: dict) -> str:
    """TOML text for validated data (tables of scalars and string lists)."""
    import tomli_w
    return tomli_w.dumps(data)
