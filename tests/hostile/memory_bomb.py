# expect: memory
# Allocates (and touches) 16 MiB chunks until the address-space limit says no.
chunks = []
while True:
    chunks.append(bytearray(1 << 24))
