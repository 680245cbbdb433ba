"""CSV exports: the same selectors as the pages, streamed row by row in constant memory."""

import csv
import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from django.http import StreamingHttpResponse

from reporting.csvsafe import safe_cell

COPY_BLOCK_BYTES = 256 * 1024


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_response(
    filename: str, header: Sequence[str], rows: Iterable[Sequence[Any]]
) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield writer.writerow(header)
        for row in rows:
            yield writer.writerow(["" if value is None else safe_cell(value) for value in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def copy_csv_response(
    filename: str, header: Sequence[str], querysets: Iterable[Any]
) -> StreamingHttpResponse:
    """Stream the rows of consecutive querysets as CSV straight from PostgreSQL's COPY, block by
    block: a year of rows in constant memory and without a Python object per row. The queries
    read one snapshot (REPEATABLE READ), so the parts fit together as one query's rows would.
    Their text columns must be wrapped in reporting.csvsafe.safe_text (no Python sees a cell)."""
    from django.db import connections, transaction

    head = csv.writer(_Echo()).writerow(header)

    def blocks() -> Iterator[bytes]:
        yield head.encode()
        # COPY hands over a row at a time; the response gets them in blocks of ~256 kB.
        buffer = bytearray()
        parts = iter(querysets)
        first = next(parts, None)
        if first is None:
            return
        alias = first.db
        connection: Any = connections[alias]  # PostgreSQL's: binds parameters client-side
        outermost = not connection.in_atomic_block
        with transaction.atomic(using=alias), connection.cursor() as cursor:
            if outermost:  # (inside a test's transaction, that transaction's snapshot)
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cursor.execute("SET LOCAL work_mem = '64MB'")  # a sort of a year stays in memory
            for queryset in itertools.chain([first], parts):
                sql, params = queryset.query.sql_with_params()
                statement = (
                    f"COPY ({connection.ops.compose_sql(sql, params)}) TO STDOUT WITH (FORMAT csv)"
                )
                with cursor.cursor.copy(statement) as copy:
                    for row in copy:
                        buffer += row
                        if len(buffer) >= COPY_BLOCK_BYTES:
                            yield bytes(buffer)
                            buffer.clear()
        if buffer:
            yield bytes(buffer)

    response = StreamingHttpResponse(blocks(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
