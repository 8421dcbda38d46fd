# Runs a command on a pseudo-terminal for the CLI tests: writes the given input chunks (each after
# waiting for an expected text), then prints a JSON record of the output and exit status.
# usage: pty-session.py JSON  where JSON = {"argv": [...], "steps": [{"wait": "...", "send": "..."}]}
import json, os, pty, select, sys, time

spec = json.loads(sys.argv[1])
pid, fd = pty.fork()
if pid == 0:
    os.execvp(spec["argv"][0], spec["argv"])

out = b""
deadline = time.time() + spec.get("timeout", 20)

def pump(until):
    global out
    while time.time() < deadline:
        if until is not None and until.encode("latin1") in out:
            return True
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                return False
            if not chunk:
                return False
            out += chunk
    return False

for step in spec["steps"]:
    if step.get("wait") is not None and not pump(step["wait"]):
        break
    os.write(fd, step["send"].encode("latin1"))
pump(None)
try:
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
except ChildProcessError:
    code = None
print(json.dumps({"output": out.decode("latin1"), "code": code}))
