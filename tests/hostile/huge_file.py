# expect: file_limit
# Writes one ever-growing file: RLIMIT_FSIZE stops it (EFBIG).
with open("big.bin", "wb") as f:
    while True:
        f.write(b"x" * (1 << 20))
