from django import template

register = template.Library()


@register.filter
def duration(seconds: float | None) -> str:
    """120 → "2 min 0 s"; None → "–"."""
    if seconds is None:
        return "–"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"
