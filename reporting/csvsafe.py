"""CSV cells that a spreadsheet would run as formulas (CSV injection), made inert.

Excel, LibreOffice and Google Sheets read a cell that starts with `=`, `+`, `-` or `@` (or a tab or
carriage return, which some strip before looking) as a formula: `=HYPERLINK(...)` in an
escalation reason, a visitor's name or, later, a transcript runs on the manager's machine. Such
text gets a leading apostrophe, which spreadsheets show as plain text. A number ("-12.5", "+3",
"1e-3") is left alone, so numeric columns stay numbers.
"""

import re
from typing import Any

from django.db.models import Case, CharField, Value, When
from django.db.models.functions import Concat
from django.db.models.lookups import Regex

# A formula start that is not a whole number. The same pattern in Python and PostgreSQL (ARE).
FORMULA = r"^(?![+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?[0-9]+)?$)[-=+@\t\r]"
_FORMULA = re.compile(FORMULA)


def safe_cell(value: Any) -> Any:
    if isinstance(value, str) and _FORMULA.match(value):
        return "'" + value
    return value


def safe_text(expression: Any) -> Case:
    """safe_cell as an SQL expression, for text columns that COPY streams from the database."""
    return Case(
        When(Regex(expression, Value(FORMULA)), then=Concat(Value("'"), expression)),
        default=expression,
        output_field=CharField(),
    )
