"""What a file is, read from its bytes: the client's Content-Type and the file's name are
never trusted for it.

Binary formats are told by their signatures (the `filetype` library); Office files are zip
containers, told apart by the parts they hold (`word/`, `xl/`, `ppt/` and the main part
named in `[Content_Types].xml`); anything else is text when it is UTF-8 without control
characters, and markup a browser would run (HTML, SVG, XML) is told apart from plain text so
it can be refused. The file's name only chooses between the text types (a `.csv` is CSV),
and must not claim another type than the content's: an HTML page named `report.pdf` is
refused (`name_problem`).

>>> import io
>>> sniff(io.BytesIO(b"%PDF-1.7 ..."))
'application/pdf'
>>> sniff(io.BytesIO(b"<!DOCTYPE html><p>hi"))
'text/html'
>>> sniff(io.BytesIO("名称,金额\\n".encode()), "报价.csv")
'text/csv'
"""

from __future__ import annotations

import codecs
import re
import zipfile
from typing import BinaryIO

import filetype

from engine.metadata.files import DOCX, KNOWN_TYPES, PPTX, XLSX

HEAD = 8192
OCTET = "application/octet-stream"
HTML = "text/html"
SVG = "image/svg+xml"
XML = "application/xml"

# Parts only one kind of Office Open XML package holds.
_OFFICE_PARTS = (("word/document.xml", DOCX), ("xl/workbook.xml", XLSX),
                 ("ppt/presentation.xml", PPTX))
_OFFICE_MAIN = {"wordprocessingml.document.main+xml": DOCX,
                "spreadsheetml.sheet.main+xml": XLSX,
                "presentationml.presentation.main+xml": PPTX}
# The start of markup a browser renders and runs, after blanks and a byte order mark.
_MARKUP = re.compile(rb"^\s*(<\?xml|<!doctype\s+html|<html|<head|<body|<script|<svg|<iframe"
                     rb"|<!--)", re.IGNORECASE)
_SVG = re.compile(rb"<svg[\s>]", re.IGNORECASE)
_HTMLISH = re.compile(rb"<(script|html|body|iframe|object|embed)[\s>/]", re.IGNORECASE)
# Control characters no text file holds (tab, line feed, form feed, carriage return do).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_DANGEROUS_EXTENSIONS = frozenset({
    ".html", ".htm", ".xhtml", ".shtml", ".svg", ".svgz", ".xml", ".xsl", ".js", ".mjs",
    ".hta", ".exe", ".bat", ".cmd", ".com", ".scr", ".ps1", ".vbs", ".jar", ".msi", ".sh"})


def sniff(data: BinaryIO, name: str = "") -> str:
    """The content type of the file `data` (read from its start; seekable), by its bytes;
    `name` only tells CSV from plain text. `application/octet-stream` when unknown."""
    data.seek(0)
    head = data.read(HEAD)
    kind = filetype.guess(head) if head else None
    mime = kind.mime if kind is not None else None
    if mime == "application/zip" or mime in (DOCX, XLSX, PPTX) or head.startswith(b"PK\x03\x04"):
        return _zip_type(data)
    if mime == "application/pdf" or head.startswith(b"%PDF-"):
        return "application/pdf"
    if mime is not None:
        return str(mime)
    return _text_type(data, head, name)


def _zip_type(data: BinaryIO) -> str:
    data.seek(0)
    try:
        with zipfile.ZipFile(data) as package:
            names = set(package.namelist())
            if "[Content_Types].xml" in names:
                declared = package.read("[Content_Types].xml")[:65536].decode("utf-8", "replace")
                for marker, ctype in _OFFICE_MAIN.items():
                    if marker in declared:
                        return ctype
            for part, ctype in _OFFICE_PARTS:
                if part in names:
                    return ctype
    except (zipfile.BadZipFile, OSError, KeyError, RuntimeError, ValueError):
        return OCTET
    return "application/zip"


def _text_type(data: BinaryIO, head: bytes, name: str) -> str:
    body = head.removeprefix(codecs.BOM_UTF8)
    if _MARKUP.match(body) or _HTMLISH.search(body):
        if _SVG.search(body):
            return SVG
        if body.lstrip().startswith(b"<?xml") and not _HTMLISH.search(body):
            return XML
        return HTML
    if not _is_text(data):
        return OCTET
    return "text/csv" if name.lower().endswith(".csv") else "text/plain"


def _is_text(data: BinaryIO) -> bool:
    """Whether the whole file is UTF-8 without control characters (read in chunks)."""
    data.seek(0)
    decoder = codecs.getincrementaldecoder("utf-8")()
    while True:
        chunk = data.read(65536)
        try:
            text = decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError:
            return False
        if _CONTROL.search(text):
            return False
        if not chunk:
            return True


def extension(name: str) -> str:
    """The lower-case extension of a file name, with its dot ("" when it has none).

    >>> extension("Q3 Report.PDF"), extension("README")
    ('.pdf', '')
    """
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


def name_problem(name: str, content_type: str) -> str | None:
    """Why a file named `name` cannot be taken with the content `content_type`: its
    extension says another type than its content (or one a browser or system would run).
    None when the name fits."""
    ext = extension(name)
    if not ext:
        return None
    if ext in KNOWN_TYPES.get(content_type, ()):
        return None
    if ext in _DANGEROUS_EXTENSIONS or any(ext in exts for exts in KNOWN_TYPES.values()):
        return ext
    return None
