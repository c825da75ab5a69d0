# expect: ok
# Network: TCP to the test's listener on 127.0.0.1, to an external address, a listening socket and
# UDP. All must fail (no interfaces in the namespace, and socket() other than AF_UNIX is denied).
import socket

def attempt(what, fn):
    try:
        fn()
        print(what, "succeeded")
    except OSError as e:
        print(what, "failed", e.errno)

def tcp(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(0.5)
    s.connect((host, port))
    s.sendall(b"escaped @NONCE@\n")

def listen():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("0.0.0.0", 0))
    s.listen(1)

def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"x", ("8.8.8.8", 53))

attempt("local", lambda: tcp("127.0.0.1", @PORT@))
attempt("external", lambda: tcp("1.1.1.1", 80))
attempt("listen", listen)
attempt("udp", udp)
attempt("ipv6", lambda: socket.socket(socket.AF_INET6, socket.SOCK_STREAM))
attempt("netlink", lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0))
