"""What every ``flask --app portal …`` command shares."""

from __future__ import annotations

import json

import click


def print_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2))
