"""Imported first by a recipe run as a script, before the libraries: importing torch and the rest takes
seconds, and until the recipe's ``main`` installs its own handler a SIGTERM would end the process
through the default one (exit -15, no word). This one says what happened, with the same exit code as
any other interruption. Standard library only: nothing else is imported yet."""

import os
import signal
import sys


def _interrupted(signum, frame):
    if os.environ.get("RANK", "0") in ("", "0"):  # several processes: the main one says it
        sys.stderr.write(f"interrupted: {signal.Signals(signum).name} while starting (importing the libraries): "
                         "nothing was written. Run the same command again\n")
    os._exit(130)  # no clean-up to run: no file is open and no module needs its exit hooks yet


signal.signal(signal.SIGTERM, _interrupted)
