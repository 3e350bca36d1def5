"""tools/check_sizes.py: the file and function size limits ``make lint`` keeps."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "check_sizes.py"


@pytest.fixture(scope="module")
def sizes() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_sizes", TOOL)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def function(name: str, body_lines: int, indent: str = "") -> str:
    """A function of exactly ``body_lines + 1`` lines."""
    body = "".join(f"{indent}    x{i} = {i}\n" for i in range(body_lines))
    return f"{indent}def {name}():\n{body}"


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_a_tree_within_the_limits_passes(tmp_path: Path, sizes: ModuleType) -> None:
    write(tmp_path, "domain/ok.py", function("exactly_100", 99) + "\n" + "y = 1\n" * 600)
    write(tmp_path, "adapters/__init__.py", "")
    assert sizes.check_tree(tmp_path) == []
    assert sizes.main(["--root", str(tmp_path)]) == 0


def test_each_offender_is_named_with_its_count(tmp_path: Path, sizes: ModuleType) -> None:
    write(tmp_path, "domain/long.py", "x = 1\n" * 801)
    write(tmp_path, "adapters/a/deep.py", function("too_long", 100))
    method = function("method", 120, indent="    ")
    write(tmp_path, "streams/cls.py", f"class Stage:\n{method}")
    nested = "async def outer():\n" + function("inner", 150, indent="    ")
    write(tmp_path, "sandboxes/nest.py", nested)
    found = sizes.check_tree(tmp_path)
    assert found == [
        "domain/long.py: 801 lines (at most 800 a file)",
        "adapters/a/deep.py:1: too_long is 101 lines (at most 100 a function)",
        "streams/cls.py:2: Stage.method is 121 lines (at most 100 a function)",
        "sandboxes/nest.py:1: outer is 152 lines (at most 100 a function)",
        "sandboxes/nest.py:2: outer.inner is 151 lines (at most 100 a function)",
    ]


def test_only_product_packages_are_read(tmp_path: Path, sizes: ModuleType) -> None:
    write(tmp_path, "tests/test_big.py", "x = 1\n" * 2000)
    write(tmp_path, "tools/big.py", function("long", 300))
    write(tmp_path, "domain/__pycache__/stale.py", "x = 1\n" * 2000)
    assert sizes.check_tree(tmp_path) == []  # and sandboxes/, absent here, is skipped


def test_a_file_that_does_not_parse_fails(tmp_path: Path, sizes: ModuleType) -> None:
    write(tmp_path, "domain/broken.py", "def f(:\n")
    (line,) = sizes.check_tree(tmp_path)
    assert line.startswith("domain/broken.py:1: cannot be parsed")


def test_the_command_prints_offenders_and_exits_1(
    tmp_path: Path, sizes: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, "streams/big.py", function("handler", 130))
    assert sizes.main(["--root", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert out == "streams/big.py:1: handler is 131 lines (at most 100 a function)\n"
    assert "1 over the size limits" in err
