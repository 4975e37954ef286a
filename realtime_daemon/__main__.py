"""``python -m realtime_daemon``: the same command line as ``realtime-daemon``."""

from .cli import main

main(prog_name="realtime-daemon")
