#!/usr/bin/env python3
# launch_rewrite: turns CUDA kernel launches into calls of the CPU emulation (emu.cpp), so that a
# .cu file compiles as plain C++:
#     kernel<<<grid, block, smem, stream>>>(args)        (kernel may be kernel<T, ...>)
#  -> emu_launch(kernel, dim3(grid), dim3(block), smem, [=]() { kernel(args); })
# (smem 0 when the launch gives none; `kernel` may be a function or a function-pointer variable)
# and dynamic shared memory declarations into the emulation's per-block buffer:
#     extern __shared__ [__align__(N)] TYPE name[];
#  -> TYPE *name = (TYPE *)emu_dynamic_smem();
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
        cfg = [p.strip() for p in split_top_level(src[j + 3 : k])]
        grid, block = cfg[:2]
        smem = cfg[2] if len(cfg) > 2 else "0"
        p = src.find("(", k)
        depth, q = 0, p
        while True:  # the matching parenthesis of the argument list
            depth += src[q] == "("
            depth -= src[q] == ")"
            if depth == 0:
                break
            q += 1
        out.append("emu_launch(%s, dim3(%s), dim3(%s), (size_t)(%s), [=]() { %s(%s); })"
                   % (name.group(1), grid, block, smem, name.group(1), src[p + 1 : q]))
        i = q + 1


DYNAMIC_SMEM = re.compile(
    r"extern\s+__shared__\s+(?:__align__\s*\(\s*\d+\s*\)\s+)?([A-Za-z_][\w\s]*?)\s*"
    r"([A-Za-z_]\w*)\s*\[\s*\]\s*;")


def rewrite_dynamic_smem(src):
    return DYNAMIC_SMEM.sub(lambda m: "%s *%s = (%s *)emu_dynamic_smem();"
                            % (m.group(1), m.group(2), m.group(1)), src)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        text = rewrite_dynamic_smem(f.read())
    with open(sys.argv[2], "w") as f:
        f.write(rewrite(text))
