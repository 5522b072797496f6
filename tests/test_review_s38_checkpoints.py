"""Session 38's fixes of checkpoints: reading a gc.Trainer checkpoint without a Trainer,
the GPT checkpoint reader's extra members, and non-float parameters; each test failed before
its fix."""

import io
import json
import os
import zipfile

import numpy as np
import pytest

import graphc as gc
from graphc import checkpoint, nn, optim
from graphc.cli import main
from graphc.data import CharData
from graphc.models.gpt import GPT, GPTConfig
from graphc.train import TrainConfig, Trainer as GPTTrainer
from ir.types import BFLOAT16

from checkpoint_files import rewrite_header


class Net(nn.Module):
    def __init__(self):
        self.fc1 = nn.Linear(3, 8, rng=np.random.default_rng(1))
        self.bn = nn.BatchNorm1d(8)
        self.fc2 = nn.Linear(8, 2, rng=np.random.default_rng(2))

    def forward(self, x):
        return self.fc2(gc.relu(self.bn(self.fc1(x))))


def _batches(rng):
    x = rng.normal(size=(16, 3)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64)


def _fitted_net(out):
    model = Net()
    trainer = gc.Trainer(lambda p, b: gc.cross_entropy(model.apply(p, b[0]), b[1]),
                         model.params(), optim.Adam(lr=0.05), _batches, steps=5,
                         eval_every=5, seed=3)
    trainer.fit(str(out), progress=False)
    return model, trainer


def test_load_params_reads_a_trainer_checkpoint_without_a_trainer(tmp_path):
    """The parameters a gc.Trainer saved could be read back only by building a Trainer
    again (with the loss and the data); gc.load_params(path) gives them, by the names the
    Trainer's params had, and with buffers=True a fresh model's load_state_dict takes them:
    it then computes what the trained model computes."""
    model, trainer = _fitted_net(tmp_path / "run")
    params = gc.load_params(str(tmp_path / "run"))  # fit()'s directory, or its file
    assert sorted(params) == sorted(model.params())
    for name, value in params.items():
        assert value.dtype == np.float32
        np.testing.assert_array_equal(value, trainer.params[name])
    assert not any(k.startswith("bn.running") for k in params)
    fresh = Net()
    fresh.load_state_dict(gc.load_params(str(tmp_path / "run" / "checkpoint.npz"),
                                         buffers=True))
    model.load_state_dict(trainer.params, strict=False)  # (the step wrote the buffers)
    model.eval(), fresh.eval()
    x = np.random.default_rng(7).normal(size=(4, 3)).astype(np.float32)
    np.testing.assert_array_equal(fresh(gc.tensor(x)).data, model(gc.tensor(x)).data)
    np.testing.assert_array_equal(fresh.bn.running_mean.data, model.bn.running_mean.data)
    assert not np.allclose(fresh.bn.running_mean.data, 0)  # trained statistics, not fresh


def test_load_params_keeps_each_saved_dtype(tmp_path):
    """Each parameter comes back in the dtype it was saved with: float64 as float64 and
    bfloat16 (stored as its bits, uint16) as bfloat16."""
    params = {"w": np.ones(3, np.float64), "h": np.full(2, 1.5, BFLOAT16)}
    trainer = gc.Trainer(lambda p, b: gc.sum(p["w"] * b[0]) + gc.sum(gc.cast(p["h"], "float64")),
                         params, optim.SGD(lr=0.1), lambda rng: (np.arange(3.0),), steps=1)
    trainer.train_step()
    trainer.save(str(tmp_path / "c.npz"))
    loaded = gc.load_params(str(tmp_path / "c.npz"))
    assert loaded["w"].dtype == np.float64 and loaded["h"].dtype == BFLOAT16
    np.testing.assert_array_equal(loaded["w"], [1.0, 0.9, 0.8])
    np.testing.assert_array_equal(loaded["h"].astype(np.float32), trainer.params["h"]
                                  .astype(np.float32))


def test_load_params_refuses_a_bad_file_in_one_line(tmp_path):
    """A file that is not a graphc checkpoint, or one whose arrays were tampered with, is
    refused as Trainer.resume refuses it: one CheckpointError line naming the file."""
    np.savez(tmp_path / "other.npz", w=np.ones(2))
    with pytest.raises(checkpoint.CheckpointError, match="other.npz.*no graphc header"):
        gc.load_params(str(tmp_path / "other.npz"))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(checkpoint.CheckpointError, match="junk.npz.* corrupt or not a graphc"):
        gc.load_params(str(tmp_path / "junk.npz"))
    _fitted_net(tmp_path / "run")
    path = str(tmp_path / "run" / "checkpoint.npz")
    with zipfile.ZipFile(path) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    raw = bytearray(members["param/fc1.bias.npy"])
    raw[-4:] = np.float32(np.nan).tobytes()
    members["param/fc1.bias.npy"] = bytes(raw)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    with pytest.raises(checkpoint.CheckpointError) as exc:
        gc.load_params(path)
    assert str(exc.value) == (f"checkpoint {path!r}: param/fc1.bias holds non-finite "
                              "values (NaN or inf)")


def test_a_checkpoint_given_as_a_path_object_is_named_as_text(tmp_path):
    """A pathlib.Path (taken as open() takes one) is named in the one line as a str is:
    "checkpoint PosixPath('...') is corrupt" named a Python object, not the file."""
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(checkpoint.CheckpointError) as exc:
        gc.load_params(junk)
    assert str(exc.value) == (f"checkpoint {str(junk)!r} is corrupt or not a graphc "
                              "checkpoint (File is not a zip file)")
    with pytest.raises(checkpoint.CheckpointError) as exc:
        gc.load_params(tmp_path / "nowhere.npz")
    assert str(exc.value) == f"no checkpoint at {str(tmp_path / 'nowhere.npz')!r}"
    _, trainer = _fitted_net(tmp_path / "run")
    with pytest.raises(checkpoint.CheckpointError) as exc:
        trainer.resume(junk)
    assert "PosixPath" not in str(exc.value) and repr(str(junk)) in str(exc.value)


def test_a_path_object_of_bytes_is_refused_as_bytes_are(tmp_path):
    """Review of the above: a PathLike whose path is bytes (os.scandir(b"...")'s entries)
    passed check_path, and load_params of fit()'s directory given so was a raw TypeError
    ("Can't mix strings and bytes in path components"); it is refused in one line as
    bytes are."""
    _fitted_net(tmp_path / "run")
    entry = next(e for e in os.scandir(os.fsencode(tmp_path)) if e.name == b"run")
    for value in (entry, os.fsencode(tmp_path / "run")):
        with pytest.raises(gc.GraphcError) as exc:
            gc.load_params(value)
        assert str(exc.value).splitlines()[0] == (
            f"load_params: path must be a checkpoint file's path, got {value!r}")
    assert sorted(gc.load_params(next(e for e in os.scandir(tmp_path) if e.name == "run")))


def test_a_checkpoint_saved_to_a_path_object_is_named_as_text(tmp_path):
    """Review of the above: Trainer.save (checkpoint.save) given a pathlib.Path still named
    it as "cannot write checkpoint PosixPath('...')"."""
    (tmp_path / "afile").write_bytes(b"x")
    _, trainer = _fitted_net(tmp_path / "run")
    target = tmp_path / "afile" / "c.npz"
    with pytest.raises(gc.GraphcError) as exc:
        trainer.save(target)
    assert str(exc.value).splitlines()[0] == (f"cannot write checkpoint {str(target)!r}: "
                                              f"{tmp_path / 'afile'} is not a directory")


class _Scaled(nn.Module):
    """Net's layers behind a constant buffer (a persistent register_buffer no step writes)."""

    def __init__(self):
        self.net = Net()
        self.register_buffer("scale", np.full(3, 1.5, np.float32))

    def forward(self, x):
        return self.net(x * self.scale)


def _frozen_net():
    """Net with its BatchNorm frozen in eval() holding statistics of its own."""
    model = Net()
    model.bn.eval()
    model.bn.running_mean.data[...] = np.linspace(-1, 1, 8)
    model.bn.running_var.data[...] = np.linspace(0.5, 3, 8)
    return model


def _fit(model, out, steps=4, **kwargs):
    trainer = gc.Trainer(lambda p, b: gc.cross_entropy(model.apply(p, b[0]), b[1]),
                         model.params(), optim.Adam(lr=0.05), _batches, steps=steps, seed=3,
                         **kwargs)
    trainer.fit(str(out), progress=False)
    return trainer


@pytest.mark.parametrize("case", ["frozen batch norm", "constant buffer"])
def test_a_checkpoint_holds_the_buffers_the_step_only_reads(tmp_path, case):
    """A gc.Trainer checkpoint held only the Buffers its step writes, so the README's strict
    `model.load_state_dict(gc.load_params(path, buffers=True))` was refused for a model with
    a BatchNorm frozen in eval() or a constant register_buffer (missing ['bn.running_mean',
    ...]). Every Buffer the step reads is checkpointed now: the strict load takes it and
    the loaded model computes what the trained one does, with the trained model's own
    buffers (not the fresh model's)."""
    if case == "constant buffer":
        make = _Scaled
        model = make()
        model.scale.data[...] = [2.0, -1.0, 0.5]
        buffers = {"scale": model.scale.data.copy()}
    else:
        make = _frozen_net
        model = make()
        buffers = {n: b.data.copy() for n, b in model.named_buffers()}
    trainer = _fit(model, tmp_path / "run")
    saved = gc.load_params(str(tmp_path / "run"), buffers=True)
    # (a frozen BatchNorm's num_batches_tracked, neither read nor written, is saved with
    # its statistics; the constant case's BatchNorm trains, its buffers written)
    assert sorted(saved) == sorted([*model.params(), *dict(model.named_buffers())])
    for name, value in buffers.items():  # (the step changed none of them)
        np.testing.assert_array_equal(saved[name], value)
    fresh = Net() if case == "frozen batch norm" else _Scaled()
    fresh.load_state_dict(saved)
    model.load_state_dict(trainer.params, strict=False)
    model.eval(), fresh.eval()
    x = np.random.default_rng(7).normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_array_equal(fresh(gc.tensor(x)).data, model(gc.tensor(x)).data)
    assert not np.array_equal(make()(gc.tensor(x)).data, model(gc.tensor(x)).data)


def test_a_frozen_batch_norms_count_is_saved_with_its_statistics(tmp_path):
    """A BatchNorm frozen in eval() had its running statistics checkpointed but not its
    num_batches_tracked (the step neither reads nor writes it), so the strict load of
    load_params(buffers=True) kept the fresh model's count, 0: with momentum=None (a
    cumulative average) and a pre-trained count of 100, the loaded model's first batch
    after model.train() replaced its statistics (weight 1/1) where the trained model's
    moved them by 1/101. The layer's other persistent Buffers are checkpointed with those
    the step reads: after one train() forward both models hold the same statistics."""
    def frozen():
        model = _frozen_net()
        model.bn.momentum = None
        return model
    model = frozen()
    model.bn.num_batches_tracked.data[...] = 100
    trainer = _fit(model, tmp_path / "run", steps=2)
    saved = gc.load_params(str(tmp_path / "run"), buffers=True)
    assert int(saved["bn.num_batches_tracked"]) == 100
    fresh = frozen()
    fresh.load_state_dict(saved)
    model.load_state_dict(trainer.params, strict=False)
    x = np.random.default_rng(7).normal(size=(6, 3)).astype(np.float32)
    before = model.bn.running_mean.data.copy()
    batch_mean = model.fc1(gc.tensor(x)).data.mean(axis=0)
    model.train(), fresh.train()
    model(gc.tensor(x)), fresh(gc.tensor(x))
    assert int(fresh.bn.num_batches_tracked.data) == 101
    np.testing.assert_allclose(model.bn.running_mean.data,
                               before + (batch_mean - before) / 101, rtol=1e-5, atol=1e-6)
    for name, b in model.named_buffers():
        np.testing.assert_array_equal(dict(fresh.named_buffers())[name].data, b.data)


def test_a_buffer_the_loss_never_reaches_is_named_by_a_strict_load(tmp_path):
    """A BatchNorm the loss never calls is unknown to the Trainer (its step neither reads
    nor writes it), so not checkpointed: a strict load of load_params(buffers=True) names
    its buffers, and strict=False loads the rest and keeps the fresh model's own."""
    class WithAux(Net):
        def __init__(self):
            super().__init__()
            self.aux = nn.BatchNorm1d(2)

    model = WithAux()
    trainer = _fit(model, tmp_path / "run", steps=2)
    saved = gc.load_params(str(tmp_path / "run"), buffers=True)
    assert sorted(saved) == sorted([*model.params(), "bn.running_mean", "bn.running_var",
                                    "bn.num_batches_tracked"])
    fresh = WithAux()
    with pytest.raises(gc.GraphcError, match=r"missing \['aux.running_mean', "
                       r"'aux.running_var'\], unexpected \[\]"):
        fresh.load_state_dict(saved)
    assert fresh.load_state_dict(saved, strict=False).missing_keys == \
        ["aux.running_mean", "aux.running_var"]
    np.testing.assert_array_equal(fresh.fc1.weight.data, trainer.params["fc1.weight"])
    np.testing.assert_array_equal(fresh.bn.running_mean.data, model.bn.running_mean.data)
    np.testing.assert_array_equal(fresh.aux.running_var.data, 1.0)


def test_a_checkpoint_without_the_read_buffers_resumes_as_before(tmp_path):
    """A checkpoint written before the Buffers the step only reads were checkpointed (made
    here by taking them out of the file) resumes, the model keeping its own statistics,
    and trains on bit for bit as an uninterrupted run does; one written now restores them."""
    whole = _frozen_net()
    straight = _fit(whole, tmp_path / "whole", steps=4)
    model = _frozen_net()
    _fit(model, tmp_path / "half", steps=2)
    path = str(tmp_path / "half" / "checkpoint.npz")
    with zipfile.ZipFile(path) as zf:
        assert {"buffer/bn.running_mean.npy", "buffer/bn.running_var.npy"} <= set(zf.namelist())
    _edit_members(path, lambda m: [m.pop(k) for k in list(m) if k.startswith("buffer/")])
    own = {n: b.data.copy() for n, b in model.named_buffers()}
    again = _frozen_net()
    resumed = gc.Trainer(lambda p, b: gc.cross_entropy(again.apply(p, b[0]), b[1]),
                         again.params(), optim.Adam(lr=0.05), _batches, steps=4, seed=3)
    resumed.resume(path)
    for name, b in again.named_buffers():
        np.testing.assert_array_equal(b.data, own[name])
    resumed.fit(str(tmp_path / "resumed"), progress=False)
    for name, value in straight.params.items():
        np.testing.assert_array_equal(resumed.params[name], value)
    # a checkpoint with them restores them, over other values the model holds
    again.bn.running_mean.data[...] = 5.0
    resumed.resume(str(tmp_path / "whole"))
    np.testing.assert_array_equal(again.bn.running_mean.data, whole.bn.running_mean.data)


def test_a_constant_buffer_may_hold_an_inf_a_written_one_may_not(tmp_path):
    """A constant buffer holding -inf (an additive mask) is checkpointed and read back: it
    is no divergence (the run saves) and the file loads; a Buffer the step writes holding
    an Inf in a checkpoint is refused on resume, naming it."""
    class Masked(Net):
        def __init__(self):
            super().__init__()
            self.register_buffer("mask", np.array([0.0, -np.inf], np.float32))

        def forward(self, x):
            return super().forward(x) * gc.exp(self.mask)  # (the second logit masked to 0)

    model = Masked()
    trainer = _fit(model, tmp_path / "run", steps=2)
    saved = gc.load_params(str(tmp_path / "run"), buffers=True)
    np.testing.assert_array_equal(saved["mask"], [0.0, -np.inf])
    fresh = Masked()
    fresh.mask.data[...] = 0
    fresh.load_state_dict(saved)
    np.testing.assert_array_equal(fresh.mask.data, [0.0, -np.inf])
    trainer.resume(str(tmp_path / "run"))
    path = str(tmp_path / "run" / "checkpoint.npz")
    _edit_members(path, lambda m: m.update(
        {"buffer/bn.running_var.npy": _npy(np.full(8, np.inf, np.float32))}))
    with pytest.raises(checkpoint.CheckpointError,
                       match=r"^checkpoint '.*checkpoint.npz': buffer/bn.running_var holds "
                       r"non-finite values"):
        trainer.resume(path)


def test_load_params_refuses_an_inf_in_a_buffer_the_step_writes_as_resume_does(tmp_path):
    """s49: gc.load_params(path, buffers=True) took an Inf in a Buffer the step writes (a
    BatchNorm's running_var) where resume refuses it: nothing in the file told a written
    Buffer from one the step only reads (a mask's -inf). The header records those it
    writes (written_buffers) and load_params refuses one holding an Inf in resume's line
    (one check); a read-only one's -inf loads, and so does a file written before the
    record (as it did)."""
    class Masked(Net):
        def __init__(self):
            super().__init__()
            self.register_buffer("mask", np.array([0.0, -np.inf], np.float32))

        def forward(self, x):
            return super().forward(x) * gc.exp(self.mask)

    trainer = _fit(Masked(), tmp_path / "run", steps=2)
    path = str(tmp_path / "run" / "checkpoint.npz")
    header = []
    rewrite_header(path, header.append)
    assert header[0]["written_buffers"] == ["bn.num_batches_tracked", "bn.running_mean",
                                            "bn.running_var"]  # (not the mask)
    assert gc.load_params(path, buffers=True)["mask"][1] == -np.inf
    _edit_members(path, lambda m: m.update(
        {"buffer/bn.running_var.npy": _npy(np.full(8, np.inf, np.float32))}))
    message = (f"checkpoint {path!r}: buffer/bn.running_var holds non-finite values (NaN or "
               "inf)")
    for load in (lambda: gc.load_params(path, buffers=True), lambda: trainer.resume(path)):
        with pytest.raises(checkpoint.CheckpointError) as info:
            load()
        assert str(info.value) == message
    assert sorted(gc.load_params(path)) == sorted(trainer.params)  # (buffers not read)

    rewrite_header(path, lambda meta: meta.pop("written_buffers"))  # written before the
    assert np.isinf(gc.load_params(path, buffers=True)["bn.running_var"]).all()  # record
    rewrite_header(path, lambda meta: meta.update(written_buffers="bn.running_var"))
    with pytest.raises(checkpoint.CheckpointError) as info:
        gc.load_params(path, buffers=True)
    assert str(info.value) == (f"checkpoint {path!r}: header field written_buffers must be "
                               "a list of buffer names, got 'bn.running_var'")


def test_a_nan_in_a_buffer_is_refused_read_only_or_written(tmp_path):
    """Review of the read-only Buffers' checkpointing: taking an Inf in buffer/ members let a
    NaN through too, so gc.load_params(buffers=True) returned a trained BatchNorm's NaN
    statistics (refused before), and a resume restored a NaN into a frozen one; and the
    refusal of an Inf in a written Buffer no longer named the file. A NaN is refused in
    every Buffer, naming the file; a read-only Buffer's NaN is divergence (not saved)."""
    model = _frozen_net()
    model.register_buffer("scale", np.ones(3, np.float32))
    model.forward = lambda x: Net.forward(model, x * model.scale)
    trainer = _fit(model, tmp_path / "run", steps=2)
    path = str(tmp_path / "run" / "checkpoint.npz")
    _edit_members(path, lambda m: m.update(
        {"buffer/bn.running_var.npy": _npy(np.full(8, np.nan, np.float32))}))
    message = r"^checkpoint '.*checkpoint.npz': buffer/bn.running_var holds non-finite values"
    with pytest.raises(checkpoint.CheckpointError, match=message):
        gc.load_params(path, buffers=True)
    with pytest.raises(checkpoint.CheckpointError, match=message):
        trainer.resume(path)
    model.scale.data[1] = np.nan
    assert trainer.non_finite() == "buffer/scale"
    model.scale.data[1] = -np.inf
    assert trainer.non_finite() is None


def test_load_params_reads_a_gpt_checkpoint_too(tmp_path):
    """A `graphc train` checkpoint is a gc.Trainer checkpoint too: load_params gives the
    GPT's parameters by their names, which GPT's load_state_dict takes."""
    cfg = GPTConfig(vocab_size=5, n_layer=1, n_head=2, n_embd=8, block_size=4, batch_size=2)
    gpt = GPT(cfg)
    trainer = GPTTrainer(gpt, CharData.from_text("abcde" * 20, cfg.block_size),
                         TrainConfig(steps=2, eval_iters=1))
    trainer.train_step()
    trainer.save(str(tmp_path / "gpt.npz"))
    params = gc.load_params(str(tmp_path / "gpt.npz"))
    assert sorted(params) == sorted(checkpoint.parameter_shapes(cfg))
    fresh = GPT(cfg)
    fresh.load_state_dict(params)
    for name, p in fresh.named_parameters():
        np.testing.assert_array_equal(p.data, trainer.params[name])


def _gpt_run(out, steps=2, **train):
    """A `graphc train`-style GPT checkpoint in OUT/checkpoint.npz."""
    cfg = GPTConfig(vocab_size=5, n_layer=1, n_head=2, n_embd=8, block_size=4, batch_size=2)
    trainer = GPTTrainer(GPT(cfg), CharData.from_text("abcde" * 20, cfg.block_size),
                         TrainConfig(steps=steps, eval_iters=1, **train))
    trainer.train_step()
    out.mkdir()
    trainer.save(str(out / "checkpoint.npz"))
    return cfg, str(out / "checkpoint.npz")


def _add_members(path, members):
    with zipfile.ZipFile(path, "a") as zf:
        for name, array in members.items():
            with zf.open(name + ".npy", "w") as fh:
                np.lib.format.write_array(fh, array)


@pytest.mark.parametrize("extra", ["param/ghost.weight", "buffer/blocks.0.mask"])
def test_gpt_checkpoint_with_an_extra_parameter_is_refused(tmp_path, capsys, extra):
    """The GPT checkpoint reader (graphc train --resume, sample/eval --checkpoint) read only
    the arrays its header's model names, so a file with another parameter or buffer added
    loaded as if whole, where gc.Trainer.resume refuses one; it is refused now, one line
    naming the file and the extra member, exit status 2. What graphc itself writes (AdamW's
    moments, float16's loss scale, the histories in the header) still loads."""
    cfg, path = _gpt_run(tmp_path / "run", steps=3, precision="fp16-mixed")
    settings = TrainConfig(steps=3, eval_iters=1, precision="fp16-mixed")
    data = CharData.from_text("abcde" * 20, cfg.block_size)
    arrays, meta = checkpoint.load(path)
    assert {"amp/scale", "amp/good_steps"} <= set(arrays) and meta["history"]
    GPTTrainer(GPT(cfg), data, settings).resume(path)
    assert main(["sample", "--checkpoint", path, "--prompt", "ab", "--tokens", "2"]) == 0
    capsys.readouterr()
    _add_members(path, {extra: np.ones(3, np.float32)})
    line = (f"graphc: error: checkpoint {path!r} holds parameters or buffers the model in "
            f"its header lacks ({extra}); the file was changed or damaged")
    for argv in (["sample", "--checkpoint", path, "--prompt", "ab", "--tokens", "2"],
                 ["eval", "--checkpoint", path]):
        assert main(argv) == 2
        assert capsys.readouterr().err.strip().splitlines() == [line]
    with pytest.raises(checkpoint.CheckpointError) as exc:
        GPTTrainer(GPT(cfg), data, settings).resume(path)
    assert str(exc.value) == line[len("graphc: error: "):]


def _refusal(optimizer, method, name, dtype):
    return (f"{type(optimizer).__name__}.{method}: parameter {name!r} has dtype {dtype}; only "
            "floating-point parameters can be optimised (cast it, or keep it out of the "
            "parameters)")


@pytest.mark.parametrize("dtype", [np.bool_, np.int64, np.int32])
@pytest.mark.parametrize("make", [lambda: optim.Adam(lr=0.1), lambda: optim.SGD(lr=0.1),
                                  lambda: optim.Adagrad(lr=0.1, initial_accumulator_value=0.1),
                                  lambda: optim.NAdam(lr=0.1)],
                         ids=["Adam", "SGD", "Adagrad", "NAdam"])
def test_a_non_float_parameter_is_refused_naming_it(make, dtype):
    """A bool or integer leaf of the params given to an optimiser failed deep in the
    update's arithmetic ("mul(bool[2], f32[]): operands must have one dtype"), naming no
    parameter; as torch lets only floating-point tensors require gradients, update (eager
    and compiled, where it has a gradient), .bind() and gc.Trainer refuse it in one line
    naming it. (init takes it: the state of params none of whose gradients is given.)"""
    opt = make()
    params = {"w": np.ones(3, np.float32), "flag": np.ones(2, dtype)}
    grads = {"w": np.ones(3, np.float32), "flag": np.ones(2, dtype)}
    message = _refusal(opt, "update", "flag", np.dtype(dtype))
    state = opt.init(params)
    with pytest.raises(gc.GraphcError) as exc:
        opt.update(grads, state, params)
    assert exc.value.message == message
    with pytest.raises(gc.GraphcError) as exc:
        gc.compile(lambda g, s, p: opt.update(g, s, p))(grads, state, params)
    assert exc.value.message == message
    # a parameter without a gradient is left alone, whatever its dtype (as torch's)
    new, _ = opt.update({"w": grads["w"], "flag": None}, state, params)
    np.testing.assert_array_equal(new["flag"], params["flag"])
    flag = gc.tensor(np.ones(2, dtype))
    with pytest.raises(gc.GraphcError) as exc:
        opt.bind({"w": gc.tensor(params["w"], requires_grad=True), "flag": flag})
    assert exc.value.message == message.replace(".update:", ".bind:")
    with pytest.raises(gc.GraphcError) as exc:
        gc.Trainer(lambda p, b: gc.sum(p["w"] * b[0]), params, opt,
                   lambda rng: (np.ones(3, np.float32),), steps=1)
    assert exc.value.message == (f"Trainer: params['flag'] has dtype {np.dtype(dtype)}; only "
                                 "floating-point parameters can be trained (cast it, or keep "
                                 "it out of the params)")


def test_load_params_reads_an_earlier_bfloat16_checkpoint_as_bfloat16(tmp_path):
    """A bfloat16 parameter is stored as its bits (uint16). load_params gave it back as
    bfloat16 only where a new header field (bfloat16_arrays) named it, so a file written by
    earlier graphc, without it, came back as raw uint16 bits, which load_state_dict took as
    values (1.5 became 16320). graphc has no uint16 parameters or buffers: a uint16 member
    is read as bfloat16 always, and the header field is gone (earlier graphc took it for a
    changed setting)."""
    params = {"w": np.ones(3, np.float32), "h": np.full(2, 1.5, BFLOAT16)}

    def loss(p, b):
        return gc.sum(p["w"] * b[0]) + gc.sum(gc.cast(p["h"], "float32"))

    trainer = gc.Trainer(loss, params, optim.SGD(lr=0.25), lambda rng: (np.ones(3, np.float32),),
                         steps=1)
    trainer.train_step()
    path = str(tmp_path / "c.npz")
    trainer.save(path)
    rewrite_header(path, lambda header: header.pop("bfloat16_arrays", None))  # as earlier
    loaded = gc.load_params(path)
    assert loaded["h"].dtype == BFLOAT16
    np.testing.assert_array_equal(loaded["h"].astype(np.float32), [1.25, 1.25])
    trainer.save(path)
    with np.load(path) as z:
        assert "bfloat16_arrays" not in json.loads(bytes(z["__meta__"]))


def _edit_members(path, edit):
    """The checkpoint at `path` with its zip members ({name: bytes}) changed by `edit`."""
    with zipfile.ZipFile(path) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    edit(members)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def _npy(array):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array)
    return buffer.getvalue()


def test_load_params_checks_the_members_as_resume_would(tmp_path):
    """load_params read every param/ member the file held and nothing else, so a Trainer
    file missing param/fc1.bias (its Adam moments kept) came back with fewer parameters,
    and a member no graphc writes went unnoticed; a `graphc train` checkpoint was not
    checked against the GPT its header names (a wrong-shape param/wpe.weight came back,
    which `graphc sample` refuses). Each is refused now in one line naming the file."""
    _fitted_net(tmp_path / "run")
    path = str(tmp_path / "run" / "checkpoint.npz")
    with zipfile.ZipFile(path) as zf:
        saved = {i.filename: zf.read(i) for i in zf.infolist()}
    _edit_members(path, lambda m: m.pop("param/fc1.bias.npy"))
    with pytest.raises(checkpoint.CheckpointError) as exc:
        gc.load_params(str(tmp_path / "run"))
    assert str(exc.value) == (f"checkpoint {path!r} holds adam_m/fc1.bias but not "
                              "param/fc1.bias, the parameter it belongs to (the file was "
                              "changed or damaged)")
    _edit_members(path, lambda m: (m.clear(), m.update(saved),
                                   m.update({"notes/x.npy": _npy(np.ones(2, np.float32))})))
    with pytest.raises(checkpoint.CheckpointError) as exc:
        gc.load_params(path)
    assert str(exc.value) == (f"checkpoint {path!r} holds notes/x.npy, which "
                              "gc.Trainer.save does not write (the file was changed or "
                              "damaged)")
    # a parameter and a buffer of one name: the message names the file read, not fit()'s
    # directory it was found in
    _edit_members(path, lambda m: (m.pop("notes/x.npy"),
                                   m.update({"buffer/fc1.bias.npy": m["param/fc1.bias.npy"]})))
    with pytest.raises(checkpoint.CheckpointError) as exc:
        gc.load_params(str(tmp_path / "run"), buffers=True)
    assert str(exc.value) == (f"checkpoint {path!r} holds a parameter and a buffer both "
                              "named 'fc1.bias'")
    cfg, gpt_path = _gpt_run(tmp_path / "gpt")
    assert sorted(gc.load_params(gpt_path)) == sorted(checkpoint.parameter_shapes(cfg))
    _edit_members(gpt_path, lambda m: m.update(
        {"param/wpe.weight.npy": _npy(np.ones((3, cfg.n_embd), np.float32))}))
    with pytest.raises(checkpoint.CheckpointError) as exc:
        gc.load_params(gpt_path)
    assert str(exc.value) == (f"checkpoint {gpt_path!r}: param/wpe.weight is float32[3, 8], "
                              "the model in its header needs float32[4, 8]")


def test_load_params_reads_a_parameter_named_empty_as_resume_does(tmp_path):
    """A parameter named "" (which gc.Trainer takes, trains, saves and resumes) made
    gc.load_params call its own file changed or damaged ("holds adam_m/.npy, which
    gc.Trainer.save does not write"): the member check took the empty name for no name.
    It reads now, the very arrays the trainer saved; a member without the "/" (param.npy),
    which save never writes, and a slot of "" without its parameter are still refused."""
    x = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
    y = x @ np.ones(3, np.float32)

    def loss(p, batch):
        return gc.mean((batch[0] @ p[""] + p["b"] - batch[1]) ** 2)
    trainer = gc.Trainer(loss, {"": np.zeros(3, np.float32), "b": np.zeros((), np.float32)},
                         optim.Adam(lr=0.1), lambda rng: (x, y), steps=3)
    trainer.fit(str(tmp_path / "run"), progress=False, log=lambda line: None)
    params = gc.load_params(str(tmp_path / "run"))
    assert sorted(params) == ["", "b"]
    for name, value in trainer.params.items():
        np.testing.assert_array_equal(params[name], value)
        assert params[name].dtype == value.dtype
    assert not np.array_equal(params[""], np.zeros(3))  # (trained)
    path = str(tmp_path / "run" / "checkpoint.npz")
    with zipfile.ZipFile(path) as zf:
        saved = {i.filename: zf.read(i) for i in zf.infolist()}
    _edit_members(path, lambda m: m.update({"param.npy": m["param/.npy"]}))
    with pytest.raises(checkpoint.CheckpointError) as exc:
        gc.load_params(path)
    assert str(exc.value) == (f"checkpoint {path!r} holds param.npy, which gc.Trainer.save "
                              "does not write (the file was changed or damaged)")
    _edit_members(path, lambda m: (m.clear(), m.update(saved), m.pop("param/.npy")))
    with pytest.raises(checkpoint.CheckpointError) as exc:
        gc.load_params(path)
    assert str(exc.value) == (f"checkpoint {path!r} holds adam_m/ but not param/, the "
                              "parameter it belongs to (the file was changed or damaged)")


def test_init_takes_an_integer_leaf_that_gets_no_gradient():
    """Optimizer.init refused any bool or integer leaf, so the state of a model's
    state_dict() (BatchNorm's num_batches_tracked) or of params with a counter that never
    gets a gradient could not be made, where it could before; init takes them again (update
    leaves a leaf without a gradient alone), and update still refuses one with a gradient."""
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    state = optim.Adam(lr=0.1).init(model.state_dict())
    assert state["m"]["1.num_batches_tracked"].dtype == np.int64
    opt = optim.Adam(lr=0.1)
    params = {"w": np.ones(3, np.float32), "n": np.array(5)}
    new, _ = opt.update({"w": np.ones(3, np.float32), "n": None}, opt.init(params), params)
    np.testing.assert_allclose(new["w"], 0.9, rtol=1e-6)
    assert new["n"] == 5


@pytest.mark.parametrize("name", ["adam", "sgd", "adamw"])
def test_the_lowercase_optimisers_non_float_refusal_names_them(name):
    """The optax-style optimisers' refusal of an integer parameter named a private class
    ("_ScaleByAdam.update: parameter 'n' ..."); it names the optimiser as the user called
    it, as their other messages do: "gc.optim.adam.update: parameter 'n' ..."."""
    opt = getattr(optim, name)(0.1)
    params = {"w": np.ones(2, np.float32), "n": np.arange(2)}
    with pytest.raises(gc.GraphcError) as exc:
        opt.update({"w": np.ones(2, np.float32), "n": np.ones(2, np.int64)}, opt.init(params),
                   params)
    assert exc.value.message == (f"gc.optim.{name}.update: parameter 'n' has dtype int64; only "
                                 "floating-point parameters can be optimised (cast it, or "
                                 "keep it out of the parameters)")


def test_gpt_checkpoint_extra_members_are_refused_as_the_trainers_are(tmp_path, capsys):
    """The GPT checkpoint reader's refusal of members its header's model lacks re-implemented
    gc.Trainer's (refuse_unexpected_arrays) with another message ("holds buffer/a and 1
    more arrays"); it is that refusal now, naming them all. Unlike gc.Trainer.resume's,
    allow_changed_settings (--allow-changed-settings) does not leave them out: a resume
    cannot change a GPT's model, so they are damage, not another model's."""
    cfg, path = _gpt_run(tmp_path / "run", steps=3)
    _add_members(path, {"param/ghost.weight": np.ones(3, np.float32),
                        "buffer/blocks.0.mask": np.ones(3, np.float32)})
    line = (f"checkpoint {path!r} holds parameters or buffers the model in its header lacks "
            "(buffer/blocks.0.mask, param/ghost.weight); the file was changed or damaged")
    data = CharData.from_text("abcde" * 20, cfg.block_size)
    with pytest.raises(checkpoint.CheckpointError) as exc:
        GPTTrainer(GPT(cfg), data, TrainConfig(steps=3, eval_iters=1)).resume(
            path, allow_changed_settings=True)
    assert str(exc.value) == line
    assert main(["eval", "--checkpoint", path]) == 2
    assert capsys.readouterr().err.strip() == f"graphc: error: {line}"


@pytest.mark.parametrize("settings", [{"model": {"width": 4}, "vocab": "abc"},
                                      {"model": {"width": 4}, "train": {"lr": 0.1},
                                       "vocab": "abc"}])
def test_load_params_reads_a_trainer_checkpoint_whose_settings_name_a_model(tmp_path,
                                                                           settings):
    """is_gpt_header took any gc.Trainer checkpoint whose checkpoint_meta held a `model`
    dict and a `vocab` string for a `graphc train` GPT file, so gc.load_params refused it
    ("header field train is missing", or the GPT's missing fields). A GPT header is now
    one whose model names the GPT's sizes, with training settings and a vocabulary; this
    one is read by the generic reader: the parameters the Trainer trained."""
    model = nn.Linear(4, 3, rng=np.random.default_rng(0))
    trainer = gc.Trainer(lambda p, b: gc.mean((model.apply(p, b[0]) - b[1]) ** 2),
                         model.params(), optim.AdamW(1e-3),
                         lambda rng: (rng.normal(size=(8, 4)).astype(np.float32),
                                      rng.normal(size=(8, 3)).astype(np.float32)),
                         steps=2, checkpoint_meta=settings)
    trainer.train_step()
    trainer.save(str(tmp_path / "c.npz"))
    params = gc.load_params(str(tmp_path / "c.npz"))
    assert sorted(params) == ["bias", "weight"]
    for name, value in params.items():
        np.testing.assert_array_equal(value, trainer.params[name])
    assert not np.array_equal(params["weight"], model.weight.data)  # the trained ones
    assert not checkpoint.is_gpt_header(json.loads(json.dumps(settings)))


def test_trainer_save_refuses_a_path_of_bytes_as_load_params_does(tmp_path):
    """Review of the two above: Trainer.save given bytes, a PathLike of bytes (os.scandir(
    b"...")'s entries) or None was a raw TypeError from deep in the write ("a bytes-like
    object is required, not 'str'"), where load_params and resume refuse them in one line;
    it is refused in that line, nothing written."""
    _, trainer = _fitted_net(tmp_path / "run")
    entry = next(e for e in os.scandir(os.fsencode(tmp_path)) if e.name == b"run")
    for value in (os.fsencode(tmp_path / "c.npz"), entry, None, 3):
        with pytest.raises(gc.GraphcError) as exc:
            trainer.save(value)
        assert str(exc.value).splitlines()[0] == (
            f"Trainer.save: path must be a checkpoint file's path, got {value!r}")
    assert sorted(os.listdir(tmp_path)) == ["run"]
    trainer.save(tmp_path / "c.npz")
    assert sorted(gc.load_params(tmp_path / "c.npz")) == sorted(gc.load_params(tmp_path / "run"))
