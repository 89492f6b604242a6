"""What files the engine takes as attachments: the content types it recognises by their
content, the file name extensions each may carry, and the `attachments` settings.

```yaml
# config/settings.yaml
attachments:
  max_size_mb: 20
  allowed_types: [application/pdf, image/png, image/jpeg, text/plain, text/csv]
```

>>> AttachmentSettings().max_bytes
20971520
>>> extensions_of("image/jpeg")
('.jpg', '.jpeg')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"

KNOWN_TYPES: Mapping[str, tuple[str, ...]] = {
    "application/pdf": (".pdf",),
    "image/png": (".png",),
    "image/jpeg": (".jpg", ".jpeg"),
    "image/gif": (".gif",),
    "image/webp": (".webp",),
    DOCX: (".docx",),
    XLSX: (".xlsx",),
    PPTX: (".pptx",),
    "application/zip": (".zip",),
    "text/plain": (".txt", ".text", ".log", ".md"),
    "text/csv": (".csv",),
}
"""Every content type the sniffer (engine/runtime/files/sniff.py) can tell from a file's
bytes, with the extensions a file of that type may be named with."""

DEFAULT_MAX_SIZE_MB = 20
DEFAULT_ALLOWED_TYPES: tuple[str, ...] = (
    "application/pdf", "image/png", "image/jpeg", "image/gif", "image/webp",
    DOCX, XLSX, PPTX, "text/plain", "text/csv")


def extensions_of(content_type: str) -> tuple[str, ...]:
    """The file name extensions a file of `content_type` may have (lower case, with dot)."""
    return KNOWN_TYPES.get(content_type, ())


@dataclass(frozen=True)
class AttachmentSettings:
    """The bounds of an upload: its size, and the content types taken."""

    max_size_mb: float = DEFAULT_MAX_SIZE_MB
    allowed_types: tuple[str, ...] = DEFAULT_ALLOWED_TYPES

    @property
    def max_bytes(self) -> int:
        return int(self.max_size_mb * 1024 * 1024)
