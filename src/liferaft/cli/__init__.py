"""The ``liferaft`` command: arguments, progress bars, tables and ``--json``; maps every
LiferaftError to its exit code. One ``cmd_<name>.py`` per command, each with ``add(subparsers)``
and ``run(args, ctx)``."""
