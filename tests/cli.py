"""Running `doorstep` commands in tests: in this process, through the console script's own entry point, or as a
process of its own where the process is what a test is about.

A process costs a second or two of imports (pandas, geopandas, FastAPI); the suite runs over a hundred commands.
In this process a command runs on a thread of its own (its own event loop, as `asyncio.run` in a process), one
at a time, with the arguments, environment, working folder and standard streams it would have in a process, and
its exit code taken from the `SystemExit` that `app.cli.main` always ends with. What that can't show stays in
processes: the installed script itself, a command's imports on a cold start, servers, and `doorstep simulate`.
"""

import asyncio
import io
import json
import logging
import os
import sys
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.factories import SECRET

DOORSTEP = Path(sys.executable).parent / "doorstep"
# The process's working folder, environment and standard streams are one for every thread: one command at a time.
_ONE_AT_A_TIME = threading.Lock()


@dataclass(frozen=True)
class Ran:
    args: tuple[str, ...]
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"`doorstep {' '.join(self.args)}`: exit {self.code}, stdout {self.out[:300]!r}, stderr {self.err!r}"


def environment(url: str, *, secret: bool = True) -> dict[str, str]:
    """This process's environment with the test's database and (unless not `secret`) its token secret, and no
    other DOORSTEP_ setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOORSTEP_")}
    return env | {"DOORSTEP_DATABASE_URL": url} | ({"DOORSTEP_JWT_SECRET": SECRET} if secret else {})


async def doorstep(url: str, cwd: Path, *args: str | Path, stdin: str = "", process: bool = False,
                   secret: bool = True) -> Ran:
    """Run a command on the database at `url`, in `cwd` (which has no `.env` to read): in this process unless
    `process` asks for the console script in a process of its own; with the token secret unless not `secret`."""
    words = tuple(map(str, args))
    env = environment(url, secret=secret)
    if not process:
        return await asyncio.to_thread(_in_process, words, cwd, env, stdin)
    proc = await asyncio.create_subprocess_exec(
        DOORSTEP, *words, cwd=cwd, env=env, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), timeout=300)
    assert proc.returncode is not None
    return Ran(words, proc.returncode, out.decode(), err.decode())


def _in_process(args: tuple[str, ...], cwd: Path, env: dict[str, str], stdin: str) -> Ran:
    from app.cli import main

    out, err = _stream(), _stream()
    with _ONE_AT_A_TIME, _as_a_process(args, cwd, env, _stream(stdin), out, err):
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # what would end a process with a traceback on stderr, and exit code 1
            traceback.print_exc(file=sys.stderr)
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
    return Ran(args, code, out.buffer.getvalue().decode(), err.buffer.getvalue().decode())


def _stream(text: str = "") -> io.TextIOWrapper:
    """A text stream with a bytes buffer beneath it, as a process's standard streams have."""
    return io.TextIOWrapper(io.BytesIO(text.encode()), encoding="utf-8", write_through=True)


@contextmanager
def _as_a_process(args: tuple[str, ...], cwd: Path, env: dict[str, str], stdin: Any, stdout: Any,
                  stderr: Any) -> Iterator[None]:
    saved = sys.argv, sys.stdin, sys.stdout, sys.stderr, dict(os.environ), Path.cwd()
    # A process's warnings and errors logged with no handler of its own go to stderr (logging's last resort);
    # here pytest's handlers would take them, so one writes them where the process would.
    logged = logging.StreamHandler(stderr)
    logged.setLevel(logging.WARNING)
    logging.getLogger().addHandler(logged)
    sys.argv, sys.stdin, sys.stdout, sys.stderr = ["doorstep", *args], stdin, stdout, stderr
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    try:
        yield
    finally:
        logging.getLogger().removeHandler(logged)
        sys.argv, sys.stdin, sys.stdout, sys.stderr = saved[:4]
        os.environ.clear()
        os.environ.update(saved[4])
        os.chdir(saved[5])


def ok(ran: Ran) -> Ran:
    assert ran.code == 0 and "Traceback" not in ran.err, ran
    return ran


def one_json_object(ran: Ran) -> dict[str, Any]:
    ok(ran)
    report = json.loads(ran.out)  # the whole of stdout: one object, nothing around it
    assert isinstance(report, dict), ran
    return report
