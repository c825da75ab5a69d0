/*
 * choice: the accuracy verifier for multiple-choice questions (GPQA, MMLU-Pro): the letter the
 * completion gives as its final answer, compared exactly with the reference letter.
 *
 * Extraction reads the text after the last </think> (the whole completion when it has none; the
 * reasoning is never searched) and takes the LAST of these, so a restated answer at the end wins:
 *   Answer: C   answer is C   answer: (C)   **Answer:** C   Answer: $\boxed{C}$   (case-insensitive
 *               "answer", optionally "final answer", then ':' or "is", then markup * _ $ ( [ { and
 *               \text{ / \textbf{ / \mathrm{, then ONE capital letter not followed by a letter
 *               or digit)
 *   \boxed{C}   \boxed{(C)}   \boxed{\text{C}}   \boxed{C) 42} (the box must start with the letter)
 * The letter must be one of the first n_options letters (A..J at most). No other guessing: a lone
 * letter elsewhere in the text is never taken, so "I think it's B" scores 0.
 *
 * Score 1 when the letter equals the reference (a single letter A-J, case-insensitive, optional
 * parentheses), else 0 with a detail ("answer B, reference C", "no answer letter"). A reference
 * that is not a letter is SKIPPED.
 *
 * Options: options: N (2..10, default 10): how many letters the question offers.
 * Owns: nothing global; thread-safe.
 */
#ifndef RL_VERIFIER_CHOICE_H
#define RL_VERIFIER_CHOICE_H

#include "reward/verifier_abi.h"

// The answer letter of a completion ('A'..), or 0 when it gives none; n_options in 1..26.
char rl_choice_extract(const char *completion, int n_options);

// The reference letter ('A'..'J') of "C", "c", "(C)", " C "; 0 when it is not one.
char rl_choice_reference(const char *reference);

const rl_verifier_api *rl_verifier_choice_api(void);

#endif
