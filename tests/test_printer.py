import graphc as gc


def mlp(x, w1, b1, w2):
    h = gc.relu(x @ w1 + b1)
    return gc.softmax(h @ w2, axis=-1)


def test_mlp_ir_text_is_pinned():
    graph = gc.trace(mlp, gc.spec((4, 3)), gc.spec((3, 8)), gc.spec((8,)), gc.spec((8, 2)))
    assert str(graph) == """\
graph mlp(%0:f32[4,3] x, %1:f32[3,8] w1, %2:f32[8] b1, %3:f32[8,2] w2) -> (%8)
  %4:f32[4,8] = matmul %0, %1
  %5:f32[4,8] = add %4, %2
  %6:f32[4,8] = relu %5
  %7:f32[4,2] = matmul %6, %3
  %8:f32[4,2] = softmax %7 {axis=1}
  return %8"""


def test_locations_are_printed_on_request():
    from ir.printer import format_graph
    graph = gc.trace(mlp, gc.spec((4, 3)), gc.spec((3, 8)), gc.spec((8,)), gc.spec((8, 2)))
    text = format_graph(graph, locations=True)
    assert "test_printer.py:5" in text.splitlines()[1]


def test_layers_become_named_param_inputs():
    layer = gc.nn.Linear(3, 2)
    graph = gc.trace(lambda x: layer(x), gc.spec((5, 3)))
    assert str(graph).splitlines()[0] == (
        "graph lambda(%0:f32[5,3] x, %1:f32[3,2] param weight, %2:f32[2] param bias) -> (%4)")


def test_standalone_layers_get_distinct_param_names():
    a, b = gc.nn.Linear(3, 3), gc.nn.Linear(3, 2)
    graph = gc.trace(lambda x: b(a(x)), gc.spec((5, 3)))
    names = [n.name for n in graph.inputs]
    assert names == ["x", "weight", "bias", "weight_1", "bias_1"]
    import numpy as np
    out = gc.compile(lambda x: b(a(x)))(np.ones((5, 3), np.float32))
    expected = (np.ones((5, 3)) @ a.weight.data + a.bias.data) @ b.weight.data + b.bias.data
    np.testing.assert_allclose(out, expected, rtol=1e-5)


def test_a_long_constant_prints_as_a_summary_of_plain_numbers():
    """numpy 2's scalar repr leaked in: `min np.float64(0.0), max np.float64(199.0)`."""
    import ml_dtypes
    import numpy as np
    from ir.printer import format_constant
    assert format_constant(np.arange(200.0)) == "<200 values, min 0.0, max 199.0>"
    assert format_constant(np.arange(-3, 17, dtype=np.int32)) == "<20 values, min -3, max 16>"
    assert format_constant(np.ones(17, bool)) == "<17 values, min true, max true>"
    half = np.linspace(-1, 2.5, 20).astype(ml_dtypes.bfloat16)
    assert format_constant(half) == "<20 values, min -1.0, max 2.5>"
    graph = gc.trace(lambda x: x @ np.arange(200.0).reshape(10, 20), gc.spec((3, 10), "f64"))
    assert "= constant <200 values, min 0.0, max 199.0>" in str(graph)
