"""The kernel cache and the background compiler (runtime.jit, runtime.tiering) do not trust
what they cannot vouch for, survive a damaged or full cache, and end with their process."""
import errno
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings

import numpy as np
import pytest

import graphc as gc
from runtime import jit, tiering
from runtime.codegen import compile_graph

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KernelCacheWarning = jit.KernelCacheWarning


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh, private cache directory, this process's cache state reset, and a temporary
    directory of its own (to see what is left there)."""
    directory = tmp_path / "cache"
    directory.mkdir(mode=0o700)
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(directory))
    for name, value in (("_LOADED", {}), ("_RESOLVED", {}), ("_WARNED", set()),
                        ("_PRIVATE", [])):
        monkeypatch.setattr(jit, name, value)
    for name, value in (("_OFF", []), ("_QUEUED", []), ("_COMPILER", {})):
        monkeypatch.setattr(tiering, name, value)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    yield directory
    tiering.stop(grace=0)
    jit._remove_private_dir()


def _graph(k=0):
    """A graph with one fused cluster, its program different for each k."""
    def f(x):
        y = x
        for _ in range(k + 1):
            y = gc.tanh(y) * 0.5 + x
        return y
    return gc.trace(f, gc.spec((64, 32)))


def _expected(x, k=0):
    y = x
    for _ in range(k + 1):
        y = np.tanh(y) * 0.5 + x
    return y


X = np.linspace(-2, 2, 64 * 32, dtype=np.float32).reshape(64, 32)


def _cache_warnings(record):
    return [str(w.message) for w in record if issubclass(w.category, KernelCacheWarning)]


# ---- item 1: the background compiler imports graphc's own runtime package only ---------------
def test_the_background_compiler_ignores_a_runtime_package_in_the_working_directory(
        cache, tmp_path, monkeypatch):
    planted = {}
    for where in ("cwd", "pythonpath"):
        package = tmp_path / where / "runtime"
        package.mkdir(parents=True)
        planted[where] = tmp_path / f"ran-from-{where}"
        (package / "__init__.py").write_text(
            f"open({str(planted[where])!r}, 'a').write('imported\\n')\n")
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "pythonpath"))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        plan = compile_graph(_graph(), jit=True, background_compile=True)
        assert plan.kernels_pending == 1 and tiering.running()
        tiering.wait()
        plan.wait_for_kernels()
    assert not planted["cwd"].exists() and not planted["pythonpath"].exists()
    assert _cache_warnings(record) == []  # the compiler ran graphc's code and succeeded
    assert len(list(cache.glob("k_*.ready"))) == 1
    np.testing.assert_allclose(plan(X)[0], _expected(X), rtol=1e-5, atol=1e-6)


# ---- item 2: a cache directory others can write (or that is not the user's) is refused --------
@pytest.mark.parametrize("change", ["chmod o+w", "chmod g+w", "chown"])
def test_a_cache_directory_others_can_write_is_refused(cache, change):
    if change == "chown":
        os.chown(cache, os.getuid() + 4242, -1)
        reason = "owned by uid"
    else:
        os.chmod(cache, 0o702 if change == "chmod o+w" else 0o720)
        reason = "writable by"
    with pytest.warns(KernelCacheWarning, match=reason) as record:
        used = jit.cache_dir()
        assert jit.cache_dir() == used  # one warning, not one per use
        plan = compile_graph(_graph(), jit=True, background_compile=False)
    assert len(_cache_warnings(record)) == 1 and str(cache) in str(record[0].message)
    assert used is not None and used != str(cache)
    assert (os.stat(used).st_mode & 0o077) == 0 and os.stat(used).st_uid == os.getuid()
    assert os.listdir(cache) == []  # nothing read from or written to the refused directory
    np.testing.assert_allclose(plan(X)[0], _expected(X), rtol=1e-5, atol=1e-6)
    jit._remove_private_dir()
    assert not os.path.exists(used)


def _softmax_cache_path_under(numba_cache_dir):
    """A fresh process imports runtime.jit with NUMBA_CACHE_DIR set and prints where one
    cached kernel (softmax) has its cache: its completed run (stdout, stderr)."""
    code = "import runtime.jit as j; print(j.softmax._cache.cache_path)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120,
                            env=dict(os.environ, NUMBA_CACHE_DIR=str(numba_cache_dir)))
    assert result.returncode == 0, result.stderr
    return result


def test_a_numba_cache_dir_others_can_write_is_not_used(tmp_path):
    shared = tmp_path / "numba-cache"
    shared.mkdir()
    os.chmod(shared, 0o777)
    result = _softmax_cache_path_under(shared)
    assert not result.stdout.strip().startswith(str(shared))
    assert f"NUMBA_CACHE_DIR {shared} is writable by group and others" in result.stderr


@pytest.mark.parametrize("module", ["runtime.gemm", "runtime.reductions", "runtime.tiles"])
def test_a_numba_cache_dir_others_can_write_is_not_used_by_kernels_imported_first(tmp_path,
                                                                                  module):
    """A dispatcher's cache directory is fixed when it is decorated: runtime.gemm's helpers
    were decorated before runtime.jit (which refuses the directory) was imported, and so
    read and wrote numba's pickles in the directory others can write. Each module imported
    first, in a fresh process, then a product and a sum of squares computed."""
    shared = tmp_path / "numba-cache"
    shared.mkdir()
    os.chmod(shared, 0o777)
    code = (f"import {module}\n"
            "import numpy as np\n"
            "from numba.core.dispatcher import Dispatcher\n"
            "from runtime import gemm, reductions, tiles\n"
            "a = np.ones((64, 64), np.float32); out = np.empty_like(a)\n"
            "assert gemm.matmul2d(gemm.blas().address(np.float32), 2, a, a, out) == 0\n"
            "assert (out == 64).all()\n"
            "x = np.ones((1, 1, 8, 8), np.float32); y = np.empty_like(x)\n"
            "assert tiles.kernel()(x, x, y, 0) == 0 and (y == 8).all()\n"
            "for m in (gemm, reductions, tiles):\n"
            "    for d in vars(m).values():\n"
            "        if isinstance(d, Dispatcher) and d._cache is not None:\n"
            "            print(d._cache.cache_path)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=300,
                            env=dict(os.environ, NUMBA_CACHE_DIR=str(shared)))
    assert result.returncode == 0, result.stderr
    paths = result.stdout.split()
    assert paths and not [p for p in paths if p.startswith(str(shared))]
    assert not [p for p in shared.rglob("*") if p.is_file()]  # no index, no data written


# ---- the folders above the cache are checked too, as ssh's StrictModes checks them ------------
def _plan(k):
    """A plan of _graph(k) compiled with this process's kernel state as a new process has it
    (nothing loaded, the cache directory not yet resolved)."""
    jit._LOADED.clear()
    jit._RESOLVED.clear()
    return compile_graph(_graph(k), jit=True, background_compile=False)


class _Payload:
    """What a hostile user pickles into a numba index file: unpickling it creates `marker`."""
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_a_cache_in_a_folder_others_can_write_is_refused_and_cannot_be_swapped(
        cache, tmp_path, monkeypatch):
    """Whoever can write the folder above the cache directory can rename the checked
    directory away and put one of their own, holding pickles, at its name: numba opens its
    cache by name and unpickled them in the running process, which had checked the directory
    once. Such a cache is refused as a whole, and the swap then reaches nothing."""
    prepared = tmp_path / "prepared"  # the attacker's copy of the cache, made beforehand
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(prepared))
    _plan(1)
    marker = tmp_path / "payload-ran"
    index, = (prepared / "__pycache__").glob("*.nbi")
    index.write_bytes(pickle.dumps(_Payload(str(marker))))
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)  # a team folder (sticky-less, as chmod 777 leaves it)
    victim = shared / "kernels"
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(victim))
    with pytest.warns(KernelCacheWarning, match=f"is inside {shared}, which is writable by "
                                                "group and others") as record:
        np.testing.assert_allclose(_plan(0)(X)[0], _expected(X), rtol=1e-5, atol=1e-6)
        used = jit.cache_dir()
        assert used != str(victim) and not used.startswith(str(shared))
        # the attacker swaps the directory the process checked for their own
        os.rename(victim, shared / "kernels.old")
        shutil.copytree(prepared, victim)
        jit._LOADED.clear()  # the next kernel comes from the disk cache, as in a later call
        plan = compile_graph(_graph(1), jit=True, background_compile=False)
    assert not marker.exists()
    np.testing.assert_allclose(plan(X)[0], _expected(X, 1), rtol=1e-5, atol=1e-6)
    assert len(_cache_warnings(record)) == 1
    assert os.listdir(shared / "kernels.old") == []  # nothing read from or written there


def test_a_cache_in_a_sticky_folder_and_through_a_link_is_used_by_its_real_name(
        cache, tmp_path, monkeypatch):
    """A sticky folder above (/tmp's 1777) is accepted: others cannot rename or remove the
    user's entry in it. A link to the cache is resolved, and the real name is used: the one
    that was checked (a link can be pointed elsewhere by whoever can write its folder)."""
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    (sticky / "kernels").mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(sticky / "kernels")
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(link))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plan = _plan(0)
    assert jit.cache_dir() == os.path.realpath(sticky / "kernels")
    assert len(list((sticky / "kernels").glob("k_*.py"))) == 1
    np.testing.assert_allclose(plan(X)[0], _expected(X), rtol=1e-5, atol=1e-6)


def test_a_numba_cache_dir_in_a_folder_others_can_write_is_not_used(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    (shared / "numba-cache").mkdir(mode=0o700)
    result = _softmax_cache_path_under(shared / "numba-cache")
    assert not result.stdout.strip().startswith(str(shared))
    assert f"is inside {shared}, which is writable by group and others" in result.stderr


UMASK_CHILD = textwrap.dedent("""
    import warnings
    import numpy as np, graphc as gc
    from runtime.codegen import compile_graph
    from runtime.jit import KernelCacheWarning
    warnings.simplefilter("error", KernelCacheWarning)  # a refused cache fails the run
    plan = compile_graph(gc.trace(lambda x: gc.tanh(x * 2.0 + 1.0) * x, gc.spec((64, 32))),
                         jit=True, background_compile=False)
    x = np.linspace(-2, 2, 64 * 32, dtype=np.float32).reshape(64, 32)
    np.testing.assert_allclose(plan(x)[0], np.tanh(x * 2 + 1) * x, rtol=1e-5, atol=1e-6)
    kernels = [v for v in plan._globals.values() if hasattr(v, "stats")]
    print(len(kernels), sum(sum(k.stats.cache_hits.values()) for k in kernels))
""")


def test_a_cache_made_under_umask_002_is_used_by_the_next_run(tmp_path):
    """Under the umask 002 of Debian, Ubuntu and Fedora users, numba made the cache's
    __pycache__ (and os.makedirs the folders above the cache directory) 0775: the next run
    refused the cache graphc had made itself, with a warning, and compiled every kernel
    again, on every run. graphc now makes each of them 0700."""
    cache = tmp_path / "home" / ".cache" / "graphc" / "kernels"  # none of it there yet
    (tmp_path / "home").mkdir(mode=0o700)
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(cache), GRAPHC_BACKGROUND_COMPILE="0")
    runs = [subprocess.run([sys.executable, "-c", UMASK_CHILD], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=300,
                           preexec_fn=lambda: os.umask(0o002)) for _ in range(2)]
    for result in runs:
        assert result.returncode == 0, result.stderr
    (kernels, first_hits), (again, hits) = (map(int, r.stdout.split()) for r in runs)
    assert kernels >= 1 and first_hits == 0  # compiled by the first run, into the cache
    assert again == kernels and hits == kernels  # loaded by the second
    for folder in (cache.parent.parent, cache.parent, cache, cache / "__pycache__"):
        assert oct(os.stat(folder).st_mode & 0o777) == oct(0o700), folder



# Put before UMASK_CHILD in a fresh NUMBA_CACHE_DIR: runtime.jit's import makes numba's folder
# for runtime/ there (as in every run), and runtime.gemm's kernels are copied into it from
# GEMM_KERNELS (this checkout's), so the run loads them instead of compiling all of
# runtime.gemm (a minute on 2 busy cores); the plan's own kernels are still compiled
COPY_GEMM_KERNELS = textwrap.dedent("""
    import glob, os, shutil
    import runtime.jit as jit
    for file in glob.glob(os.path.join(os.environ["GEMM_KERNELS"], "gemm.*.nb[ic]")):
        shutil.copy(file, jit._numba_folder(jit._HERE))
""")


def _gemm_kernels() -> str:
    """The folder this process's numba loaded runtime.gemm's kernels from."""
    from runtime import gemm
    from runtime.jit import _numba_folder
    return _numba_folder(os.path.dirname(gemm.__file__))


def test_a_numba_cache_dir_numba_made_under_umask_002_is_used_by_the_next_run(tmp_path):
    """A NUMBA_CACHE_DIR not there yet was made by numba (os.makedirs, as its folder for each
    module directory in it) 0775 under umask 002, when runtime.jit's first cached kernel was
    decorated: the check of NUMBA_CACHE_DIR then refused the directory, from the first run
    on. graphc makes it and numba's folders in it 0700 first, as its own cache."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    numba_dir = home / "numba" / "cache"  # none of it there yet
    env = dict(os.environ, NUMBA_CACHE_DIR=str(numba_dir), GRAPHC_BACKGROUND_COMPILE="0",
               GRAPHC_CACHE_DIR=str(home / "kernels"), GEMM_KERNELS=_gemm_kernels())
    old = os.umask(0o002)  # inherited by the runs
    try:
        runs = [subprocess.run([sys.executable, "-c", COPY_GEMM_KERNELS + UMASK_CHILD],
                               cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=300)
                for _ in range(2)]
    finally:
        os.umask(old)
    for result in runs:
        assert result.returncode == 0, result.stderr
        assert "KernelCacheWarning" not in result.stderr  # (raised at import: not an error)
    (kernels, first_hits), (again, hits) = (map(int, r.stdout.split()) for r in runs)
    assert kernels >= 1 and first_hits == 0
    assert again == kernels and hits == kernels  # loaded from NUMBA_CACHE_DIR by the second
    folders = [numba_dir.parent, numba_dir, *(p for p in numba_dir.iterdir())]
    assert len(folders) == 4  # numba's folders for runtime/ and for the generated kernels
    assert list(numba_dir.glob("kernels_*/*.nbi"))
    for folder in folders:
        assert oct(os.stat(folder).st_mode & 0o777) == oct(0o700), folder


def test_a_numba_cache_dir_whose_folder_for_the_kernels_others_can_write_is_not_used(
        tmp_path):
    """numba keeps the pickles in a folder of NUMBA_CACHE_DIR per module directory: one
    the group can write is refused as a __pycache__ of graphc's own cache is."""
    numba_dir = tmp_path / "numba-cache"
    numba_dir.mkdir(mode=0o700)
    from numba.core.caching import _CacheLocator
    folder = numba_dir / _CacheLocator.get_suitable_cache_subpath(jit.__file__)
    os.mkdir(folder)
    os.chmod(folder, 0o775)
    result = _softmax_cache_path_under(numba_dir)
    assert not result.stdout.strip().startswith(str(numba_dir))
    assert (f"NUMBA_CACHE_DIR {numba_dir} has numba's folder {folder}, which is writable by "
            "its group (mode 775") in result.stderr


READ_ONLY_NUMBA_DIR_CHILD = """
import numba.core.caching as caching
def deny(self):  # what numba meets in a NUMBA_CACHE_DIR it cannot write (EACCES, EROFS)
    raise PermissionError(13, "Permission denied")
caching.UserProvidedCacheLocator.ensure_cache_path = deny
import runtime.jit as j
kernel = j.load_generated("from numba import njit\\n@njit(cache=True)\\n"
                          "def kernel(x):\\n    return x + 1\\n")
print(j.cache_dir())
print(kernel._cache.cache_path)
"""


def test_a_cache_whose_pycache_others_can_write_is_refused_under_a_read_only_numba_cache_dir(
        tmp_path):
    """Where numba cannot write NUMBA_CACHE_DIR it falls back to the cache's __pycache__:
    with NUMBA_CACHE_DIR set, only its subfolder was checked, and a __pycache__ others
    can write fed numba its pickles."""
    numba_dir = tmp_path / "numba"
    numba_dir.mkdir(mode=0o700)
    kernels = tmp_path / "kernels"
    kernels.mkdir(mode=0o700)
    (kernels / "__pycache__").mkdir()
    os.chmod(kernels / "__pycache__", 0o777)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(numba_dir), GRAPHC_CACHE_DIR=str(kernels),
               GRAPHC_BACKGROUND_COMPILE="0")
    result = subprocess.run([sys.executable, "-c", READ_ONLY_NUMBA_DIR_CHILD], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    used, numba_path = result.stdout.split()
    assert used != str(kernels) and not numba_path.startswith(str(kernels))
    assert numba_path == os.path.join(used, "__pycache__")  # numba's fallback, private
    assert (f"the kernel cache directory {kernels} has numba's folder "
            f"{kernels / '__pycache__'}, which is writable by group and others (mode 777"
            ) in result.stderr
    assert os.listdir(kernels / "__pycache__") == []


def test_a_folder_above_the_cache_in_the_users_own_group_may_be_group_writable(tmp_path):
    """A ~/.cache made 0775 by another tool under umask 002 (pip does), in the user's own
    private group, turned the kernel cache off for good once the folders above it were
    checked: as Debian's ssh, such a folder is the user's. Writable by others, or by a group
    with other members, it is still refused."""
    import grp
    import pwd
    from runtime import jit
    above = tmp_path / "dotcache"
    above.mkdir()
    cache = above / "kernels"
    cache.mkdir(mode=0o700)
    user = pwd.getpwuid(os.getuid())
    os.chown(above, -1, user.pw_gid)
    os.chmod(above, 0o775)
    alone = set(grp.getgrgid(user.pw_gid).gr_mem) <= {user.pw_name}
    problem = jit.untrusted(os.path.realpath(cache))
    assert (problem is None) if alone else ("writable by its group" in problem)
    os.chmod(above, 0o757)
    assert "writable by others" in jit.untrusted(os.path.realpath(cache))
    other = next((g.gr_gid for g in grp.getgrall() if g.gr_gid != user.pw_gid), None)
    try:
        os.chown(above, -1, other)  # (root may; another user only into their own groups)
    except (PermissionError, TypeError):
        return
    os.chmod(above, 0o775)
    assert "writable by its group" in jit.untrusted(os.path.realpath(cache))

# ---- item 7: a damaged numba cache file is dropped and recompiled -----------------------------
@pytest.mark.parametrize("suffix", [".nbi", ".nbc"])
def test_a_truncated_numba_cache_file_is_dropped_and_recompiled(cache, monkeypatch, suffix):
    compile_graph(_graph(), jit=True, background_compile=False)
    damaged, = (cache / "__pycache__").glob(f"*{suffix}")
    data = damaged.read_bytes()
    damaged.write_bytes(data[:len(data) // 2])
    monkeypatch.setattr(jit, "_LOADED", {})  # as in a later process: load from the disk cache
    with pytest.warns(KernelCacheWarning, match="damaged") as record:
        plan = compile_graph(_graph(), jit=True, background_compile=False)
    assert _cache_warnings(record) == [m for m in _cache_warnings(record)
                                       if str(damaged) in m]
    assert len(_cache_warnings(record)) == 1
    np.testing.assert_allclose(plan(X)[0], _expected(X), rtol=1e-5, atol=1e-6)
    # recompiled into the cache: the next load is clean (and a cache hit)
    monkeypatch.setattr(jit, "_LOADED", {})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = compile_graph(_graph(), jit=True, background_compile=False)
    kernels = [v for v in again._globals.values() if hasattr(v, "stats")]
    assert kernels and all(sum(k.stats.cache_hits.values()) == 1 for k in kernels)
    np.testing.assert_allclose(again(X)[0], _expected(X), rtol=1e-5, atol=1e-6)


# ---- item 8: a full or read-only cache disk --------------------------------------------------
def _full_disk(monkeypatch, directory, only=""):
    """Every write under `directory` (whose path contains `only`) fails: No space left."""
    directory = str(directory)
    real_open, real_os_open, real_replace = open, os.open, os.replace

    def full(path):
        path = os.fspath(path)
        if path.startswith(directory) and only in path:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

    def fake_open(path, mode="r", *args, **kwargs):
        if isinstance(path, (str, os.PathLike)) and set(mode) & set("wax+"):
            full(path)
        return real_open(path, mode, *args, **kwargs)

    def fake_os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            full(path)
        return real_os_open(path, flags, *args, **kwargs)

    def fake_replace(src, dst, *args, **kwargs):
        full(dst)
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr("builtins.open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)
    monkeypatch.setattr(os, "replace", fake_replace)


@pytest.mark.parametrize("failing", ["graphc's files", "numba's files"])
def test_a_full_cache_disk_runs_uncached_with_one_warning(cache, tmp_path, monkeypatch,
                                                          failing):
    _full_disk(monkeypatch, cache, ".nb" if failing == "numba's files" else "")
    # a background compiler would run on the real disk: numba's saves fail in this process
    background = failing == "graphc's files"
    with pytest.warns(KernelCacheWarning, match="No space left on device") as record:
        plans = [compile_graph(_graph(k), jit=True, background_compile=background)
                 for k in (0, 1)]
        for k, plan in enumerate(plans):
            np.testing.assert_allclose(plan(X)[0], _expected(X, k), rtol=1e-5, atol=1e-6)
            assert plan.kernels_pending == 0  # compiled (in memory) at the first call
    assert len(_cache_warnings(record)) == 1 and str(cache) in _cache_warnings(record)[0]
    assert jit.cache_dir() is None and not tiering.running()
    left = sorted(p.name for p in cache.rglob("*"))
    assert not [name for name in left if "tmp" in name or name.startswith("jobs-")]
    if failing == "graphc's files":
        assert left == []
    assert os.listdir(tmp_path / "tmp") == []  # no private directory left behind


def test_an_unwritable_cache_leaves_no_directory_behind(tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    code = textwrap.dedent("""
        import numpy as np, graphc as gc
        from runtime.codegen import compile_graph
        plan = compile_graph(gc.trace(lambda x: gc.tanh(x) * 0.5 + x, gc.spec((64, 32))),
                             jit=True, background_compile=True)
        plan.wait_for_kernels()
        x = np.ones((64, 32), np.float32)
        assert np.allclose(plan(x)[0], np.tanh(x) * 0.5 + x)
        assert plan.kernels_pending == 0
    """)
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(blocked / "kernels"), TMPDIR=str(tmp),
               GRAPHC_BACKGROUND_COMPILE="1")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("KernelCacheWarning") == 1
    assert "kernels cannot be created (Not a directory)" in result.stderr
    assert os.listdir(tmp) == []


# ---- item 9: the background compiler ends with its process, logs its failures, never hangs ----
PARENT = textwrap.dedent("""
    import os, sys, time
    import graphc as gc
    from runtime import tiering
    from runtime.codegen import compile_graph

    def graph(k):
        def f(x):
            y = x
            for _ in range(k + 1):
                y = gc.tanh(y) * 0.5 + x
            return y
        return gc.trace(f, gc.spec((256, 128)))  # large enough for parallel kernels

    jobs, submit = [], tiering.submit
    tiering.submit = jobs.extend
    plans = [compile_graph(graph(k), jit=True, background_compile=True) for k in range(12)]
    tiering.submit = submit
    tiering.submit(jobs)
    while not any(name.endswith(".ready") for name in os.listdir(os.environ["GRAPHC_CACHE_DIR"])):
        time.sleep(0.02)  # until the compiler is at work
    print(tiering._COMPILER["process"].pid, flush=True)
    if sys.argv[1] != "exit":
        time.sleep(120)
""")


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("how", ["exit", "SIGINT", "SIGTERM", "SIGKILL"])
def test_the_background_compiler_ends_with_its_process(tmp_path, how):
    directory = tmp_path / "cache"
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(directory), GRAPHC_BACKGROUND_COMPILE="1")
    # SIGINT at its default in the child: the suite may run with it ignored (a background job
    # of a non-interactive shell), which the child would inherit
    parent = subprocess.Popen([sys.executable, "-c", PARENT, how], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        child = int(parent.stdout.readline())
        if how != "exit":  # Ctrl-C signals the whole process group
            os.killpg(parent.pid, getattr(signal, how))
        parent.wait(30)
        gone = time.monotonic() + tiering.GRACE_SECONDS + 3
        while _alive(child) and time.monotonic() < gone:
            time.sleep(0.05)
        assert not _alive(child)
    finally:
        for pid in (parent.pid,):
            if parent.poll() is None:
                os.kill(pid, signal.SIGKILL)
        parent.wait()
        parent.stdout.close()
        parent.stderr.close()
    names = os.listdir(directory)
    assert len([n for n in names if n.endswith(".ready")]) < 12  # it stopped early
    assert not [n for n in names if n.startswith("jobs-") or ".tmp" in n]


def test_background_compiler_failures_are_logged_where_the_warning_says(cache):
    with pytest.warns(KernelCacheWarning, match="background kernel compiler failed") as record:
        tiering.submit([("this is no kernel(", ("float32",))])
        tiering.wait()
    message, = _cache_warnings(record)
    log = cache / "compiler.log"
    assert str(log) in message
    assert "SyntaxError" in log.read_text()


def test_a_hung_background_compiler_does_not_hang_the_wait(cache, monkeypatch):
    monkeypatch.setattr(tiering, "_CHILD_CODE", "import time; time.sleep(120)  # {path}")
    monkeypatch.setenv("GRAPHC_COMPILE_TIMEOUT", "1")
    plan = compile_graph(_graph(), jit=True, background_compile=True)
    process = tiering._COMPILER["process"]
    start = time.monotonic()
    with pytest.warns(KernelCacheWarning, match="finished no kernel in 1 s"):
        plan.wait_for_kernels()
    assert time.monotonic() - start < 10
    assert process.poll() is not None and plan.kernels_pending == 0
    np.testing.assert_allclose(plan(X)[0], _expected(X), rtol=1e-5, atol=1e-6)


def test_a_damaged_gemm_cache_file_is_dropped_and_recompiled(tmp_path):
    """runtime.gemm compiles its kernels when imported: a truncated cache entry there must be
    recompiled too, not an UnpicklingError at import."""
    import subprocess
    import sys
    cache = tmp_path / "numba"
    cache.mkdir(mode=0o700)
    # runtime.gemm's kernels copied in (COPY_GEMM_KERNELS): the runs load them instead of
    # compiling them all; the damaged one is compiled again all the same
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), GEMM_KERNELS=_gemm_kernels())
    code = ("import warnings, numpy as np\n"
            "warnings.simplefilter('always')\n"
            "from runtime import gemm\n"
            "a = np.ones((4, 3)); out = np.empty((4, 2))\n"
            "assert gemm.matmul2d(gemm.blas().address(np.float64), 1, a, np.ones((3, 2)), out) == 0\n"
            "assert (out == 3).all()\n")
    first = subprocess.run([sys.executable, "-c", COPY_GEMM_KERNELS + code], env=env,
                           capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    index = [p for p in cache.rglob("*.nbi") if "matmul2d" in p.name]
    assert index, sorted(p.name for p in cache.rglob("*"))
    index[0].write_bytes(index[0].read_bytes()[:20])
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    assert "damaged" in second.stderr and index[0].name in second.stderr


HELPER = """from numba import njit


@njit(cache=True, inline="always")
def value():
    return {value}
"""
KERNEL = """from numba import njit

import helper_module
from helper_module import value


@njit(cache=True)
def kernel():
    return value()


{guard}
"""


@pytest.mark.parametrize("guarded", [True, False])
def test_a_kernel_is_rebuilt_when_a_helper_it_inlines_from_another_file_changes(tmp_path,
                                                                                guarded):
    """numba's disk cache keys a kernel by its own file: a change to a helper it inlines from
    another module (runtime.tiles' use of runtime.causal and runtime.gemm, runtime.jit's of
    ir.ops.elementwise's constants) left the old machine code in the cache. With
    runtime.jit.guard_module the helper's source is part of the key; without it (the control)
    the stale value comes back."""
    cache = tmp_path / "numba"
    cache.mkdir(mode=0o700)
    code_dir = tmp_path / "code"
    code_dir.mkdir()
    guard = ("from runtime.jit import guard_module\n"
             "guard_module(globals(), (helper_module.__file__,))" if guarded else "")
    (code_dir / "kernel_module.py").write_text(KERNEL.format(guard=guard))
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache),
               PYTHONPATH=os.pathsep.join([str(code_dir), ROOT]))
    run = [sys.executable, "-c", "import kernel_module; print(kernel_module.kernel())"]
    seen = []
    for value in (1, 2):
        (code_dir / "helper_module.py").write_text(HELPER.format(value=value))
        result = subprocess.run(run, cwd=tmp_path, env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        seen.append(int(result.stdout.split()[-1]))
    assert seen == ([1, 2] if guarded else [1, 1])


def test_the_tile_and_banded_kernels_key_their_cache_by_the_helpers_they_inline():
    from runtime import causal, gemm, tiles
    for kernel, depends in ((tiles.kernel(), (causal, gemm)), (causal.kernel(), (gemm,))):
        stamp = kernel._cache._cache_file._source_stamp
        assert stamp[1] == tuple(jit._file_digest(m.__file__) for m in depends)


UNWRITABLE_INSTALL = textwrap.dedent("""
    import os
    import numba.core.caching as caching
    mkdir, access = caching._CacheLocator.ensure_cache_path, os.access
    def refused(self):  # an install this user cannot write (root writes anywhere): numba's
        if self.get_cache_path().endswith("__pycache__"):  # __pycache__ there fails
            raise PermissionError(13, "Permission denied")
        return mkdir(self)
    caching.InTreeCacheLocator.ensure_cache_path = refused
    os.access = lambda path, mode, **kw: (
        not str(path).endswith("__pycache__") and access(path, mode, **kw))
    import numpy as np
    import runtime.jit as j
    x = np.linspace(-3, 3, 12, dtype=np.float32).reshape(3, 4); out = np.empty_like(x)
    j.softmax(x, out)
    e = np.exp(x - x.max(1, keepdims=True))
    np.testing.assert_allclose(out, e / e.sum(1, keepdims=True), rtol=1e-6)
    print(j.softmax._cache.cache_path, j.softmax._cache._enabled)
""")


@pytest.mark.parametrize("numba_cache_dir", ["refused", "unset"])
def test_numba_default_cache_others_can_write_is_not_used(tmp_path, numba_cache_dir):
    """When NUMBA_CACHE_DIR is refused (or unset) and numba cannot write the package's own
    __pycache__ (an install the user cannot write), numba keeps the kernels' pickles in its
    user-wide cache (XDG_CACHE_HOME/numba, ~/.cache/numba), which nothing checked: one others
    can write was read and written. Every folder numba chooses is now checked by the rule
    for graphc's own cache, and a refused one leaves the kernels uncached, with a warning.
    A private one is used, made 0700 by graphc before numba makes it."""
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    xdg = tmp_path / "xdg"
    (xdg / "numba").mkdir(parents=True)
    os.chmod(xdg / "numba", 0o777)
    env = dict(os.environ, XDG_CACHE_HOME=str(xdg))
    env.pop("NUMBA_CACHE_DIR", None)
    if numba_cache_dir == "refused":
        env["NUMBA_CACHE_DIR"] = str(shared)

    def run(umask=0o022):
        result = subprocess.run([sys.executable, "-c", UNWRITABLE_INSTALL], cwd=ROOT,
                                env=env, capture_output=True, text=True, timeout=300,
                                preexec_fn=lambda: os.umask(umask))
        assert result.returncode == 0, result.stderr
        path, enabled = result.stdout.split()
        return path, enabled == "True", result.stderr

    path, enabled, stderr = run()
    assert path.startswith(str(xdg / "numba")) and not enabled
    assert (f"numba's cache folder {path} is inside {xdg / 'numba'}, which is writable by "
            "group and others") in stderr
    assert not [p for p in (xdg / "numba").rglob("*") if p.is_file()]  # nothing written
    os.chmod(xdg / "numba", 0o700)  # made private: used, and written, under umask 002 too
    shutil.rmtree(path)
    path, enabled, stderr = run(0o002)
    assert enabled and "numba's cache folder" not in stderr
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o700)
    assert list((xdg / "numba").rglob("*.nbi"))


def test_no_numba_folder_is_made_where_numba_compiles_nothing(tmp_path):
    """With NUMBA_DISABLE_JIT nothing is cached, but runtime.jit's import made numba's folder
    for runtime/ all the same (in a user's home for an install they cannot write)."""
    numba_dir = tmp_path / "numba"
    result = subprocess.run([sys.executable, "-c", "import runtime.jit"], cwd=ROOT,
                            env=dict(os.environ, NUMBA_DISABLE_JIT="1",
                                     NUMBA_CACHE_DIR=str(numba_dir)),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert not numba_dir.exists()
