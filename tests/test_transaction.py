"""Transactional outputs (tritforge.atomic) and the CLI's handling of argparse errors and
interrupts: all of a command's outputs or none, existing outputs untouched on failure."""
import os
import signal
import subprocess
import sys
import time

import pytest

from tritforge import atomic, cli
from tritforge.errors import TritforgeError

from test_fuzz import _tree


def _write(path, text):
    with atomic.atomic_file(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)


def test_transaction_commits_all_outputs_together(tmp_path):
    with atomic.transaction():
        _write(str(tmp_path / "a.txt"), "a")
        with atomic.atomic_folder(str(tmp_path / "sub" / "f")) as d:
            _write(os.path.join(d, "x.txt"), "x")
        assert not (tmp_path / "a.txt").exists() and not (tmp_path / "sub" / "f").exists()
    assert _tree(tmp_path) == {"a.txt": b"a", "sub/": b"", "sub/f/": b"", "sub/f/x.txt": b"x"}


def test_failed_transaction_leaves_nothing_and_keeps_existing_outputs(tmp_path):
    (tmp_path / "a.txt").write_text("old")
    before = _tree(tmp_path)
    with pytest.raises(TritforgeError, match="late failure"):
        with atomic.transaction():
            _write(str(tmp_path / "a.txt"), "new")
            _write(str(tmp_path / "deep" / "er" / "b.txt"), "b")
            raise TritforgeError("late failure")
    assert _tree(tmp_path) == before          # created parent folders are gone too


def test_commit_rolls_back_when_a_destination_turned_into_a_folder(tmp_path):
    (tmp_path / "a.txt").write_text("old")
    with pytest.raises(TritforgeError, match="is a folder"):
        with atomic.transaction():
            _write(str(tmp_path / "a.txt"), "new")
            _write(str(tmp_path / "b.txt"), "b")
            (tmp_path / "b.txt").mkdir()              # appears before the commit
    assert (tmp_path / "a.txt").read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "b.txt"]


def test_merge_keeps_other_files(tmp_path):
    (tmp_path / "rep").mkdir()
    (tmp_path / "rep" / "keep.txt").write_text("k")
    (tmp_path / "rep" / "report.md").write_text("old")
    with atomic.atomic_merge(str(tmp_path / "rep")) as d:
        with open(os.path.join(d, "report.md"), "w") as f:
            f.write("new")
    assert _tree(tmp_path / "rep") == {"keep.txt": b"k", "report.md": b"new"}


def test_interrupt_inside_a_transaction_never_commits(tmp_path):
    with pytest.raises(atomic.Interrupted):
        with atomic.transaction() as tx:
            _write(str(tmp_path / "a.txt"), "a")
            tx.interrupted = signal.SIGTERM            # what the CLI's handler records
    assert os.listdir(tmp_path) == []


def test_argparse_errors_are_one_line(capsys):
    for argv in (["estimate", "--depth", "x"], ["estimat"], ["generate"], []):
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("tritforge") and "error:" in err, err


def test_estimate_json_and_report_fail_together(tmp_path, capsys):
    (tmp_path / "r.json").write_text("old\n")
    (tmp_path / "rep").write_text("a file where the report folder goes\n")
    before = _tree(tmp_path)
    rc = cli.main(["estimate", "--model-config", "smollm2-135m", "--json", str(tmp_path / "r.json"),
                   "--report", str(tmp_path / "rep")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "rep" in err
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_mid_command_exits_128_plus_signum_and_leaves_nothing(tmp_path, sig):
    (tmp_path / "r.json").write_text("old\n")
    argv = [sys.executable, "-m", "tritforge.cli", "estimate", "--model-config", "qwen2.5-7b",
            "--json", "r.json", "--report", "rep"]
    p = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)          # inside the context sweep (it takes several seconds)
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 128 + sig, err
    assert err.count("\n") == 1 and "interrupted by" in err and "Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == ["r.json"] and (tmp_path / "r.json").read_text() == "old\n"


def test_signal_inside_a_finalizer_still_interrupts_the_command_quietly(capsys):
    """The handler's exception cannot leave a finalizer (Python would print it as "Exception
    ignored in" and go on): the command is still interrupted, in the code after it, with
    nothing on stderr but the CLI's line."""
    class Finalized:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):        # the handler runs here, inside the finalizer
                pass

    signals, reached = cli._Signals(), []
    with pytest.raises(atomic.Interrupted) as exc:
        with signals.installed(restore=True):
            Finalized()
            time.sleep(5)               # the signal comes back and ends the sleep
            reached.append(True)
    assert exc.value.signum == signal.SIGTERM and reached == []
    assert capsys.readouterr().err == ""


_HALF_BUILT = """
import os, signal, sys, time
from tritforge import atomic, cli

class HalfBuilt:                     # a library object whose construction a signal cut short
    def __init__(self):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
        self.expr = None

    def __del__(self):
        self.expr                    # AttributeError when __init__ did not finish

kept = []
try:
    with cli._Signals().installed(restore=False):
        kept.append(object.__new__(HalfBuilt))
        kept[-1].__init__()
except atomic.Interrupted:
    print("interrupted", file=sys.stderr)
"""


def test_interrupted_console_script_prints_no_finalizer_errors_at_exit():
    """An object the signal left half-built fails in its finalizer at shutdown (pyparsing's
    Forward, cut short inside matplotlib's import): the console script's stderr stays the
    CLI's line."""
    p = subprocess.run([sys.executable, "-c", _HALF_BUILT], capture_output=True, text=True, timeout=60)
    assert p.stderr == "interrupted\n"


def test_interrupt_a_library_turned_into_its_own_error_is_still_an_interrupt(tmp_path, monkeypatch, capsys):
    """matplotlib's renderer, interrupted inside a draw, raises ValueError instead."""
    def run(args):
        _write(str(tmp_path / "out.txt"), "x")
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        except atomic.Interrupted:
            raise ValueError("Invalid bounding box") from None

    parser = cli.Parser(prog="tritforge")
    parser.set_defaults(_run=run, command="draw")
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    assert cli.main([]) == 128 + signal.SIGTERM
    assert capsys.readouterr().err == "tritforge draw: interrupted by SIGTERM; no output was written\n"
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_while_the_console_script_imports_is_one_line(tmp_path, sig):
    """A signal after ``tritforge.cli`` started importing but before ``main`` runs is
    recorded and ends the command at its start: one line, 128 + signum, nothing written."""
    code = ("import os, signal, sys; sys.argv[0] = 'tritforge'; import tritforge.cli as c; "
            f"os.kill(os.getpid(), {int(sig)}); "
            "sys.exit(c.main(['estimate', '--model-config', 'smollm2-135m', '--json', 'r.json']))")
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert p.returncode == 128 + sig, p.stderr
    assert p.stderr == f"tritforge: interrupted by {signal.Signals(sig).name}; no output was written\n"
    assert os.listdir(tmp_path) == []


def test_importing_the_cli_as_a_library_keeps_the_handlers():
    code = ("import signal, tritforge.cli; "
            "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.stdout.strip() == "True", p.stderr
