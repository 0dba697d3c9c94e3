"""`python -m isnet_keras.cli`: the `isnet` command."""

import sys

from isnet_keras.cli import main

sys.exit(main())
