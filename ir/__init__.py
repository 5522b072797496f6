"""graphc's intermediate representation: types, graphs, the op library and the printer."""
from . import ops  # noqa: F401
from .errors import GraphcError  # noqa: F401
from .graph import Graph, Node, current_graph  # noqa: F401
from .types import TensorType  # noqa: F401
