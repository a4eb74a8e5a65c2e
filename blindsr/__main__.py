"""``python -m blindsr <verb> key=value ...``"""
import os
import sys

from blindsr.cli import INTERRUPTED, main

code = main()
if code == INTERRUPTED:
    # Interrupted: every finished file is written and every partial one removed by now. Leave at
    # once, so that nothing in the interpreter's shutdown can turn the exit status into a death by
    # SIGINT (seen now and then: the message printed, the status -SIGINT instead of 130).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
sys.exit(code)
