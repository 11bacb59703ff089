"""serverlib.py - what the test servers (ccserver.py, ccstreamer.py) share:
their command line, and the port file a test polls for.

    a = serverlib.command_line(__doc__)      --fixtures --scenario --port-file --log
    spec = serverlib.scenario(a)             the scenario, and an empty log
    serverlib.announce(a, port)              the port, written atomically
"""
import argparse
import json
import os
import sys


class Quiet:
    """A mixin for socketserver servers: a client that went away (a timeout,
    a test that is done) is expected; keep stderr quiet about it."""

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


def command_line(doc, extra=()):
    """The common options, and extra ones: (flag, help) pairs taking a value."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--fixtures", required=True)
    ap.add_argument("--scenario", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    for flag, help_text in extra:
        ap.add_argument(flag, help=help_text)
    return ap.parse_args()


def scenario(a):
    with open(a.scenario) as f:
        spec = json.load(f)
    open(a.log, "a").close()
    return spec


def announce(a, port):
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.rename(tmp, a.port_file)
