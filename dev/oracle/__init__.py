"""Dev-only oracle that drives the official EdgeTAM package to (re)generate golden data (see README.md).

Not part of the installed ``edgetam_export`` package and never imported by it.
"""

import os

os.environ.setdefault("TQDM_DISABLE", "1")  # the official propagate loop wraps tqdm
