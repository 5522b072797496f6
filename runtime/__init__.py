"""Executors: the reference interpreter, eager mode and the compiled plan."""
from ir.errors import register_library_package

register_library_package(__file__)
