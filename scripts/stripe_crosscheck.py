#!/usr/bin/env python3
"""Signs and verifies webhook payloads with Stripe's official Python library, for the
differential test booking-core/tests/stripe_crosscheck.rs.

Usage:
  python3 scripts/stripe_crosscheck.py --setup      install the library, print its version, exit
  python3 scripts/stripe_crosscheck.py < req.json   answer one request on stdout (JSON)

The `stripe` package (PyPI, pinned by STRIPE_PYTHON_VERSION, default below) is installed into a
venv at $STRIPE_VENV, or ${CARGO_TARGET_DIR:-target}/stripe-venv, the first time; the script
then re-runs itself inside that venv. Installing needs PyPI; nothing else touches the network.

Exit status: 0 on success, 3 when the venv or the package cannot be installed (the Rust test
skips on 3 outside CI and fails in CI), anything else on a real error.

Request:  {"sign":   [{"payload": str, "secret": str, "timestamp": int}],
           "verify": [{"payload": str, "header": str, "secret": str, "now": int, "tolerance": int}],
           "construct": [... same fields as verify ...]}
Response: {"stripe_version": str,
           "sign": [header, ...],
           "verify": [{"ok": bool, "error": str | null}, ...],
           "construct": [{"ok": bool, "event_id": str | null, "error": str | null}, ...]}

`verify` calls stripe.WebhookSignature.verify_header, `construct` calls
stripe.Webhook.construct_event, `sign` calls stripe.WebhookSignature.generate_signature_header.
The library reads the wall clock for its tolerance check; `now` is injected by patching
time.time for the duration of each call.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

PINNED = os.environ.get("STRIPE_PYTHON_VERSION", "16.1.0")
SETUP_FAILED = 3


def venv_dir() -> Path:
    if os.environ.get("STRIPE_VENV"):
        return Path(os.environ["STRIPE_VENV"]).resolve()
    root = Path(__file__).resolve().parent.parent
    target = Path(os.environ.get("CARGO_TARGET_DIR", root / "target"))
    return (target / "stripe-venv").resolve()


def ensure_venv_and_reexec() -> None:
    """Outside the venv: create it, install the pinned package, and re-run inside it."""
    venv = venv_dir()
    python = venv / "bin" / "python"
    if Path(sys.prefix).resolve() == venv:
        return
    check = [str(python), "-c", f"import stripe, sys; sys.exit(stripe.VERSION != {PINNED!r})"]
    try:
        installed = python.exists() and subprocess.run(check, capture_output=True).returncode == 0
        if not installed:
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True,
                           stdout=sys.stderr)
            subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                            "--disable-pip-version-check", f"stripe=={PINNED}"],
                           check=True, stdout=sys.stderr)
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"stripe_crosscheck: cannot install stripe=={PINNED} into {venv}: {e}",
              file=sys.stderr)
        sys.exit(SETUP_FAILED)
    os.execv(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])


def answer(request: dict) -> dict:
    from unittest import mock

    import stripe
    from stripe import SignatureVerificationError

    def at(now):
        return mock.patch("time.time", return_value=float(now))

    signed = [
        stripe.WebhookSignature.generate_signature_header(c["payload"], c["secret"],
                                                           timestamp=c["timestamp"])
        for c in request.get("sign", [])
    ]

    verified = []
    for c in request.get("verify", []):
        with at(c["now"]):
            try:
                stripe.WebhookSignature.verify_header(c["payload"], c["header"], c["secret"],
                                                      tolerance=c["tolerance"])
                verified.append({"ok": True, "error": None})
            except SignatureVerificationError as e:
                verified.append({"ok": False, "error": str(e)})

    constructed = []
    for c in request.get("construct", []):
        with at(c["now"]):
            try:
                event = stripe.Webhook.construct_event(
                    c["payload"].encode("utf-8"), c["header"], c["secret"],
                    tolerance=c["tolerance"])
                constructed.append({"ok": True, "event_id": event.id, "error": None})
            except SignatureVerificationError as e:
                constructed.append({"ok": False, "event_id": None, "error": str(e)})

    return {"stripe_version": stripe.VERSION, "sign": signed, "verify": verified,
            "construct": constructed}


def main() -> None:
    ensure_venv_and_reexec()
    import stripe

    if stripe.VERSION != PINNED:
        print(f"stripe_crosscheck: expected stripe {PINNED}, found {stripe.VERSION}",
              file=sys.stderr)
        sys.exit(SETUP_FAILED)
    if sys.argv[1:] == ["--setup"]:
        print(f"stripe {stripe.VERSION} ready in {venv_dir()}")
        return
    json.dump(answer(json.load(sys.stdin)), sys.stdout)


if __name__ == "__main__":
    main()
