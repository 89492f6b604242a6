"""engine.metadata.yamlio: YAML in, plain data and exact source positions out."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.metadata.errors import ConfigError, SourceLoc
from engine.metadata.yamlio import MAX_FILE_BYTES, MAX_NODES, YamlDoc, parse_yaml, read_yaml

F = "config/entities/x.yaml"


def doc_of(text: str) -> YamlDoc:
    doc = parse_yaml(text.encode(), F)
    assert isinstance(doc, YamlDoc), doc
    return doc


def error_of(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    err = parse_yaml(raw, F)
    assert isinstance(err, ConfigError), err
    return str(err)


def at(doc: YamlDoc, *path: str | int, key: bool = False) -> tuple[int, int]:
    loc = doc.loc(path, key=key)
    assert loc.file == F
    return loc.line, loc.col


# -- positions -----------------------------------------------------------------------------

def test_positions_in_block_and_flow_mappings() -> None:
    doc = doc_of(
        "entity: deal\n"
        "fields:\n"
        "  name: {type: text, max_length: 20}\n"
        "  stage:\n"
        "    type: choice\n"
        "    options: [open, won]\n"
    )
    assert at(doc) == (1, 1)
    assert at(doc, "entity") == (1, 9)
    assert at(doc, "entity", key=True) == (1, 1)
    assert at(doc, "fields") == (3, 3)
    assert at(doc, "fields", "name", key=True) == (3, 3)
    assert at(doc, "fields", "name") == (3, 9)
    assert at(doc, "fields", "name", "max_length", key=True) == (3, 22)
    assert at(doc, "fields", "name", "max_length") == (3, 34)
    assert at(doc, "fields", "stage") == (5, 5)
    assert at(doc, "fields", "stage", "type") == (5, 11)
    assert at(doc, "fields", "stage", "options", 0) == (6, 15)
    assert at(doc, "fields", "stage", "options", 1) == (6, 21)


def test_a_path_that_stops_resolving_points_at_the_deepest_node_found() -> None:
    doc = doc_of("entity: deal\nfields:\n  name: {type: text}\n")
    assert at(doc, "fields", "name", "options") == (3, 9)
    assert at(doc, "fields", "name", "type", "deeper") == (3, 16)
    assert at(doc, "missing") == (1, 1)
    assert at(doc, "fields", 7) == (3, 3)


def test_an_empty_value_points_at_its_key_not_the_next_line() -> None:
    doc = doc_of("entity: deal\nfields:\n  name:\n  other: {type: text}\n")
    assert doc.data["fields"]["name"] is None
    assert at(doc, "fields", "name") == (3, 3)
    # Written explicitly on the key's line, the null itself is the place.
    doc = doc_of("entity: deal\nfields:\n  name: ~\n")
    assert at(doc, "fields", "name") == (3, 9)


def test_keys_that_are_not_strings_are_found_by_their_string_form() -> None:
    doc = doc_of("fields:\n  yes: 1\n  true: 2\n  12: 3\n  1.5: 4\n")
    assert doc.data == {"fields": {"yes": 1, "True": 2, "12": 3, "1.5": 4}}
    assert at(doc, "fields", "True", key=True) == (3, 3)
    assert at(doc, "fields", "12", key=True) == (4, 3)
    assert at(doc, "fields", "1.5") == (5, 8)


def test_merged_keys_point_where_they_were_written() -> None:
    doc = doc_of(
        "fields:\n"
        "  a: &base {type: text, max_length: 5}\n"
        "  b: {<<: *base, max_length: 9}\n"
        "  c: {<<: *base}\n"
    )
    assert doc.data["fields"]["b"] == {"type": "text", "max_length": 9}
    assert at(doc, "fields", "b", "max_length") == (3, 30)
    assert at(doc, "fields", "b", "type") == (2, 19)
    assert at(doc, "fields", "c", "type", key=True) == (2, 13)


def test_columns_count_characters_not_bytes() -> None:
    doc = doc_of("label: {zh: 销售机会, en: Deal}\n")
    assert at(doc, "label", "en") == (1, 23)


# -- plain data ----------------------------------------------------------------------------

def test_data_is_plain_python() -> None:
    doc = doc_of("a: {b: [1, 2.5, true, null, text]}\nc: 2025-03-31\nd: 2025-02-30\n")
    assert doc.data == {"a": {"b": [1, 2.5, True, None, "text"]}, "c": "2025-03-31",
                        "d": "2025-02-30"}
    b = doc.data["a"]["b"]
    assert [type(v) for v in b] == [int, float, bool, type(None), str]
    assert type(doc.data["c"]) is str  # timestamps stay text; the field coercer parses them


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_an_empty_document_is_none(text: str) -> None:
    assert doc_of(text).data is None


# -- errors --------------------------------------------------------------------------------

def test_syntax_error_position_and_message() -> None:
    assert error_of("entity: x\nfields:\n  a: {type: text\n  b: 1\n") == (
        f"{F}:4:4: YAML syntax error: expected ',' or '}}', but got ':'")


def test_tab_indentation() -> None:
    assert error_of("entity: x\nfields:\n\ta: {type: text}\n") == (
        f"{F}:3:1: YAML syntax error: found character '\\t' that cannot start any token")


def test_undefined_alias() -> None:
    assert error_of("entity: x\nfields:\n  a: *nope\n") == (
        f"{F}:3:6: YAML syntax error: found undefined alias 'nope'")


def test_two_documents_in_one_file() -> None:
    assert error_of("entity: x\n---\nentity: y\n") == (
        f"{F}:2:1: YAML syntax error: expected a single document in the stream, "
        "but found another document")


@pytest.mark.parametrize(("text", "expected"), [
    ("entity: x\nfields:\n  a: {type: text}\n  a: {type: integer}\n", "4:3: duplicate key 'a'"),
    ("entity: x\nentity: y\n", "2:1: duplicate key 'entity'"),
    ("a: {type: text, type: integer}\n", "1:17: duplicate key 'type'"),
    ('a:\n  x: 1\n  "x": 2\n', "3:3: duplicate key 'x'"),
    # Different YAML keys that become one string key are duplicates too.
    ("fields:\n  1: {type: text}\n  '1': {type: text}\n", "3:3: duplicate key '1'"),
], ids=["field", "top-level", "flow", "quoted", "int-and-string"])
def test_duplicate_keys_point_at_the_duplicate(text: str, expected: str) -> None:
    assert error_of(text) == f"{F}:{expected}"


def test_non_utf8_points_at_the_bad_byte() -> None:
    raw = "entity: x\nlabel: {zh: 销售, en: caf".encode() + b"\xe9}\n"
    assert error_of(raw) == (
        f"{F}:2:24: file is not UTF-8: byte 0xe9 (invalid continuation byte)")
    assert error_of(b"\xff\xfeentity: x\n") == (
        f"{F}:1:1: file is not UTF-8: byte 0xff (invalid start byte)")


def test_alias_expansion_is_bounded() -> None:
    lines = ["l0: &l0 [a, a, a, a, a, a, a, a, a, a]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 7)]
    assert error_of("\n".join(lines) + "\n") == (
        f"{F}:1:1: the file expands to more than {MAX_NODES} YAML nodes")


def test_nodes_are_counted_while_reading() -> None:
    """A long file stops at the node past the limit, before it is built into data."""
    assert error_of("- 1\n" * (MAX_NODES + 10)) == (
        f"{F}:{MAX_NODES}:3: the file has more than {MAX_NODES:,} YAML nodes (the limit)")


def test_a_file_past_the_size_limit_is_not_read(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"entity: x\nnote: " + b"y" * MAX_FILE_BYTES + b"\n")
    assert str(read_yaml(big, F)) == (
        f"{F}:1:1: the file is {MAX_FILE_BYTES + 17:,} bytes; the limit is {MAX_FILE_BYTES:,}")
    assert error_of(big.read_bytes()).endswith(f"the limit is {MAX_FILE_BYTES:,}")


@pytest.mark.parametrize(("text", "expected"), [
    ("entity: x\nfields: !foo\n  a: {type: text}\n", "2:9: unknown YAML tag '!foo'"),
    ("entity: x\nlabel: !bar hello\n", "2:8: unknown YAML tag '!bar'"),
    ("entity: x\nrun: !!python/object:os.system echo\n",
     "2:6: unknown YAML tag 'tag:yaml.org,2002:python/object:os.system'"),
])
def test_unknown_tags_are_errors_at_their_position(text: str, expected: str) -> None:
    assert error_of(text) == f"{F}:{expected}"


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    assert error_of("a: " + "[" * 500 + "]" * 500 + "\n") == (
        f"{F}:1:1: YAML syntax error: nesting is too deep")


def test_a_number_too_large_to_print_is_an_error() -> None:
    assert error_of("entity: x\nmax: 0x" + "f" * 400 + "\n") == (
        f"{F}:2:6: the number is too large")


def test_read_yaml_reports_an_unreadable_path(tmp_path: Path) -> None:
    missing = tmp_path / "gone.yaml"
    err = read_yaml(missing, "config/entities/gone.yaml")
    assert err == ConfigError(SourceLoc("config/entities/gone.yaml", 1, 1),
                              "cannot read the file: No such file or directory")


def test_read_yaml_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("entity: x\n", encoding="utf-8")
    doc = read_yaml(path, F)
    assert isinstance(doc, YamlDoc)
    assert doc.data == {"entity": "x"}
    assert doc.error(["entity"], "boom") == ConfigError(SourceLoc(F, 1, 9), "boom")
