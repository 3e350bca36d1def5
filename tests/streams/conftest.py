"""Agents under Faust's test_context: a unit tier, so no process or network socket."""

from tests.tiers import no_socket_or_process  # noqa: F401
