"""Command line entry point of dms-emulator."""

import argparse
import signal
import ssl
import sys
import threading

from .credentials import CredentialService
from .server import EmulatorServer
from .service import DEFAULT_CREDENTIALS, Clock, Emulator, Seed
from .sigv4 import Credentials, Verifier


def _speed(text):
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("speed must be > 0")
    return value


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="dms-emulator",
        description="Local AWS DMS endpoint (serverless replications) for tests and demos. "
                    "Prints its URL on the first line of stdout.",
    )
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default 0: a free port)")
    parser.add_argument("--seed", metavar="FILE", help="JSON seed file: keys and replication configs")
    parser.add_argument("--speed", type=_speed, default=1000.0,
                        help="emulated seconds per real second (default 1000)")
    parser.add_argument("--auto-create", action="store_true",
                        help="StartReplication on an unknown ARN creates a full-load-and-cdc config")
    parser.add_argument("--key", action="append", default=[], metavar="AK:SK[:TOKEN]",
                        help="accepted credentials (repeatable; default AKIDEXAMPLE and its example secret)")
    parser.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate (chain)")
    parser.add_argument("--tls-key", metavar="PEM", help="the certificate's private key")
    parser.add_argument("--verbose", action="store_true", help="log requests to stderr")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        seed = Seed.load(args.seed) if args.seed else Seed()
        credentials = [Credentials.parse(text) for text in args.key] + seed.keys
    except (OSError, ValueError) as err:
        print(f"dms-emulator: {err}", file=sys.stderr)
        return 2
    clock = Clock(args.speed)
    verifier = Verifier(credentials or [DEFAULT_CREDENTIALS], clock.signing_now)
    server = EmulatorServer(("127.0.0.1", args.port), Emulator(clock, seed, args.auto_create),
                            verifier, args.verbose, CredentialService(verifier, clock.signing_now, seed.account))
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        server.scheme = "https"

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    serving = threading.Thread(target=server.serve_forever, args=(0.1,), name="serve", daemon=True)
    serving.start()
    print(server.url, flush=True)
    if args.verbose:
        print(f"dms-emulator: listening on {server.url}, speed {args.speed:g}", file=sys.stderr)
    stop.wait()
    server.shutdown()
    server.server_close()
    return 0
