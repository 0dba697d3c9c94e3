import sys

from isnet_keras.cli import main

sys.exit(main())
