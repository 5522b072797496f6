"""Review (session 14e) of generation (graphc/generate.py's sampling) and mixed precision
(graphc/amp.py's dynamic loss scaling), against PyTorch's GradScaler and plain numpy."""
import numpy as np
import torch  # the oracle; the test set-up installs it (as tests/test_optim.py's)

import graphc as gc
from graphc.amp import LossScaler
from graphc.generate import choose


def test_loss_scale_never_grows_past_float32_like_gradscaler():
    """torch._amp_update_scale_ keeps a scale whose growth would be Inf; graphc's became Inf,
    and an Inf scale makes every later step skipped (Inf * 0 gradients) with Inf halved to
    Inf: training stalled for good."""
    scaler = LossScaler(growth_interval=1)
    big = np.float32(2.0 ** 127)
    state = {"scale": gc.tensor(np.asarray(big)), "good_steps": gc.tensor(np.asarray(0))}
    with np.errstate(over="ignore"):
        new = scaler.update(gc.tensor(np.asarray(True)), state)
    assert float(np.asarray(new["scale"])) == float(big)  # torch: 1.7014e+38, tracker 0
    assert int(np.asarray(new["good_steps"])) == 0
    # still grows below the limit, and still halves on an overflow
    state = {"scale": gc.tensor(np.asarray(np.float32(2.0 ** 126))),
             "good_steps": gc.tensor(np.asarray(0))}
    assert float(np.asarray(scaler.update(gc.tensor(np.asarray(True)), state)["scale"])) \
        == 2.0 ** 127
    assert float(np.asarray(scaler.update(gc.tensor(np.asarray(False)), state)["scale"])) \
        == 2.0 ** 125


def test_loss_scale_update_matches_torch_over_a_sequence():
    scaler = LossScaler(init_scale=2.0 ** 120, growth_interval=2)
    state = {k: gc.tensor(v) for k, v in scaler.init().items()}
    scale, tracker = torch.tensor([2.0 ** 120]), torch.tensor([0], dtype=torch.int32)
    for finite in [True] * 30 + [False] + [True] * 4:
        with np.errstate(over="ignore"):
            state = scaler.update(gc.tensor(np.asarray(finite)), state)
        torch._amp_update_scale_(scale, tracker, torch.tensor([0.0 if finite else 1.0]),
                                 2.0, 0.5, 2)
        assert float(np.asarray(state["scale"])) == float(scale[0])
        assert int(np.asarray(state["good_steps"])) == int(tracker[0])


def test_a_tiny_temperature_samples_the_argmax_instead_of_crashing():
    """logits / 1e-320 overflowed to Inf and Inf - Inf gave NaN probabilities
    (ValueError: probabilities contain NaN); a temperature that small is the greedy limit."""
    logits = np.array([1.0, 3.0, 2.0, -np.inf])
    for temperature in (1e-320, 1e-300):
        for seed in range(3):
            assert choose(logits, temperature, rng=np.random.default_rng(seed)) == 1
            assert choose(logits, temperature, top_k=2, top_p=0.5,
                          rng=np.random.default_rng(seed)) == 1
    # ordinary temperatures: the same distribution as softmax(logits / T)
    rng = np.random.default_rng(0)
    draws = [choose(np.array([0.0, 1.0, 2.0]), 0.7, rng=rng) for _ in range(4000)]
    p = np.exp(np.array([0.0, 1.0, 2.0]) / 0.7)
    np.testing.assert_allclose(np.bincount(draws, minlength=3) / 4000, p / p.sum(), atol=0.03)
