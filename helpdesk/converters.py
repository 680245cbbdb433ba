class IdConverter:
    """A database id in a URL: digits, at most 18 of them (fits a 64-bit integer). Anything else
    matches no URL (404), never an overflow in a query."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)
