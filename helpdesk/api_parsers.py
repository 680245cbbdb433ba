"""The API's JSON parser: DRF's, with a nesting depth limit (JSON_MAX_DEPTH)."""

from typing import Any

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.utils import json

from chat.realtime.jsonlimits import JsonTooDeep, loads


class DepthLimitedJSONParser(parsers.JSONParser):
    """Refuses JSON nested deeper than JSON_MAX_DEPTH with a 400 in the API's error shape, before
    the json module can recurse itself into a RecursionError (an HTML 500 before this)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        # get_encoding refuses non-text codecs (bz2_codec); the stubs do not know it yet.
        encoding = parsers.get_encoding(parser_context or {})  # type: ignore[attr-defined]
        try:
            text = stream.read().decode(encoding)
            return loads(
                text,
                max_depth=settings.JSON_MAX_DEPTH,
                parse_constant=json.strict_constant if self.strict else None,
            )
        except JsonTooDeep as exc:
            raise ParseError(f"JSON parse error - {exc}.") from exc
        except ValueError as exc:  # invalid JSON, or bytes that are not `encoding`
            raise ParseError(f"JSON parse error - {exc}") from exc
