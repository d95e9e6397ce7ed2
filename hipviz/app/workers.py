"""The server's worker threads, shared by every page.

The event loop, which every session shares, only does the quick parts of a
change; measures, new bones, cuts, uploads and exports run here.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

#: Measures run here, off the server's event loop, one at a time per session
#: and in all: a measure is mostly Python holding the interpreter's lock, so a
#: second thread would measure no faster and take that lock from the event
#: loop more often (the loop, not the measures, sends every session its
#: picture). Pages queue for it in turn; each is measured at its latest plan.
MEASURE_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hipviz-measure")
#: New bones, cuts, uploads and exports are built here: seconds each, so
#: apart from the measures, which must not queue behind them.
BUILD_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="hipviz-build")
#: The Motion view's model and limits (some hundred ms per plan): one at a
#: time, apart from the measures and the builds.
MOTION_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hipviz-motion")
#: One export renders at a time.
EXPORT_LOCK = threading.Lock()
