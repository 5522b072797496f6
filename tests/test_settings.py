"""GRAPHC_* environment variables: declared once (ir/settings.py), one parsing rule per kind,
read at use time, documented by a README table generated from the declarations."""
import os
import re

import pytest

from graphc.cli import main
from ir import settings
from ir.errors import GraphcError
from runtime import jit, threads, tiering

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DECLARED = {s.name for s in settings.SETTINGS}


def _source_files():
    for package in ("ir", "passes", "runtime", "graphc", "bench", "tests"):
        for folder, _, files in os.walk(os.path.join(ROOT, package)):
            for name in files:
                if name.endswith(".py"):
                    yield os.path.join(folder, name)


def test_every_variable_the_code_names_is_declared_and_only_settings_reads_them():
    """Tests may set variables and look at what they set; the library reads them through
    ir.settings only."""
    named, readers = set(), []
    for path in _source_files():
        text = open(path, encoding="utf-8").read()
        named |= set(re.findall(r"\bGRAPHC_[A-Z_]+\b", text))
        where = os.path.relpath(path, ROOT)
        if where != os.path.join("ir", "settings.py") and not where.startswith("tests"):
            for m in re.finditer(r"environ(?:\.get\(|\[)\s*[\"']GRAPHC_", text):
                readers.append(f"{where}:{text.count(chr(10), 0, m.start()) + 1}")
    assert named - DECLARED == set(), f"undeclared: {sorted(named - DECLARED)}"
    assert DECLARED <= named
    assert not readers, f"read outside ir/settings.py: {readers}"


def test_readme_table_matches_the_declarations():
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    section = readme.split("\n## Environment variables\n", 1)[1].split("\n## ", 1)[0]
    table = "".join(line + "\n" for line in section.splitlines() if line.startswith("|"))
    assert table == settings.markdown_table()
    assert table.count("| `GRAPHC_") == len(settings.SETTINGS) == 14


def test_flags_follow_one_rule_and_defaults_apply_when_unset_or_empty(monkeypatch):
    for text, value in [("1", True), ("true", True), ("Yes", True), (" on ", True),
                        ("0", False), ("FALSE", False), ("no", False), ("off", False)]:
        monkeypatch.setenv("GRAPHC_JIT", text)
        assert settings.JIT.get() is value, text
    monkeypatch.setenv("GRAPHC_VERIFY", "")
    assert settings.VERIFY.get() is False
    monkeypatch.delenv("GRAPHC_BLAS_TUNE", raising=False)
    assert settings.BLAS_TUNE.get() is True
    monkeypatch.delenv("GRAPHC_COMPILE_TIMEOUT", raising=False)
    assert settings.COMPILE_TIMEOUT.get() == 300.0
    monkeypatch.setenv("GRAPHC_COMPILE_TIMEOUT", "2.5")
    assert tiering._timeout() == 2.5
    monkeypatch.setenv("GRAPHC_BACKGROUND_COMPILE", "0")
    assert tiering.enabled() is False


def test_settings_are_read_when_used(monkeypatch, tmp_path):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "a"))
    assert jit._configured_dir() == str(tmp_path / "a")
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "b"))
    assert jit._configured_dir() == str(tmp_path / "b")
    monkeypatch.setenv("GRAPHC_THREADS", "1")
    assert threads.pinned_threads() == 1
    monkeypatch.delenv("GRAPHC_THREADS")
    assert threads.pinned_threads() is None


@pytest.mark.parametrize("name, bad, expected", [
    ("GRAPHC_THREADS", "abc", "expected a positive whole number"),
    ("GRAPHC_JIT", "maybe", "expected one of 1/true/yes/on or 0/false/no/off"),
    ("GRAPHC_COMPILE_TIMEOUT", "-3", "expected a positive number"),
    ("GRAPHC_COMPILE_TIMEOUT", "soon", "expected a positive number"),
    # (s47) a wait too long for Python's socket and lock timeouts: 1e300 ended every rank
    # of `graphc train --ranks 2` with an OverflowError traceback in the watchdog
    ("GRAPHC_WATCHDOG_TIMEOUT", "1e300", "expected at most 1000000000 seconds (about 31 "
     "years), the longest wait this setting takes"),
    ("GRAPHC_COMPILE_TIMEOUT", "1e10", "expected at most 1000000000 seconds (about 31 "
     "years), the longest wait this setting takes"),
    # (s52) shorter than the watchdog's heartbeats: taken, and every rank would have been
    # stopped as 'stopped responding' in a line naming no setting
    ("GRAPHC_WATCHDOG_TIMEOUT", "0.01", "expected at least 0.2 seconds, 4 of the watchdog's "
     "heartbeats (a rank beats every timeout/4 s, at most every 0.05 s)"),
    ("GRAPHC_WATCHDOG_TIMEOUT", "0.19", "expected at least 0.2 seconds, 4 of the watchdog's "
     "heartbeats (a rank beats every timeout/4 s, at most every 0.05 s)"),
    # (s47) a name the socket module cannot encode: `graphc train --ranks 2` ended with
    # rank 1's "graphc: error: encoding with 'idna' codec failed (...)" and mpiexec's banner
    ("GRAPHC_WATCHDOG_ADDR", "rank0..lan", "expected a host name or IP address (label "
     "empty or too long)"),
    ("GRAPHC_WATCHDOG_ADDR", "a" * 64 + ".lan", "expected a host name or IP address (label "
     "empty or too long)"),
    ("GRAPHC_WATCHDOG_ADDR", "rank\x800.lan", "expected a host name or IP address (Invalid "
     "character '\\x80')"),
])
def test_a_bad_value_is_one_error_naming_the_variable(monkeypatch, name, bad, expected):
    monkeypatch.setenv(name, bad)
    setting = next(s for s in settings.SETTINGS if s.name == name)
    with pytest.raises(GraphcError) as info:
        setting.get()
    assert str(info.value) == f"{name}={bad!r}: {expected}"


@pytest.mark.parametrize("address", ["10.0.0.1", "::1", "rank0.lan", "a" * 63 + ".lan"])
def test_a_watchdog_address_the_sockets_take_is_taken(monkeypatch, address):
    monkeypatch.setenv("GRAPHC_WATCHDOG_ADDR", address)
    assert settings.WATCHDOG_ADDR.get() == address


def test_the_shortest_watchdog_timeout_holds_four_heartbeats(monkeypatch):
    """(s52) MIN_WATCHDOG_SECONDS, the bound above, is 4 of the heartbeats the watchdog sends
    at that timeout (the two are stated in different modules); a short timeout the compiler
    takes (it has no heartbeat) is still taken there."""
    from graphc import watchdog
    monkeypatch.setenv("GRAPHC_WATCHDOG_TIMEOUT", "0.2")
    shortest = settings.WATCHDOG_TIMEOUT.get()
    assert shortest == settings.MIN_WATCHDOG_SECONDS == 0.2
    assert watchdog.Watchdog(0, 2, shortest).interval * 4 == shortest
    assert watchdog.Watchdog(0, 2, shortest / 2).interval * 4 > shortest / 2
    monkeypatch.setenv("GRAPHC_COMPILE_TIMEOUT", "0.01")
    assert settings.COMPILE_TIMEOUT.get() == 0.01


def test_the_longest_wait_a_setting_takes_is_one_socket_and_locks_take(monkeypatch):
    """(s47) MAX_SECONDS, the bound above, is a timeout Python's sockets and locks take (the
    watchdog's settimeout, the background compiler's wait): the bound is not below it."""
    import socket
    import threading
    monkeypatch.setenv("GRAPHC_WATCHDOG_TIMEOUT", "1e9")
    assert settings.WATCHDOG_TIMEOUT.get() == settings.MAX_SECONDS == 1e9
    with socket.socket() as sock:
        sock.settimeout(settings.MAX_SECONDS)
    lock = threading.Lock()
    assert lock.acquire(timeout=settings.MAX_SECONDS)


def test_the_cli_reports_a_bad_setting_in_one_line_and_exits_2(monkeypatch, capsys):
    monkeypatch.setenv("GRAPHC_BISECT", "sometimes")
    assert main(["dump", "mlp"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "GRAPHC_BISECT='sometimes'" in err[0], err


def test_the_cli_reports_a_bad_value_of_a_setting_its_command_never_reads(monkeypatch, capsys):
    # `dump` builds no data-parallel step, so nothing read GRAPHC_BUCKET_MB and "lots" went
    # unreported; every declared variable is now parsed when the command starts
    monkeypatch.setenv("GRAPHC_BUCKET_MB", "lots")
    assert main(["dump", "mlp"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "GRAPHC_BUCKET_MB='lots'" in err[0], err


def test_an_unknown_graphc_variable_is_a_warning_naming_the_closest_setting(monkeypatch,
                                                                            capsys):
    typo = "GRAPHC_" + "THREAD"  # (spelt so that the declared-names check above skips it)
    monkeypatch.setenv(typo, "1")
    assert main(["dump", "mlp"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"graphc: warning: environment variable {typo} is not a graphc setting, "
                   "ignored; did you mean GRAPHC_THREADS? (the README's \"Environment "
                   "variables\" lists them)"], err
    assert settings.check_environment() == [err[0].removeprefix("graphc: warning: ")]
