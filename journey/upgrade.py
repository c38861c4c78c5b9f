"""`journey migrate`: what an upgrade changes in the store, shown and applied."""

from __future__ import annotations

import click

from engine.settings import Settings
from journey.bootstrap import migrate_store
from journey.console import out, say


@click.command()
@click.option("--dry-run", is_flag=True, help="Show what would change, change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def migrate(ctx: click.Context, dry_run: bool, as_json: bool) -> None:
    """Brings the store's tables up to this release. Every command does so by itself when it
    opens the store; this shows what changes first, or applies it at a time you choose."""
    statuses = migrate_store(ctx.find_object(Settings) or Settings(), apply=not dry_run)
    if as_json:
        out.print_json(
            data=[
                {
                    "where": status.where,
                    "part": status.part,
                    "version": status.version,
                    "to": status.pending[-1].version if status.pending else status.version,
                    "pending": [{"version": m.version, "does": m.does} for m in status.pending],
                    "applied": bool(status.pending) and not dry_run,
                }
                for status in statuses
            ]
        )
        return
    if not statuses:
        say("nothing to migrate: the store is empty")
    for status in statuses:
        head = f"{status.where}: {status.part}"
        if not status.pending:
            click.echo(f"{head} at version {status.version}, up to date")
            continue
        verb = "would apply" if dry_run else "applied"
        for migration in status.pending:
            click.echo(f"{head} {verb} version {migration.version}: {migration.does}")
