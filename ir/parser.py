"""Parsing the IR text back into a Graph, so tests and bug reports can be written in IR.

`parse(text)` accepts exactly what `format_graph` prints (constants must be printed in full,
`max_inline=None`). Every node's attributes are checked for their kinds
(ir/ops/registry.py: ATTRIBUTE_KINDS) and its type against its op's rule as it is read (the
verifier's check of a node, ir.verify.check_node). Any problem is a GraphcError that names
the line and column.
"""
from __future__ import annotations

import re

import numpy as np

from .errors import GraphcError, clipped
from .graph import Graph
from .ops.registry import REGISTRY
from .types import (DTYPE_PATTERN, DTYPES, RESERVED_SYMBOLS, NotHeld, TensorType, TupleType,
                    exact_array, float_of_text, int_of_text, parse_dim)
from .verify import check_node

_NUMBER = re.compile(r"-?(?:inf|nan|(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_REF = re.compile(r"%(\d+)")
_NAME = re.compile(r"[^\s,()]+")
_BOOL = re.compile(r"true|false")
_DTYPE = re.compile(DTYPE_PATTERN)
_IDENT_CHAR = re.compile(r"[A-Za-z0-9_]")
# a dimension in a type: an int or a symbolic expression (`batch`, `2*batch+1`, `b*t`)
_DIM = re.compile(r"[A-Za-z0-9_*+\-]+")
# a symbolic dimension as an attribute value: it has a symbol (a number alone is a number)
_SYMBOL_OR_INT = r"(?:[A-Za-z_][A-Za-z0-9_]*|\d+)"
_DIM_VALUE = re.compile(r"-?(?:\d+\*)*[A-Za-z_][A-Za-z0-9_]*(?:[*+\-]" + _SYMBOL_OR_INT + ")*")
# ir.printer's reference to a region printed above (format_graph's `collapse`): the region
# it names may be one of several of that name, so it is refused, not looked up
_COLLAPSED = re.compile(r" .*: as printed above }")
# Attribute values nest (tuples of tuples), and so do types and regions; real graphs need two
# or three levels. The bound keeps hostile input from exhausting Python's stack.
MAX_NESTING = 32


def region_nesting(graph) -> int:
    """How deep `graph`'s regions nest as this reader counts them against MAX_NESTING: one
    level per region and one per tuple holding a region (a cond's branches: two levels per
    cond), so that the text is read back iff it is at most MAX_NESTING. A walk with a stack
    of its own: the tracer, recursing in Python, builds graphs nested past any bound."""
    from .printer import is_region
    deepest, stack = 0, [(graph, 0)]
    while stack:
        g, depth = stack.pop()
        deepest = max(deepest, depth)
        for node in g.nodes:
            values = [(v, depth) for v in node.attrs.values()]
            while values:
                v, level = values.pop()
                if is_region(v):
                    stack.append((v, level + 1))
                elif isinstance(v, tuple):
                    values.extend((x, level + 1) for x in v)
    return deepest


class _Fail(Exception):
    def __init__(self, message, column, line=None):
        super().__init__(message)
        self.column = column
        self.line = line  # the file's line number; None: the node's first line


class _Summary(_Fail):
    """A constant printed as a summary: parse raises SummarizedConstantError for it."""


class SummarizedConstantError(GraphcError):
    """A constant printed as a summary (format_graph's, past MAX_INLINE elements) holds no
    values to read back. `where` is its place ('IR line 2, column 25'); the message's way out
    is format_graph's own (max_inline=None): a command that prints the text with an option
    of its own (graphc dump's --full) words its own line from `where` and `PROBLEM`."""
    PROBLEM = "this constant was printed as a summary, without its values"

    def __init__(self, where: str):
        self.where = where
        super().__init__(f"{where}: {self.PROBLEM}; print it with max_inline=None (or use "
                         "the JSON form) to parse it")


class _Cursor:
    def __init__(self, text, region_reader=None, line=None, pos=0):
        self.text, self.pos = text, pos
        self.region_reader = region_reader  # (cursor, depth) -> a region read from below
        # the line `text` is, where not the node's first: after a region the cursor reads on
        # from its closing line (`}, consts=0, length=4}`), and names that line in errors
        self.line = line

    def ws(self):
        while self.pos < len(self.text) and self.text[self.pos] in " \t":
            self.pos += 1

    def peek(self, s):
        self.ws()
        return self.text.startswith(s, self.pos)

    def accept(self, s):
        if self.peek(s):
            self.pos += len(s)
            return True
        return False

    def expect(self, s, what=None):
        if not self.accept(s):
            self.fail(f"expected {what or repr(s)}")

    def match(self, pattern, what):
        self.ws()
        m = pattern.match(self.text, self.pos)
        if not m:
            self.fail(f"expected {what}")
        self.pos = m.end()
        return m

    def at_end(self):
        self.ws()
        return self.pos >= len(self.text)

    def fail(self, message):
        """A parse error at the cursor: the message says what was expected there, and what
        was found."""
        found = self.text[self.pos:self.pos + 12] or "end of line"
        raise _Fail(f"{message}, found {found!r}", self.pos + 1, self.line)

    def refuse(self, message, pos):
        """An error in what was read from `pos` on (a dimension, a constant's values): its
        column, and no 'found' (the text after it, or 'end of line', which was no part of
        the problem)."""
        raise _Fail(message, pos + 1, self.line)


def _type(c: _Cursor, depth: int = 0):
    if c.accept("("):  # a control-flow node's TupleType
        if depth >= MAX_NESTING:  # (a tuple in a tuple is no type a node has; the bound
            c.pos -= 1            # keeps '((((...' from exhausting Python's stack)
            c.fail(f"a type nested more than {MAX_NESTING} levels deep")
        elements = []
        if not c.accept(")"):
            while True:
                elements.append(_type(c, depth + 1))
                if c.accept(")"):
                    break
                c.expect(",", "',' or ')'")
        return TupleType(elements)
    dtype = c.match(re.compile(DTYPE_PATTERN), "a dtype (f32, f64, f16, bf16, i32, i64, bool)")
    c.expect("[")
    dims = []
    if not c.accept("]"):
        while True:
            dims.append(_dim(c, c.match(_DIM, "a dimension")))
            if c.accept("]"):
                break
            c.expect(",", "',' or ']'")
    return TensorType(tuple(dims), DTYPES[dtype.group()])


def _shown_attrs(attrs: dict) -> str:
    text = "{" + ", ".join(f"{k}={v!r}" for k, v in attrs.items()) + "}"
    return text if len(text) <= 80 else text[:77] + "..."


def _dim(c: _Cursor, m):
    try:
        return parse_dim(m.group())
    except ValueError as exc:
        c.refuse(f"bad dimension {clipped(m.group())!r} ({exc})", m.start())


def _number(c: _Cursor, what: str):
    """A number here: an int, or a float; a finite one past float64's range (1e309, which
    float() reads as inf) is refused, inf being written as such (as the printer writes it)."""
    m = c.match(_NUMBER, what)
    try:  # (an int past Python's 4,300 digits: its own limit's line, naming no column)
        if re.fullmatch(r"-?\d+", m.group()):
            return int_of_text(m.group())
        return float_of_text(m.group())
    except ValueError as exc:
        c.refuse(str(exc), m.start())


def _string(c: _Cursor) -> str:
    """A double-quoted string (the cursor at its quote), as ir.printer.format_attr writes it."""
    c.pos += 1
    out = []
    while c.pos < len(c.text) and c.text[c.pos] != '"':
        if c.text[c.pos] == "\\" and c.pos + 1 < len(c.text):
            c.pos += 1
            ch = c.text[c.pos]
            if ch in "nr":  # a line break the printer escaped
                out.append("\n" if ch == "n" else "\r")
            elif ch == "u" and re.fullmatch(r"[0-9a-f]{4}", c.text[c.pos + 1:c.pos + 5]):
                out.append(chr(int(c.text[c.pos + 1:c.pos + 5], 16)))
                c.pos += 4
            else:  # \\ and \"
                out.append(ch)
        else:
            out.append(c.text[c.pos])
        c.pos += 1
    c.expect('"', "a closing quote")
    return "".join(out)


def _name(c: _Cursor, what: str) -> str:
    """A graph's or an input's name: bare, or quoted where ir.printer.format_name quoted it
    (a name with a space, a comma, a parenthesis or a quote)."""
    return _string(c) if c.peek('"') else c.match(_NAME, what).group()


def _keyword(c: _Cursor, pattern):
    """The match of `pattern` (a keyword, a dtype name) here as a whole word, else None: a
    symbolic dimension may start with one (`bool_n`, `i64_rows`, `truex`)."""
    m = pattern.match(c.text, c.pos)
    return m if m and not _IDENT_CHAR.match(c.text, m.end()) else None


def _value(c: _Cursor, depth: int = 0):
    c.ws()
    m = _keyword(c, _BOOL)
    if m:
        c.pos = m.end()
        return m.group() == "true"
    if c.peek('"'):
        return _string(c)
    if c.accept("("):
        if depth >= MAX_NESTING:
            c.pos -= 1
            c.fail(f"attribute value nested more than {MAX_NESTING} levels deep")
        items = []
        if c.accept(")"):
            return ()
        while True:
            items.append(_value(c, depth + 1))
            if c.accept(")"):
                return tuple(items)
            c.expect(",", "',' or ')'")
            if c.accept(")"):
                return tuple(items)
    if c.peek("{"):  # a region: its graph on the lines below, up to the matching "}"
        start = c.pos
        c.accept("{")
        if _COLLAPSED.match(c.text, c.pos):
            c.pos = start
            c.fail("a region printed as a reference to one above (graphc dump --collapse) "
                   "does not parse back; dump without --collapse for text to read back")
        if not c.at_end() or c.region_reader is None:
            c.pos = start
            c.fail("a region's graph must start on the next line")
        return c.region_reader(c, depth)
    m = _keyword(c, _DTYPE)
    if m:
        c.pos = m.end()
        return DTYPES[m.group()]
    m = _DIM_VALUE.match(c.text, c.pos)
    if m and m.group().lstrip("-") not in RESERVED_SYMBOLS:
        c.pos = m.end()
        return _dim(c, m)
    return _number(c, "a value")


def _constant(c: _Cursor, type_: TensorType):
    if c.peek("<"):
        raise _Summary("", c.pos + 1, c.line)
    c.ws()
    start, values, columns = c.pos, [], []  # (each value's, to name one its dtype refuses)
    if c.accept("["):
        if not c.accept("]"):
            while True:
                values.append(_scalar(c, columns))
                if c.accept("]"):
                    break
                c.expect(",", "',' or ']'")
    else:
        values.append(_scalar(c, columns))
    if len(values) != type_.size:
        c.refuse(f"constant of type {type_} needs {type_.size} values, got {len(values)}",
                 start)
    try:
        return exact_array(values, type_.dtype, type_.shape)
    except NotHeld as exc:  # a value its dtype changes (a fraction, an overflow): named
        c.refuse(str(exc), columns[exc.index])  # at its column


def _scalar(c, columns):
    c.ws()
    columns.append(c.pos)
    if c.accept("true"):
        return True
    if c.accept("false"):
        return False
    return _number(c, "a number")


def _locs(c: _Cursor):
    locs = []
    while not c.at_end():
        m = c.match(re.compile(r"(.+?):(\d+)(?=,|\s*$)"), "a location file:line")
        locs.append((m.group(1).strip(), int(m.group(2))))
        c.accept(",")
    return tuple(locs)


def _misplaced_location(c: _Cursor, message: str):
    """Refuse the comment `c` of a line that holds no location (`message` says why): a
    region node's line before its last (the closing line's comment took its place) or a
    'return' line (no node), where a malformed one was dropped silently. It is named at its
    column as on other lines: a bad location as such, a good one as out of place. An empty
    '#' holds no location, as on any other line."""
    c.ws()
    if c.at_end():
        return
    column = c.pos + 1
    _locs(c)
    raise _Fail(message, column, c.line)


# runs of plain characters at once: one character per step was ~100x slower on a long line
# (a large constant printed with --full)
_OUTSIDE_QUOTES = re.compile(r'(?:[^"#]+|"(?:[^"\\]|\\.)*"?)*')


def _split_comment(raw):
    """A node line and a cursor on its location comment (None without one): from the first
    `#` outside a quoted string (custom_vjp's fn="step#2" holds one). The cursor reads the
    whole line from after the `#`, so a bad location is named at its column in the line (a
    cursor on the comment alone counted from after the `#`)."""
    if "#" in raw and not raw.lstrip().startswith("graph"):
        end = _OUTSIDE_QUOTES.match(raw).end()
        if end < len(raw):
            return raw[:end], _Cursor(raw, pos=end + 1)
    return raw, None


def _node_failure(problem, op, attrs, t, op_column, columns) -> _Fail:
    """check_node's problem with a node's line, at its column: the attribute's name for an
    attribute, the line's start for its type, else the op's name."""
    if problem.part == "attribute":  # (its line: after a region, the closing one; one the
        # node lacks: the op's name)
        line_number, column = columns.get(problem.attribute, (None, op_column))
        return _Fail(problem.message, column, line_number)
    if problem.part == "type":
        return _Fail(f"{problem.message}, but the line says {t}", 1)
    if problem.part == "rule" and problem.rule_words:
        return _Fail(f"ill-typed {op}: {problem.message}", op_column)
    if problem.part == "rule":  # Python's own words (an attribute of another type: "'<='
        # not supported between 'int' and 'str'") after ours
        return _Fail(f"ill-typed {op}: its attributes {_shown_attrs(attrs)} do not fit it "
                     f"({problem.message})", op_column)
    return _Fail(problem.message, op_column)  # the operand count


def parse(text: str, _depth: int = 0, _first_line: int = 1) -> Graph:
    lines = text.splitlines()
    values: dict = {}
    graph = None
    outputs = None
    returned = None
    index = 0
    comment = None

    def read_region(c, depth):
        """The lines from here to the matching "}" are a region's graph; the cursor goes on
        with the rest of that closing line (its columns and number are that line's)."""
        nonlocal index, comment
        if _depth + depth >= MAX_NESTING:
            # (a cond's branches are a tuple of regions, a level of its own: 17 nested
            # conds are 34 levels, and "more than 32" of 17 regions puzzled)
            c.fail(f"regions nested more than {MAX_NESTING} levels deep, counting a tuple of "
                   "regions (a cond's branches) as a level too")
        if comment is not None:  # (the node's first line, or a `}, {` between its regions)
            _misplaced_location(comment, "a location comment goes on a node's last line, "
                                         "after its regions")
        start, level = index, 0
        while index < len(lines):
            line, line_comment = _split_comment(lines[index])
            stripped = line.strip()
            index += 1
            if stripped.startswith("}"):
                if level == 0:
                    region = parse("\n".join(lines[start:index - 1]), _depth + depth + 1,
                                   _first_line + start)
                    c.text, c.pos, c.line = line, line.index("}") + 1, _first_line + index - 1
                    comment = line_comment
                    if comment is not None:
                        comment.line = c.line
                    return region
                level -= 1
            if stripped.endswith("{"):
                level += 1
        c.fail("a region without its closing '}'")

    def ref(c):
        c.ws()
        start = c.pos
        m = c.match(_REF, "a value reference like %3")
        key = int(m.group(1))
        if key not in values:
            c.pos = start
            c.fail(f"%{key} is not defined above")
        return values[key]

    while index < len(lines):
        number = _first_line + index
        line, comment = _split_comment(lines[index])
        index += 1
        if not line.strip():
            continue
        c = _Cursor(line, read_region)
        try:
            if graph is None:
                c.expect("graph", "'graph NAME(...)' on the first line")
                name = _name(c, "a graph name")
                graph = Graph(name)
                graph.output_tree = None
                c.expect("(")
                if not c.accept(")"):
                    while True:
                        key = int(c.match(_REF, "an input like %0:f32[2] x").group(1))
                        c.expect(":")
                        t = _type(c)
                        first = _name(c, "an input name")
                        kind, iname = "input", first
                        if first in ("param", "state") and not (c.peek(",") or c.peek(")")):
                            kind, iname = first, _name(c, "an input name")
                        if key in values:
                            c.fail(f"%{key} is defined twice")
                        if any(n.attrs["name"] == iname for n in graph.inputs):
                            c.fail(f"two inputs are named {iname!r}")
                        with graph.locations(()):
                            values[key] = graph.input(iname, t.shape, t.dtype, kind)
                        if c.accept(")"):
                            break
                        c.expect(",", "',' or ')'")
                c.expect("->")
                c.expect("(")
                outputs, signature_line = [], number
                if not c.accept(")"):
                    while True:
                        c.ws()  # (each output's line and column, for the checks at the end)
                        column = c.pos + 1  # (where the reference starts, before reading it)
                        outputs.append((int(c.match(_REF, "an output reference").group(1)),
                                        column))
                        if c.accept(")"):
                            break
                        c.expect(",", "',' or ')'")
                if not c.at_end():  # (it was ignored: `-> (%3) (%4)` returned %3 alone)
                    c.fail("unexpected text after the signature")
            elif returned is not None:  # (a second 'return' replaced the first; a node
                # after it was added to the graph)
                raise _Fail(f"text after the 'return' line (line {return_line}), which ends "
                            "the graph", len(line) - len(line.lstrip()) + 1)
            elif c.accept("return"):
                return_line = number
                returned = [] if c.at_end() else [ref(c)]
                while not c.at_end():
                    c.expect(",", "',' between return values")
                    returned.append(ref(c))
                if comment is not None:  # (the printer writes none there)
                    _misplaced_location(comment, "a 'return' line holds no location comment")
            else:
                key = int(c.match(_REF, "a node like '%3:f32[2] = op ...'").group(1))
                if key in values:
                    c.fail(f"%{key} is defined twice")
                c.expect(":")
                t = _type(c)
                c.expect("=")
                c.ws()
                op_start = c.pos
                op = c.match(_IDENT, "an op name").group()
                if op not in REGISTRY or op == "input":
                    c.pos = op_start
                    c.fail(f"unknown op {op!r}")
                if op == "constant":
                    locs = _locs(comment) if comment else ()
                    node = graph.add_node("constant", [], {"value": _constant(c, t)}, t, locs)
                    node.attrs["value"].setflags(write=False)
                else:
                    operands, attrs, columns = [], {}, {}
                    if c.peek("%"):
                        operands.append(ref(c))
                        while c.accept(","):
                            operands.append(ref(c))
                    if c.accept("{"):
                        while True:
                            key_name = c.match(_IDENT, "an attribute name").group()
                            column = c.pos - len(key_name) + 1
                            if key_name in columns:  # (a dict kept the last, silently)
                                raise _Fail(f"{op}: attribute {key_name} is given twice "
                                            f"(first at line {columns[key_name][0] or number}"
                                            f", column {columns[key_name][1]})", column,
                                            c.line)
                            columns[key_name] = (c.line, column)
                            c.expect("=")
                            attrs[key_name] = _value(c)
                            if c.accept("}"):
                                break
                            c.expect(",", "',' or '}'")
                    if comment:  # (after any region: the comment is its closing line's)
                        comment.line = c.line
                    locs = _locs(comment) if comment else ()
                    problem = check_node(REGISTRY[op], [o.type for o in operands], attrs, t)
                    if problem is not None:
                        raise _node_failure(problem, op, attrs, t, op_start + 1, columns)
                    node = graph.add_node(op, operands, attrs, t, locs)
                if not c.at_end():
                    c.fail("unexpected text")
                values[key] = node
        except _Fail as exc:  # (an op's own problems are named at its first line)
            where = f"IR line {exc.line or number}, column {exc.column}"
            if isinstance(exc, _Summary):
                raise SummarizedConstantError(where) from None
            raise GraphcError(f"{where}: {exc}") from None
        except ValueError as exc:  # int() of a number past Python's 4,300 digits
            raise GraphcError(f"IR line {number}: {exc}") from None
    if graph is None:
        raise GraphcError("IR text is empty: expected 'graph NAME(...) -> (...)'")
    if returned is None:  # (a region's lines are numbered from _first_line, as the file's)
        raise GraphcError(f"IR line {_first_line + len(lines) - 1}: missing 'return' line")
    for k, column in outputs:
        if k not in values:
            raise GraphcError(f"IR line {signature_line}, column {column}: the signature "
                              f"names output %{k}, which is not defined")
    declared = [values[k] for k, _ in outputs]
    if len(declared) != len(returned) or not all(a is b for a, b in zip(declared, returned)):
        raise GraphcError(f"IR line {return_line}: the 'return' line differs from the "
                          f"outputs the signature on line {signature_line} names ("
                          f"{', '.join(f'%{k}' for k, _ in outputs)})")
    graph.set_outputs(returned)
    return graph
