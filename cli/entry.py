"""The console script's entry point: light, so Ctrl-C at any moment ends in one line.

The command that runs imports DuckDB, Arrow and Typer (its module is loaded here, before
it runs), which takes most of a second. A Ctrl-C in that window would print a
KeyboardInterrupt traceback, or abort the process outright when it lands inside a compiled
module's initialisation, so it is held until the imports are done and then ends the
command. Afterwards the first Ctrl-C stops the command (its clean-up still runs: temp files
removed, locks released); a second one during that clean-up is ignored so the clean-up
finishes; a third stops at once. Once the command has ended, Ctrl-C is ignored while the
interpreter exits (it would otherwise kill it mid-exit).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

_interrupts = 0
_importing = True


def _on_interrupt(signum, frame) -> None:
    global _interrupts
    _interrupts += 1
    if _importing:
        return
    if _interrupts == 1:
        raise KeyboardInterrupt
    if _interrupts >= 3:
        os.write(2, b"Error: interrupted three times; stopped before cleaning up\n")
        os._exit(130)


def main() -> None:
    global _importing
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not where SIGINT is ignored
        signal.signal(signal.SIGINT, _on_interrupt)
    try:
        from refusaldata.cli.main import preload, run

        with contextlib.suppress(Exception):  # a module that fails to load fails again, reported, in run()
            preload(sys.argv[1:])
        _importing = False
        if _interrupts:
            raise KeyboardInterrupt
        code = run()
    except KeyboardInterrupt:
        sys.stderr.write("Error: interrupted\n")
        code = 130
    # The command has ended, its output printed and its clean-up done: a Ctrl-C while the
    # interpreter exits would only turn that end into a death by signal, without a line.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if _interrupts or code == 130:
        _forget_interrupted_string_exec()
    sys.exit(code)


def _forget_interrupted_string_exec() -> None:
    """Stop CPython killing an interrupted `python -m refusaldata.cli` with SIGINT at exit.

    CPython remembers a KeyboardInterrupt that ended any exec of a string (dataclasses and
    namedtuples build their methods that way), even one caught afterwards; under `-m` it
    then ends the process by SIGINT instead of with our exit code and message. Each string
    exec clears that memory as it starts.
    """
    exec("pass", {})


if __name__ == "__main__":
    main()
