"""Graph-to-graph compiler passes."""
