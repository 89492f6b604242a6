"""Read YAML keeping line and column marks, so every error can say where."""

from __future__ import annotations

import copy
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.composer import Composer
from ruamel.yaml.constructor import ConstructorError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError

from engine.metadata.errors import ConfigError, SourceLoc, did_you_mean

if TYPE_CHECKING:
    from engine.metadata.model import Entity

PathPart = str | int

# Aliases let a few lines expand to millions of nodes ("billion laughs"); no entity file
# comes near this many (the shipped config's largest has about 500). Counted while the
# file is read (ruamel builds nodes slowly: about 1 s per 50,000), and as aliases expand.
MAX_NODES = 50_000
# A config file is read whole before anything is checked; no entity file comes near this.
MAX_FILE_BYTES = 1_000_000

# Far beyond any sensible number, and short enough to print (Python limits int → str).
_MAX_INT_BITS = 1024

_DUPLICATE_RE = re.compile(r'^found duplicate key "(.*)" with value ', re.DOTALL)


class _Constructor(RoundTripConstructor):
    """Leaves timestamps as text: the field coercers parse dates, and ruamel's own parsing
    fails without a position on an impossible date such as 2025-02-30."""


_Constructor.add_constructor("tag:yaml.org,2002:timestamp", _Constructor.construct_yaml_str)


def _unknown_tag(constructor: RoundTripConstructor, node: Any) -> Any:
    """A tag no config key knows (`!foo`, `!!python/object`) is an error, not ignored."""
    tag = getattr(node.tag, "value", node.tag)
    raise ConstructorError(None, None, f"unknown YAML tag {tag!r}", node.start_mark)


_Constructor.add_constructor(None, _unknown_tag)


class _Composer(Composer):
    """Counts nodes while it reads, so a huge file stops early, at a position."""

    nodes = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            mark = self.parser.peek_event().start_mark
            raise ConstructorError(None, None, f"the file has more than {MAX_NODES:,} YAML "
                                   "nodes (the limit)", mark)
        return super().compose_node(parent, index)


class YamlDoc:
    """A parsed YAML file: plain data plus a way to find where any node was written.

    Keys of `data` are strings (a YAML key `1` or `true` becomes "1" or "True"); `loc`
    takes the same string keys.
    """

    def __init__(self, file: str, root: Any, data: Any) -> None:
        self.file = file
        self.root = root
        self.data = data

    def loc(self, path: Sequence[PathPart] = (), *, key: bool = False) -> SourceLoc:
        """Position of the node at `path`; with `key`, of its key rather than its value.

        Where the path stops resolving, the deepest node found is used.
        """
        node = self.root
        line, col = _own_pos(node)
        for i, part in enumerate(path):
            last = i == len(path) - 1
            if isinstance(node, CommentedMap):
                found = _find_key(node, part)
                if found is None:
                    break
                owner, real_key = found
                key_pos = owner.lc.key(real_key)
                value_pos = owner.lc.value(real_key)
                child = node[real_key]
                # An empty value (`a:` then a newline) is marked at the next token, which
                # can be lines further on; the key is where the reader should look.
                use_key = (key and last) or (child is None and value_pos[0] != key_pos[0])
                line, col = key_pos if use_key else value_pos
                node = child
            elif isinstance(node, CommentedSeq) and isinstance(part, int) \
                    and 0 <= part < len(node):
                line, col = node.lc.item(part)
                node = node[part]
            else:
                break
        return SourceLoc(self.file, line + 1, col + 1)

    def error(self, path: Sequence[PathPart], message: str, *, key: bool = False) -> ConfigError:
        return ConfigError(self.loc(path, key=key), message)

    def entity(self, key: str, entities: Sequence[Entity],
               errors: list[ConfigError]) -> Entity | None:
        """The entity top-level `key` names; an unknown one is an error at it (with a
        did-you-mean) and None."""
        name = self.data[key]
        found = next((e for e in entities if e.name == name), None)
        if found is None:
            hint = did_you_mean(name, [e.name for e in entities])
            errors.append(self.error([key], f"{key}: unknown entity {name!r}{hint}"))
        return found


def _own_pos(node: Any) -> tuple[int, int]:
    if isinstance(node, (CommentedMap, CommentedSeq)) and node.lc.line is not None:
        return node.lc.line, node.lc.col
    return 0, 0


def _find_key(node: CommentedMap, part: PathPart) -> tuple[CommentedMap, Any] | None:
    """The map that wrote the key whose string form is `part` (following `<<` merges)."""
    for k in node.lc.data or ():  # None when every key came from a merge
        if str(k) == str(part):
            return node, k
    if not any(str(k) == str(part) for k in node):
        return None
    for source in _merge_sources(node):
        found = _find_key(source, part)
        if found is not None:
            return found
    return None


def _merge_sources(node: CommentedMap) -> list[CommentedMap]:
    out: list[CommentedMap] = []
    for item in getattr(node, "merge", None) or ():
        # ruamel keeps merged maps either bare or as (position, map) pairs, by version.
        source = item[1] if isinstance(item, tuple) else item
        if isinstance(source, CommentedMap):
            out.append(source)
    return out


class _Plain:
    """Turns ruamel's nodes into plain dicts, lists and scalars, checking keys on the way."""

    def __init__(self, doc: YamlDoc) -> None:
        self.doc = doc
        self.nodes = 0
        self.problem: ConfigError | None = None

    def convert(self, node: Any, path: list[PathPart], active: set[int]) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _TooLarge
        if isinstance(node, (dict, list)):
            if id(node) in active:  # an alias inside its own anchor
                self._report(path, "an alias refers to a node that contains it")
                return None
            active.add(id(node))
            try:
                if isinstance(node, dict):
                    return self._mapping(node, path, active)
                return [self.convert(v, [*path, i], active) for i, v in enumerate(node)]
            finally:
                active.discard(id(node))
        if isinstance(node, bool) or node is None:
            return node
        if isinstance(node, int):
            if node.bit_length() > _MAX_INT_BITS:
                self._report(path, "the number is too large")
                return None
            return int(node)
        if isinstance(node, float):
            return float(node)
        if isinstance(node, str):
            return str(node)
        return node

    def _mapping(self, node: dict[Any, Any], path: list[PathPart],
                 active: set[int]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in node.items():
            name = str(k)
            if name in out:  # e.g. `1:` and `"1":`, equal only once both are strings
                if self.problem is None:
                    line, col = node.lc.key(k) if isinstance(node, CommentedMap) \
                        and k in (node.lc.data or ()) else _own_pos(node)
                    self.problem = ConfigError(SourceLoc(self.doc.file, line + 1, col + 1),
                                               f"duplicate key {name!r}")
                continue
            out[name] = self.convert(v, [*path, name], active)
        return out

    def _report(self, path: list[PathPart], message: str) -> None:
        if self.problem is None:
            self.problem = self.doc.error(path, message)


class _TooLarge(Exception):
    pass


def read_yaml(path: Path, display: str) -> YamlDoc | ConfigError:
    """Parse one file; a syntax error, a duplicate key, an unknown tag, a non-UTF-8 byte or
    a file past MAX_FILE_BYTES or MAX_NODES comes back as a ConfigError at its position."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:  # not even read
            return ConfigError(SourceLoc(display, 1, 1),
                               f"the file is {path.stat().st_size:,} bytes; the limit is "
                               f"{MAX_FILE_BYTES:,}")
        raw = path.read_bytes()
    except OSError as exc:
        return ConfigError(SourceLoc(display, 1, 1), f"cannot read the file: {exc.strerror}")
    return parse_yaml(raw, display)


_PARSED: OrderedDict[bytes, YamlDoc] = OrderedDict()
_PARSED_MAX = 512
_PARSED_LOCK = threading.Lock()
"""The last files parsed, by their bytes: ruamel reads about 1 MB/s, so a process that
loads a config again (after an edit, or a copy of it elsewhere) parses only the files that
changed. Each caller gets its own copy of the plain data under its own file name; the
marks tree (lines and columns only) is only read."""


def parse_yaml(raw: bytes, display: str) -> YamlDoc | ConfigError:
    """Like `read_yaml`, from the file's bytes."""
    key = raw
    with _PARSED_LOCK:
        done = _PARSED.get(key)
        if done is not None:
            _PARSED.move_to_end(key)
    if done is not None:
        return YamlDoc(display, done.root, copy.deepcopy(done.data))
    parsed = _parse(raw, display)
    if isinstance(parsed, YamlDoc):
        kept = YamlDoc(parsed.file, parsed.root, copy.deepcopy(parsed.data))
        with _PARSED_LOCK:
            _PARSED[key] = kept
            while len(_PARSED) > _PARSED_MAX:
                _PARSED.popitem(last=False)
    return parsed


def _parse(raw: bytes, display: str) -> YamlDoc | ConfigError:
    if len(raw) > MAX_FILE_BYTES:
        return ConfigError(SourceLoc(display, 1, 1),
                           f"the file is {len(raw):,} bytes; the limit is {MAX_FILE_BYTES:,}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _position(raw, exc.start)
        return ConfigError(SourceLoc(display, line, col),
                           f"file is not UTF-8: byte 0x{raw[exc.start]:02x} ({exc.reason})")
    yaml = YAML(typ="rt")
    yaml.Constructor = _Constructor
    yaml.Composer = _Composer
    yaml.allow_duplicate_keys = False
    try:
        root = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and problem.startswith("but "):  # "expected X" / "but found Y"
            problem = f"{exc.context}, {problem}"
        if problem.startswith(("unknown YAML tag", "the file has more than")):
            return ConfigError(SourceLoc(display, line, col), problem)
        duplicate = _DUPLICATE_RE.match(problem)
        if duplicate:
            return ConfigError(SourceLoc(display, line, col),
                               f"duplicate key {duplicate.group(1)!r}")
        return ConfigError(SourceLoc(display, line, col), f"YAML syntax error: {problem}")
    except RecursionError:
        return ConfigError(SourceLoc(display, 1, 1), "YAML syntax error: nesting is too deep")
    except Exception as exc:  # ruamel raises a few unmarked errors on odd input
        return ConfigError(SourceLoc(display, 1, 1), f"YAML syntax error: {exc}")
    doc = YamlDoc(display, root, None)
    plain = _Plain(doc)
    try:
        doc.data = plain.convert(root, [], set())
    except _TooLarge:
        return ConfigError(SourceLoc(display, 1, 1),
                           f"the file expands to more than {MAX_NODES} YAML nodes")
    except RecursionError:
        return ConfigError(SourceLoc(display, 1, 1), "YAML syntax error: nesting is too deep")
    if plain.problem is not None:
        return plain.problem
    return doc


def _position(raw: bytes, offset: int) -> tuple[int, int]:
    """1-based line and column (in characters) of byte `offset`."""
    before = raw[:offset]
    line_start = before.rfind(b"\n") + 1
    col = len(before[line_start:].decode("utf-8", errors="replace")) + 1
    return before.count(b"\n") + 1, col
