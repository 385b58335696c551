"""`python -m pipeline <step>`: see pipeline/cli.py."""

import gc
import sys

from pipeline.cli import main

code = main()
# The interpreter's last garbage collection walks every object MLflow, XGBoost and pandas made (~1 s after train,
# measured); freezing them skips that walk. Run files, logs and the result file are already written and closed.
gc.freeze()
sys.exit(code)
