"""``flask --app portal worker``: the Procfile's worker process."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from portal.jobs.worker import Worker


@click.command("worker")
@click.option("--threads", type=int, default=None, help="Jobs run at once (PORTAL_WORKER_THREADS).")
@click.option(
    "--exit-when-idle", is_flag=True, help="Stop once no job is due (tests, one-off runs)."
)
@with_appcontext
def worker_command(threads: int | None, exit_when_idle: bool) -> None:
    """Run jobs (emails, SMS, callbacks, expiry) until SIGTERM; finishes the jobs in hand."""
    worker = Worker(current_app._get_current_object(), threads=threads)  # type: ignore[attr-defined]
    worker.install_signal_handlers()
    click.echo(f"worker {worker.name} running with {worker.threads} thread(s)")
    worker.run(exit_when_idle=exit_when_idle)
