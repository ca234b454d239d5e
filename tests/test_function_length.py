"""No function in src/ over ~60 lines without a reason written above it (readable units).

A long function passes when the line right above its ``def`` (or above its first decorator) is a
comment that says why it is long, e.g. ``# long: one numba kernel; splitting it costs a call
per example``.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIMIT = 60


def long_functions(root: Path, limit: int = LIMIT, base: Path = REPO) -> list[str]:
    """``path:line name (n lines)`` of every function longer than ``limit`` lines (docstring
    included) that has no comment directly above it."""
    out = []
    for path in sorted(root.rglob("*.py")):
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            length = node.end_lineno - node.lineno + 1
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            above = lines[first - 2].strip() if first >= 2 else ""
            if length > limit and not above.startswith("#"):
                out.append(f"{path.relative_to(base)}:{node.lineno} {node.name} ({length} lines)")
    return out


def test_no_long_function_without_a_reason():
    offenders = long_functions(REPO / "src")
    assert not offenders, (
        f"functions over {LIMIT} lines without a comment above saying why: split them or "
        "write the reason: " + "; ".join(offenders)
    )


def test_the_check_sees_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(LIMIT))
    (tmp_path / "m.py").write_text(f"def f():\n{body}\n\n\n# long: a table\ndef g():\n{body}\n")
    assert long_functions(tmp_path, base=tmp_path) == [f"m.py:1 f ({LIMIT + 1} lines)"]
