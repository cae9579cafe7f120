import sys

from lpirc.cli import main

sys.exit(main())
