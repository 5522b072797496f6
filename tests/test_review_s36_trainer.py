"""Session 36's fixes of the training library (gc.Trainer); each test failed before its fix."""

import numpy as np
import pytest

import graphc as gc


class _CausalSelfAttention(gc.nn.Module):
    """nanoGPT's pattern: the module reads self.training itself for its attention dropout."""

    def __init__(self):
        super().__init__()
        self.proj = gc.nn.Linear(8, 8, rng=np.random.default_rng(1))
        self.dropout = 0.5

    def forward(self, x):
        q = self.proj(x)
        y = gc.scaled_dot_product_attention(q, q, q, is_causal=True,
                                            dropout_p=self.dropout if self.training else 0.0)
        return gc.mean(y * y)


def test_evaluation_runs_a_users_own_layer_as_after_model_eval():
    """Trainer.evaluate ran a user's own layer in training mode: `self.training` read True,
    so nanoGPT's attention dropped half its weights in every evaluation (1.0027 instead of
    0.4164), though evaluations run the model as under model.eval(). Now `self.training` is
    False while evaluating: the loss is the model's under model.eval(), one eval plan serves
    every evaluation, and the training step still drops out."""
    model = _CausalSelfAttention()
    x = np.random.default_rng(0).normal(size=(2, 4, 8)).astype(np.float32)

    def loss(p, b):
        return model.apply(p, b[0])
    trainer = gc.Trainer(loss, model.params(), gc.optim.SGD(lr=0.1), [(x,)],
                         eval_batches=[(x,)], steps=1)
    evaluated = trainer.evaluate()
    model.eval()
    expected = float(np.asarray(loss(model.params(), (x,))))
    model.train()
    assert evaluated == pytest.approx(expected, rel=1e-6)
    assert trainer.evaluate() == evaluated and trainer._eval_loss.recompiles == []
    assert trainer.train_step() != pytest.approx(expected, rel=1e-3)  # (with dropout)
    assert model.training and model.proj.training
