"""Session 37's fixes of data-parallel training (graphc.distributed and gc.Trainer under
`mpiexec -n 2`), and later sessions' in the same area; each test failed before its fix.
The multi-rank cases run a small script written into tmp_path under mpiexec, as
tests/test_mpi.py launches its worker."""
from __future__ import annotations

import sys
import types
import textwrap
from pathlib import Path

import numpy as np
import pytest

import graphc as gc
import graphc.distributed as dist
from ir.ops import collective as C

sys.path.insert(0, str(Path(__file__).resolve().parent))
from launch import rank_env, run_in_group  # noqa: E402


def run_two_ranks(tmp_path, body, timeout=60):
    """Run `body` (Python, after `dist.init()`; `r` is the rank, OUT the folder) on 2 ranks;
    (exit status, merged output)."""
    pytest.importorskip("mpi4py", reason="the mpi extra is not installed: pip install "
                                         "'graphc[mpi]'")
    script = tmp_path / "rank.py"
    script.write_text("import sys\nimport numpy as np\nimport graphc as gc\n"
                      "import graphc.distributed as dist\ndist.init()\nr = dist.rank()\n"
                      f"OUT = {str(tmp_path)!r}\n" + textwrap.dedent(body))
    code, output, _ = run_in_group(dist.launch_command(2, [str(script)]), rank_env(), timeout,
                                   merge_output=True)
    return code, output


class _TwoEqualRanks:  # a pretend job of 2 ranks holding equal values
    size = 2

    def allreduce_sum(self, x):
        return x * 2


def test_allreduce_of_a_0d_value_stays_0d():
    """allreduce of a 0-d value came back with shape (1,) on 2+ ranks (eager and compiled;
    np.ascontiguousarray makes 0-d arrays 1-d) where one process gives (); now the shape is
    kept."""
    C.set_communicator(_TwoEqualRanks())
    try:
        eager = C.allreduce(gc.tensor(np.float64(1.5)), "mean").data
        compiled = gc.compile(lambda a: C.allreduce(a, "sum"))(np.float64(1.5))
        column = C.allreduce(gc.tensor(np.ones((2, 1))), "sum").data
    finally:
        C.set_communicator(None)
    assert eager.shape == () and float(eager) == 1.5
    assert np.shape(compiled) == () and float(compiled) == 3.0
    assert column.shape == (2, 1) and column.tolist() == [[2.0], [2.0]]


def test_allreduce_of_a_0d_value_on_two_ranks(tmp_path):
    """The same under mpiexec: every rank's 0-d total is 0-d, eager and compiled."""
    code, output = run_two_ranks(tmp_path, """
        eager = dist.allreduce(np.float64(1.0 + r), "sum")
        compiled = gc.compile(lambda x: dist.allreduce(x, "mean"))(np.float64(1.0 + r))
        print("rank", r, np.shape(np.asarray(eager)), float(np.asarray(eager)),
              np.shape(compiled), float(compiled))
    """)
    assert code == 0, output
    for r in range(2):
        assert f"rank {r} () 3.0 () 1.5" in output, output


# rows whose second half mirrors the first: noise drawn alike for both halves cancels
_MIRRORED = np.array([[1.], [2.], [3.], [4.], [-1.], [-2.], [-3.], [-4.]])


def _sampling_loss(p, batch, key, training):  # a loss that samples in evaluation, as a VAE's
    noise = gc.random.normal(gc.random.key(key), batch[0].shape, "float64")
    return gc.mean((noise + p["w"]) * batch[0])


def _sampling_trainer(distributed):
    return gc.Trainer(_sampling_loss, {"w": np.zeros((1, 1))}, gc.optim.SGD(lr=0.1),
                      [(_MIRRORED,)], steps=1, eval_batches=[(_MIRRORED,)], eval_iters=1,
                      distributed=distributed)


def test_evaluation_keys_differ_per_rank(tmp_path):
    """Trainer's evaluation keys lacked the rank that the training keys mix in, so a
    4-argument loss sampling in evaluation drew the same noise for every rank's rows (here
    mirrored rows: the 2-rank evaluation was exactly 0.0). Now each rank has its own key,
    rank 0's that of one process (bit for bit), and the evaluation is the mean of the ranks'
    losses, each with its own noise."""
    one = _sampling_trainer(False)
    one_key = int(one._eval_key(0))
    code, output = run_two_ranks(tmp_path, f"""
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_review_s37_distributed import _sampling_trainer
        tr = _sampling_trainer(True)
        value = tr.evaluate()
        print("rank", r, "key", int(tr._eval_key(0)), "eval", repr(float(value)), flush=True)
    """)
    assert code == 0, output
    lines = dict(line.split(" ", 2)[1:] for line in output.splitlines()
                 if line.startswith("rank "))
    keys = [int(lines[str(r)].split()[1]) for r in range(2)]
    assert keys[0] == one_key and keys[1] != one_key
    per_rank = [float(_sampling_loss({"w": np.zeros((1, 1))}, (_MIRRORED[4 * r:4 * r + 4],),
                                     np.int64(keys[r]), False).data) for r in range(2)]
    for r in range(2):
        value = float(lines[str(r)].split()[3])
        assert value != 0.0
        np.testing.assert_allclose(value, np.mean(per_rank), rtol=1e-12)
    # one process's evaluation keeps its key, so its value is unchanged
    np.testing.assert_allclose(one.evaluate(), _sampling_loss(
        {"w": np.zeros((1, 1))}, (_MIRRORED,), np.int64(one_key), False).data, rtol=1e-12)


class _AveragingOptimizer:  # an optimiser of one's own whose state starts as the parameters
    def init(self, params):
        return {"avg": {n: np.array(a, copy=True) for n, a in params.items()}}

    def update(self, grads, state, params):
        new = {n: params[n] - 0.1 * grads[n] for n in params}
        avg = {n: 0.5 * state["avg"][n] + 0.5 * new[n] for n in params}
        return avg, {"avg": avg}  # the parameters follow their average


def test_optimizer_state_starts_from_rank_0s_broadcast_parameters(tmp_path):
    """Trainer initialised the optimiser before broadcasting rank 0's parameters, so an
    optimiser whose state copies them started from each rank's own weights and the ranks
    silently diverged (rank 1 at 1.45 after a step). Now the state is made from the
    broadcast parameters: every rank starts at rank 0's 1.0 and steps to
    0.5 * 1.0 + 0.5 * (1.0 - 0.1) = 0.95."""
    code, output = run_two_ranks(tmp_path, f"""
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_review_s37_distributed import _AveragingOptimizer
        w0 = np.full((1, 1), 1.0 + r)  # a rank-dependent init, which the Trainer broadcasts
        tr = gc.Trainer(lambda p, b: gc.mean(b[0] * p["w"]), {{"w": w0}},
                        _AveragingOptimizer(), [(np.ones((2, 1)),)], steps=1,
                        distributed=True)
        start = tr.state["avg"]["w"].item()
        tr.train_step()
        print("rank", r, "start", start, "after", tr.params["w"].item(), flush=True)
    """)
    assert code == 0, output
    for r in range(2):
        assert f"rank {r} start 1.0 after 0.95" in output, output


_RNG = np.random.default_rng(0)
_X1, _X2, _Y = _RNG.normal(size=(8, 5)), _RNG.normal(size=(8, 2)), _RNG.normal(size=(8, 1))


def _nested_loss(p, batch):
    (a, b), t = batch  # a nested batch: ((x1, x2), y)
    return gc.mean((a @ p["w"] + b @ p["v"] - t) ** 2)


def _nested_trainer(distributed, batch=((_X1, _X2), _Y)):
    return gc.Trainer(_nested_loss, {"w": np.zeros((5, 1)), "v": np.zeros((2, 1))},
                      gc.optim.SGD(lr=0.1), [batch], steps=3, distributed=distributed)


def test_a_nested_batch_is_split_by_its_leaves(tmp_path):
    """A nested batch ((x1, x2), y) trained on one process but crashed on 2 ranks (the
    handshake and the split took np.asarray of each top-level element: an "inhomogeneous
    shape" ValueError), and fit() crashed on one process too (its samples-per-step count
    did the same). Now the leaves are hashed and split by rows, and 2 ranks train what one
    process trains (float64, 1e-12)."""
    one = _nested_trainer(False)
    assert one.fit(progress=False) == 0
    code, output = run_two_ranks(tmp_path, f"""
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_review_s37_distributed import _nested_trainer
        tr = _nested_trainer(True)
        assert tr.fit(progress=False) == 0
        np.savez(f"{{OUT}}/nested{{r}}.npz", **tr.params)
    """)
    assert code == 0, output
    for r in range(2):
        saved = np.load(tmp_path / f"nested{r}.npz")
        for name in ("w", "v"):
            np.testing.assert_allclose(saved[name], one.params[name], rtol=1e-12, atol=1e-12)


def test_a_nested_batch_leaf_that_is_not_per_row_is_refused_by_its_path():
    """With inner arrays of one shape, a nested batch was refused as "a global batch of 2
    rows (element 0's)" (the stacked pair's leading axis). Now each leaf is split by its
    rows, and a leaf whose row count differs from the first leaf's is refused naming both."""
    trainer = _nested_trainer(False)
    for rank in (0, 1):
        trainer.dist = types.SimpleNamespace(rank=lambda: rank, size=lambda: 2,
                                             shard=lambda rows: dist.shard(rows, rank, 2))
        (a, b), t = trainer._shard(((_X1, _X2), _Y))
        rows = slice(4 * rank, 4 * rank + 4)
        assert a.tolist() == _X1[rows].tolist() and b.tolist() == _X2[rows].tolist()
        assert t.tolist() == _Y[rows].tolist()
        (a, b), t = trainer._shard(((_X1, 2 * _X1), _Y))  # inner arrays of one shape
        assert b.tolist() == (2 * _X1[rows]).tolist() and t.shape == (4, 1)
        with pytest.raises(gc.GraphcError) as caught:
            trainer._shard(((_X1, _X2[:3]), _Y))
        assert caught.value.on_every_rank
        assert caught.value.message.startswith(
            "Trainer(distributed=True): batch element 0.1 has shape (3, 2), but every batch "
            "element is split by rows across the 2 ranks: its leading axis must be the global "
            "batch of 8 rows (element 0.0's); ")


_TINY_TRAIN = ["train", "--config", "tiny", "--n-layer", "1", "--n-embd", "16", "--n-head",
               "2", "--block-size", "8", "--batch-size", "4", "--eval-iters", "2",
               "--no-progress", "--sample-tokens", "0", "--steps", "2"]


def test_ranks_2_memory_limit_refusal_is_one_line_and_status_2(tmp_path):
    """`graphc train --ranks 2 --memory-limit 1KB` printed its line and then mpiexec's
    banner about a rank that exited non-zero: the refusal, raised while the Trainer is
    built (outside fail_together), was not marked as every rank's, so each rank left on its
    own. Now it is (every rank compiles the same plan): one line, status 2, as with one
    process (whose plan, of the whole batch, needs more)."""
    pytest.importorskip("mpi4py", reason="the mpi extra is not installed: pip install "
                                         "'graphc[mpi]'")
    text = tmp_path / "text.txt"
    text.write_text("to be or not to be, that is the question\\n" * 40, encoding="utf-8")
    args = [*_TINY_TRAIN, "--data", str(text), "--memory-limit", "1KB"]
    lines = []
    for ranks in ("1", "2"):
        code, out, err = run_in_group(
            [sys.executable, "-m", "graphc.cli", *args, "--out", str(tmp_path / ranks),
             "--ranks", ranks], rank_env(), 90)
        assert code == 2, err
        lines.append(err.splitlines())
    for ranks_lines in lines:  # (a rank's plan holds half the batch: a smaller peak)
        assert len(ranks_lines) == 1, lines
        assert ranks_lines[0].startswith("graphc: error: --memory-limit 1000 B cannot be met: ")
        assert ranks_lines[0].endswith(" KiB or shrink the batch")


def test_a_later_batch_that_does_not_split_is_refused_on_every_rank():
    """distributed.shard's "batch size 7 does not split over 2 ranks" (a later batch of an
    iterable) was not marked as every rank's, where the other refusals of a batch are: each
    rank printed its traceback. Every rank draws the same global batch, so it is now."""
    trainer = _nested_trainer(False)
    for rank in (0, 1):
        trainer.dist = types.SimpleNamespace(rank=lambda: rank, size=lambda: 2,
                                             shard=lambda rows: dist.shard(rows, rank, 2))
        with pytest.raises(gc.GraphcError) as caught:
            trainer._shard(((_X1[:7], _X2[:7]), _Y[:7]))
        assert caught.value.on_every_rank
        assert caught.value.message == ("batch size 7 does not split over 2 ranks; use a "
                                        "multiple of 2")


def test_fit_into_another_runs_checkpoint_is_refused_on_every_rank(tmp_path):
    """fit(out) checked for another run's checkpoint on rank 0 alone (the others write
    nothing), so rank 0 raised while rank 1 went on into the first evaluation and waited.
    Now the ranks agree on rank 0's refusal: every rank raises it, marked as every rank's,
    and the checkpoint is left as it was."""
    _nested_trainer(False).fit(str(tmp_path / "run"), progress=False)
    ckpt = tmp_path / "run" / "checkpoint.npz"
    before = ckpt.read_bytes()
    code, output = run_two_ranks(tmp_path, f"""
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_review_s37_distributed import _nested_trainer
        tr = _nested_trainer(True)
        try:
            tr.fit(f"{{OUT}}/run", progress=False)
        except gc.GraphcError as exc:
            print("rank", r, "every", exc.on_every_rank, "|", exc.message, flush=True)
    """)
    assert code == 0, output
    for r in range(2):
        assert (f"rank {r} every True | {ckpt} already exists, from another run; fit() does "
                f"not replace it: resume it first (trainer.resume({str(ckpt)!r})) or fit into "
                "another directory") in output, output
    assert ckpt.read_bytes() == before


def test_labels_given_as_a_list_are_split_by_rows_as_before():
    """Splitting a batch by its leaves took a list of per-row labels for one leaf per
    number and refused it ('batch element 1.0 has shape ()'), where it trained before
    (np.asarray made it a row array) and trains without distributed=True; a list or tuple
    of plain numbers is one array of rows again."""
    x = np.arange(16.0).reshape(8, 2)
    y = [0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0]

    def loss(p, b):
        t = gc.stack(list(b[1])) if isinstance(b[1], list) else b[1]
        return gc.mean(((b[0] @ p["w"])[:, 0] - t) ** 2)
    losses = [gc.Trainer(loss, {"w": np.zeros((2, 1))}, gc.optim.SGD(lr=0.01), [(x, y)],
                         steps=1, distributed=d).train_step() for d in (False, True)]
    assert losses == [0.5, 0.5]


_W_T = _RNG.normal(size=(2, 5))  # a torch Linear(5, 2)'s (out, in) weight


def _transposed_trainer(distributed, shift=0.0):
    """SGD on a weight stored transposed (`w.T` of a torch Linear's: Fortran order);
    `shift` a rank-dependent init the Trainer must replace by rank 0's."""
    return gc.Trainer(lambda p, b: gc.mean((b[0] @ p["w"] - b[1]) ** 2),
                      {"w": (_W_T + shift).T}, gc.optim.SGD(lr=0.1), [(_X1, _X2)], steps=2,
                      distributed=distributed)


def test_a_transposed_parameter_is_broadcast_and_trains_as_in_one_process(tmp_path):
    """Trainer(distributed=True) refused a parameter stored transposed (Fortran order,
    kept by its copy), which one process trains: broadcast_ took only C-contiguous arrays
    ("broadcast_: w is not a C-contiguous writable array", from a function the user never
    called). Now broadcast_ sends any layout through a C-ordered copy written back in place:
    rank 1's own init is replaced by rank 0's, and 2 ranks train what one process trains;
    a strided view is written through into its base, and a read-only array is refused in
    one line."""
    one = _transposed_trainer(False)
    assert not one.params["w"].flags.c_contiguous
    one_losses = [one.train_step() for _ in range(2)]
    code, output = run_two_ranks(tmp_path, f"""
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_review_s37_distributed import _transposed_trainer
        tr = _transposed_trainer(True, shift=float(r))
        start = tr.params["w"].copy()
        losses = [tr.train_step() for _ in range(2)]
        base = np.full((3, 4), 10.0 * r)
        dist.broadcast_({{"view": base[::2, 1:]}})  # a strided view of rank 0's 0.0
        try:
            dist.broadcast_({{"ro": np.broadcast_to(np.ones(2), (3, 2))}})
        except gc.GraphcError as exc:
            print("rank", r, "|", exc.message, flush=True)
        np.savez(f"{{OUT}}/transposed{{r}}.npz", start=start, w=tr.params["w"],
                 losses=losses, base=base)
    """)
    assert code == 0, output
    for r in range(2):
        saved = np.load(tmp_path / f"transposed{r}.npz")
        np.testing.assert_array_equal(saved["start"], _W_T.T)  # rank 0's, not its own
        np.testing.assert_allclose(saved["losses"], one_losses, rtol=1e-12)
        np.testing.assert_allclose(saved["w"], one.params["w"], rtol=1e-12, atol=1e-12)
        written = np.full((3, 4), 10.0 * r)
        written[::2, 1:] = 0.0
        np.testing.assert_array_equal(saved["base"], written)
        assert f"rank {r} | broadcast_: arrays['ro'] is read-only" in output, output


@pytest.mark.parametrize("arrays, said", [
    ([np.ones(2)], "arrays must be a dict of name -> numpy array (or None), got list"),
    (np.ones(2), "arrays must be a dict of name -> numpy array (or None), got ndarray"),
    (gc.tensor(np.ones(2)), "got a graphc Tensor (pass {'name': t.data})"),
    ({"w": gc.tensor(np.ones(2))}, "arrays['w'] must be a numpy array or None, got a graphc "
                                   "Tensor (pass its .data)"),
    ({"w": [1.0, 2.0]}, "arrays['w'] must be a numpy array or None, got list"),
    # taken on one rank, and under mpiexec "ro is not a writable array" with no location, or
    # sorted()'s raw "'<' not supported between instances of 'str' and 'int'"
    ({"ro": np.broadcast_to(np.ones(2), (3, 2))}, "arrays['ro'] is read-only, and broadcast_ "
                                                  "writes rank root's values into it in place"),
    ({1: np.ones(2), "b": np.ones(2)}, "the names must be all strings or all real numbers "
                                       "(ints or floats, no NaN), which sort into the same "
                                       "order on every rank; got int, str names"),
    # names of one kind that sorted() takes but orders only partially (by subset; a NaN):
    # their order followed each rank's insertion order, and on 2 ranks rank 1 received rank
    # 0's values into the wrong arrays (review r1 of 5911d59)
    ({frozenset({1}): np.ones(2), frozenset({2}): np.ones(2)}, "got frozenset names"),
    ({float("nan"): np.ones(2), 1.0: np.ones(2)}, "got a NaN name"),
    ({np.float32("nan"): np.ones(2), 1: np.ones(2)}, "got a NaN name"),
    # of one kind that does not sort: told "give them one kind", which they were
    ({("a", 1): np.ones(2), ("a", "b"): np.ones(2)}, "all strings or all real numbers "
                                                     "(ints or floats, no NaN), which sort into "
                                                     "the same order on every rank; got tuple "
                                                     "names"),
    ({np.longdouble(1): np.ones(2), 2: np.ones(2)}, "got int, longdouble names"),
    ({1j: np.ones(2), 2j: np.ones(2)}, "got complex names")])
def test_broadcast_of_what_is_not_a_dict_of_arrays_is_one_line_on_one_rank(arrays, said):
    """broadcast_ given a list or a graphc Tensor returned silently on one rank and under
    mpiexec failed deep in numpy's indexing ("only integer scalar arrays can be converted
    to a scalar index") or inside a traced take; now every rank count refuses it first, in
    one line naming the argument. A dict of arrays and None entries is still taken."""
    with pytest.raises(gc.GraphcError) as info:
        dist.broadcast_(arrays)
    assert info.value.message.startswith("broadcast_: ") and said in info.value.message
    assert "\n" not in info.value.message
    kept = np.arange(3.0)
    dist.broadcast_({"a": kept, "none": None})  # one rank: nothing to receive
    np.testing.assert_array_equal(kept, [0.0, 1.0, 2.0])
    # names of one kind sort: a Trainer(distributed=True) broadcasts int-keyed parameters
    # (7399465 refused every name not a string: review r12)
    dist.broadcast_({0: kept, 1: None})
    np.testing.assert_array_equal(kept, [0.0, 1.0, 2.0])


class _SendingRank:  # rank 0 of a pretend job of 2: keeps what it broadcasts, in order
    def __init__(self):
        self.sent = []

    def Bcast(self, buf, root=0):
        self.sent.append(buf.copy())


class _ReceivingRank:  # rank 1: receives rank 0's broadcasts, in the order they were sent
    def __init__(self, sent):
        self.sent = list(sent)

    def Bcast(self, buf, root=0):
        buf[...] = self.sent.pop(0)


@pytest.mark.parametrize("names", [
    ["b", "a", "c"],
    [3, 1, 2],                      # a Trainer's int-keyed parameters
    [np.int64(3), 1, np.uint8(2)],  # numpy's ints among them, sorted as Python ints
    [True, 2, np.False_],           # a bool, numpy's too, is 0 or 1 among ints
    # real numbers sort by value too: a Trainer's float-keyed parameters trained before
    # b6c7aea (refused there: review r7), with ints among them, numpy's, compared exactly
    # (numpy's int64 2**53 + 1 == float64 2.0**53)
    [2.5, 0.5, 1.5],
    [2.5, 1, np.float32(0.25), np.int64(-3), np.False_],
    [np.int64(2**53 + 1), 2.0**53, np.float16(-0.0)],
])
def test_broadcast_gives_each_name_rank_0s_values_whatever_each_ranks_insertion_order(
        monkeypatch, names):
    """broadcast_ sends the arrays in its names' sorted order: the names it takes (all
    strings or all ints) order totally, so a rank that inserted them in the reverse order
    still receives each name's own values. Two ranks in one process, as a pretend
    communicator that replays rank 0's broadcasts on rank 1."""
    monkeypatch.setitem(dist._STATE, "size", 2)
    sending = _SendingRank()
    monkeypatch.setitem(dist._STATE, "comm", sending)
    zero = {n: np.full(2, float(i + 1)) for i, n in enumerate(names)}
    dist.broadcast_(zero)
    monkeypatch.setitem(dist._STATE, "comm", _ReceivingRank(sending.sent))
    one = {n: np.zeros(2) for n in reversed(names)}
    dist.broadcast_(one)
    for i, n in enumerate(names):
        np.testing.assert_array_equal(one[n], [i + 1.0, i + 1.0])


def _named_trainer(names, distributed):
    """SGD on two parameters named `names`, one step."""
    def loss(p, batch):
        a, b = (p[n] for n in names)
        return gc.sum((batch[0] @ a + b) ** 2)
    return gc.Trainer(loss, {names[0]: np.ones((3, 2)), names[1]: np.full(2, 0.5)},
                      gc.optim.SGD(lr=0.1), lambda rng: (np.ones((2, 3)),), steps=1,
                      distributed=distributed)


@pytest.mark.parametrize("names", [(0.5, 1.5), (1, 2.5), (np.int64(1), np.int64(2)),
                                   ("w", "b")])
def test_trainer_with_real_number_parameter_names_trains_distributed(names):
    """b6c7aea refused float-keyed parameters (and an int/float mix), which trained before,
    at Trainer(distributed=True)'s construction; numpy-int names, which broadcast_ takes,
    were the handshake's raw 'keys must be str, int, float, bool or None'. Each trains as
    one process does."""
    alone, data_parallel = _named_trainer(names, False), _named_trainer(names, True)
    assert data_parallel.train_step() == alone.train_step()
    for n in names:
        np.testing.assert_array_equal(data_parallel.params[n], alone.params[n])
    assert data_parallel.params[names[0]][0, 0] == pytest.approx(-0.4)


@pytest.mark.parametrize("names, got", [((("a", 1), ("b", 2)), "got tuple names"),
                                        ((1, "b"), "got int, str names"),
                                        ((float("nan"), 1.0), "got a NaN name")])
def test_trainer_with_parameter_names_that_do_not_sort_is_one_line(names, got):
    """Tuple or int/str-mixed parameter names failed in Trainer(distributed=True) with the
    handshake's raw multi-frame TypeError (json's 'keys must be str, int, float, bool or
    None, not tuple', sorted()'s "'<' not supported between instances of 'str' and
    'int'"); now the one line of the names broadcast_ takes, at the construction."""
    with pytest.raises(gc.GraphcError) as info:
        _named_trainer(names, True)
    assert info.value.message == (
        "Trainer(distributed=True): the parameter names must be all strings or all real "
        "numbers (ints or floats, no NaN), which sort into the same order on every rank; "
        + got)
    line, where = str(info.value).splitlines()
    assert "test_review_s37_distributed.py" in where


def _meta_trainer(distributed, meta):
    return gc.Trainer(lambda p, b: gc.mean((b[0] @ p["w"]) ** 2), {"w": np.ones((3, 2))},
                      gc.optim.SGD(lr=np.float32(0.1)), lambda rng: (np.ones((2, 3)),),
                      steps=1, clip_norm=np.float32(10.0), seed=np.int64(3),
                      checkpoint_meta=meta, distributed=distributed)


@pytest.mark.parametrize("meta", [{1: 2, "a": 3}, {"run": {"b": 1, 2: [np.int64(3)]}},
                                  {"lr": np.float32(1e-3), "note": "x"}])
def test_checkpoint_meta_one_process_takes_trains_distributed(meta):
    """s43: the handshake json-dumped the facts with sort_keys, which compares a dict's keys
    as given: a checkpoint_meta whose keys mix ints and strs, which one process takes and
    saves, made Trainer(distributed=True) a raw TypeError ("'<' not supported between
    instances of 'str' and 'int'"). Keys are sorted as JSON's text now; numpy settings
    (lr, clip_norm, seed, a meta value) are read as their numbers or text."""
    alone, data_parallel = _meta_trainer(False, meta), _meta_trainer(True, meta)
    assert data_parallel.train_step() == alone.train_step() == pytest.approx(9.0)  # (3 * 1)**2
    np.testing.assert_array_equal(data_parallel.params["w"], alone.params["w"])
    assert dist._fact_text({"settings": meta}) == dist._fact_text(
        {"settings": dict(reversed(meta.items()))})  # any insertion order: one text


@pytest.mark.parametrize("fact, said", [
    ({(1, 2): 3}, "keys must be str, int, float, bool or None, not tuple"),
    (_circular := [], "Circular reference detected")])
def test_a_handshake_fact_json_cannot_hold_is_one_line_naming_it(fact, said):
    """A fact JSON cannot hold (a tuple key; a list holding itself) was a raw TypeError or
    ValueError from json.dumps; now one line naming the argument."""
    if fact is _circular:
        fact.append(fact)
    with pytest.raises(gc.GraphcError) as caught:
        dist.handshake(config=fact)
    assert str(caught.value) == (
        f"distributed.handshake: config cannot be compared across ranks ({said}); give JSON "
        "values: str, int, float, bool, None, and lists and dicts of them with str, int, "
        "float, bool or None keys")


def test_keys_json_writes_alike_are_refused_not_merged():
    """r4: keys 1 and "1" of one dict are one key in JSON text, and the handshake's round
    trip kept the last one: two ranks whose facts differed only in the other's value
    agreed. Refused in one line now, naming the fact."""
    for fact in ({1: "rank 0's", "1": "same"}, {"run": [{True: 1, "true": 2}]}):
        with pytest.raises(gc.GraphcError) as caught:
            dist.handshake(config=fact)
        key = "1" if 1 in fact else "true"
        assert str(caught.value) == (
            f'distributed.handshake: config cannot be compared across ranks (two keys of one '
            f'dict are both "{key}" in JSON text, where 1 and \'1\' are one key); give JSON '
            "values: str, int, float, bool, None, and lists and dicts of them with str, int, "
            "float, bool or None keys")
    assert dist._fact_text({"config": {1: "a", "2": "b"}}) == '{"config": {"1": "a", "2": "b"}}'


def test_a_numpy_scalar_in_a_fact_is_its_number_as_the_checkpoint_header_stores_it(
        tmp_path):
    """r4: the handshake wrote a numpy scalar JSON has no type for as its str(): meta
    {"sizes": [np.int64(3)]} on one rank and [3] on another were refused ("rank 0 has [3],
    rank 1 has ["3"]"), where the checkpoint header stores both as 3. It is its Python value
    now, as the header's; a value that differs still differs."""
    assert dist._fact_text({"s": {"sizes": [3], "on": True, "lr": 0.5}}) == dist._fact_text(
        {"s": {"sizes": [np.int64(3)], "on": np.bool_(True), "lr": np.float32(0.5)}}) == \
        '{"s": {"lr": 0.5, "on": true, "sizes": [3]}}'
    assert dist._fact_text({"lr": [np.float32(0.1)]}) == '{"lr": [0.10000000149011612]}'
    code, output = run_two_ranks(tmp_path, """
        dist.handshake(settings={"sizes": [3] if r == 0 else [np.int64(3)]})
        print(f"rank {r} agreed", flush=True)
        try:
            dist.handshake(settings={"sizes": [3] if r == 0 else [np.int64(4)]})
        except gc.GraphcError as exc:
            print(f"rank {r} | {exc}", flush=True)
    """)
    assert code == 0, output
    for r in range(2):
        assert f"rank {r} agreed" in output, output
        assert (f"rank {r} | ranks disagree on settings.sizes: rank 0 has [3], rank 1 has "
                "[4]") in output, output


def test_a_handshake_fact_one_rank_cannot_send_is_refused_on_every_rank(tmp_path):
    """Only rank 1 holds the fact JSON cannot hold: rank 1 alone raising left rank 0 in the
    allgather; every rank raises its line."""
    code, output = run_two_ranks(tmp_path, """
        try:
            dist.handshake(config={(1, 2): 3} if r == 1 else {"a": 1})
        except gc.GraphcError as exc:
            print(f"rank {r} every {exc.on_every_rank} | {exc}", flush=True)
    """)
    assert code == 0, output
    for r in range(2):
        assert (f"rank {r} every True | rank 1: distributed.handshake: config cannot be "
                "compared across ranks (keys must be str") in output, output
