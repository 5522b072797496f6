"""Session 35's fixes of the eager tape found by review; each test failed before its fix."""
import numpy as np
import pytest
import torch

import graphc as gc
from ir.errors import GraphcError

A = np.array([1.0, 2.0, 3.0])
C = np.array([4.0, 5.0, 6.0])


def _torch_grad(fn, *arrays):
    """d sum(fn(...)) / d first argument, in float64, on the values given."""
    ts = [torch.tensor(a, requires_grad=(k == 0)) for k, a in enumerate(arrays)]
    fn(*ts).backward()
    return ts[0].grad.numpy()


# ---- 1. values changed in place after the forward ----------------------------------------
def test_backward_uses_the_values_of_the_forward_after_in_place_updates():
    """backward() read an operand's array as it was at backward time: after `x -= 1` under
    no_grad and `c *= 2`, x.grad of sum(x * x * c) was [0, 20, 48]; now it is that of the
    forward's values, [8, 20, 36], as a compiled call on the tape gives (torch raises)."""
    expected = _torch_grad(lambda x, c: (x * x * c).sum(), A, C)
    for compiled in (False, True):
        f = gc.compile(lambda x, c: gc.sum(x * x * c)) if compiled \
            else (lambda x, c: gc.sum(x * x * c))
        x, c = gc.tensor(A, requires_grad=True), gc.tensor(C)
        y = f(x, c)
        with gc.no_grad():
            x -= 1.0
        c *= 2.0
        y.backward()
        np.testing.assert_allclose(x.grad, expected)
        np.testing.assert_allclose(x.data, A - 1.0)  # the update itself stays
        np.testing.assert_allclose(c.data, 2 * C)


def test_a_result_changed_in_place_keeps_its_forward_value_for_backward():
    """An op's result updated under no_grad (`y -= 1`) gave exp's rule, which reads its
    output, the new value: d sum(exp(x)^2)/dx was 2 (e^x - 1) e^x; now 2 e^(2x)."""
    x = gc.tensor(A, requires_grad=True)
    y = gc.exp(x)
    s = gc.sum(y * y)
    with gc.no_grad():
        y -= 1.0
    s.backward()
    np.testing.assert_allclose(x.grad, _torch_grad(lambda t: (t.exp() ** 2).sum(), A))
    np.testing.assert_allclose(y.data, np.exp(A) - 1.0)


def test_create_graph_after_an_in_place_update_differentiates_the_forward_values():
    """Grad of grad through the eager tape after `x -= 1` under no_grad: both sweeps read
    the new x (3 (x-1)^2, then 6 (x-1)); now 3 x^2 and 6 x, the forward's, and the first
    gradient is still on the tape of x."""
    x = gc.tensor(A, requires_grad=True)
    y = gc.sum(x * x * x)
    with gc.no_grad():
        x -= 1.0
    y.backward(create_graph=True)
    g = x.grad
    np.testing.assert_allclose(g.data, 3 * A ** 2)
    x.grad = None
    gc.sum(g).backward()
    tx = torch.tensor(A, requires_grad=True)
    (tg,) = torch.autograd.grad((tx ** 3).sum(), tx, create_graph=True)
    tg.sum().backward()
    np.testing.assert_allclose(x.grad, tx.grad.numpy())


def test_a_buffer_written_in_place_after_the_forward_keeps_its_forward_value():
    """A Buffer's array is written in place (a plan or Trainer holds it): load_state_dict
    between the forward and backward() changed the gradient of sum(x * scale) to the loaded
    scale; the tape now keeps the Buffer's values of the forward."""
    class Scaled(gc.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("scale", C.copy())

        def forward(self, x):
            return x * self.scale

    m = Scaled()
    x = gc.tensor(A, requires_grad=True)
    y = gc.sum(m(x))
    m.load_state_dict({"scale": np.zeros(3)})
    y.backward()
    np.testing.assert_allclose(x.grad, C)
    np.testing.assert_allclose(m.scale.data, 0.0)


# ---- 2. a gc.compile'd module assigned as a submodule ------------------------------------
class _Net(gc.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = gc.compile(gc.nn.Sequential(gc.nn.Linear(4, 4, dtype="float64"),
                                                gc.nn.Dropout(0.5)))
        self.head = gc.nn.Linear(4, 1, dtype="float64")

    def forward(self, x):
        return self.head(gc.relu(self.body(x)))


def test_a_compiled_submodule_is_registered_as_its_module():
    """`self.body = gc.compile(layer)` (torch's `torch.compile(layer)`) was a plain
    attribute: its parameters were missing from named_parameters() and state_dict(), so an
    optimiser bound to the parent never updated them. Now the compiled module is the child
    `body`, its names those of the module uncompiled; train()/eval() reach it."""
    gc.nn.manual_seed(0)  # weights and dropout keys under which body's gradient is not 0
    net = _Net()
    names = ["body.0.weight", "body.0.bias", "head.weight", "head.bias"]
    assert [n for n, _ in net.named_parameters()] == names
    assert list(net.state_dict()) == names
    assert [n for n, _ in net.named_modules()] == ["", "body", "body.0", "body.1", "head"]
    assert net.eval().body.fn[1].training is False
    w0 = np.array(net.body.fn[0].weight.data)
    net.train()
    opt = gc.optim.SGD(lr=0.1).bind(net)
    gc.sum(net(np.ones((2, 4)))).backward()
    grad = np.array(net.body.fn[0].weight.grad)
    assert np.abs(grad).sum() > 0
    opt.step()
    np.testing.assert_allclose(net.body.fn[0].weight.data, w0 - 0.1 * grad)


def test_a_compiled_submodule_loads_copies_and_takes_torch_names():
    """load_state_dict, copy.deepcopy (it failed: the plans cannot be pickled) and
    load_torch_state_dict of torch's `body._orig_mod.` names reach the compiled child."""
    import copy
    net, other = _Net().eval(), _Net().eval()
    x = np.arange(8.0).reshape(2, 4) / 8
    other.load_state_dict(net.state_dict())
    with gc.no_grad():
        np.testing.assert_allclose(np.asarray(other(x)), np.asarray(net(x)))
    twin = copy.deepcopy(net)
    assert twin.body.fn[0].weight is not net.body.fn[0].weight
    twin.body.fn[0].weight.data = twin.body.fn[0].weight.data * 2
    with gc.no_grad():
        assert not np.allclose(np.asarray(twin(x)), np.asarray(net(x)))
    torch_names = {k.replace("body.", "body._orig_mod."): (v.T if k.endswith("weight") else v)
                   for k, v in net.state_dict().items()}
    twin.load_torch_state_dict(torch_names)
    with gc.no_grad():
        np.testing.assert_allclose(np.asarray(twin(x)), np.asarray(net(x)))


# ---- 3, 4. what a user sets on a tensor ---------------------------------------------------
def test_an_integer_tensor_set_to_require_grad_is_refused_at_the_assignment():
    """`t.requires_grad = True` on an int64 tensor was taken, and refused only at
    backward() (before session 35 backward() gave it an int64 .grad); torch refuses the
    assignment. Now the property refuses it in one line at the user's line, however the
    integer or bool tensor was made; a float tensor and a weak number still take it."""
    from runtime.eager import Buffer
    with pytest.raises(RuntimeError, match="only Tensors of floating point"):
        torch.tensor([1, 2]).requires_grad = True
    made = [gc.tensor(np.array([1, 2, 3])), gc.Tensor(np.arange(2)), gc.arange(3),
            gc.zeros(2, dtype="int32"), gc.tensor(A).astype("int32"), gc.tensor(A) > 1,
            gc.argmax(gc.tensor(A)), Buffer(np.arange(3)), gc.abs(3)]
    for t in made:
        with pytest.raises(GraphcError, match=f"(?m)^only floating-point tensors can require "
                                              f"gradients, got {t.dtype}$") as info:
            t.requires_grad = True
        assert "test_review_s35_tape.py" in str(info.value).splitlines()[1]
        assert not t.requires_grad
        t.requires_grad = False  # (False is taken, as torch's)
    x, w = gc.tensor(A, dtype="float32"), gc.sqrt(2.0)  # (w: a weak float32, now strong)
    x.requires_grad = w.requires_grad = True
    gc.sum(x * x * w).backward()
    np.testing.assert_allclose(x.grad, 2 * np.sqrt(2.0) * A, rtol=1e-6)
    np.testing.assert_allclose(w.grad, np.sum(A * A), rtol=1e-6)


# A pickle graphc wrote before requires_grad was a property (de3d0ea): {"labels": an int64
# tensor [1, 2] whose requires_grad was set by assignment (taken then), "w": float32
# [0.5, -1.5] requiring grad, named "w"}. Its slot state names the flag "requires_grad".
_OLD_PICKLE_INT_FLAG = (
    b"\x80\x04\x95t\x01\x00\x00\x00\x00\x00\x00}\x94(\x8c\x06labels\x94\x8c\rruntime.eager"
    b"\x94\x8c\x06Tensor\x94\x93\x94)\x81\x94N}\x94(\x8c\x04data\x94\x8c\x16numpy._core.mu"
    b"ltiarray\x94\x8c\x0c_reconstruct\x94\x93\x94\x8c\x05numpy\x94\x8c\x07ndarray\x94\x93"
    b"\x94K\x00\x85\x94C\x01b\x94\x87\x94R\x94(K\x01K\x02\x85\x94h\x0b\x8c\x05dtype\x94"
    b"\x93\x94\x8c\x02i8\x94\x89\x88\x87\x94R\x94(K\x03\x8c\x01<\x94NNNJ\xff\xff\xff\xffJ"
    b"\xff\xff\xff\xffK\x00t\x94b\x89C\x10\x01\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00"
    b"\x00\x00\x00\x00\x94t\x94b\x8c\rrequires_grad\x94\x88\x8c\x04grad\x94N\x8c\x04_ctx"
    b"\x94N\x8c\x04name\x94N\x8c\x07_serial\x94K\x00u\x86\x94b\x8c\x01w\x94h\x04)\x81\x94N"
    b"}\x94(h\x07h\nh\rK\x00\x85\x94h\x0f\x87\x94R\x94(K\x01K\x02\x85\x94h\x14\x8c\x02f4"
    b"\x94\x89\x88\x87\x94R\x94(K\x03h\x18NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t\x94b"
    b'\x89C\x08\x00\x00\x00?\x00\x00\xc0\xbf\x94t\x94bh\x1c\x88h\x1dNh\x1eNh\x1fh"h K\x00u'
    b"\x86\x94bu.")


def test_an_old_pickle_with_an_integer_tensor_flagged_to_require_grad_still_loads():
    """The refusing requires_grad setter ran at unpickling, so pickle.load of a whole file
    holding such a tensor failed ("only floating-point tensors can require gradients");
    unpickling restores the state as it was saved, and backward() still refuses it."""
    import pickle
    got = pickle.loads(_OLD_PICKLE_INT_FLAG)
    labels, w = got["labels"], got["w"]
    assert labels.dtype == np.int64 and labels.requires_grad is True
    np.testing.assert_array_equal(labels.data, [1, 2])
    assert w.dtype == np.float32 and w.requires_grad is True and w.name == "w"
    np.testing.assert_array_equal(w.data, [0.5, -1.5])
    with pytest.raises(GraphcError, match="int64: only floating-point"):
        gc.sum(labels * 2).backward()
    gc.sum(w * w).backward()
    np.testing.assert_array_equal(w.grad, [1.0, -3.0])
    again = pickle.loads(pickle.dumps(got))  # (saved by this graphc: the same state)
    assert again["labels"].requires_grad is True and again["w"].name == "w"


def test_an_assigned_grad_of_another_shape_is_refused():
    """x.grad = zeros((2, 1)) for x of shape (3,) broadcast silently into a (2, 3) .grad;
    now accumulation refuses in one line, as torch refuses the assignment."""
    x = gc.tensor(A, requires_grad=True)
    x.grad = np.zeros((2, 1))
    with pytest.raises(GraphcError, match=r"shape \(3,\) has shape \(2, 1\)"):
        gc.sum(x * x).backward()
    x.grad = np.ones(3)  # the right shape accumulates as before
    gc.sum(x * x).backward()
    np.testing.assert_allclose(x.grad, 1 + 2 * A)


# ---- 5. backward()'s arguments and zero_grad ----------------------------------------------
def test_backward_takes_torchs_arguments():
    """backward(gradient=g), backward(retain_graph=True) and backward(inputs=[x]) raised a
    bare TypeError; now they are torch's: the cotangent, accepted (the tape is kept), and
    only the listed tensors (a non-leaf too) get a .grad."""
    g = np.array([1.0, -2.0, 0.5])
    x, w = gc.tensor(A, requires_grad=True), gc.tensor(C, requires_grad=True)
    h = x * w
    y = gc.sin(h)
    y.backward(gradient=g, retain_graph=True)
    tx, tw = torch.tensor(A, requires_grad=True), torch.tensor(C, requires_grad=True)
    th = tx * tw
    th.retain_grad()
    torch.sin(th).backward(gradient=torch.tensor(g))
    np.testing.assert_allclose(x.grad, tx.grad.numpy())
    np.testing.assert_allclose(w.grad, tw.grad.numpy())
    x.grad = w.grad = None
    y.backward(g, inputs=[x, h])
    np.testing.assert_allclose(x.grad, tx.grad.numpy())
    np.testing.assert_allclose(h.grad, th.grad.numpy())
    assert w.grad is None
    with pytest.raises(GraphcError, match="inputs"):
        y.backward(g, inputs=[])


def test_backward_refuses_a_gradient_that_is_not_real_numbers():
    """backward("a") failed with numpy's ValueError and a complex cotangent was taken (its
    imaginary part dropped with a warning); both are one GraphcError line now."""
    x = gc.tensor(A, requires_grad=True)
    with pytest.raises(GraphcError, match="real numbers .* got a str"):
        gc.sum(x * x).backward("a")
    with pytest.raises(GraphcError, match="got complex numbers"):
        (x * x).backward(np.ones(3) * 1j)
    assert x.grad is None


def test_zero_grad_without_none_zeroes_in_place():
    """zero_grad(set_to_none=False) gave each parameter a new zero array; a reference to
    the old .grad kept the old values. Now it zeroes in place, as torch's grad.zero_(),
    the module's and the bound optimiser's alike."""
    for use_optimizer in (False, True):
        lin = gc.nn.Linear(3, 2, dtype="float64")
        opt = gc.optim.SGD(lr=0.1).bind(lin)
        gc.sum(lin(np.ones((1, 3)))).backward()
        held = lin.weight.grad
        (opt if use_optimizer else lin).zero_grad(set_to_none=False)
        assert lin.weight.grad is held
        np.testing.assert_array_equal(held, np.zeros((3, 2)))


def test_numpys_reductions_and_tolist_take_a_tensor():
    """A compiled model under grad mode now returns a Tensor, as eager code does, and numpy's
    reductions on one failed: np.mean(t) calls t.mean(axis=None, dtype=None, out=None), and
    the methods took no dtype or out (TypeError); t.tolist() did not exist. They take
    numpy's keywords now (dtype casts first, out= is refused in one line) and tolist() is
    numpy's."""
    t = gc.tensor(np.arange(6.0).reshape(2, 3))
    assert float(np.mean(t)) == 2.5 and np.asarray(np.sum(t, axis=0)).tolist() == [3, 5, 7]
    assert float(np.max(t)) == 5.0 and int(np.argmax(t)) == 5
    assert float(np.var(t)) == pytest.approx(np.var(np.arange(6.0)))
    ints = np.mean(gc.tensor(np.arange(4)), dtype=np.float64)
    assert ints.dtype == np.float64 and float(ints) == 1.5
    assert t.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    assert np.asarray(t.sum(0, True)).shape == (1, 3)  # the positional form as before
    with pytest.raises(gc.GraphcError, match=r"sum\(out=\.\.\.\)"):
        np.sum(t, out=np.zeros(()))
    model = gc.nn.Linear(3, 2)
    out = gc.compile(model)(np.ones((4, 3), np.float32))
    assert isinstance(out, gc.Tensor) and out.requires_grad
    assert float(np.mean(out)) == pytest.approx(float(np.mean(np.asarray(out))))


def test_a_compiled_view_of_the_module_itself_or_an_ancestor_is_a_plain_attribute():
    """A gc.compile'd Module held as an attribute is a child module, and one of the module
    itself (m.fast = gc.compile(m)) or of a module above it made the tree a cycle:
    parameters(), state_dict() and eval() recursed until RecursionError. Such an attribute
    is a plain one now (as before compiled children were registered): m has its own two
    parameters, and the compiled view still runs."""
    m = gc.nn.Linear(2, 2)
    m.fast = gc.compile(m)
    assert [name for name, _ in m.named_parameters()] == ["weight", "bias"]
    assert list(m.state_dict()) == ["weight", "bias"]
    assert m.eval() is m and not m.training
    x = gc.tensor(np.ones((1, 2), np.float32))
    np.testing.assert_allclose(np.asarray(m.fast(x)), m(x).numpy(), rtol=1e-6)
    model = gc.nn.Sequential(gc.nn.Linear(2, 3), gc.nn.ReLU())
    model[0].whole = gc.compile(model)
    assert list(model.state_dict()) == ["0.weight", "0.bias"]
    assert [name for name, _ in model.named_modules()] == ["", "0", "1"]
    # a compiled module elsewhere is still a child, its parameters the parent's
    model.head = gc.compile(gc.nn.Linear(3, 1))
    assert list(model.state_dict())[-2:] == ["head.weight", "head.bias"]


def test_a_compiled_child_holding_a_compiled_view_of_its_parent_stays_a_child():
    """Whether a compiled module is a child was decided on every walk (does it reach the
    owner?): a compiled child holding gc.compile(parent) then reached its parent and was
    dropped from parameters() and state_dict() (never trained, never saved), and every walk
    searched each compiled child's subtree again. It is decided once, at the assignment:
    the view that closes the cycle is the plain attribute, the child stays a child."""
    class Root(gc.nn.Module):
        def __init__(self):
            super().__init__()
            self.head = gc.nn.Linear(4, 4)
            self.body = gc.compile(gc.nn.Linear(4, 4))
    root = Root()
    names = ["body.bias", "body.weight", "head.bias", "head.weight"]
    assert sorted(root.state_dict()) == names
    root.body.__wrapped__.whole = gc.compile(root)
    assert sorted(root.state_dict()) == names and len(list(root.parameters())) == 4
    root.eval()
    assert not root.body.__wrapped__.training
    root.body.__wrapped__.whole = None  # the view replaced: nothing noted stays behind
    assert "whole" not in vars(root.body.__wrapped__).get("_compiled_views", ())


def test_numpys_other_reduction_keywords_are_refused_in_one_line():
    """np.min(t, initial=0.0) and np.sum(t, where=mask) gave a bare TypeError; they are one
    GraphcError line naming the keyword where t requires grad (session 38: numpy computes
    them from the values of a tensor that does not)."""
    t = gc.tensor(np.array([1.0, 2.0, 3.0, 4.0], np.float32), requires_grad=True)
    with pytest.raises(GraphcError, match=r"min\(initial=\.\.\.\): not taken"):
        np.min(t, initial=0.0)
    with pytest.raises(GraphcError, match=r"sum\(where=\.\.\.\): not taken"):
        np.sum(t, where=np.array([True, False, True, True]))
