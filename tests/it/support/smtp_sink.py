"""A real SMTP server (aiosmtpd, pinned in requirements-dev.txt) for the email tests.

    smtp_sink.py PORT DIR SCRIPT

Listens on 127.0.0.1:PORT. Every DATA command is one attempt: its number is appended to
DIR/attempts. SCRIPT is a comma-separated list of answers for the first attempts, in order:
`451` (or any 4xx/5xx code) refuses the message with that code, `slow:SECONDS` waits that long and
then accepts; after the script every message is accepted. An accepted message is written to
DIR/<n>.eml (the bytes received) with DIR/<n>.rcpt (the envelope recipients, one a line).
RCPT TO a local part starting with `nobody` is refused `550 5.1.1` (no such mailbox).

Prints `READY` once listening; exits when its standard input closes (the test dropped it).
"""

import asyncio
import os
import sys

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, directory, script):
        self.directory = directory
        self.script = [s for s in script.split(",") if s]
        self.attempts = 0
        self.accepted = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.split("@")[0].startswith("nobody"):
            return "550 5.1.1 <%s>: Recipient address rejected: no such mailbox" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.attempts += 1
        with open(os.path.join(self.directory, "attempts"), "a") as f:
            f.write("%d\n" % self.attempts)
        step = self.script.pop(0) if self.script else None
        if step and step.startswith("slow:"):
            await asyncio.sleep(float(step[5:]))
        elif step:
            return "%s 4.3.0 Try again later" % step
        self.accepted += 1
        base = os.path.join(self.directory, "%d" % self.accepted)
        with open(base + ".rcpt", "w") as f:
            f.write("\n".join(envelope.rcpt_tos))
        with open(base + ".tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(base + ".tmp", base + ".eml")
        return "250 Message accepted for delivery"


def main():
    port, directory = int(sys.argv[1]), sys.argv[2]
    script = sys.argv[3] if len(sys.argv) > 3 else ""
    controller = Controller(Sink(directory, script), hostname="127.0.0.1", port=port)
    controller.start()
    print("READY", flush=True)
    try:
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
