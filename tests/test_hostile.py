"""Hostile input, streams, signals and output targets: each case a user or a script can really produce.

These run the real program as a separate process where the operating system is
part of the case (closed or full streams, signals, FIFOs, devices), and in
process (click's runner) elsewhere.
"""

from __future__ import annotations

import decimal
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convcalc.cli import main
from convcalc.files import write_file
from tests.profiles import scaled

ROOT = Path(__file__).parent.parent
LENET = str(ROOT / "examples" / "lenet5.yaml")
CONVCALC = [sys.executable, "-m", "convcalc"]


def run(*args: str, stdin: str | None = None) -> object:
    return CliRunner(env={"COLUMNS": "100"}).invoke(main, list(args), input=stdin)


def process(*args: str, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*CONVCALC, *args], capture_output=True, timeout=60, check=False, **kwargs)  # type: ignore[call-overload]


def one_error(stderr: bytes | str) -> str:
    text = stderr.decode() if isinstance(stderr, bytes) else stderr
    assert "Traceback" not in text, text
    lines = text.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), text
    return lines[0]


# --- streams --------------------------------------------------------------------------------------------------


def test_closed_stdin_is_one_error_line() -> None:
    result = process("stack", "-", stdin=subprocess.DEVNULL, preexec_fn=lambda: os.close(0))
    assert result.returncode == 1
    assert one_error(result.stderr) == "Error: <stdin>: cannot read standard input: it is closed"


def test_latin1_bytes_on_stdin_are_one_error_line() -> None:
    text = "input: [1, 3, 8, 8]\nlayers:\n  - Save: caf\xe9\n".encode("latin-1")
    result = process("stack", "-", input=text)
    assert result.returncode == 1
    assert one_error(result.stderr) == (
        "Error: <stdin>, line 3: not UTF-8 text (byte 0xe9 at offset 41): save it as UTF-8"
    )


def test_closed_stdout_is_one_error_line() -> None:
    result = process("conv", "227", "--k", "11", preexec_fn=lambda: os.close(1))
    assert result.returncode == 1
    assert one_error(result.stderr).startswith("Error: cannot write to standard output")


def test_full_stdout_is_one_error_line() -> None:
    with open("/dev/full", "wb") as full:
        result = subprocess.run([*CONVCALC, "stack", LENET], stdout=full, stderr=subprocess.PIPE, check=False)
    assert result.returncode == 1
    assert one_error(result.stderr) == "Error: cannot write to standard output: No space left on device"


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252"])  # click itself writes UTF-8 where it finds ASCII
def test_narrow_output_encodings_print_every_table(encoding: str) -> None:
    env = {**os.environ, "PYTHONIOENCODING": encoding}
    text = "input: [1, 3, 8, 8]\nlayers:\n  - Save: 인코더\n  - Conv2d: {out_channels: 4, kernel_size: 3}\n"
    for args, stdin in ((["stack", LENET], None), (["conv", "227", "--k", "11"], None), (["stack", "-"], text)):
        result = process(*args, env=env, input=None if stdin is None else stdin.encode())
        assert result.returncode == 0, result.stderr
        assert result.stderr == b""
        result.stdout.decode(encoding)  # every byte is of that encoding
    assert b"\\uc778\\ucf54\\ub354" in result.stdout  # what the encoding cannot hold is shown escaped


@pytest.mark.parametrize("columns", ["\u00b2", "\u0663", "-5", "", "1e3", "99999999999999999999999"])
def test_odd_columns_values_are_ignored(columns: str) -> None:
    result = CliRunner(env={"COLUMNS": columns}).invoke(main, ["stack", LENET])
    assert result.exit_code == 0, result.output


def test_a_closed_pipe_ends_quietly_with_141() -> None:
    reader, writer = os.pipe()
    os.close(reader)
    child = subprocess.run([*CONVCALC, "stack", str(ROOT / "examples" / "resnet50.yaml")], stdout=writer,
                           stderr=subprocess.PIPE, check=False)  # fmt: skip
    os.close(writer)
    assert (child.returncode, child.stderr) == (141, b"")


def blocked_on_stdin(child: subprocess.Popen[bytes]) -> None:
    """Wait until ``child`` is blocked reading its standard input, past its start-up and its signal handlers: read
    (syscall 0) on fd 0, as Linux's /proc shows it. A fixed sleep was not enough on a loaded machine (the signal
    came during start-up, exit 1). Elsewhere, a generous sleep."""
    syscall = Path(f"/proc/{child.pid}/syscall")
    if not syscall.parent.exists():
        time.sleep(5)
        return
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            fields = syscall.read_text().split()
        except OSError:  # the kernel may refuse to show it
            break
        if fields[:2] == ["0", "0x0"]:
            return
        time.sleep(0.02)
    time.sleep(5)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signals_exit_quietly_with_their_codes(signum: int, code: int) -> None:
    # a shell starts a background job with SIGINT ignored, and Python keeps an ignored SIGINT ignored: the child
    # then read end of file and exited 1 (five runs from `bash script &`); give it the default, as a terminal does
    child = subprocess.Popen([*CONVCALC, "stack", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE,
                             preexec_fn=lambda: signal.signal(signum, signal.SIG_DFL))  # fmt: skip
    blocked_on_stdin(child)
    child.send_signal(signum)
    _out, err = child.communicate(timeout=30)
    assert child.returncode == code
    assert b"Traceback" not in err and b"Aborted" not in err


# --- reading files --------------------------------------------------------------------------------------------


def test_endless_files_are_refused_at_a_documented_size() -> None:
    started = time.monotonic()
    result = run("stack", "/dev/zero")
    assert result.exit_code == 1
    assert one_error(result.stderr) == "Error: /dev/zero: refused: larger than 16 MiB, the most convcalc reads"
    assert time.monotonic() - started < 10


def test_a_fifo_with_no_writer_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "net.yaml"
    os.mkfifo(fifo)
    result = process("stack", str(fifo))
    assert result.returncode == 1
    expected = f"Error: {fifo}: expected a mapping with 'input' and 'layers', e.g. input: [1, 3, 224, 224]"
    assert one_error(result.stderr) == expected


def test_a_fifo_with_a_writer_is_read(tmp_path: Path) -> None:
    fifo = tmp_path / "net.yaml"
    os.mkfifo(fifo)
    text = Path(LENET).read_bytes()

    def feed() -> None:
        with open(fifo, "wb") as out:
            out.write(text)

    writer = threading.Thread(target=feed)
    writer.start()
    result = process("stack", str(fifo), "-q")
    writer.join(timeout=30)
    assert (result.returncode, result.stdout) == (0, b"1x10\n")


def test_a_directory_is_not_a_stack_file(tmp_path: Path) -> None:
    result = run("stack", str(tmp_path))
    assert one_error(result.stderr) == f"Error: {tmp_path}: cannot read the file: it is a directory"


# --- writing files --------------------------------------------------------------------------------------------


def draw_to(target: str | Path) -> object:
    return run("draw", LENET, "-o", str(target))


def leftovers(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.startswith(".convcalc"))


def test_a_new_file_gets_the_umask_mode(tmp_path: Path) -> None:
    previous = os.umask(0o027)
    try:
        assert draw_to(tmp_path / "net.svg").exit_code == 0
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "net.svg").stat().st_mode) == 0o640
    assert leftovers(tmp_path) == []


def test_a_replaced_file_keeps_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "net.svg"
    target.write_text("old")
    target.chmod(0o604)
    assert draw_to(target).exit_code == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o604
    assert target.read_text().startswith("<svg")


def test_through_a_symlink_the_target_is_replaced_and_the_link_stays(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "net.svg"
    target.write_text("old")
    link = tmp_path / "link.svg"
    link.symlink_to(target)
    assert draw_to(link).exit_code == 0
    assert link.is_symlink() and target.read_text().startswith("<svg")
    assert leftovers(tmp_path) == [] and leftovers(tmp_path / "real") == []


def test_a_device_is_written_into_never_replaced() -> None:
    before = os.stat("/dev/null")
    assert draw_to("/dev/null").exit_code == 0
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev and after.st_ino == before.st_ino


def reading(fifo: Path | str) -> tuple[threading.Thread, list[bytes], int]:
    """A reader of ``fifo`` that is there before convcalc opens it, and a writer of our own that holds its end
    open (so the reader sees no end of file before convcalc writes): the reader, what it read, and the writer to
    close once convcalc is done."""
    source = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    writer = os.open(fifo, os.O_WRONLY)
    os.set_blocking(source, True)
    received: list[bytes] = []

    def drain() -> None:
        with os.fdopen(source, "rb") as stream:
            received.append(stream.read())

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    return reader, received, writer


def test_a_fifo_is_written_into(tmp_path: Path) -> None:
    fifo = tmp_path / "out.svg"
    os.mkfifo(fifo)
    reader, received, writer = reading(fifo)
    result = draw_to(fifo)
    os.close(writer)
    reader.join(timeout=30)
    assert result.exit_code == 0
    assert stat.S_ISFIFO(fifo.stat().st_mode) and received[0].startswith(b"<svg")


def test_a_fifo_that_no_program_reads_is_an_error_not_a_wait(tmp_path: Path) -> None:
    fifo = tmp_path / "out.svg"
    os.mkfifo(fifo)
    result = draw_to(fifo)  # it waited for a reader for ever
    assert result.exit_code == 1
    assert result.stderr == f"Error: {fifo}: cannot write the file: it is a FIFO that no program reads\n"
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_a_socket_is_an_error_and_stays(tmp_path: Path) -> None:
    path = tmp_path / "out.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    try:
        result = draw_to(path)
    finally:
        server.close()
    assert result.exit_code == 1
    assert one_error(result.stderr) == f"Error: {path}: cannot write the file: No such device or address"
    assert stat.S_ISSOCK(path.stat().st_mode)


@pytest.mark.parametrize("through_link", [False, True])
def test_a_directory_is_an_error_and_leaves_nothing(tmp_path: Path, through_link: bool) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    target = folder
    if through_link:
        target = tmp_path / "link"
        target.symlink_to(folder)
    result = draw_to(target)
    assert result.exit_code in (1, 2)
    assert "directory" in result.stderr and "Traceback" not in result.stderr
    assert leftovers(tmp_path) == [] and leftovers(folder) == []


def test_an_empty_output_name_is_an_error() -> None:
    result = run("draw", LENET, "-o", "")
    assert result.exit_code == 2 and result.stdout == ""
    assert "--output '' is not a file name" in result.stderr


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM during the write: the handler raises SystemExit, as convcalc's does; nothing is half-replaced."""
    target = tmp_path / "net.svg"
    target.write_text("old")
    real_write = os.write

    def interrupted(handle: int, data: bytes) -> int:
        real_write(handle, data[:10])
        raise SystemExit(143)

    monkeypatch.setattr(os, "write", interrupted)
    with pytest.raises(SystemExit):
        write_file(str(target), b"<svg>" * 1000)
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert leftovers(tmp_path) == []


# --- YAML that reads otherwise than it looks ------------------------------------------------------------------

HEAD = "input: [1, 3, 8, 8]\nlayers:\n"

YAML_SURPRISES = [
    ("input: [1, 3, 8, 8]\nlayers:\n  - ReLU\nlayers:\n  - Tanh\n",
     "<stdin>, line 4: the key 'layers' is given twice, on line 2 and on line 4: keep one"),
    (HEAD + "  - Conv2d: {out_channels: 4, kernel_size: 3, kernel_size: 5}\n",
     "<stdin>, line 3: the key 'kernel_size' is given twice, on line 3 and on line 3: keep one"),
    (HEAD + "  - Conv2d: {out_channels: 010, kernel_size: 3}\n",
     "<stdin>, line 3: 010 reads as an octal number in YAML 1.1 (8): write it without the leading zeros"),
    (HEAD + "  - Conv2d: {out_channels: 1:00, kernel_size: 3}\n",
     "<stdin>, line 3: 1:00 reads as a base-60 number in YAML 1.1: write the number itself, or quote it ('1:00') "
     "for text"),
    (HEAD + "  - ReLU: {inplace: yes}\n",
     "<stdin>, line 3: yes reads as True in YAML 1.1: write true or false, or quote it ('yes') for text"),
    (HEAD + "  - Save: 2024-01-01\n", "<stdin>, line 3: 2024-01-01 reads as a date: quote it ('2024-01-01') for text"),
    ("input: [1, 3, 8, 8]\nlayers: []\non: 3\n", "<stdin>, line 3: unknown key 'on': use input, layers and define"),
    ("? [1, 2]\n: 3\n", "<stdin>, line 1: a key must be a name, got a list"),
    (HEAD + "  - Restore: s\n", "<stdin>, line 3: layer 1: unknown layer 'Restore'"),
    (HEAD + "  - Save: s\n  - Ad: s\n", "<stdin>, line 4: layer 2: unknown layer 'Ad' (did you mean Add?)"),
    (HEAD + "  - LeakyReLU: {negative_slope: .inf}\n",
     "<stdin>, line 3: layer 1 (LeakyReLU): negative_slope must be a finite number, got inf"),
    (HEAD + "  - Dropout: {p: .nan}\n", "<stdin>, line 3: layer 1 (Dropout): p must be a finite number, got nan"),
    (HEAD + "  - Upsample: {scale_factor: -.inf}\n",
     "<stdin>, line 3: layer 1 (Upsample): scale_factor must be a finite number or a list of finite numbers, got -inf"),
    (HEAD + "  - Conv2d: {out_channels: 9223372036854775808, kernel_size: 3}\n",
     "<stdin>, line 3: layer 1 (Conv2d): out_channels must lie within torch's 64-bit integers (at most "
     "9223372036854775807), got 9223372036854775808"),
    (HEAD + "  - GELU: {approximate: bogus}\n",
     "<stdin>, line 3: layer 1 (GELU): approximate must be one of 'none', 'tanh', got 'bogus'"),
    (HEAD + "  - CELU: {alpha: 0}\n", "<stdin>, line 3: layer 1 (CELU): alpha must not be 0, got 0"),
    (HEAD + "  - RReLU: {lower: 0.5, upper: 0.1}\n",
     "<stdin>, line 3: layer 1 (RReLU): lower 0.5 must be at most upper 0.1"),
    (HEAD + "  - Hardtanh: {min_val: 2, max_val: -1}\n",
     "<stdin>, line 3: layer 1 (Hardtanh): min_val 2 must be smaller than max_val -1"),
    (HEAD + "  - LPPool2d: {norm_type: 0, kernel_size: 2}\n",
     "<stdin>, line 3: layer 1 (LPPool2d): norm_type must not be 0, got 0"),
    (HEAD + "  - BatchNorm2d: {eps: -1}\n", "<stdin>, line 3: layer 1 (BatchNorm2d): eps must not be negative, got -1"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), YAML_SURPRISES)
def test_yaml_surprises_and_wrong_values_are_refused_on_their_line(text: str, message: str) -> None:
    result = run("stack", "-", stdin=text)
    assert result.exit_code == 1
    assert one_error(result.stderr) == f"Error: {message}"


def test_merge_keys_work() -> None:
    text = HEAD + "  - Conv2d: &base {out_channels: 4, kernel_size: 3}\n  - Conv2d: {<<: *base, out_channels: 6}\n"
    result = run("stack", "-", "-q", stdin=text)
    assert (result.exit_code, result.stdout) == (0, "1x6x4x4\n")


def test_integers_with_thousands_of_digits_are_refused_without_converting_them() -> None:
    text = HEAD + f"  - Conv2d: {{out_channels: {'9' * 5000}, kernel_size: 3}}\n"
    result = run("stack", "-", stdin=text)
    assert one_error(result.stderr).startswith("Error: <stdin>, line 3: the integer 999999999999... has 5000 digits")


# --- user text on a terminal and in Markdown ------------------------------------------------------------------

ESCAPES = ["\x1b]0;owned\x07", "\x1b[2J", "\x9b31m", "a\nb", "\u202eevil", "|pipe|"]


@pytest.mark.parametrize("name", ESCAPES)
def test_names_reach_no_terminal_raw(name: str) -> None:
    text = HEAD + f"  - Save: {name!r}\n  - ReLU\n  - Add: {{with: {name!r}}}\n  - Add: {{with: {(name + 'x')!r}}}\n"
    text = text.replace("'", '"').replace("\\x1b", "\\e").replace("\\x07", "\\a").replace("\\x9b", "\\x9b")
    for args in (["stack", "-"], ["stack", "-", "--csv"], ["stack", "-", "--markdown"]):
        result = run(*args, stdin=text)
        assert result.exit_code == 1
        for output in (result.stdout, result.stderr):
            assert not any(ch in output for ch in "\x1b\x07\x9b\u202e"), output
        assert one_error(result.stderr).startswith("Error: <stdin>, line 6: layer 4 (Add)")
        if "--markdown" in args:
            header, _rule, *rows = [line for line in result.stdout.splitlines() if line.startswith("|")]
            cells = len(re.split(r"(?<!\\)\|", header))
            assert all(len(re.split(r"(?<!\\)\|", row)) == cells for row in rows), result.stdout


def test_one_axis_count_message_reads_well() -> None:
    result = run("conv", "5x5", "--dims", "1", "--k", "3")
    assert "SIZE has 2 values but the layer has 1 spatial axis: give 1 value" in result.stderr


def test_a_smaller_saved_tensor_is_not_told_to_crop() -> None:
    text = HEAD + "  - Save: s\n  - ZeroPad2d: 1\n  - Concat: {with: s, crop: false}\n"
    message = one_error(run("stack", "-", stdin=text).stderr)
    assert "crop the saved tensor" not in message and "'s' is the smaller, so no crop can help" in message


# --- draw's text is valid XML and valid UTF-8 -----------------------------------------------------------------


@pytest.mark.parametrize("title", ["\x1b[2J\x07\x00", "\ufffe\uffff", "<script>&", "a\udcffb"])
def test_draw_titles_make_valid_xml_in_utf8(title: str) -> None:
    import xml.etree.ElementTree as ElementTree

    result = CliRunner().invoke(main, ["draw", LENET, "--title", title])
    assert result.exit_code == 0
    svg = result.stdout_bytes.decode("utf-8")  # strict: no lone surrogate written as raw bytes
    ElementTree.fromstring(svg)


def test_draw_title_from_a_non_utf8_argument() -> None:
    """``--title $'\\xff'``: the shell passes a byte that is not UTF-8."""
    child = subprocess.run([*CONVCALC, "draw", LENET, "--title", os.fsdecode(b"\xff")], capture_output=True,
                           check=False)  # fmt: skip
    assert child.returncode == 0
    assert "\\udcff" in child.stdout.decode("utf-8")


# --- sizes of any magnitude: exact, or refused in one line ----------------------------------------------------

BIG = str(2**63 - 1)


@pytest.mark.parametrize(
    "args",
    [
        ["conv", f"{BIG}x{BIG}", "--k", "3", "--in-channels", BIG, "--out-channels", BIG, "--batch", BIG, "--explain"],
        ["conv", BIG, "--k", BIG, "--s", BIG, "--explain"],
        ["pool", f"{BIG}x7", "--k", "3", "--in-channels", BIG, "--batch", BIG, "--json"],
        ["solve", BIG, "1", "-q"],
        ["solve", BIG, BIG],
        ["conv", BIG + "0", "--k", "3"],
        ["conv", "5", "--k", "3", "--in-channels", "9" * 5000, "--out-channels", "2"],
        ["fit", LENET, "--range", "1:" + "9" * 5000],
        ["draw", LENET, "--width", "1" + "0" * 400],
    ],
)
def test_huge_numbers_are_exact_or_refused(args: list[str]) -> None:
    result = run(*args)
    assert result.exit_code in (0, 1, 2), result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    if result.exit_code:
        assert [line for line in result.stderr.splitlines() if line.startswith("Error: ")], result.stderr


@pytest.mark.parametrize(
    "layer",
    [
        "Upsample: {scale_factor: 1.0e+308}",
        "Upsample: {size: 9223372036854775808}",
        "ConvTranspose2d: {out_channels: 1, kernel_size: 3, stride: 9223372036854775807}",
        "Flatten: {start_dim: 0}",
        "Unflatten: {dim: 1, unflattened_size: [3" + ", 1" * 64 + "]}",
    ],
)
def test_sizes_beyond_torchs_integers_are_refused(layer: str) -> None:
    text = f"input: [9223372036854775807, 3, 1000000000, 1000000000]\nlayers:\n  - {layer}\n"
    for extra in ([], ["--json"], ["--csv"], ["--markdown"], ["-q"]):
        result = run("stack", "-", *extra, stdin=text)
        assert result.exit_code == 1, result.output
        message = one_error(result.stderr)
        assert any(words in message for words in ("beyond torch's 64-bit integers", "within torch's 64-bit integers",
                                                  "dimensions; convcalc follows at most"))  # fmt: skip


def test_memory_figures_of_any_size_print() -> None:
    text = "input: [9223372036854775807, 9223372036854775807, 9223372036854775807]\nlayers:\n  - ReLU\n"
    result = run("stack", "-", stdin=text)
    assert result.exit_code == 0, result.output
    n = 9223372036854775807
    exact = decimal.Context(prec=200, rounding=decimal.ROUND_HALF_UP)
    # the input; a ReLU straight on an input without grad keeps nothing for backward; no parameter: float32
    total = exact.divide(n**3 * 4, 10**6)
    for label in ("forward pass", "training step"):
        shown = re.search(label + r" +([0-9,.]+) MB", result.stdout)
        assert shown is not None, result.stdout
        assert decimal.Decimal(shown[1].replace(",", "")) == exact.quantize(total, decimal.Decimal("0.01"))


# --- no hang ----------------------------------------------------------------------------------------------------


def timed(*args: str, stdin: str | None = None) -> tuple[object, float]:
    started = time.monotonic()
    result = run(*args, stdin=stdin)
    return result, time.monotonic() - started


def test_an_error_after_a_long_repeat_suggests_within_seconds() -> None:
    """Before, the nearest-input search re-ran 99,990 ReLUs up to 128 times: 213 s."""
    text = ("input: [1, 3, 8, 8]\nlayers:\n  - Conv2d: {out_channels: 4, kernel_size: 9}\n"
            "  - Repeat: {times: 99990, layers: [ReLU]}\n  - Linear: {in_features: 5, out_features: 2}\n")  # fmt: skip
    result, seconds = timed("stack", "-", "-q", stdin=text)
    assert result.exit_code == 1 and seconds < 30, seconds
    assert one_error(result.stderr).startswith("Error: <stdin>, line 3: layer 1 (Conv2d)")


@pytest.mark.parametrize("option", [["--max-kernel", "1000000000000"], ["--max-dilation", "1000000000"]])
def test_solve_refuses_huge_searches_at_once(option: list[str]) -> None:
    result, seconds = timed("solve", "64", "32", *option)
    assert result.exit_code == 2 and seconds < 5, seconds
    assert "the search would try about" in result.stderr


def test_fit_counts_the_inputs_rank() -> None:
    """A 5,000-D input with 24 layers took 553 s: fit's budget now counts dimensions, and ranks are bounded."""
    rank = ", ".join(["1"] * 60)
    text = f"input: [1, 1, {rank}]\nlayers:\n" + "  - ReLU\n" * 40
    result, seconds = timed("fit", "-", "--range", "1:1024", stdin=text)
    assert seconds < 30, seconds
    assert result.exit_code == 2 and "keep sizes x layers x dimensions under" in result.stderr
    huge = "input: [" + ", ".join(["1"] * 5000) + "]\nlayers:\n  - ReLU\n"
    result, seconds = timed("fit", "-", stdin=huge)
    assert result.exit_code == 1 and seconds < 10
    assert "input must be a list of 1 to 64 positive integers" in one_error(result.stderr)


def test_the_most_layers_a_stack_may_hold_run_in_seconds(tmp_path: Path) -> None:
    """100,000 distinct Conv2d layers, the documented limit: 40-55 s before."""
    lines = "".join(f"  - Conv2d: {{out_channels: {8 + i}, kernel_size: 3, padding: 1}}\n" for i in range(100_000))
    path = tmp_path / "long.yaml"
    path.write_text(f"input: [1, 8, 16, 16]\nlayers:\n{lines}")
    started = time.monotonic()
    result = process("stack", str(path), "-q")
    assert (result.returncode, result.stdout) == (0, b"1x100007x16x16\n")
    assert time.monotonic() - started < 60


# --- what the generated fuzzing found (tests/test_fuzz.py), kept as plain regressions ---------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0x_", "'0x_' is not an integer"),
        ("!!int 'nan'", "'nan' is not an integer"),
        ("!!float 'abc'", "'abc' is not a number"),
        ("!!bool 'maybe'", "'maybe' is not true or false"),
    ],
)
def test_odd_yaml_scalars_are_one_error_line(value: str, message: str) -> None:
    result = run("stack", "-", stdin=HEAD + f"  - Conv2d: {{out_channels: {value}, kernel_size: 3}}\n")
    assert one_error(result.stderr) == f"Error: <stdin>, line 3: {message}"


@pytest.mark.parametrize(
    "layers",
    [
        "  - Residual: {body: [Flatten]}\n",
        "  - Repeat: {times: 5, layers: [Conv2d: {out_channels: 4, kernel_size: 3}, ReLU]}\n",
        "  - Add: a\n",
    ],
)
def test_verify_of_a_failing_stack_is_one_error_line(layers: str) -> None:
    result = run("stack", "-", "--verify", stdin=HEAD + layers)
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.splitlines()[-1].endswith("(meta device, eval mode)")
    assert "DISAGREES" not in result.stderr


def test_clicks_own_messages_are_escaped_too() -> None:
    result = run("fit", LENET, "\x1b]0;owned\x07")
    assert result.exit_code == 2
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr
    assert "\\x1b]0;owned\\x07" in result.stderr


def test_draw_to_a_closed_stdout_is_one_error_line() -> None:
    result = process("draw", LENET, preexec_fn=lambda: os.close(1))
    assert result.returncode == 1
    assert one_error(result.stderr).startswith("Error: cannot write to standard output")


def test_a_replaced_file_keeps_setuid_and_setgid(tmp_path: Path) -> None:
    target = tmp_path / "net.svg"
    target.write_text("old")
    target.chmod(0o6755)
    assert draw_to(target).exit_code == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o6755


def test_emitted_code_runs_whatever_encoding_wrote_it(tmp_path: Path) -> None:
    text = "input: [1, 3, 8, 8]\nlayers:\n  - Save: caf\u00e9 \u0444\n  - ReLU\n"
    env = {**os.environ, "PYTHONIOENCODING": "latin-1"}
    result = process("stack", "-", "--emit", "torch", input=text.encode(), env=env)
    assert result.returncode == 0, result.stderr
    result.stdout.decode("ascii")  # every byte ASCII: the names are escaped
    path = tmp_path / "net.py"
    path.write_bytes(result.stdout)
    run_it = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, check=False)
    assert run_it.returncode == 0, run_it.stderr


def test_an_anchor_given_twice_names_both_lines() -> None:
    text = (HEAD + "  - &a Conv2d: {out_channels: 4, kernel_size: 3}\n  - *a\n"
            "  - &a Conv2d: {out_channels: 6, kernel_size: 1}\n  - *a\n")  # fmt: skip
    result = run("stack", "-", "-q", stdin=text)
    assert one_error(result.stderr) == (
        "Error: <stdin>, line 5: found duplicate anchor; first occurrence (line 3), second occurrence"
    )


@pytest.mark.parametrize("layer", ["LayerScale", "PositionEmbedding", "ClassToken", "select: [0, 0]", "Linear: 3"])
def test_a_0d_tensor_is_refused_in_one_line_where_a_layer_needs_an_axis(layer: str) -> None:
    result = run("stack", "-", stdin=HEAD + f"  - mean\n  - {layer}\n")
    assert result.exit_code == 1
    assert one_error(result.stderr).startswith("Error: <stdin>, line 4: layer 2")


MARKUP = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30) | st.sampled_from(
    ["<script>alert(1)</script>", "[x](javascript:alert(1))", "*a* _b_ `c` ~~d~~", "&amp; &lt;", "a|b\\|c", "$x$",
     "![i](http://e/i.png)", "<http://e>", "\\", "x\\"]
)  # fmt: skip


@settings(max_examples=scaled(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=MARKUP)
def test_a_name_in_markdown_is_text_and_nothing_else(name: str) -> None:
    """Rendered by a CommonMark parser (markdown-it, which rich depends on), the table has 8 cells a row and the
    Save's cell reads as the name itself: no link, image, HTML, emphasis, code or entity comes of it."""
    from markdown_it import MarkdownIt

    from convcalc.text import printable

    stack = {"input": [1, 3, 8, 8], "layers": [{"Save": name}, "ReLU", {"Add": {"with": name}}]}
    text = re.sub(  # JSON as YAML reads it: every character escaped, those beyond the BMP as \\U........
        r"\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})",
        lambda m: f"\\U{0x10000 + ((int(m[1], 16) - 0xD800) << 10) + int(m[2], 16) - 0xDC00:08x}",
        json.dumps(stack),
    )
    result = run("stack", "-", "--markdown", stdin=text)
    assert result.exit_code == 0, result.output
    tokens = MarkdownIt("commonmark").enable("table").parse(result.stdout)
    inline = [child.type for token in tokens if token.type == "inline" for child in token.children or []]
    assert set(inline) <= {"text"}, (name, inline)
    rows = [token for token in tokens if token.type == "tr_open"]
    assert len(rows) == 4 and sum(token.type == "td_open" for token in tokens) == 3 * 8
    texts = ["".join(child.content for child in token.children or []) for token in tokens if token.type == "inline"]
    assert f"name={printable(name)}".strip() in [text.strip() for text in texts], (name, texts)


def test_torchs_own_message_is_escaped_too() -> None:
    """torch repeats a bad padding_mode in its message: --verify prints torch's verdict with the escape shown."""
    pytest.importorskip("torch")
    result = run("conv", "32", "--k", "3", "--padding-mode", "ze\x1b]0;owned\x07ros", "--verify")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert [line.split(":")[0] for line in lines] == ["Error", "verify"]
    assert "rejects the layer" in lines[1] and "\\x1b]0;owned\\x07" in lines[1]
    assert not set(result.stderr) & {"\x1b", "\x07"}


def test_a_0d_output_prints_and_draws() -> None:
    """mean() over every dim leaves a 0-D tensor, which torch allows: -q shows it as (), draw as a box."""
    import xml.etree.ElementTree as ElementTree

    text = "input: [1, 2]\nlayers: [mean]\n"
    assert run("stack", "-", "-q", stdin=text).stdout == "()\n"
    drawn = run("draw", "-", stdin=text)
    assert drawn.exit_code == 0, drawn.stderr
    ElementTree.fromstring(drawn.stdout)


COMPLETION_ENVIRONMENTS = [
    {"_CONVCALC_COMPLETE": "bash_complete"},
    {"_CONVCALC_COMPLETE": "zsh_complete"},
    {"_CONVCALC_COMPLETE": "bash_complete", "COMP_WORDS": "convcalc", "COMP_CWORD": "abc"},
]


@pytest.mark.parametrize("env", COMPLETION_ENVIRONMENTS)
def test_completion_without_its_variables_is_one_error_line(env: dict[str, str]) -> None:
    """click's completion reads COMP_WORDS and the like unchecked (KeyError, ValueError); found by a hostile test."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith(("COMP_", "_CONVCALC"))}
    child = subprocess.run(CONVCALC, env=clean | env, capture_output=True, check=False)
    assert child.returncode == 1
    assert one_error(child.stderr).startswith("Error: shell completion found its variables missing")
