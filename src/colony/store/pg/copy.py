"""Copy a node's SQLite database into PostgreSQL: every table both engines hold, in one transaction.

Why generic: each capability's PostgreSQL schema keeps SQLite's table and column names (the
differences are types and constraints, listed in each ``pg/*_schema.py``), so one copier driven
by the two catalogs moves every table that has been ported, and a table ported later is copied
without touching this module. What it does per table:

- **columns**: those both engines have; PostgreSQL's generated columns (the full-text
  ``tsvector``) are computed by the server, and an identity column SQLite does not have
  (``tasks.seq``) is numbered in SQLite's rowid order, so "oldest first" survives the move;
- **values**: converted by the target column's type where SQLite's loose typing differs —
  integers to booleans, epoch seconds to ``timestamptz``, little-endian float32 blobs to
  pgvector's ``vector`` text and float16 blobs to ``halfvec``, REAL amounts to BIGINT only when they are whole;
- **order**: tables after the tables their foreign keys name (from PostgreSQL's catalog), and
  rows of a self-referencing table (subtasks) after the row they point to;
- **triggers**: the table's own triggers are off while its rows stream in (they derive state the
  rows already carry, and append-only guards would refuse nothing a copy does anyway), and on
  again before the transaction ends; the ledger is then re-verified from its signatures;
- **speed**: ``COPY … FROM STDIN``, one stream per table.

Why one transaction: a failed or interrupted copy leaves the target as it was (empty), so the
command can simply be run again; the target must be empty to begin with, because merging two
nodes' histories (ledger chains, task ids) is federation's job, not a copy's. Row counts are
compared inside the transaction, before it commits.

The tables only SQLite has (node-local state: the node's keys, web logins, cartridge files, the
in-file vector and FTS indexes PostgreSQL rebuilds from the copied rows) are listed, not copied.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
from psycopg import sql
from pydantic import BaseModel

from colony.errors import StoreError
from colony.store._db import Database
from colony.store.pg._db import PgConnection, PgDatabase
from colony.store.pg.tasks_schema import SQLITE_ACCESS_PATHS

__all__ = ["CopyReport", "TableCopy", "copy_to_pg", "sqlite_tables", "target_tables"]

#: Progress: (table, rows copied so far in it, rows it has).
Progress = Callable[[str, int, int], None]

_BATCH = 2000


class TableCopy(BaseModel):
    table: str
    rows: int
    columns: list[str]


class CopyReport(BaseModel):
    target: str
    copied: list[TableCopy]
    #: Tables with rows on SQLite that PostgreSQL does not hold (node-local state), with their counts.
    node_local: dict[str, int]

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.copied)


class _Column(BaseModel):
    name: str
    udt: str  # PostgreSQL's type name: int8, bool, jsonb, timestamptz, vector, …
    generated: bool
    identity: bool


def sqlite_tables(db: Database) -> list[str]:
    """The node's own tables: no virtual tables (FTS5, vec0) nor their shadow tables, no bookkeeping."""
    rows = db.query("SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name")
    virtual = [r["name"] for r in rows if str(r["sql"] or "").upper().startswith("CREATE VIRTUAL TABLE")]
    return [r["name"] for r in rows
            if r["name"] not in virtual and not r["name"].startswith("sqlite_") and r["name"] != "schema_migrations"
            and not any(r["name"].startswith(v + "_") for v in virtual)]


def target_tables(pg: PgDatabase) -> list[str]:
    """PostgreSQL's tables in an order where every table comes after the tables it references."""
    names = [r["table_name"] for r in pg.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
        "AND table_type = 'BASE TABLE' AND table_name <> 'schema_migrations' ORDER BY table_name")]
    refs: dict[str, set[str]] = {n: set() for n in names}
    for r in pg.query(
            "SELECT c.conrelid::regclass::text AS child, c.confrelid::regclass::text AS parent FROM pg_constraint c "
            "JOIN pg_namespace n ON n.oid = c.connamespace WHERE c.contype = 'f' AND n.nspname = current_schema()"):
        child, parent = _bare(r["child"]), _bare(r["parent"])
        if child in refs and parent in refs and child != parent:
            refs[child].add(parent)
    ordered: list[str] = []
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in done:
            return
        if name in path:
            raise StoreError(f"PostgreSQL tables reference each other in a cycle: {' -> '.join((*path, name))}")
        for parent in sorted(refs[name]):
            visit(parent, (*path, name))
        done.add(name)
        ordered.append(name)

    for name in names:
        visit(name, ())
    return ordered


def _count(pg: PgDatabase, table: str) -> int:
    with pg.tx() as conn:
        row = conn.execute(sql.SQL("SELECT count(*) AS n FROM {}").format(sql.Identifier(table))).fetchone()
    return 0 if row is None else int(row["n"])


def _bare(regclass: str) -> str:
    return regclass.rsplit(".", 1)[-1].strip('"')


def _columns(pg: PgDatabase, table: str) -> list[_Column]:
    rows = pg.query(
        "SELECT column_name, udt_name, is_generated, is_identity FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position", (table,))
    return [_Column(name=r["column_name"], udt=r["udt_name"], generated=r["is_generated"] == "ALWAYS",
                    identity=r["is_identity"] == "YES") for r in rows]


def _self_reference(pg: PgDatabase, table: str) -> tuple[str, str] | None:
    """(column, referenced column) of a single-column foreign key from ``table`` to itself."""
    row = pg.one(
        "SELECT a.attname AS col, b.attname AS ref FROM pg_constraint c "
        "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
        "JOIN pg_attribute b ON b.attrelid = c.confrelid AND b.attnum = c.confkey[1] "
        "WHERE c.contype = 'f' AND c.conrelid = c.confrelid AND c.conrelid = to_regclass(%s) "
        "AND array_length(c.conkey, 1) = 1", (table,))
    return None if row is None else (str(row["col"]), str(row["ref"]))


def convert(value: Any, udt: str, where: str) -> Any:
    """A SQLite value as the PostgreSQL column of type ``udt`` takes it (`StoreError` if it cannot)."""
    if value is None:
        return None
    if udt == "bool":
        return bool(value)
    if udt in ("int8", "int4", "int2") and isinstance(value, float):
        if not value.is_integer():
            raise StoreError(f"{where} holds {value!r}, which is not a whole number; PostgreSQL keeps integers there.")
        return int(value)
    if udt == "timestamptz" and isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    if udt in ("vector", "halfvec") and isinstance(value, bytes):
        # The node stores what the column holds: float16 for a ``halfvec`` (memory's embeddings), float32 else.
        floats = np.frombuffer(value, dtype="<f2" if udt == "halfvec" else "<f4").astype(np.float64)
        if not np.isfinite(floats).all():
            raise StoreError(f"{where} holds a vector with NaN or infinity; PostgreSQL refuses it.")
        return "[" + ",".join(repr(float(f)) for f in floats) + "]"
    if udt in ("float8", "float4") and isinstance(value, str):
        return float(value)
    return value


def _insertion_order(db: Database, table: str) -> str:
    """rowid (the order rows were written), or the primary key of a WITHOUT ROWID table."""
    ddl = str(db.scalar("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)) or "")
    if "WITHOUT ROWID" not in ddl.upper():
        return "rowid"
    keys = db.query(f"SELECT name FROM pragma_table_info('{table}') WHERE pk > 0 ORDER BY pk")
    return ", ".join(f'"{k["name"]}"' for k in keys)


def _rows(db: Database, table: str, cols: list[str], self_ref: tuple[str, str] | None) -> Iterator[tuple[Any, ...]]:
    names = ", ".join(f'"{c}"' for c in cols)
    cursor: Iterable[dict[str, Any]] = db.connection().execute(
        f'SELECT {names} FROM "{table}" ORDER BY {_insertion_order(db, table)}')
    rows = (tuple(r[c] for c in cols) for r in cursor)  # the node's connections return rows as dicts
    if self_ref is None:
        yield from rows
        return
    col, ref = cols.index(self_ref[0]), cols.index(self_ref[1])
    pending = list(rows)
    seen: set[Any] = set()
    while pending:  # parents first: each pass emits the rows whose parent is already out
        later = []
        for row in pending:
            if row[col] is None or row[col] in seen or row[col] == row[ref]:
                seen.add(row[ref])
                yield row
            else:
                later.append(row)
        if len(later) == len(pending):  # a dangling parent: let PostgreSQL name it
            yield from later
            return
        pending = later


def _refuse_lost_columns(db: Database, table: str, extra: set[str]) -> None:
    """A SQLite column PostgreSQL has no place for must be empty: a copy never drops data silently."""
    for name in sorted(extra - SQLITE_ACCESS_PATHS.get(table, frozenset())):
        held = int(db.scalar(f'SELECT count(*) FROM "{table}" WHERE "{name}" IS NOT NULL'))
        if held:
            raise StoreError(f"{table}.{name} holds values in {held} rows but PostgreSQL's {table} has no such "
                             "column: this Colony's PostgreSQL schema is behind its SQLite one; nothing was copied.")


def _copy_table(conn: PgConnection, db: Database, table: str, columns: list[_Column],
                self_ref: tuple[str, str] | None, progress: Progress | None) -> TableCopy:
    have = {r["name"] for r in db.query(f"SELECT name FROM pragma_table_info('{table}')")}
    _refuse_lost_columns(db, table, have - {c.name for c in columns})
    cols = [c for c in columns if not c.generated and c.name in have]
    names = [c.name for c in cols]
    if self_ref is not None and not {self_ref[0], self_ref[1]} <= set(names):
        self_ref = None
    total = int(db.scalar(f'SELECT count(*) FROM "{table}"'))
    done = 0
    # The rows come with the state the triggers derive (account heads, links, supply) already in
    # them, and some tables refuse writes the triggers do not expect: a copy is not new activity.
    # `ALTER TABLE` is transactional, so a failed copy re-enables them with everything else.
    conn.execute(sql.SQL("ALTER TABLE {} DISABLE TRIGGER USER").format(sql.Identifier(table)))
    stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, names)))
    with conn.cursor().copy(stmt) as copy:
        for row in _rows(db, table, names, self_ref):
            copy.write_row([convert(v, c.udt, f"{table}.{c.name}") for v, c in zip(row, cols, strict=True)])
            done += 1
            if progress is not None and done % _BATCH == 0:
                progress(table, done, total)
    for c in cols:  # identity columns copied with their values: move their sequences past them
        if c.identity:
            conn.execute(sql.SQL("SELECT setval(pg_get_serial_sequence({t}, {c}), GREATEST(max({i}), 1)) FROM {tab}").format(
                t=sql.Literal(table), c=sql.Literal(c.name), i=sql.Identifier(c.name), tab=sql.Identifier(table)))
    conn.execute(sql.SQL("ALTER TABLE {} ENABLE TRIGGER USER").format(sql.Identifier(table)))
    if progress is not None:
        progress(table, done, total)
    return TableCopy(table=table, rows=done, columns=names)


def copy_to_pg(db: Database, pg: PgDatabase, *, progress: Progress | None = None) -> CopyReport:
    """Copy every table both engines hold from ``db`` into the empty, migrated ``pg``; check the counts.

    Raises `StoreError` when the target already holds rows, a value cannot be converted, or a
    count differs after the copy (the transaction is rolled back: the target stays empty).
    """
    source = set(sqlite_tables(db))
    order = [t for t in target_tables(pg) if t in source]
    occupied = {t: n for t in order if (n := _count(pg, t))}
    if occupied:
        listed = ", ".join(f"{n} in {t}" for t, n in sorted(occupied.items()))
        raise StoreError(f"PostgreSQL at {pg.where} already holds data ({listed}). Copy into an empty database: "
                         "create a new one (createdb) or drop the rows there first.")
    plan = [(t, _columns(pg, t), _self_reference(pg, t)) for t in order]
    copied: list[TableCopy] = []
    reader = db.connection()
    reader.execute("BEGIN")  # one read transaction: every table as of the same moment
    try:
        with pg.tx() as conn:
            for table, columns, self_ref in plan:
                copied.append(_copy_table(conn, db, table, columns, self_ref, progress))
            for t in copied:
                got = conn.execute(sql.SQL("SELECT count(*) AS n FROM {}").format(sql.Identifier(t.table))).fetchone()
                if got is None or int(got["n"]) != t.rows:
                    raise StoreError(f"{t.table}: {t.rows} rows read from SQLite but "
                                     f"{None if got is None else got['n']} in PostgreSQL; nothing was kept.")
    finally:
        reader.execute("COMMIT")
    node_local = {t: n for t in sorted(source - set(order)) if (n := int(db.scalar(f'SELECT count(*) FROM "{t}"')))}
    return CopyReport(target=pg.where, copied=copied, node_local=node_local)
