"""Imports run one way: the ``hw3`` package imports nothing above it, and no module of the repository
imports itself back through others (STYLE.md, Layout). Read from the source with ``ast``, so an
import inside a function, or under ``TYPE_CHECKING``, counts like one at the top."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOP_LEVEL = {p.stem for p in REPO.glob("*.py")}  # vae, gan, dann, swd, datasets, the scripts
PACKAGE = "hw3"


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")


def repo_modules() -> dict[str, Path]:
    """Every module of the repository by its import name: the top-level files and ``hw3.*``."""
    files = [*REPO.glob("*.py"), *(REPO / PACKAGE).glob("*.py")]
    return {_module_name(path): path for path in files}


def imported(path: Path, known: set[str]) -> set[str]:
    """The repository modules that the source of ``path`` imports, anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # "from hw3 import uda" imports the module hw3.uda; "from datasets import X" the module datasets
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found |= {name for name in names if name in known}
    return found - {PACKAGE}


def import_graph() -> dict[str, set[str]]:
    modules = repo_modules()
    return {name: imported(path, set(modules)) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One path around each circle found by a depth-first search (empty when the imports form a DAG)."""
    found, state = [], {}  # state: 1 on the current path, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for child in sorted(graph.get(node, ())):
            if state.get(child) == 1:
                found.append(path[path.index(child):] + [child])
            elif child not in state:
                visit(child, path + [child])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_the_package_imports_nothing_above_it():
    upward = {f"{name} imports {target}" for name, targets in import_graph().items()
              if name.startswith(PACKAGE + ".") for target in targets if target in TOP_LEVEL}
    assert not upward, sorted(upward)


def test_no_import_cycle():
    assert cycles(import_graph()) == []


def test_the_checks_see_an_upward_import_and_a_cycle(tmp_path):
    """The two checks above can fail: a bad import in a copy of a module is found."""
    bad = tmp_path / "uda.py"
    bad.write_text("import dann\nfrom hw3.common import cli\n\ndef f():\n    from datasets import to_float\n")
    assert imported(bad, set(repo_modules())) == {"dann", "datasets", "hw3.common"}
    assert cycles({"hw3.uda": {"dann"}, "dann": {"hw3.uda"}, "vae": set()}) == [["dann", "hw3.uda", "dann"]]


def test_every_script_that_reads_the_method_registry_sees_every_method():
    """The methods register themselves on import, so a script reading ``uda.METHODS`` must import
    their files; one that forgets sees a shorter registry (benchmarks/uda_study.py once did)."""
    import subprocess
    import sys

    scripts = [p for p in [*REPO.glob("*.py"), *(REPO / "benchmarks").glob("*.py")]
               if "uda.METHODS" in p.read_text() or "uda.method(" in p.read_text()]
    assert scripts
    probe = ("import importlib, sys; sys.path[:0] = [{repo!r}, {folder!r}]; importlib.import_module({name!r}); "
             "from hw3 import uda; print(' '.join(uda.METHODS))")
    for path in scripts:
        code = probe.format(repo=str(REPO), folder=str(path.parent), name=path.stem)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
        assert out.returncode == 0, f"{path.name}: {out.stderr[-500:]}"
        assert out.stdout.split() == ["source-only", "dann", "swd", "adda", "target-only"], path.name


def test_a_method_name_is_written_only_in_its_own_file():
    """A UDA method's name is a string in its record alone; everything else reads the registry (``uda.METHODS``,
    ``uda.compared``, ``SOURCE_ONLY.name``), so renaming a method is one edit."""
    from hw3 import uda
    import dann  # noqa: F401  (registers its method)
    import swd  # noqa: F401  (registers its method)

    homes = {REPO / "hw3" / "method.py", REPO / "hw3" / "adda.py", REPO / "dann.py", REPO / "swd.py"}
    files = [*REPO.glob("*.py"), *(REPO / PACKAGE).glob("*.py"), *(REPO / "benchmarks").glob("*.py")]
    spelled = {(path.name, node.lineno, node.value) for path in files if path not in homes
               for node in ast.walk(ast.parse(path.read_text(), str(path)))
               if isinstance(node, ast.Constant) and node.value in uda.METHODS}
    assert not spelled
