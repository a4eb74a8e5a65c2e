"""``python -m blindsr <verb> key=value ...``"""
import sys

from blindsr.cli import main

sys.exit(main())
