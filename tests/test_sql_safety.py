"""SQL is never assembled with Python string formatting where it reaches the server.

Every ``execute``/``executemany`` call in the library, and every SQLAlchemy ``text()``, gets a
plain string, a named constant, or a ``psycopg.sql`` composition (identifiers through
``sql.Identifier``). This test fails on:

- an f-string, a ``%``-formatted, ``+``-joined or ``.format``-ed string handed to one of them
  (``.format`` and ``%`` also on a name that holds a plain string, like ``QUERY.format(...)``);
- a name - module-level or local to the function - bound to such a string that contains SQL
  keywords, and handed to one of them (``query = f"SELECT ..."; cur.execute(query)``).

Pure: it reads the sources with ``ast``, no database.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from pathlib import Path

LIB = Path(__file__).resolve().parents[1] / "lib" / "powrops"

SQL_CALLS = ("execute", "executemany")
SQLALCHEMY = ("sa", "sqlalchemy")
SQL_WORDS = re.compile(
    r"\b(SELECT|INSERT|UPDATE|DELETE|ALTER|CREATE|DROP|TRUNCATE|VACUUM|ANALYZE|REINDEX|COPY|"
    r"GRANT|REVOKE|EXPLAIN|FROM|WHERE)\b",
    re.IGNORECASE,
)

#: Files still building SQL with string formatting, and how many such calls each may have: a
#: new one fails, and so does an entry that is no longer needed (remove it then).
ALLOWED: dict[str, int] = {
    # outside the psycopg.sql change's files: the drill's login check (`SELECT count(*) FROM
    # public.<table>`, the table from LOGIN_ROLES), to be converted by the owner of restore/
    "restore/checks.py": 1,
}

Scope = ast.Module | ast.FunctionDef | ast.AsyncFunctionDef


def _text(node: ast.expr) -> bool:
    return isinstance(node, ast.JoinedStr) or (
        isinstance(node, ast.Constant) and isinstance(node.value, str)
    )


def _strings(scope: Scope) -> set[str]:
    """Names that the scope binds to a plain string (a literal or an f-string)."""
    return {name for name, value in _bindings(scope) if _text(value)}


def formatted(node: ast.expr, strings: AbstractSet[str] = frozenset()) -> bool:
    """Whether ``node`` builds a string with Python formatting (f-string, ``%``, ``+``,
    ``str.format``); ``strings`` are names known to hold a plain string."""

    def text(n: ast.expr) -> bool:
        return _text(n) or (isinstance(n, ast.Name) and n.id in strings)

    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        return text(node.left)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return text(node.left) or text(node.right)
    if isinstance(node, ast.IfExp):
        return formatted(node.body, strings) or formatted(node.orelse, strings)
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
        and text(node.func.value)
    )


def _has_sql_words(node: ast.expr) -> bool:
    parts = [
        n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]
    return any(SQL_WORDS.search(part) for part in parts)


def _own_nodes(scope: Scope) -> Iterator[ast.AST]:
    """The nodes of ``scope``, not those of the functions (and classes) defined inside it."""
    stack: list[ast.AST] = list(ast.iter_child_nodes(scope))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            stack.extend(ast.iter_child_nodes(node))


def _bindings(scope: Scope) -> Iterator[tuple[str, ast.expr]]:
    for node in _own_nodes(scope):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    yield target.id, node.value
        elif (
            isinstance(node, ast.AnnAssign | ast.NamedExpr)
            and node.value is not None
            and isinstance(node.target, ast.Name)
        ):
            yield node.target.id, node.value


def _formatted_sql_names(scope: Scope, strings: AbstractSet[str]) -> set[str]:
    """Names the scope binds to SQL built with string formatting."""
    return {
        name
        for name, value in _bindings(scope)
        if formatted(value, strings) and _has_sql_words(value)
    }


def _sql_argument(call: ast.Call) -> ast.expr | None:
    """The SQL a call hands to the server: of ``x.execute``/``x.executemany`` and ``text``."""
    func = call.func
    is_execute = isinstance(func, ast.Attribute) and func.attr in SQL_CALLS
    is_text = (isinstance(func, ast.Name) and func.id == "text") or (
        isinstance(func, ast.Attribute)
        and func.attr == "text"
        and isinstance(func.value, ast.Name)
        and func.value.id in SQLALCHEMY
    )
    if not (is_execute or is_text):
        return None
    if call.args:
        return call.args[0]
    return next((k.value for k in call.keywords if k.arg in ("query", "statement")), None)


def offenders(source: str, where: str) -> list[str]:
    """``where:line`` of each call that hands the server SQL built with string formatting."""
    module = ast.parse(source)
    module_strings = _strings(module)
    module_sql = _formatted_sql_names(module, module_strings)
    scopes: list[Scope] = [module]
    scopes += [n for n in ast.walk(module) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    found = set()
    for scope in scopes:
        local = {name for name, _ in _bindings(scope)} if scope is not module else set()
        strings = _strings(scope) | (module_strings - local)
        bad_names = _formatted_sql_names(scope, strings) | (module_sql - local)
        for node in _own_nodes(scope):
            if not isinstance(node, ast.Call):
                continue
            arg = _sql_argument(node)
            if arg is None:
                continue
            if formatted(arg, strings) or (isinstance(arg, ast.Name) and arg.id in bad_names):
                found.add((node.lineno, f"{where}:{node.lineno}"))
    return [text for _, text in sorted(found)]


def _scan() -> dict[str, list[str]]:
    found = {}
    for path in sorted(LIB.rglob("*.py")):
        where = path.relative_to(LIB).as_posix()
        bad = offenders(path.read_text(), where)
        if bad:
            found[where] = bad
    return found


def test_no_formatted_string_reaches_the_server() -> None:
    found = _scan()
    unexpected = [
        line for path, lines in found.items() if len(lines) > ALLOWED.get(path, 0) for line in lines
    ]
    assert not unexpected, (
        "SQL built with string formatting (use psycopg.sql, and a named constant):\n"
        + "\n".join(unexpected)
    )


def test_the_allowed_list_is_current() -> None:
    found = _scan()
    stale = {path: len(found.get(path, [])) for path in ALLOWED}
    stale = {path: n for path, n in stale.items() if n < ALLOWED[path]}
    assert not stale, f"fewer formatted SQL calls than ALLOWED says, now {stale}: lower it"


def test_the_scan_finds_a_planted_one() -> None:
    planted = (
        "def count(cur, table):\n"
        '    cur.execute(f"SELECT count(*) FROM {table}")\n'
        '    cur.execute("SELECT * FROM %s" % table)\n'
        '    cur.execute("SELECT * FROM {}".format(table))\n'
        '    cur.execute("SELECT * FROM " + table)\n'
        "    cur.execute(QUERY, (table,))\n"
        '    cur.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(table)))\n'
    )
    assert offenders(planted, "planted") == ["planted:2", "planted:3", "planted:4", "planted:5"]


def test_the_scan_follows_names_and_text() -> None:
    planted = (
        'TEMPLATE = "SELECT * FROM {}"\n'
        'BY_TABLE = f"DELETE FROM {TABLE}"\n'
        "CONSTANT = 'SELECT 1'\n"
        "def run(cur, conn, table, where):\n"
        '    query = f"SELECT count(*) FROM {table}"\n'
        "    cur.execute(query)\n"  # 6: a local f-string with SQL
        "    cur.execute(BY_TABLE)\n"  # 7: a module-level one
        "    cur.execute(TEMPLATE.format(table))\n"  # 8: .format on a string constant
        "    conn.execute(text(f'SELECT * FROM {table}'))\n"  # 9: SQLAlchemy text()
        "    cur.executemany(query=query, params_seq=[])\n"  # 10: by keyword
        '    label = f"rows of {table}"\n'
        "    print(label)\n"
        "    cur.execute(CONSTANT)\n"
        '    cur.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(table)))\n'
        '    ax.text(1, 2, f" {table}")\n'
        "def shadowed(cur):\n"
        "    BY_TABLE = sql.SQL('DELETE FROM {}').format(sql.Identifier('t'))\n"
        "    cur.execute(BY_TABLE)\n"
    )
    expected = ["planted:6", "planted:7", "planted:8", "planted:9", "planted:10"]
    assert offenders(planted, "planted") == expected
