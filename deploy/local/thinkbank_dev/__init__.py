"""thinkbank dev launcher: one entry point for running and testing the stack locally.

Standard library only, so it runs under any system `python3` before anything is installed.
Run it as `python3 deploy/local/thinkbank_dev.py COMMAND` (or `python3 -m thinkbank_dev` from
deploy/local). Everything it creates lives under `<repo>/.data/` (gitignored):

    .data/venv/          Python tools: embedded PostgreSQL + pgvector, the embedding model,
                         and (with --test) grpcurl, grpcio-tools, openai, requests, schemathesis
    .data/pg-run/        PostgreSQL cluster used by `run`
    .data/pg-test/       separate PostgreSQL cluster used by `test`, so tests never touch user data
    .data/objects/       object store used by `run`
    .data/logs/          worker.log, gateway.log of `run`
    .data/run/           pid files of `run`

Subcommands (see `--help`): setup, pg, env, bench, build, run, stop, lint, test, clean; `cli`
dispatches each to the module that owns it.
"""
