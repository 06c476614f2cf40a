"""The target schema as SQLAlchemy tables, built from its declaration in ``checks.target_schema``.

Used to create the target (the simulator), to load it, to read it and to write the target checks'
SQL; ``checks`` itself never imports a database library.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Integer, MetaData, SmallInteger, String, Table
from sqlalchemy.types import TypeEngine

from checks import target_schema as declared

_TYPES: dict[str, Callable[[], TypeEngine[Any]]] = {
    declared.BIGINT: BigInteger,
    declared.INT: Integer,
    declared.SMALLINT: SmallInteger,
    declared.TS: lambda: DateTime(timezone=False),
}


def _column(c: declared.Column) -> Column:
    type_: TypeEngine[Any] = String(c.length) if c.type == declared.TEXT else _TYPES[c.type]()
    if c.primary_key:
        return Column(c.name, type_, primary_key=True, autoincrement=False)
    return Column(c.name, type_, nullable=c.nullable)


metadata = MetaData()
for _name, _cols in declared.TABLES.items():
    Table(_name, metadata, *(_column(c) for c in _cols))
