/*
 * shape: the two verifiers that judge a completion's form rather than its content.
 *
 * format: the whole completion against a required structure (anchored, never a loose search):
 *   [start prefix] <think>\n reasoning \n</think> ... exactly one final \boxed{...} [closing only]
 * Each active rule is worth the same share of the score; full marks only when all hold.
 *   presets  preset: NAME sets the options below first; options given with it refine it (in any
 *            order): r1 = think required, the model writes "<think>\n" itself (the defaults);
 *            r1_prompt = think required, think_open prompt (R1's chat template already ends with
 *            "<think>\n"; the completion holds only "</think>"); seed = the seed article's format:
 *            start "###", think optional, answer boxed, trailing none, i.e. the output starts
 *            with ### and ends with exactly one \boxed{} answer (a think block, if any, must be
 *            well formed; add think_open: prompt behind R1's template). All three: answer boxed,
 *            trailing none. e.g. {name: format, weight: 0.2, preset: seed}
 *   options  think: required|optional|forbidden (required)   start: "" (text the completion must
 *            begin with, e.g. "<think>\n" or "###")   think_open: completion|prompt (completion;
 *            "prompt" when the chat template already ends with "<think>\n")   answer: boxed|none
 *            (boxed)   trailing: none|any (none)
 *   rules    start       the completion begins with `start` (only when start is set)
 *            think_block exactly one <think> and one </think>, in that order (think_open prompt:
 *                        no <think> and one </think>)
 *            think_first nothing but whitespace between the start prefix and <think>
 *            reasoning   the think block holds non-whitespace text
 *            newlines    "<think>\n" opens the block and "\n</think>" closes it
 *            no_think    (think: forbidden, replaces the four above) no think tag anywhere
 *            answer      exactly one \boxed{...} after the last </think> (the whole text when there
 *                        is none), braces balanced, content not blank; \boxed inside the reasoning
 *                        is allowed and ignored
 *            trailing    after that box only whitespace and closing delimiters: $ . ) ] \ *
 *   With think: optional, the four think rules are active only when a think tag appears.
 *
 * efficiency: completion length in tokens against the budget (rl_vsample.max_tokens). A truncated
 * completion (truncated = 1) always scores 0.
 *   options  mode: budget|target|group (budget)
 *     budget  flat: f in [0, 1) (0): 1 up to f * max_tokens, then linear down to 0 at max_tokens;
 *             with f = 0 the score is 1 - n_tokens / max_tokens
 *     target  target: T tokens (required, 0 < T): 1 up to T, then linear down to 0 at max_tokens
 *     group   per prompt group (Kimi k1.5 style): 1 for the shortest, 0 for the longest, linear in
 *             between; all equal lengths (or a group of one) -> 1
 *   A sample with no budget (max_tokens <= 0) in budget/target mode is SKIPPED (score 0).
 *
 * Both are thread-safe (their state is the parsed options, read-only after create).
 * Owns: nothing global.
 */
#ifndef RL_VERIFIERS_SHAPE_H
#define RL_VERIFIERS_SHAPE_H

#include "reward/verifier_abi.h"

const rl_verifier_api *rl_verifier_format_api(void);
const rl_verifier_api *rl_verifier_efficiency_api(void);

#endif
