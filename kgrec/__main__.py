import sys

from kgrec.cli import main

sys.exit(main())
