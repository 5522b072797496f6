"""Issue 12 ("Trust"), items 10-15: files graphc reads or writes (checkpoints, training text,
IR text/JSON, fused programs, dump output) fail with one clear line, never a traceback, a huge
allocation or a followed symlink."""
import io
import json
import os
import re
import tracemalloc
import zipfile
from dataclasses import asdict

import numpy as np
import pytest

import graphc as gc
from graphc import checkpoint
from graphc.cli import main
from graphc.models.gpt import GPT, GPTConfig
from graphc.train import TrainConfig
from graphc.trainer import _jsonable as _jsonable_state
from ir.errors import GraphcError
from ir.parser import parse
from ir.serialize import loads


def error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("graphc: error: ")
    return err[0]


class PeakMemory:
    """Peak bytes numpy and Python allocated inside the block (numpy reports to tracemalloc)."""

    def __enter__(self):
        tracemalloc.start()
        return self

    def __exit__(self, *exc):
        self.peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


# ---- item 10: dump --stats without materialising constants ---------------------------------
FULL_IR = """graph g() -> (%0)
  %0:f32[100000,100000] = full {shape=(100000,100000), value=1.0, dtype=f32}
  return %0
"""


def test_dump_stats_of_a_huge_constant_allocates_nothing(tmp_path, capsys):
    path = tmp_path / "full.ir"
    path.write_text(FULL_IR)
    with PeakMemory() as mem:
        graph = parse(FULL_IR)
        assert main(["dump", str(path), "--stats"]) == 0
    out = capsys.readouterr().out
    assert graph.outputs[0].shape == (100000, 100000)
    assert out.startswith("graph g: 1 nodes (1 before passes), 0 parameters\nFLOPs per call: 0")
    assert "full " in out
    assert mem.peak < 64 << 20, mem.peak  # was 37 GiB (np.full while building the plan)


def test_dump_stats_match_the_compiled_plan():
    from graphc.dump import load_target, plan_statistics
    from passes.manager import run_pipeline
    from runtime.codegen import compile_graph
    graph = run_pipeline(load_target("mlp", grad=True), "default").graph
    plan = compile_graph(graph)
    flops, memory = plan_statistics(graph)
    assert flops == plan.flops() > 0
    assert memory == plan.memory and memory["peak_intermediate"] > 0


# ---- item 15: dump -o does not follow a planted symlink -------------------------------------
def test_dump_output_does_not_follow_a_planted_tmp_symlink(tmp_path, capsys):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "g.txt"
    os.symlink(victim, str(out) + ".tmp")
    assert main(["dump", "mlp", "-o", str(out)]) == 0
    assert victim.read_text() == "precious"
    assert out.read_text().startswith("graph mlp_loss(")
    assert not out.is_symlink()
    assert os.stat(out).st_mode & 0o777 == 0o666 & ~_umask()
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert leftovers == ["g.txt", "g.txt.tmp", "victim.txt"]  # no temporary file left behind


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---- item 14: nesting depth -----------------------------------------------------------------
def test_deeply_nested_ir_attribute_is_a_clear_error():
    text = ("graph g(%0:f32[2] x) -> (%1)\n  %1:f32[2] = neg %0 {a=" + "(" * 20000
            + ")" * 20000 + "}\n  return %1\n")
    with pytest.raises(GraphcError, match=r"^IR line 2, column \d+: attribute value nested "
                                          r"more than 32 levels deep"):
        parse(text)
    # ordinary nesting still parses
    g = parse("graph g(%0:f32[2,3] x) -> (%1)\n"
              "  %1:f32[3,2] = transpose %0 {perm=(1, 0)}\n  return %1\n")
    assert g.outputs[0].attrs["perm"] == (1, 0)


def test_a_deeply_nested_type_in_ir_text_is_a_clear_error(tmp_path, capsys):
    """A type of nested parentheses, `%1:((((...f32[2]...))))`, recursed once per level in
    the reader: a RecursionError traceback from `graphc dump`, exit 1."""
    text = ("graph g(%0:f32[2] x) -> (%1)\n  %1:" + "(" * 5000 + "f32[2]" + ")" * 5000
            + " = neg %0\n  return %1\n")
    message = ("IR line 2, column 38: a type nested more than 32 levels deep, found '"
               + "(" * 12 + "'")
    with pytest.raises(GraphcError) as info:
        parse(text)
    assert str(info.value) == message
    path = tmp_path / "deep.ir"
    path.write_text(text)
    assert main(["dump", str(path)]) == 2
    assert capsys.readouterr().err == f"graphc: error: dump: {path}: {message}\n"
    # a control-flow node's tuple type still reads; one tuple in another is no node's type
    with pytest.raises(GraphcError, match=r"cond gives \(f32\[2\]\), but the line says "
                                          r"\(\(f32\[2\]\)\)"):
        parse("graph g(%0:bool[] p, %1:f32[2] x) -> (%3)\n"
              "  %2:((f32[2])) = cond %0, %1 {branches=({\n"
              "    graph a(%0:f32[2] x) -> (%0)\n      return %0\n  }, {\n"
              "    graph b(%0:f32[2] x) -> (%0)\n      return %0\n  })}\n"
              "  %3:f32[2] = tuple_get %2 {index=0}\n  return %3\n")


def _nested_conds(levels, indent=""):
    """IR text of `levels` conds, each in the false branch of the one outside it."""
    if levels == 0:
        return [indent + "graph b(%0:f32[2] a) -> (%1)", indent + "  %1:f32[2] = neg %0",
                indent + "  return %1"]
    leaf = _nested_conds(0, indent + "    ")
    return ([indent + "graph b(%0:f32[2] a) -> (%3)", indent + "  %1:f32[] = constant 1.0",
             indent + "  %2:bool[] = gt %1, %1",
             indent + "  %4:(f32[2]) = cond %2, %0 {branches=({"]
            + _nested_conds(levels - 1, indent + "    ") + [indent + "  }, {"] + leaf
            + [indent + "  })}", indent + "  %3:f32[2] = tuple_get %4 {index=0}",
               indent + "  return %3"])


def test_regions_nested_past_the_bound_say_what_counts():
    """17 nested conds were refused as 'regions nested more than 32 levels deep': a cond's
    branches are a tuple, which counts as a level too, and the message now says so."""
    assert len(parse("\n".join(_nested_conds(15))).nodes) == 5
    with pytest.raises(GraphcError, match=r"regions nested more than 32 levels deep, counting "
                                          r"a tuple of regions \(a cond's branches\) as a "
                                          r"level too"):
        parse("\n".join(_nested_conds(17)))


def _nested_scans(levels):
    """A function of `levels` scans, each in the body of the one outside it."""
    def f(x):
        if levels == 0:
            return x + 1.0
        return gc.scan(lambda c, _: (_nested_scans(levels - 1)(c), c), x, None, length=2)[0]
    return f


def test_regions_nested_as_the_text_reader_takes_them_read_back_from_json(tmp_path, capsys):
    """Review r11: the JSON reader's bound (64 levels of JSON) refused 12 nested scans (five
    levels each), which `graphc dump --format json` wrote and the text reader, taking 32,
    read back: 'IR JSON: line 271: nested more than 64 levels deep', exit 2."""
    from ir.printer import format_graph
    from ir.serialize import dumps
    deepest = [gc.trace(_nested_scans(32), gc.spec((3,))),  # (the text reader's bound)
               gc.trace(_nested_conds_fn(16), gc.spec((), "bool"), gc.spec((3,)))]
    for graph in deepest:
        text = format_graph(graph, locations=True, max_inline=None)
        assert format_graph(parse(text), locations=True, max_inline=None) == text
        assert format_graph(loads(dumps(graph)), locations=True, max_inline=None) == text
    path = tmp_path / "deep.json"
    path.write_text(dumps(gc.trace(_nested_scans(12), gc.spec((3,)))))
    assert main(["dump", str(path), "-O0"]) == 0
    assert capsys.readouterr().out.count("= scan ") == 12
    # (38 nested scans: the writer refuses them, tests/test_ir_nesting_and_specials.py)
    assert loads(dumps(gc.trace(_nested_scans(37), gc.spec((3,))))) is not None


def _nested_conds_fn(levels):
    """A function of `levels` conds, each in the false branch of the one outside it."""
    def f(p, x):
        if levels == 0:
            return -x
        return gc.cond(p, lambda a: a * 2.0, lambda a: _nested_conds_fn(levels - 1)(p, a), x)
    return f


def test_deeply_nested_json_is_a_clear_error():
    with pytest.raises(GraphcError, match=r"^IR JSON: line 1: nested more than 192 levels "
                                          r"deep$"):
        loads("[" * 100000 + "]" * 100000)
    # brackets inside strings do not count
    with pytest.raises(GraphcError, match=r"\$\.format: expected 'graphc-ir'"):
        loads(json.dumps({"name": "[" * 1000, "format": "x"}))


# ---- item 11: hostile or damaged checkpoints ------------------------------------------------
VOCAB = "".join(sorted(set("to be or not that is the question\n")))
SMALL = dict(vocab_size=len(VOCAB), n_layer=1, n_head=2, n_embd=16, block_size=8, batch_size=4)
FAST = ["--config", "tiny", "--n-layer", "1", "--n-embd", "16", "--n-head", "2",
        "--block-size", "8", "--batch-size", "4", "--eval-iters", "1", "--no-progress",
        "--sample-tokens", "0"]


def good_checkpoint(path, model_changes=None, **meta_changes):
    cfg = GPTConfig(**SMALL)
    arrays = {}
    for n, p in GPT(cfg).named_parameters():
        arrays[f"param/{n}"] = p.data
        arrays[f"adam_m/{n}"] = np.zeros_like(p.data)
        arrays[f"adam_v/{n}"] = np.zeros_like(p.data)
    meta = {"model": {**cfg.to_dict(), **(model_changes or {})},
            "train": asdict(TrainConfig(steps=3, eval_every=1, eval_iters=1)), "vocab": VOCAB,
            "step": 1, "rng": _jsonable_state(np.random.default_rng(0).bit_generator.state),
            "history": [[1, 3.5]], "val_history": [[0, 3.6]]}
    meta.update(meta_changes)
    for key in [k for k, v in meta.items() if v is DROP]:
        del meta[key]
    checkpoint.save(str(path), arrays, meta)
    return str(path)


DROP = object()


def npy(shape, dtype, data=b""):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": np.lib.format.dtype_to_descr(
        np.dtype(dtype)), "fortran_order": False, "shape": shape})
    return buf.getvalue() + data


def rewrite(path, members):
    """Replace (or add) zip members of a checkpoint: array name -> raw .npy bytes."""
    with zipfile.ZipFile(path) as zf:
        old = {i.filename: zf.read(i) for i in zf.infolist()}
    old.update({k + ".npy": v for k, v in members.items()})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, data in old.items():
            zf.writestr(name, data)


def sample(path):
    return main(["sample", "--checkpoint", path, "--prompt", "to", "--tokens", "3"])


def test_a_good_checkpoint_samples(tmp_path, capsys):
    assert sample(good_checkpoint(tmp_path / "c.npz")) == 0
    assert capsys.readouterr().out.startswith("to")
    arrays, meta = checkpoint.load(str(tmp_path / "c.npz"), optimizer=False)
    assert sorted(arrays) == sorted(f"param/{n}" for n in checkpoint.parameter_shapes(
        GPTConfig(**SMALL)))


def test_parameter_shapes_match_the_model():
    for bias in (True, False):
        for tie in (True, False):
            cfg = GPTConfig(**{**SMALL, "n_layer": 2}, bias=bias, tie_weights=tie)
            assert checkpoint.parameter_shapes(cfg) == {
                n: p.data.shape for n, p in GPT(cfg).named_parameters()}


@pytest.mark.parametrize("change, message", [
    (dict(model=DROP), "header field model is missing"),
    (dict(vocab=DROP), "header field vocab is missing"),
    (dict(model={"n_embd": "16"}), "header field model.n_embd has a bad value '16'"),
    (dict(model={"n_embd": 15}), "n_embd (15) must be a multiple of n_head (2)"),
    # dropped by GPTConfig.from_dict: sampled as a model without the setting
    (dict(model={"rotary": True}), "header field model.rotary is not a setting of graphc's GPT"),
    # every one named, sorted (the first alone was said)
    (dict(model={"rotary": True, "alibi": 1, "moe_experts": 8}), "header fields model.alibi, "
     "model.moe_experts, model.rotary are not settings of graphc's GPT (a checkpoint written "
     "by another graphc version, or a damaged header): the model it describes cannot be "
     "built"),
    (dict(step=-3), "header field step must be an integer from 0 to 2**62"),
    (dict(vocab="ab"), "header field vocab must hold 14 distinct characters"),
    (dict(history=[[1, "x"]]), "header field history[0] must be [step from 0 to 2**62, "
     "finite loss]"),
    # passed, then every resume crashed (OverflowError) plotting the history
    (dict(history=[[10 ** 400, 1.0]]), "header field history[0] must be [step from 0"),
    # a traceback: an unhashable list looked up in the precisions
    (dict(train={"precision": ["fp16"]}), "header field train.precision has a bad value "
     "['fp16']"),
    # a resumed run took a NaN validation loss for divergence and could never save again
    (dict(val_history=[[2, float("nan")]]),
     "header field val_history[0] must be [step from 0 to 2**62, finite loss], got [2, nan]"),
    # taken as given on resume: a negative learning rate ascends the loss
    (dict(train={"lr": -0.001}), "header field train.lr must be positive, got -0.001"),
    (dict(train={"beta2": 1.0}), "header field train.beta2 must be in [0, 1), got 1.0"),
    (dict(train={"grad_clip": -1.0}), "header field train.grad_clip must be non-negative"),
    (dict(train={"decay_steps": 0}), "header field train.decay_steps must be positive, got 0"),
    (dict(rng={"bit_generator": "PCG64", "state": "x"}), "header field rng is not a PCG64"),
    (dict(train={"eval_every": 0}), "header field train.eval_every must be positive"),
])
def test_bad_checkpoint_headers(tmp_path, capsys, change, message):
    if isinstance(change.get("model"), dict):
        path = good_checkpoint(tmp_path / "c.npz", model_changes=change["model"])
    else:
        path = good_checkpoint(tmp_path / "c.npz", **change)
    assert sample(path) == 2
    line = error_line(capsys)
    assert path in line and message in line, line


def test_bad_rng_and_negative_step_are_refused_on_resume(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("to be or not that is the question\n" * 20)
    out = tmp_path / "run"
    path = good_checkpoint(out / "checkpoint.npz", rng={"bit_generator": "PCG64",
                                                       "state": {"state": "x", "inc": 1}})
    before = open(path, "rb").read()
    args = ["train", *FAST, "--data", str(text), "--out", str(out), "--resume"]
    assert main(args) == 2
    assert "rng is not a PCG64 generator state" in error_line(capsys)
    good_checkpoint(out / "checkpoint.npz", step=-1)
    assert main(args) == 2
    assert "step must be an integer from 0 to 2**62" in error_line(capsys)
    good_checkpoint(out / "checkpoint.npz")
    assert main(args) == 0  # the valid one resumes (steps=3 from step 1)
    assert before != open(path, "rb").read()


def test_huge_model_in_header_is_refused_before_building(tmp_path, capsys):
    path = good_checkpoint(tmp_path / "c.npz", model_changes={"n_embd": 300000})
    with PeakMemory() as mem:
        assert sample(path) == 2
    assert "param/wte.weight is float32[14, 16], the model in its header needs " \
           "float32[14, 300000]" in error_line(capsys)
    assert mem.peak < 32 << 20  # was: GPT(n_embd=300000) built first (2 TiB)
    path = good_checkpoint(tmp_path / "d.npz", model_changes={"n_layer": 10 ** 9})
    assert sample(path) == 2
    assert "header declares 1000000000 layers" in error_line(capsys)


def test_declared_array_size_is_checked_against_the_file(tmp_path, capsys):
    path = good_checkpoint(tmp_path / "c.npz")
    cfg = GPTConfig(**SMALL)
    rewrite(path, {"param/wpe.weight": npy((8, 16), "float32", b"\0" * 12)})  # truncated data
    with PeakMemory() as mem:
        assert sample(path) == 2
    assert "param/wpe.weight declares 512 bytes of data but holds 12" in error_line(capsys)
    # an extra member that claims 10^12 elements (and a big real one) is never read
    path = good_checkpoint(tmp_path / "d.npz")
    rewrite(path, {"junk": npy((10 ** 12,), "float64", b"\0" * 64),
                   "big": npy((40 << 20,), "uint8", b"\0" * (40 << 20))})
    with PeakMemory() as mem:
        arrays, meta = checkpoint.load(path)
    assert mem.peak < 8 << 20, mem.peak
    assert set(arrays) == {f"{p}/{n}" for p in ("param", "adam_m", "adam_v")
                           for n in checkpoint.parameter_shapes(cfg)}
    assert sample(path) == 0


def test_non_finite_weights_are_refused(tmp_path, capsys):
    path = good_checkpoint(tmp_path / "c.npz")
    bad = np.ones((8, 16), np.float32)
    bad[3, 4] = np.nan
    rewrite(path, {"param/wpe.weight": npy((8, 16), "float32", bad.tobytes())})
    assert sample(path) == 2
    line = error_line(capsys)
    assert path in line and "param/wpe.weight holds non-finite values" in line


def test_compressed_members_are_refused(tmp_path, capsys):
    path = good_checkpoint(tmp_path / "c.npz")
    with zipfile.ZipFile(path) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    assert sample(path) == 2
    assert "is compressed" in error_line(capsys)


def test_a_member_stored_twice_is_refused_not_read_either_way(tmp_path, capsys):
    # a zip may hold two members of one name (an altered or badly merged file): numpy, and
    # graphc before, read the last one silently, another zip reader reads the first
    path = good_checkpoint(tmp_path / "c.npz")
    other = np.full((8, 16), 0.5, np.float32)
    with zipfile.ZipFile(path, "a") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        zf.writestr("param/wpe.weight.npy", npy((8, 16), "float32", other.tobytes()))
    with zipfile.ZipFile(path) as zf:  # (the file does hold both)
        assert [i.filename for i in zf.infolist()].count("param/wpe.weight.npy") == 2
    for read in (checkpoint.load, checkpoint.load_saved):
        with pytest.raises(checkpoint.CheckpointError) as info:
            read(path)
        assert str(info.value) == (f"checkpoint {path!r} holds two members named "
                                   "'param/wpe.weight.npy' (an altered or damaged file: which "
                                   "of them is meant cannot be told)")
    assert sample(path) == 2
    assert "holds two members named 'param/wpe.weight.npy'" in error_line(capsys)


def test_one_array_under_two_member_names_is_refused(tmp_path, capsys):
    # NAME beside NAME.npy is one array stored twice for numpy (np.load(...)[NAME] reads the
    # bare NAME, its .files lists NAME twice), while graphc read NAME.npy and passed the other
    # over: which weights loaded depended on the reader
    path = good_checkpoint(tmp_path / "c.npz")
    other = np.full((8, 16), 0.5, np.float32)
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("param/wpe.weight", npy((8, 16), "float32", other.tobytes()))
    assert np.load(path)["param/wpe.weight"].mean() == 0.5  # (numpy's pick)
    for read in (checkpoint.load, checkpoint.load_saved):
        with pytest.raises(checkpoint.CheckpointError) as info:
            read(path)
        assert str(info.value) == (f"checkpoint {path!r} holds the array 'param/wpe.weight' "
                                   "as two members, 'param/wpe.weight.npy' and "
                                   "'param/wpe.weight' (an altered or damaged file: which of "
                                   "them is meant cannot be told)")
    assert sample(path) == 2
    assert "holds the array 'param/wpe.weight' as two members" in error_line(capsys)


# ---- item 13: fused programs read from IR ---------------------------------------------------
def fused_ir(program, shapes=((3, 4),), out="f32[3,4]", dtype="f32"):
    inputs = ", ".join(f"%{i}:{dtype}[{','.join(map(str, s))}] x{i}" for i, s in
                       enumerate(shapes))
    operands = ", ".join(f"%{i}" for i in range(len(shapes)))
    k = len(shapes)
    return (f"graph g({inputs}) -> (%{k})\n  %{k}:{out} = fused {operands} "
            f"{{program=\"{program}\"}}\n  return %{k}\n")


@pytest.mark.parametrize("program, message", [
    ("v0 = softmax(a0, axis=0)", "softmax over axis 0; fused kernels normalise the last axis"),
    ("v0 = gelu(a0, approximate=none)", "approximate=none is not supported by the fused "
                                        "kernels (only tanh)"),
    ("v0 = matmul(a0, a0)", "matmul cannot be part of a fused kernel"),
    ("v0 = softmax(a0, axis=1); v1 = exp(v0)", "softmax may only be the last instruction"),
    ("v0 = exp(a0, base=2)", "takes attributes none, got ['base']"),
    ("v0 = cast(a0, dtype=i64); v1 = cast(v0, dtype=f32)", "cast gives int64"),
])
def test_fused_programs_the_kernels_would_miscompile_are_rejected(program, message):
    with pytest.raises(GraphcError) as info:
        parse(fused_ir(program))
    assert str(info.value).startswith("IR line 2, column ") and message in str(info.value)


def test_fused_operand_the_kernel_cannot_read_is_rejected():
    with pytest.raises(GraphcError, match=r"fused operand a1 of shape \(2, 1, 4\) cannot be "
                                          r"read elementwise against the result's \(2, 3, 4\)"):
        parse(fused_ir("v0 = add(a0, a1)", ((2, 3, 4), (2, 1, 4)), "f32[2,3,4]"))


_SAFE_BINARY = ("add", "sub", "mul", "maximum", "minimum")
_SAFE_UNARY = ("neg", "tanh", "abs", "relu", "gelu")
_POSITIVE_UNARY = ("exp", "log", "sqrt", "rsqrt")  # applied to operands (all in [0.5, 2])
_COMPARE = ("lt", "le", "gt", "ge", "eq", "ne")


def random_fused(seed):
    """(IR text, input arrays) of one fused node with a random program and operand layouts,
    within the values where numpy and the fastmath kernels agree to rounding."""
    rng = np.random.default_rng(seed)
    dtype = ("f32", "f64")[seed % 2]
    shape = tuple(int(d) for d in rng.integers(2, 6, int(rng.integers(2, 4))))
    kinds = ["full"] + list(rng.choice(["full", "row", "col", "scalar", "block"], 2))
    shapes = []
    for kind in kinds:
        if kind == "block" and len(shape) < 3:
            kind = "row"
        shapes.append({"full": shape, "row": shape[-1:], "col": shape[:-1] + (1,),
                       "scalar": (1,), "block": (1,) + shape[-2:]}[kind])
    lines, floats, bools = [], [("a", i) for i in range(len(shapes))], []

    def name(v):
        return f"{v[0]}{v[1]}"

    def emit(text, is_bool=False):
        lines.append(f"v{len(lines)} = {text}")
        (bools if is_bool else floats).append(("v", len(lines) - 1))

    for _ in range(int(rng.integers(2, 7))):
        choice = rng.integers(0, 6)
        pick = (lambda pool: pool[int(rng.integers(len(pool)))])
        if choice == 0:
            emit(f"{rng.choice(_SAFE_BINARY)}({name(pick(floats))}, {name(pick(floats))})")
        elif choice == 1:
            op = rng.choice(_SAFE_UNARY)
            # now and then a form the kernels do not implement: it must be rejected
            form = "none" if rng.integers(5) == 0 else "tanh"
            emit(f"{op}({name(pick(floats))}" + (f", approximate={form})" if op == "gelu"
                                                 else ")"))
        elif choice == 2:
            a = ("a", int(rng.integers(len(shapes))))
            op = rng.choice(_POSITIVE_UNARY + ("div",))
            emit(f"div({name(pick(floats))}, {name(a)})" if op == "div" else f"{op}({name(a)})")
        elif choice == 3:
            emit(f"{rng.choice(_COMPARE)}({name(pick(floats))}, {name(pick(floats))})", True)
        elif choice == 4 and bools:
            b = name(pick(bools))
            if rng.integers(2):
                emit(f"where({b}, {name(pick(floats))}, {name(pick(floats))})")
            else:
                emit(f"logical_not({b})", True)
                emit(f"cast(v{len(lines) - 1}, dtype={dtype})")
        else:
            emit(f"mul({name(pick(floats))}, {name(pick(floats))})")
    if bools and bools[-1] == ("v", len(lines) - 1):
        emit(f"cast(v{len(lines) - 1}, dtype={dtype})")
    # the result must cover the whole shape: add the full operand a0 last
    emit(f"add(v{len(lines) - 1}, a0)")
    if rng.integers(3) == 0:
        axis = len(shape) - 1 if rng.integers(3) else int(rng.integers(len(shape) - 1))
        emit(f"softmax(v{len(lines) - 1}, axis={axis})")
    out = f"{dtype}[{','.join(map(str, shape))}]"
    np_dtype = {"f32": np.float32, "f64": np.float64}[dtype]
    args = [rng.uniform(0.5, 2.0, s).astype(np_dtype) for s in shapes]
    return fused_ir("; ".join(lines), shapes, out, dtype), args


def test_random_fused_programs_agree_with_the_interpreter():
    """IR fuzzing of fused programs: every backend (the interpreter's numpy evaluation, a plan
    without numba, the tier-0 numpy kernel and numba's generated kernel) gives the same values."""
    from runtime import tiering
    from runtime.codegen import compile_graph
    from runtime.interpreter import run
    ops_seen, rejected = set(), 0
    for seed in range(30):
        text, args = random_fused(seed)
        try:
            graph = parse(text)  # a program that parses must compile the same everywhere
        except GraphcError as exc:
            assert "not supported by the fused kernels" in str(exc) or \
                "fused kernels normalise the last axis" in str(exc), exc
            rejected += 1
            continue
        node = graph.outputs[0]
        ops_seen |= {part.split("= ")[1].split("(")[0] for part in
                     node.attrs["program"].split(";")}
        want = run(graph, *args)[0]
        tol = dict(rtol=2e-4, atol=1e-5) if want.dtype == np.float32 else \
            dict(rtol=1e-9, atol=1e-12)
        for jit in (False, True):
            got = compile_graph(graph, jit=jit, background_compile=False)(*args)[0]
            np.testing.assert_allclose(got, want, **tol, err_msg=f"seed {seed}, jit={jit}:\n"
                                                                 f"{text}")
        out = np.empty(node.shape, node.dtype)
        tiering.numpy_kernel(node)(out, *args)
        np.testing.assert_allclose(out, want, **tol, err_msg=text)
    assert 3 <= rejected <= 12, rejected
    assert {"softmax", "where", "cast", "gelu", "log", "div"} <= ops_seen, ops_seen


# ---- item 12: training text as compact, memory-mapped token ids -----------------------------
def test_corpus_is_held_as_one_byte_per_character(tmp_path, monkeypatch):
    from graphc import data as data_module
    from graphc.data import CharData
    monkeypatch.setattr(data_module, "CHUNK_BYTES", 1 << 20)
    words = ["to be ", "or not ", "that is\n", "the question\n"]
    text = "".join(np.random.default_rng(0).choice(words, 200_000))  # ~2 MB
    path = tmp_path / "t.txt"
    path.write_text(text * 10, encoding="utf-8")  # ~20 MB
    with PeakMemory() as mem:
        data = CharData.from_file(str(path), 32)
    n = len(text) * 10
    assert data.train.dtype == np.uint8 and len(data.train) + len(data.val) == n
    assert mem.peak < 12 << 20, (mem.peak, n)  # was ~14 bytes per character (280 MB)
    vocab = sorted(set(text))
    assert data.decode(data.val[:50]) == (text * 10)[int(0.9 * n):int(0.9 * n) + 50]
    assert data.vocab == vocab


def test_decode_refuses_ids_outside_the_vocabulary():
    """CharData.decode indexed its vocabulary list: id -1 was its last character and 2.7 was
    id 2 (nanoGPT's decode, a dict lookup, refuses both); ids of any integer type decode."""
    from graphc.data import CharData
    data = CharData.from_text("abc" * 40, 4)
    assert data.decode([0, np.uint8(1), np.int64(2), np.array(1)]) == "abcb"
    assert data.decode(data.encode("cab")) == "cab"
    for bad, message in ((-1, "token id -1 is outside the vocabulary (ids 0 to 2)"),
                         (3, "token id 3 is outside the vocabulary (ids 0 to 2)"),
                         (2.7, "token id 2.7 is not a whole number"),
                         (True, "token id True is a bool, not a whole number")):
        with pytest.raises(ValueError, match=re.escape(message)):  # (DataError is one)
            data.decode([0, bad])


def test_batches_are_unchanged_int64(monkeypatch, tmp_path):
    """The same values as the int64 version before the compact encoding (re-pinned when the
    last window became reachable: the starts moved by at most one)."""
    from graphc import data as data_module
    from graphc.data import CharData
    d = CharData.from_file(None, 32)
    assert (len(d.train), len(d.val), d.train.dtype) == (1003854, 111540, np.uint8)
    rng = np.random.default_rng(1337)
    x, y = d.batch(rng, "train", 4, 8)
    assert type(x) is np.ndarray and x.dtype == y.dtype == np.int64
    assert x.tolist() == [[56, 56, 47, 43, 42, 1, 58, 46], [43, 56, 0, 35, 53, 59, 50, 42],
                          [53, 52, 6, 1, 44, 47, 52, 42], [52, 1, 47, 58, 6, 1, 51, 39]]
    assert y[:, -1].tolist() == [43, 1, 47, 56]
    x, y = d.batch(rng, "val", 2, 8)
    assert x.tolist() == [[51, 39, 52, 6, 1, 53, 50, 42], [31, 32, 21, 13, 26, 10, 0, 20]]
    # pieces cut inside multi-byte characters and \r\n pairs decode as open().read() does
    text = "héllo\r\nwörld €😀 \r x\r" * 50
    path = tmp_path / "m.txt"
    path.write_bytes(text.encode("utf-8"))
    monkeypatch.setattr(data_module, "CHUNK_BYTES", 7)
    small = CharData.from_file(str(path), 4)
    with open(path, encoding="utf-8") as fh:
        expected = fh.read()
    assert small.vocab == sorted(set(expected))
    assert small.decode(np.concatenate([small.train, small.val])) == expected
    path.write_bytes(b"abc" * 10 + "é".encode() + b"\xff" + b"x" * 100)
    with pytest.raises(data_module.DataError, match=r"not UTF-8 text \(invalid start byte at "
                                                    r"byte 32\)"):
        CharData.from_file(str(path), 4)


@pytest.mark.parametrize("second", [
    "abz" * 200 + "é",  # appended: a code point past the encoder's table (an IndexError)
    "abm" * 200,  # edited in place, the same length: "m" was silently "a"'s id 0
    "abz" * 200 + "a",  # appended, its characters known: only the length tells
    "zab" * 200,  # edited in place, the same length and characters: only the digest tells
    # (the ids were the new text's, the checkpoint's text_sha256 the old one's)
])
def test_a_data_file_changed_between_its_two_reads_is_one_error(tmp_path, monkeypatch, second):
    """from_file reads the text twice (vocabulary, then tokens): a file written to in
    between (a download still going on) is refused naming it, never encoded with ids of
    characters its vocabulary lacks."""
    from graphc.data import CharData, DataError
    path = tmp_path / "grows.txt"
    path.write_text("abz" * 200, encoding="utf-8")
    vocabulary = CharData._vocabulary

    def then_written(*args):  # between the first read, which found the vocabulary, and the second
        path.write_text(second, encoding="utf-8")
        return vocabulary(*args)
    monkeypatch.setattr(CharData, "_vocabulary", staticmethod(then_written))
    with pytest.raises(DataError, match=f"data file '{re.escape(str(path))}' changed while it "
                                        "was read"):
        CharData.from_file(str(path), 4)
    monkeypatch.setattr(CharData, "_vocabulary", staticmethod(vocabulary))
    data = CharData.from_file(str(path), 4)  # read whole: its own vocabulary
    assert data.decode(np.concatenate([data.train, data.val])) == second


def test_the_check_of_the_second_read_holds_where_no_character_has_id_0(tmp_path,
                                                                       monkeypatch):
    """The second read's check counts the ids 0 (a character outside the vocabulary gets the
    table's 0) against the characters of id 0. A vocabulary given that lists its first
    character again gives it a later id, so that none has id 0: a text of its characters
    still loads (counting the first character's, it was refused as changed), and one
    changed between the reads to a character it lacks is still refused (counted so, an "m"
    for each "b", as many as the "a"s, passed as id 0)."""
    from graphc.data import CharData, DataError
    path = tmp_path / "t.txt"
    path.write_text("abz" * 200, encoding="utf-8")
    vocab = list("abza")
    data = CharData.from_file(str(path), 4, vocab)
    assert data.decode(np.concatenate([data.train, data.val])) == "abz" * 200
    vocabulary = CharData._vocabulary

    def then_written(*args):
        path.write_text("amz" * 200, encoding="utf-8")
        return vocabulary(*args)
    monkeypatch.setattr(CharData, "_vocabulary", staticmethod(then_written))
    with pytest.raises(DataError, match="changed while it was read"):
        CharData.from_file(str(path), 4, vocab)


def test_a_data_file_given_as_a_path_object_is_named_as_text(tmp_path):
    """Review: CharData.from_file (train_gpt's data) given a pathlib.Path named it
    "data file PosixPath('...') does not exist"; it is named as a str is."""
    from graphc.data import CharData, DataError
    for path, message in ((tmp_path / "nowhere.txt", "data file {!r} does not exist"),
                          (tmp_path / "short.txt", "{!r} is too short")):
        if path.name == "short.txt":
            path.write_text("ab", encoding="utf-8")
        with pytest.raises(DataError) as exc:
            CharData.from_file(path, 4)
        assert str(exc.value).startswith(message.format(str(path)))
    path.write_text("ab" * 100, encoding="utf-8")
    assert len(CharData.from_file(path, 4).train) == 180


def test_token_type_follows_the_vocabulary():
    from graphc.data import CharData, token_dtype
    assert token_dtype(256) == np.uint8 and token_dtype(257) == np.uint16
    text = "".join(chr(0x4E00 + i) for i in range(300)) * 3
    data = CharData.from_text(text, 4)
    assert data.train.dtype == np.uint16 and data.train[:300].tolist() == list(range(300))
