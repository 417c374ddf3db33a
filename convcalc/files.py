"""Reading stack files and writing output files, safely whatever the path is.

Reading takes at most :data:`MAX_FILE_BYTES`, so ``/dev/zero`` is refused rather
than read until memory runs out, and a FIFO with no writer reads as empty
rather than blocking forever.

Writing never leaves half a file and never clobbers what the user did not name:

- a new path or a regular file is written to a temporary file in the same
  directory and renamed over it; a new file gets ``0666 & ~umask``, a replaced
  one keeps its mode;
- through a symlink, the file it points to is replaced and the link stays;
- a device, FIFO or socket is written into directly, never renamed over;
- a directory is an error;
- on any failure, SIGTERM and Ctrl-C included, the temporary file is removed.

``click.open_file(..., atomic=True)`` does part of this, and its handling of
modes is the model here, but it puts the temporary file beside the symlink
rather than its target (so the rename fails across file systems), renames the
temporary file over the target even when the write failed, and leaves the
temporary file behind when the rename fails (a directory).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat

from convcalc.errors import ConvcalcError

__all__ = ["MAX_FILE_BYTES", "FileProblem", "read_text", "write_file"]

MAX_FILE_BYTES = 16 * 1024 * 1024
"""Most bytes a stack file may have (16 MiB: a 100,000-layer file takes about 6)."""


class FileProblem(ConvcalcError):
    """A file cannot be read or written: the message says why (the caller names the file); ``line`` says where."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def _describe(error: OSError) -> str:
    return error.strerror or str(error)


def read_text(path: str, stdin: object = None) -> str:
    """The UTF-8 text of ``path`` (``-``: ``stdin``, a binary stream or None where standard input is closed)."""
    if path == "-":
        if stdin is None:
            raise FileProblem("cannot read standard input: it is closed")
        try:
            data = stdin.read(MAX_FILE_BYTES + 1)  # type: ignore[attr-defined]
        except OSError as error:
            raise FileProblem(f"cannot read standard input: {_describe(error)}") from None
    else:
        data = _read_path(path)
    if len(data) > MAX_FILE_BYTES:
        raise FileProblem(f"refused: larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB, the most convcalc reads")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise FileProblem(
            f"not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start}): save it as UTF-8", line
        ) from None


def _read_path(path: str) -> bytes:
    try:
        # O_NONBLOCK: opening a FIFO that no program writes to would otherwise wait forever
        handle = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as error:
        raise FileProblem(f"cannot read the file: {_describe(error)}") from None
    try:
        if stat.S_ISDIR(os.fstat(handle).st_mode):
            raise FileProblem("cannot read the file: it is a directory")
        with contextlib.suppress(OSError):
            os.set_blocking(handle, True)  # a writer that is there is waited for, as cat waits
        chunks, size = [], 0
        while size <= MAX_FILE_BYTES:
            chunk = os.read(handle, min(1 << 20, MAX_FILE_BYTES + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    except OSError as error:
        raise FileProblem(f"cannot read the file: {_describe(error)}") from None
    finally:
        os.close(handle)


def write_file(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` whole, as the module docstring describes."""
    if not path:
        raise FileProblem("the output file name is empty: give a file name, or - for standard output")
    target = os.path.realpath(path)
    try:
        existing: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        existing = None
    except OSError as error:
        raise FileProblem(f"cannot write the file: {_describe(error)}") from None
    if existing is not None and stat.S_ISDIR(existing.st_mode):
        raise FileProblem("cannot write the file: it is a directory")
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        _write_into(target, data)  # a device, FIFO or socket: never renamed over
        return
    _replace(target, data, existing)


def _write_into(target: str, data: bytes) -> None:
    try:
        # O_NONBLOCK: opening a FIFO that no program reads would otherwise wait forever (ENXIO says so at once)
        handle = os.open(target, os.O_WRONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as error:
        if error.errno == errno.ENXIO and stat.S_ISFIFO(os.stat(target).st_mode):
            raise FileProblem("cannot write the file: it is a FIFO that no program reads") from None
        raise FileProblem(f"cannot write the file: {_describe(error)}") from None
    try:
        with contextlib.suppress(OSError):
            os.set_blocking(handle, True)  # a reader that is there is waited for, as a shell's > waits
        view = memoryview(data)
        while view:
            view = view[os.write(handle, view) :]
    except OSError as error:
        raise FileProblem(f"cannot write the file: {_describe(error)}") from None
    finally:
        os.close(handle)


def _replace(target: str, data: bytes, existing: os.stat_result | None) -> None:
    folder = os.path.dirname(target)
    mode = 0o666 if existing is None else stat.S_IMODE(existing.st_mode)
    temporary = ""
    import secrets  # only to write a file: it imports hashlib, a few milliseconds on every run otherwise

    try:
        while True:
            temporary = os.path.join(folder, f".convcalc-{secrets.token_hex(6)}.tmp")
            try:
                handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)  # umask applies
                break
            except FileExistsError:
                continue
        try:
            if existing is not None:
                with contextlib.suppress(OSError):  # only root may give a file away; the mode is what matters
                    os.fchown(handle, existing.st_uid, existing.st_gid)
                os.fchmod(
                    handle, mode
                )  # the replaced file's mode, whatever the umask; after fchown, which clears setuid
            view = memoryview(data)
            while view:
                view = view[os.write(handle, view) :]
        finally:
            os.close(handle)
        os.replace(temporary, target)
        temporary = ""
    except OSError as error:
        detail = _describe(error)
        if error.errno == errno.EISDIR:
            detail = "it is a directory"
        raise FileProblem(f"cannot write the file: {detail}") from None
    finally:
        if temporary:  # any failure, SIGTERM and Ctrl-C included: no temporary file is left
            with contextlib.suppress(OSError):
                os.unlink(temporary)
