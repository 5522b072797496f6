"""The benchmark (same as `graphc bench`): GPT training and inference steps and an MLP
training step under graphc compiled, -O0, eager and PyTorch eager, interleaved.

    python -m bench.gpt_step [--workloads gpt-small-train] [--steps 10] [--json F] [--plot F]
"""
from graphc.bench import main

if __name__ == "__main__":
    main()
