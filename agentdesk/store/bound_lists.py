"""`column IN (values)` with the values bound as one parameter.

SQLAlchemy's `column.in_(values)` makes a bound parameter per value and renders them into the
statement at every execution; for the hundreds of Message-IDs, addresses and ids each chunk of a
sync asks about, that costs more than the query. Here the whole list is one parameter: a JSON
array read by `json_each` on SQLite, an array compared with `= ANY` on PostgreSQL. The
statement's text no longer depends on how many values there are (it is compiled once and
cached), and there is no limit on bound parameters to chunk for.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import any_, bindparam, func, literal_column, select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session


def one_of(session: Session, column: Any, values: Iterable[int] | Iterable[str]) -> ColumnElement[bool]:
    """`column` equals one of `values` (of the column's type)."""
    wanted = list(values)
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY  # loaded with the dialect: SQLite's start-up never needs it

        return column == any_(bindparam(None, wanted, type_=ARRAY(column.type)))
    return column.in_(select(literal_column("value")).select_from(func.json_each(bindparam(None, json.dumps(wanted)))))
