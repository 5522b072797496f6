"""A gc.compile'd function keeps at most GRAPHC_MAX_PLANS plans, the one used longest ago
dropped first, and warns once when it has compiled 9 times (torch.compile's
cache_size_limit of 8 recompiles): each plan holds its buffers, and a value traced as a
constant that changes every step (a setting changed by a callback) would otherwise keep a
plan per step."""
import warnings

import numpy as np
import pytest

import graphc as gc
from ir import settings


def scaled():
    return gc.compile(lambda x, k: x * k, static_argnums=(1,))


def test_plans_beyond_the_cap_are_dropped_oldest_first(monkeypatch):
    monkeypatch.setenv("GRAPHC_MAX_PLANS", "2")
    f, x = scaled(), np.ones(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gc.RecompileWarning)
        np.testing.assert_array_equal(f(x, 1.0), x)  # plan A
        np.testing.assert_array_equal(f(x, 2.0), 2 * x)  # plan B
        np.testing.assert_array_equal(f(x, 1.0), x)  # A again: now the one used last
        assert len(f.recompiles) == 1
        np.testing.assert_array_equal(f(x, 3.0), 3 * x)  # C: B, used longest ago, goes
        assert len(f.recompiles) == 2 and len(f._used) == 2
        np.testing.assert_array_equal(f(x, 1.0), x)  # A kept: no compilation
        assert len(f.recompiles) == 2
        np.testing.assert_array_equal(f(x, 2.0), 2 * x)  # B compiled again, A dropped
        assert len(f.recompiles) == 3
        assert sum(len(entries) for entries in f._plans.values()) == 2


def test_the_default_cap_keeps_sixteen_plans():
    assert settings.MAX_PLANS.get() == 16
    f, x = scaled(), np.ones(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gc.RecompileWarning)
        for k in range(20):
            np.testing.assert_array_equal(f(x, float(k)), k * x)
    assert len(f.recompiles) == 19
    assert sum(len(entries) for entries in f._plans.values()) == len(f._used) == 16


def test_a_function_compiled_nine_times_warns_once_at_the_users_line():
    f, x = scaled(), np.ones(2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for k in range(12):
            f(x, float(k))  # the line the warning names
    line = test_a_function_compiled_nine_times_warns_once_at_the_users_line.__code__\
        .co_firstlineno + 5
    recompile = [w for w in caught if issubclass(w.category, gc.RecompileWarning)]
    assert len(recompile) == 1
    assert recompile[0].filename == __file__ and recompile[0].lineno == line
    assert "compiled 9 times (the latest: k (static): 7.0 -> 8.0)" in str(recompile[0].message)


def test_a_derivative_recompiled_for_a_number_used_as_it_is_names_it_and_its_values(caplog):
    """gc.grad of f(x, n) with n used as a Python value compiles once per n; its
    RecompileWarning and log said "a setting passed as it is (a flag, a string) changed" of
    "placed" (graphc's inner function): now they name f, the argument and its old and new
    value, as gc.compile's "k (static): 7.0 -> 8.0" does; a flag, a leaf and a keyword too."""
    def f(x, n):
        return gc.sum(x ** 2) * n if n > 1 else gc.sum(x)

    dg, x = gc.grad(f), np.arange(3.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for n in range(2, 12):
            np.testing.assert_array_equal(dg(x, n), 2 * n * x)
    recompile = [w for w in caught if issubclass(w.category, gc.RecompileWarning)]
    assert len(recompile) == 1
    assert str(recompile[0].message).startswith(
        "the derivative of f has been compiled 9 times (the latest: n (passed as it is): "
        "9 -> 10)")

    def g(x, flag, m=(0, 1.0), k=1):
        return gc.sum(x) * (2.0 if flag else 1.0) * (3.0 if m[0] else 1.0) * m[1] * k
    dg = gc.grad(g)
    with caplog.at_level("INFO", logger="graphc"):
        for flag, m, k in [(True, (0, 1.0), 1), (False, (0, 1.0), 1), (False, (1, 0.5), 1),
                           (False, (1, 0.5), 2)]:
            np.testing.assert_array_equal(dg(x, flag, m, k=k),
                                          np.full(3, (2 if flag else 1) * (3 if m[0] else 1)
                                                  * m[1] * k))
    assert [r.getMessage() for r in caplog.records if "recompiling" in r.getMessage()] == [
        "graphc: recompiling g (compilation 2): flag (passed as it is): True -> False",
        "graphc: recompiling g (compilation 3): m.0 (passed as it is): 0 -> 1",
        "graphc: recompiling g (compilation 4): k= (passed as it is): 1 -> 2"]


def test_a_derivatives_recompile_warning_for_a_python_value_number_says_what_works():
    """Session 41: the RecompileWarning of gc.grad(f) for f(x, n) using n in an `if` advised
    "pass it as an array argument, which is traced": an array there has no truth value (an
    error). Now it says that n is used as a Python value, compiling a plan per value, and
    that computing with it (gc.where for the `if`) traces it; done so, one plan serves all."""
    def f(x, n):
        return gc.sum(x ** 2) * n if n > 1 else gc.sum(x)

    def with_where(x, n):
        return gc.where(n > 1, gc.sum(x ** 2) * n, gc.sum(x))

    dg, x = gc.grad(f), np.arange(3.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for n in range(2, 12):
            dg(x, n)
    recompile = [str(w.message) for w in caught if issubclass(w.category, gc.RecompileWarning)]
    assert recompile == [
        "the derivative of f has been compiled 9 times (the latest: n (passed as it is): 9 -> "
        "10); n: used in an `if`, each value compiles a plan; computed with instead "
        "(gc.where(cond, a, b)), it is traced, one plan for every value"]
    dw = gc.grad(with_where)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for n in range(0, 12):
            np.testing.assert_allclose(dw(x, n), 2 * n * x if n > 1 else np.ones(3))
    assert not [w for w in caught if issubclass(w.category, gc.RecompileWarning)]


def test_the_recompile_advice_for_a_loop_over_range_n_fits_the_loop():
    """Session 42: a loop over range(n) with n changing was advised gc.where (an `if`'s
    remedy) by gc.grad's warning, and by gc.compile's (n static) "pass it as an argument",
    which it was. Now the advice follows what changed and how n was used: for a derivative,
    a fixed-length fori_loop masking the steps past n (a loop of traced length is a
    while_loop, which has no reverse mode); for a static argument, to leave it out of
    static_argnums and loop with gc.fori_loop(0, n, ...). Each, done so, is one plan."""
    def f(x, n):
        total = 0.0
        for _ in range(n):
            total = total + gc.sum(x ** 2)
        return total

    x = np.arange(3.0)
    for make, says in [
            (lambda: gc.grad(f),
             "the derivative of f has been compiled 9 times (the latest: n (passed as it is): "
             "9 -> 10); n: used as an int (a range, a shape), each value compiles a plan; for a "
             "loop over range(n) differentiated with one plan for every n, loop a fixed N times "
             "and mask the steps past n (gc.fori_loop(0, N, lambda i, c: gc.where(i < n, "
             "step(c), c), init)), which traces n; else keep n to a few values"),
            (lambda: gc.compile(f, static_argnums=1),
             "compiled f has been compiled 9 times (the latest: n (static): 9 -> 10); " +
             STATIC_N.format(loop="gc.fori_loop(0, n, body, init)"))]:
        run = make()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for n in range(2, 12):
                run(x, n)
        assert [str(w.message) for w in caught
                if issubclass(w.category, gc.RecompileWarning)] == [says]
        assert "gc.where(cond, a, b)), it is traced" not in says  # (the `if` advice)

    def masked(x, n):  # the derivative's advice followed
        return gc.fori_loop(0, 16, lambda i, c: gc.where(i < n, c + gc.sum(x ** 2), c), 0.0)

    def looped(x, n):  # compile's advice followed
        return gc.fori_loop(0, n, lambda i, c: c + gc.sum(x ** 2), 0.0)

    dm, cl = gc.grad(masked), gc.compile(looped)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for n in range(0, 12):
            np.testing.assert_allclose(dm(x, n), 2 * n * x)
            np.testing.assert_allclose(cl(x, n), n * 5.0)
    assert not [w for w in caught if issubclass(w.category, gc.RecompileWarning)]
    assert cl.recompiles == []


# compile's advice for a static number (its uses are not seen: n is a Python value there)
STATIC_N = ("n is static: each value compiles a plan; left out of static_argnums a number is "
            "traced, one plan for every value, where the function computes with it: an `if` as "
            "gc.where(cond, a, b), a loop over range(n) as {loop}; a shape keys the plan either "
            "way: take the size from an array argument's dimension marked polymorphic "
            "(polymorphic_shapes) instead")
MASKED = ("a fixed N steps masking those past n, gc.fori_loop(0, N, lambda i, c: gc.where(i < n, "
          "step(c), c), init) (a loop of traced length, fori_loop(0, n), has no reverse mode)")


def _advice(run, values, *args):
    """The advice of each RecompileWarning of run(*args, value) for these values."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for v in values:
            run(*args, v)
    return [str(w.message).split("); ", 1)[1] for w in caught
            if issubclass(w.category, gc.RecompileWarning)]


def _followed(x, n=1):
    """The advice on n followed: the `if` as gc.where, range(n) as a fixed 16 steps masking
    those past n."""
    t = gc.sum(x ** 2) * gc.where(n > 5, 2.0, 1.0)
    return gc.fori_loop(0, 16, lambda i, c: gc.where(i < n, c + gc.sum(x ** 2), c), t)


def _assert_the_advice_followed_compiles_once(x):
    """grad of _followed gives the right gradient for every n with no RecompileWarning."""
    d = gc.grad(_followed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for n in range(2, 12):
            np.testing.assert_allclose(d(x, n), 2 * x * ((2.0 if n > 5 else 1.0) + n),
                                       rtol=1e-6)
    assert not [w for w in caught if issubclass(w.category, gc.RecompileWarning)]


def test_compiles_static_advice_works_for_a_str_a_training_step_and_a_shape():
    """Review r5 of ddef295: compile's warning told any static argument that "left out of
    static_argnums it is traced": a str so left out is "cannot make a tensor spec from a
    str"; a compiled step taking a gradient was told gc.fori_loop(0, n, ...), whose
    reverse mode is refused (a while_loop); n used as a shape lost "mark the dimension
    polymorphic". Now a value that is no number keys its plans, a function taking a gradient
    is told the masked fixed-length loop, and a shape the polymorphic dimension; each,
    followed, computes the values with one plan."""
    x = np.arange(3.0)

    def mode(x, act):
        return gc.sum(getattr(gc, act)(x))

    def step(x, n):
        return gc.grad(lambda v: gc.fori_loop(0, n, lambda i, c: c + gc.sum(v ** 2), 0.0))(x)

    def shape(x, n):
        return gc.sum(x ** 2) * gc.sum(gc.ones((n,), "float64"))

    numpy_of = {"tanh": np.tanh, "relu": lambda v: np.maximum(v, 0.0),
                "sigmoid": lambda v: 1 / (1 + np.exp(-v)), "exp": np.exp, "sin": np.sin,
                "cos": np.cos, "abs": np.abs, "log1p": np.log1p, "expm1": np.expm1,
                "sqrt": np.sqrt}
    acts = list(numpy_of)
    assert _advice(gc.compile(mode, static_argnums=1), acts, x) == [
        "act is static and no number: each value keys a plan of its own, as with jax.jit; keep "
        "to a few values"]
    assert _advice(gc.compile(step, static_argnums=1), range(10), x) == [
        STATIC_N.format(loop=MASKED)]
    assert _advice(gc.compile(shape, static_argnums=1), range(1, 11), x) == [
        STATIC_N.format(loop="gc.fori_loop(0, n, body, init)")]
    # followed: a str keyed (ten plans, each its own values), the masked loop under grad and
    # the polymorphic dimension, each one plan for every n
    by_act = gc.compile(mode, static_argnums=1)
    for act in acts:
        np.testing.assert_allclose(by_act(x, act), np.sum(numpy_of[act](x)), rtol=1e-12)
    masked = gc.compile(lambda x, n: gc.grad(lambda v: gc.fori_loop(
        0, 16, lambda i, c: gc.where(i < n, c + gc.sum(v ** 2), c), 0.0))(x))
    by_size = gc.compile(lambda x, m: gc.sum(x ** 2) * gc.sum(gc.ones_like(m)),
                         polymorphic_shapes=(None, ("n",)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for n in range(1, 12):
            np.testing.assert_allclose(masked(x, n), 2 * n * x)
            np.testing.assert_allclose(by_size(x, np.empty(n)), 5.0 * n)
    assert not [w for w in caught if issubclass(w.category, gc.RecompileWarning)]
    assert masked.recompiles == by_size.recompiles == []


def test_a_derivatives_recompile_warning_advises_for_every_use_of_the_number():
    """Review r5 of ddef295: n used in an `if` and then in range(n) was advised only
    gc.where (the trace stopped at the first use; following it, nine more compilations
    gave the loop's advice). Now the trace is probed past the first use (given n's value)
    and the first warning advises for both; both followed, one plan for every n."""
    x = np.arange(3.0, dtype=np.float32)

    def both(x, n):
        t = gc.sum(x ** 2) * (2.0 if n > 5 else 1.0)
        for _ in range(n):
            t = t + gc.sum(x ** 2)
        return t

    assert _advice(gc.grad(both), range(2, 12), x) == [
        "n: used in an `if`, each value compiles a plan; computed with instead (gc.where(cond, "
        "a, b)), it is traced, one plan for every value; n: used as an int (a range, a shape), "
        "each value compiles a plan; for a loop over range(n) differentiated with one plan for "
        "every n, loop a fixed N times and mask the steps past n (gc.fori_loop(0, N, lambda i, "
        "c: gc.where(i < n, step(c), c), init)), which traces n; else keep n to a few values"]
    _assert_the_advice_followed_compiles_once(x)


def test_a_number_passed_by_keyword_is_named_and_advised_what_works():
    """s43: grad(f)(x, n=n), a number passed by keyword (which reaches f as it is), was told
    "pass it as an array argument, which is traced": followed, range(array) fails. Now the
    warning names the keyword and says that passed by position it is traced where f
    computes with it (a keyword-only one made positional first); followed, one plan for
    every n. gc.compile(f)(x, n=n) was told "list its position in static_argnums" of an
    argument given by no position: it is told static_argnames by the keyword; followed,
    numpy's value."""
    x = np.arange(3.0, dtype=np.float32)

    def loop(x, n=1):
        t = gc.sum(x ** 2)
        for _ in range(n):
            t = t + gc.sum(x ** 2)
        return t

    def keyword_only(x, *, n=1):
        return loop(x, n)

    for f, position in ((loop, "passed by position"),
                        (keyword_only, "made a positional parameter and passed by position")):
        d = gc.grad(f)
        assert _advice(lambda x, n: d(x, n=n), range(2, 12), x) == [
            "n= is a keyword argument: a number passed by keyword reaches the function as it "
            f"is, each value compiling a plan; {position} it is traced where the function "
            "computes with it: an `if` as gc.where(cond, a, b), a loop over range(n) as a "
            "fixed N steps masking those past n, gc.fori_loop(0, N, lambda i, c: gc.where(i "
            "< n, step(c), c), init); else keep it to a few values"]
    _assert_the_advice_followed_compiles_once(x)
    with pytest.raises(gc.GraphcError) as info:
        gc.compile(loop)(x, n=3)
    line, where = str(info.value).splitlines()
    assert line.endswith("the value passed as 'n' is traced: to use a Python number or bool "
                         "as a Python value, list 'n' in static_argnames")
    assert "test_recompile_cap.py" in where
    np.testing.assert_allclose(gc.compile(loop, static_argnames="n")(x, n=3),
                               4 * np.sum(x ** 2))

def test_the_trainer_warns_when_a_setting_keeps_changing():
    """A clip norm changed before every step (a guard of the plan; the optimiser's number
    settings are inputs of the step instead): each change compiles the step once, the ninth
    says why, and the plans kept stay bounded."""
    rng = np.random.default_rng(0)
    batches = [(x, x @ np.ones((3, 1))) for x in rng.normal(size=(4, 8, 3))]

    def loss(params, batch):
        x, y = batch
        return gc.mean((x @ params["w"] - y) ** 2)

    opt = gc.optim.AdamW(lr=0.01, weight_decay=0.1)
    trainer = gc.Trainer(loss, {"w": np.zeros((3, 1))}, opt, batches, steps=12, seed=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(12):
            trainer.clip_norm = 1.0 + 0.1 * step
            trainer.train_step()
    assert len([w for w in caught if issubclass(w.category, gc.RecompileWarning)]) == 1
    assert len(trainer._train_step._used) <= settings.MAX_PLANS.get()
