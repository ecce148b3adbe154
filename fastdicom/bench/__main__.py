"""``python -m fastdicom.bench [--size ...]`` — same as ``fastdicom bench``."""
import sys

from . import main

sys.exit(main())
