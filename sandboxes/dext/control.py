"""The Dext sandbox's control API under ``/_sandbox``, for tests and demos.

Counters, making the next processing items ready (``advance``), changing an item (which
moves it to the end of the feed) and changing the faults at run time.
"""

from __future__ import annotations

from aiohttp import web

from sandboxes.dext.state import DextCore, error


class ControlMixin(DextCore):
    """``/_sandbox/stats``, ``advance``, ``items/{account}/{id}`` and ``faults``."""

    async def _stats(self, request: web.Request) -> web.Response:
        counts: dict[str, int] = {}
        for it in self.items.values():
            counts[it.status] = counts.get(it.status, 0) + 1
        return web.json_response(
            {
                "requests": self.stats.requests,
                "rate_limited": self.stats.rate_limited,
                "failed": self.stats.failed,
                "tokens_issued": self.stats.tokens_issued,
                "documents": self.stats.documents,
                "pages": self.stats.pages,
                "per_path": self.stats.per_path,
                "statuses": counts,
            }
        )

    def advance(self, count: int, status: str = "ready") -> list[str]:
        """Move the next ``count`` items still processing to ``status`` (Dext finished them)."""
        moved: list[str] = []
        for it in sorted(self.items.values(), key=lambda i: i.seq):
            if len(moved) >= count:
                break
            if it.status == "processing":
                it.status = status
                self._bump(it)
                moved.append(str(it.item["id"]))
        return moved

    async def _advance(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        moved = self.advance(int(body.get("count", 1)), str(body.get("status", "ready")))
        return web.json_response({"moved": moved})

    async def _patch(self, request: web.Request) -> web.Response:
        it = self.items.get((request.match_info["account"], request.match_info["item_id"]))
        if it is None:
            return error(404, "not_found", "No such item.")
        body = await request.json()
        if "status" in body:
            it.status = str(body["status"])
        for key, value in dict(body.get("fields") or {}).items():
            it.item[key] = value
        self._bump(it)
        return web.json_response({"id": it.item["id"], "status": it.status})

    async def _set_faults(self, request: web.Request) -> web.Response:
        body = await request.json()
        for name in ("latency_ms", "rate_limit", "fail_every"):
            if name in body:
                setattr(self.faults, name, int(body[name]))
        if "rate_window" in body:
            self.faults.rate_window = float(body["rate_window"])
            self._windows.clear()
        return web.json_response(self.faults.__dict__)
