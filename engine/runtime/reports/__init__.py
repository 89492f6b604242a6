"""Reports at run time: one SQL statement per report, within the viewer's access."""

from engine.runtime.reports.compiler import (
    ReportResult,
    ReportRow,
    ReportTimeLimit,
    may_run,
    report_statement,
    run_report,
)

__all__ = ["ReportResult", "ReportRow", "ReportTimeLimit", "may_run", "report_statement",
           "run_report"]
