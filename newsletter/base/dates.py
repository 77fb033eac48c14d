"""Dates as people and files write them: one reader for front matter, saved pages and bylines alike."""

from __future__ import annotations

import datetime as dt
import re

_MONTHS = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_FORMS = (  # (pattern, how to read its groups as year, month, day): ISO, "January 3, 2026", "3 Jan 2026"
    (re.compile(r"(\d{4})-(\d{2})-(\d{2})"), lambda m: (m[1], m[2], m[3])),
    (re.compile(rf"({_MONTH})\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})", re.I), lambda m: (m[3], m[1], m[2])),
    (re.compile(rf"(\d{{1,2}})(?:st|nd|rd|th)?\s+({_MONTH})\s+(\d{{4}})", re.I), lambda m: (m[3], m[2], m[1])),
)


def find_date(text: str) -> tuple[dt.date | None, re.Match | None]:
    """The first date written in `text` (ISO, or with an English month name) and where it stands."""
    for pattern, parts in _FORMS:
        match = pattern.search(text)
        if match:
            return _calendar_date(*parts(match)), match
    return None, None


def parse_date(value: object) -> dt.date | None:
    """A date from a TOML value (a date or a date-time) or from text such as `2026-11-26`,
    `2026-11-26T09:30:00Z` or `January 3, 2026`; None when it holds none."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        return find_date(value)[0]
    return None


def _calendar_date(year: str, month: str, day: str) -> dt.date | None:
    """A date from its parts, the month as a number or an English name (or its abbreviation)."""
    number = int(month) if month.isdigit() else next(
        (i for i, name in enumerate(_MONTHS, 1) if name.startswith(month.lower().rstrip(".")[:3])), 0
    )  # fmt: skip
    try:
        return dt.date(int(year), number, int(day))
    except ValueError:
        return None
