"""The compiled plan: a graph lowered to one straight-line Python function over numpy arrays.

`Plan(graph, ...)` runs the lowering stages (runtime/stages.py: fuse, plan memory, choose
kernels, render), binds the globals the generated source names (pool buffers allocated once
per plan, constants, numba kernels) and compiles the source. Then it only runs: calls with
the CPUs other processes leave free, swaps in the kernels the background compiler finished
(runtime/tiering.py) and maps a failure back to the node and the user's line. Profiling and
checked runs are in runtime/instrument.py.

`plan.source` is the generated code. It is registered with `linecache` (as torch.fx does), so
tracebacks, pdb and `inspect.getsource` show the generated line.
"""
from __future__ import annotations

from contextlib import contextmanager
import itertools
import linecache
import os
import threading
import weakref

import numpy as np

from ir.errors import GraphcError, UsersIndexError, user_stacklevel
from ir.ops.control_flow import region_flops
from ir.ops.registry import REGISTRY, get_op
from ir.specialize import graph_is_symbolic

from . import collectives, contention, instrument, threads, tiering
from . import jit as jit_kernels
from .emitters import checked_row_sum, ones
from .fusion import describe
from .interpreter import bind_inputs
from .lowering import parallel_default, reshaped, submit
from .memory import allocate_pool, check_fits, part_view
from .stages import LoweringOptions, lower

_SOURCE_NUMBERS = itertools.count()  # one linecache file name per compiled source


class _LazySpecial:
    """scipy.special for the plans whose source calls it (`erf`), imported at the first
    use: the import takes ~0.2 s, and most plans never need it."""

    def __getattr__(self, name):
        from scipy import special
        return getattr(special, name)


_SCIPY_SPECIAL = _LazySpecial()


class Plan:
    """A compiled, callable graph: `plan(*inputs) -> list of output arrays`."""

    def __init__(self, graph, name: str | None = None, donate=(), check_finite=False,
                 parallel: bool | None = None, jit: bool | None = None,
                 background_compile: bool | None = None, fast_math: bool = False,
                 alias_inputs: bool = False):
        self.graph = graph
        self.alias_inputs = alias_inputs  # runtime.stages.LoweringOptions.alias_inputs
        self.fast_math = fast_math  # generated kernels may reassociate (runtime.kernelgen)
        self.jit = jit_kernels.enabled() if jit is None else jit
        # jit turned off because this process was forked after GNU OpenMP started: a process
        # forked from this one runs the plan without numba too, and is told (_in_forked_child)
        self._numba_lost_to_fork = bool(self.jit and threads.forked_from_openmp())
        if self._numba_lost_to_fork:
            _warn_forked()
            self.jit = False
        self._forked_twin = None  # this graph without numba kernels, in a forked child
        self.parallel = parallel_default() if parallel is None else parallel
        self.name = name or graph.name
        self.donate = tuple(donate)
        self.check_finite = check_finite
        # passes.rematerialize's RematReport when built with a memory_limit (runtime.build)
        self.remat_report = None
        unknown = set(self.donate) - {n.attrs["name"] for n in graph.inputs}
        if unknown:
            raise GraphcError(f"cannot donate {sorted(unknown)}: not inputs of {self.name!r}")
        self.lowered = lower(graph, LoweringOptions(self.donate, self.jit, self.parallel,
                                                    fast_math, alias_inputs))
        # the graph the kernels run: with numba, elementwise clusters become fused nodes
        self._kernel_graph = self.lowered.kernel_graph
        self.memory_plan = self.lowered.memory_plan
        check_fits(self.memory_plan.stats, self.name)  # before _bind allocates the buffers
        self._donated_positions = [k for k, n in enumerate(graph.inputs)
                                   if n.attrs["name"] in self.donate]
        # (shape, dtype) of each input, for calls that pass exactly these (_as_given)
        self._input_types = None if graph_is_symbolic(graph) else \
            [(n.shape, np.dtype(n.dtype)) for n in graph.inputs]
        rendered = self.lowered.rendered
        self._source = rendered.source
        self._steps, self._names = rendered.steps, rendered.names  # read by runtime.instrument
        self._solo_blas = None  # numpy's BLAS, kept single-threaded while the plan runs
        self.background = self.jit and (tiering.enabled() if background_compile is None
                                        else background_compile)
        self._pending = []  # (global name, kernel, spec, source) compiling in the background
        self._envs = []  # the namespaces of the compiled plan functions
        self._thread_count = None  # numba threads of the last call
        # one call at a time: every call of a plan runs in its one memory pool (four Python
        # threads calling one compiled function at once got 395-659 wrong results of 800)
        self._call_lock = threading.RLock()
        self._short_calls = False  # the last call too short to judge the machine's load by
        self._fastest_calls = {}  # thread count -> the fastest call on that many threads
        self._globals = self._bind(rendered)
        if self._pending:
            tiering.submit([(source, spec) for _, _, spec, source in self._pending])
        self._files = {}  # label -> the file name its compiled source has (linecache)
        self._fn = self._compile(self._source, "plan")
        self._checked_fn = None
        if check_finite:
            self._fn = instrument.checked_runner(self)

    # ---- binding the source's globals -------------------------------------------------------
    def _bind(self, rendered) -> dict:
        env = {"np": np, "special": _SCIPY_SPECIAL, "_submit": submit, "_ones": ones,
               "_checked_row_sum": checked_row_sum,
               "_jit": jit_kernels, "_reshaped": reshaped, "_collectives": collectives}
        # the constants first: one numpy refuses (tri or full of a negative size) is one
        # line naming its op, where the pool's buffer of its negative size would fail unnamed
        for name, (kind, args) in rendered.bindings.items():
            if kind == "constant":
                env[name] = _bound_value(kind, args, env, ())
        buffers = allocate_pool(self.memory_plan.buffers)
        for k, buf in enumerate(buffers):
            env[f"buf{k}"] = buf
        self._buffers = buffers
        for name, (kind, args) in rendered.bindings.items():
            if kind != "constant":
                env[name] = _bound_value(kind, args, env, buffers)
        for kernel, dtype in rendered.fixed_kernels:
            jit_kernels.warm(kernel, dtype)
        if rendered.uses_gemm:
            self._bind_gemm(env)
        if any(kernel == "reductions" for kernel, _ in rendered.fixed_kernels):
            from . import reductions
            env["_reductions"] = reductions
        # Generated kernels are called through their numba dispatchers. Calling the compiled
        # overload's entry point instead saved 0.4-0.8 us per call (median over the step's
        # kernels, measured 2 December 2026): ~0.1 ms of a tiny or nanogpt-cpu step (108 and
        # 179 numba calls), under 0.5%, and it would skip the type check that sends a
        # caller's non-contiguous or read-only input to a specialisation of its own.
        for name, node, source, spec in rendered.fused:
            fn = jit_kernels.load_generated(source)
            cached = tiering.compiled(source, spec)
            if self.background and not cached:
                env[name] = tiering.numpy_kernel(node)  # until the kernel is compiled
                self._pending.append((name, fn, spec, source))
            else:
                jit_kernels.warm_generated(fn, spec)
                if not cached:
                    tiering.mark_compiled(source, spec)
                env[name] = fn
        return env

    def _bind_gemm(self, env):
        """Globals of runtime.gemm's kernels. Their blocks run on numba's threads, so numpy's
        BLAS must not start threads of its own inside them: the plan sets it to one thread
        while it runs (and back afterwards, for the rest of the program)."""
        from . import gemm
        self._solo_blas = gemm.blas()
        env.update(_gemm=gemm, _threads=gemm.blocks(),
                   _sgemm=self._solo_blas.address(np.float32),
                   _dgemm=self._solo_blas.address(np.float64))

    def _failed_node(self, tb):
        """The node whose generated line raised, from the traceback of the plan's code."""
        node = None
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == self._files["plan"]:
                node = self.lowered.rendered.line_node.get(tb.tb_lineno, node)
            tb = tb.tb_next
        return node

    def _compile(self, source, label, extra=None):
        """The function `plan` of `source`, under a file name registered with linecache for
        as long as this plan lives."""
        env = dict(self._globals)
        env.update(extra or {})
        self._envs.append(env)
        filename = f"<graphc {label} {self.name} #{next(_SOURCE_NUMBERS)}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        weakref.finalize(self, linecache.cache.pop, filename, None)
        exec(compile(source, filename, "exec"), env)
        fn = env["plan"]
        self._files[label] = filename
        return fn if self._solo_blas is None else _with_solo_blas(fn, self._solo_blas)

    # ---- tiered kernels (runtime.tiering) -----------------------------------------------------
    @property
    def kernels_pending(self) -> int:
        """Generated kernels still running as numpy code while numba compiles them."""
        return len(self._pending)

    def wait_for_kernels(self) -> None:
        """Block until the background compiler is done, then use its kernels. In a child
        forked after GNU OpenMP started, nothing: its calls run the numba-free twin, and
        loading a kernel runs it once, a parallel loop that numba ends the child for."""
        if self._runs_as_twin():
            return
        tiering.wait()
        self._swap_in_kernels()

    def _swap_in_kernels(self) -> None:
        if tiering.running():
            return
        for name, fn, spec, source in self._pending:
            # loads the cached machine code; compiles here if the background compiler failed
            jit_kernels.warm_generated(fn, spec)
            if not tiering.compiled(source, spec):
                tiering.mark_compiled(source, spec)
            for env in [self._globals] + self._envs:
                env[name] = fn
        self._pending = []

    # ---- running -----------------------------------------------------------------------------
    def _runs_as_twin(self) -> bool:
        """Whether this plan's numba kernels are out of reach: it was built with them, and
        this process is a child forked after GNU OpenMP started
        (runtime.threads.forked_from_openmp)."""
        return self.jit and threads.forked_from_openmp()

    def _in_forked_child(self):
        """The plan to run instead of this one where `_runs_as_twin`: the same graph
        lowered without numba kernels, built at its first call there. None elsewhere."""
        as_twin = self._runs_as_twin()
        # numba lost to a fork: here, or (built in a forked child) in the parent of this
        # process; told once a process, a grandchild too (it inherits the twin or the plan)
        if as_twin or self._numba_lost_to_fork:
            _warn_forked()
        if not as_twin:
            return None
        if self._forked_twin is None:
            graph, report = self.graph, self._remat_report
            if report is not None:  # a memory_limit: numpy's kernels may need more memory
                graph, report = self._fitted_without_numba()
            self._forked_twin = Plan(graph, self.name, self.donate, self.check_finite,
                                     self.parallel, jit=False, fast_math=self.fast_math,
                                     alias_inputs=self.alias_inputs)
            self._forked_twin.remat_report = report
        return self._forked_twin

    def _fitted_without_numba(self):
        """(this plan's graph, its RematReport) for its memory_limit lowered without numba:
        the graph fitted to the limit with numba's fused kernels, recomputing more where
        numpy's kernels need it."""
        from passes.rematerialize import rematerialize
        from .build import memory_model  # runtime.build imports this module
        options = LoweringOptions(self.donate, False, self.parallel, self.fast_math,
                                  self.alias_inputs)
        graph, report = rematerialize(self.graph, self._remat_report.limit,
                                      memory_model(options))
        return graph, (report if report.recomputed else self._remat_report)

    def __call__(self, *args, **kwargs):
        twin = self._in_forked_child()
        if twin is not None:
            return twin(*args, **kwargs)
        with self._call_lock:
            if self._pending:
                self._swap_in_kernels()
            with self.thread_scope():
                return self._run(args, kwargs)

    @contextmanager
    def thread_scope(self, ordinary: bool = True):
        """The numba threads one call of the plan (or of its checked or profiled form) runs
        on: the background compiler has one core, the plan keeps to the other; otherwise
        the plan takes the CPUs that other processes leave free
        (runtime.threads.plan_call). runtime.gemm's block count stays as built: one
        block or two gives different float bits (OpenBLAS sums in another order), so only
        the threads running them change. One call of the plan at a time (its memory pool
        is shared by all of them): a call from another Python thread waits for it.
        `ordinary`: False for a checked or profiled call, which runs slower than the plan's
        fastest on purpose and is neither judged against it nor recorded."""
        with self._call_lock:
            if not self.jit:
                yield
                return
            if self._pending:
                self._thread_count = 1
                with threads.numba_threads(1):
                    yield
                return
            fastest = self._fastest_calls if ordinary else None
            with threads.plan_call(self._short_calls, fastest) as call:
                self._thread_count = call.threads
                yield
            if call.wall_s is not None:
                self._short_calls = call.wall_s < contention.MIN_CALL_S

    def bind_call(self, args, kwargs) -> list:
        """The input arrays of a call, donated ones made safe for the plan to write over."""
        values = None if kwargs else self._as_given(args)
        if values is None:
            values = bind_inputs(self.graph, args, kwargs)
        for k in self._donated_positions:
            if not values[k].flags.c_contiguous or not values[k].flags.writeable:
                # a C-ordered copy: np.array keeps a Fortran-ordered array's layout, and the
                # kernels write donated arrays through C-order reshapes of them
                values[k] = np.array(values[k], order="C")
        for k in _overlapping_donations(values, self._donated_positions):
            values[k] = np.array(values[k])
        return values

    def _as_given(self, args):
        """The arguments as a list when each one is an ndarray (or numpy scalar) of its
        input's shape and dtype (as every call from gc.compile passes them), else None: bind_inputs' checks without
        its per-input lookups and conversions, which cost ~0.2 ms a call for a GPT step's 85
        inputs."""
        types = self._input_types
        if types is None or len(args) != len(types):
            return None
        values = list(args)
        for k, (value, (shape, dtype)) in enumerate(zip(args, types)):
            if type(value) is not np.ndarray:
                if not isinstance(value, np.generic):  # (a numpy scalar: a step count)
                    return None
                value = values[k] = np.asarray(value)
                if value.dtype != dtype and np.can_cast(value.dtype, dtype, "same_kind"):
                    # bind_inputs' cast of a 0-d value, here: gc.compile traces a numpy
                    # integer scalar as an int64 input (np.int32(3)), a longdouble as float32
                    value = values[k] = value.astype(dtype)
            if value.shape != shape or value.dtype != dtype:
                return None
        return values

    def _run(self, args, kwargs):
        values = self.bind_call(args, kwargs)
        try:
            if self.check_finite:
                with np.errstate(all="ignore"):  # the guard reports non-finite values
                    outs = self._fn(*values)
            else:
                outs = self._fn(*values)
        except GraphcError:
            raise
        except (FloatingPointError, ValueError, IndexError, TypeError) as exc:
            node = self._failed_node(exc.__traceback__)
            if node is None:
                raise GraphcError(f"plan {self.name!r} failed while running: {exc}") from None
            if isinstance(exc, UsersIndexError):  # (the op is no call of the user's)
                raise GraphcError(f"{exc} (an index array's value, checked as the plan ran)",
                                  node.locs) from None
            operands = ", ".join(str(i.type) for i in node.inputs)
            raise GraphcError(f"{describe(node)}({operands}) failed while running: {exc}",
                              node.locs) from None
        return [o if type(o) is np.ndarray else np.asarray(o, dtype=n.dtype)
                for o, n in zip(outs, self.graph.outputs)]

    # ---- what the plan is: in a forked child (_runs_as_twin), its twin's, which is what runs

    def _running(self) -> "Plan":
        return self._in_forked_child() or self

    @property
    def source(self) -> str:
        """The generated Python of the plan's function."""
        return self._running()._source

    @property
    def kernel_graph(self):
        """The graph the kernels run: with numba, elementwise clusters are fused nodes."""
        return self._running()._kernel_graph

    @property
    def memory(self) -> dict:
        """Bytes by category, known from the plan alone before any call."""
        return dict(self._running().memory_plan.stats)

    @property
    def peak_intermediate_bytes(self) -> int:
        return self._running().memory_plan.stats["peak_intermediate"]

    @property
    def remat_report(self):
        """passes.rematerialize's RematReport when built with a memory_limit (runtime.build),
        else None. A forked child's twin is fitted again for numpy's kernels: its report."""
        return self._running()._remat_report

    @remat_report.setter
    def remat_report(self, report) -> None:
        self._remat_report = report

    def flops(self, ops=None) -> float:
        """The FLOPs of one call, by the ops' own rules; `ops`: an op's name or names, only
        the nodes of these ops, inside loops' bodies and conds' branches too (`graphc bench`
        rates ("matmul", "einsum"), the matrix products, at numpy's GEMM speed)."""
        if ops is not None:
            ops = (ops,) if isinstance(ops, str) else tuple(ops)
            for name in ops:  # (a misspelt one counted 0 without a word)
                if not isinstance(name, str) or name not in REGISTRY:
                    raise GraphcError(f"plan.flops: ops names {name!r}, which is no op")
        # a twin's may recompute more (memory_limit)
        return region_flops(self._running().graph, ops)

    def run_checked(self, *args, **kwargs):
        """Run with a finite-value check after every node (the NaN/Inf guard)."""
        twin = self._in_forked_child()
        if twin is not None:
            return twin.run_checked(*args, **kwargs)
        if self._checked_fn is None:
            self._checked_fn = instrument.checked_runner(self)
        values = self.bind_call(args, kwargs)
        # errstate: the guard reports non-finite values itself
        with np.errstate(all="ignore"), self.thread_scope(ordinary=False):
            outs = self._checked_fn(*values)
        return [np.asarray(o) for o in outs]

    def profile(self, *args, repeat: int = 3, file=None, top: int = 25, warm: bool = False,
                **kwargs):
        """Time every node over `repeat` calls; print a table sorted by time; return rows
        (`warm`: each kernel also timed again right after itself, runtime.instrument)."""
        twin = self._in_forked_child()
        if twin is not None:
            return twin.profile(*args, repeat=repeat, file=file, top=top, warm=warm, **kwargs)
        return instrument.profile(self, *args, repeat=repeat, file=file, top=top, warm=warm,
                                  **kwargs)


class ForkedProcessWarning(RuntimeWarning):
    """Plans run without numba kernels in a process forked after GNU OpenMP started."""


_FORK_WARNED = []
if hasattr(os, "register_at_fork"):
    # warnings are per process: a grandchild forked from a warned child is told again
    os.register_at_fork(after_in_child=_FORK_WARNED.clear)


def _warn_forked() -> None:
    if not _FORK_WARNED:
        _FORK_WARNED.append(True)
        import warnings
        # the pid makes the text this process's own: Python's "default" and "once" actions
        # remember a warning's text (per location) in registries that a fork copies
        warnings.warn(f"graphc: this process (pid {os.getpid()}) was forked from one that "
                      "had loaded numba's parallel kernels (building a plan loads them; GNU "
                      "OpenMP does not survive fork), so its plans run numpy kernels, slower; "
                      "start processes with multiprocessing's 'spawn' method for full speed",
                      ForkedProcessWarning, stacklevel=user_stacklevel())


def _overlapping_donations(values, donated_positions) -> set:
    """Positions of donated arrays whose memory overlaps another argument's (the same array
    passed twice, or a view of it): the plan writes outputs over a donated array while it may
    still read the other argument, so such a donation is given a copy (JAX likewise declines
    to donate such a buffer). Only arrays over the same memory owner are compared: this runs
    on every call."""
    if not donated_positions:
        return set()
    donated = set(donated_positions)
    owners = [id(value) if value.base is None else id(_memory_owner(value))
              for value in values]
    if len(set(owners)) == len(owners):  # (the usual case: no two share an owner)
        return set()
    by_owner = {}
    for k, owner in enumerate(owners):
        by_owner.setdefault(owner, []).append(k)
    overlapping = set()
    for group in by_owner.values():
        for a, b in itertools.combinations(group, 2):
            if (a in donated or b in donated) and np.may_share_memory(values[a], values[b]):
                overlapping.update({a, b} & donated)
    return overlapping


def _memory_owner(array):
    """The object that owns an array's memory (the end of its chain of bases)."""
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array if array.base is None else array.base


def _with_solo_blas(fn, blas):
    def run(*args):
        before = blas.threads()
        blas.set_threads(1)
        try:
            return fn(*args)
        finally:
            blas.set_threads(before)
    return run


def _bound_value(kind, args, env, buffers):
    """The object a runtime.render.Binding names."""
    if kind == "value":
        return args[0]
    if kind == "constant":
        (node,) = args
        try:
            value = node.attrs["value"] if node.op == "constant" else \
                get_op(node.op).impl(**node.attrs)
        except (ValueError, TypeError) as exc:  # (tri of a negative size): named as _run does
            raise GraphcError(f"{describe(node)}() failed while building the plan: {exc}",
                              node.locs) from None
        value = np.asarray(value, dtype=node.dtype)
        value.setflags(write=False)
        return value
    if kind == "pool":
        buffer, size, shape, perm = args
        if perm is None:
            return buffers[buffer][:size].reshape(shape)
        return buffers[buffer][:size].reshape(tuple(shape[p] for p in perm)).transpose(
            np.argsort(perm))
    if kind == "part":  # a product written into its concat's buffer (runtime.memory.Part)
        buffer, size, shape, index, steps = args
        return part_view(buffers[buffer][:size].reshape(shape), index, steps)
    if kind == "reshape":
        name, shape = args
        return env[name].reshape(shape)
    raise ValueError(f"unknown binding {kind!r}")


def compile_graph(graph, name=None, donate=(), check_finite=False, parallel=None,
                  jit=None, background_compile=None, fast_math=False,
                  alias_inputs=False) -> Plan:
    """A Plan; for a graph with symbolic dimensions a runtime.polymorphic.PolymorphicPlan,
    which lowers one Plan per binding of the symbols."""
    if graph_is_symbolic(graph):
        from .polymorphic import PolymorphicPlan
        return PolymorphicPlan(graph, name, donate, check_finite, parallel, jit,
                               background_compile, fast_math, alias_inputs)
    return Plan(graph, name, donate, check_finite, parallel, jit, background_compile,
                fast_math, alias_inputs)

