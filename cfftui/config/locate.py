"""Line numbers of TOML key paths, which tomllib does not report, for error messages only."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

PathPart = str | int
KeyPath = tuple[PathPart, ...]

BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
# One token: a triple-quoted string, a one-line string, a comment, a bare word, or one structural character.
TOKEN = re.compile(
    r'"""(?:[^"\\]|\\.|"(?!""))*"""'
    r"|'''(?:[^']|'(?!''))*'''"
    r'|"(?:[^"\\\n]|\\.)*"'
    r"|'[^'\n]*'"
    r"|#[^\n]*"
    r"|[^\s\[\]{},=.\"'#]+"
    r"|\n|[\[\]{},=.]"
    r"|[ \t\r]+",
    re.DOTALL,
)


@dataclass(frozen=True)
class _Token:
    text: str
    line: int


def _tokens(source: str) -> list[_Token]:
    tokens: list[_Token] = []
    line, pos = 1, 0
    while pos < len(source):
        m = TOKEN.match(source, pos)
        if m is None:  # a character no valid document has there; skip it rather than give up
            pos += 1
            continue
        text = m.group()
        if text.strip(" \t\r") and not text.startswith("#"):
            tokens.append(_Token(text, line))
        line += text.count("\n")
        pos = m.end()
    return tokens


def _key_text(token: str) -> str:
    if token.startswith('"'):
        return token[1:-1].encode("utf-8").decode("unicode_escape") if "\\" in token else token[1:-1]
    if token.startswith("'"):
        return token[1:-1]
    return token


class _Parser:
    """Walks a document tomllib already accepted, recording the first line of every key and value."""

    def __init__(self, source: str) -> None:
        self.tokens = _tokens(source)
        self.i = 0
        self.found: list[tuple[KeyPath, int]] = []

    def peek(self) -> str:
        return self.tokens[self.i].text if self.i < len(self.tokens) else ""

    def take(self) -> _Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def skip_newlines(self) -> None:
        while self.peek() == "\n":
            self.i += 1

    def record(self, path: KeyPath, line: int) -> None:
        self.found.append((path, line))

    def key(self) -> tuple[list[str], int]:
        line = self.tokens[self.i].line
        parts = [_key_text(self.take().text)]
        while self.peek() == ".":
            self.i += 1
            parts.append(_key_text(self.take().text))
        return parts, line

    def run(self) -> list[tuple[KeyPath, int]]:
        table: KeyPath = ()
        while self.i < len(self.tokens):
            self.skip_newlines()
            if self.i >= len(self.tokens):
                break
            if self.peek() == "[":
                self.i += 1
                if self.peek() == "[":
                    self.i += 1
                parts, line = self.key()
                while self.peek() == "]":
                    self.i += 1
                table = tuple(parts)
                self.record(table, line)
            else:
                self.pair(table)
        return self.found

    def pair(self, table: KeyPath) -> None:
        parts, line = self.key()
        path = table + tuple(parts)
        self.record(path, line)
        if self.peek() == "=":
            self.i += 1
        self.value(path)

    def value(self, path: KeyPath) -> None:
        if self.i >= len(self.tokens):
            return
        start = self.tokens[self.i]
        if start.text == "[":
            self.i += 1
            index = 0
            while True:
                self.skip_newlines()
                if self.peek() in ("]", ""):
                    self.i += 1
                    return
                self.record(path + (index,), self.tokens[self.i].line)
                self.value(path + (index,))
                self.skip_newlines()
                if self.peek() == ",":
                    self.i += 1
                index += 1
        elif start.text == "{":
            self.i += 1
            while self.peek() not in ("}", ""):
                if self.peek() == ",":
                    self.i += 1
                    continue
                self.pair(path)
            self.i += 1
        else:
            while self.peek() not in (",", "]", "}", "\n", ""):
                self.i += 1


def records(source: str) -> list[tuple[KeyPath, int]]:
    """Every key, table header and array element in document order, repeats included.

    The source may stop part-way (the head of a document up to a syntax error): what was read is kept.
    """
    parser = _Parser(source)
    try:
        parser.run()
    except (IndexError, ValueError):  # a cut or broken document: keep what was read
        pass
    return parser.found


def key_lines(source: str) -> dict[KeyPath, int]:
    """The first line of every key, table header and array element of a document."""
    lines: dict[KeyPath, int] = {}
    for path, line in records(source):
        lines.setdefault(path, line)
    return lines


class Locator:
    """Finds the line of a key path, falling back to the nearest enclosing table or key that exists."""

    def __init__(self, source: str) -> None:
        self.lines = key_lines(source)

    def line_of(self, path: Sequence[PathPart]) -> int | None:
        path = tuple(path)
        for n in range(len(path), 0, -1):
            if path[:n] in self.lines:
                return self.lines[path[:n]]
            # A table only ever named as the prefix of deeper headers ([a.b.c] defines a.b implicitly).
            deeper = [line for key, line in self.lines.items() if key[:n] == path[:n]]
            if deeper:
                return min(deeper)
        return None


def dotted(path: Sequence[PathPart]) -> str:
    """A key path as TOML writes it: bare parts plain, others quoted, array indices in brackets."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        text = part if BARE_KEY.match(part) else '"' + part.replace("\\", "\\\\").replace('"', '\\"') + '"'
        out += f".{text}" if out else text
    return out
