"""Starts the BigQuery emulator (bqemulator) without its automatic time-travel copies when the
time-travel retention is 0.

bqemulator copies the whole table (`CREATE TABLE ... AS SELECT *`) after every write, under its
write lock, to answer `FOR SYSTEM_TIME AS OF`. Tally never asks for time travel, and at retention 0
no such query could be answered from a copy anyway; the copy made every streaming insert cost a
pass over the whole table (docs/benchmarks.md). Real BigQuery has no such cost. Snapshots asked for
by name (`CREATE SNAPSHOT TABLE`) are still made; everything else is the emulator unchanged.
"""

import os
import sys

from bqemulator.cli import main
from bqemulator.versioning.snapshots import SnapshotManager

if os.environ.get("BQEMU_TIME_TRAVEL_RETENTION_DAYS") == "0":
    _capture = SnapshotManager.capture

    def _capture_named_only(self, project_id, dataset_id, table_id, *, kind="AUTO"):
        if kind == "AUTO":
            return None
        return _capture(self, project_id, dataset_id, table_id, kind=kind)

    SnapshotManager.capture = _capture_named_only

if __name__ == "__main__":
    sys.argv[0] = "bqemulator"
    sys.exit(main())
