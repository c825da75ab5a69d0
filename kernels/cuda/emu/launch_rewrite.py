#!/usr/bin/env python3
# launch_rewrite: turns CUDA kernel launches into calls of the CPU emulation (emu.cpp), so that a
# .cu file compiles as plain C++:
#     kernel<<<grid, block, smem, stream>>>(args)        (kernel may be kernel<T, ...>)
#  -> emu_launch(dim3(grid), dim3(block), [=]() { kernel(args); })
# Usage: launch_rewrite.py IN.cu OUT.cpp
import re
import sys


def split_top_level(text):
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return parts + [cur]


def rewrite(src):
    out, i = [], 0
    while True:
        j = src.find("<<<", i)
        if j < 0:
            return "".join(out) + src[i:]
        # the kernel's name, with template arguments if any: kernel<float, bf16><<<...>>>
        name = re.search(r"([A-Za-z_][A-Za-z0-9_]*(?:<[^<>;]*>)?)\s*$", src[i:j])
        out.append(src[i : i + name.start(1)])
        k = src.find(">>>", j)
        grid, block = [p.strip() for p in split_top_level(src[j + 3 : k])[:2]]
        p = src.find("(", k)
        depth, q = 0, p
        while True:  # the matching parenthesis of the argument list
            depth += src[q] == "("
            depth -= src[q] == ")"
            if depth == 0:
                break
            q += 1
        out.append("emu_launch(dim3(%s), dim3(%s), [=]() { %s(%s); })"
                   % (grid, block, name.group(1), src[p + 1 : q]))
        i = q + 1


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        text = f.read()
    with open(sys.argv[2], "w") as f:
        f.write(rewrite(text))
