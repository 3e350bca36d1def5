"""Fail when a product file is too long to read whole, or a function too long to read at once.

    python tools/check_sizes.py            # domain/, adapters/, streams/, sandboxes/ under .
    python tools/check_sizes.py --root DIR

Every ``*.py`` file of those packages (those that exist) may have at most 800 lines, and
every function or method (nested ones included, each counted from its ``def`` to its last
line) at most 100. Each offender is printed with its line count; the exit status is 1 when
there is one, 0 otherwise. ``make lint`` runs it. Standard library only.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

PACKAGES = ("domain", "adapters", "streams", "sandboxes")
MAX_FILE_LINES = 800
MAX_FUNCTION_LINES = 100


def _functions(
    node: ast.AST, prefix: str = ""
) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function under ``node`` with its qualified name (``Class.method``, ``outer.inner``)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            name = f"{prefix}{child.name}"
            yield name, child
            yield from _functions(child, f"{name}.")
        elif isinstance(child, ast.ClassDef):
            yield from _functions(child, f"{prefix}{child.name}.")
        else:
            yield from _functions(child, prefix)


def check_file(
    path: Path,
    shown: str,
    *,
    max_file: int = MAX_FILE_LINES,
    max_function: int = MAX_FUNCTION_LINES,
) -> list[str]:
    """The offences of one file, each a line of text naming it as ``shown``."""
    source = path.read_text(encoding="utf-8")
    found: list[str] = []
    lines = len(source.splitlines())
    if lines > max_file:
        found.append(f"{shown}: {lines} lines (at most {max_file} a file)")
    try:
        tree = ast.parse(source, filename=shown)
    except SyntaxError as exc:
        return [*found, f"{shown}:{exc.lineno}: cannot be parsed ({exc.msg})"]
    for name, fn in _functions(tree):
        length = (fn.end_lineno or fn.lineno) - fn.lineno + 1
        if length > max_function:
            limit = f"at most {max_function} a function"
            found.append(f"{shown}:{fn.lineno}: {name} is {length} lines ({limit})")
    return found


def check_tree(
    root: Path,
    packages: Sequence[str] = PACKAGES,
    *,
    max_file: int = MAX_FILE_LINES,
    max_function: int = MAX_FUNCTION_LINES,
) -> list[str]:
    """The offences of every Python file of ``packages`` under ``root``; missing ones skipped."""
    found: list[str] = []
    for package in packages:
        top = root / package
        if not top.is_dir():
            continue
        for path in sorted(top.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            shown = path.relative_to(root).as_posix()
            found += check_file(path, shown, max_file=max_file, max_function=max_function)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--root", type=Path, default=Path("."), help="the repository (default .)")
    parser.add_argument("--max-file", type=int, default=MAX_FILE_LINES)
    parser.add_argument("--max-function", type=int, default=MAX_FUNCTION_LINES)
    args = parser.parse_args(argv)
    found = check_tree(args.root, max_file=args.max_file, max_function=args.max_function)
    for line in found:
        print(line)
    if found:
        print(f"{len(found)} over the size limits", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
