"""``python -m realtime_daemon``: the same command line as ``realtime-daemon``."""

from realtime_daemon.cli import main

main(prog_name="realtime-daemon")
