#!/usr/bin/env python3
"""Runs a command on a pseudo-terminal and answers its prompts, for tests of terminal behaviour
(no-echo password prompts, confirmations).

usage: pty_run.py TRANSCRIPT PROMPT_RE=ANSWER [PROMPT_RE=ANSWER...] -- COMMAND [ARGS...]

Each answer is typed (with a newline) after the output so far matches PROMPT_RE. Everything the
terminal showed is written to TRANSCRIPT, so a test can check that a typed password was not
echoed. Exits with the command's exit status (124 on a timeout)."""
import os
import pty
import re
import select
import sys
import time

TIMEOUT = 20.0


def main():
    argv = sys.argv[1:]
    sep = argv.index("--")
    transcript, pairs, cmd = argv[0], argv[1:sep], argv[sep + 1:]
    script = [p.split("=", 1) for p in pairs]
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(cmd[0], cmd)
    out = b""
    consumed = 0
    deadline = time.monotonic() + TIMEOUT
    status = None
    while True:
        if script:
            m = re.search(script[0][0].encode(), out[consumed:])
            if m:
                consumed += m.end()
                os.write(fd, script[0][1].encode() + b"\n")
                script.pop(0)
                continue
        left = deadline - time.monotonic()
        if left <= 0:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            status = 124
            break
        r, _, _ = select.select([fd], [], [], min(left, 0.2))
        if r:
            try:
                data = os.read(fd, 4096)
            except OSError:
                data = b""
            if not data:
                break
            out += data
    if status is None:
        _, st = os.waitpid(pid, 0)
        status = os.waitstatus_to_exitcode(st)
    with open(transcript, "wb") as f:
        f.write(out)
    sys.exit(status if status >= 0 else 128 - status)


if __name__ == "__main__":
    main()
