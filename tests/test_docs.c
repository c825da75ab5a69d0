// test_docs: the documentation stays true to the repository. Every relative link (and #anchor) in
// every Markdown file of the repository points at a file, folder or heading that exists; the
// top-level README stays a short front door; rollout/SCHEMA.md is what `rlpipe logs --schema-doc`
// generates from the schema in rollout/log.c. The link checker is first run on a small tree with
// known broken links, so it is shown to catch them.
#define _GNU_SOURCE
#include "rollout/log.h"
#include "rollout/log_doc.h"
#include "test_util.h"

#include <ctype.h>
#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define README_MAX_LINES 400

static int write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

// ---- GitHub heading anchors ---------------------------------------------------------------------

// The UTF-8 code point at s (advancing *len), or -1 for a malformed sequence.
static long utf8_decode(const unsigned char *s, int *len) {
    if (s[0] < 0x80) return *len = 1, s[0];
    int n = s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC0 ? 2 : 0;
    if (!n) return *len = 1, -1;
    long cp = s[0] & (0x3F >> (n - 1));
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return *len = 1, -1;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    return *len = n, cp;
}

// Code points GitHub's slugger removes: punctuation and symbols (Latin-1 signs, general
// punctuation, arrows, mathematical operators, box drawing, dingbats, CJK punctuation, emoji).
static int slug_drops(long cp) {
    return (cp >= 0xA1 && cp <= 0xBF) || cp == 0xD7 || cp == 0xF7 ||
           (cp >= 0x2000 && cp <= 0x2BFF) || (cp >= 0x3000 && cp <= 0x303F) ||
           (cp >= 0xFE10 && cp <= 0xFE6F) || (cp >= 0xFF01 && cp <= 0xFF0F) || cp >= 0x1F000;
}

// The anchor GitHub gives a heading: the rendered text lower-cased, punctuation removed, spaces
// turned into hyphens. The text is first stripped of code marks and links ([text](url) -> text).
static void heading_slug(const char *heading, char *out, size_t cap) {
    char text[1024];
    size_t t = 0;
    for (const char *p = heading; *p && t + 1 < sizeof text; p++) {
        if (*p == '`') continue;
        if (*p == ']' && p[1] == '(') { // drop the link target
            const char *close = strchr(p, ')');
            if (close) {
                p = close;
                continue;
            }
        }
        text[t++] = *p;
    }
    text[t] = '\0';
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p && o + 5 < cap;) {
        int len;
        long cp = utf8_decode(p, &len);
        if (cp < 0x80) {
            int c = tolower(*p);
            if (isalnum(c) || c == '-' || c == '_')
                out[o++] = (char)c;
            else if (c == ' ')
                out[o++] = '-';
        } else if (cp > 0 && !slug_drops(cp)) {
            memcpy(out + o, p, (size_t)len);
            o += (size_t)len;
        }
        p += len;
    }
    out[o] = '\0';
}

// Whether a line opens or closes a fenced code block (``` or ~~~, indented at most 3 spaces).
static int is_fence(const char *line) {
    int i = 0;
    while (i < 3 && line[i] == ' ') i++;
    return strncmp(line + i, "```", 3) == 0 || strncmp(line + i, "~~~", 3) == 0;
}

// Does the Markdown text have a heading (or an explicit id="..."/name="...") with this anchor?
static int has_anchor(const char *text, const char *anchor) {
    char *copy = strdup(text), *rest = copy, *line;
    char slugs_seen[256][128];
    int n_seen = 0, found = 0, fenced = 0;
    while (!found && (line = strsep(&rest, "\n")) != NULL) {
        if (is_fence(line)) {
            fenced = !fenced;
            continue;
        }
        if (fenced) continue;
        for (const char *attr = strstr(line, "id=\""); attr; attr = strstr(attr, "id=\"")) {
            attr += 4;
            size_t n = strcspn(attr, "\"");
            if (strlen(anchor) == n && strncmp(attr, anchor, n) == 0) found = 1;
        }
        if (line[0] != '#') continue;
        char *h = line;
        while (*h == '#') h++;
        if (*h != ' ') continue;
        while (*h == ' ') h++;
        size_t hl = strlen(h); // a closing "## x ##" sequence is not part of the text
        while (hl && h[hl - 1] == ' ') h[--hl] = '\0';
        size_t closing = hl;
        while (closing && h[closing - 1] == '#') closing--;
        if (closing < hl && (closing == 0 || h[closing - 1] == ' ')) h[closing] = '\0';
        char slug[128];
        heading_slug(h, slug, sizeof slug);
        // Repeated headings get -1, -2, ... in order.
        int dup = 0;
        for (int i = 0; i < n_seen; i++) dup += strcmp(slugs_seen[i], slug) == 0;
        char final[160];
        if (dup)
            snprintf(final, sizeof final, "%s-%d", slug, dup);
        else
            snprintf(final, sizeof final, "%s", slug);
        if (n_seen < 256) snprintf(slugs_seen[n_seen++], sizeof slugs_seen[0], "%s", slug);
        if (strcmp(final, anchor) == 0) found = 1;
    }
    free(copy);
    return found;
}

// ---- the link checker ---------------------------------------------------------------------------

// Resolves target (relative to dir, both relative to root) into out, collapsing "." and "..".
// Returns -1 when the path climbs above the repository root.
static int resolve(const char *dir, const char *target, char *out, size_t cap) {
    char joined[2048];
    if (target[0] == '/')
        snprintf(joined, sizeof joined, "%s", target + 1);
    else
        snprintf(joined, sizeof joined, "%s%s%s", dir, *dir ? "/" : "", target);
    char *parts[256];
    int n = 0;
    char *save = NULL;
    for (char *p = strtok_r(joined, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
        if (strcmp(p, ".") == 0) continue;
        if (strcmp(p, "..") == 0) {
            if (n == 0) return -1;
            n--;
            continue;
        }
        if (n < 256) parts[n++] = p;
    }
    size_t o = 0;
    out[0] = '\0';
    for (int i = 0; i < n; i++)
        o += (size_t)snprintf(out + o, cap - o, "%s%s", i ? "/" : "", parts[i]);
    if (n == 0) snprintf(out, cap, ".");
    return 0;
}

// %XX escapes in a link target.
static void percent_decode(char *s) {
    char *w = s;
    for (char *r = s; *r; r++) {
        if (r[0] == '%' && isxdigit((unsigned char)r[1]) && isxdigit((unsigned char)r[2])) {
            char hex[3] = {r[1], r[2], 0};
            *w++ = (char)strtol(hex, NULL, 16);
            r += 2;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
}

// Checks one link target found in file (relative to root) at line. Returns 1 if it is broken.
static int check_target(const char *root, const char *file, int line, const char *raw) {
    char target[2048];
    snprintf(target, sizeof target, "%s", raw);
    if (target[0] == '<') { // <path with spaces>
        memmove(target, target + 1, strlen(target));
        char *gt = strchr(target, '>');
        if (gt) *gt = '\0';
    }
    // Absolute URLs (http:, https:, mailto:, ...) are not checked.
    size_t scheme = strspn(target, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+-.");
    if (scheme > 0 && target[scheme] == ':') return 0;
    char *hash = strchr(target, '#');
    const char *anchor = NULL;
    if (hash) {
        *hash = '\0';
        anchor = hash + 1;
    }
    percent_decode(target);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", file);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        dir[0] = '\0';
    char rel[2048];
    if (!*target)
        snprintf(rel, sizeof rel, "%s", file); // "#anchor": this file
    else if (resolve(dir, target, rel, sizeof rel) != 0) {
        fprintf(stderr, "  %s:%d: link '%s' points outside the repository\n", file, line, raw);
        return 1;
    }
    char full[4096];
    snprintf(full, sizeof full, "%s/%s", root, rel);
    struct stat sb;
    if (stat(full, &sb) != 0) {
        fprintf(stderr, "  %s:%d: link '%s': %s does not exist\n", file, line, raw, rel);
        return 1;
    }
    if (anchor && *anchor && S_ISREG(sb.st_mode)) {
        size_t len = strlen(rel);
        if (len > 3 && strcmp(rel + len - 3, ".md") == 0) {
            char *text = test_read_file(full, NULL);
            int ok = text && has_anchor(text, anchor);
            free(text);
            if (!ok) {
                fprintf(stderr, "  %s:%d: link '%s': %s has no heading #%s\n", file, line, raw, rel,
                        anchor);
                return 1;
            }
        }
    }
    return 0;
}

// Removes `inline code` spans from a line (links inside them are examples, not links).
static void strip_code_spans(char *line) {
    char *w = line;
    for (char *r = line; *r;) {
        if (*r == '`') {
            size_t ticks = strspn(r, "`");
            char delim[16];
            snprintf(delim, sizeof delim, "%.*s", (int)(ticks < 15 ? ticks : 15), r);
            char *end = strstr(r + ticks, delim);
            if (end) {
                r = end + ticks;
                *w++ = ' ';
                continue;
            }
        }
        *w++ = *r++;
    }
    *w = '\0';
}

// Every broken relative link of one Markdown file (path relative to root). Returns the count.
static int check_markdown(const char *root, const char *file) {
    char full[4096];
    snprintf(full, sizeof full, "%s/%s", root, file);
    char *text = test_read_file(full, NULL);
    if (!text) {
        fprintf(stderr, "  %s: cannot read\n", file);
        return 1;
    }
    int broken = 0, fenced = 0, lineno = 0;
    char *rest = text, *line;
    while ((line = strsep(&rest, "\n")) != NULL) {
        lineno++;
        if (is_fence(line)) {
            fenced = !fenced;
            continue;
        }
        if (fenced || strncmp(line, "    ", 4) == 0) continue; // code blocks
        char buf[8192];
        snprintf(buf, sizeof buf, "%s", line);
        strip_code_spans(buf);
        // Reference definitions: [label]: target
        const char *p = buf + strspn(buf, " ");
        if (*p == '[') {
            const char *close = strstr(p, "]:");
            if (close && close[2] == ' ') {
                char target[2048];
                if (sscanf(close + 2, " %2047s", target) == 1)
                    broken += check_target(root, file, lineno, target);
                continue;
            }
        }
        // Inline links and images: ](target "title")
        for (const char *q = buf; (q = strstr(q, "](")) != NULL; q += 2) {
            const char *start = q + 2;
            size_t n = 0;
            int depth = 0;
            while (start[n] && start[n] != ' ' && !(start[n] == ')' && depth == 0)) {
                if (start[n] == '(') depth++;
                if (start[n] == ')') depth--;
                n++;
            }
            if (n == 0 || n >= 2048) continue;
            char target[2048];
            memcpy(target, start, n);
            target[n] = '\0';
            broken += check_target(root, file, lineno, target);
        }
    }
    free(text);
    return broken;
}

// Every *.md file under dir (relative to root), skipping hidden folders and build trees.
static void find_markdown(const char *root, const char *dir, char ***files, int *n) {
    char full[4096];
    snprintf(full, sizeof full, "%s/%s", root, dir);
    DIR *d = opendir(full);
    if (!d) return;
    char cache[4200];
    snprintf(cache, sizeof cache, "%s/CMakeCache.txt", full);
    if (access(cache, F_OK) == 0) { // a build directory
        closedir(d);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strncmp(e->d_name, "build", 5) == 0) continue;
        char rel[2048];
        snprintf(rel, sizeof rel, "%s%s%s", dir, *dir ? "/" : "", e->d_name);
        snprintf(full, sizeof full, "%s/%s", root, rel);
        struct stat sb;
        if (lstat(full, &sb) != 0) continue;
        size_t len = strlen(e->d_name);
        if (S_ISDIR(sb.st_mode)) {
            find_markdown(root, rel, files, n);
        } else if (S_ISREG(sb.st_mode) && len > 3 && strcmp(e->d_name + len - 3, ".md") == 0) {
            *files = realloc(*files, sizeof **files * (size_t)(*n + 1));
            (*files)[(*n)++] = strdup(rel);
        }
    }
    closedir(d);
}

// ---- tests --------------------------------------------------------------------------------------

// The checker itself: a tree with known good and broken links.
static void test_checker_catches_broken_links(void) {
    char root[] = "/tmp/rlpipe-docs-XXXXXX";
    CHECK(mkdtemp(root) != NULL, "mkdtemp");
    char path[256];
    snprintf(path, sizeof path, "%s/sub", root);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/sub/b.md", root);
    write_file(path, "# B\n\n## Hello, world: `rlpipe logs`\n\n## Again\n\n## Again\n"
                     "```\n# not a heading\n```\n<a id=\"custom\"></a>\n");
    snprintf(path, sizeof path, "%s/code.c", root);
    write_file(path, "int x;\n");
    snprintf(path, sizeof path, "%s/a.md", root);
    write_file(path, "# A\n"
                     "[ok](sub/b.md) [ok dir](sub/) [ok anchor](sub/b.md#hello-world-rlpipe-logs)\n"
                     "[ok dup](sub/b.md#again-1) [ok id](sub/b.md#custom) [self](#a)\n"
                     "[ok code](code.c) ![img](code.c \"title\") [web](https://example.com/x)\n"
                     "[ref]: sub/b.md\n"
                     "`[not a link](missing-in-code-span.md)`\n"
                     "```\n[not a link](missing-in-fence.md)\n```\n"
                     "    [not a link](missing-in-indented-code.md)\n"
                     "[broken](missing.md)\n"
                     "[broken anchor](sub/b.md#nope)\n"
                     "[outside](../../etc/passwd)\n"
                     "[broken self](#nowhere)\n"
                     "[broken ref]: gone.md\n");
    int broken = check_markdown(root, "a.md");
    CHECK(broken == 5, "the checker found %d broken links in the sample, want 5", broken);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    CHECK(system(cmd) == 0, "cleanup");
}

static void test_repository_links(void) {
    char **files = NULL;
    int n = 0;
    find_markdown(".", "", &files, &n);
    int have_readme = 0, per_folder = 0, broken = 0;
    for (int i = 0; i < n; i++) {
        have_readme |= strcmp(files[i], "README.md") == 0;
        per_folder += strchr(files[i], '/') != NULL;
        broken += check_markdown(".", files[i]);
        free(files[i]);
    }
    free(files);
    CHECK(have_readme, "README.md not found (tests run from the repository root)");
    CHECK(per_folder >= 5, "only %d Markdown files below the top level", per_folder);
    CHECK(broken == 0, "%d broken links in the repository's Markdown (listed above)", broken);
}

static void test_readme_is_short(void) {
    char *text = test_read_file("README.md", NULL);
    CHECK(text != NULL, "README.md missing");
    int lines = 0;
    for (const char *p = text; p && *p; p++) lines += *p == '\n';
    CHECK(lines <= README_MAX_LINES,
          "README.md has %d lines (at most %d): it is the front door; module manuals belong in "
          "the folders' README.md files",
          lines, README_MAX_LINES);
    free(text);
}

static void test_schema_reference_up_to_date(void) {
    char *generated = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&generated, &len);
    rl_err err = {0};
    int rc = f ? rl_log_schema_markdown(f, &err) : -1;
    if (f) fclose(f);
    CHECK(rc == 0, "schema reference failed: %s", err.msg);
    char *committed = test_read_file("rollout/SCHEMA.md", NULL);
    CHECK(committed != NULL, "rollout/SCHEMA.md missing");
    CHECK(generated && committed && strcmp(generated, committed) == 0,
          "rollout/SCHEMA.md is out of date with the schema in rollout/log.c: regenerate it with "
          "`build/rlpipe logs --schema-doc > rollout/SCHEMA.md`");
    // Every table and view of the DDL, in every schema version's part, has its section.
    for (int v = 1; rl_log_schema_sql(v); v++)
        for (const char *p = rl_log_schema_sql(v); generated && (p = strstr(p, "CREATE ")) != NULL;
             p += 7) {
            char kind[16], name[128];
            if (sscanf(p, "CREATE %15s %127[a-z_]", kind, name) != 2 || strcmp(kind, "INDEX") == 0)
                continue;
            char needle[160];
            snprintf(needle, sizeof needle, "### `%s`", name);
            CHECK(strstr(generated, needle), "%s missing from the schema reference", name);
        }
    free(generated);
    free(committed);
}

// `rlpipe logs --schema-doc` prints the same reference; extra arguments are a usage error.
static void test_schema_doc_cli(void) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' logs --schema-doc", test_rlpipe_bin());
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL, "popen");
    if (!p) return;
    char *out = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&out, &len);
    char buf[4096];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, p)) > 0) fwrite(buf, 1, got, m);
    int status = pclose(p);
    fclose(m);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "rlpipe logs --schema-doc failed");
    char *committed = test_read_file("rollout/SCHEMA.md", NULL);
    CHECK(out && committed && strcmp(out, committed) == 0,
          "rlpipe logs --schema-doc differs from rollout/SCHEMA.md");
    free(out);
    free(committed);
    snprintf(cmd, sizeof cmd, "'%s' logs --schema-doc extra 2>/dev/null >/dev/null",
             test_rlpipe_bin());
    status = system(cmd);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 2, "an extra argument should exit 2");
}

int main(void) {
    RUN(test_checker_catches_broken_links);
    RUN(test_repository_links);
    RUN(test_readme_is_short);
    RUN(test_schema_reference_up_to_date);
    RUN(test_schema_doc_cli);
    return test_summary();
}
