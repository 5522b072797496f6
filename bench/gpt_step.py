"""GPT training step: graphc compiled vs -O0 vs eager vs PyTorch eager, side by side.

    python -m bench.gpt_step [--configs tiny,small] [--steps 10] [--json out.json]
"""
from graphc.bench import main

if __name__ == "__main__":
    main()
