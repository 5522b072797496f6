"""Code generation: a graph becomes one straight-line Python function over numpy arrays.

In the spirit of torch.fx's codegen, each node becomes a few readable lines. With the memory
plan (runtime.memory), computed values are written with numpy's `out=` into buffers that are
allocated once per plan (globals `buf3`, reached through precomputed views `t5`), so a call
allocates only its outputs and the results of ops without an `out=` kernel. Parameters and
optimiser state passed as donated inputs are updated in place.

`plan.source` is the generated code; `plan.profile(...)` times every node; `plan.run_checked`
(or `check_finite=True`) stops at the first non-finite value and names the op and the
user's line.
"""
from __future__ import annotations

import math
import time

import numpy as np
from scipy import special

from ir.errors import GraphcError
from ir.ops.registry import get_op
from ir.types import SHORT_NAMES
from passes.fusion import describe, fuse, fused_operand_kinds

from . import jit as jit_kernels
from . import collectives, threads, tiering
from .interpreter import bind_inputs
from .kernelgen import kernel_source
from .kernels import (CONSTANT_OPS, EMITTERS, INPLACE_SAFE, JIT_KERNELS, PROGRESS_AFTER, VIEW_OPS,
                      jit_emitter, ones, view_expression)
from .lowering import (batched_matmul, concat_by_copies, parallel_default,
                       products_laid_out_for_transpose, reshaped, reshapes_into_concat,
                       splittable, worker)
from .memory import check_fits, plan_memory


# A fused kernel runs on both cores from this size. Measured in whole training steps (same-
# process A/B) once parallel launches cost ~2 us (runtime.threads): 1 << 14 is 4% faster than
# 1 << 16 for tiny and 2.4% for small; 1 << 12 is no faster than 1 << 14, all-serial is 10%
# slower. Each parallel kernel costs more to compile the first time (~0.5 vs ~0.15 s).
FUSED_PARALLEL_MIN_ELEMENTS = 1 << 14


def _literal(value):
    """Python source for an attribute when it has an exact, readable literal form."""
    if value is None or isinstance(value, (bool, int, str)):
        return repr(value)
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    if isinstance(value, tuple) and all(_literal(v) is not None for v in value):
        return "(" + "".join(_literal(v) + ", " for v in value) + ")"
    return None


class Plan:
    """A compiled, callable graph: `plan(*inputs) -> list of output arrays`."""

    def __init__(self, graph, name: str | None = None, donate=(), check_finite=False,
                 parallel: bool | None = None, jit: bool | None = None,
                 background_compile: bool | None = None, fast_math: bool = False):
        self.graph = graph
        self.fast_math = fast_math  # generated kernels may reassociate (runtime.kernelgen)
        self.jit = jit_kernels.enabled() if jit is None else jit
        self.parallel = parallel_default() if parallel is None else parallel
        self._kernels = []  # module-level kernel functions for two-way split nodes
        self.name = name or graph.name
        self.donate = tuple(donate)
        self.check_finite = check_finite
        unknown = set(self.donate) - {n.attrs["name"] for n in graph.inputs}
        if unknown:
            raise GraphcError(f"cannot donate {sorted(unknown)}: not inputs of {self.name!r}")
        # the graph the kernels run: with numba, elementwise clusters become fused nodes
        self.kernel_graph = fuse(graph) if self.jit else graph
        self.memory_plan = plan_memory(self.kernel_graph, self.donate, self.jit)
        check_fits(self.memory_plan.stats, self.name)  # before _generate allocates the buffers
        self._donated_positions = [k for k, n in enumerate(graph.inputs)
                                   if n.attrs["name"] in self.donate]
        self._globals = {"np": np, "special": special, "_submit": worker().submit,
                         "_ones": ones, "_jit": jit_kernels, "_reshaped": reshaped,
                         "_collectives": collectives}
        self._steps = []  # (node, statements, result expression)
        self._solo_blas = None  # numpy's BLAS, kept single-threaded while the plan runs
        self.background = self.jit and (tiering.enabled() if background_compile is None
                                        else background_compile)
        self._pending = []  # (global name, kernel, spec, source) compiling in the background
        self._envs = []  # the namespaces of the compiled plan functions
        self._thread_count = None  # numba threads of the last call
        self._generate()
        if self._pending:
            tiering.submit([(source, spec) for _, _, spec, source in self._pending])
        self.source = self._render()
        self._fn = self._compile(self.source, "plan")
        self._checked_fn = None
        if check_finite:
            self._fn = self._checked_with_ranges()

    # ---- generation --------------------------------------------------------------------------
    def _generate(self):
        graph, mp, env = self.kernel_graph, self.memory_plan, self._globals
        names = {}
        for i, n in enumerate(graph.inputs):
            names[n] = f"in{i}"
        buffers = [np.empty(size, dtype) for dtype, size in mp.buffers]
        for k, buf in enumerate(buffers):
            env[f"buf{k}"] = buf
        self._buffers = buffers
        into_concat = reshapes_into_concat(graph, mp)
        laid_out = products_laid_out_for_transpose(graph, mp)
        counter = 0
        in_flight = set()  # allreduce_start nodes whose wait is still to come
        for n in graph.nodes:
            if n.op == "input":
                continue
            if n.op == "allreduce_start":
                in_flight.add(n)
            elif n.op == "allreduce_wait":
                in_flight.discard(n.inputs[0])
            if n in into_concat:  # its concat copies the reshape's input into place
                names[n] = names[n.inputs[0]]
                self._steps.append((n, [], names[n]))
                continue
            var = f"t{counter}"
            counter += 1
            storage = mp.storage[n]
            args = [names[i] for i in n.inputs]
            lines = []
            if n.op in CONSTANT_OPS:
                value = n.attrs["value"] if n.op == "constant" else \
                    get_op(n.op).impl(**n.attrs)
                value = np.asarray(value, dtype=n.dtype)
                value.setflags(write=False)
                env[var] = value
            elif n.op in VIEW_OPS:
                lines.append(f"{var} = {view_expression(n, args[0])}")
            elif storage.kind == "fallback":
                lines.append(f"{var} = {self._call(n, args, var)}")
            else:
                if storage.kind == "pool" and n in laid_out:
                    perm = laid_out[n]
                    env[var] = buffers[storage.buffer][:n.size].reshape(
                        tuple(n.shape[p] for p in perm)).transpose(np.argsort(perm))
                elif storage.kind == "pool":
                    env[var] = buffers[storage.buffer][:n.size].reshape(n.shape)
                elif storage.kind == "donated":
                    lines.append(f"{var} = {names[storage.donor]}")
                else:
                    lines.append(f"{var} = np.empty({n.shape!r}, {SHORT_NAMES[n.dtype]})")
                    env[SHORT_NAMES[n.dtype]] = n.dtype
                names_s = []
                for j, b in enumerate(storage.scratch):
                    env[f"{var}_s{j}"] = buffers[b][:n.size].reshape(n.shape)
                    names_s.append(f"{var}_s{j}")
                emit_jit = jit_emitter(n) if self.jit else None
                if n.op == "fused":
                    lines += self._fused_call(n, args, var)
                elif n.op == "concat" and any(i in into_concat for i in n.inputs):
                    lines += concat_by_copies(n, args, var, into_concat)
                elif emit_jit is not None:
                    lines += emit_jit(n, args, var)
                    jit_kernels.warm(JIT_KERNELS[n.op], n.dtype)
                    if n.op == "matmul":
                        self._bind_gemm()
                elif (self.parallel and splittable(n)) or (self.jit and batched_matmul(n)):
                    # batched matmuls reach this only where runtime.gemm is unavailable
                    lines += self._split_kernel(n, var, args, names_s)
                else:
                    lines += _emit(n, args, var, names_s)
                if in_flight and n.op in PROGRESS_AFTER:
                    lines.append("_collectives.progress()")
            names[n] = var
            self._steps.append((n, lines, var))
        self._names = names
        self._outputs = [names[o] for o in graph.outputs]
        # outputs that live in plan-owned memory must be copied before they escape
        self._copy_out = [mp.storage[mp.root[o]].kind in ("constant", "pool")
                          for o in graph.outputs]

    def _split_kernel(self, n, var, args, scratch):
        """The node's kernel as a function run on two halves of axis 0 at once: numpy's
        elementwise loops are single-threaded and release the GIL, so the second core works
        on the other half. Operands broadcast along axis 0 are passed whole."""
        params = ["dst"] + [f"a{i}" for i in range(len(args))] + \
                 [f"s{j}" for j in range(len(scratch))]
        body = _emit(n, params[1:1 + len(args)], "dst", params[1 + len(args):])
        fn = f"_kernel_{var}"
        self._kernels.append((n, f"def {fn}({', '.join(params)}):\n" +
                              "".join(f"    {line}\n" for line in body)))
        sliced = [True] + [i.ndim == n.ndim and i.shape[0] == n.shape[0] for i in n.inputs] \
            + [True] * len(scratch)
        h = n.shape[0] // 2
        names = [var] + args + scratch
        hi = ", ".join(f"{x}[{h}:]" if cut else x for x, cut in zip(names, sliced))
        lo = ", ".join(f"{x}[:{h}]" if cut else x for x, cut in zip(names, sliced))
        return [f"_half = _submit({fn}, {hi})", f"{fn}({lo})", "_half.result()"]

    def _fused_call(self, n, args, var):
        """One call of the cluster's numba kernel on 2-D views (rows, last axis)."""
        kinds = fused_operand_kinds(n)
        cols = n.shape[-1]
        rows = n.size // cols
        parallel = n.size >= FUSED_PARALLEL_MIN_ELEMENTS and rows >= 2
        source = kernel_source(n.attrs["program"], kinds, [i.type for i in n.inputs],
                               parallel, self.fast_math)
        fn = jit_kernels.load_generated(source)
        spec = jit_kernels.argument_spec(n, kinds)
        name = f"_fused_{var}"
        cached = tiering.compiled(source, spec)
        if self.background and not cached:
            self._globals[name] = tiering.numpy_kernel(n)  # until the kernel is compiled
            self._pending.append((name, fn, spec, source))
        else:
            jit_kernels.warm_generated(fn, spec)
            if not cached:
                tiering.mark_compiled(source, spec)
            self._globals[name] = fn
        shapes = {"full": (rows, cols), "row": (cols,), "col": (rows,), "scalar": (1,),
                  "block": n.shape[-2:]}
        operands = [self._reshaped_view(a, i.shape, shapes[k])
                    for a, k, i in zip(args, kinds, n.inputs)]
        out = self._reshaped_view(var, n.shape, (rows, cols))
        return [f"{name}({out}, {', '.join(operands)})"]

    def _bind_gemm(self):
        """Globals of runtime.gemm's kernels. Their blocks run on numba's threads, so numpy's
        BLAS must not start threads of its own inside them: the plan sets it to one thread
        while it runs (and back afterwards, for the rest of the program)."""
        if self._solo_blas is None:
            from . import gemm
            self._solo_blas = gemm.blas()
            self._globals.update(_gemm=gemm, _threads=gemm.blocks(),
                                 _sgemm=self._solo_blas.address(np.float32),
                                 _dgemm=self._solo_blas.address(np.float64))

    def _reshaped_view(self, name, shape, target):
        """Source for array `name` viewed with shape `target`; plan-owned arrays (pool
        buffers, constants) are reshaped once, when the plan is built, not on every call."""
        if tuple(shape) == tuple(target):
            return name
        if name in self._globals:
            view = f"{name}_as_{'x'.join(str(d) for d in target)}"
            self._globals[view] = self._globals[name].reshape(target)
            return view
        return f"{name}.reshape({tuple(target)!r})"

    def _call(self, n, args, var):
        fn_name = f"op_{n.op}"
        self._globals[fn_name] = get_op(n.op).impl
        kwargs = []
        for key, value in n.attrs.items():
            lit = _literal(value)
            if lit is None:
                lit = f"{var}_{key}"
                self._globals[lit] = value
            kwargs.append(f"{key}={lit}")
        return f"{fn_name}({', '.join(args + kwargs)})"

    def _render(self, instrument=None) -> str:
        params = ", ".join(f"in{i}" for i in range(len(self.kernel_graph.inputs)))
        lines, line_node = [], {}
        for node, text in self._kernels:
            for line in text.rstrip("\n").split("\n"):
                lines.append(line)
                line_node[len(lines)] = node
        lines.append(f"def plan({params}):")
        for k, (node, stmts, var) in enumerate(self._steps):
            if instrument == "profile" and stmts:
                lines.append("    _t = _clock()")
            for stmt in stmts:
                lines.append(f"    {stmt}")
                line_node[len(lines)] = node
            if instrument == "profile" and stmts:
                lines.append(f"    _times[{k}] += _clock() - _t")
            if instrument == "check":
                operands = "".join(f", {self._names[i]}" for i in node.inputs)
                lines.append(f"    _check({k}, {var}{operands})")
        outs = [f"{v}.copy()" if copy else v for v, copy in zip(self._outputs, self._copy_out)]
        lines.append(f"    return ({', '.join(outs)}{',' if len(outs) == 1 else ''})")
        if instrument is None:
            self._line_node = line_node
        return "\n".join(lines) + "\n"

    def _failed_node(self, tb):
        """The node whose generated line raised, from the traceback of the plan's code."""
        filename = f"<graphc plan {self.name}>"
        node = None
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == filename:
                node = self._line_node.get(tb.tb_lineno, node)
            tb = tb.tb_next
        return node

    def _compile(self, source, label, extra=None):
        env = dict(self._globals)
        env.update(extra or {})
        self._envs.append(env)
        exec(compile(source, f"<graphc {label} {self.name}>", "exec"), env)
        fn = env["plan"]
        return fn if self._solo_blas is None else _with_solo_blas(fn, self._solo_blas)

    # ---- tiered kernels (runtime.tiering) -----------------------------------------------------
    @property
    def kernels_pending(self) -> int:
        """Generated kernels still running as numpy code while numba compiles them."""
        return len(self._pending)

    def wait_for_kernels(self) -> None:
        """Block until the background compiler is done, then use its kernels."""
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
    def __call__(self, *args, **kwargs):
        if self._pending:
            self._swap_in_kernels()
        if not self.jit:
            return self._run(args, kwargs)
        # the background compiler has one core, the plan keeps to the other; otherwise the
        # plan takes the CPUs that other processes leave free (runtime.threads.plan_threads)
        count = 1 if self._pending else threads.plan_threads()
        self._thread_count = count
        # runtime.gemm's block count stays as built: one block or two gives different float
        # bits (OpenBLAS sums in another order), so only the threads running them change
        with threads.numba_threads(count):
            return self._run(args, kwargs)

    def _run(self, args, kwargs):
        values = bind_inputs(self.graph, args, kwargs)
        for k in self._donated_positions:
            if not values[k].flags.c_contiguous or not values[k].flags.writeable:
                values[k] = np.array(values[k])  # kernels write donated arrays through views
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
            operands = ", ".join(str(i.type) for i in node.inputs)
            raise GraphcError(f"{describe(node)}({operands}) failed while running: {exc}",
                              node.locs) from None
        return [o if type(o) is np.ndarray else np.asarray(o, dtype=n.dtype)
                for o, n in zip(outs, self.graph.outputs)]

    @property
    def memory(self) -> dict:
        """Bytes by category, known from the plan alone before any call."""
        return dict(self.memory_plan.stats)

    @property
    def peak_intermediate_bytes(self) -> int:
        return self.memory_plan.stats["peak_intermediate"]

    def flops(self) -> float:
        total = 0.0
        for n in self.graph.nodes:
            op = get_op(n.op)
            if op.flops is not None:
                total += op.flops([i.type for i in n.inputs], n.type, **n.attrs)
        return total

    def run_checked(self, *args, **kwargs):
        """Run with a finite-value check after every node (the NaN/Inf guard)."""
        if self._checked_fn is None:
            self._checked_fn = self._checked_with_ranges()
        values = bind_inputs(self.graph, args, kwargs)
        with np.errstate(all="ignore"):  # the guard reports non-finite values itself
            outs = self._checked_fn(*values)
        return [np.asarray(o) for o in outs]

    def _checked_with_ranges(self):
        """The plan with a check after every node that raises at the first node that made a
        NaN (where no operand had one) or an Inf (where the operands were finite), naming it,
        its operands' ranges and the user's line. Elementwise ops are judged element by
        element; others by whether any operand held a NaN/Inf at all. The masks of each
        node's non-finite values are kept when it is computed, because a later op may
        overwrite it in place. A constant (the attention mask's -inf) is never blamed; if
        the outputs are non-finite and no node was blamed, the first non-finite value is."""
        steps = self._steps
        position = {id(step[0]): k for k, step in enumerate(steps)}
        masks = {}  # step -> (NaN mask, Inf mask) of its value, None where there are none

        def masks_of(value):
            arr = np.asarray(value)
            if arr.dtype.kind not in "fc":
                return None, None
            nan, inf = np.isnan(arr), np.isinf(arr)
            return (nan if nan.any() else None), (inf if inf.any() else None)

        def operand_masks(node, operands, arr):
            for inp, v in zip(node.inputs, operands):
                k = position.get(id(inp))
                if k is not None:
                    yield masks.get(k, (None, None))
                elif np.may_share_memory(np.asarray(v), arr):
                    yield None  # an input overwritten by this op: unknown
                else:
                    yield masks_of(v)

        def elementwise(node):
            return node.op in INPLACE_SAFE and not (
                node.op == "fused" and "softmax" in node.attrs.get("program", ""))

        def produced(node, arr, nan, inf, operands):
            known = list(operand_masks(node, operands, arr))
            if any(m is None for m in known):
                return False  # cannot tell: leave it to the outputs' check
            if elementwise(node):
                try:
                    seen_nan = np.zeros(arr.shape, bool)
                    seen_bad = np.zeros(arr.shape, bool)
                    for m_nan, m_inf in known:
                        if m_nan is not None:
                            seen_nan |= np.broadcast_to(m_nan, arr.shape)
                            seen_bad |= np.broadcast_to(m_nan, arr.shape)
                        if m_inf is not None:
                            seen_bad |= np.broadcast_to(m_inf, arr.shape)
                except ValueError:
                    pass  # operands that do not broadcast to the result: judge as a whole
                else:
                    return bool((nan is not None and (nan & ~seen_nan).any()) or
                                (inf is not None and (inf & ~seen_bad).any()))
            if nan is not None and not any(m_nan is not None for m_nan, _ in known):
                return True
            return inf is not None and all(a is None and b is None for a, b in known)

        def report(node, arr, operands):
            ranges = []
            for i, v in zip(node.inputs, operands):
                v = np.asarray(v)
                nans = int(np.isnan(v).sum()) if v.dtype.kind == "f" else 0
                if v.dtype.kind in "fiu" and v.size > nans:
                    ranges.append(f"{i.type} in [{np.nanmin(v):.4g}, {np.nanmax(v):.4g}]"
                                  + (f" and {nans} NaN" if nans else ""))
                else:
                    ranges.append(str(i.type) + (" all NaN" if nans else ""))
            bad = int(arr.size - np.isfinite(arr).sum())
            raise GraphcError(f"non-finite value: {bad} of {arr.size} elements of "
                              f"{describe(node)} -> {node.type}; operands: "
                              f"{'; '.join(ranges)}", node.locs)

        def check(k, value, *operands):
            arr = np.asarray(value)
            node = steps[k][0]
            nan, inf = masks_of(arr)
            if nan is None and inf is None:
                return
            masks[k] = (nan, inf)
            if node.op not in CONSTANT_OPS and produced(node, arr, nan, inf, operands):
                report(node, arr, operands)

        checked = self._compile(self._render("check"), "checked", {"_check": check})

        def run(*values):
            masks.clear()
            outs = checked(*values)
            if any(np.asarray(o).dtype.kind in "fc" and not np.isfinite(o).all() for o in outs):
                for k, step in enumerate(steps):  # none was blamed: name the first one
                    node = step[0]
                    if k in masks and node.op not in CONSTANT_OPS:
                        count = sum(int(m.sum()) for m in masks[k] if m is not None)
                        raise GraphcError(f"non-finite value: {count} elements of "
                                          f"{describe(node)} -> {node.type} are NaN or Inf "
                                          "(the first op whose result is; its operands held "
                                          "NaN or Inf too)", node.locs)
                raise GraphcError(f"non-finite value in the outputs of plan {self.name!r}: "
                                  "it came from an input or a constant")
            return outs
        return run

    def profile(self, *args, repeat: int = 3, file=None, top: int = 25, **kwargs):
        """Time every node over `repeat` calls; print a table sorted by time; return rows."""
        times = [0.0] * len(self._steps)
        fn = self._compile(self._render("profile"), "profiled",
                           {"_clock": time.perf_counter, "_times": times})
        values = bind_inputs(self.graph, args, kwargs)
        fn(*values)  # warm-up
        for k in range(len(times)):
            times[k] = 0.0
        for _ in range(repeat):
            fn(*values)
        total = sum(times) or 1e-12
        rows = []
        for (node, stmts, _), t in zip(self._steps, times):
            if not stmts:
                continue
            op = get_op(node.op)
            flops = op.flops([i.type for i in node.inputs], node.type, **node.attrs) \
                if op.flops else 0.0
            sec = t / repeat
            rows.append({
                "op": describe(node), "type": str(node.type),
                "operands": ", ".join(str(i.type) for i in node.inputs),
                "where": ", ".join(f"{f}:{ln}" for f, ln in node.locs[:2]),
                "ms": sec * 1e3, "share": t / total,
                "gflops": flops / sec / 1e9 if node.op in ("matmul", "einsum") and sec else None,
            })
        rows.sort(key=lambda r: -r["ms"])
        if file is not False:
            print(format_profile(rows, total / repeat, top), file=file)
        return rows


def format_profile(rows, total_seconds, top=25) -> str:
    lines = [f"{'op':<12} {'result':<18} {'ms':>8} {'share':>6} {'GFLOP/s':>8}  where",
             "-" * 78]
    for r in rows[:top]:
        gf = f"{r['gflops']:.1f}" if r["gflops"] else ""
        lines.append(f"{r['op']:<12} {r['type']:<18} {r['ms']:>8.3f} {r['share']:>6.1%} "
                     f"{gf:>8}  {r['where']}")
    lines.append(f"total {total_seconds * 1e3:.2f} ms over {len(rows)} kernels")
    return "\n".join(lines)


def _with_solo_blas(fn, blas):
    def run(*args):
        before = blas.threads()
        blas.set_threads(1)
        try:
            return fn(*args)
        finally:
            blas.set_threads(before)
    return run


def compile_graph(graph, name=None, donate=(), check_finite=False, parallel=None,
                  jit=None, background_compile=None, fast_math=False) -> Plan:
    return Plan(graph, name, donate, check_finite, parallel, jit, background_compile,
                fast_math)


def _emit(n, args, dst, scratch):
    return EMITTERS[n.op](n, args, dst, scratch) if scratch else EMITTERS[n.op](n, args, dst)
