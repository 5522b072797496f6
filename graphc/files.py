"""Writing a user's files: whole or not at all, never through a planted link."""
from __future__ import annotations

import io
import os
import tempfile


def write_atomically(path: str, data) -> None:
    """Write `data` (str or bytes) to a fresh temporary file beside `path`, then rename it
    over `path`. The temporary name is random and created exclusively (mkstemp: O_EXCL, so a
    symlink planted under a predictable name like PATH.tmp is never followed or truncated)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                               dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data if isinstance(data, bytes) else data.encode("utf-8"))
        # mkstemp makes the file 0600; give the output the permissions open() would have
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def save_figure(fig, path: str, dpi: int = 100) -> None:
    """A matplotlib figure as a PNG at `path`, written atomically."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    write_atomically(path, buffer.getvalue())
