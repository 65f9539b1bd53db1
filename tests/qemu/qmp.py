#!/usr/bin/env python3
# qmp.py SOCKET COMMAND [ARGUMENTS-JSON]: sends one QMP command to the QEMU listening on SOCKET
# (-qmp unix:SOCKET,server=on,wait=off) and prints its "return" as JSON; exits 1 with QEMU's
# error. The QEMU tests drive live migration with it (migrate, query-migrate, quit).
import json
import socket
import sys


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: qmp.py SOCKET COMMAND [ARGUMENTS-JSON]")
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(30)
    conn.connect(sys.argv[1])
    stream = conn.makefile("rw")
    json.loads(stream.readline())  # the greeting

    def execute(name, arguments=None):
        message = {"execute": name}
        if arguments is not None:
            message["arguments"] = arguments
        stream.write(json.dumps(message) + "\n")
        stream.flush()
        while True:
            line = stream.readline()
            if not line:
                return None  # QEMU closed the connection (after "quit")
            reply = json.loads(line)
            if "return" in reply:
                return reply["return"]
            if "error" in reply:
                sys.exit("qmp: %s: %s" % (name, reply["error"].get("desc", reply["error"])))
            # an asynchronous event: not ours

    execute("qmp_capabilities")
    arguments = json.loads(sys.argv[3]) if len(sys.argv) == 4 else None
    print(json.dumps(execute(sys.argv[2], arguments)))


if __name__ == "__main__":
    main()
