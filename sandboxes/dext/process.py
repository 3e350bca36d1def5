"""``billstream sandbox dext`` as a child process, for the demo and the tests."""

from __future__ import annotations

from typing import Any

from sandboxes.process import SandboxProcess


class DextSandboxProcess(SandboxProcess):
    name = "dext"
    admin_prefix = "/_sandbox/"

    def stats(self) -> dict[str, Any]:
        return dict(self.admin("GET", "stats"))
