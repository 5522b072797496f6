"""Graph-to-graph compiler passes."""
from ir.errors import register_library_package

register_library_package(__file__)
