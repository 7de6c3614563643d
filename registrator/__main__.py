import sys

from registrator.app.cli import main

sys.exit(main())
