from liferaft.cli.main import entry

entry()
