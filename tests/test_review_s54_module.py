"""Session 54's fixes to gc.nn.Module and the norm layers against torch.nn.Module: a buffer set
to a Python number, load_state_dict copying into the Parameters' arrays, register_buffer over
an (empty) parameter or child, BatchNorm's running statistics given as lists, and errors
that show a Parameter in one line; each against torch on the same code."""
import numpy as np
import pytest

import graphc as gc
from errorcheck import assert_one_line_error, one_line_problem

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")

HERE = "test_review_s54_module.py"


# -- 1. a buffer set to a Python number ------------------------------------------------------

@pytest.mark.parametrize("value", [1, 2.5, True])
def test_setting_a_buffer_to_a_python_number_is_torchs_type_error(value):
    theirs = torch.nn.BatchNorm1d(3)
    with pytest.raises(TypeError, match="cannot assign .* as buffer 'running_var'"):
        theirs.running_var = value
    ours = gc.nn.BatchNorm1d(3)
    with pytest.raises(TypeError):
        ours.running_var = value
    problem = one_line_problem(lambda: setattr(ours, "running_var", value), HERE)
    assert problem.startswith(f"BatchNorm1d: cannot assign {'a bool' if value is True else 'an int' if isinstance(value, int) else 'a float'} as buffer 'running_var'"), problem
    # the Buffer is as it was (before: an int64 or float64 0-d Buffer took its place)
    assert isinstance(ours.running_var, gc.nn.Buffer)
    assert ours.running_var.data.dtype == np.float32
    np.testing.assert_array_equal(ours.running_var.data, np.ones(3, np.float32))


def test_a_buffer_set_to_a_list_of_numbers_keeps_its_dtype_and_trains_as_torchs():
    x = np.random.default_rng(0).normal(size=(4, 3))
    theirs = torch.nn.BatchNorm1d(3).double()
    theirs.running_mean = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)
    theirs(torch.tensor(x))
    ours = gc.nn.BatchNorm1d(3, dtype="float64")
    ours.running_mean = [0, 1, 2]  # ints: before, an int64 Buffer the update failed on
    assert isinstance(ours.running_mean, gc.nn.Buffer)
    assert ours.running_mean.data.dtype == np.float64
    ours(gc.tensor(x))
    np.testing.assert_allclose(ours.running_mean.data, theirs.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours.running_var.data, theirs.running_var.numpy(), rtol=1e-12)
    assert_one_line_error(lambda: setattr(ours, "running_var", [1.0, "a", 2.0]),
                          "BatchNorm1d.running_var = ...: the buffer's list is not an array "
                          "of numbers", HERE)
    assert_one_line_error(lambda: setattr(ours, "running_var", [1.0, [2.0], 3.0]),
                          "BatchNorm1d.running_var = ...: the buffer's list is not an array "
                          "of numbers", HERE)


# -- 2. load_state_dict copies into the Parameters' arrays ----------------------------------

def test_load_state_dict_copies_into_the_parameters_and_a_bound_optimiser_trains_them():
    rng = np.random.default_rng(1)
    w0, b0, w1, b1 = rng.normal(size=(2, 3)), rng.normal(size=2), rng.normal(size=(2, 3)), \
        rng.normal(size=2)
    x = rng.normal(size=(4, 3))
    theirs = torch.nn.Linear(3, 2).double()
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(w0))
        theirs.bias.copy_(torch.tensor(b0))
    their_held = theirs.weight.data
    theirs.load_state_dict({"weight": torch.tensor(w1), "bias": torch.tensor(b1)})
    assert torch.equal(their_held, torch.tensor(w1))  # torch's copy_: the storage is kept
    ours = gc.nn.Linear(3, 2, dtype="float64")
    ours.weight.data[...] = w0.T
    ours.bias.data[...] = b0
    weight, held = ours.weight, ours.weight.data
    our_opt = gc.optim.SGD(lr=0.1, momentum=0.9).bind(ours)
    ours.load_state_dict({"weight": w1.T, "bias": b1})
    assert ours.weight is weight
    # the Parameter gets a new array, as an optimiser step gives it (the tape's arrays stay
    # the forward's: test_a_backward_pending_across_load_state_dict_...), so an array read
    # from it before keeps its values, where torch's copy_ writes the storage they share
    np.testing.assert_array_equal(held, w0.T)
    np.testing.assert_array_equal(ours.weight.data, w1.T)
    buffers = {}
    for _ in range(2):
        # torch.optim.SGD(lr=0.1, momentum=0.9)'s step, written out (torch.optim's import
        # took seconds)
        theirs.zero_grad()
        (theirs(torch.tensor(x)) ** 2).sum().backward()
        with torch.no_grad():
            for name, param in theirs.named_parameters():
                buf = buffers.get(name)
                buffers[name] = param.grad.clone() if buf is None else 0.9 * buf + param.grad
                param -= 0.1 * buffers[name]
        our_opt.zero_grad()
        (ours(gc.tensor(x)) ** 2).sum().backward()
        our_opt.step()
    np.testing.assert_allclose(ours.weight.data, theirs.weight.detach().numpy().T, rtol=1e-12)
    np.testing.assert_allclose(ours.bias.data, theirs.bias.detach().numpy(), rtol=1e-12)


@pytest.mark.parametrize("compiled", [False, True])
def test_a_backward_pending_across_load_state_dict_gives_the_forwards_gradient(compiled):
    # torch raises ("modified by an inplace operation"); graphc's tape keeps the arrays the
    # forward read (runtime/eager.py's _rewound), which a load written into the Parameters'
    # arrays in place changed under it: x.grad silently used the loaded weight
    rng = np.random.default_rng(2)
    w0, b0, x = rng.normal(size=(2, 3)), rng.normal(size=2), rng.normal(size=(4, 3))
    theirs = torch.nn.Linear(3, 2).double()
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(w0))
        theirs.bias.copy_(torch.tensor(b0))
    their_x = torch.tensor(x, requires_grad=True)
    (theirs(their_x) ** 2).sum().backward()  # the gradient of the forward's weights
    ours = gc.nn.Linear(3, 2, dtype="float64")
    ours.load_state_dict({"weight": w0.T, "bias": b0})
    model = gc.compile(ours) if compiled else ours
    our_x = gc.tensor(x, requires_grad=True)
    loss = (model(our_x) ** 2).sum()
    ours.load_state_dict({"weight": 10 * w0.T, "bias": b0})
    loss.backward()
    np.testing.assert_allclose(our_x.grad.data, their_x.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours.weight.grad.data, theirs.weight.grad.numpy().T,
                               rtol=1e-12)


def test_a_state_dict_taken_before_load_state_dict_keeps_its_parameters_values():
    # examples/digits_mlp.py's main(): `initial = model.state_dict()`, then the compiled run
    # loads each epoch's parameters (model.load_state_dict(params, strict=False)), then an
    # eager model is loaded with `initial` to train from the same start; written into the
    # Parameters' arrays in place, `initial` held the trained weights by then
    model = gc.nn.Sequential(gc.nn.Linear(3, 4), gc.nn.ReLU(), gc.nn.Linear(4, 2))
    initial = model.state_dict()
    kept = {name: np.array(value) for name, value in initial.items()}
    model.load_state_dict({name: value + 1 for name, value in kept.items()}, strict=False)
    for name, value in kept.items():
        np.testing.assert_array_equal(initial[name], value, err_msg=name)
        np.testing.assert_array_equal(model.state_dict()[name], value + 1, err_msg=name)


def test_load_state_dict_into_a_read_only_parameter_array_still_loads():
    ours = gc.nn.Linear(2, 2, dtype="float64")
    frozen = np.zeros((2, 2))
    frozen.setflags(write=False)
    ours.weight.data = frozen
    ours.load_state_dict({"weight": np.ones((2, 2)), "bias": np.ones(2)})
    np.testing.assert_array_equal(ours.weight.data, np.ones((2, 2)))
    np.testing.assert_array_equal(frozen, np.zeros((2, 2)))


# -- 3. register_buffer over an (empty) parameter or child -----------------------------------

@pytest.mark.parametrize("held", ["empty parameter", "empty child", "parameter", "child"])
def test_register_buffer_over_a_parameter_or_child_slot_is_torchs_key_error(held):
    def build(nn, make):
        module = nn.Module()
        if held == "empty parameter":
            module.register_parameter("x", None)
        elif held == "empty child":
            module.add_module("x", None)
        elif held == "parameter":
            module.x = nn.Parameter(make(2))
        else:
            module.x = nn.ReLU()
        return module

    theirs = build(torch.nn, torch.ones)
    with pytest.raises(KeyError, match="attribute 'x' already exists"):
        theirs.register_buffer("x", torch.ones(2))
    ours = build(gc.nn, lambda n: np.ones(n, np.float32))
    with pytest.raises(KeyError):
        ours.register_buffer("x", np.ones(2, np.float32))
    assert_one_line_error(lambda: ours.register_buffer("x", np.ones(2, np.float32)),
                          "register_buffer('x'): the module's x is", HERE)
    # nothing registered: the slot is what it was, and no buffer is named
    assert [n for n, _ in ours.named_buffers()] == []
    if held.startswith("empty"):
        assert ours.x is None
        # the empty slot still takes its own kind, as torch's
        ours.x = gc.nn.Parameter(np.ones(2, np.float32)) if held == "empty parameter" \
            else gc.nn.ReLU()
        assert [n for n, _ in ours.named_buffers()] == []


def test_register_parameter_over_a_setting_is_a_key_error_too():
    ours = gc.nn.Linear(2, 2)
    with pytest.raises(KeyError):
        ours.register_parameter("in_features", gc.nn.Parameter(np.ones(2, np.float32)))
    with pytest.raises(KeyError, match="already exists"):
        torch.nn.Linear(2, 2).register_parameter("in_features",
                                                 torch.nn.Parameter(torch.ones(2)))


# -- 4. BatchNorm's running statistics as lists ----------------------------------------------

def test_load_state_dict_assign_of_lists_takes_the_models_dtype():
    x = np.random.default_rng(2).normal(size=(4, 3)).astype(np.float32)
    state = {"weight": [1, 2, 3], "bias": [0.5, 0, 0], "running_mean": [0.0, 1.0, 2.0],
             "running_var": [1, 2, 4], "num_batches_tracked": 5}
    theirs = torch.nn.BatchNorm1d(3)
    theirs.load_state_dict({k: torch.tensor(v, dtype=torch.int64 if k == "num_batches_tracked"
                                            else torch.float32) for k, v in state.items()})
    ours = gc.nn.BatchNorm1d(3)
    ours.load_state_dict(state, assign=True)
    for name, b in [*ours.named_parameters(), *ours.named_buffers()]:
        assert b.data.dtype == (np.int64 if name == "num_batches_tracked" else np.float32), \
            name
    theirs.eval()
    ours.eval()
    np.testing.assert_allclose(ours(gc.tensor(x)).data,
                               theirs(torch.tensor(x)).detach().numpy(), rtol=1e-6)


def test_an_array_in_one_empty_running_statistic_is_one_line_in_eval():
    theirs = torch.nn.BatchNorm1d(3, track_running_stats=False)
    theirs.running_mean = torch.zeros(3)
    with pytest.raises(RuntimeError, match="running_var must be defined"):
        theirs.eval()(torch.ones(2, 3))
    ours = gc.nn.BatchNorm1d(3, track_running_stats=False)
    # torch's empty buffers: not in state_dict, filled by an array, refusing a number
    assert list(ours.state_dict()) == ["weight", "bias"]
    assert_one_line_error(lambda: setattr(ours, "running_mean", 0.0),
                          "BatchNorm1d: cannot assign a float as buffer 'running_mean'", HERE)
    ours.running_mean = [0.0, 0.0, 0.0]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(ours(x).data, theirs.train()(torch.tensor(x)).detach())
    ours.eval()
    assert_one_line_error(lambda: ours(x), "BatchNorm1d: running_var is None but "
                          "running_mean is an array", HERE)


# -- 5. messages that show a Parameter -------------------------------------------------------

def test_errors_show_a_parameter_by_its_shape_and_dtype_in_one_line():
    p = gc.nn.Parameter(np.ones((3, 4), np.float32))
    shown = "Parameter(shape=(3, 4), dtype=float32)"
    for call, lead in [
            (lambda: gc.nn.Linear(p, 2), "Linear: in_features must be a non-negative int, got"),
            (lambda: gc.nn.BatchNorm1d(3, momentum=p), "BatchNorm1d: momentum must be a "
             "number or None, got"),
            (lambda: gc.nn.Dropout(p), "Dropout: p must be a number, got"),
            (lambda: gc.nn.Embedding(3, 3, padding_idx=p), "Embedding: padding_idx must be"),
            (lambda: gc.nn.ParameterDict([p]), "item #0 is")]:
        problem = one_line_problem(call, HERE)  # (before: the array over three lines)
        assert lead in problem and shown in problem, problem


def test_shown_values():
    from ir.shown import shown
    assert shown(gc.nn.Parameter(np.ones((3, 4), np.float32))) == \
        "Parameter(shape=(3, 4), dtype=float32)"
    # (a small one by its numbers since s55: test_shown_small_arrays)
    assert shown(gc.nn.Buffer(np.zeros(9))) == "Buffer(shape=(9,), dtype=float64)"
    assert shown(np.array(0.5, np.float32)) == "ndarray(0.5, dtype=float32)"
    assert shown([np.ones(9), 3]) == "[ndarray(shape=(9,), dtype=float64), 3]"
    assert shown(3) == "3" and shown("x") == "'x'"
    # a 1-tuple keeps repr's comma (LayerNorm((np.array(3.5),)) read "(ndarray(...))")
    assert shown((np.array(3.5),)) == "(ndarray(3.5, dtype=float64),)"
    assert shown([np.array(3.5)]) == "[ndarray(3.5, dtype=float64)]"
    assert shown((np.ones(9), 1)) == "(ndarray(shape=(9,), dtype=float64), 1)"
    assert "\n" not in shown(torch.ones(3, 3)) and "(3, 3)" in shown(torch.ones(3, 3))
