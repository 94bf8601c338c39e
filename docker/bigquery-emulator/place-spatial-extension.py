"""Puts DuckDB's spatial extension where DuckDB looks for it, so the emulator never downloads it.

DuckDB loads extensions from $HOME/.duckdb/extensions/<version>/<platform>/; the pinned package
duckdb-extension-spatial ships the file in site-packages (scripts/bootstrap.mjs does the same for
`npm start`). Version and platform come from the installed DuckDB, so the path follows the pins.
"""

import pathlib
import shutil

import duckdb
import duckdb_extension_spatial

version = "v" + duckdb.__version__
platform = duckdb.sql("PRAGMA platform").fetchone()[0]
source = pathlib.Path(duckdb_extension_spatial.__file__).parent / "extensions" / version / "spatial.duckdb_extension"
if not source.is_file():
    raise SystemExit(f"duckdb-extension-spatial has no {source}: its pin no longer matches duckdb {duckdb.__version__}")
target_dir = pathlib.Path.home() / ".duckdb" / "extensions" / version / platform
target_dir.mkdir(parents=True, exist_ok=True)
shutil.copyfile(source, target_dir / source.name)
print(f"placed {source.name} in {target_dir}")
