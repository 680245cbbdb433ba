"""The handled-vs-escalated chart's axes: exact ticks, and readable labels on a long period."""

from datetime import date, timedelta

from reporting.charts import stacked_columns


def rows(days: int, start: date = date(2026, 9, 1), top: int = 5) -> list[dict[str, object]]:
    return [
        {"bucket": start + timedelta(days=i), "handled": top if i == 0 else 1, "escalated": 0}
        for i in range(days)
    ]


def test_each_tick_sits_at_its_value():
    chart = stacked_columns(rows(3), label_key="bucket", series=["handled", "escalated"])
    values = [t["value"] for t in chart["ticks"]]
    assert values == [0, 2, 4, 6, 8]  # 5 chats fit under 8, at exact steps of 2
    axis_y, top_y = chart["ticks"][0]["y"], chart["ticks"][-1]["y"]
    for tick in chart["ticks"]:
        # Each label's height is its share of the axis, so "4" is half way up, not at 3.75/5.
        assert tick["y"] == round(axis_y - (axis_y - top_y) * tick["value"] / values[-1], 1)
    tallest = chart["columns"][0]["parts"][0]
    assert tallest["h"] == round((axis_y - top_y) * 5 / 8, 1)


def test_ninety_days_label_mondays_only():
    chart = stacked_columns(rows(90), label_key="bucket", series=["handled", "escalated"])
    labelled = [c["label"] for c in chart["columns"] if c["label"]]
    assert len(labelled) == 12  # the Mondays from 7 Sep to 23 Nov 2026 (1 Sep to 29 Nov)
    assert labelled[0] == "7 Sep" and labelled[-1] == "23 Nov"
    assert all(c["title"] for c in chart["columns"])  # every bar keeps its tooltip


def test_weeks_are_thinned_to_about_twelve():
    weeks = [
        {"bucket": date(2025, 12, 1) + timedelta(weeks=i), "handled": 1, "escalated": 1}
        for i in range(52)
    ]
    chart = stacked_columns(weeks, label_key="bucket", series=["handled", "escalated"])
    labelled = [c["label"] for c in chart["columns"] if c["label"]]
    assert 9 <= len(labelled) <= 13
    assert labelled[0] == "1 Dec 2025"
