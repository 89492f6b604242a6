"""Records: the one service through which every caller reads and writes entity data."""

from engine.runtime.records.imports import BulkResult
from engine.runtime.records.query import ListQuery, Page
from engine.runtime.records.service import Records

__all__ = ["BulkResult", "ListQuery", "Page", "Records"]
