# expect: file_limit|ok
# Many files, each under the file-size limit, 48 MiB in all: the private disk (the test sets 16 MiB)
# fills in namespaces mode; the rlimits fallback has no disk quota (the directory is removed after).
for i in range(12):
    with open("fill%d.bin" % i, "wb") as f:
        f.write(b"x" * (4 << 20))
print("filled")
