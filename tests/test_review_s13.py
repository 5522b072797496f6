"""Review of session 13: in a forked child, what a plan reports describes the numpy twin that
runs there, and each such process is told once (runtime.codegen.Plan._in_forked_child)."""
import warnings

import numpy as np

import graphc as gc
from runtime.codegen import ForkedProcessWarning, compile_graph

from test_fork import _args, _in_child, _mlp, _parent_started_openmp
from test_review_s12 import _LIMIT, _ln_args, _ln_loss, needs_fork, needs_jit

pytestmark = needs_fork


def _forked(work, seconds=60):
    """work() in a forked child that leaves the warnings module as it found it (no
    catch_warnings, no filter change): what it returns."""
    return _in_child(work, seconds, record_warnings=False)[0]


def _call(plan, args):
    return float(plan(*args)[0])  # one line: the warning's location in child and grandchild


@needs_jit
def test_a_grandchild_is_warned_again_under_the_default_filters():
    """Python's "default" action shows a warning once per location, remembered in the
    module's __warningregistry__, which a fork copies: the grandchild's warning at the line
    that warned its parent was dropped, though it is another process."""
    plan = compile_graph(gc.trace(_mlp, *[gc.spec(a.shape) for a in _args()]))
    args = _args(3)
    plan(*args)
    _parent_started_openmp()

    def child():
        shown = []
        with warnings.catch_warnings():
            warnings.simplefilter("default")  # Python's own action for a RuntimeWarning
            warnings.showwarning = lambda message, category, *rest: shown.append(
                category.__name__)
            _call(plan, args)
            in_child = list(shown)
            in_grandchild = _forked(lambda: (_call(plan, args), list(shown))[1])
        return in_child, in_grandchild

    (in_child, in_grandchild), _ = _in_child(child)
    assert in_child.count(ForkedProcessWarning.__name__) == 1
    assert in_grandchild.count(ForkedProcessWarning.__name__) == 2  # the child's, and its own


def test_a_grandchild_running_a_plan_its_parent_built_is_warned():
    """A plan built in a forked child lowers without numba (and warns there); a grandchild
    that runs it runs numpy kernels too, and was not told."""
    graph = gc.trace(_mlp, *[gc.spec(a.shape) for a in _args()])
    compile_graph(graph)(*_args(1))  # numba's parallel kernels have run
    args = _args(4)
    _parent_started_openmp()

    def child():
        plan = compile_graph(graph)  # warns: the child's plans lower without numba
        first = _call(plan, args)
        value, caught = _in_child(lambda: _call(plan, args))
        return plan.jit, first, value, [name for name, *_ in caught]

    (jit, first, value, grandchild_warnings), caught = _in_child(child)
    assert not jit and first == value
    assert [name for name, *_ in caught].count(ForkedProcessWarning.__name__) == 1
    assert grandchild_warnings.count(ForkedProcessWarning.__name__) == 1


def test_a_plan_built_without_numba_by_choice_is_not_warned_in_a_child():
    """jit=False chosen by the caller is no fork's doing: no warning for it."""
    graph = gc.trace(_mlp, *[gc.spec(a.shape) for a in _args()])
    compile_graph(graph)(*_args(1))  # numba's parallel kernels have run
    plan = compile_graph(graph, jit=False)
    args = _args(5)
    want = _call(plan, args)
    _parent_started_openmp()
    value, caught = _in_child(lambda: (_call(plan, args), plan.source)[0])
    assert value == want
    assert ForkedProcessWarning.__name__ not in [name for name, *_ in caught]


@needs_jit
def test_a_twins_remat_report_and_flops_are_what_the_child_reports():
    """plan.memory describes the twin, fitted to the memory_limit for numpy's kernels and
    recomputing values that numba's plan keeps; plan.remat_report and plan.flops() still
    described numba's plan, which recomputes nothing."""
    step = gc.compile(gc.value_and_grad(_ln_loss, argnums=(1, 2)), memory_limit=_LIMIT)
    args = _ln_args()
    step(*args)
    plan = step.plan_for(*args)
    parents_report, parents_flops = plan.remat_report, plan.flops()
    assert plan.jit and not parents_report.recomputed  # numba's fused plan fits as it is
    _parent_started_openmp()

    def work():
        report, flops, total = plan.remat_report, plan.flops(), plan.memory["total"]
        twin = plan._forked_twin
        return (len(report.recomputed), report is twin.remat_report, flops, twin.flops(),
                total)

    (recomputed, same, flops, twins_flops, total), _ = _in_child(work)
    assert total <= _LIMIT and recomputed and same
    assert flops == twins_flops and flops > parents_flops
    assert plan.remat_report is parents_report  # the parent is unchanged
