"""The packages are layers, and imports only point down: graphc -> runtime -> passes -> ir.

Every module of the four packages is read with `ast` (imports at module level and inside
functions); an import of a higher layer fails the test, and so does a cycle among module-level
imports, with the file and line of each import involved.
"""
import ast
import os
import subprocess
import sys

import networkx as nx
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RANK = {"ir": 0, "passes": 1, "runtime": 2, "graphc": 3}


def _modules():
    """{module name: path} of every module of the four packages."""
    found = {}
    for package in RANK:
        for folder, _, files in os.walk(os.path.join(ROOT, package)):
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                    found[dotted.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _is_package(module):
    return MODULES.get(module, "").endswith("__init__.py")


def _imports(module, path):
    """(imported module, line, at module level?) for every import statement in the file; a
    `from package import name` imports the submodule when `name` is one."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    found = []

    def visit(node, top_level):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend((alias.name, child.lineno, top_level) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = module.split(".")[:len(module.split(".")) - child.level
                                              + _is_package(module)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module
                found.append((target, child.lineno, top_level))
                found.extend((f"{target}.{alias.name}", child.lineno, top_level)
                             for alias in child.names if f"{target}.{alias.name}" in MODULES)
            visit(child, top_level and not isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))
    visit(tree, True)
    return found


def _where(module, line):
    return f"{os.path.relpath(MODULES[module], ROOT)}:{line}"


def test_the_walk_sees_every_package_and_resolves_relative_imports():
    assert {"ir.ops.registry", "passes.autodiff", "runtime.eager", "graphc.cli"} <= set(MODULES)
    targets = {t for t, _, _ in _imports("ir.ops.api", MODULES["ir.ops.api"])}
    assert {"ir.errors", "ir.types", "ir.ops.registry"} <= targets


def test_imports_only_point_down():
    upward = []
    for module, path in MODULES.items():
        for target, line, _ in _imports(module, path):
            top = target.split(".")[0]
            if top in RANK and RANK[top] > RANK[module.split(".")[0]]:
                upward.append(f"{_where(module, line)}: {module} imports {target}")
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def _module_level_graph():
    """Module-level import edges, each with its line. Importing a.b.c also runs the packages
    a and a.b, unless they are the importer's own (already running when it is imported)."""
    graph = nx.DiGraph()
    for module, path in MODULES.items():
        own = {".".join(module.split(".")[:k]) for k in range(1, module.count(".") + 1)}
        for target, line, top_level in _imports(module, path):
            if not top_level:
                continue
            parts = target.split(".")
            for k in range(1, len(parts) + 1):
                name = ".".join(parts[:k])
                if name in MODULES and name not in own and name != module:
                    graph.add_edge(module, name, line=line)
    return graph


def _cycles(graph) -> list:
    """One cycle per strongly connected component, each import named by file:line."""
    found = []
    for component in nx.strongly_connected_components(graph):
        if len(component) > 1:
            edges = nx.find_cycle(graph.subgraph(component))
            found.append(" -> ".join(f"{a} ({_where(a, graph.edges[a, b]['line'])})"
                                     for a, b in edges) + f" -> {edges[0][0]}")
    return found


def test_no_module_level_import_cycle():
    graph = _module_level_graph()
    assert graph.has_edge("ir.graph", "ir.ops.registry")  # the walk sees real edges
    assert graph.has_edge("passes.autodiff", "ir.ops")  # `from ir.ops import api` runs ir.ops
    cycles = _cycles(graph)
    assert not cycles, "module-level import cycles:\n" + "\n".join(cycles)


def test_a_cycle_is_reported_with_its_files_and_lines():
    graph = nx.DiGraph([("ir.types", "ir.graph", {"line": 3}), ("ir.graph", "ir.types",
                                                                  {"line": 17})])
    assert _cycles(graph) in (
        ["ir.types (ir/types.py:3) -> ir.graph (ir/graph.py:17) -> ir.types"],
        ["ir.graph (ir/graph.py:17) -> ir.types (ir/types.py:3) -> ir.graph"])


def _in_a_fresh_interpreter(script) -> list:
    """The lines `script` prints, run by a new Python (this checkout's code first on the
    path), which must succeed."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@pytest.mark.parametrize("package", ["ir", "passes", "runtime"])
def test_each_layer_imports_alone_and_loads_nothing_above_it(package):
    """In a fresh interpreter (this checkout's code first on the path)."""
    above = [p for p, rank in RANK.items() if rank > RANK[package]]
    script = (f"import sys, {package}\n"
              f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(above)!r}))")
    loaded = _in_a_fresh_interpreter(script)[0]
    assert loaded == "[]", f"import {package} loaded {loaded}"


def test_ops_on_concrete_values_need_eager_mode_registered_from_above():
    """ir alone builds graphs; eager mode (runtime.eager) registers itself as the base
    interpreter when imported."""
    script = ("import numpy as np\n"
              "from ir.graph import Graph\n"
              "from ir.ops import api as F\n"
              "g = Graph()\n"
              "with g.building():\n"
              "    y = F.exp(g.input('x', (2,)))\n"
              "print(y.op, y.graph is g)\n"
              "try:\n"
              "    F.exp(np.ones(2))\n"
              "except Exception as exc:\n"
              "    print(type(exc).__name__, exc.message)\n"
              "import runtime.eager\n"
              "print(type(F.exp(np.zeros(2))).__name__, F.exp(np.zeros(2)).data.tolist())\n")
    lines = _in_a_fresh_interpreter(script)
    assert lines[0] == "exp True"
    assert lines[1].startswith("GraphcError exp on concrete values needs eager mode")
    assert lines[2] == "Tensor [1.0, 1.0]"


def test_starting_the_cli_loads_no_library_only_some_commands_use():
    """`graphc --help` took 0.8 s of CPU, half of it importing scipy.special (for erf) and
    networkx (for dumps' statistics); both are imported where they are used, and erf still
    works in eager mode, the numpy evaluation and a compiled plan's source."""
    script = ("import sys, graphc.cli\n"
              "print(sorted(m for m in ('scipy.special', 'networkx', 'matplotlib', 'torch')\n"
              "             if m in sys.modules))\n"
              "import numpy as np\n"
              "from graphc.transforms import Compiled\n"
              "from ir.ops import api as F\n"
              "x = np.array([-1.0, 0.5, 2.0])\n"
              "print(np.round(F.erf(x).data, 6).tolist(), 'scipy.special' in sys.modules)\n"
              "f = Compiled(lambda x: F.erf(x) * 2.0, jit=False)  # numpy kernels\n"
              "print(np.round(f(x), 6).tolist(), 'special.erf(' in f.plan_for(x).source)\n")
    lines = _in_a_fresh_interpreter(script)
    assert lines[0] == "[]", f"import graphc.cli loaded {lines[0]}"
    from math import erf
    assert lines[1] == f"{[round(erf(v), 6) for v in (-1.0, 0.5, 2.0)]} True"
    assert lines[2] == f"{[round(2 * erf(v), 6) for v in (-1.0, 0.5, 2.0)]} True"
