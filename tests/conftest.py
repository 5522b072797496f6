"""Plans built by the tests compile their kernels before they run (runtime.tiering: the
background compiler and the swap to compiled kernels have tests of their own)."""
import os

os.environ.setdefault("GRAPHC_BACKGROUND_COMPILE", "0")
