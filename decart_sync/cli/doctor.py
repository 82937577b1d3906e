"""``decart-sync doctor``: the preflight for people
([`decart_sync.check_connectivity()`][decart_sync.check_connectivity]).

Prints what was reached and the verdict with its reasons (or ``--json``);
with no ``--stun``, the ICE check uses the public STUN server the client
uses, or the one a service on this machine announces (the emulator's);
exits 0 for good or fair, 1 for poor or critical, so scripts can gate on it.
"""

from __future__ import annotations

import argparse
import json

from .. import models
from ..preflight import check_connectivity
from .status import Console


def run(args: argparse.Namespace, console: Console) -> int:
    model = None if args.model is None else models.parse(args.model)  # as stream reads it
    console.say("checking the way to the service...")
    report = check_connectivity(
        base_url=args.base_url,
        ice_servers=args.stun,
        deep=args.deep,
        model=model,
        api_key=args.api_key,
        timeout=args.timeout,
    )
    # The report is the command's output (stdout); the console (stderr) is for progress.
    print(json.dumps(report.as_dict(), indent=2) if args.json else str(report), flush=True)
    return 0 if report.verdict in ("good", "fair") else 1
