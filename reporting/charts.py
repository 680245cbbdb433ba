"""Server-rendered SVG charts: geometry computed here, drawn by templates/reporting/_*.svg.

Series are told apart by pattern (solid, hatched) and by labels, not by colour alone."""

from datetime import date
from itertools import pairwise
from typing import Any

WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 760, 260, 44, 40, 12


def nice_max(value: int) -> int:
    if value <= 5:
        return 5
    magnitude = 10 ** (len(str(value)) - 1)
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return int(step * magnitude)
    return value


def stacked_columns(
    rows: list[dict[str, Any]], *, label_key: str, series: list[str]
) -> dict[str, Any]:
    """Columns of stacked series (bottom first) with axis ticks; empty when all are zero."""
    totals = [sum(r[s] for s in series) for r in rows]
    values = count_ticks(max(totals, default=0))
    top = values[-1]
    plot_w, plot_h = WIDTH - LEFT - 10, HEIGHT - BOTTOM - TOP
    slot = plot_w / max(len(rows), 1)
    bar_w = max(2.0, slot * 0.7)
    columns = []
    labels = axis_labels([r[label_key] for r in rows])
    for i, row in enumerate(rows):
        x = LEFT + i * slot + (slot - bar_w) / 2
        y = TOP + plot_h
        parts = []
        for name in series:
            h = plot_h * row[name] / top if top else 0
            y -= h
            parts.append(
                {
                    "series": name,
                    "x": round(x, 1),
                    "y": round(y, 1),
                    "w": round(bar_w, 1),
                    "h": round(h, 1),
                    "value": row[name],
                }
            )
        columns.append(
            {
                "parts": parts,
                "label": labels[i],
                "label_x": round(x + bar_w / 2, 1),
                "total": totals[i],
                "title": f"{row[label_key]}: " + ", ".join(f"{s} {row[s]}" for s in series),
            }
        )
    ticks = [{"y": round(TOP + plot_h - plot_h * v / top, 1), "value": v} for v in values]
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "axis_y": TOP + plot_h,
        "columns": columns,
        "ticks": ticks,
        "series": series,
        "empty": not any(totals),
    }


def horizontal_bars(
    rows: list[dict[str, Any]], *, label_key: str, series: list[str]
) -> dict[str, Any]:
    totals = [sum(r[s] for s in series) for r in rows]
    top = nice_max(max(totals, default=0))
    label_w, bar_h, gap = 170, 18, 8
    plot_w = WIDTH - label_w - 60
    bars = []
    for i, row in enumerate(rows):
        y = TOP + i * (bar_h + gap)
        x = label_w
        parts = []
        for name in series:
            w = plot_w * row[name] / top if top else 0
            parts.append(
                {
                    "series": name,
                    "x": round(x, 1),
                    "y": y,
                    "w": round(w, 1),
                    "h": bar_h,
                    "value": row[name],
                }
            )
            x += w
        bars.append(
            {
                "label": str(row[label_key]),
                "y": y,
                "text_y": y + 13,
                "parts": parts,
                "end_x": round(x + 6, 1),
                "total": totals[i],
            }
        )
    height = TOP + len(rows) * (bar_h + gap) + 10
    return {
        "width": WIDTH,
        "height": height,
        "label_w": label_w,
        "bars": bars,
        "series": series,
        "empty": not any(totals),
    }


def day_labels(days: list[date]) -> list[str]:
    """Axis labels for a run of days that stay readable however long it is (about 14 at most,
    at steady steps): every day up to two weeks, Mondays up to 14 weeks, then the first of each
    month, with its year on the first one labelled and on January."""
    if len(days) <= 14:
        return [f"{d.day} {d:%b}" for d in days]
    if len(days) <= 98:
        return [f"{d.day} {d:%b}" if d.weekday() == 0 else "" for d in days]
    labels, dated = [], False
    for d in days:
        if d.day != 1:
            labels.append("")
            continue
        labels.append(f"{d:%b}" if dated and d.month != 1 else f"{d:%b %Y}")
        dated = True
    return labels


def axis_labels(buckets: list[Any]) -> list[str]:
    """Labels for a run of columns: consecutive days as `day_labels` thins them; other runs
    (weeks, names) every n-th one, at most about 12."""
    if buckets and all(isinstance(b, date) for b in buckets):
        days = [b for b in buckets if isinstance(b, date)]
        if all((b - a).days == 1 for a, b in pairwise(days)):
            return day_labels(days)
        every = max(1, -(-len(days) // 12))
        return [f"{d.day} {d:%b %Y}" if i % every == 0 else "" for i, d in enumerate(days)]
    every = max(1, -(-len(buckets) // 12))
    return [str(b) if i % every == 0 else "" for i, b in enumerate(buckets)]


def count_ticks(largest: int, steps: int = 4) -> list[int]:
    """Evenly spaced whole-number axis values from 0 to at least `largest`, each exact (1, 2
    or 5 times a power of ten apart)."""
    magnitude = 1
    while True:
        for multiple in (1, 2, 5):
            step = multiple * magnitude
            if step * steps >= largest:
                return [step * i for i in range(steps + 1)]
        magnitude *= 10


def day_columns(rows: list[dict[str, Any]], *, series: list[str]) -> dict[str, Any]:
    """Side-by-side columns per day (rows with a "day" and each series' count): series that are
    not parts of one whole (chats started, waits answered, waits abandoned) are not stacked."""
    values = count_ticks(max((r[s] for r in rows for s in series), default=0))
    top = values[-1]
    plot_w, plot_h = WIDTH - LEFT - 10, HEIGHT - BOTTOM - TOP
    slot = plot_w / max(len(rows), 1)
    bar_w = slot * 0.8 / max(len(series), 1)
    labels = day_labels([r["day"] for r in rows])
    columns = []  # drawn by _columns.svg.html, each day's series side by side
    for i, row in enumerate(rows):
        x0 = LEFT + i * slot + slot * 0.1
        parts = []
        for j, name in enumerate(series):
            h = plot_h * row[name] / top
            parts.append(
                {
                    "series": name,
                    "x": round(x0 + j * bar_w, 2),
                    "y": round(TOP + plot_h - h, 1),
                    "w": round(bar_w, 2),
                    "h": round(h, 1),
                }
            )
        columns.append(
            {
                "parts": parts,
                "label": labels[i],
                "label_x": round(LEFT + i * slot + slot / 2, 1),
                "title": f"{row['day']:%a %Y-%m-%d}: " + ", ".join(f"{s} {row[s]}" for s in series),
            }
        )
    ticks = [{"y": round(TOP + plot_h - plot_h * v / top, 1), "value": v} for v in values]
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "axis_y": TOP + plot_h,
        "columns": columns,
        "ticks": ticks,
        "series": series,
        "empty": not any(r[s] for r in rows for s in series),
    }
