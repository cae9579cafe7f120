import sys

from lpirc.runner.cli import main

sys.exit(main())
