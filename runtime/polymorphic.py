"""A plan for a graph with symbolic dimensions (shape polymorphism): one plan, every size.

    plan = compile_graph(optimised)          # optimised once, f32[batch,128] inputs
    plan(x3, w)                              # batch=3
    plan(x17, w)                             # batch=17: the same plan, no pass runs again

The graph was traced and optimised once. At each call the symbols are bound from the input
shapes (ir.specialize.bind_dims: inputs that disagree are one error naming them) and the
concrete plan for that binding runs. Lowering a binding (fuse, plan memory, choose kernels,
render; runtime/stages.py) sizes its buffers and writes its straight-line code with that
binding's sizes; it is cached per binding (the most recent MAX_BINDINGS), and it rarely
compiles a kernel again: the fused kernels' numba source depends on dtypes and ranks (their
loop bounds come from the arrays at run time, runtime/kernelgen.py) and on the operands the
binding's memory plan writes in place (kernelgen's `aliases`), so a binding reuses the
machine code of the first unless coinciding sizes change a donation or an in-place choice
(tests/test_review_s11.py).
"""
from __future__ import annotations

from collections import OrderedDict

from ir.specialize import bind_dims, specialize

from .interpreter import bind_inputs

# Bindings whose lowered plans are kept (least recently used dropped first): a generation loop
# over prompt lengths keeps its recent sizes without holding every size's buffers forever.
MAX_BINDINGS = 8


class PolymorphicPlan:
    """`plan(*inputs) -> list of output arrays` for any binding of the graph's symbols."""

    def __init__(self, graph, name=None, donate=(), check_finite=False, parallel=None,
                 jit=None, background_compile=None, fast_math=False, alias_inputs=False):
        self.graph = graph  # the symbolic, optimised graph
        self.name = name or graph.name
        self.options = dict(name=self.name, donate=tuple(donate), check_finite=check_finite,
                            parallel=parallel, jit=jit, background_compile=background_compile,
                            fast_math=fast_math, alias_inputs=alias_inputs)
        self._plans = OrderedDict()  # binding (sorted items) -> Plan
        self.lowerings = 0  # bindings lowered so far (a cache miss each)
        self.last = None  # the concrete plan of the latest call
        # memory_limit (runtime.build): each binding's graph -> (graph fitted, RematReport)
        self.fit_budget = None

    def binding(self, *args, **kwargs) -> dict:
        values = bind_inputs(self.graph, args, kwargs)
        return bind_dims(self.graph, [v.shape for v in values])

    def specialize(self, *args, **kwargs):
        """The concrete runtime.codegen.Plan that runs these inputs (lowered on first use)."""
        return self.plan_for_binding(self.binding(*args, **kwargs))

    def plan_for_binding(self, binding: dict):
        from .codegen import Plan
        key = tuple(sorted(binding.items()))
        plan = self._plans.get(key)
        if plan is None:
            concrete, report = specialize(self.graph, binding), None
            if self.fit_budget is not None:
                concrete, report = self.fit_budget(concrete)
            plan = Plan(concrete, **self.options)
            plan.remat_report = report
            self.lowerings += 1
            self._plans[key] = plan
            while len(self._plans) > MAX_BINDINGS:
                self._plans.popitem(last=False)
        else:
            self._plans.move_to_end(key)
        self.last = plan
        return plan

    def drop(self, binding: dict) -> None:
        """Forget the lowered plan of `binding`, so its buffers go once no caller holds it:
        for a caller bounding the plans of several PolymorphicPlans together
        (graphc/generate.py's Generator)."""
        plan = self._plans.pop(tuple(sorted(binding.items())), None)
        if plan is not None and plan is self.last:
            self.last = None

    def __call__(self, *args, **kwargs):
        return self.specialize(*args, **kwargs)(*args, **kwargs)

    def run_checked(self, *args, **kwargs):
        return self.specialize(*args, **kwargs).run_checked(*args, **kwargs)

    def profile(self, *args, repeat: int = 3, file=None, top: int = 25, warm: bool = False,
                **kwargs):
        # (warm is Plan.profile's setting: left in kwargs, it was taken for an input named
        # 'warm', "graph 'f' has no inputs named ['warm']")
        return self.specialize(*args, **kwargs).profile(*args, repeat=repeat, file=file,
                                                        top=top, warm=warm, **kwargs)

    @property
    def bindings(self) -> list:
        """The bindings with a lowered plan, least recently used first."""
        return [dict(key) for key in self._plans]

    # what a concrete plan reports, for the binding of the latest call
    def _latest(self, what):
        if self.last is None:
            raise AttributeError(f"{what}: plan {self.name!r} has symbolic dimensions; "
                                 "call it (or .specialize(*inputs)) to get a concrete plan")
        return self.last

    @property
    def source(self) -> str:
        return self._latest("source").source

    @property
    def remat_report(self):
        return self._latest("remat_report").remat_report

    @property
    def memory(self) -> dict:
        return self._latest("memory").memory

    @property
    def kernel_graph(self):
        return self._latest("kernel_graph").kernel_graph

    @property
    def kernels_pending(self) -> int:
        return sum(p.kernels_pending for p in self._plans.values())

    def wait_for_kernels(self) -> None:
        for plan in self._plans.values():
            plan.wait_for_kernels()

    def flops(self, ops=None):
        return self._latest("flops").flops(ops)

    def __repr__(self):
        return f"<PolymorphicPlan {self.name!r}: {len(self._plans)} bindings lowered>"
