"""Where two pytrees first differ, for the messages of control flow (a loop carry that the
body returns changed, two cond branches that disagree): the path of the first differing
part, written as JAX writes one (carry['layer7']['h'], carry[1]), and how it differs (its
type, a tuple against a list, a length, None against an array), so that a user need not
count through a line of 24 types or read two structures that print alike."""
from __future__ import annotations

from .tracing import DICT_KINDS


def _kind_name(structure) -> str:
    if structure is None:
        return "an array"
    kind = structure[0]
    if kind is type(None):
        return "None"
    if kind in DICT_KINDS:
        return "a dict" if kind is dict else f"a {kind.__name__}"
    return f"a {kind.__name__}"


def first_apart(new, old, new_types, old_types, root="carry"):
    """(path, how new is there, how old is there, k, j) at the first place, in flatten
    order, where structures `new` and `old` (graphc.tracing.leaves_and_structure's) differ,
    or where leaves' types (`new_types`/`old_types`, in flatten order; compared with ==)
    differ: then k and j are the two leaves' indices (else None); None where nothing does."""
    counters = [0, 0]

    def walk(a, b, path):
        if a is None and b is None:
            k, j = counters
            counters[0] += 1
            counters[1] += 1
            if k < len(new_types) and j < len(old_types) and new_types[k] != old_types[j]:
                return path, str(new_types[k]), str(old_types[j]), k, j
            return None
        if a is None or b is None or a[0] is not b[0]:
            return path, _kind_name(a), _kind_name(b), None, None
        kind, a_children, b_children = a[0], a[1], b[1]
        if kind in DICT_KINDS:
            a_keys, b_keys = [k for k, _ in a_children], [k for k, _ in b_children]
            if set(a_keys) != set(b_keys):
                return (path, f"a dict with keys {sorted(a_keys, key=repr)}",
                        f"a dict with keys {sorted(b_keys, key=repr)}", None, None)
            b_of = dict(b_children)
            pairs = [(f"{path}[{k!r}]", c, b_of[k]) for k, c in a_children]
        else:
            if len(a_children) != len(b_children):
                return (path, f"{_kind_name(a)} of length {len(a_children)}",
                        f"{_kind_name(b)} of length {len(b_children)}", None, None)
            pairs = [(f"{path}[{k}]", c, d) for k, (c, d) in
                     enumerate(zip(a_children, b_children))]
        for p, c, d in pairs:
            found = walk(c, d, p)
            if found is not None:
                return found
        return None

    return walk(new, old, root)
