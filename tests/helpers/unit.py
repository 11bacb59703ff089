#!/usr/bin/env python3
"""unit.py FILE INSTANCE BINDIR EXAMPLES W: an example systemd unit as
systemd would run it, as NUL-separated fields on stdout: "env NAME=VALUE"
for each variable (EnvironmentFile=, then Environment=), "out FILE"
(StandardOutput=truncate:/file:/append:), "ok STATUS" for each
SuccessExitStatus=, then "argv" and ExecStart's words.  %i is INSTANCE, %H
the host name; the installed paths are the test's (the binaries of BINDIR,
the examples of EXAMPLES, /var/lib/dp and node_exporter's textfile
directory W/var, /etc/dp/dp.env W/etc/dp.env), and each --metrics
localhost:PORT gets a free port instead (another run of the suite may hold
the unit's): "PORT FREE" lines appended to W/ports.  For tests/examples.bats
and tests/consumer-outage.bats."""
import os, re, shlex, socket, sys
unit, inst, bindir, ex, w = sys.argv[1:]
text = open(unit).read().replace("\\\n", " ").replace("%i", inst)
text = text.replace("%H", socket.gethostname())
for old, new in (("/usr/local/bin", bindir), ("/usr/local/share/dp/examples", ex),
                 ("/var/lib/dp", w + "/var"), ("/etc/dp/dp.env", w + "/etc/dp.env"),
                 ("/var/lib/prometheus/node-exporter", w + "/var")):
    text = text.replace(old, new)
def free(m):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with open(w + "/ports", "a") as f:
        f.write("%s %d\n" % (m.group(1), port))
    return "--metrics 127.0.0.1:%d" % port
text = re.sub(r"--metrics localhost:(\d+)", free, text)
out, env, ok, argv = [], [], [], None
for line in text.splitlines():
    key, _, val = line.partition("=")
    key = key.strip()
    if key == "EnvironmentFile":
        # "-PATH": systemd takes a missing file as empty
        if val.startswith("-") and not os.path.exists(val[1:]):
            continue
        for l in open(val.lstrip("-")):
            l = l.strip()
            if l and not l.startswith("#"):
                env.append(l)
    elif key == "Environment":
        env += shlex.split(val)
    elif key == "StandardOutput" and ":" in val:
        out = ["out", val.split(":", 1)[1]]
    elif key == "SuccessExitStatus":
        ok += [x for s in val.split() for x in ("ok", s)]
    elif key == "ExecStart":
        argv = shlex.split(val)
fields = [x for e in env for x in ("env", e)] + out + ok + ["argv"] + argv
sys.stdout.write("\0".join(fields) + "\0")
