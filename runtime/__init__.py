"""Executors: the reference interpreter, eager mode and the compiled plan."""
