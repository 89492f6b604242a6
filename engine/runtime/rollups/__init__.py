"""Rollup summary fields kept exact: a before-commit hook of the write pipeline recomputes
the parents a change touches (engine/runtime/records/unit.py). `records` never imports
this package; the app and the CLI register its hook when they are assembled."""
