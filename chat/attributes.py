"""Custom attributes a company's page sets on its visitor's chat through the widget
(`Tierline.set({plan: "pro"})`, and `identify()`'s fields other than name and e-mail), shown to
agents beside the chat. Flat and small on purpose: a name and a short scalar each."""

import re
from typing import Any

MAX_ATTRIBUTES = 30
MAX_NAME_CHARS = 40
MAX_VALUE_CHARS = 500
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")

Attributes = dict[str, str | int | float | bool | None]


class AttributesError(Exception):
    """The attributes are not a flat map of short names to short scalar values (says why)."""


def parse_attributes(value: Any) -> Attributes:
    """The attributes as given, checked; AttributesError names the first thing wrong."""
    if not isinstance(value, dict):
        raise AttributesError("Attributes are an object of names and values, e.g. {plan: 'pro'}.")
    if len(value) > MAX_ATTRIBUTES:
        raise AttributesError(f"At most {MAX_ATTRIBUTES} attributes.")
    checked: Attributes = {}
    for name, item in value.items():
        if not (isinstance(name, str) and len(name) <= MAX_NAME_CHARS and NAME_RE.match(name)):
            raise AttributesError(
                f"“{str(name)[:60]}” is not an attribute name: a letter, then letters, digits, "
                f"_ . or -, at most {MAX_NAME_CHARS} characters."
            )
        if isinstance(item, str):
            if len(item) > MAX_VALUE_CHARS:
                raise AttributesError(f"“{name}” is longer than {MAX_VALUE_CHARS} characters.")
        elif isinstance(item, float):
            if item != item or item in (float("inf"), float("-inf")):
                raise AttributesError(f"“{name}” is not a finite number.")
        elif not (item is None or isinstance(item, bool | int)):
            raise AttributesError(
                f"“{name}” must be text, a number, true/false or null (not a list or object)."
            )
        elif isinstance(item, int) and not isinstance(item, bool) and abs(item) >= 2**53:
            raise AttributesError(f"“{name}” is too large a number.")
        checked[name] = item
    return checked


def merge_attributes(old: Any, new: Attributes) -> Attributes:
    """`new` over `old` (a null value removes a name); AttributesError past the limit."""
    merged: Attributes = dict(old) if isinstance(old, dict) else {}
    for name, item in new.items():
        if item is None:
            merged.pop(name, None)
        else:
            merged[name] = item
    if len(merged) > MAX_ATTRIBUTES:
        raise AttributesError(f"At most {MAX_ATTRIBUTES} attributes.")
    return merged
