"""The suite's check of bad-input errors: one GraphcError of one line naming the problem,
then the user's line (the test file's), never graphc's own."""
import pytest

from ir.errors import GraphcError


def one_line_problem(call, test_file):
    """The problem line of the GraphcError `call` raises, checked to be one line followed by
    the user's line in tests/`test_file`."""
    with pytest.raises(GraphcError) as info:
        call()
    problem, where = str(info.value).splitlines()
    assert where.strip().startswith(f"at tests/{test_file}:"), where
    return problem


def assert_one_line_error(call, message, test_file):
    problem = one_line_problem(call, test_file)
    assert message in problem, problem
