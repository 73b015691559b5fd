"""`make demo`: prepare the bundled sample faces, train a small net on the CPU, write a grid."""

import sys

print("make demo: the training command (pggan-train) is not built yet; the demo arrives with it.", file=sys.stderr)
sys.exit(1)
