"""SQL is never assembled with Python string formatting where it reaches the server.

Every ``execute``/``executemany`` call in the library gets a plain string, a named constant,
or a ``psycopg.sql`` composition (identifiers through ``sql.Identifier``); an f-string, a
``%``-formatted or ``.format``-ed string handed to ``execute`` fails this test.
"""

from __future__ import annotations

import ast
from pathlib import Path

LIB = Path(__file__).resolve().parents[1] / "lib" / "powrops"


def _text(node: ast.expr) -> bool:
    return isinstance(node, ast.JoinedStr) or (
        isinstance(node, ast.Constant) and isinstance(node.value, str)
    )


def formatted(node: ast.expr) -> bool:
    """Whether ``node`` builds a string with Python formatting (f-string, ``%``, ``+``,
    ``str.format``)."""
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        return _text(node.left)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _text(node.left) or _text(node.right)
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
        and _text(node.func.value)
    )


def offenders(source: str, where: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("execute", "executemany")
            and node.args
            and formatted(node.args[0])
        ):
            found.append(f"{where}:{node.lineno}")
    return found


def test_no_formatted_string_reaches_execute() -> None:
    found = []
    for path in sorted(LIB.rglob("*.py")):
        found += offenders(path.read_text(), str(path.relative_to(LIB)))
    assert not found, "SQL built with string formatting (use psycopg.sql):\n" + "\n".join(found)


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
