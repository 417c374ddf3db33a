"""Tables on a real terminal (a pseudo-terminal of 80 columns, its size read as rich reads it) and in a pipe."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from rich.cells import cell_len

ROOT = Path(__file__).parent.parent
EXAMPLES = sorted(path.stem for path in (ROOT / "examples").glob("*.yaml"))
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
# the variables that would set the width or the colours for rich, so that only the terminal decides
_ENV = {key: value for key, value in os.environ.items() if key not in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR")}


def on_terminal(args: list[str], columns: int = 80, rows: int = 50, encoding: str = "utf-8") -> str:
    """What ``convcalc ARGS`` writes to a pseudo-terminal ``columns`` wide whose encoding is ``encoding``, style
    codes removed."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = {**_ENV, "TERM": "xterm-256color", "PYTHONIOENCODING": encoding}
    process = subprocess.Popen([sys.executable, "-m", "convcalc", *args], stdin=follower, stdout=follower,
                               stderr=follower, env=env, cwd=ROOT, close_fds=True)  # fmt: skip
    os.close(follower)
    out = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 30)
        if not ready:
            process.kill()
            raise AssertionError(f"no output for 30 s: {args}")
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the follower side closed: the process is done
            break
        if not chunk:
            break
        out += chunk
    os.close(leader)
    assert process.wait(30) == 0, out.decode(errors="replace")[-2000:]
    return _ANSI.sub("", out.decode(encoding).replace("\r\n", "\n"))


def test_a_wide_terminal_shows_every_column() -> None:
    text = on_terminal(["stack", "examples/resnet18.yaml"], columns=200)
    header = next(line for line in text.splitlines() if line.startswith("#"))
    assert header.split() == ["#", "layer", "arguments", "output", "params", "MACs", "RF", "jump", "!"]
    assert "hidden" not in text
    assert "3 -> 64, k=7 s=2 p=3 bias=false" in text  # the arguments in full, as --markdown and --json give them


@pytest.mark.parametrize("name", ["efficientnet_b0", "vit_b_16", "unet"])
def test_a_pipe_gets_the_whole_table_uncut(name: str) -> None:
    env = {key: value for key, value in _ENV.items() if key != "TERM"}
    run = [sys.executable, "-m", "convcalc", "stack", f"examples/{name}.yaml"]
    table = subprocess.run(run, capture_output=True, text=True, env=env, cwd=ROOT, check=True).stdout
    data = json.loads(subprocess.run([*run, "--json"], capture_output=True, text=True, cwd=ROOT, check=True).stdout)
    assert "hidden" not in table and "\x1b" not in table
    header = next(line for line in table.splitlines() if line.startswith("#"))
    assert header.split() == ["#", "layer", "arguments", "output", "params", "MACs", "RF", "jump", "!"]
    lines = table.splitlines()
    body = lines[lines.index(header) + 2 : lines.index("", lines.index(header))]
    rows = {line.split()[0]: line for line in body if line[:1].isdigit()}
    headings = [line for line in body if not line[:1].isdigit()]
    assert all(re.fullmatch(r" +[│ ]*[├└]─[a-z0-9]+", line) for line in headings), headings  # nothing wrapped

    def nodes(entries: list[dict]) -> list[dict]:
        inner = [[child for branch in entry.get("blocks", {}).values() for child in nodes(branch)] for entry in entries]
        return [node for entry, below in zip(entries, inner) for node in [entry, *below]]

    everything = nodes(data["layers"])
    assert len(rows) == len(everything)
    for node in everything:  # each node on one line of its own
        line = rows[str(node["id"])]
        assert node["type"] in line
        assert "(" + ", ".join(map(str, node["output_shape"])) + ")" in line


def test_wide_characters_keep_the_columns_in_line(tmp_path: Path) -> None:
    stack = tmp_path / "net.yaml"
    name = "인코더출력"  # each character two cells wide
    stack.write_text(f"input: [1, 3, 8, 8]\nlayers:\n  - Save: {name}\n  - ReLU\n  - Add: {{with: {name}}}\n  - ReLU\n")
    lines = on_terminal(["stack", str(stack)], columns=120).splitlines()
    rows = [line for line in lines if line[:1].isdigit() and "(1, 3, 8, 8)" in line]
    assert len(rows) == 4 and any("인코더출력" in row for row in rows)
    starts = {cell_len(row[: row.index("(1, 3, 8, 8)")]) for row in rows}  # where the output column starts, in cells
    assert len(starts) == 1, rows


def test_verify_shows_a_spinner_on_a_terminal_and_nothing_in_a_pipe() -> None:
    shown = on_terminal(["conv", "227", "--k", "11", "--s", "4", "--verify", "-q"])
    assert "torch is running the layer" in shown and shown.rstrip().endswith("55x55")
    piped = subprocess.run([sys.executable, "-m", "convcalc", "conv", "227", "--k", "11", "--s", "4", "--verify", "-q"],
                           capture_output=True, text=True, env=_ENV, cwd=ROOT, check=True)  # fmt: skip
    assert piped.stdout == "55x55\n" and piped.stderr == ""
