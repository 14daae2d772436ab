"""The library's shape, read from its source (AST): folders are stages of the pipeline, each importing
only from the stages beneath it, with no import cycles and no import of the entry level from below.

Imports inside functions count like any other. Each one must be a deliberate deferral of a heavy
dependency, marked by a comment on the line or the line above. Modules loaded by name at run time
(``importlib.import_module``, ``__import__``) are arrows from the loader too: every such call must name a
module, or a package whose modules it may load, in a string the test can read.

Rooms stay small and tell apart by name: no module is longer than ``MAX_LINES``, and no two modules
outside ``cli/`` share a file name.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parent.parent / "pcfilter_lib"

# Lowest first; a module may import its own stage and the stages before it. The entry level
# (config, runtime, cli, book) may import anything, and nothing else may import it.
STAGES = ("labels", "memory", "geometry", "io", "simulate", "data", "lessons", "nn", "models", "filters",
          "pipelines", "recipes", "experiments", "timing", "viz")
ENTRY = ("config", "runtime", "cli", "book")
# Third-party modules heavy enough that a module may import them inside a function on purpose. NumPy is not
# one: the command line keeps it out of --help by loading a command's module only when the command runs.
DEFERRABLE = {"keras", "tensorflow", "open3d", "plotly", "matplotlib", "jax", "torch",
              "nbformat", "jupyter_cache"}  # installed with the book's extra only
MAX_DEFERRED = 30  # imports inside functions in the whole package: each one a start-up cost put off on purpose
ROOT_MODULES = 5  # at most this many modules (besides __init__) at the package's root
MAX_LINES = 800  # a longer module holds more than one idea: split it by idea
# Modules allowed past MAX_LINES, each with the reason its docstring gives.
LONG_MODULES = {"data/procedural_modelnet.py": "a catalogue of ten furniture families that share their makers"}


def modules() -> dict[str, Path]:
    found = {}
    for path in LIB.rglob("*.py"):
        parts = path.relative_to(LIB).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def stage(module: str) -> str:
    return module.split(".")[0] if module else ""


def imports(path: Path) -> list[tuple[ast.AST, str, bool]]:
    """(node, imported pcfilter_lib module or third-party top name, inside a function?) of a file."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    package = path.relative_to(LIB).with_suffix("").parts[:-1]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[:len(package) - node.level + 1])
                names = [".".join(["pcfilter_lib", *base, *([node.module] if node.module else [])])]
            else:
                names = [node.module or ""]
            if names[0].startswith("pcfilter_lib"):  # `from pcfilter_lib.x import y`: y may be a module
                names = [f"{names[0]}.{alias.name}" for alias in node.names]
        else:
            continue
        out += [(node, name, id(node) not in top) for name in names]
    return out


def loaded_by_name(mod: str, path: Path) -> list[tuple[ast.Call, str | None]]:
    """(call, pattern) of each ``import_module`` or ``__import__`` call of a file: the dotted name it loads,
    with ``*`` for a part computed at run time (one name, no dots), or None where the name cannot be read.
    ``__name__`` and ``__package__`` read as the module's own name and its package."""
    name = f"pcfilter_lib.{mod}" if mod else "pcfilter_lib"
    own = {"__name__": name, "__package__": name if path.name == "__init__.py" else name.rpartition(".")[0]}
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        if getattr(node.func, "attr", getattr(node.func, "id", None)) not in ("import_module", "__import__"):
            continue
        arg = node.args[0]
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            out.append((node, arg.value))
        elif isinstance(arg, ast.JoinedStr):
            out.append((node, "".join(str(v.value) if isinstance(v, ast.Constant)
                                      else own.get(getattr(v.value, "id", None), "*") for v in arg.values)))
        else:
            out.append((node, None))
    return out


def _resolve(name: str, mods: dict[str, Path]) -> str | None:
    """The library module (or package) that an imported dotted name lives in, or None outside the library."""
    if not name.startswith("pcfilter_lib."):
        return None
    target = name.removeprefix("pcfilter_lib.")
    while target and target not in mods:
        target = target.rpartition(".")[0]
    return target or None


def library_edges() -> dict[str, set[str]]:
    """Who imports whom inside the library (module names without the ``pcfilter_lib.`` prefix)."""
    mods = modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        for _, name, _ in imports(path):
            target = _resolve(name, mods)
            if target and target != mod:
                edges[mod].add(target)
    return edges


def dynamic_edges() -> dict[str, set[str]]:
    """Who loads whom by name at run time: every library module a loader's pattern can name."""
    mods = modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        for _, pattern in loaded_by_name(mod, path):
            if pattern is None:
                continue
            names = [f"pcfilter_lib.{m}" for m in mods if m and fnmatch.fnmatchcase(f"pcfilter_lib.{m}", pattern)
                     and f"pcfilter_lib.{m}".count(".") == pattern.count(".")] if "*" in pattern else [pattern]
            edges[mod] |= {t for t in (_resolve(name, mods) for name in names) if t and t != mod}
    return edges


@pytest.fixture(scope="module")
def static_edges() -> dict[str, set[str]]:
    """The library's import graph, read once for all the tests of this file (it parses every module)."""
    return library_edges()


@pytest.fixture(scope="module")
def loaded_edges() -> dict[str, set[str]]:
    return dynamic_edges()


@pytest.fixture(scope="module")
def edges(static_edges, loaded_edges) -> dict[str, set[str]]:
    """Imports and loads by name together: both are arrows that the layers must allow."""
    return {m: static_edges[m] | loaded_edges[m] for m in static_edges}


def test_every_module_belongs_to_a_stage_or_the_entry_level():
    for mod in modules():
        assert mod == "" or stage(mod) in STAGES + ENTRY, f"pcfilter_lib.{mod} is in no stage of the layout"


@pytest.mark.parametrize("mod", sorted(m for m in modules() if m and stage(m) not in ENTRY))
def test_stages_import_only_their_own_stage_and_those_beneath(mod, edges):
    allowed = set(STAGES[:STAGES.index(stage(mod)) + 1])
    for target in edges[mod]:
        assert stage(target) in allowed, (f"pcfilter_lib.{mod} imports pcfilter_lib.{target}, a higher stage "
                                          f"({stage(target)}) or the entry level")


def test_the_library_has_no_import_cycle(static_edges, loaded_edges):
    # The command line's loads by name close circles on purpose: cli.app loads a command's module once it is
    # itself loaded, and the command imports app's Interrupts. Loads by name below the entry level count.
    edges = {m: static_edges[m] | (set() if stage(m) in ENTRY else loaded_edges[m]) for m in static_edges}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in edges[node]:
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in edges:
        if node not in state:
            visit(node)


def test_imports_inside_functions_defer_a_heavy_dependency_and_say_so():
    for mod, path in modules().items():
        lines = path.read_text().splitlines()
        for node, name, inside in imports(path):
            if not inside:
                continue
            where = f"pcfilter_lib/{path.relative_to(LIB)}:{node.lineno}"
            said = any("#" in lines[i] for i in range(max(0, node.lineno - 3), node.lineno))
            top = name.split(".")[0]
            if top != "pcfilter_lib":
                assert top in DEFERRABLE, f"{where}: import {name} inside a function; import it at the top instead"
            # a library module imported late must be one that pulls a heavy dependency with it
            assert stage(mod) in ENTRY or said, f"{where}: say in a comment why {name} is imported inside a function"


# Runs pcfilter with the arguments given, then prints which heavy and which command modules it loaded.
LOADED = """
import json, sys
from pcfilter_lib.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("numpy", "tensorflow", "keras", "open3d")
                        or m.startswith("pcfilter_lib.cli."))))
"""


def test_the_command_line_loads_a_commands_module_only_when_the_command_runs():
    from pcfilter_lib.cli.app import build_parser

    commands = sorted(build_parser().commands)
    for command in commands:
        tree = ast.parse((LIB / "cli" / f"{command}.py").read_text())
        assert any(isinstance(node, ast.FunctionDef) and node.name == "run" for node in tree.body), command

    def loaded(*argv):
        done = subprocess.run([sys.executable, "-c", LOADED, *argv], capture_output=True, text=True, timeout=120)
        return set(json.loads(done.stdout.splitlines()[-1]))

    light = {"pcfilter_lib.cli.app", "pcfilter_lib.cli.options"}
    assert loaded("--help") == light  # no NumPy, no TensorFlow, no command's module
    assert loaded("filter", "in.ply", "-o", "out.ply", "--method", "median") == light  # refused by the parser
    info = loaded("info", "--no-devices")
    assert {m for m in info if m.removeprefix("pcfilter_lib.cli.") in commands} == {"pcfilter_lib.cli.info"}
    assert "tensorflow" not in info


def test_deferred_imports_stay_few():
    deferred = [(path, node.lineno) for path in modules().values() for node, _, inside in imports(path) if inside]
    assert len(deferred) <= MAX_DEFERRED, f"{len(deferred)} imports inside functions, at most {MAX_DEFERRED}"


def test_the_package_root_holds_few_modules():
    root = sorted(p.stem for p in LIB.glob("*.py") if p.stem != "__init__")
    assert len(root) <= ROOT_MODULES, f"pcfilter_lib/ holds {root}: move a module into the stage it belongs to"


def test_every_load_by_name_names_what_it_loads(loaded_edges):
    unread = [f"pcfilter_lib/{path.relative_to(LIB)}:{call.lineno}" for mod, path in modules().items()
              for call, pattern in loaded_by_name(mod, path) if pattern is None]
    assert not unread, f"say in a string (an f-string over __name__ or __package__ will do) what {unread} load"
    # The two loaders by name that the library has: the command line's commands and the filters' public names.
    assert {"cli.filter", "cli.simulate", "cli.info"} <= loaded_edges["cli.app"]
    assert "cli.cluster" in loaded_edges["cli.options"]
    assert {"filters.base", "filters.load", "filters.pixels"} <= loaded_edges["filters"]


def test_no_module_is_longer_than_the_limit():
    lengths = {str(p.relative_to(LIB)): len(p.read_text().splitlines()) for p in LIB.rglob("*.py")}
    long = {path: n for path, n in lengths.items() if n > MAX_LINES and path not in LONG_MODULES}
    assert not long, f"modules longer than {MAX_LINES} lines (split each by idea): {long}"
    assert set(LONG_MODULES) <= set(lengths), "a module allowed to be long no longer exists: drop it from LONG_MODULES"


def test_no_two_modules_outside_the_command_line_share_a_file_name():
    where = defaultdict(list)
    for path in LIB.rglob("*.py"):
        relative = path.relative_to(LIB)
        if relative.parts[0] != "cli" and path.name != "__init__.py":
            where[path.name].append(str(relative))
    shared = {name: paths for name, paths in where.items() if len(paths) > 1}
    assert not shared, f"modules that share a name, so that neither says which it is: {shared}"
