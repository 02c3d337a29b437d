import sys

from octojax.cli import main

sys.exit(main())
