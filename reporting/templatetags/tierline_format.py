from django import template

from reporting.flowwords import duration as duration_words

register = template.Library()


@register.filter
def duration(seconds: float | None) -> str:
    """120 → "2 min 0 s"; None → "–"."""
    return duration_words(seconds)
