#!/usr/bin/env python3
"""run_docs.py DOC DIR - run every ```sql block of DOC with DuckDB (PyPI `duckdb`), from DIR
(which holds the `lake/` the queries read), and print one JSON object per query on stdout:
{"query": N, "first_line": ..., "columns": [...], "rows": [[...], ...]}. A query that fails
stops the script with its error and a non-zero exit: the documentation's queries must run."""
import json
import os
import re
import sys

import duckdb

doc, where = sys.argv[1], sys.argv[2]
text = open(doc, encoding="utf-8").read()
blocks = re.findall(r"```sql\n(.*?)```", text, re.S)
if not blocks:
    sys.exit(f"{doc}: no sql blocks")
os.chdir(where)
con = duckdb.connect()
for n, sql in enumerate(blocks, 1):
    try:
        cur = con.execute(sql)
        rows = cur.fetchall()
        cols = [d[0] for d in cur.description]
    except Exception as e:  # report which query, then fail
        sys.exit(f"{doc}: query {n} failed: {e}\n{sql}")
    print(json.dumps({"query": n, "first_line": sql.strip().splitlines()[0], "columns": cols,
                      "rows": [[str(v) for v in r] for r in rows]}))
