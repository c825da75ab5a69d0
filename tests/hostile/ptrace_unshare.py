# expect: ok
# Privileged operations through ctypes: ptrace the parent, unshare new namespaces, mount, chroot.
import ctypes
import os

libc = ctypes.CDLL(None, use_errno=True)
print("ptrace", libc.ptrace(16, os.getppid(), 0, 0), ctypes.get_errno())
print("unshare", libc.unshare(0x10000000 | 0x20000000), ctypes.get_errno())
print("mount", libc.mount(b"none", b"/tmp", b"tmpfs", 0, None), ctypes.get_errno())
print("chroot", libc.chroot(b"/tmp"), ctypes.get_errno())
