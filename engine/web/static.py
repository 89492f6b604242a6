"""The /static route: the files of static/, and a 404 for any other path.

Starlette's StaticFiles hands the path to the file system, which raises on what no file
name can hold: a NUL (`/static/app.css%00.js` was a 500), a name too long for the system.
Here a path is looked up only when it has the shape of our files' names (letters, digits,
`.`, `_`, `-`, in at most MAX_DEPTH folders), and anything the file system still refuses is
a 404 too: an odd path can only miss.
"""

from __future__ import annotations

import os
import re

from starlette.staticfiles import StaticFiles

MAX_PATH = 200
MAX_DEPTH = 4
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")


def servable(path: str) -> bool:
    """Whether `path` (relative, as StaticFiles normalises it) can name a static file.

    >>> servable("htmx-2.0.11.min.js"), servable("app.css\\x00.js"), servable("../x.css")
    (True, False, False)
    """
    parts = path.split(os.sep)
    return (0 < len(path) <= MAX_PATH and len(parts) <= MAX_DEPTH
            and all(_NAME.fullmatch(part) for part in parts))


class StaticAssets(StaticFiles):
    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        if not servable(path):
            return "", None
        try:
            return super().lookup_path(path)
        except (OSError, ValueError):  # what the file system refuses cannot be a file here
            return "", None
