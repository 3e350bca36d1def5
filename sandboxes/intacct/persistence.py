"""Keeping the Intacct sandbox's state across restarts (``--state-dir``).

The companies go to one JSON file at exit and come back at start; attachment contents
are stored base64. Periods closed on the command line stay closed after a reload.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from sandboxes.intacct.core import SandboxCore


class PersistenceMixin(SandboxCore):
    """Saving and loading the companies."""

    def save(self, path: Path) -> None:
        data = {
            "recordno": self._recordno,
            "companies": [
                {
                    "id": c.id,
                    "vendors": list(c.vendors.values()),
                    "documents": list(c.documents.values()),
                    "supdocs": [
                        {
                            **{k: v for k, v in d.items() if k != "files"},
                            "files": [
                                {**f, "content": base64.b64encode(f["content"]).decode("ascii")}
                                for f in d["files"]
                            ],
                        }
                        for d in c.supdocs.values()
                    ],
                    "folders": list(c.folders.values()),
                    "closed": sorted(c.closed),
                    "executed": sorted(c.executed),
                    "accounts": None if c.accounts is None else sorted(c.accounts),
                    "vendor_sequence": c.vendor_sequence,
                    "dimensions": {k: sorted(v) for k, v in c.dimensions.items()},
                    "stray_contacts": sorted(c.stray_contacts),
                }
                for c in self.companies.values()
            ],
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        tmp.replace(path)

    def _load(self, path: Path) -> None:
        if not path.exists():
            return
        data = json.loads(path.read_text(encoding="utf-8"))
        self._recordno = int(data["recordno"])
        for raw in data["companies"]:
            company = self.add_company(raw["id"])
            company.vendors = {int(v["RECORDNO"]): v for v in raw["vendors"]}
            company.documents = {int(d["RECORDNO"]): d for d in raw["documents"]}
            company.supdocs = {
                d["supdocid"]: {
                    **d,
                    "files": [{**f, "content": base64.b64decode(f["content"])} for f in d["files"]],
                }
                for d in raw["supdocs"]
            }
            company.folders = {f["name"]: f for f in raw["folders"]}
            company.closed = set(raw["closed"]) | set(self.config.closed_periods)
            company.executed = set(raw["executed"])
            company.accounts = None if raw["accounts"] is None else set(raw["accounts"])
            company.vendor_sequence = bool(raw["vendor_sequence"])
            company.dimensions = {k: set(v) for k, v in raw.get("dimensions", {}).items()}
            company.stray_contacts = set(raw.get("stray_contacts", []))
