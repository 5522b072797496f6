"""Built-in models."""
from .gpt import CONFIGS, GPT, GPTConfig  # noqa: F401
