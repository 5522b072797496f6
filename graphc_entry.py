"""The `graphc` command's entry point ([project.scripts] in pyproject.toml).

A module of its own, outside the graphc package (importing any of graphc's modules imports
the package, and with it numpy, scipy and numba: a second or more): a Ctrl-C while they are
still being imported ends quietly with status 130, as one during a command does, where the
launcher's own `from graphc.cli import main` printed a long KeyboardInterrupt traceback
through the imports.
"""
import sys


def main() -> int:
    try:
        from graphc.cli import main as run_command
        return run_command()
    except KeyboardInterrupt:  # (during a command, graphc.cli reports it itself)
        print("graphc: interrupted", file=sys.stderr)
        return 130
