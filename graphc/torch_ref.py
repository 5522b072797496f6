"""nanoGPT's forward pass in PyTorch, on graphc's parameter dict (weights stored (in, out)).

PyTorch is an optional extra: this is the oracle the tests compare against and the reference
contender of the benchmark. Import it only when torch is installed.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as TF


def torch_gpt(P: dict, idx, targets, cfg):
    """-> (logits, mean cross-entropy) for idx (B, T) with parameters P (name -> tensor)."""
    B, T = idx.shape
    C, H = cfg.n_embd, cfg.n_head
    x = P["wte.weight"][idx] + P["wpe.weight"][:T]
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for layer in range(cfg.n_layer):
        pre = f"blocks.{layer}."
        h = TF.layer_norm(x, (C,), P[pre + "ln_1.weight"], P[pre + "ln_1.bias"], 1e-5)
        qkv = h @ P[pre + "attn.c_attn.weight"] + P[pre + "attn.c_attn.bias"]
        q, k, v = (t.view(B, T, H, C // H).transpose(1, 2) for t in qkv.split(C, dim=2))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(C // H))
        att = att.masked_fill(~mask, float("-inf"))
        y = (att.softmax(-1) @ v).transpose(1, 2).contiguous().view(B, T, C)
        x = x + y @ P[pre + "attn.c_proj.weight"] + P[pre + "attn.c_proj.bias"]
        h = TF.layer_norm(x, (C,), P[pre + "ln_2.weight"], P[pre + "ln_2.bias"], 1e-5)
        h = TF.gelu(h @ P[pre + "mlp.c_fc.weight"] + P[pre + "mlp.c_fc.bias"],
                    approximate="tanh")
        x = x + h @ P[pre + "mlp.c_proj.weight"] + P[pre + "mlp.c_proj.bias"]
    x = TF.layer_norm(x, (C,), P["ln_f.weight"], P["ln_f.bias"], 1e-5)
    head = P["wte.weight"] if cfg.tie_weights else P["lm_head.weight"].T
    logits = x @ head.T
    if targets is None:
        return logits, None
    return logits, TF.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
