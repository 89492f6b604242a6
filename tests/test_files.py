"""The file store (engine/runtime/files/store.py) and sniffing (engine/runtime/files/sniff.py):
blobs by SHA-256 written aside and renamed into place, the size limit enforced while
writing, and a file's type read from its bytes, never from its name or header."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from engine.metadata.files import DOCX, PPTX, XLSX
from engine.runtime.files.sniff import name_problem, sniff
from engine.runtime.files.store import DiskStore, TooLarge, check_digest

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 40
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 40
PDF = b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n%%EOF\n"


def office(main: str, part: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("[Content_Types].xml",
                   f'<Types><Override PartName="/{part}" ContentType="application/'
                   f'vnd.openxmlformats-officedocument.{main}"/></Types>')
        z.writestr(part, "<x/>")
    return out.getvalue()


# -- the store ----------------------------------------------------------------------------

def test_a_blob_is_stored_once_under_its_digest(tmp_path: Path) -> None:
    store = DiskStore(tmp_path / "files")
    assert not (tmp_path / "files").exists()  # made on the first write only
    data = "合同 contract".encode() * 1000
    blob = store.put(data)
    digest = hashlib.sha256(data).hexdigest()
    assert (blob.sha256, blob.size) == (digest, len(data))
    path = tmp_path / "files" / digest[:2] / digest[2:4] / digest
    assert path.read_bytes() == data
    again = store.put(io.BytesIO(data))  # the same content: the same blob, kept once
    assert again == blob
    assert [p for p in (tmp_path / "files").rglob("*") if p.is_file()] == [path]
    with store.open(digest) as f:
        assert f.read() == data
    assert store.exists(digest)
    store.delete(digest)
    assert not store.exists(digest)
    store.delete(digest)  # deleting what is not there is no error


def test_the_size_limit_stops_the_write_and_leaves_nothing(tmp_path: Path) -> None:
    store = DiskStore(tmp_path)
    chunks_read = 0

    def chunks() -> object:
        nonlocal chunks_read
        while True:  # an endless upload: the limit must stop it
            chunks_read += 1
            yield b"x" * 1000

    with pytest.raises(TooLarge) as info:
        store.put(chunks(), limit=10_000)  # type: ignore[arg-type]
    assert info.value.limit == 10_000
    assert chunks_read == 11
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    assert store.put(b"x" * 10_000, limit=10_000).size == 10_000  # the bound itself is fine


def test_a_writer_keeps_nothing_until_committed(tmp_path: Path) -> None:
    store = DiskStore(tmp_path)
    writer = store.writer()
    writer.write(PDF)
    blob = writer.finish()
    assert not store.exists(blob.sha256)
    with writer.reader() as f:
        assert f.read() == PDF
    writer.discard()
    assert not store.exists(blob.sha256)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    writer = store.writer()
    writer.write(PDF)
    assert writer.commit() == blob and store.exists(blob.sha256)
    writer.discard()  # after commit: nothing to drop, the blob stays
    assert store.exists(blob.sha256)


@pytest.mark.parametrize("bad", ["../../etc/passwd", "ab", "A" * 64, "g" * 64, ""])
def test_a_digest_is_never_a_path(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError):
        check_digest(bad)
    with pytest.raises(ValueError):
        DiskStore(tmp_path).open(bad)


# -- sniffing -----------------------------------------------------------------------------

@pytest.mark.parametrize(("data", "name", "expected"), [
    (PDF, "a.pdf", "application/pdf"),
    (PNG, "a.png", "image/png"),
    (JPEG, "a.jpg", "image/jpeg"),
    (b"GIF89a" + b"\x00" * 20, "a.gif", "image/gif"),
    (office("wordprocessingml.document.main+xml", "word/document.xml"), "a.docx", DOCX),
    (office("spreadsheetml.sheet.main+xml", "xl/workbook.xml"), "a.xlsx", XLSX),
    (office("presentationml.presentation.main+xml", "ppt/presentation.xml"), "a.pptx", PPTX),
    ("名称,金额\n华东,100\n".encode(), "报价.csv", "text/csv"),
    ("纪要\n".encode(), "notes.txt", "text/plain"),
    (b"<!DOCTYPE html><html><script>alert(1)</script>", "report.pdf", "text/html"),
    (b"  <html><body>x</body></html>", "x.txt", "text/html"),
    (b"hello <script>alert(1)</script>", "x.txt", "text/html"),
    (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', "a.png",
     "image/svg+xml"),
    (b"<svg onload=alert(1)>", "a.pdf", "image/svg+xml"),
    (b"\x00\x01\x02binary", "a.txt", "application/octet-stream"),
    (b"\xff\xfe not utf-8 \xc3", "a.txt", "application/octet-stream"),
])
def test_the_type_comes_from_the_bytes(data: bytes, name: str, expected: str) -> None:
    assert sniff(io.BytesIO(data), name) == expected


def test_office_files_are_told_apart_without_content_types() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("xl/workbook.xml", "<x/>")
    assert sniff(io.BytesIO(out.getvalue()), "x.zip") == XLSX
    plain = io.BytesIO()
    with zipfile.ZipFile(plain, "w") as z:
        z.writestr("readme.txt", "hi")
    assert sniff(io.BytesIO(plain.getvalue()), "x.zip") == "application/zip"
    assert sniff(io.BytesIO(b"PK\x03\x04 truncated"), "x.docx") == "application/octet-stream"


def test_a_text_file_is_read_to_its_end() -> None:
    data = b"a" * 100_000 + b"\x00"  # past the head: still caught
    assert sniff(io.BytesIO(data), "a.txt") == "application/octet-stream"


@pytest.mark.parametrize(("name", "ctype", "problem"), [
    ("a.pdf", "application/pdf", None), ("A.PDF", "application/pdf", None),
    ("photo.jpeg", "image/jpeg", None), ("noext", "image/png", None),
    ("a.pdf", "image/png", ".pdf"), ("a.html", "text/plain", ".html"),
    ("a.svg", "image/png", ".svg"), ("a.exe", "application/pdf", ".exe"),
    ("a.csv", "text/plain", ".csv"), ("notes.v2", "text/plain", None),
])
def test_a_name_must_not_claim_another_type(name: str, ctype: str,
                                            problem: str | None) -> None:
    assert name_problem(name, ctype) == problem
