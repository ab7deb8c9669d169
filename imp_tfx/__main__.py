import sys

from imp_tfx.cli import main

sys.exit(main())
