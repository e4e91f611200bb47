"""``python -m s3stream``: the ``s3stream`` command line (see ``s3stream.cli``)."""

import sys

from s3stream.cli import main

sys.exit(main())
