"""The suite's check of bad-input errors: one GraphcError of one line naming the problem,
then the user's line (the test file's), never graphc's own."""
import pytest

from ir.errors import GraphcError


def assert_one_line_error(call, message, test_file):
    with pytest.raises(GraphcError) as info:
        call()
    problem, where = str(info.value).splitlines()
    assert message in problem, problem
    assert where.strip().startswith(f"at tests/{test_file}:"), where
