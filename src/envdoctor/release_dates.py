"""Distances between release dates as the tables write them (``YYYY-MM-DD``)."""

from __future__ import annotations

from datetime import date


def days_between(earlier: str, later: str) -> int:
    """Days from ``earlier`` to ``later`` (negative when ``later`` comes first)."""
    return (date.fromisoformat(later) - date.fromisoformat(earlier)).days


def months_between(earlier: str, later: str) -> int:
    """Calendar months from ``earlier`` to ``later``, counting month boundaries (2024-01-31 to 2024-02-01 is 1)."""
    (y0, m0), (y1, m1) = (tuple(int(part) for part in day.split("-")[:2]) for day in (earlier, later))
    return (y1 - y0) * 12 + m1 - m0
