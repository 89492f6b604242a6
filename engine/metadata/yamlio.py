"""Read YAML keeping line and column marks, so every error can say where."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from engine.metadata.errors import ConfigError, SourceLoc

PathPart = str | int


class YamlDoc:
    """A parsed YAML file: plain data plus a way to find where any node was written."""

    def __init__(self, file: str, root: Any) -> None:
        self.file = file
        self.root = root
        self.data = _plain(root)

    def loc(self, path: Sequence[PathPart] = (), *, key: bool = False) -> SourceLoc:
        """Position of the node at `path`; with `key`, of its key rather than its value."""
        node = self.root
        line, col = 0, 0
        for i, part in enumerate(path):
            last = i == len(path) - 1
            if isinstance(node, CommentedMap) and part in node:
                pos = node.lc.key(part) if (key and last) else node.lc.value(part)
                line, col = pos[0], pos[1]
                node = node[part]
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
                line, col = node.lc.item(part)
                node = node[part]
            else:
                break
        else:
            if not path and isinstance(node, (CommentedMap, CommentedSeq)):
                line, col = node.lc.line, node.lc.col
        return SourceLoc(self.file, line + 1, col + 1)

    def error(self, path: Sequence[PathPart], message: str, *, key: bool = False) -> ConfigError:
        return ConfigError(self.loc(path, key=key), message)


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


def read_yaml(path: Path, display: str) -> YamlDoc | ConfigError:
    """Parse one file; a syntax error (or a duplicate key) comes back as a ConfigError."""
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return ConfigError(SourceLoc(display, 1, 1), f"file is not UTF-8: {exc.reason}")
    try:
        root = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or "invalid YAML"
        if "duplicate key" in problem or "found duplicate key" in str(exc):
            problem = _duplicate_message(str(exc))
        return ConfigError(SourceLoc(display, line, col), f"YAML syntax error: {problem}")
    except Exception as exc:  # ruamel raises a few unmarked errors on odd input
        return ConfigError(SourceLoc(display, 1, 1), f"YAML syntax error: {exc}")
    return YamlDoc(display, root)


def _duplicate_message(text: str) -> str:
    for line in text.splitlines():
        if "found duplicate key" in line:
            start = line.find('"')
            end = line.find('"', start + 1)
            if start != -1 and end != -1:
                return f"duplicate key {line[start + 1 : end]!r}"
    return "duplicate key"
