"""Session 33's findings; each test failed before its fix."""
import numpy as np

from graphc.data import CharData


def test_batches_reach_the_last_window():
    """CharData.batch drew starts from [0, len - block - 1): the window whose target is the
    last character was never trained on (nanoGPT draws from [0, len - block)), and a split
    of block + 1 characters, which holds exactly one window, failed inside numpy."""
    train = np.arange(9, dtype=np.uint8)
    data = CharData([chr(65 + i) for i in range(10)], train, train.copy())
    x, y = data.batch(np.random.default_rng(0), "train", 3, 8)
    np.testing.assert_array_equal(x, np.tile(np.arange(8), (3, 1)))
    np.testing.assert_array_equal(y, np.tile(np.arange(1, 9), (3, 1)))
    longer = CharData(data.vocab, np.arange(10, dtype=np.uint8), train)
    starts = {int(longer.batch(np.random.default_rng(s), "train", 1, 8)[0][0, 0])
              for s in range(40)}
    assert starts == {0, 1}
