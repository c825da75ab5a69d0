#!/usr/bin/env python3
"""Writes the small benchmark files of tests/data/bench/ (run by hand; stdlib only).

Each file follows its public release's format and field names (as users download them):
HuggingFaceH4/MATH-500, AIME 2024 (lower-case and capitalised releases), GPQA Diamond (the
original CSV and a JSONL conversion), TIGER-Lab/MMLU-Pro, livecodebench/code_generation_lite
(public tests as JSON text, private tests as base64(zlib(pickle(json text)))). The problems are
our own small ones so that the tests know every answer. bad/ holds malformed and hostile rows.
"""
import base64, csv, json, os, pickle, zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def w(name, rows):
    with open(os.path.join(HERE, name), "w", encoding="utf-8", newline="\n") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def lcb_private(tests, protocol=4):
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests), protocol=protocol))).decode()


math500 = [
    dict(problem="What is $\\frac{1}{2} + \\frac{1}{3}$?", solution="... $\\boxed{\\frac{5}{6}}$.",
         answer="\\frac{5}{6}", subject="Prealgebra", level=1, unique_id="test/prealgebra/1.json"),
    dict(problem="Solve for $x$: $2x + 3 = 11$.", solution="$x = \\boxed{4}$", answer="4",
         subject="Algebra", level=2, unique_id="test/algebra/2.json"),
    dict(problem="Compute $\\sqrt{50}$ in simplest form.", solution="$\\boxed{5\\sqrt{2}}$",
         answer="5\\sqrt{2}", subject="Algebra", level=3, unique_id="test/algebra/3.json"),
    dict(problem="Find the interval where $x^2 < 4$.", solution="$\\boxed{(-2,2)}$", answer="(-2,2)",
         subject="Intermediate Algebra", level=4, unique_id="test/intermediate_algebra/4.json"),
]
w("math500.jsonl", math500)

w("aime24.jsonl", [
    dict(id=60, problem="Find the remainder when $7^{100}$ is divided by $1000$.", solution="...",
         answer="001", url="https://example.org/aime/1"),
    dict(id=61, problem="How many positive divisors does $720$ have?", solution="...", answer="30",
         url="https://example.org/aime/2"),
    dict(id=62, problem="What is $3^3 + 4^3 + 5^3$?", solution="...", answer="216",
         url="https://example.org/aime/3"),
])
w("aime24_caps.jsonl", [
    dict(ID="2024-I-1", Problem="What is $12 \\times 13$?", Solution="...", Answer=156),
    dict(ID="2024-I-2", Problem="What is $999 - 1$?", Solution="...", Answer=998),
])

gpqa_cols = ["Pre-Revision Question", "Question", "Correct Answer", "Incorrect Answer 1",
             "Incorrect Answer 2", "Incorrect Answer 3", "Explanation", "Record ID",
             "High-level domain", "Subdomain"]
gpqa = [
    ["old", "Which particle mediates the electromagnetic force?", " Photon\n", "Gluon", "W boson",
     "Graviton", "QED.", "recA1", "Physics", "Quantum Mechanics"],
    ["old", "A sample has a pH of 3. What is [H+], in mol/L?\nAssume 25 °C, \"ideal\" solution.",
     "1e-3", "1e-11", "3", "1e3", "pH = -log[H+].", "recB2", "Chemistry", "Chemistry (general)"],
    ["old", "Which base pairs with adenine in DNA, given A, C, G, T?", "Thymine", "Uracil",
     "Cytosine", "Guanine, or \"G\"", "Watson-Crick.", "recC3", "Biology", "Molecular Biology"],
]
with open(os.path.join(HERE, "gpqa_diamond.csv"), "w", encoding="utf-8", newline="") as f:
    cw = csv.writer(f, lineterminator="\r\n")
    cw.writerow(gpqa_cols)
    for r in gpqa:
        cw.writerow(r)
w("gpqa_diamond.jsonl", [dict(zip(gpqa_cols, r)) for r in gpqa])

mmlu = [
    dict(question_id=70, question="What is the capital of France?",
         options=["Berlin", "Madrid", "Paris", "Rome", "Lisbon", "Vienna", "Prague", "Oslo", "Bern",
                  "Dublin"], answer="C", answer_index=2, cot_content="", category="other",
         src="ori_mmlu-global_facts"),
    dict(question_id=71, question="2 + 2 = ?", options=["3", "4", "5"], answer="B", answer_index=1,
         cot_content="", category="math", src="stemez-Math"),
    dict(question_id=72, question="Which is a prime number?",
         options=["1", "4", "6", "8", "9", "10", "12", "14", "15", "17"], answer="J",
         answer_index=9, cot_content="", category="math", src="theoremqa"),
]
w("mmlu_pro.jsonl", mmlu)

sum_pub = [dict(input="1 2\n", output="3\n", testtype="stdin")]
sum_priv = [dict(input="10 20\n", output="30\n", testtype="stdin"),
            dict(input="-5 5\n", output="0\n", testtype="stdin")]
two_pub = [dict(input="[2,7,11,15]\n9", output="[0, 1]", testtype="functional")]
two_priv = [dict(input="[3,2,4]\n6", output="[1, 2]", testtype="functional"),
            dict(input="[3,3]\n6", output="[0, 1]", testtype="functional")]
lcb = [
    dict(question_title="A+B", question_content="Read two integers A and B and print A+B.",
         platform="atcoder", question_id="abc000_a", contest_id="abc000",
         contest_date="2024-08-01T00:00:00", starter_code="", difficulty="easy",
         public_test_cases=json.dumps(sum_pub), private_test_cases=lcb_private(sum_priv),
         metadata="{}"),
    dict(question_title="two-sum", question_content="Given nums and target, return the indices of "
         "the two numbers that add up to target.", platform="leetcode", question_id="1",
         contest_id="weekly-contest-0", contest_date="2024-08-02T00:00:00",
         starter_code="class Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n        ",
         difficulty="easy", public_test_cases=json.dumps(two_pub),
         private_test_cases=lcb_private(two_priv, protocol=5),
         metadata=json.dumps({"func_name": "twoSum"})),
    dict(question_title="echo", question_content="Print the input line reversed.",
         platform="codeforces", question_id="cf1", contest_id="1", contest_date="2024-08-03T00:00:00",
         starter_code="", difficulty="medium",
         public_test_cases=json.dumps([dict(input="abc\n", output="cba\n", testtype="stdin")]),
         private_test_cases=json.dumps([dict(input="x\n", output="x\n", testtype="stdin")]),
         metadata="{}"),
]
w("livecodebench.jsonl", lcb)

# Pickles for the decoder's unit test: hex of each, one per line "name hex".
class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))

pk = {
    "p2": pickle.dumps("héllo [1]", protocol=2),
    "p3": pickle.dumps("héllo [1]", protocol=3),
    "p4": pickle.dumps("héllo [1]", protocol=4),
    "p5": pickle.dumps("héllo [1]", protocol=5),
    "p4_long": pickle.dumps("x" * 300, protocol=4),
    "list": pickle.dumps(["a"], protocol=4),
    "bytes": pickle.dumps(b"abc", protocol=4),
    "evil": pickle.dumps(Evil(), protocol=4),
    "two": pickle.dumps("a", protocol=4)[:-1] + pickle.dumps("b", protocol=4)[2 + 9:],
}
with open(os.path.join(HERE, "pickles.txt"), "w") as f:
    for k, v in pk.items():
        f.write("%s %s\n" % (k, v.hex()))

os.makedirs(os.path.join(HERE, "bad"), exist_ok=True)
def bad(name, lines):
    with open(os.path.join(HERE, "bad", name), "w", encoding="utf-8", newline="\n") as f:
        for l in lines:
            f.write((l if isinstance(l, str) else json.dumps(l)) + "\n")

ok_math = json.dumps(math500[0])
bad("math_no_answer.jsonl", [ok_math, "", json.dumps(dict(problem="1+1?"))])            # line 3
bad("math_not_json.jsonl", [ok_math, '{"problem": "x", "answer": '])                      # line 2
bad("math_array.jsonl", [ok_math, ok_math, "[1, 2]"])                                     # line 3
bad("aime_answer.jsonl", [json.dumps(dict(problem="p", answer="12.5"))])                  # line 1
bad("aime_range.jsonl", [json.dumps(dict(problem="p", answer=1000))])                     # line 1
bad("gpqa_missing.csv", ['Question,Correct Answer,Incorrect Answer 1,Incorrect Answer 2',
                         'q,a,b,c'])                                                      # line 2
bad("gpqa_quote.csv", ['Question,Correct Answer,Incorrect Answer 1,Incorrect Answer 2,Incorrect Answer 3',
                       'q,a,b,c,d', '"unterminated,a,b,c,d'])                             # line 3
bad("gpqa_fields.csv", ['Question,Correct Answer,Incorrect Answer 1,Incorrect Answer 2,Incorrect Answer 3',
                        '"multi', 'line",a,b,c,d', 'q,a,b'])                              # line 4
bad("mmlu_letter.jsonl", [json.dumps(mmlu[1]), json.dumps(dict(mmlu[1], answer="E", answer_index=4))])  # 2
bad("mmlu_index.jsonl", [json.dumps(dict(mmlu[1], answer_index=0))])                      # line 1
bad("mmlu_options.jsonl", [json.dumps(dict(mmlu[1], options=["only one"]))])              # line 1
bad("lcb_evil_pickle.jsonl", [json.dumps(dict(lcb[0], private_test_cases=base64.b64encode(
    zlib.compress(pickle.dumps(Evil(), protocol=4))).decode()))])                         # line 1
bad("lcb_list_pickle.jsonl", [json.dumps(lcb[0]), json.dumps(dict(lcb[0], private_test_cases=base64.b64encode(
    zlib.compress(pickle.dumps(sum_priv, protocol=4))).decode()))])                       # line 2
bad("lcb_garbage.jsonl", [json.dumps(dict(lcb[0], private_test_cases="not base64 !!"))])  # line 1
bad("lcb_truncated.jsonl", [json.dumps(dict(lcb[0], private_test_cases=base64.b64encode(
    zlib.compress(pickle.dumps(json.dumps(sum_priv), protocol=4))[:-6]).decode()))])     # line 1
bad("lcb_no_func.jsonl", [json.dumps(dict(lcb[1], metadata="{}"))])                        # line 1
bad("lcb_testtype.jsonl", [json.dumps(dict(lcb[0], public_test_cases=json.dumps(
    [dict(input="1", output="2", testtype="interactive")])))])                            # line 1
bad("lcb_func_name.jsonl", [json.dumps(dict(lcb[1], metadata=json.dumps({"func_name": "x(); import os"})))])  # 1
bad("lcb_no_tests.jsonl", [json.dumps(dict(lcb[0], public_test_cases="[]", private_test_cases=""))])  # 1
