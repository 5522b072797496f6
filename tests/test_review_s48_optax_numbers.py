"""Session 48's fixes of numbers in the optax-style API (gc.optim.adam, ..., apply_updates)
and the schedules; each test failed before its fix."""
import numpy as np
import pytest

import graphc as gc
from graphc import optim

INT32_MAX = np.iinfo(np.int32).max
LOWERCASE = ["sgd", "adam", "adamw", "nadam", "rmsprop", "adagrad", "adamax", "lion"]


def _adam_step(compiled):
    tx = optim.adam(0.1)

    def step(p, state, g):
        return tx.update(g, state, p)
    return tx, gc.compile(step) if compiled else step


@pytest.mark.parametrize("name", LOWERCASE)
def test_optax_state_count_is_int32_as_optax(name):
    """The count of an optax-style state was int64; optax's init makes jnp.int32 (and its
    schedules and bias corrections read an int32 count). Each lowercase optimiser's init,
    and its update eager and compiled, keep it int32."""
    tx = getattr(optim, name)(0.1)
    params = {"w": np.ones(3, np.float32)}
    grads = {"w": np.full(3, 0.5, np.float32)}
    state = tx.init(params)
    assert state["count"].dtype == np.int32 and state["count"].shape == ()
    step = gc.compile(lambda p, s, g: tx.update(g, s, p))
    for run in (lambda p, s, g: tx.update(g, s, p), step):
        _, new = run(params, state, grads)
        count = np.asarray(new["count"])
        assert count.dtype == np.int32 and int(count) == 1


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_optax_count_saturates_at_int32_max(compiled):
    """optax's safe_int32_increment holds the count at int32's max; graphc's count + 1
    wrapped to -2**31 there (and the next update refused the negative count). Now it
    stays at the max, eager and compiled, and the update is adam's late-step one:
    -lr * g / |g| (both bias corrections 1)."""
    tx, run = _adam_step(compiled)
    params = {"w": np.ones(3, np.float32)}
    grads = {"w": np.array([0.5, -2.0, 4.0], np.float32)}
    state = dict(tx.init(params), count=np.array(INT32_MAX, np.int32))
    state["nu"] = {"w": grads["w"] ** 2}
    state["mu"] = {"w": grads["w"].copy()}
    for _ in range(2):  # at the max and after it
        updates, state = run(params, state, grads)
        count = np.asarray(state["count"])
        assert count.dtype == np.int32 and int(count) == INT32_MAX
        np.testing.assert_allclose(updates["w"], -0.1 * np.sign(grads["w"]), rtol=1e-6)


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_optax_state_with_an_int64_count_is_taken_as_int32(compiled):
    """A state saved with an int64 count (graphc's init before) is converted, not refused:
    the update is the one an int32 count gives, bit for bit, and the new count is int32; one
    past int32's max is held at the max, where optax's would have saturated."""
    tx, run = _adam_step(compiled)
    params = {"w": np.array([1.0, -2.0], np.float32)}
    grads = {"w": np.array([0.25, 3.0], np.float32)}
    base = tx.init(params)
    want, want_state = run(params, dict(base, count=np.array(4, np.int32)), grads)
    got, got_state = run(params, dict(base, count=np.array(4, np.int64)), grads)
    np.testing.assert_array_equal(got["w"], want["w"])
    assert np.asarray(got_state["count"]).dtype == np.int32
    assert int(got_state["count"]) == int(want_state["count"]) == 5
    _, late = run(params, dict(base, count=np.array(2 ** 40, np.int64)), grads)
    assert np.asarray(late["count"]).dtype == np.int32 and int(late["count"]) == INT32_MAX


# each (parameter, update, the sum apply_updates gives): a number update (a Python float or
# a numpy scalar: weakly typed, as every graphc op takes it) is added in the parameter's
# dtype, an array update (0-d too) in the promoted one, then rounded to the parameter's
F32, F16 = np.float32, np.float16
U32, U16 = 0.07888304133745304, -0.08846087544547684
APPLY_CASES = [
    (F32(-0.27320048), U32, F32(-0.27320048) + F32(U32)),
    (np.array(-0.27320048, F32), U32, F32(-0.27320048) + F32(U32)),
    (F32(0.98774505), np.float64(0.12667161954572312), F32(0.98774505) + F32(0.12667161954572312)),
    (F32(0.98774505), np.array(0.12667161954572312), F32(0.98774505 + 0.12667161954572312)),
    (np.array(0.98774505, F32), np.array(0.12667161954572312),
     F32(np.float64(F32(0.98774505)) + 0.12667161954572312)),
    (F16(0.3088), U16, F16(0.3088) + F16(U16)),
    (F16(0.3088), np.array(U16), F16(np.float64(F16(0.3088)) + U16)),
    (F16(0.3088), np.float32(U16), F16(0.3088) + F16(np.float32(U16))),
]


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_apply_updates_adds_number_parameters_as_eager_code(compiled):
    """A compiled apply_updates added a numpy-scalar parameter (np.float32(-0.2732)) and a
    Python float update as two weak numbers, in float64 (-0.19431745 after rounding),
    where the eager call, numpy's, adds in float32 (-0.19431743), as optax's jitted
    float32 parameter plus a weak Python float does; and eagerly a numpy-scalar update
    (np.float64) was added in float64, where compiled, a weak input, it was added in the
    parameter's float32. Now both add a number update in the parameter's dtype and an
    array update (a 0-d one too) in the promoted dtype, bit for bit alike; the result
    keeps the parameter's dtype. The values are chosen where adding in the wider dtype
    and rounding once differs from rounding the update first."""
    apply = gc.compile(lambda p, u: optim.apply_updates(p, u)) if compiled else \
        optim.apply_updates
    for p, u, want in APPLY_CASES:
        got = np.asarray(apply({"w": p}, {"w": u})["w"])
        assert got.dtype == np.asarray(p).dtype, (p, u)
        assert got.tobytes() == np.asarray(want).tobytes(), (p, u, got, want)


# every schedule graphc offers, with settings that reach pow and cos
SCHEDULES = {
    "cosine": lambda: optim.cosine(3e-4, 6000, warmup=200, min_lr=3e-5),
    "linear_warmup": lambda: optim.linear_warmup(1e-3, 700),
    "exponential_decay": lambda: optim.exponential_decay(0.1, 1000, 0.5, transition_begin=100),
    "exponential_decay_staircase": lambda: optim.exponential_decay(0.1, 300, 0.7,
                                                                   staircase=True),
    "warmup_cosine_decay": lambda: optim.warmup_cosine_decay(1e-6, 1e-3, 500, 8000, 1e-5,
                                                             exponent=1.7),
    "one_cycle": lambda: optim.one_cycle(0.01, 9000),
    "one_cycle_linear": lambda: optim.one_cycle(0.01, 9000, anneal_strategy="linear",
                                                three_phase=True),
    "one_cycle_momentum": lambda: optim.one_cycle_momentum(9000),
    "piecewise_constant": lambda: optim.piecewise_constant(0.1, {1000: 0.3, 5000: 0.7}),
    "multistep": lambda: optim.multistep(0.1, [2000, 4000, 4000], 0.3),
    "polynomial_decay": lambda: optim.polynomial_decay(0.1, 1e-4, 2.5, 7000, 300),
    "linear_schedule": lambda: optim.linear_schedule(0.1, 1e-3, 7000, 300),
    "linear_lr": lambda: optim.linear_lr(0.1, 0.2, 1.0, 4000),
    "cosine_decay_schedule": lambda: optim.cosine_decay_schedule(0.1, 7000, 0.01, exponent=3.0),
    "cosine_warm_restarts": lambda: optim.cosine_warm_restarts(0.1, 300, 2, 1e-4),
    "join_schedules": lambda: optim.join_schedules(
        [optim.linear_schedule(0.0, 0.1, 500), optim.cosine_decay_schedule(0.1, 9000)], [500]),
}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_a_schedule_at_an_int_step_is_its_compiled_value_bit_for_bit(name):
    """A schedule called with a Python int (bind(), gc.Trainer, which feeds the lr to its
    compiled step) computed its powers with Python's ** (libm's pow) where the same schedule
    in a compiled update (a traced count) computes numpy's float64 power, which differs by
    up to 2 ulps (its SIMD loops on AVX-512): exponential_decay, polynomial_decay and the
    exponent= of the cosine decays differed at a few hundred of the counts 0..10000. Both
    now compute in float64 with numpy's ufuncs (cos too): equal bits at every count, the
    compiled count 0-d int32 (an optax state's) or int64, or an array of counts."""
    schedule = SCHEDULES[name]()
    counts = np.arange(10001)
    python = np.array([schedule(int(c)) for c in counts], np.float64)
    assert all(type(schedule(int(c))) is float for c in counts[::997])
    traced = np.asarray(gc.compile(schedule)(counts.astype(np.int64)))
    assert traced.dtype == np.float64
    assert python.tobytes() == traced.tobytes(), np.nonzero(python != traced)[0][:10]
    one = gc.compile(schedule)
    for c in list(range(0, 10001, 331)) + [1, 112, 503, 1200]:
        for dtype in (np.int32, np.int64):
            assert float(np.asarray(one(np.array(c, dtype)))).hex() == python[c].hex(), c
