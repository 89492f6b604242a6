"""The yardstick of the XLSX export benchmark (bench/reports.py): openpyxl in write-only
mode writing the opportunities from a plain sqlite3 cursor, with no engine code.

    python -m bench.xlsx_raw DATABASE_FILE OUTPUT.xlsx

It writes the rows and columns `crm export opportunity` writes (bench/reports.py checks
the two files hold the same cells): the id, every field, linked records by name (a LEFT
JOIN), choices by their English label, the formula fields computed in SQL, money and
percent cells typed and formatted, a bold header row. Only the standard library and
openpyxl are imported, so its time and memory are the floor of the work.
"""

from __future__ import annotations

import sqlite3
import sys
from datetime import date
from decimal import Decimal
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font

STAGE = {"prospecting": "Prospecting", "qualification": "Qualification",
         "proposal": "Proposal", "negotiation": "Negotiation", "won": "Won", "lost": "Lost"}
LOST = {"price": "Price", "product": "Product", "relationship": "Relationship",
        "timing": "Timing", "other": "Other"}
SOURCE = {"lead": "Lead", "existing_customer": "Existing customer", "partner": "Partner",
          "tender": "Tender", "other": "Other"}
FORECAST = {"pipeline": "Pipeline", "best_case": "Best case", "commit": "Commit",
            "closed": "Closed", "omitted": "Omitted"}
BUDGET = {"confirmed": "Confirmed", "estimated": "Estimated", "unknown": "Unknown"}
AUTHORITY = {"decision_maker": "Decision maker", "influencer": "Influencer",
             "unknown": "Unknown"}
NEED = {"urgent": "Urgent", "planned": "Planned", "none": "None"}
TIMELINE = {"this_quarter": "This quarter", "this_year": "This year", "later": "Later"}
EVAL_AMOUNT = {"over_5m": "Over 5 million", "from_1m": "1 to 5 million",
               "under_1m": "Under 1 million"}
URGENCY = {"immediate": "Needed within 3 months", "this_year": "Needed this year",
           "no_deadline": "No deadline"}
FUNDING = {"approved": "Approved", "applying": "Being applied for",
           "not_arranged": "Not arranged"}
COMPETITION = {"leading": "We lead", "even": "Even", "behind": "We trail"}
RELATIONSHIP = {"strong": "Strong", "good": "Good", "weak": "Weak"}
PROBABILITY = ("CASE o.stage WHEN 'won' THEN 100 WHEN 'lost' THEN 0 ELSE "
               "coalesce(o.probability_override, CASE o.stage WHEN 'prospecting' THEN 10 "
               "WHEN 'qualification' THEN 30 WHEN 'proposal' THEN 50 "
               "WHEN 'negotiation' THEN 80 ELSE 0 END) END")
QUERY = f"""
SELECT o.id, o.name, a.name, o.primary_contact, o.amount, o.stage, o.lost_reason, o.competitor,
       o.close_date, m.name, o.source, o.next_step, o.description, o.probability_override,
       {PROBABILITY}, o.forecast_override,
       CASE o.stage WHEN 'won' THEN 'closed' WHEN 'lost' THEN 'omitted' ELSE
         coalesce(o.forecast_override, CASE o.stage WHEN 'proposal' THEN 'best_case'
           WHEN 'negotiation' THEN 'commit' ELSE 'pipeline' END) END,
       round(o.amount * {PROBABILITY} / 100.0, 2),
       o.budget, o.authority, o.need, o.timeline,
       CASE o.budget WHEN 'confirmed' THEN 30 WHEN 'estimated' THEN 15 ELSE 0 END
       + CASE o.authority WHEN 'decision_maker' THEN 25 WHEN 'influencer' THEN 10 ELSE 0 END
       + CASE o.need WHEN 'urgent' THEN 25 WHEN 'planned' THEN 10 ELSE 0 END
       + CASE o.timeline WHEN 'this_quarter' THEN 20 WHEN 'this_year' THEN 10 ELSE 0 END,
       o.eval_amount, o.eval_urgency, o.eval_funding, o.eval_competition,
       o.eval_relationship,
       CASE o.eval_amount WHEN 'over_5m' THEN 20 WHEN 'from_1m' THEN 15
         WHEN 'under_1m' THEN 5 ELSE 0 END
       + CASE o.eval_urgency WHEN 'immediate' THEN 20 WHEN 'this_year' THEN 10 ELSE 0 END
       + CASE o.eval_funding WHEN 'approved' THEN 25 WHEN 'applying' THEN 10 ELSE 0 END
       + CASE o.eval_competition WHEN 'leading' THEN 20 WHEN 'even' THEN 10 ELSE 0 END
       + CASE o.eval_relationship WHEN 'strong' THEN 15 WHEN 'good' THEN 8 ELSE 0 END,
       o.quotes, o.accepted_quotes, o.contracts, o.contracted
FROM opportunity o LEFT JOIN account a ON a.id = o.account
  LEFT JOIN campaign m ON m.id = o.campaign
WHERE o.deleted_at IS NULL ORDER BY o.id
"""
HEADER = ("ID", "Name", "Account", "Primary contact", "Amount", "Stage", "Lost reason",
          "Main competitor", "Expected close date", "Campaign", "Source", "Next step",
          "Description", "Probability override", "Probability",
          "Forecast category override", "Forecast category", "Weighted amount", "Budget",
          "Authority", "Need", "Timeline", "Score", "Expected amount", "Urgency", "Funding",
          "Competition", "Relationship", "Evaluation score", "Quotes", "Accepted quotes",
          "Contracts", "Contracted")
MONEY = '"\u00a5"#,##0.00;-"\u00a5"#,##0.00'
PERCENT = "0.00%"
DATE = "yyyy-mm-dd"
# What each column of the query becomes: a typed cell (number format), a choice label
# (the option → label mapping) or the value itself (None).
KINDS: tuple[str | dict[str, str] | None, ...] = (
    None, None, None, None, MONEY, STAGE, LOST, None, DATE, None, SOURCE, None, None,
    PERCENT, PERCENT, FORECAST, FORECAST, MONEY, BUDGET, AUTHORITY, NEED, TIMELINE, None,
    EVAL_AMOUNT, URGENCY, FUNDING, COMPETITION, RELATIONSHIP, None, None, None, None, MONEY)


def main(argv: list[str]) -> int:
    database, output = argv
    conn = sqlite3.connect(database)
    book = Workbook(write_only=True)
    sheet = book.create_sheet()
    bold = Font(bold=True)
    header = []
    for label in HEADER:
        cell = WriteOnlyCell(sheet, value=label)
        cell.font = bold
        header.append(cell)
    sheet.append(header)

    def typed(value: Any, number_format: str) -> Any:
        if number_format is MONEY:
            value = Decimal(str(value))
        elif number_format is PERCENT:
            value = Decimal(str(value)) / 100
        elif number_format is DATE:
            value = date.fromisoformat(value)
        cell = WriteOnlyCell(sheet, value=value)
        cell.number_format = number_format
        return cell

    for row in conn.execute(QUERY):
        out: list[Any] = []
        for value, kind in zip(row, KINDS, strict=True):
            if value is None or value == "" or kind is None:
                out.append(None if value == "" else value)
            elif isinstance(kind, dict):
                out.append(kind.get(value, value))
            else:
                out.append(typed(value, kind))
        sheet.append(out)
    book.save(output)
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
