"""`civicq-ops db ...`: the local PostgreSQL (up, down, status, url, psql) and the CivicQ database
(migrate, lint, rollback, history, current, migrate-create, seed, reset, schema-doc).

Each command is one call into civicq_ops.postgres.local_db or civicq_ops.civicq, imported inside
the command: alembic, SQLAlchemy and psycopg behind them would add ~0.5 s to every command's
start-up, `--help` too.
"""

from __future__ import annotations

from typing import Annotated

import typer

from civicq_ops.cli.common import exit_with, one_of
from civicq_ops.cli.interact import confirm_or_refuse
from civicq_ops.cli.session import Session, session_of
from civicq_ops.core.errors import ExitCode

app = typer.Typer(help="The local PostgreSQL and the CivicQ database.", no_args_is_help=True)


def _session(ctx: typer.Context) -> Session:
    return session_of(ctx)


@app.command()
def up(ctx: typer.Context) -> None:
    """Start the local PostgreSQL (initialising it on first use) and create the target database.

    Example: civicq-ops db up
    """
    from civicq_ops.postgres.local_db import db_up, status_text

    s = _session(ctx)
    status = db_up(s.project, s.target())
    if not s.quiet:
        typer.echo(status_text(status), nl=False)


@app.command()
def down(ctx: typer.Context) -> None:
    """Stop the local PostgreSQL by its pid (fast shutdown).

    Example: civicq-ops db down
    """
    from civicq_ops.postgres.local_db import db_down

    s = _session(ctx)
    typer.echo(db_down(s.project, s.target()))


@app.command()
def status(
    ctx: typer.Context,
    fmt: Annotated[str, typer.Option("--format", "-f", help="text or json")] = "text",
) -> None:
    """Whether the local PostgreSQL runs, its version, port and data dir. Exit 3 when stopped.

    Example: civicq-ops db status --format json
    """
    from civicq_ops.postgres.local_db import db_status, status_text

    s = _session(ctx)
    st = db_status(s.project, s.target())
    typer.echo(status_text(st, fmt), nl=False)
    if not st.running:
        raise typer.Exit(int(ExitCode.EXECUTION_ERROR))


@app.command()
def url(
    ctx: typer.Context,
    show_password: Annotated[bool, typer.Option("--show-password", help="Print the password instead of ********.")] = False,
) -> None:
    """The connection URL of the target (the password masked unless --show-password).

    Example: psql "$(civicq-ops db url --show-password)"
    """
    from civicq_ops.postgres.local_db import target_url

    s = _session(ctx)
    typer.echo(target_url(s.project, s.target(), show_password))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def psql(ctx: typer.Context) -> None:
    """Open psql on the target; extra arguments go to psql (its exit code is this command's).

    Example: civicq-ops db psql -c 'select version()'
    """
    from civicq_ops.postgres.local_db import run_psql

    s = _session(ctx)
    raise typer.Exit(run_psql(s.project, s.target(), list(ctx.args)))


@app.command()
def migrate(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Revision to reach (default: head).")] = "head",
    sql_only: Annotated[bool, typer.Option("--sql", help="Print the SQL of the pending migrations for review; run nothing.")] = False,
    from_rev: Annotated[str | None, typer.Option("--from", metavar="REV",
                                                 help="With --sql: start after REV instead of the target's revision ('base': the whole history, no database needed).")] = None,
) -> None:
    """Apply the CivicQ migrations (schema, indexes, views) to the target, under lock_timeout and
    statement_timeout, retrying a lock timeout (migrations: in civicq-ops.yaml).

    Example: civicq-ops db migrate            (or: civicq-ops db migrate --sql > review.sql; --from base for all)
    """
    from civicq_ops.civicq import migrations

    s = _session(ctx)
    if not revision.strip():
        from civicq_ops.core.errors import InputError

        raise InputError("db migrate needs a revision (default: head)")
    if sql_only:
        if from_rev is not None:
            typer.echo(migrations.migration_sql(s.project, revision, from_rev or "base"), nl=False)
        else:
            typer.echo(migrations.pending_sql(s.project, s.target(), revision), nl=False)
        return
    if from_rev is not None:
        from civicq_ops.core.errors import InputError

        raise InputError("--from goes with --sql (a migration always starts at the target's revision)")
    result = migrations.migrate(s.project, s.target(), revision)
    if not s.quiet:
        retried = f" (after {result.tries - 1} lock-timeout retries)" if result.tries > 1 else ""
        typer.echo(f"migrated {s.target().name}: {result.before or '<empty>'} -> {result.after or '<empty>'}{retried}")


@app.command()
def lint(
    ctx: typer.Context,
    rev_range: Annotated[str | None, typer.Argument(metavar="REV_RANGE", help="A:B, A:, :B or one REV (default: the target's pending migrations; offline: all).")] = None,
    offline: Annotated[bool, typer.Option("--offline", help="Do not connect: squawk's rules only, sizes unknown.")] = False,
    fmt: Annotated[str, typer.Option("--format", "-f", help="text, json, sarif, github or markdown")] = "text",
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also list info findings (style, re-runnability).")] = False,
) -> None:
    """Lint migrations before they run: squawk's rules on their SQL, each finding at its migration
    file and line with the lock it takes, the table's live size, rows and write rate, the time a
    rewrite holds the lock, views a type change breaks, and sessions that would block it now.
    Exit 1 when a statement is risky by rule and size (migrations.lint in civicq-ops.yaml), else 0.

    Example: civicq-ops --target staging db lint -f github        (offline: civicq-ops db lint --offline 0004)
    """
    from civicq_ops.civicq.migration_lint import lint as run_lint
    from civicq_ops.civicq.migration_lint_report import FORMATS, render

    one_of("--format", fmt, FORMATS)
    s = _session(ctx)
    result = run_lint(s.project, None if offline else s.target(), rev_range)
    typer.echo(render(result, fmt, verbose=verbose), nl=False)
    if result.failed:
        exit_with(ExitCode.GATE_FAILED)


@app.command()
def rollback(
    ctx: typer.Context,
    steps: Annotated[int, typer.Option("--steps", "-n", help="How many revisions to undo.")] = 1,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask (not enough for production: see --confirm).")] = False,
    confirm: Annotated[str | None, typer.Option("--confirm", metavar="TARGET",
                                                help="Production only: the target's name, to confirm.")] = None,
) -> None:
    """Undo the last migration(s). On production: only with --confirm TARGET, after a safety backup.

    Example: civicq-ops db rollback --steps 2        (production: civicq-ops --target prod db rollback --confirm prod)
    """
    from civicq_ops.civicq import commands

    s = _session(ctx)
    target = s.target()
    if commands.is_production(target):
        confirm_or_refuse(f"Roll back {steps} migration(s) on production target {target.name}?", yes=yes,
                          name=target.name, confirm=confirm)
    result = commands.rollback(s.project, target, steps, confirmed=target.name)
    if result.safety_backup:
        typer.echo(f"safety backup {result.safety_backup} taken first (civicq-ops restore {result.safety_backup})")
    typer.echo(f"rolled back {target.name}: {result.before or '<empty>'} -> {result.after or '<empty>'}")


@app.command()
def history(ctx: typer.Context) -> None:
    """List the migrations, oldest first.

    Example: civicq-ops db history
    """
    from civicq_ops.civicq import migrations

    s = _session(ctx)
    for rev in migrations.history(s.project):
        typer.echo(f"{rev.revision}  {rev.message}")


@app.command()
def current(
    ctx: typer.Context,
    check: Annotated[bool, typer.Option("--check", help="Exit 1 when migrations are pending (a deploy gate).")] = False,
) -> None:
    """The migration revision the target is at; with --check, exit 1 when migrations are pending.

    Example: civicq-ops db current --check
    """
    from civicq_ops.civicq import migrations

    s = _session(ctx)
    if not check:
        typer.echo(migrations.current(s.project, s.target()) or "<empty: no migration applied>")
        return
    st = migrations.status(s.project, s.target())
    at = st.current or "<empty: no migration applied>"
    if st.pending:
        typer.echo(f"{at} (pending: {', '.join(st.pending)})")
        raise typer.Exit(int(ExitCode.GATE_FAILED))
    typer.echo(f"{at} (head)")


@app.command("migrate-create")
def migrate_create(ctx: typer.Context, message: Annotated[str, typer.Argument(help="What the migration does.")]) -> None:
    """Create an empty migration after the current head.

    Example: civicq-ops db migrate-create "add city timezones"
    """
    from civicq_ops.civicq import migrations

    s = _session(ctx)
    typer.echo(str(migrations.create_migration(s.project, message)))


@app.command("seed")
def seed_cmd(
    ctx: typer.Context,
    scale: Annotated[int, typer.Option("--scale", help="Also add N generated load units (10,000 votes each).")] = 0,
) -> None:
    """Load the CivicQ development data (idempotent: a second run adds nothing). Never into production.

    Example: civicq-ops db seed            (or: civicq-ops db seed --scale 100 for a million votes)
    """
    from civicq_ops.civicq.commands import seed

    s = _session(ctx)
    result = seed(s.project, s.target(), scale)
    if not s.quiet:
        typer.echo(f"seeded {s.target().name}: {result.total} rows in {result.seconds:.1f}s"
                   + ("" if result.total else " (already seeded)"))


@app.command()
def reset(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Drop, migrate and seed the target database (embedded or development targets only; never production).

    Example: civicq-ops db reset --yes
    """
    from civicq_ops.civicq.seeding import check_resettable
    from civicq_ops.civicq.seeding import reset as do_reset

    s = _session(ctx)
    target = s.target()
    check_resettable(target)  # production is refused before anyone is asked
    confirm_or_refuse(f"Drop and recreate database {target.database} on target {target.name}?", yes=yes)
    result = do_reset(s.project, target)
    typer.echo(f"reset {target.name}: migrated and seeded {result.total} rows in {result.seconds:.1f}s")


@app.command("schema-doc")
def schema_doc(
    ctx: typer.Context,
    output: Annotated[str, typer.Option("--output", "-o", help="Where to write the Markdown.")] = "docs/SCHEMA_REFERENCE.md",
) -> None:
    """Write the schema reference (tables, columns, constraints, indexes, views) from the live database.

    Example: civicq-ops db schema-doc -o docs/SCHEMA_REFERENCE.md
    """
    from civicq_ops.civicq.schema_doc import write_schema_reference

    s = _session(ctx)
    write_schema_reference(s.project, s.target(), output)
    typer.echo(f"wrote {output}")
