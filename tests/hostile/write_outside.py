# expect: ok
# Tries to write outside its directory: host /tmp, $HOME, /root, the repository, /dev/shm.
import os

targets = [
    "/tmp/rlpipe_escape_@NONCE@",
    os.path.join(os.environ.get("HOME", "/nonexistent"), "..", "rlpipe_escape_@NONCE@"),
    "/root/rlpipe_escape_@NONCE@",
    "@REPO@/rlpipe_escape_@NONCE@",
    "/dev/shm/rlpipe_escape_@NONCE@",
    "/var/tmp/rlpipe_escape_@NONCE@",
]
for path in targets:
    try:
        with open(path, "w") as f:
            f.write("escaped\n")
        print("wrote", path)
    except OSError as e:
        print("blocked", path, e.errno)
