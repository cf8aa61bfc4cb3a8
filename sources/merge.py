"""How every raw table merges: delete-insert on the day, never on the row key.

Each table has a unique row key (e.g. Neon's org, project, day, metric; the `*_KEY` constants in
each provider's settings) and a merge key, the day (with the org or usage type where one run
loads only part of a day). A reload deletes the merge key's rows and inserts the fresh ones, so
a row the provider no longer reports for a day disappears with it.
"""

from __future__ import annotations

from typing import Dict, Sequence


def row_key_hints(key: Sequence[str]) -> Dict[str, Dict[str, bool]]:
    """Column hints that keep a table's row key out of dlt's primary key.

    Declared as dlt's primary key next to the merge key, the row key makes delete-insert delete
    the rows matching `primary key OR merge key`, a join no database can hash: 40 s and 20 GB of
    memory for a 3-day nightly over 300k rows, where the merge key alone takes milliseconds and
    already covers every row of a reloaded day. `False` also clears the hint from the schema that
    a warehouse loaded by an earlier version has stored.
    """
    return {column: {"primary_key": False} for column in key}
