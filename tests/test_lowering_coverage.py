"""Every op in the registry has a lowering record (runtime/op_lowering.py), and the records
agree with what the rest of the project says about the same ops."""
import graphc  # noqa: F401  (registers every op)
from ir.ops.cluster import PROGRAM_OPS
from ir.ops.registry import REGISTRY, OpDef
from passes.fold import computes_constant
from runtime import jit
from runtime.op_lowering import LOWERINGS, Lowering


def uncovered(registry) -> list:
    """Ops without a record, and records of ops run by their library implementation that do
    not say why."""
    missing = [name for name in registry if name not in LOWERINGS]
    unexplained = [r.op for r in LOWERINGS.values()
                   if r.form == "kernel" and r.emit is None and not r.reason]
    return sorted(missing + unexplained)


def test_every_registered_op_has_a_lowering_record():
    assert uncovered(REGISTRY) == [], "ops without a lowering record in runtime/op_lowering.py"


def test_an_op_without_a_record_is_named():
    fake = dict(REGISTRY, frobnicate=OpDef("frobnicate", None, None))
    assert uncovered(fake) == ["frobnicate"]


def test_library_ops_say_why(monkeypatch):
    monkeypatch.setitem(LOWERINGS, "one_hot", Lowering("one_hot"))
    assert uncovered(REGISTRY) == ["one_hot"]


def test_records_name_only_registered_ops():
    assert set(LOWERINGS) <= set(REGISTRY)


def test_constant_ops_are_the_ones_fold_knows_from_the_op_definitions():
    constant = {op for op, r in LOWERINGS.items() if r.form == "constant"}
    assert constant == {name for name, op in REGISTRY.items() if computes_constant(op)}
    assert constant == {"constant", "full", "arange", "tri"}


def test_fused_expressions_cover_what_a_fused_program_may_hold():
    """ir/ops/cluster.py accepts a program only with ops every backend computes alike; each of
    them (but the softmax that may end a cluster) needs its scalar expression here."""
    with_expression = {op for op, r in LOWERINGS.items() if r.scalar_expr is not None}
    assert with_expression == set(PROGRAM_OPS) - {"softmax"}
    for op in PROGRAM_OPS:
        attrs = set(LOWERINGS[op].program_attrs)
        assert attrs == set(PROGRAM_OPS[op]), op


def test_numba_emitters_and_kernels_pair_up():
    with_jit = [r for r in LOWERINGS.values() if r.jit_emit is not None]
    assert all(r.jit_kernel for r in with_jit)
    assert {r.jit_kernel for r in with_jit} == set(jit.FIXED_KERNELS)


def test_views_have_a_view_expression_and_kernels_an_emitter_or_reason():
    for r in LOWERINGS.values():
        assert (r.view is not None) == (r.form == "view"), r.op
        if r.form in ("view", "constant", "input", "cluster"):
            assert r.emit is None and r.jit_emit is None, r.op
        assert r.split in (None, "elementwise", "rows", "axis"), r.op
        if r.inplace_safe:
            assert r.split == "elementwise", r.op
