"""``billstream serve push``: the signed push endpoint, ``POST /v1/items``."""

from __future__ import annotations

import asyncio

import click

from adapters.dext.push import (
    ENV_SECRET_PREFIX,
    ENV_TOKEN_PREFIX,
    MAX_BODY_BYTES,
    PushEndpoint,
    PushState,
    secrets_from_env,
    tokens_from_env,
)
from adapters.dext.web import start_app
from adapters.documents import DocumentFetcher
from domain.tenants import Tenants
from streams.cli.base import fail, print_json, serve
from streams.cli.commands.ingest_dext import load_settings_and_tenants, stop_on_signals
from streams.config import Settings
from streams.kafka.publish import Publisher
from streams.kafka.topics import ensure_topics
from streams.pipeline.runtime import kafka_for

PUSH_HELP = f"""Accept signed Dext items over HTTP: POST /v1/items.

\b
Headers:  X-Billstream-Tenant: <tenant id>
          X-Billstream-Timestamp: <Unix seconds, within 5 minutes>
          X-Billstream-Signature: sha256=<hex HMAC-SHA256 of timestamp + "." + raw body>
   or:    Authorization: Bearer <token>   (for Zapier; only behind TLS)
Body:     one Dext item, or a JSON array of them, each with its "id"; or one
          flat record labelled as Zapier labels Dext's fields ("Supplier Name",
          "Total Amount", "Image URL"...), as JSON or a form.
Answers:  202 {{"key": "tenant:id", "status": "accepted" | "duplicate"}};
          400 / 401 / 413 / 415 / 409 with {{"reason", "message"}}; 503 only
          when the broker did not take the item (send it again).

\b
Secrets (environment only): {ENV_SECRET_PREFIX}<TENANT>, e.g. acme-uk ->
{ENV_SECRET_PREFIX}ACME_UK; at least 16 characters; several comma-separated
values are all accepted (rotation). Tokens: {ENV_TOKEN_PREFIX}<TENANT>, at
least 24 characters, comma-separated for rotation. Only tenants with a secret
or a token take pushes.

When ready, prints one JSON line with the endpoint's "url" and the "tenants" it serves.
"""


@serve.command("push", help=PUSH_HELP)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8089, show_default=True, help="0 picks a free port.")
@click.option(
    "--max-body-bytes", type=int, default=MAX_BODY_BYTES, show_default=True, help="Body cap."
)
def serve_push(host: str, port: int, max_body_bytes: int) -> None:
    settings, tenants = load_settings_and_tenants()
    secrets = secrets_from_env(tenants.all())
    tokens = tokens_from_env(tenants.all())
    if not secrets and not tokens:
        fail(
            f"no tenant can push: set {ENV_SECRET_PREFIX}<TENANT> or {ENV_TOKEN_PREFIX}<TENANT> "
            "for at least one tenant"
        )
    asyncio.run(_serve(settings, tenants, (secrets, tokens), host, port, max_body_bytes))


async def _serve(
    settings: Settings,
    tenants: Tenants,
    keys: tuple[dict[str, list[str]], dict[str, list[str]]],
    host: str,
    port: int,
    max_body_bytes: int,
) -> None:
    stop = stop_on_signals()
    state = PushState(settings.data_dir / "dext" / "push.sqlite")
    try:
        with kafka_for(settings) as kafka_url:
            await ensure_topics(settings, kafka_url)
            async with Publisher(settings, kafka_url) as publisher:
                endpoint = PushEndpoint(
                    tenants=tenants,
                    secrets=keys[0],
                    tokens=keys[1],
                    sink=publisher,
                    state=state,
                    documents=DocumentFetcher(allowed_dirs=list(settings.document_dirs)),
                    max_body_bytes=max_body_bytes,
                )
                runner, url = await start_app(endpoint.app(), host, port)
                try:
                    print_json({"url": f"{url}/v1/items", "tenants": sorted({*keys[0], *keys[1]})})
                    await stop.wait()
                finally:
                    await runner.cleanup()
    finally:
        state.close()
