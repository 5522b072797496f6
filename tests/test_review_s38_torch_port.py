"""Session 38's fixes of what porting PyTorch's tutorials to graphc ran into (weight tying,
optimiser settings, traced values' Tensor methods, masks, load_torch_state_dict); each test
failed before its fix."""
import copy
import pickle

import numpy as np
import pytest

import graphc as gc
from ir.errors import GraphcError

torch = pytest.importorskip("torch", reason="torch (the test oracle) is not installed")


class TorchTiedLM(torch.nn.Module):
    def __init__(self, ntoken, nhid):
        super().__init__()
        self.encoder = torch.nn.Embedding(ntoken, nhid)
        self.decoder = torch.nn.Linear(nhid, ntoken)
        self.decoder.weight = self.encoder.weight

    def forward(self, x):
        return self.decoder(self.encoder(x))


class LM(gc.nn.Module):
    def __init__(self, ntoken, nhid):
        super().__init__()
        self.encoder = gc.nn.Embedding(ntoken, nhid)
        self.decoder = gc.nn.Linear(nhid, ntoken)


class TiedInForwardLM(gc.nn.Module):
    """graphc's way to tie: the table applied in torch's (out, in) layout in forward."""
    def __init__(self, ntoken, nhid):
        super().__init__()
        self.encoder = gc.nn.Embedding(ntoken, nhid)
        self.decoder_bias = gc.nn.Parameter(np.zeros(ntoken))

    def forward(self, x):
        return gc.linear(self.encoder(x), self.encoder.weight, self.decoder_bias)


@pytest.mark.parametrize("ntoken, nhid", [(6, 10), (10, 6)])
def test_weight_tying_across_layouts_is_refused(ntoken, nhid):
    """`decoder.weight = encoder.weight` decided the Linear's layout at the tie: right on a
    fresh model, but silently wrong (square) or a matmul error after deepcopy/pickle of the
    model, a tied state_dict() loaded into the untied class, or an untie by a fresh
    Parameter. graphc's Linear keeps (in, out), the transpose of the Embedding's table, so
    the tie is now refused in one line, either way round and on a copy too, naming both
    places and the tie in forward, gc.linear with the table: torch's outputs and gradient,
    eager and compiled, in float64."""
    for model in (LM(ntoken, nhid), copy.deepcopy(LM(ntoken, nhid)),
                  pickle.loads(pickle.dumps(LM(ntoken, nhid)))):
        with pytest.raises(GraphcError, match=r"decoder.weight = encoder.weight: .*"
                                              r"gc.linear\(h, self.encoder.weight"):
            model.decoder.weight = model.encoder.weight
        with pytest.raises(GraphcError, match="encoder.weight = decoder.weight"):
            model.encoder.weight = model.decoder.weight
        assert model.decoder.weight.data.shape == (nhid, ntoken)
    # the way the refusal names gives torch's tied model's outputs and the table's gradient
    torch.manual_seed(0)
    reference, model = TorchTiedLM(ntoken, nhid).double(), TiedInForwardLM(ntoken, nhid)
    model.encoder.weight.data = reference.encoder.weight.detach().numpy().copy()
    model.decoder_bias.data = reference.decoder.bias.detach().numpy().copy()
    x = np.array([[1, 3, ntoken - 1]])
    expected = reference(torch.tensor(x))
    np.testing.assert_allclose(np.asarray(model(x).data), expected.detach().numpy(), 1e-12)
    np.testing.assert_allclose(np.asarray(gc.compile(model)(x)), expected.detach().numpy(),
                               1e-12)
    expected.sum().backward()
    gc.sum(model(x)).backward()
    np.testing.assert_allclose(model.encoder.weight.grad, reference.encoder.weight.grad.numpy(),
                               1e-12)


def test_bound_optimizer_settings_read_and_write_through():
    """`opt = SGD(...).bind(model); opt.lr = 0.0` set an attribute of the BoundOptimizer
    that nothing read (the step still moved the weights) and reading opt.lr raised
    AttributeError. Now lr and the other settings read and write through to the optimiser
    (checked there), torch's `param_groups` does too, and an unknown attribute is refused."""
    model = gc.nn.Linear(3, 2)
    opt = gc.optim.SGD(lr=0.1, momentum=0.9).bind(model)
    assert opt.lr == 0.1 and opt.momentum == 0.9 and opt.get_last_lr() == [0.1]
    x = np.ones((4, 3), np.float32)

    def step():
        before = model.weight.data.copy()
        opt.zero_grad()
        gc.sum(model(x) ** 2).backward()
        opt.step()
        return np.abs(model.weight.data - before).max()

    opt.lr = 0.0
    assert opt.optimizer.lr == 0.0 and step() == 0.0
    for group in opt.param_groups:
        group["lr"] = 0.05
    assert opt.optimizer.lr == 0.05 and opt.get_last_lr() == [0.05] and step() > 0
    group = opt.param_groups[0]
    assert group["momentum"] == 0.9 and group["params"] == [model.weight, model.bias]
    with pytest.raises(GraphcError, match="momentum must be a finite number >= 0"):
        opt.momentum = -1.0
    with pytest.raises(GraphcError, match="SGD has no setting 'learning_rate'"):
        opt.learning_rate = 0.1
    assert not hasattr(opt, "learning_rate")


def test_detach_in_a_compiled_forward_is_stop_gradient():
    """`x.detach()` (torch's seq2seq greedy decoder) worked eagerly but raised "'Node'
    object has no attribute 'detach'" inside gc.compile. Now it is stop_gradient there:
    compiled values and gradients equal the eager ones."""
    def f(x):
        return gc.sum(x.detach() * x)

    x = np.array([1.0, 2.0, 3.0])
    assert float(gc.compile(f)(x)) == 14.0
    np.testing.assert_array_equal(np.asarray(gc.grad(gc.compile(f))(x)), x)
    np.testing.assert_array_equal(np.asarray(gc.grad(f)(x)), x)


def test_tensor_only_names_of_a_traced_value_say_what_to_do():
    """.backward(), .item(), .grad, .data, ... of a traced value raised AttributeError
    "'Node' object has no attribute ...". Now one GraphcError line says what to do instead,
    and it is still an AttributeError, so hasattr() and getattr(x, name, default) keep
    answering False and the default."""
    seen = {}

    def f(x):
        seen["probes"] = (hasattr(x, "grad"), getattr(x, "data", "none"))
        for name in ("backward", "item", "grad", "requires_grad_"):
            with pytest.raises(GraphcError) as info:
                getattr(x, name)
            seen[name] = str(info.value).splitlines()[0]
        return x * 2

    gc.compile(f)(np.ones(3))
    assert seen["probes"] == (False, "none")
    assert "gc.grad / gc.value_and_grad" in seen["backward"]
    assert seen["item"].startswith(".item of a traced value") and "return it" in seen["item"]
    assert "Parameters' .grad" in seen["grad"] and "argnums" in seen["requires_grad_"]


@pytest.mark.parametrize("make, shown", [
    (lambda net: gc.optim.SGD(net.parameters(), lr=0.001, momentum=0.9),
     "gc.optim.SGD(lr=0.001, momentum=0.9).bind(model)"),
    (lambda net: gc.optim.Adam(net.parameters()), "gc.optim.Adam().bind(model)"),
    (lambda net: gc.optim.AdamW(net, 3e-4), "gc.optim.AdamW(lr=0.0003).bind(model)"),
    (lambda net: gc.optim.RMSprop(dict(net.named_parameters()), alpha=0.9),
     "gc.optim.RMSprop(alpha=0.9).bind(model)"),
    (lambda net: gc.optim.Lion([{"params": net.parameters()}]), "gc.optim.Lion().bind(model)"),
])
def test_torch_style_optimiser_construction_says_bind(make, shown):
    """torch's `SGD(net.parameters(), lr=0.001, momentum=0.9)` (the blitz's line) gave a
    raw TypeError ("multiple values for argument 'lr'"), and `Adam(net.parameters())` an lr
    error printing the tensors. Now every optimiser says in one line that graphc takes the
    parameters in .bind(), with the user's own settings."""
    net = gc.nn.Linear(3, 2)
    with pytest.raises(GraphcError) as info:
        make(net)
    assert str(info.value).splitlines()[0] == (
        f"graphc's optimisers take their parameters in .bind(): {shown} (a Module, or a list "
        "or dict of its Parameters)")
    assert gc.optim.SGD(0.1, momentum=0.9).momentum == 0.9  # an lr by position still is one


@pytest.mark.parametrize("make, shown, cannot", [
    (lambda net: gc.optim.Adam(params=net.parameters(), lr=1e-3),
     "gc.optim.Adam(lr=0.001).bind(model)", ""),
    (lambda net: gc.optim.SGD(momentum=0.9, params=net.parameters(), lr=0.01),
     "gc.optim.SGD(lr=0.01, momentum=0.9).bind(model)", ""),
    (lambda net: gc.optim.AdamW([{"params": net.parameters(), "lr": 0.1}]),
     "gc.optim.AdamW(lr=0.1).bind(model)", ""),
    (lambda net: gc.optim.SGD(params=[{"params": [net.weight], "lr": 0.1, "momentum": 0.9},
                                      {"params": [net.bias], "lr": 0.1}], momentum=0.9),
     "gc.optim.SGD(lr=0.1, momentum=0.9).bind(model)", ""),
    (lambda net: gc.optim.AdamW([{"params": [net.weight], "weight_decay": 0.1},
                                 {"params": [net.bias], "weight_decay": 0.0}], lr=0.01),
     "gc.optim.AdamW(lr=0.01).bind(model)",
     "; the param groups' different weight_decay cannot be kept: each setting holds for "
     "every parameter (decay_mask= picks those that decay); for settings per group, "
     "gc.Trainer takes gc.optim.Groups((gc.optim.AdamW(lr=...), names1), "
     "(gc.optim.AdamW(lr=...), names2))"),
])
def test_torchs_params_keyword_and_param_groups_say_bind(make, shown, cannot):
    """Session 41: torch's keyword form `Adam(params=model.parameters(), lr=1e-3)` was
    Python's bare "unexpected keyword argument 'params'", and a param group's own lr was
    left out of the suggested form (`AdamW([{'params': ..., 'lr': 0.1}])` suggested
    `gc.optim.AdamW().bind(model)`). Now the same one line as the positional form, keeping
    what the groups share and naming what they differ on."""
    net = gc.nn.Linear(3, 2)
    with pytest.raises(GraphcError) as info:
        make(net)
    assert str(info.value).splitlines()[0] == (
        f"graphc's optimisers take their parameters in .bind(): {shown} (a Module, or a list "
        f"or dict of its Parameters){cannot}")

    class OwnParams(gc.optim.SGD):  # a subclass's own params= is its to take
        def __init__(self, lr, params=None):
            super().__init__(lr)
            self.given = params
    assert OwnParams(0.1, params=[1]).given == [1]


def test_param_groups_that_agree_are_one_setting_whatever_their_form():
    """Session 41 (review r5, M1/M2): groups were compared by repr, so np.float64(0.1) and
    0.1, or betas as a list and a tuple, were "different" and the form dropped them; a
    subclass's `__init__(self, *args, **kw)` hid Adam's defaults (a group's eps=1e-8 and one
    without it differed) and was shown as gc.optim's; a generator of groups was not read,
    so the shared lr was lost."""
    net = gc.nn.Sequential(gc.nn.Linear(2, 3), gc.nn.Linear(3, 1))
    a, b = list(net[0].parameters()), list(net[1].parameters())

    class MyAdam(gc.optim.Adam):
        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)
    for make, shown in [
        (lambda: gc.optim.Adam([{"params": a, "lr": 0.1}, {"params": b, "lr": np.float64(0.1)}]),
         "gc.optim.Adam(lr=0.1)"),
        (lambda: gc.optim.Adam([{"params": a, "betas": [0.8, 0.9]},
                                {"params": b, "betas": (0.8, 0.9)}]),
         "gc.optim.Adam(betas=[0.8, 0.9])"),
        (lambda: gc.optim.Adam([{"params": a, "betas": [0.9, 0.999]}, {"params": b}]),
         "gc.optim.Adam(betas=[0.9, 0.999])"),
        (lambda: MyAdam([{"params": a, "eps": 1e-8}, {"params": b}]), "MyAdam(eps=1e-08)"),
        (lambda: gc.optim.SGD(({"params": p, "lr": 0.1} for p in (a, b))),
         "gc.optim.SGD(lr=0.1)"),
    ]:
        with pytest.raises(GraphcError) as info:
            make()
        assert str(info.value).splitlines()[0] == (
            f"graphc's optimisers take their parameters in .bind(): {shown}.bind(model) (a "
            "Module, or a list or dict of its Parameters)")
    # groups that do differ still say so (a bool is not the number 1)
    with pytest.raises(GraphcError, match=r"Adam\(\)\.bind\(model\).*different lr, amsgrad "
                       r"cannot be kept"):
        gc.optim.Adam(iter([{"params": a, "lr": 0.1, "amsgrad": True},
                            {"params": b, "lr": 0.2, "amsgrad": 1}]))


@pytest.mark.parametrize("dtype", [np.int64, np.uint8, np.int32])
def test_integer_attention_masks_are_refused(dtype):
    """An integer key_padding_mask or attn_mask (a 0/1 array, torch's old uint8 masks)
    failed inside with a dtype error advising a cast to float, which turns the 0/1 mask
    into an additive one that masks nothing. Now, as torch's, one line refuses it, naming
    the argument as given, and asks for a bool mask; a bool mask works as before."""
    x = np.zeros((3, 5, 8), np.float32)
    mha = gc.nn.MultiheadAttention(8, 2, batch_first=True)
    with pytest.raises(GraphcError) as info:
        mha(x, x, x, key_padding_mask=np.zeros((3, 5), dtype))
    assert str(info.value).splitlines()[0] == (
        f"MultiheadAttention: key_padding_mask of dtype {np.dtype(dtype)} is not supported: "
        "use a bool mask (True = not attended), or a float one (added to the scores), as "
        "torch's")
    with pytest.raises(GraphcError, match="^MultiheadAttention: attn_mask of dtype"):
        mha(x[0], x[0], x[0], attn_mask=np.zeros((5, 5), dtype))
    encoder = gc.nn.TransformerEncoder(
        gc.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True), 2)
    # (the stack names its own argument, as it does a mask of the wrong shape)
    with pytest.raises(GraphcError, match="^TransformerEncoder: src_key_padding_mask of "
                                          "dtype"):
        encoder(x, src_key_padding_mask=np.zeros((3, 5), dtype))
    padding = np.zeros((3, 5), bool)
    padding[:, -1] = True
    out, weights = mha(x + np.arange(5, dtype=np.float32)[:, None], x, x,
                       key_padding_mask=padding)
    np.testing.assert_array_equal(np.asarray(weights.data)[:, :, -1], 0.0)


def test_load_torch_state_dict_takes_strict_and_returns_the_keys():
    """load_torch_state_dict took no strict= (a TypeError for transfer learning's
    `strict=False` load of a backbone) and returned None. Now strict passes through to
    load_state_dict and its (missing_keys, unexpected_keys) is returned, as torch's."""
    reference = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 5))
    model = gc.nn.Sequential(gc.nn.Linear(3, 4), gc.nn.Linear(4, 2))
    backbone = {k: v for k, v in reference.state_dict().items() if k.startswith("0.")}
    head = model[1].weight.data.copy()
    result = model.load_torch_state_dict({**backbone, "extra": torch.zeros(1)}, strict=False)
    assert result.missing_keys == ["1.bias", "1.weight"]
    assert result.unexpected_keys == ["extra"]
    np.testing.assert_array_equal(model[0].weight.data, backbone["0.weight"].numpy().T)
    np.testing.assert_array_equal(model[1].weight.data, head)
    assert tuple(model.load_torch_state_dict(model.state_dict() | backbone |
                                             {"1.weight": torch.zeros(2, 4)})) == ([], [])
    with pytest.raises(GraphcError, match="missing"):
        model.load_torch_state_dict(backbone)


def test_a_subclass_taking_torchs_parameters_first_is_the_users():
    """Optimizer.__new__ refused every first argument that held parameters, so a user's
    subclass with torch's constructor (`def __init__(self, params, lr=0.1)`, which binds
    them itself) raised the .bind() message where it worked before. Now only graphc's own
    constructors, or a subclass's whose first parameter is lr, are checked."""
    class TorchLike(gc.optim.SGD):
        def __init__(self, params, lr=0.1):
            super().__init__(lr)
            self.bound = self.bind(params)

    class LrFirst(gc.optim.SGD):
        def __init__(self, lr, extra=1):
            super().__init__(lr)

    model = gc.nn.Linear(3, 2)
    opt = TorchLike(model.parameters(), lr=0.25)
    assert opt.lr == 0.25 and opt.bound.lr == 0.25
    with pytest.raises(GraphcError, match=r"LrFirst\(\)\.bind\(model\)"):
        LrFirst(model.parameters())


def test_torchs_other_parameter_iterables_say_bind():
    """Only a Module, a generator and lists/tuples/dicts of tensors were recognised:
    Adam(itertools.chain(enc.parameters(), dec.parameters()), lr=1e-3), Adam(filter(...)),
    SGD(model.params(), lr=0.1) (a dict of arrays) gave raw TypeErrors, and
    Adam(itertools.chain(...)) alone said "lr must be ... got <itertools.chain ...>". Now any
    iterable but a string (not a schedule, not a number) is taken as the parameters: the
    one-line .bind() message."""
    import itertools
    enc, dec = gc.nn.Linear(3, 2), gc.nn.Linear(2, 3)
    cases = [(lambda: gc.optim.Adam(itertools.chain(enc.parameters(), dec.parameters()),
                                    lr=1e-3), r"gc.optim.Adam\(lr=0.001\).bind\(model\)"),
             (lambda: gc.optim.Adam(filter(lambda p: p.requires_grad, enc.parameters()),
                                    lr=1e-3), r"gc.optim.Adam\(lr=0.001\).bind\(model\)"),
             (lambda: gc.optim.SGD(enc.params(), lr=0.1), r"gc.optim.SGD\(lr=0.1\).bind"),
             (lambda: gc.optim.SGD([enc.weight.data], lr=0.1), r"gc.optim.SGD\(lr=0.1\)"),
             (lambda: gc.optim.Adam(itertools.chain(enc.parameters())),
              r"gc.optim.Adam\(\).bind\(model\)")]
    for make, shown in cases:
        with pytest.raises(GraphcError, match=shown):
            make()
    # an lr as a numpy number or a schedule is still an lr
    assert gc.optim.SGD(np.float64(0.5)).lr == 0.5
    assert gc.optim.SGD(lambda step: 0.1).lr(0) == 0.1


def test_a_bound_optimizers_lr_reads_as_a_number():
    """A BoundOptimizer's param_groups[0]["lr"] and opt.lr returned the ReduceLROnPlateau or
    the schedule behind it, where torch's is always a float: `f"{g['lr']:.2e}"` and
    `g["lr"] *= 0.5` raised TypeError. Now both read the lr of the next step (get_last_lr),
    and writing still goes to the optimiser: under a plateau, the plateau goes on from it."""
    model = gc.nn.Linear(3, 2)
    opt = gc.optim.SGD(lr=0.1).bind(model)
    plateau = gc.optim.ReduceLROnPlateau(opt, patience=0)
    assert f"{opt.param_groups[0]['lr']:.2e}" == "1.00e-01" and opt.lr == 0.1
    for group in opt.param_groups:
        group["lr"] *= 0.5
    assert opt.optimizer.lr is plateau and plateau.lr == 0.05 and opt.lr == 0.05
    plateau.step(1.0)
    plateau.step(2.0)  # no better: reduced by its factor, 0.1
    assert opt.param_groups[0]["lr"] == pytest.approx(0.005) and opt.get_last_lr() == [opt.lr]

    scheduled = gc.optim.SGD(lr=lambda step: 0.1 / (1 + step)).bind(model)
    x = np.ones((4, 3), np.float32)
    for _ in range(3):
        scheduled.zero_grad()
        gc.sum(model(x) ** 2).backward()
        scheduled.step()
    assert scheduled.lr == scheduled.param_groups[0]["lr"] == pytest.approx(0.1 / 4)
    assert isinstance(scheduled.lr, float)


@pytest.mark.parametrize("name", ["requires_grad", "data", "grad"])
def test_setting_a_tensor_only_name_of_a_traced_value_says_what_to_do(name):
    """`x.requires_grad = True` (and `.data = `, `.grad = `) on a traced value gave the raw
    AttributeError "'Node' object has no attribute ...", where reading the same name gave a
    one-line TracedAttributeError. Now writing gives that same line, naming the user's line;
    reading is unchanged."""
    from ir.errors import TracedAttributeError

    def forward(a):
        setattr(a, name, True)
        return a

    with pytest.raises(TracedAttributeError, match=rf"^\.{name} of a traced value") as error:
        gc.compile(forward)(np.ones(2))
    assert "test_review_s38_torch_port.py" in str(error.value)
    assert gc.compile(lambda a: a * 2 if not hasattr(a, name) else a)(np.ones(2)).tolist() \
        == [2.0, 2.0]


def test_a_linear_holding_the_table_in_graphcs_layout_shares_it():
    """The tie refusal took any Parameter shared by a Linear's weight and an Embedding's
    table for torch's tie, so `soft = Linear(V, C); soft.weight = emb.weight` (graphc's
    (in, out) = the table's (V, C): one-hot rows @ table) was refused, where it had worked.
    Now only the shapes of torch's layout (the Linear's (in, out) the transpose of the
    table) are refused; graphc's layout, and a square tie, which no shape tells apart, share
    the one Parameter; a MultiheadAttention's refusal names MultiheadAttention."""
    class SoftEmbed(gc.nn.Module):
        def __init__(self, vocab, dim):
            self.emb = gc.nn.Embedding(vocab, dim)
            self.soft = gc.nn.Linear(vocab, dim, bias=False)
            self.soft.weight = self.emb.weight

        def forward(self, idx, probs):
            return self.emb(idx) + self.soft(probs)

    for vocab, dim in ((6, 4), (4, 4)):
        model = SoftEmbed(vocab, dim)
        assert [n for n, _ in model.named_parameters()] == ["emb.weight"]
        idx = np.array([1, 3, 0])
        onehot = np.eye(vocab, dtype=np.float32)[idx]
        table = model.emb.weight.data
        np.testing.assert_allclose(np.asarray(model(idx, onehot).data), 2 * table[idx])
        np.testing.assert_allclose(np.asarray(gc.compile(model)(idx, onehot)), 2 * table[idx])
        gc.sum(model(idx, onehot)).backward()
        expected = np.zeros_like(table)
        np.add.at(expected, idx, 2.0)  # each use's gradient on the one Parameter
        np.testing.assert_allclose(model.emb.weight.grad, expected)

    class Attended(gc.nn.Module):
        def __init__(self):
            self.emb = gc.nn.Embedding(12, 4)
            self.attn = gc.nn.MultiheadAttention(4, 2)  # in_proj_weight (4, 12)

    model = Attended()
    with pytest.raises(GraphcError, match=r"^attn.in_proj_weight = emb.weight: graphc's "
                                          r"MultiheadAttention keeps its in_proj_weight "
                                          r"\(in, out\) = \(4, 12\)"):
        model.attn.in_proj_weight = model.emb.weight
    with pytest.raises(GraphcError, match=r"^emb.weight = attn.in_proj_weight: graphc's "
                                          "MultiheadAttention"):
        model.emb.weight = model.attn.in_proj_weight


def test_a_0d_tensor_lr_gets_the_lr_message():
    """A 0-d tensor as the lr (graphc's or torch's) is iterable by type, so it was taken for
    torch's parameters and got the .bind() message, where before this session it got the
    lr's own. Now a 0-d value is an lr, checked as one (session 51: and taken, read once,
    as torch takes a tensor lr and constant() took one); a numpy number still is one."""
    for lr, shown in ((gc.tensor(np.float32(-0.1)), r"Tensor\(-0.1\)"),
                      (torch.tensor(-0.1), r"tensor\(-0.1000\)")):
        with pytest.raises(GraphcError, match=r"^SGD: lr must be a number >= 0 or a schedule "
                                              rf".*, got {shown}"):
            gc.optim.SGD(lr)
        assert gc.optim.SGD(-lr).lr == np.float32(0.1)
    assert gc.optim.SGD(np.float32(0.5)).lr == 0.5


def test_a_subclass_passing_its_args_on_is_checked_as_graphcs():
    """A subclass `def __init__(self, *a, **k): super().__init__(*a, **k)` was taken for one
    with torch's parameters first (its first parameter is not named lr), so
    `Args(model.parameters(), lr=0.1)` got the raw TypeError "got multiple values for
    argument 'lr'". Now *args passes on to graphc's constructor, whose names it checks: the
    .bind() message, with the settings under SGD's names; Args(0.1, momentum=0.9) works."""
    class Args(gc.optim.SGD):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)

    model = gc.nn.Linear(3, 2)
    with pytest.raises(GraphcError, match=r"Args\(lr=0.1\)\.bind\(model\)"):
        Args(model.parameters(), lr=0.1)
    with pytest.raises(GraphcError, match=r"Args\(lr=0.1, momentum=0.9\)\.bind\(model\)"):
        Args(model.parameters(), 0.1, 0.9)
    opt = Args(0.1, momentum=0.9)
    assert opt.lr == 0.1 and opt.momentum == 0.9
