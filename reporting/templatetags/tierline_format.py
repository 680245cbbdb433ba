from django import template
from django.utils.html import escape
from django.utils.safestring import mark_safe

from reporting.flowwords import duration as duration_words
from reporting.search import MARK_END, MARK_START

register = template.Library()


@register.filter
def duration(seconds: float | None) -> str:
    """120 → "2 min 0 s"; None → "–"."""
    return duration_words(seconds)


@register.filter
def marked(snippet: str) -> str:
    """A search snippet as HTML: its text escaped, the matches (between the search's markers)
    in <mark>. The text is the visitor's and the agents' own: nothing of it is markup (a text
    that itself holds a marker character loses the marks rather than get an unclosed tag)."""
    text = escape(snippet)
    if text.count(MARK_START) != text.count(MARK_END):
        return text.replace(MARK_START, "").replace(MARK_END, "")
    return mark_safe(  # noqa: S308 - escaped above; only our own tags added
        text.replace(MARK_START, "<mark>").replace(MARK_END, "</mark>")
    )
