"""Operator tooling: the `loyalty` command line, `make run`, the embedded PostgreSQL and
brokers, migrations, the simulator and the README's generated parts.

Tooling may import the services (it names their scopes and runs their invariant checks);
nothing in `shared/` or `services/` imports tooling (`make lint` checks it)."""
