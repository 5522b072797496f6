"""graphc's error type and the search for the user's line of code.

Every error a user can cause names the problem and the file:line of *their* code, found by
walking the Python stack past graphc's own frames.
"""
from __future__ import annotations

import os
import sys
import sysconfig

import numpy as np

# Library frames are skipped when looking for the user's line. Each of graphc's packages
# registers its own directory when it is imported (ir knows none of the packages above it);
# bundled models count as user code, so that a dump or a profile of the GPT points at lines of
# its model file.
_INTERNAL_DIRS: tuple = ()
_USER_DIRS: tuple = ()
# The code of entry points (no_user_code_above): the search for the user's line ends there
_ENTRY_CODES: set = set()


def register_library_package(init_file: str, user_code=()):
    """Frames from the package whose `__init__.py` is `init_file` are the library's own, except
    those under its subdirectories named in `user_code`."""
    global _INTERNAL_DIRS, _USER_DIRS
    directory = os.path.dirname(os.path.abspath(init_file))
    _INTERNAL_DIRS += (directory + os.sep,)
    _USER_DIRS += tuple(os.path.join(directory, d) + os.sep for d in user_code)


register_library_package(os.path.join(os.path.dirname(os.path.abspath(__file__)), "__init__.py"))
# numpy calling back into graphc (np.shape(x) of a traced value: Node.__array__ raises) is
# never the user's line; the error named numpy's fromnumeric.py
register_library_package(np.__file__)


def no_user_code_above(fn):
    """Mark `fn` (a command line's main) as an entry point: the frames that call it are no
    user's line of code, so user_location() stops at it. Past it the search found the
    `graphc` launcher script (`sys.exit(main())`, in a message as "at .../bin/graphc:6"), or
    the test calling main(). Returns `fn` (a decorator)."""
    _ENTRY_CODES.add(fn.__code__)
    return fn


def with_article(word) -> str:
    """`word` (a type's or a dtype's name) after "a" or "an", as a message says it: "a list",
    "an array", "an int64", "an ndarray", "a uint8" (a "u" sounds as "you")."""
    word = str(word)
    return f"{'an' if word.lower().startswith(('a', 'e', 'i', 'o', 'nd')) else 'a'} {word}"


def clipped(text: str, limit: int = 40) -> str:
    """`text` as a message shows it: its start alone where it is longer than `limit` (a
    4,300-digit dimension, echoed whole, made one line of thousands of characters)."""
    return text if len(text) <= limit else text[:limit // 2] + "..."


def a_type(value) -> str:
    """`value`'s type for a message: "a list", "an array" (array.array: it was "a array")."""
    return with_article(type(value).__name__)


class GraphcError(Exception):
    """An error in the user's program or input, reported without a deep numpy traceback."""

    def __init__(self, message: str, locs=()):
        self.message = message
        # user_location() is None when no frame is the user's (a rule run from a CLI command)
        self.locs = tuple(loc for loc in (locs or ()) if loc)
        super().__init__(self._render())

    def _render(self) -> str:
        if not self.locs:
            return self.message
        where = ", ".join(f"{f}:{line}" for f, line in self.locs[:3])
        return f"{self.message}\n  at {where}"


class UsersIndexError(IndexError):
    """An op's run-time refusal already in the user's terms: check_index's numpy words for
    the value and the user's axis. Where an op fails, the runners (a plan, eager run_op)
    give it as it is at the op's user line, not after the op's internal name and operand
    types ('check_index(i64[2]) failed while running: ...' named an op never called)."""


class TracedNumberError(GraphcError):
    """A Python number or bool argument, traced (weakly typed), used as a Python value (a
    shape, a range, an `if`): transformations that can pass it as it is instead retry.
    `arguments`: the names of the graph inputs it is computed from ("arg1", "arg2");
    `reason`: what was asked of it, without the advice after it (a transformation that
    knows better advice, grad's for a differentiated number, gives its own); `advice`: the
    way out given after it ("list its position in static_argnums"), "" if none; `value`:
    the traced value asked, whose inputs tell a transformation whether it computed it from
    an argument it differentiates."""

    def __init__(self, message: str, locs=(), arguments: tuple = (), reason: str = "",
                 advice: str = "", value=None):
        self.arguments = tuple(arguments)
        self.reason = reason or message
        self.advice = advice
        self.value = value
        super().__init__(message, locs)


class TracedAttributeError(GraphcError, AttributeError):
    """A torch.Tensor attribute (`.grad`, `.item()`, ...) asked of a value being traced: one
    line saying what to do instead, and still an AttributeError, so that hasattr() and
    getattr(x, name, default) of a traced value keep answering False and the default."""


# Python's own modules: a graphc context manager's error is raised through contextlib's frame
_STDLIB = os.path.join(sysconfig.get_paths()["stdlib"], "")


def _is_internal(filename: str) -> bool:
    if filename.startswith(_USER_DIRS):
        return False
    return filename.startswith(_INTERNAL_DIRS) or filename.startswith("<frozen") or \
        (filename.startswith(_STDLIB) and "-packages" not in filename)


def user_location():
    """(file, line) of the innermost stack frame that is not graphc's own code."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code not in _ENTRY_CODES:
        filename = frame.f_code.co_filename
        if not _is_internal(filename):
            return (_short(filename), frame.f_lineno)
        frame = frame.f_back
    return None


def library_frames(frame):
    """`frame` and its callers, outward, while they are graphc's own code: the calls between
    the user's line (user_location's) and `frame`."""
    while frame is not None and frame.f_code not in _ENTRY_CODES and \
            _is_internal(frame.f_code.co_filename):
        yield frame
        frame = frame.f_back


def traceback_location(tb):
    """(file, line) of the innermost frame of traceback `tb` in the user's code: neither
    graphc's own nor Python's or an installed package's; None if there is none."""
    import traceback
    installed = tuple(os.path.join(p, "") for p in {sys.prefix, sys.base_prefix})
    found = None
    for frame in traceback.extract_tb(tb):
        if not (_is_internal(frame.filename)
                or os.path.abspath(frame.filename).startswith(installed)):
            found = (_short(frame.filename), frame.lineno)
    return found


def user_stacklevel() -> int:
    """The `stacklevel` for warnings.warn, called by this function's caller, that points at
    the user's line: one more for every graphc frame between them."""
    level, frame = 1, sys._getframe(1)
    while frame.f_back is not None and _is_internal(frame.f_code.co_filename):
        frame, level = frame.f_back, level + 1
    return level


def definition_location(fn):
    """(file, line) where a Python function was defined, or None (a builtin)."""
    code = getattr(fn, "__code__", None)
    return (_short(code.co_filename), code.co_firstlineno) if code is not None else None


def callback_locations(fn) -> tuple:
    """Where an error in the result of a user's function that graphc calls back (a custom
    gradient rule, a backward hook) is reported: its definition (the backward pass runs it
    from a command of the user's, so no frame on the stack is its own), and the user's line."""
    return (definition_location(fn), user_location())


def _short(filename: str) -> str:
    try:
        rel = os.path.relpath(filename)
    except ValueError:
        return filename
    return rel if not rel.startswith("..") else filename
