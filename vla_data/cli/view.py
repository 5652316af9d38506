"""`vla-data view`."""

from __future__ import annotations

import click

from vla_data.cli.errors import friendly_errors


def _episodes(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r}: give episode numbers separated by commas, e.g. 0,1,5") from None


@click.command()
@click.argument("target")
@click.option("--port", default=8000, show_default=True, help="Port to serve on (0: any free port).")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind; the default is this machine only.",
)
@click.option(
    "--tokenizer",
    "tokdir",
    type=click.Path(exists=True, file_okay=False),
    help="FAST tokenizer directory: overlay its reconstruction on the actions (a loader config's own by default).",
)
@click.option(
    "--export",
    "export_dir",
    type=click.Path(file_okay=False),
    help="Write a static site (HTML + JSON + frames) to this folder instead of serving.",
)
@click.option(
    "--episodes", default="0", show_default=True, help="With --export: episodes to include, e.g. 0,3,7."
)
@click.option(
    "--batches", default=2, show_default=True, help="With --export and a loader config: batches to include."
)
@friendly_errors
def view(target, port, host, tokdir, export_dir, episodes, batches) -> None:
    """Look at TARGET in the browser: a converted dataset (folder or URI) or a loader config (loader.json).

    \b
    Dataset: features, tasks, shards, statistics and histograms, skipped episodes, episode list.
    Episode: cameras playing in sync, state/action curves (with --tokenizer: FAST reconstruction).
    Web dataset: images, turns, boxes. Loader config: batches exactly as the model gets them.
    Serves on http://127.0.0.1:8000/ until Ctrl-C; --export DIR writes a site that opens from disk.
    """
    from vla_data.view import ViewApp, ViewServer, export_site

    app = ViewApp(target, tokenizer=tokdir)
    if export_dir:
        export_site(app, export_dir, episodes=_episodes(episodes), batches=batches, echo=click.echo)
        return
    try:
        server = ViewServer(app, host=host, port=port)
    except OSError as e:  # e.g. the port is taken by another server
        raise click.ClickException(
            f"cannot serve on {host}:{port} ({e}); pass --port N (0 picks a free one)"
        ) from e
    click.echo(f"vla-data view: {target} at {server.url}  (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("stopped")
    finally:
        server.httpd.server_close()
